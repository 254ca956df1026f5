"""Every curve panel's axes settled once: view range, ticks and their labels (pure).

`settle(figure, size)` runs before any renderer sees a curve figure, so matplotlib's
PNG, SVG and PDF and the text renderer draw the same view with the same ticks. The
choices are matplotlib's own (renderers/ticks.py): its autoscale margins, MaxNLocator
with nbins from the panel's length and the tick font, LogLocator on log axes. Step axes
span exactly the data (no margin), as a training curve's x axis should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from renderers import style as styles
from renderers import ticks


@dataclass
class Axis:
    scale: str  # linear | log | symlog
    view: tuple[float, float]
    ticks: list[float]
    labels: list[str]  # plain text (unicode superscripts on log axes)
    mathtext: list[str] = field(default_factory=list)  # the same for matplotlib
    linthresh: float = 1.0  # symlog only: the linear range around 0


def symlog(values, linthresh: float) -> np.ndarray:
    """matplotlib's symlog transform (base 10, linscale 1), for renderers that plot
    transformed values themselves."""
    values = np.asarray(values, dtype=np.float64)
    lin = 1.0 / (1.0 - 0.1)
    inside = np.abs(values) <= linthresh
    with np.errstate(divide="ignore", invalid="ignore"):
        outer = np.sign(values) * linthresh * (lin + np.log10(np.abs(values) / linthresh))
    return np.where(inside, values * lin, outer)


def symlog_inverse(values, linthresh: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    lin = 1.0 / (1.0 - 0.1)
    inside = np.abs(values) <= linthresh * lin
    outer = np.sign(values) * linthresh * 10 ** (np.abs(values) / linthresh - lin)
    return np.where(inside, values / lin, outer)


def _finite(panel, log: bool) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for line in panel.lines:
        steps = np.asarray(line.steps, dtype=np.float64)
        series = [np.asarray(line.values, dtype=np.float64)]
        if line.band is not None:
            series += [np.asarray(b, dtype=np.float64) for b in line.band]
        for values in series:
            ok = np.isfinite(values) & np.isfinite(steps) & ((values > 0) if log else True)
            xs.append(steps[ok])
            ys.append(values[ok])
    if not xs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)


# Width of a digit in the figures' font (DejaVu Sans: 0.636 em), and the least gap between
# two step labels, in em.
DIGIT_EM, LABEL_GAP_EM = 0.64, 0.5


def labels_fit(axis: Axis, length_pt: float, font: float) -> bool:
    """Whether neighbouring tick labels, centred on their ticks, keep a gap between them."""
    if len(axis.ticks) < 2:
        return True
    spacing = length_pt * (axis.ticks[1] - axis.ticks[0]) / (axis.view[1] - axis.view[0])
    widest = max(len(label) for label in axis.labels)
    return spacing >= (widest * DIGIT_EM + LABEL_GAP_EM) * font


def x_axis(steps: np.ndarray, length_pt: float, font: float) -> Axis:
    """matplotlib's step ticks, with fewer bins where its labels would run into each other
    (its 'auto' bins count label heights, not widths: 200000-step runs overprinted)."""
    low, high = (float(steps.min()), float(steps.max())) if len(steps) else (0.0, 1.0)
    if low == high:
        low, high = ticks.padded_range(low, high)
    bins = ticks.auto_bins(length_pt, font, "x")
    while True:
        shown = ticks.nice_ticks(low, high, bins, integer=True)
        labels = ticks.scalar_labels(shown, (low, high))
        axis = Axis("linear", (low, high), shown, labels, labels)
        if bins == 1 or labels_fit(axis, length_pt, font):
            return axis
        bins -= 1


def y_axis(panel, values: np.ndarray, length_pt: float, font: float) -> Axis:
    bins = ticks.auto_bins(length_pt, font, "y")
    if panel.symlog is not None:
        return _symlog_axis(panel, values, panel.symlog, bins)
    log = panel.log_y
    if panel.ylim is not None:
        view = panel.ylim
    elif len(values):
        view = ticks.padded_range(float(values.min()), float(values.max()), log)
    else:
        view = (1e-3, 1.0) if log else (0.0, 1.0)
    if log:
        shown = ticks.log_ticks(view[0], view[1], numticks=max(2, bins))
        if not all(ticks.is_log_tick(v) for v in shown):
            labels = ticks.scalar_labels(shown, view)
            return Axis("log", view, shown, labels, labels)
        return Axis("log", view, shown, [ticks.log_label(v) for v in shown],
                    [ticks.log_label(v, mathtext=True) for v in shown])
    shown = ticks.nice_ticks(view[0], view[1], bins)
    labels = ticks.scalar_labels(shown, view)
    return Axis("linear", view, shown, labels, labels)


def _symlog_axis(panel, values: np.ndarray, linthresh: float, bins: int) -> Axis:
    """0 and the signed decades from linthresh out, every k-th so that at most `bins`+1
    show; the view is the data's symlog range with 5% margins."""
    if len(values):
        low, high = symlog([values.min(), values.max()], linthresh)
    else:
        low, high = -1.0, 1.0
    view_t = ticks.padded_range(float(low), float(high))
    view = tuple(float(v) for v in symlog_inverse(view_t, linthresh))
    top = math.ceil(math.log10(max(abs(view[0]), abs(view[1]), linthresh)))
    first = math.floor(math.log10(linthresh))
    candidates = [0.0] + [s * 10.0**k for k in range(first, top + 1) for s in (-1, 1)]
    inside = sorted(v for v in candidates if view[0] <= v <= view[1])
    stride = 1
    while len(inside[::stride]) > bins + 1:
        stride += 1
    decades = sorted({abs(v) for v in inside if v != 0}, reverse=True)[::stride]
    shown = sorted(v for v in inside if v == 0 or abs(v) in decades)
    labels = ["0" if v == 0 else ("−" if v < 0 else "") + ticks.log_label(abs(v))
              for v in shown]
    tex = ["$\\mathdefault{0}$" if v == 0 else ticks.log_label(abs(v), mathtext=True)
           .replace("$\\mathdefault{", "$\\mathdefault{-" if v < 0 else "$\\mathdefault{")
           for v in shown]
    return Axis("symlog", (view[0], view[1]), shown, labels, tex, linthresh)


def settle_once(figure, size: str = "column") -> None:
    """settle() a figure that arrives unsettled (built by a caller of its own)."""
    if any(panel.x_axis is None or panel.y_axis is None for panel in figure.panels):
        settle(figure, size)


def settle(figure, size: str = "column") -> None:
    """Fix the panels per row and every panel's x and y axes for `size`."""
    st = styles.style(size)
    figure.ncols = styles.curve_columns(len(figure.panels), figure.ncols, size)
    width_pt = styles.curve_width(st, figure.ncols) * 72
    height_pt = st.curve_h * 72
    # the panels of one figure share their step axis, so they read against each other
    steps = np.concatenate([_finite(panel, False)[0] for panel in figure.panels]
                           or [np.empty(0)])
    shared = x_axis(steps, width_pt, st.font)
    for panel in figure.panels:
        _, values = _finite(panel, panel.log_y)
        panel.x_axis = shared
        panel.y_axis = y_axis(panel, values, height_pt, st.font)
