"""Paint a value-per-cell grid as text: two grid rows per terminal row.

Each character is an upper half block whose foreground colours the upper cell and
whose background colours the lower one, so a 13x13 room takes 13x7 characters.
Without colour (NO_COLOR) every cell gets its own character from a signed ramp.
Colours come from the shared map (renderers.colors), in the form the terminal draws.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

from renderers.colors import MONO_RAMP, MONO_WALL, mono_char, terminal_rgb
from renderers.shrink import shrunk

UPPER_HALF = "▀"
__all__ = ["MONO_RAMP", "MONO_WALL", "colorbar", "paint", "painted_size", "shrunk"]


def form_of(color: bool | str) -> str:
    """`True` (the old switch) means truecolor, `False` no colour; else a form name."""
    if color is True:
        return "truecolor"
    if color is False:
        return "mono"
    return color


@lru_cache(maxsize=4096)
def _cell_color(level: float | None, form: str) -> Color:
    rgb = terminal_rgb(float("nan") if level is None else level, form)
    assert rgb is not None
    return Color.from_rgb(*rgb)


def _level(value: float, scale: float) -> float | None:
    """The value on [-1, 1], rounded so cached colours are shared; None for a wall."""
    if value != value:
        return None
    return round(max(-1.0, min(1.0, value / scale)), 3)


def paint(grid: np.ndarray, scale: float | None = None, color: bool | str = True) -> Text:
    """Text picture of `grid` (height, width); NaN cells are walls.

    `scale` is the value drawn at full colour (default: the largest |value|), so a
    learned vector can be drawn on its ground truth's scale. `color`: a form of the
    shared map (renderers.colors.TERMINAL_FORMS), or True / False.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if scale is None or not scale > 0:
        finite = np.abs(grid[np.isfinite(grid)])
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    form = form_of(color)
    if form == "mono":
        return _paint_mono(grid, scale)
    height, width = grid.shape
    text = Text(no_wrap=True, overflow="crop")
    styles: dict[tuple, Style] = {}
    for top in range(0, height, 2):
        if top:
            text.append("\n")
        for col in range(width):
            upper = _cell_color(_level(grid[top, col], scale), form)
            lower = (_cell_color(_level(grid[top + 1, col], scale), form)
                     if top + 1 < height else None)
            key = (upper.triplet, lower.triplet if lower else None)
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=upper, bgcolor=lower)
            text.append(UPPER_HALF, style)
    return text


def _paint_mono(grid: np.ndarray, scale: float) -> Text:
    def char(value: float) -> str:
        level = _level(value, scale)
        return mono_char(float("nan") if level is None else level)

    lines = ["".join(char(value) for value in row) for row in grid]
    return Text("\n".join(lines), no_wrap=True, overflow="crop")


def painted_size(height: int, width: int, color: bool = True, shrink: int = 1
                 ) -> tuple[int, int]:
    """(columns, rows) that `paint` uses for a grid of this shape, `shrink`-fold smaller."""
    height, width = -(-height // shrink), -(-width // shrink)
    return width, (height + 1) // 2 if color else height


def colorbar(width: int, color: bool | str = True) -> Text:
    """A small legend strip: − ... 0 ... + in the form the grids use."""
    width = max(5, width)
    form = form_of(color)
    if form == "mono":
        return Text(" ".join(MONO_RAMP) + "  (− … +)", style="dim")
    text = Text()
    text.append("−", style="bold")
    for i in range(width - 2):
        value = -1 + 2 * i / max(1, width - 3)
        text.append(" ", Style(bgcolor=_cell_color(round(value, 3), form)))
    text.append("+", style="bold")
    return text


def wall_swatch(color: bool | str = True) -> Text:
    """What a wall looks like in this form, for the legend."""
    form = form_of(color)
    if form == "mono":
        return Text(MONO_WALL * 2)
    return Text("  ", Style(bgcolor=_cell_color(None, form)))
