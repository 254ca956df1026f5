"""Colours shared by every format, so a PNG, an SVG and a terminal grid read the same.

The diverging scale is ColorBrewer's red-blue ramp (negative blue, positive red) with its
middle set to pure white: a value of 0 is white in every renderer. Walls get a neutral
grey that no value can take. Pure numpy; imported by the text path.
"""

from __future__ import annotations

import numpy as np

# Anchors from most negative to most positive (ColorBrewer RdBu, reversed; centre white).
_ANCHORS = np.array(
    [
        (5, 48, 97),
        (33, 102, 172),
        (67, 147, 195),
        (146, 197, 222),
        (209, 229, 240),
        (255, 255, 255),
        (253, 219, 199),
        (244, 165, 130),
        (214, 96, 77),
        (178, 24, 43),
        (103, 0, 31),
    ],
    dtype=np.float64,
)
WALL = (110, 110, 110)
WALL_HEX = "#6e6e6e"
MARK = (40, 40, 40)  # start/goal letters and door arrows
# Line colours for curves (the familiar tab10 order), cycled past ten.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def line_color(index: int) -> str:
    """Palette colour by index; a negative index is black (summary lines such as means)."""
    return "#000000" if index < 0 else PALETTE[index % len(PALETTE)]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def rgb_to_hex(rgb: tuple[int, int, int] | np.ndarray) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def diverging(values: np.ndarray, vmax: float) -> np.ndarray:
    """RGB (uint8, shape values.shape + (3,)) on a scale symmetric about 0; NaN -> wall."""
    values = np.asarray(values, dtype=np.float64)
    scale = vmax if vmax > 0 and np.isfinite(vmax) else 1.0
    # Position along the anchors: -vmax -> 0, 0 -> middle, +vmax -> last.
    pos = (np.clip(values / scale, -1.0, 1.0) + 1.0) * 0.5 * (len(_ANCHORS) - 1)
    pos = np.nan_to_num(pos, nan=0.0)
    low = np.clip(np.floor(pos).astype(int), 0, len(_ANCHORS) - 2)
    frac = (pos - low)[..., None]
    rgb = _ANCHORS[low] * (1.0 - frac) + _ANCHORS[low + 1] * frac
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[np.isnan(values)] = WALL
    return rgb


def ramp(n: int = 256) -> np.ndarray:
    """(n, 3) floats in [0, 1] from -vmax to +vmax, for colour bars."""
    return diverging(np.linspace(-1.0, 1.0, n), 1.0).astype(np.float64) / 255.0
