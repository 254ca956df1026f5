"""Tick positions and axis transforms for the renderers that draw their own axes."""

from __future__ import annotations

import math


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high] (1, 2, 2.5 or 5 times 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high < low:
        low, high = high, low
    if high == low:
        return [low]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten inside [low, high] (both > 0); at least the two ends' decades."""
    if low <= 0 or high <= 0 or not (math.isfinite(low) and math.isfinite(high)):
        return []
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    stride = max(1, (last - first) // 6)
    ticks = [10.0**k for k in range(first, last + 1, stride) if low <= 10.0**k <= high]
    if len(ticks) < 3:  # under two decades: add 2x and 5x
        ticks = sorted(
            m * 10.0**k
            for k in range(first, last + 1)
            for m in (1, 2, 5)
            if low <= m * 10.0**k <= high
        )
    return ticks or [10.0**first]


def format_tick(value: float, log: bool = False) -> str:
    if log and not 1e-3 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if value == 0:
        return "0"
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:.4g}"


def padded_range(low: float, high: float, log: bool = False) -> tuple[float, float]:
    """A data range with a small margin; log ranges pad multiplicatively."""
    if log:
        low, high = max(low, 1e-300), max(high, 1e-300)
        if low == high:
            return low / 2, high * 2
        span = math.log10(high) - math.log10(low)
        return low / 10 ** (0.04 * span), high * 10 ** (0.04 * span)
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.04
    return low - pad, high + pad
