"""Paint a value-per-cell grid as text: two grid rows per terminal row.

Each character is an upper half block whose foreground colours the upper cell and
whose background colours the lower one, so a 13x13 room takes 13x7 characters.
Without colour (NO_COLOR) every cell gets its own character from a signed ramp.
"""

from __future__ import annotations

import math

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

# Diverging map (ColorBrewer RdBu ends): negative blue, zero light, positive red.
NEGATIVE = (33, 102, 172)
NEUTRAL = (240, 240, 240)
POSITIVE = (178, 24, 43)
WALL = (88, 88, 88)
UPPER_HALF = "▀"
# Signed ramp for monochrome: strongly negative ... strongly positive; walls are solid.
MONO_RAMP = ("=", "-", "·", "+", "#")
MONO_WALL = "█"


def diverging_rgb(value: float) -> tuple[int, int, int]:
    """Colour of a value in [-1, 1] (clipped)."""
    t = max(-1.0, min(1.0, value))
    end = POSITIVE if t >= 0 else NEGATIVE
    a = abs(t)
    return tuple(round(n + (e - n) * a) for n, e in zip(NEUTRAL, end, strict=True))  # type: ignore[return-value]


def _cell_color(value: float, scale: float) -> Color:
    if math.isnan(value):
        return Color.from_rgb(*WALL)
    return Color.from_rgb(*diverging_rgb(value / scale))


def paint(grid: np.ndarray, scale: float | None = None, color: bool = True) -> Text:
    """Text picture of `grid` (height, width); NaN cells are walls.

    `scale` is the value drawn at full colour (default: the largest |value|), so a
    learned vector can be drawn on its ground truth's scale.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if scale is None or not scale > 0:
        finite = np.abs(grid[np.isfinite(grid)])
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    if not color:
        return _paint_mono(grid, scale)
    height, width = grid.shape
    text = Text(no_wrap=True, overflow="crop")
    styles: dict[tuple, Style] = {}
    for top in range(0, height, 2):
        if top:
            text.append("\n")
        for col in range(width):
            upper = _cell_color(grid[top, col], scale)
            lower = _cell_color(grid[top + 1, col], scale) if top + 1 < height else None
            key = (upper.triplet, lower.triplet if lower else None)
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=upper, bgcolor=lower)
            text.append(UPPER_HALF, style)
    return text


def _paint_mono(grid: np.ndarray, scale: float) -> Text:
    lines = []
    last = len(MONO_RAMP) - 1
    for row in grid:
        chars = []
        for value in row:
            if math.isnan(value):
                chars.append(MONO_WALL)
            else:
                t = max(-1.0, min(1.0, value / scale))
                chars.append(MONO_RAMP[round((t + 1) / 2 * last)])
        lines.append("".join(chars))
    return Text("\n".join(lines), no_wrap=True, overflow="crop")


def painted_size(height: int, width: int, color: bool = True, shrink: int = 1
                 ) -> tuple[int, int]:
    """(columns, rows) that `paint` uses for a grid of this shape, `shrink`-fold smaller."""
    height, width = -(-height // shrink), -(-width // shrink)
    return width, (height + 1) // 2 if color else height


def shrunk(grid: np.ndarray, factor: int) -> np.ndarray:
    """Each `factor` x `factor` block of cells as one: the mean of its free cells, or a
    wall where walls are most of it; for a layout too big for the terminal."""
    if factor <= 1:
        return grid
    height, width = grid.shape
    padded = np.full((-(-height // factor) * factor, -(-width // factor) * factor), np.nan)
    padded[:height, :width] = grid
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor,
                            factor).swapaxes(1, 2).reshape(padded.shape[0] // factor,
                                                           padded.shape[1] // factor, -1)
    free = np.isfinite(blocks)
    total = np.where(free, blocks, 0.0).sum(axis=-1)
    count = free.sum(axis=-1)
    inside = np.ones_like(padded, dtype=bool)  # padding beyond the layout counts as wall
    inside[height:, :] = inside[:, width:] = False
    cells = inside.reshape(blocks.shape[0], factor, blocks.shape[1], factor).sum(axis=(1, 3))
    return np.where(2 * count >= cells, total / np.maximum(count, 1), np.nan)


def colorbar(width: int, color: bool = True) -> Text:
    """A small legend strip: − ... 0 ... +."""
    width = max(5, width)
    if not color:
        return Text("= - · + #  (− … +)", style="dim")
    text = Text()
    text.append("−", style="bold")
    for i in range(width - 2):
        value = -1 + 2 * i / max(1, width - 3)
        text.append(" ", Style(bgcolor=Color.from_rgb(*diverging_rgb(value))))
    text.append("+", style="bold")
    return text
