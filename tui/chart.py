"""Curves drawn with plotext 6 braille markers, returned as rich Text.

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

# 256-colour indexes: distinct on dark and light backgrounds, mapped to truecolor by Textual.
PALETTE = (39, 208, 77, 170, 220, 203)
# Markers that stay distinguishable when there is no colour (NO_COLOR).
MONO_MARKERS = ("braille", "•", "+", "x", "o", "*")


@dataclass(frozen=True)
class Chart:
    """One selectable chart: a title and the metrics it overlays."""

    key: str
    title: str
    metrics: tuple[tuple[str, str], ...]  # (metrics.jsonl key, legend label)


CHARTS: tuple[Chart, ...] = (
    Chart("cos", "mean |cos| to ground truth", (("cos/mean", "mean |cos|"),)),
    Chart(
        "loss",
        "losses",
        (
            ("loss/total", "total"),
            ("loss/graph", "graph"),
            ("loss/dual", "dual"),
            ("loss/barrier", "barrier"),
        ),
    ),
    Chart("orth", "orthogonality error ||h||_F", (("orth/error", "orth error"),)),
    Chart(
        "eig",
        "eigenvalue errors",
        (("eig/mean_abs_error", "mean abs"), ("eig/mean_rel_error", "mean rel")),
    ),
    Chart(
        "grad",
        "gradient norm, barrier coef",
        (("grad/norm", "grad norm"), ("barrier/coef", "barrier b")),
    ),
)


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


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Round tick positions (1, 2, 5 times a power of ten) inside [lo, hi]."""
    if hi <= lo or count < 1:
        return [lo]
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def decade_label(exponent: float) -> str:
    value = 10.0**exponent
    if -3 <= exponent <= 4:
        return f"{value:g}"
    return f"1e{int(round(exponent))}" if float(exponent).is_integer() else f"{value:.0e}"


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions (in log10 units) and labels in original units for [lo, hi]."""
    first, last = math.floor(lo), math.ceil(hi)
    positions: list[float] = []
    if last - first <= 1:
        # Less than a decade on screen: 1, 2, 5 steps so there are still labels.
        for decade in range(first, last + 1):
            for mult in (1, 2, 5):
                position = decade + math.log10(mult)
                if lo - 1e-9 <= position <= hi + 1e-9:
                    positions.append(position)
    else:
        step = max(1, math.ceil((last - first) / 6))
        positions = [float(e) for e in range(first, last + 1, step) if lo - 1e-9 <= e <= hi + 1e-9]
    if not positions:
        positions = [lo, hi]
    labels = [decade_label(p) if float(p).is_integer() else f"{10.0**p:.2g}" for p in positions]
    return positions, labels


@dataclass
class ChartLine:
    label: str
    x: np.ndarray
    y: np.ndarray
    latest: float | None
    hidden: int  # points dropped (non-positive under log-y)


def prepare_lines(
    store: MetricStore, chart: Chart, width: int, log_y: bool, smooth: bool
) -> list[ChartLine]:
    """Series of a chart ready to draw: smoothed, log-transformed, downsampled."""
    import numpy as np

    from tui.series import ema, minmax_downsample

    lines = []
    for key, label in chart.metrics:
        x, y = store.get(key)
        latest = float(y[-1]) if len(y) else None
        finite = np.isfinite(y)
        x, y = x[finite], y[finite]
        if smooth and len(y) > 2:
            y = ema(y)
        hidden = 0
        if log_y:
            positive = y > 0
            hidden = int((~positive).sum())
            x, y = x[positive], np.log10(y[positive])
        x, y = minmax_downsample(x.astype(np.float64), y, max(8, 2 * width))
        lines.append(ChartLine(label, x, y, latest, hidden))
    return lines


def legend_text(lines: list[ChartLine], color: bool, width: int = 200) -> Text:
    """Swatch, label and latest raw value per series, wrapped onto as few lines as fit."""
    items = []
    for i, line in enumerate(lines):
        item = Text(no_wrap=True)
        swatch = "━━" if color else MONO_MARKERS[i % len(MONO_MARKERS)].replace("braille", "⠿")
        item.append(swatch + " ", style=f"color({PALETTE[i % len(PALETTE)]})" if color else "")
        item.append(f"{line.label} ")
        item.append(format_number(line.latest), style="bold")
        if line.hidden:
            item.append(" (≤0 hidden)" if not len(line.x) else " (some ≤0 hidden)", "dim")
        items.append(item)
    rows: list[Text] = [Text(no_wrap=True, overflow="ellipsis")]
    for item in items:
        row = rows[-1]
        if row.cell_len and row.cell_len + 2 + item.cell_len > width:
            rows.append(Text(no_wrap=True, overflow="ellipsis"))
            row = rows[-1]
        if row.cell_len:
            row.append("  ")
        row.append_text(item)
    return _joined(*rows)


def render_chart(
    store: MetricStore,
    chart: Chart,
    width: int,
    height: int,
    *,
    log_y: bool = False,
    smooth: bool = False,
    color: bool = True,
) -> Text:
    """The chart (legend line + plot) as rich Text of exactly `height` lines at most."""
    import numpy as np
    import plotext  # imported late: ~0.35 s, kept off the first-paint path

    lines = prepare_lines(store, chart, width, log_y, smooth)
    legend = legend_text(lines, color, width)
    legend_rows = legend.plain.count("\n") + 1
    drawable = [line for line in lines if len(line.x)]
    if not drawable or width < 20 or height < 4 + legend_rows:
        note = "waiting for metrics…" if not drawable else "(too small to plot)"
        return _joined(legend, Text(note, style="dim"))

    figure = plotext.figure
    plotext.terminal.limit(False, False)
    figure.clear()
    figure.theme("simple")
    figure.plot_size(width, height - legend_rows)
    figure.legend(active=False)
    for line in drawable:
        index = lines.index(line)
        marker = "braille" if color else MONO_MARKERS[index % len(MONO_MARKERS)]
        pixel = plotext.pixel(foreground=PALETTE[index % len(PALETTE)]) if color else None
        signal = figure.signal(
            line.x.tolist(), line.y.tolist(), marker=plotext.marker(marker, pixel)
        )
        signal.lines(True)
        figure.draw(signal)
    xs = np.concatenate([line.x for line in drawable])
    ys = np.concatenate([line.y for line in drawable])
    x_lo, x_hi = float(xs.min()), float(xs.max())
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    figure.ruler("x").lim(x_lo, x_hi)
    y_lo, y_hi = float(ys.min()), float(ys.max())
    if y_hi - y_lo < 1e-12:
        pad = 0.5 if log_y else max(abs(y_lo) * 0.05, 1e-6)
        y_lo, y_hi = y_lo - pad, y_hi + pad
    figure.ruler("y").lim(y_lo, y_hi)
    if log_y:
        positions, labels = log_ticks(y_lo, y_hi)
        figure.ruler("y").ticks(positions, labels)
    x_ticks = nice_ticks(x_lo, x_hi, max(2, min(7, width // 12)))
    figure.ruler("x").ticks(x_ticks, [step_label(t) for t in x_ticks])
    figure.ruler("y").frequency(max(2, min(5, (height - 4) // 3)))
    ansi = figure.build().string(colorless=not color)
    plot = Text.from_ansi(ansi, no_wrap=True)
    plot.rstrip()
    return _joined(legend, plot)


def _joined(*parts: Text) -> Text:
    text = Text("\n", no_wrap=True, overflow="crop").join(parts)
    text.no_wrap, text.overflow = True, "crop"
    return text


def chart_by_key(key: str) -> Chart:
    for chart in CHARTS:
        if chart.key == key:
            return chart
    raise KeyError(key)
