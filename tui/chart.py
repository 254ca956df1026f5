"""Curves drawn with plotext 6 braille markers, returned as rich Text.

A chart is a stack of panels, one per metric, each on its own y scale (a barrier
coefficient of 3 never shares an axis with a gradient norm of 80). Convergence
measures (1 - mean |cos|, errors) are always drawn on a log axis, where 1e-2 becoming
1e-3 is visible. The y range is that of the visible x range only; ticks come from the
shared tick module (renderers.ticks), as in the figures.

plotext keeps one global figure; only the UI thread calls `render_chart`, so it is
never drawn from two threads. plotext's own log scale is not trusted: log-y plots
log10 of the positive values and labels the ticks with the original numbers.

The chart list and the number formats are used by the first frame, so numpy (and
plotext) are imported only inside the functions that draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    import numpy as np

    from tui.series import MetricStore

# 256-colour indexes: distinct on dark and light backgrounds, mapped to truecolor by Textual;
# ten, so ten overlaid runs have ten colours (more cycle).
PALETTE = (39, 208, 77, 170, 220, 203, 99, 37, 130, 247)
# Markers that stay distinguishable when there is no colour (NO_COLOR).
MONO_MARKERS = ("braille", "•", "+", "x", "o", "*")


@dataclass(frozen=True)
class Metric:
    """One panel of a chart: a metrics.jsonl key, how to show it, and its axis."""

    key: str
    label: str
    one_minus: bool = False  # plot 1 - value (|cos| -> distance from perfect)
    log: bool = False  # always a log axis: a convergence measure
    interval: str = "any"  # a group's band, as allo compare takes it (grouping.INTERVALS)


@dataclass(frozen=True)
class Chart:
    """One selectable chart: a title and the metrics it stacks, each on its own scale."""

    key: str
    title: str
    metrics: tuple[Metric, ...]


CHARTS: tuple[Chart, ...] = (
    Chart("cos", "convergence to ground truth", (
        Metric("cos/mean", "1 − mean |cos|", one_minus=True, log=True, interval="positive"),
        Metric("cos_strict/mean", "1 − strict |cos|", one_minus=True, log=True,
               interval="positive"),
        Metric("cos/mean", "mean |cos|", interval="unit"),
    )),
    Chart("loss", "losses", (
        Metric("loss/total", "total"),
        Metric("loss/graph", "graph"),
        Metric("loss/dual", "dual"),
        Metric("loss/barrier", "barrier"),
    )),
    Chart("orth", "orthogonality error ||h||_F", (
        Metric("orth/error", "orth error", log=True, interval="positive"),
    )),
    Chart("eig", "eigenvalue errors", (
        Metric("eig/mean_abs_error", "mean abs", log=True, interval="positive"),
        Metric("eig/mean_rel_error", "mean rel", log=True, interval="positive"),
    )),
    Chart("grad", "gradient norm, barrier coef", (
        Metric("grad/norm", "grad norm", interval="positive"),
        Metric("barrier/coef", "barrier b"),
    )),
)  # fmt: skip

PANEL_MIN_ROWS = 6  # title line + plotext's frame, 3 rows of data and the x labels


def format_number(value: float | None) -> str:
    """Compact numbers for legends and tables: 4 decimals near 1, exponents when tiny."""
    if value is None or not math.isfinite(value):
        return "—"
    magnitude = abs(value)
    if magnitude < 1e-12:  # e.g. the first Laplacian eigenvalue, 0 up to rounding
        return "0"
    if magnitude < 1e-3 or magnitude >= 1e6:
        # "-1.3e-4", not "-1.3e-04": 7 characters fit the eigenvalue table's columns.
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if magnitude < 10:
        return f"{value:.4f}"
    if magnitude < 1000:
        return f"{value:.2f}"
    return f"{value:.0f}"


def format_percent(fraction: float | None) -> str:
    """A relative error in at most 5 characters: 0.4%, 12.3%, 250%, 55x, >999x."""
    if fraction is None or not math.isfinite(fraction):
        return "—"
    if round(fraction * 100, 1) < 100:
        return f"{fraction:.1%}"
    if round(fraction * 100) < 1000:
        return f"{fraction:.0%}"
    if round(fraction) < 1000:
        return f"{fraction:.0f}x"
    return ">999x"


def step_label(step: float) -> str:
    """Axis labels for steps: 950, 12k, 1.5M."""
    step = float(step)
    if abs(step) >= 1e6:
        return f"{step / 1e6:g}M"
    if abs(step) >= 1e4:
        return f"{step / 1e3:g}k"
    return f"{step:g}"


@dataclass
class View:
    """What part of the data a chart shows and how: shared by every panel."""

    log_y: bool = False  # log axis for panels that are not always log
    smooth: bool = False  # debiased EMA
    x_window: tuple[float, float] = (0.0, 1.0)  # visible fraction of the x extent
    cursor: float | None = None  # fraction of the visible x range, or None
    time_axis: bool = False  # wall-clock seconds instead of steps


@dataclass
class Line:
    """One series of a panel: a run, or a group's mean with its band."""

    label: str
    color: int  # index into PALETTE (and MONO_MARKERS)
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None = None  # band (same x), e.g. a 95% interval
    high: np.ndarray | None = None
    latest: float | None = None


@dataclass
class Panel:
    title: str
    log: bool
    lines: list[Line]


# Learned vectors are float32: 1 - |cos| below their resolution is rounding, not progress,
# and is drawn at this floor rather than stretching a log axis down to 1e-16.
ONE_MINUS_FLOOR = 1e-7


def metric_values(metric: Metric, values: np.ndarray) -> np.ndarray:
    if not metric.one_minus:
        return values
    import numpy as np

    return np.maximum(1.0 - values, ONE_MINUS_FLOOR)


def x_of(store: MetricStore, steps: np.ndarray, time_axis: bool) -> np.ndarray:
    """Steps, or the run's training time at those steps (interpolated between rows)."""
    import numpy as np

    if not time_axis:
        return steps.astype(np.float64)
    time_steps, times = store.get("time")
    if len(times) == 0:
        return np.full(len(steps), np.nan)
    return np.interp(steps, time_steps, times)


def store_panels(store: MetricStore, chart: Chart, view: View) -> list[Panel]:
    """One panel per metric that has data (one line each), for the single-run screen."""
    panels = []
    for index, metric in enumerate(chart.metrics):
        steps, values = store.get(metric.key)
        if not len(steps):
            continue
        values = metric_values(metric, values)
        line = Line(metric.label, index, x_of(store, steps, view.time_axis), values,
                    latest=float(values[-1]))
        panels.append(Panel(metric.label, metric.log, [line]))
    return panels


def x_extent(panels: list[Panel]) -> tuple[float, float] | None:
    import numpy as np

    xs = [line.x[np.isfinite(line.x)] for p in panels for line in p.lines]
    xs = [x for x in xs if len(x)]
    if not xs:
        return None
    return float(min(x.min() for x in xs)), float(max(x.max() for x in xs))


def visible_range(extent: tuple[float, float], window: tuple[float, float]
                  ) -> tuple[float, float]:
    lo, hi = extent
    span = hi - lo
    a, b = window
    return lo + a * span, lo + b * span


@dataclass
class Drawn:
    """A line ready to draw: visible, smoothed, log-transformed, downsampled."""

    line: Line
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    hidden: int  # points dropped (non-positive under a log axis)
    at_cursor: float | None


def prepare(line: Line, log: bool, view: View, x_range: tuple[float, float],
            width: int) -> Drawn:
    import numpy as np

    from tui.series import ema, minmax_downsample

    x, y = line.x, line.y
    low, high = line.low, line.high
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    low = low[keep] if low is not None else None
    high = high[keep] if high is not None else None
    if view.smooth and len(y) > 2:
        y = ema(y)
    cursor_value = None
    if view.cursor is not None and len(x):
        at = x_range[0] + view.cursor * (x_range[1] - x_range[0])
        if x[0] <= at <= x[-1]:
            cursor_value = float(np.interp(at, x, y))
    inside = (x >= x_range[0]) & (x <= x_range[1])
    x, y = x[inside], y[inside]
    low = low[inside] if low is not None else None
    high = high[inside] if high is not None else None
    hidden = 0
    if log:
        positive = y > 0
        hidden = int((~positive).sum())
        x, y = x[positive], np.log10(y[positive])
        if low is not None and high is not None:
            low, high = low[positive], high[positive]
            low = np.log10(np.where(low > 0, low, np.nan))
            high = np.log10(np.where(high > 0, high, np.nan))
    points = max(8, 2 * width)
    if low is not None and high is not None and len(x) > points:
        picks = np.linspace(0, len(x) - 1, points).astype(int)  # a band: even thinning
        x, y, low, high = x[picks], y[picks], low[picks], high[picks]
    else:
        x, y = minmax_downsample(x.astype(np.float64), y, points)
    return Drawn(line, x, y, low, high, hidden, cursor_value)


def y_limits(drawn: list[Drawn], log: bool) -> tuple[float, float] | None:
    """The lines' range: a band (two seeds' t interval spans decades) is drawn inside
    it, cut at the edges, so it never flattens the lines it is about."""
    parts = [d.y for d in drawn if len(d.y)]
    if not parts:
        return None
    lo = float(min(p.min() for p in parts))
    hi = float(max(p.max() for p in parts))
    if hi - lo < 1e-12:
        pad = 0.5 if log else max(abs(lo) * 0.05, 1e-6)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def y_ticks(lo: float, hi: float, log: bool, rows: int) -> tuple[list[float], list[str]]:
    """Positions (log10 units on a log axis) and labels, from renderers.ticks."""
    from renderers.ticks import format_tick, log_ticks, nice_ticks

    most = max(2, (rows + 1) // 2)  # a label every other row at the densest
    count = max(2, min(6, most))
    if log:
        values = log_ticks(10.0**lo, 10.0**hi)
        if len(values) < 2:  # inside one decade: linear ticks of the values
            values = [v for v in nice_ticks(10.0**lo, 10.0**hi, count) if v > 0]
        values = _thinned(values, most)
        return [math.log10(v) for v in values], [format_tick(v, log=True) for v in values]
    for asked in range(count, 0, -1):  # the most round ticks that fit the rows
        values = [v for v in nice_ticks(lo, hi, asked) if lo - 1e-12 <= v <= hi + 1e-12]
        if len(values) <= most:
            break
    values = _thinned(values, most)  # even the roundest ticks can outnumber a short panel's rows
    return values, [format_tick(v) for v in values]


def _thinned(values: list[float], most: int) -> list[float]:
    """Every k-th tick so that at most `most` remain (labels never share a row)."""
    if len(values) <= most:
        return values
    stride = -(-len(values) // most)
    return values[::stride]


def x_labels(lo: float, hi: float, width: int, time_axis: bool) -> tuple[list[float], list[str]]:
    from renderers.ticks import nice_ticks

    ticks = nice_ticks(lo, hi, max(2, min(7, width // 12)))
    ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
    label = time_label if time_axis else step_label
    return ticks, [label(t) for t in ticks]


def time_label(seconds: float) -> str:
    """Axis labels for wall time: 45s, 2:30, 1:05:00."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def swatch(index: int, color: bool) -> Text:
    if color:
        return Text("━━", style=f"color({PALETTE[index % len(PALETTE)]})")
    return Text(MONO_MARKERS[index % len(MONO_MARKERS)].replace("braille", "⠿") * 2)


def panel_title(panel: Panel, drawn: list[Drawn], color: bool, width: int,
                cursor: bool, log: bool) -> Text:
    """The panel's name; with one line, its latest (or at-cursor) value beside it."""
    title = Text(no_wrap=True, overflow="ellipsis")
    if len(panel.lines) == 1 and drawn:
        d = drawn[0]
        title.append_text(swatch(d.line.color, color))
        title.append(" ")
    title.append(panel.title, style="bold")
    if log:
        title.append(" (log)", style="dim")
    if len(panel.lines) == 1 and drawn:
        d = drawn[0]
        value = d.at_cursor if cursor else d.line.latest
        title.append(("  at cursor " if cursor else "  ") + format_number(value))
        if d.hidden:
            title.append(" (≤0 hidden)" if not len(d.x) else " (some ≤0 hidden)", "dim")
    title.truncate(width)
    return title


def draw_panel(panel: Panel, width: int, height: int, view: View,
               x_range: tuple[float, float], color: bool, x_axis: bool = True) -> Text:
    """Title line and plot of one panel, `height` rows at most."""
    import numpy as np
    import plotext  # imported late: slow to import, kept off the first-paint path

    log = panel.log or view.log_y
    drawn = [prepare(line, log, view, x_range, width) for line in panel.lines]
    title = panel_title(panel, drawn, color, width, view.cursor is not None, log)
    visible = [d for d in drawn if len(d.x)]
    limits = y_limits(visible, log)
    if limits is None or width < 20 or height < 4:
        note = "no data in this x range" if limits is None else "(too small to plot)"
        return _joined(title, Text(note, style="dim"))
    y_lo, y_hi = limits
    figure = plotext.figure
    plotext.terminal.limit(False, False)
    figure.clear()
    figure.theme("simple")
    figure.plot_size(width, height - 1)
    figure.legend(active=False)
    for d in visible:
        index = d.line.color
        pixel = plotext.pixel(foreground=PALETTE[index % len(PALETTE)]) if color else None
        for band in (d.low, d.high):
            if band is not None and np.isfinite(band).any():
                ok = np.isfinite(band)
                edge = figure.signal(d.x[ok].tolist(), band[ok].tolist(),
                                     marker=plotext.marker("dot" if color else "·", pixel))
                figure.draw(edge)
        marker = "braille" if color else MONO_MARKERS[index % len(MONO_MARKERS)]
        signal = figure.signal(d.x.tolist(), d.y.tolist(), marker=plotext.marker(marker, pixel))
        signal.lines(True)
        figure.draw(signal)
    x_lo, x_hi = x_range
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    if view.cursor is not None:
        at = x_lo + view.cursor * (x_hi - x_lo)
        bar = figure.signal([at, at], [y_lo, y_hi], marker=plotext.marker("│", None))
        bar.lines(True)
        figure.draw(bar)
    figure.ruler("x").lim(x_lo, x_hi)
    figure.ruler("y").lim(y_lo, y_hi)
    positions, labels = y_ticks(y_lo, y_hi, log, height - 4)
    figure.ruler("y").ticks(positions, labels)
    if x_axis:
        ticks, tick_labels = x_labels(x_lo, x_hi, width, view.time_axis)
        figure.ruler("x").ticks(ticks, tick_labels)
    else:
        figure.ruler("x").ticks([], [])
    ansi = figure.build().string(colorless=not color)
    plot = Text.from_ansi(ansi, no_wrap=True)
    plot.rstrip()
    return _joined(title, plot)


def render_panels(panels: list[Panel], width: int, height: int, view: View,
                  color: bool = True, header: Text | None = None) -> Text:
    """Panels stacked (or side by side when short and wide), each on its own y scale,
    all on the same visible x range; `height` rows at most."""
    extent = x_extent(panels)
    parts = [header] if header is not None else []
    room = height - (header.plain.count("\n") + 1 if header is not None else 0)
    if extent is None:
        return _joined(*parts, Text("waiting for metrics…", style="dim"))
    x_range = visible_range(extent, view.x_window)
    across = 1
    while (room // -(-len(panels) // across) < PANEL_MIN_ROWS
           and width // (across + 1) >= 36 and across < len(panels)):
        across += 1
    shown = min(len(panels), across * max(1, room // PANEL_MIN_ROWS))
    if shown < len(panels):  # a row to name the panels left out
        room -= 1
        shown = min(len(panels), across * max(1, room // PANEL_MIN_ROWS))
    rows_each = max(4, room // max(1, -(-shown // across)))
    col_width = (width - (across - 1)) // across
    grid_rows: list[Text] = []
    for top in range(0, shown, across):
        row_panels = panels[top : top + across]
        texts = [draw_panel(p, col_width, rows_each, view, x_range, color) for p in row_panels]
        grid_rows.append(_side_by_side(texts, col_width))
    if shown < len(panels):
        more = ", ".join(p.title for p in panels[shown:])
        grid_rows.append(Text(f"+ {more} (taller terminal, or t)", style="dim"))
    return _joined(*parts, *grid_rows)


def _side_by_side(texts: list[Text], width: int) -> Text:
    if len(texts) == 1:
        return texts[0]
    split = [t.split("\n") for t in texts]
    rows = max(len(s) for s in split)
    out = []
    for r in range(rows):
        line = Text(no_wrap=True)
        for i, s in enumerate(split):
            cell = s[r].copy() if r < len(s) else Text()
            cell.truncate(width, pad=True)
            if i:
                line.append(" ")
            line.append_text(cell)
        out.append(line)
    return _joined(*out)


def render_chart(
    store: MetricStore,
    chart: Chart,
    width: int,
    height: int,
    *,
    log_y: bool = False,
    smooth: bool = False,
    color: bool = True,
    view: View | None = None,
) -> Text:
    """The single-run chart as rich Text of `height` lines at most."""
    view = view or View(log_y=log_y, smooth=smooth)
    return render_panels(store_panels(store, chart, view), width, height, view, color)


def _joined(*parts: Text) -> Text:
    text = Text("\n", no_wrap=True, overflow="crop").join(parts)
    text.no_wrap, text.overflow = True, "crop"
    return text


def chart_by_key(key: str) -> Chart:
    for chart in CHARTS:
        if chart.key == key:
            return chart
    raise KeyError(key)
