"""Summary statistics for results over seeds: the mean and its 95 % confidence interval (Student's t)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Final

# Two-sided 95 % quantiles of Student's t by degrees of freedom (1..30); beyond 30 the normal's 1.96 is within 4 %.
T_975: Final = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
NORMAL_975: Final = 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, half-width of its 95 % confidence interval); the half-width is None for a single value."""
    if not values:
        raise ValueError("mean_ci needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    df = len(values) - 1
    t = T_975[df - 1] if df <= len(T_975) else NORMAL_975
    return mean, t * statistics.stdev(values) / len(values) ** 0.5


def format_mean_ci(values: Sequence[float], digits: int = 2) -> str:
    """'mean ± half-width' (just the mean for one value)."""
    mean, half = mean_ci(values)
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


def wilson_interval(successes: int, trials: int, z: float = NORMAL_975) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default): stays inside [0, 1] and behaves at small n and
    at shares near 0 or 1, where the normal approximation does not."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"wilson_interval needs 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    share = successes / trials
    scale = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / scale
    half = z * (share * (1 - share) / trials + z * z / (4 * trials * trials)) ** 0.5 / scale
    return max(0.0, centre - half), min(1.0, centre + half)
