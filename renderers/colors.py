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


def anchors() -> np.ndarray:
    """The diverging map's RGB anchors (0-255), most negative first: other forms of the
    map (matplotlib's colormap, terminal palettes) are built from these."""
    return _ANCHORS.copy()


def line_color(index: int) -> str:
    """Palette colour by index; a negative index is black (summary lines such as means)."""
    return "#000000" if index < 0 else PALETTE[index % len(PALETTE)]


def palette_pass(index: int) -> int:
    """Which pass through the palette a line index is on (0 for the first ten). Later
    passes must be drawn differently, or e11 (the paper preset's last vector) reads as e1."""
    return max(index, 0) // len(PALETTE)


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


# ---------------------------------------------------------------- terminal forms
# A terminal draws the same map in one of four forms. Each form is a ramp of levels
# from -vmax to +vmax whose lightness rises to the white middle and falls again, with the
# hue on the right side (blue negative, red positive), so no value can read as another
# sign or as a stronger one (tests/test_colors_terminal.py checks each form).
TERMINAL_FORMS = ("truecolor", "256", "16", "mono")
# xterm 256-colour indices for 21 even levels of the map: for each level the closest
# colour (CIE Lab) among those whose lightness keeps the ramp monotone and whose hue is
# on the level's side; each survives rich's truecolor -> 256 downgrade unchanged.
XTERM256_RAMP = (24, 25, 25, 32, 67, 74, 117, 152, 152, 231, 231, 231,
                 224, 223, 216, 173, 167, 167, 88, 52, 52)  # fmt: skip
XTERM256_WALL = 242  # neutral mid grey: darker than every near-zero level, no hue
# The 16-colour form: blue, bright blue, bright white, bright red, red.
ANSI16_RAMP = (4, 12, 15, 9, 1)
ANSI16_WALL = 8  # bright black (grey)
# Without colour (NO_COLOR): signed characters of rising weight; walls are a light
# shade, so the strongest value (#) never looks like a wall.
MONO_RAMP = ("=", "-", "·", "+", "#")
MONO_WALL = "░"
# The 16 system colours as rich downgrades to them (the VGA palette): the 16-colour form
# emits these exact RGBs so the terminal receives the intended index.
_ANSI16_RGB = (
    (0, 0, 0), (170, 0, 0), (0, 170, 0), (170, 85, 0), (0, 0, 170), (170, 0, 170),
    (0, 170, 170), (170, 170, 170), (85, 85, 85), (255, 85, 85), (85, 255, 85),
    (255, 255, 85), (85, 85, 255), (255, 85, 255), (85, 255, 255), (255, 255, 255),
)  # fmt: skip
_CUBE = (0, 95, 135, 175, 215, 255)


def xterm256_rgb(index: int) -> tuple[int, int, int]:
    """The RGB of an xterm 256-colour index (system colours, 6x6x6 cube, grey ramp)."""
    if index < 16:
        return _ANSI16_RGB[index]
    if index >= 232:
        grey = 8 + 10 * (index - 232)
        return grey, grey, grey
    index -= 16
    return _CUBE[index // 36], _CUBE[index // 6 % 6], _CUBE[index % 6]


def ramp_level(t: float, levels: int) -> int:
    """Which of `levels` even levels from -1 to +1 a clipped value falls on."""
    t = max(-1.0, min(1.0, t))
    return int(round((t + 1.0) / 2.0 * (levels - 1)))


def terminal_rgb(t: float, form: str) -> tuple[int, int, int] | None:
    """RGB of a value in [-1, 1] (NaN: wall) in a colour form; None for "mono".

    The 256- and 16-colour forms return their palette's exact RGB, which the terminal's
    downgrade maps back onto the intended index.
    """
    wall = t != t
    if form == "truecolor":
        if wall:
            return WALL
        red, green, blue = (int(v) for v in diverging(np.array(t), 1.0))
        return red, green, blue
    if form == "256":
        index = XTERM256_WALL if wall else XTERM256_RAMP[ramp_level(t, len(XTERM256_RAMP))]
        return xterm256_rgb(index)
    if form == "16":
        index = ANSI16_WALL if wall else ANSI16_RAMP[ramp_level(t, len(ANSI16_RAMP))]
        return _ANSI16_RGB[index]
    if form == "mono":
        return None
    raise ValueError(f"unknown colour form {form!r}; expected one of {TERMINAL_FORMS}")


def mono_char(t: float) -> str:
    """The NO_COLOR character of a value in [-1, 1] (NaN: wall)."""
    if t != t:
        return MONO_WALL
    return MONO_RAMP[ramp_level(t, len(MONO_RAMP))]


def form_for(color_system: str | None, no_color: bool = False) -> str:
    """The colour form for rich's colour system name (truecolor, 256, standard, ...)."""
    if no_color or color_system is None:
        return "mono"
    if color_system == "truecolor":
        return "truecolor"
    if color_system == "256":
        return "256"
    return "16"
