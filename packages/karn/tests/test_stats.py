"""mean_ci: the 95 % confidence interval of a mean over seeds (Student's t)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.karn import format_mean_ci, mean_ci

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_known_values() -> None:
    # 5 seeds: t(0.975, 4) = 2.776; sd of 1..5 is sqrt(2.5).
    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0 and half == pytest.approx(2.776 * 2.5**0.5 / 5**0.5)
    assert mean_ci([7.0]) == (7.0, None)
    assert format_mean_ci([7.0]) == "7.00" and format_mean_ci([1.0, 3.0], 1) == "2.0 ± 12.7"
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])


@given(st.lists(finite, min_size=2, max_size=60), finite, st.floats(min_value=0.1, max_value=10))
def test_interval_is_shift_invariant_and_scales(values: list[float], shift: float, scale: float) -> None:
    mean, half = mean_ci(values)
    assert half is not None and half >= 0.0
    assert mean_ci([v + shift for v in values])[1] == pytest.approx(half, rel=1e-6, abs=1e-6)
    assert mean_ci([v * scale for v in values])[1] == pytest.approx(half * scale, rel=1e-6, abs=1e-6)
    # Wider than the standard error, never more than 12.71 of them (the t quantile for 2 values).
    se = statistics.stdev(values) / len(values) ** 0.5
    assert 1.95 * se - 1e-9 <= half <= 12.71 * se + 1e-9
