"""Static SVG charts for the HTML reports: round ("nice") tick values, axis labels, a log scale for quantities that
span decades, marker lanes with tooltips and episode boundaries. Pure functions: data in, SVG text out (no script,
no external reference); a chart with nothing to draw is the empty string, so callers leave its panel out.

Ticks are multiples of a step of 1, 2 or 5 x 10^k (linear) or powers of ten (log), the first and last tick bound
the axis, so every labelled value is a round number and the data never runs past the last label.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

Point = tuple[float, float]

NICE_MANTISSAS: Final = (1, 2, 5)
MIN_TICKS: Final = 3
MAX_TICKS: Final = 10
TARGET_TICKS: Final = 6
COLORS: Final = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#17becf", "#8c564b", "#e377c2")
DASHED_COLOR: Final = "#7f7f7f"  # a dashed series is a reference (a baseline), drawn grey
# Smaller magnitudes are no measurement (subnormals, rounding dust): a range narrower than this is widened, and a
# log axis cannot place a value below it.
TINY: Final = 1e-200
CHAR_WIDTH: Final = 6.5  # average glyph width at font-size 11, to size margins and legends without a browser


def _esc(value: object) -> str:
    return html.escape(str(value))


# ---------------------------------------------------------------- ticks
def _decimal(mantissa: int, exponent: int) -> float:
    """mantissa x 10^exponent as the double nearest that decimal (0.3, never 0.30000000000000004)."""
    return float(f"{mantissa}e{exponent}")


def _widen(lo: float, hi: float, *, integer: bool) -> tuple[float, float]:
    """A range wide enough to place ticks in: an integer axis spans at least 2 (centred on the data); a range too
    narrow for doubles to step through (a constant series, or one within TINY of zero) is padded by 5 % of its
    magnitude, or 1 at zero."""
    if integer and hi - lo < 2:
        pad = (2 - (hi - lo)) / 2
        return lo - pad, hi + pad
    if hi - lo <= max(1e-9 * max(abs(lo), abs(hi)), TINY):
        pad = 0.05 * abs(hi) or 1.0
        return lo - pad, hi + pad
    return lo, hi


def _stepped(lo: float, hi: float, mantissa: int, exponent: int) -> tuple[float, ...]:
    """The multiples of the step from the last one at or below `lo` to the first one at or above `hi`."""
    step = _decimal(mantissa, exponent)
    digits = max(0, -exponent)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    # division can land one step inside the range when lo or hi sits within an ulp of a multiple
    while round(first * step, digits) > lo:
        first -= 1
    while round(last * step, digits) < hi:
        last += 1
    return tuple(round(i * step, digits) + 0.0 for i in range(first, last + 1))  # + 0.0: no -0.0


def _candidate_steps(span: float, *, integer: bool) -> list[tuple[int, int]]:
    """(mantissa, exponent) of the steps that leave between 2 and 8 steps in `span`: some 1-2-5 step always does,
    since the candidates grow by at most 2.5x and the window is 4x wide."""
    low_exp = math.floor(math.log10(span / 8)) - 1
    high_exp = math.floor(math.log10(span / 2)) + 1
    steps = [(m, k) for k in range(low_exp, high_exp + 1) for m in NICE_MANTISSAS]
    return [(m, k) for m, k in steps if not integer or k >= 0]


def linear_ticks(lo: float, hi: float, *, integer: bool = False) -> tuple[float, ...]:
    """Round ticks covering [lo, hi]: multiples of a 1, 2 or 5 x 10^k step (whole numbers on an `integer` axis),
    MIN_TICKS to MAX_TICKS of them, as close to TARGET_TICKS as the steps allow."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"linear_ticks: need finite lo <= hi, got {lo}, {hi}")
    lo, hi = _widen(lo, hi, integer=integer)
    fitting = [
        ticks
        for m, k in _candidate_steps(hi - lo, integer=integer)
        if MIN_TICKS <= len(ticks := _stepped(lo, hi, m, k)) <= MAX_TICKS
    ]
    return min(fitting, key=lambda ticks: (abs(len(ticks) - TARGET_TICKS), len(ticks)))


def _decade_bounds(lo: float, hi: float) -> tuple[int, int]:
    """The exponents of the powers of ten at or below `lo` and at or above `hi` (log10 may be an ulp off)."""
    low, high = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    while _decimal(1, low) > lo:
        low -= 1
    while _decimal(1, high) < hi:
        high += 1
    return low, high


def _powers_of_ten(low: int, high: int) -> tuple[float, ...]:
    """Powers of ten from 10^low to 10^high, every `stride`-th exponent when all of them would be too many."""
    stride = 1
    while math.ceil(high / stride) - math.floor(low / stride) + 1 > MAX_TICKS:
        stride += 1
    first, last = math.floor(low / stride), math.ceil(high / stride)
    return tuple(_decimal(1, i * stride) for i in range(first, last + 1))


def _one_two_five(lo: float, hi: float, low: int, high: int) -> tuple[float, ...]:
    """The 1, 2, 5 x 10^k values from the last at or below `lo` to the first at or above `hi`."""
    values = [_decimal(m, k) for k in range(low, high + 1) for m in NICE_MANTISSAS]
    first = max(i for i, v in enumerate(values) if v <= lo)
    last = min(i for i, v in enumerate(values) if v >= hi)
    return tuple(values[first : last + 1])


def log_ticks(lo: float, hi: float) -> tuple[float, ...]:
    """Ticks for a log axis covering [lo, hi] (both > 0): powers of ten when the data spans two decades or more;
    1, 2, 5 x 10^k under that; plain round linear ticks when even those would be fewer than MIN_TICKS (data within
    a factor of about 2.5, where a log axis reads like a linear one)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or not TINY <= lo <= hi:
        raise ValueError(f"log_ticks: need finite 0 < TINY <= lo <= hi, got {lo}, {hi}")
    if hi / lo < 1 + 1e-9:  # constant: a range around it, as _widen does on a linear axis
        lo, hi = lo / 1.25, hi * 1.25
    low, high = _decade_bounds(lo, hi)
    if math.log10(hi / lo) >= 2:
        return _powers_of_ten(low, high)
    ticks = _one_two_five(lo, hi, low, high)
    return ticks if len(ticks) >= MIN_TICKS else linear_ticks(lo, hi)


def tick_labels(ticks: Sequence[float], *, log: bool = False) -> list[str]:
    """Labels written as briefly as each round tick allows: on a linear axis all with the same decimals (0.0, 0.5,
    1.0); on a log axis each its own (0.05, 0.1, 1, 10); exponent notation (1e-5, 2.5e6) for all of an axis once
    one of its ticks is outside 0.001 .. 1e6."""
    magnitudes = [abs(t) for t in ticks if t != 0]
    if magnitudes and (max(magnitudes) >= 1e6 or min(magnitudes) < 1e-3):
        return [_exponent_label(t) for t in ticks]
    if log:
        return [f"{t:.{_decimals(t)}f}" for t in ticks]
    decimals = max(_decimals(t) for t in ticks)
    return [f"{t:.{decimals}f}" for t in ticks]


def _decimals(value: float) -> int:
    """Decimals needed to write a round tick exactly (0.25 -> 2, 40 -> 0)."""
    text = f"{value:.10f}".rstrip("0")
    return len(text) - text.index(".") - 1


def _exponent_label(value: float) -> str:
    """1e-5, 2.5e6: the tick to 15 significant digits (more than any round tick has), trailing zeros dropped."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.14e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


# ---------------------------------------------------------------- axes and frames
@dataclass(frozen=True)
class Axis:
    """Ticks, the first and last of which bound the axis, on a linear or log10 scale."""

    ticks: tuple[float, ...]
    log: bool = False

    def fraction(self, value: float) -> float:
        """Where `value` sits between the first tick (0) and the last (1)."""
        lo, hi, v = self.ticks[0], self.ticks[-1], value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
        return (v - lo) / (hi - lo)


def axis(values: Sequence[float], *, log: bool = False, integer: bool = False) -> Axis:
    """An axis whose ticks cover `values` (on a log axis, all > 0)."""
    lo, hi = min(values), max(values)
    return Axis(log_ticks(lo, hi), log=True) if log else Axis(linear_ticks(lo, hi, integer=integer))


@dataclass(frozen=True)
class Frame:
    """The plot area in SVG pixels and the axes mapping data into it."""

    x: Axis
    y: Axis
    left: float
    top: float
    width: float
    height: float

    def sx(self, value: float) -> float:
        return self.left + self.x.fraction(value) * self.width

    def sy(self, value: float) -> float:
        return self.top + (1 - self.y.fraction(value)) * self.height


# ---------------------------------------------------------------- line charts
@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    dashed: bool = False  # a reference curve (a baseline): grey, dashed


@dataclass(frozen=True)
class Marker:
    """An event at x, drawn in the lane of its kind, with `title` as its tooltip."""

    x: float
    lane: str
    title: str


@dataclass(frozen=True)
class Boundary:
    """A dotted vertical line at x (where an episode starts), `label` written beside its top."""

    x: float
    label: str


@dataclass(frozen=True)
class Lane:
    name: str
    color: str
    shape: str  # one of SHAPES


SHAPES: Final = {
    "triangle": "M{x:.1f},{top:.1f} l4,8 h-8 z",
    "diamond": "M{x:.1f},{top:.1f} l4,4 l-4,4 l-4,-4 z",
    "square": "M{x0:.1f},{top1:.1f} h7 v7 h-7 z",
    "cross": "M{x0:.1f},{top1:.1f} l7,7 m0,-7 l-7,7",
}


@dataclass(frozen=True)
class LineChart:
    """What a line chart shows. `log_y` puts y on a log10 scale (values <= 0, or below TINY, cannot be placed
    there and are dropped, as gaps); `integer_x` keeps x ticks whole (epochs, episodes, updates). Markers sit in
    `lanes` (one row each, above the plot, in order; a lane without a marker is not drawn)."""

    series: Sequence[Series]
    x_label: str
    y_label: str
    log_y: bool = False
    integer_x: bool = True
    lanes: Sequence[Lane] = ()
    markers: Sequence[Marker] = ()
    boundaries: Sequence[Boundary] = ()
    width: int = 520
    plot_height: int = 180


LANE_HEIGHT: Final = 11
LINE_HEIGHT: Final = 15


def _drawable(chart: LineChart) -> list[Series]:
    """The series with points left once a log axis has dropped what it cannot place (y below TINY: 0, negative)."""
    kept = [
        Series(s.name, [(x, y) for x, y in s.points if y >= TINY] if chart.log_y else list(s.points), s.dashed)
        for s in chart.series
    ]
    return [s for s in kept if s.points]


@dataclass(frozen=True)
class _Layout:
    frame: Frame
    lanes: tuple[Lane, ...]  # the lanes that have markers, top to bottom
    lanes_top: float
    legend: list[tuple[float, float, Series]]  # (x, y, series) of each legend entry
    height: float


def _legend(series: Sequence[Series], left: float, width: float, top: float) -> list[tuple[float, float, Series]]:
    """Legend entries placed left to right, wrapping onto a new line before the right edge."""
    placed, x, y = [], left, top
    for s in series:
        entry = 20 + CHAR_WIDTH * len(s.name) + 14
        if x > left and x + entry > width:
            x, y = left, y + LINE_HEIGHT
        placed.append((x, y, s))
        x += entry
    return placed


def layout(chart: LineChart, series: Sequence[Series]) -> _Layout:
    """Margins sized to the tick and lane labels, marker lanes above the plot, the legend below the axis label."""
    xs = [x for s in series for x, _ in s.points] + [m.x for m in chart.markers] + [b.x for b in chart.boundaries]
    x_axis = axis(xs, integer=chart.integer_x)
    y_axis = axis([y for s in series for _, y in s.points], log=chart.log_y)
    used = {m.lane for m in chart.markers}
    lanes = tuple(lane for lane in chart.lanes if lane.name in used)
    label_chars = max(len(text) for text in tick_labels(y_axis.ticks, log=y_axis.log) + [lane.name for lane in lanes])
    left = 24 + CHAR_WIDTH * label_chars + 8  # rotated y label, then the widest tick or lane label
    lanes_top = 18 if chart.boundaries else 8  # room for the boundary labels
    top = lanes_top + LANE_HEIGHT * len(lanes) + (8 if lanes else 0)
    frame = Frame(x_axis, y_axis, left, top, chart.width - left - 16, chart.plot_height)
    legend = _legend(series, left, chart.width - 8, top + chart.plot_height + 46)
    height = legend[-1][1] + 8
    return _Layout(frame, lanes, lanes_top, legend, height)


def _attr_ticks(ticks: Sequence[float]) -> str:
    return " ".join(f"{t:g}" for t in ticks)


def line_chart(chart: LineChart) -> str:
    """An inline SVG line chart, or '' when no series has a point to draw. The SVG says what it drew:
    `data-scale`, `data-x-ticks`, `data-y-ticks`, each polyline's `data-series` and `data-points`, each marker's
    `data-mark` (its lane) with a <title>, each boundary's `data-boundary`; the plot area is `<rect data-plot>`."""
    unknown = {m.lane for m in chart.markers} - {lane.name for lane in chart.lanes}
    if unknown:
        raise ValueError(f"markers in lanes the chart does not have: {sorted(unknown)}")
    series = _drawable(chart)
    if not series:
        return ""
    lay = layout(chart, series)
    f = lay.frame
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {chart.width} {lay.height:.0f}" '
            f'width="{chart.width}" height="{lay.height:.0f}" font-size="11" role="img" '
            f'aria-label="{_esc(chart.y_label)} by {_esc(chart.x_label)}" '
            f'data-scale="{"log" if chart.log_y else "linear"}" data-x-ticks="{_attr_ticks(f.x.ticks)}" '
            f'data-y-ticks="{_attr_ticks(f.y.ticks)}">',
            f'<rect data-plot="" x="{f.left:.1f}" y="{f.top:.1f}" width="{f.width:.1f}" height="{f.height:.1f}" '
            'fill="#fff" stroke="#bbb"/>',
            *_y_axis(f, chart.y_label),
            *_x_axis(f, chart.x_label),
            *_lanes(f, lay.lanes, lay.lanes_top, chart.markers),
            *_boundaries(f, chart.boundaries, lay.lanes_top),
            *_series(f, series),
            *_legend_entries(lay.legend),
            "</svg>",
        ]
    )


def _y_axis(f: Frame, label: str) -> list[str]:
    parts = []
    for tick, text in zip(f.y.ticks, tick_labels(f.y.ticks, log=f.y.log), strict=True):
        y = f.sy(tick)
        parts.append(f'<line x1="{f.left:.1f}" x2="{f.left + f.width:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{f.left - 6:.1f}" y="{y + 4:.1f}" fill="#555" text-anchor="end">{text}</text>')
    middle = f.top + f.height / 2
    parts.append(
        f'<text x="12" y="{middle:.1f}" fill="#333" text-anchor="middle" transform="rotate(-90 12 {middle:.1f})">'
        f"{_esc(label)}</text>"
    )
    return parts


def _x_axis(f: Frame, label: str) -> list[str]:
    parts = []
    bottom = f.top + f.height
    for tick, text in zip(f.x.ticks, tick_labels(f.x.ticks), strict=True):
        x = f.sx(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom:.1f}" y2="{bottom + 4:.1f}" stroke="#888"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" fill="#555" text-anchor="middle">{text}</text>')
    parts.append(
        f'<text x="{f.left + f.width / 2:.1f}" y="{bottom + 32:.1f}" fill="#333" text-anchor="middle">'
        f"{_esc(label)}</text>"
    )
    return parts


def _colors(series: Sequence[Series]) -> list[str]:
    """Each series' colour: dashed ones grey, the others through COLORS in order (legend and lines agree)."""
    solid = [s for s in series if not s.dashed]
    return [DASHED_COLOR if s.dashed else COLORS[solid.index(s) % len(COLORS)] for s in series]


def _dash(series: Series) -> str:
    return ' stroke-dasharray="6 4"' if series.dashed else ""


def _series(f: Frame, series: Sequence[Series]) -> list[str]:
    parts = []
    for s, color in zip(series, _colors(series), strict=True):
        path = " ".join(f"{f.sx(x):.1f},{f.sy(y):.1f}" for x, y in s.points)
        if len(s.points) == 1:  # a polyline of one point draws nothing
            x, y = s.points[0]
            parts.append(f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="3" fill="{color}"/>')
        parts.append(
            f'<polyline data-series="{_esc(s.name)}" data-points="{len(s.points)}" points="{path}" fill="none" '
            f'stroke="{color}" stroke-width="1.5"{_dash(s)}/>'
        )
    return parts


def _legend_entries(legend: Sequence[tuple[float, float, Series]]) -> list[str]:
    parts = []
    colors = _colors([s for _, _, s in legend])
    for (x, y, s), color in zip(legend, colors, strict=True):
        parts.append(
            f'<line x1="{x:.1f}" x2="{x + 16:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" stroke="{color}" '
            f'stroke-width="2"{_dash(s)}/>'
        )
        parts.append(f'<text x="{x + 20:.1f}" y="{y:.1f}" fill="#333">{_esc(s.name)}</text>')
    return parts


def _marker_path(shape: str, x: float, top: float) -> str:
    return SHAPES[shape].format(x=x, top=top + 1, x0=x - 3.5, top1=top + 1.5)


def _lanes(f: Frame, lanes: Sequence[Lane], lanes_top: float, markers: Sequence[Marker]) -> list[str]:
    """One row per lane above the plot: its name at the left, its markers at their x, each with a tooltip.
    Markers at the same x in the same lane are spread a few pixels apart so each stays hoverable."""
    parts = []
    for row, lane in enumerate(lanes):
        top = lanes_top + LANE_HEIGHT * row
        parts.append(
            f'<text x="{f.left - 6:.1f}" y="{top + 9:.1f}" fill="{lane.color}" text-anchor="end" font-size="10">'
            f"{_esc(lane.name)}</text>"
        )
        earlier: Counter[float] = Counter()  # markers already drawn at each x in this lane
        for marker in (m for m in markers if m.lane == lane.name):
            x = f.sx(marker.x) + 4 * earlier[marker.x]
            earlier[marker.x] += 1
            fill = (
                f'fill="none" stroke="{lane.color}" stroke-width="2"'
                if lane.shape == "cross"
                else (f'fill="{lane.color}"')
            )
            parts.append(
                f'<path data-mark="{_esc(lane.name)}" d="{_marker_path(lane.shape, x, top)}" {fill}>'
                f"<title>{_esc(marker.title)}</title></path>"
            )
    return parts


def _boundaries(f: Frame, boundaries: Sequence[Boundary], lanes_top: float) -> list[str]:
    """Dotted lines through the lanes and the plot; a label beside each, unless it would run into the next."""
    parts = []
    xs = [f.sx(b.x) for b in boundaries]
    for i, (b, x) in enumerate(zip(boundaries, xs, strict=True)):
        parts.append(
            f'<line data-boundary="{_esc(b.label)}" x1="{x:.1f}" x2="{x:.1f}" y1="{lanes_top - 2:.1f}" '
            f'y2="{f.top + f.height:.1f}" stroke="#999" stroke-dasharray="2 3"><title>{_esc(b.label)} starts'
            "</title></line>"
        )
        room = (xs[i + 1] if i + 1 < len(xs) else f.left + f.width + 16) - x
        if room >= CHAR_WIDTH * 0.9 * len(b.label) + 6:
            parts.append(
                f'<text x="{x + 3:.1f}" y="{lanes_top - 5:.1f}" fill="#777" font-size="10">{_esc(b.label)}</text>'
            )
    return parts


# ---------------------------------------------------------------- bar charts
def bar_chart(items: Sequence[tuple[str, float]], *, unit: str = "", width: int = 520) -> str:
    """Horizontal bars, one per (label, value >= 0), the value written after each; '' when there are none."""
    if not items:
        return ""
    row = 20
    label_width = CHAR_WIDTH * 1.1 * max(len(label) for label, _ in items) + 10
    value_room = CHAR_WIDTH * 1.1 * max(len(f"{value:.4g}{unit}") for _, value in items) + 10
    top = max(value for _, value in items) or 1.0
    height = row * len(items) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" font-size="12">'
    ]
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        length = max(0.0, (width - label_width - value_room) * value / top)
        parts.append(f'<text x="0" y="{y + 13}" fill="#333">{_esc(label)}</text>')
        parts.append(
            f'<rect data-bar="{_esc(label)}" x="{label_width:.1f}" y="{y + 3}" width="{length:.1f}" height="12" '
            f'fill="{COLORS[0]}"><title>{_esc(label)}: {value:.4g}{_esc(unit)}</title></rect>'
        )
        parts.append(
            f'<text x="{label_width + length + 6:.1f}" y="{y + 13}" fill="#555">{value:.4g}{_esc(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def lanes_for(kinds: Mapping[str, str]) -> tuple[Lane, ...]:
    """Lanes named after `kinds` (name -> colour), shapes in SHAPES order."""
    return tuple(Lane(name, color, shape) for (name, color), shape in zip(kinds.items(), SHAPES, strict=False))
