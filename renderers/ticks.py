"""Tick positions and labels as matplotlib chooses them, in pure Python (no matplotlib).

Every figure's axes are settled once (renderers/axes.py) with these functions, and every
renderer draws those ticks: matplotlib for PNG / SVG / PDF, plotext for text, and the
TUI's charts. So a PNG and a terminal chart agree tick for tick. The algorithms follow
matplotlib's own (matplotlib/ticker.py): `MaxNLocator` with the AutoLocator steps
(1, 2, 2.5, 5, 10) and nbins='auto' from the axis length and the tick label size,
`LogLocator` (decades; with subs 1, 2, 5 below two decades), the `ScalarFormatter`
label precision and `LogFormatterSciNotation`'s 10^k. tests/test_ticks.py holds them
against matplotlib's locators on many ranges.
"""

from __future__ import annotations

import math

AUTO_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
MARGIN = 0.05  # matplotlib's axes.xmargin / ymargin
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
MINUS = "\u2212"  # matplotlib's axes.unicode_minus


def auto_bins(length_pt: float, fontsize: float, axis: str = "x") -> int:
    """matplotlib's nbins='auto': the axis length over 3 (x) or 2 (y) label heights, 1..9."""
    size = fontsize * (3 if axis == "x" else 2)
    return int(min(9, max(1, math.floor(length_pt / size)))) if size > 0 else 9


def _scale_range(vmin: float, vmax: float, n: int) -> tuple[float, float]:
    dv = abs(vmax - vmin)
    meanv = (vmax + vmin) / 2
    offset = 0.0
    if abs(meanv) / dv >= 100:
        offset = math.copysign(10 ** (math.log10(abs(meanv)) // 1), meanv)
    return 10 ** (math.log10(dv / n) // 1), offset


def _close(ms: float, edge: float, step: float, offset: float) -> bool:
    tol = 1e-10
    if offset > 0:
        tol = min(0.4999, max(1e-10, 10 ** (math.log10(offset / step) - 12)))
    return abs(ms - edge) < tol


def _nonsingular(vmin: float, vmax: float, expander: float = 1e-13,
                 tiny: float = 1e-14) -> tuple[float, float]:
    """matplotlib.transforms.nonsingular for finite input: a zero-width range widened."""
    vmin, vmax = min(vmin, vmax), max(vmin, vmax)
    maxabs = max(abs(vmin), abs(vmax))
    if maxabs < (1e6 / tiny) * 2.2250738585072014e-308:
        return -expander, expander
    if vmax - vmin <= maxabs * tiny:
        if vmax == 0 and vmin == 0:
            return -expander, expander
        return vmin - expander * abs(vmin), vmax + expander * abs(vmax)
    return vmin, vmax


def max_n_locator(vmin: float, vmax: float, nbins: int, integer: bool = False,
                  steps: tuple[float, ...] = AUTO_STEPS, min_n_ticks: int = 2) -> list[float]:
    """MaxNLocator(nbins, steps, integer).tick_values: ticks spanning [vmin, vmax],
    one beyond each end included (as matplotlib returns them)."""
    vmin, vmax = _nonsingular(vmin, vmax)
    scale, offset = _scale_range(vmin, vmax, nbins)
    low_v, high_v = vmin - offset, vmax - offset
    extended = [0.1 * s for s in steps[:-1]] + list(steps) + [10 * steps[1]]
    candidates = [s * scale for s in extended]
    if integer:
        candidates = [s for s in candidates if s < 1 or abs(s - round(s)) < 0.001]
    raw = (high_v - low_v) / nbins
    large = [i for i, s in enumerate(candidates) if s >= raw]
    first = large[0] if large else len(candidates) - 1
    ticks: list[float] = []
    for step in reversed(candidates[: first + 1]):
        if integer and math.floor(high_v) - math.ceil(low_v) >= min_n_ticks - 1:
            step = max(1.0, step)
        best = (low_v // step) * step
        d, m = divmod(low_v - best, step)
        low = d + 1 if _close(m / step, 1, step, abs(offset)) else d
        d, m = divmod(high_v - best, step)
        high = d if _close(m / step, 0, step, abs(offset)) else d + 1
        ticks = [(k * step + best) for k in range(int(low), int(high) + 1)]
        if sum(low_v <= t <= high_v for t in ticks) >= min_n_ticks:
            break
    return [t + offset for t in ticks]


def visible(ticks: list[float], vmin: float, vmax: float) -> list[float]:
    """The ticks inside the view (matplotlib keeps those within a hair of the ends)."""
    low, high = min(vmin, vmax), max(vmin, vmax)
    slack = (high - low) * 1e-10
    return [t for t in ticks if low - slack <= t <= high + slack]


def log_locator(vmin: float, vmax: float, numticks: int = 9,
                subs: tuple[float, ...] = (1.0,)) -> list[float]:
    """LogLocator(base=10, subs, numticks).tick_values for 0 < vmin < vmax."""
    if vmax < vmin:
        vmin, vmax = vmax, vmin
    efmin, efmax = math.log10(vmin), math.log10(vmax)
    emin, emax = math.ceil(efmin), math.floor(efmax)
    n_avail = emax - emin + 1
    n_request = numticks
    stride = n_avail // (n_request + 1) + 1
    nr = math.ceil(n_avail / stride)
    if nr <= n_request:
        n_request = nr
    if n_request == 0:
        decades = [emin - 1, emax + 1]
        stride = 2 + emax - emin
    elif n_request == 1:
        mid = round((efmin + efmax) / 2)
        stride = max(mid - (emin - 1), (emax + 1) - mid)
        decades = [mid - stride, mid, mid + stride]
    else:
        stride = (n_avail - 1) // (n_request - 1)
        if stride < n_avail / n_request:
            stride = n_avail // n_request
        olo = max(n_avail - stride * n_request, 0)
        ohi = min(n_avail - stride * (n_request - 1), stride)
        offset = (-emin) % stride
        if not olo <= offset < ohi:
            offset = olo
        decades = list(range(emin + offset - stride, emax + stride + 1, stride))
    minor = len(subs) > 1 or subs[0] != 1.0
    if not minor:
        return [10.0**k for k in decades]
    if not (stride == 1 or n_avail <= 1):
        return []
    ticks = [s * 10.0**k for k in range(emin - 1, emax + 1) for s in subs]
    inside = sum(vmin <= t <= vmax for t in ticks)
    if stride == 1 and len(decades) - 2 + inside <= 1:
        return max_n_locator(vmin, vmax, 9)
    return ticks


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """matplotlib's ticks inside [low, high] for `count` bins (MaxNLocator)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high == low:
        return [low]
    return visible(max_n_locator(low, high, max(1, count), integer), low, high)


def log_ticks(low: float, high: float, numticks: int = 9) -> list[float]:
    """Decades inside [low, high] as LogLocator picks them; where fewer than two decades
    show, 1, 2 and 5 times each decade (LogLocator with subs (1, 2, 5))."""
    if low <= 0 or high <= 0 or not (math.isfinite(low) and math.isfinite(high)):
        return []
    low, high = min(low, high), max(low, high)
    if low == high:
        return [low]
    ticks = visible(log_locator(low, high, numticks), low, high)
    if len(ticks) < 2:
        ticks = visible(log_locator(low, high, numticks, subs=(1.0, 2.0, 5.0)), low, high)
    if len(ticks) < 2:  # within one step of 1-2-5: plain round numbers
        ticks = nice_ticks(low, high, 4)
    return ticks


def is_log_tick(value: float) -> bool:
    """1, 2 or 5 times a power of ten: labelled 10^k / c×10^k on log axes."""
    exponent = math.floor(math.log10(value) + 1e-9)
    coeff = value / 10.0**exponent
    return any(abs(coeff - c) < 1e-6 for c in (1, 2, 5))


def scalar_labels(ticks: list[float], view: tuple[float, float] | None = None) -> list[str]:
    """ScalarFormatter's labels (no offset, no scientific notation): as many decimals as
    the ticks need, matplotlib's unicode minus."""
    if not ticks:
        return []
    locs = list(ticks) if len(ticks) > 1 or view is None else [*ticks, *view]
    loc_range = (max(locs) - min(locs)) or max(abs(v) for v in locs) or 1.0
    oom = math.floor(math.log10(loc_range))
    sigfigs = max(0, 3 - oom)
    thresh = 1e-3 * 10**oom
    while sigfigs >= 0:
        if max(abs(v - round(v, sigfigs)) for v in ticks) < thresh:
            sigfigs -= 1
        else:
            break
    sigfigs += 1
    return [f"{v:.{sigfigs}f}".replace("-", MINUS) for v in ticks]


def log_label(value: float, mathtext: bool = False) -> str:
    """LogFormatterSciNotation: 10^k, or c×10^k off the decades; mathtext for matplotlib,
    unicode superscripts for text."""
    exponent = math.floor(math.log10(value) + 1e-9)
    coeff = round(value / 10.0**exponent)
    if mathtext:
        head = "" if coeff == 1 else f"{coeff}\\times"
        return f"$\\mathdefault{{{head}10^{{{exponent}}}}}$"
    head = "" if coeff == 1 else f"{coeff}×"
    return f"{head}10{str(exponent).translate(SUPERSCRIPT)}"


def format_tick(value: float, log: bool = False) -> str:
    """One short label on its own (the TUI's charts): 1e-4 on log axes outside
    1e-3..1e4, 25k for large numbers, else up to four significant digits."""
    if log and not 1e-3 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if value == 0:
        return "0"
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:.4g}"


def padded_range(low: float, high: float, log: bool = False) -> tuple[float, float]:
    """matplotlib's autoscaled view of data [low, high]: 5% margins, in log space on log
    axes; a single value is first widened as matplotlib's nonsingular does."""
    if log:
        low, high = max(low, 1e-300), max(high, 1e-300)
        a, b = math.log10(low), math.log10(high)
        if a == b:
            a, b = _nonsingular(a, b, expander=0.05)
        span = b - a
        return 10 ** (a - MARGIN * span), 10 ** (b + MARGIN * span)
    if low == high:
        low, high = _nonsingular(low, high, expander=0.05)
    span = high - low
    return low - MARGIN * span, high + MARGIN * span
