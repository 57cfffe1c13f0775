"""The report's SVG charts: round ticks that cover the data, log axes in powers of ten, points inside the plot."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.karn.svgchart import (
    MAX_TICKS,
    MIN_TICKS,
    TINY,
    Boundary,
    LineChart,
    Marker,
    Series,
    axis,
    bar_chart,
    lanes_for,
    line_chart,
    linear_ticks,
    log_ticks,
    tick_labels,
)

SVG = "{http://www.w3.org/2000/svg}"
finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False)


def nice_step(step: float) -> bool:
    """step = m x 10^k with m in {1, 2, 5}, to float precision."""
    exponent = math.floor(math.log10(step))
    mantissa = step / 10**exponent
    return any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5, 10))


def evenly_nice(ticks: Sequence[float]) -> bool:
    """The ticks are consecutive multiples of one 1-2-5 step."""
    steps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    step = steps[0]
    scale = max(abs(t) for t in ticks)
    return (
        nice_step(step)
        and all(math.isclose(s, step, rel_tol=1e-6, abs_tol=1e-9 * scale) for s in steps)
        and all(abs(t / step - round(t / step)) < 1e-6 for t in ticks)
    )


def one_two_five(value: float) -> bool:
    return nice_step(value)


def power_of_ten(value: float) -> bool:
    return math.isclose(10 ** round(math.log10(value)), value, rel_tol=1e-12)


@given(finite, finite, st.booleans())
def test_linear_ticks_are_round_cover_the_range_and_number_3_to_10(a: float, b: float, integer: bool) -> None:
    lo, hi = min(a, b), max(a, b)
    ticks = linear_ticks(lo, hi, integer=integer)
    assert MIN_TICKS <= len(ticks) <= MAX_TICKS
    assert ticks[0] <= lo and ticks[-1] >= hi
    assert list(ticks) == sorted(set(ticks))
    assert evenly_nice(ticks), ticks
    if integer:
        assert all(t == int(t) for t in ticks)
    labels = tick_labels(ticks)
    assert len(set(labels)) == len(labels), labels  # neighbours never print alike
    assert all(
        math.isclose(float(label), t, rel_tol=1e-9, abs_tol=1e-12) for label, t in zip(labels, ticks, strict=True)
    )


@given(positive, positive)
def test_log_ticks_are_powers_of_ten_or_1_2_5_and_cover_the_range(a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    ticks = log_ticks(lo, hi)
    assert MIN_TICKS <= len(ticks) <= MAX_TICKS
    assert ticks[0] <= lo and ticks[-1] >= hi and ticks[0] > 0
    assert list(ticks) == sorted(set(ticks))
    if hi / lo >= 100:  # two decades or more: powers of ten only
        assert all(power_of_ten(t) for t in ticks), ticks
    else:  # under that: 1, 2, 5 x 10^k, or evenly stepped round values when the data sits within a factor ~2.5
        assert all(one_two_five(t) for t in ticks) or evenly_nice(ticks), ticks
    labels = tick_labels(ticks, log=True)
    assert len(set(labels)) == len(labels), labels


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 1.0, (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        (50.5, 56.0, (50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0)),
        (-3.2, 7.9, (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0)),
        (0.3, 0.34, (0.3, 0.31, 0.32, 0.33, 0.34)),  # exact decimals, no 0.30000000000000004
    ],
)
def test_linear_ticks_by_example(lo: float, hi: float, expected: tuple[float, ...]) -> None:
    assert linear_ticks(lo, hi) == expected


def test_ticks_by_example() -> None:
    assert linear_ticks(1, 12, integer=True) == (0, 2, 4, 6, 8, 10, 12)
    assert linear_ticks(1, 2, integer=True) == (0, 1, 2, 3)  # an integer axis spans at least 2, centred
    assert log_ticks(0.05, 2.3) == (0.05, 0.1, 0.2, 0.5, 1, 2, 5)
    assert log_ticks(1e-6, 1e3) == tuple(10.0**k for k in range(-6, 4))
    assert log_ticks(1e-30, 1e30) == tuple(float(f"1e{k}") for k in range(-32, 33, 8))  # every 8th decade
    assert tick_labels(log_ticks(0.05, 2.3), log=True) == ["0.05", "0.1", "0.2", "0.5", "1", "2", "5"]
    assert tick_labels((0.0, 0.5, 1.0)) == ["0.0", "0.5", "1.0"]
    assert tick_labels(log_ticks(1e-6, 1e3), log=True)[:2] == ["1e-6", "1e-5"]
    assert tick_labels(linear_ticks(1e6, 1.5e6)) == ["1e6", "1.1e6", "1.2e6", "1.3e6", "1.4e6", "1.5e6"]
    with pytest.raises(ValueError, match="TINY <= lo"):
        log_ticks(0, 1)
    with pytest.raises(ValueError, match="finite"):
        linear_ticks(0, math.inf)


def test_an_axis_maps_its_ticks_to_0_and_1() -> None:
    linear = axis([3, 17])
    assert linear.fraction(linear.ticks[0]) == 0 and linear.fraction(linear.ticks[-1]) == 1
    log = axis([0.05, 2.3], log=True)
    assert log.fraction(0.5) == pytest.approx((math.log10(0.5) - math.log10(0.05)) / 2)


points = st.lists(st.tuples(st.integers(-50, 500), finite), min_size=1, max_size=30)


def plot_area(root: ET.Element) -> tuple[float, float, float, float]:
    rect = root.find(f"{SVG}rect[@data-plot]")
    assert rect is not None
    x, y = float(rect.attrib["x"]), float(rect.attrib["y"])
    return x, y, x + float(rect.attrib["width"]), y + float(rect.attrib["height"])


def drawn(root: ET.Element) -> dict[str, list[tuple[float, float]]]:
    return {
        line.attrib["data-series"]: [
            (float(x), float(y)) for x, y in (p.split(",") for p in line.attrib["points"].split())
        ]
        for line in root.iter(f"{SVG}polyline")
    }


@given(points, points, st.booleans())
def test_every_point_maps_inside_the_plot_area(
    a: list[tuple[int, float]], b: list[tuple[int, float]], log: bool
) -> None:
    chart = LineChart([Series("a", a), Series("b", b, dashed=True)], x_label="epoch", y_label="loss", log_y=log)
    svg = line_chart(chart)
    kept = {name: [p for p in pts if p[1] >= TINY or not log] for name, pts in (("a", a), ("b", b))}
    if not any(kept.values()):
        assert svg == ""  # nothing to draw: no chart at all
        return
    root = ET.fromstring(svg)  # well-formed XML
    left, top, right, bottom = plot_area(root)
    lines = drawn(root)
    assert {name: len(pts) for name, pts in lines.items()} == {n: len(p) for n, p in kept.items() if p}
    for pts in lines.values():
        for x, y in pts:
            assert left - 0.1 <= x <= right + 0.1 and top - 0.1 <= y <= bottom + 0.1
    assert root.attrib["data-scale"] == ("log" if log else "linear")


def test_a_chart_draws_marker_lanes_with_tooltips_boundaries_and_a_wrapping_legend() -> None:
    lanes = lanes_for({"germinate": "#2ca02c", "level": "#9467bd", "prune": "#d62728"})
    chart = LineChart(
        [Series(f"series number {i}", [(1, i + 1.0), (10, i + 2.0)]) for i in range(6)],
        x_label="epoch",
        y_label="%",
        lanes=lanes,
        markers=[
            Marker(2, "germinate", "germinated A"),
            Marker(2, "germinate", "germinated B <x>"),
            Marker(5, "prune", "pruned"),
        ],
        boundaries=[Boundary(5.5, "ep 1")],
    )
    root = ET.fromstring(line_chart(chart))
    marks = [(m.attrib["data-mark"], m.findtext(f"{SVG}title")) for m in root.iter(f"{SVG}path")]
    assert marks == [("germinate", "germinated A"), ("germinate", "germinated B <x>"), ("prune", "pruned")]
    xs = [float(m.attrib["d"].split(",")[0][1:]) for m in root.iter(f"{SVG}path")]
    assert xs[1] > xs[0]  # two events at one x stay apart, each hoverable
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "germinate" in texts and "prune" in texts and "level" not in texts  # only lanes with markers
    (boundary,) = [line for line in root.iter(f"{SVG}line") if "data-boundary" in line.attrib]
    assert boundary.attrib["data-boundary"] == "ep 1" and "ep 1" in texts
    legend_rows = {t.attrib["y"] for t in root.iter(f"{SVG}text") if (t.text or "").startswith("series number")}
    assert len(legend_rows) >= 2  # six long names do not fit on one 520-pixel line
    assert float(root.attrib["height"]) > max(float(y) for y in legend_rows)
    for t in root.iter(f"{SVG}text"):
        if (t.text or "").startswith("series number"):
            assert float(t.attrib["x"]) + 6.5 * len(t.text or "") <= 520 + 1
    with pytest.raises(ValueError, match="lanes the chart does not have"):
        line_chart(LineChart([Series("a", [(1, 1.0)])], x_label="", y_label="", markers=[Marker(1, "x", "")]))


def test_a_log_chart_drops_what_it_cannot_place_and_says_it_is_log() -> None:
    svg = line_chart(
        LineChart([Series("loss", [(1, 2.0), (2, 0.0), (3, 0.02)])], x_label="epoch", y_label="loss", log_y=True)
    )
    root = ET.fromstring(svg)
    assert root.attrib["data-scale"] == "log" and root.attrib["data-y-ticks"] == "0.01 0.1 1 10"
    assert [len(p) for p in drawn(root).values()] == [2]
    assert line_chart(LineChart([Series("loss", [(1, 0.0)])], x_label="", y_label="", log_y=True)) == ""
    assert line_chart(LineChart([Series("loss", [])], x_label="", y_label="")) == ""


def test_bar_charts_size_their_labels_and_draw_nothing_for_no_bars() -> None:
    assert bar_chart([]) == ""
    root = ET.fromstring(bar_chart([("GROW_INTERNAL", 12.0), ("WAIT", 3.0)], unit="%"))
    bars = {r.attrib["data-bar"]: float(r.attrib["width"]) for r in root.iter(f"{SVG}rect")}
    assert bars["GROW_INTERNAL"] == pytest.approx(4 * bars["WAIT"])
    assert re.search(r">12%</text>", bar_chart([("a", 12.0)], unit="%"))
