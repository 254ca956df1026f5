"""The shared diverging map's terminal forms: truecolor, 256 colours, 16 colours, none.

Each form must stay monotone: lightness rises from -1 to the white middle and falls to
+1, the hue stays on its side (blue negative, red positive), and a wall is something no
value looks like. The 256- and 16-colour forms must also survive the terminal's
downgrade (rich's), landing on the intended palette index.
"""

from __future__ import annotations

import numpy as np
import pytest
from rich.color import Color, ColorSystem

from renderers import colors
from tui import gridpaint

LEVELS = np.linspace(-1.0, 1.0, 201)


def lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB triplet."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                  [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("form", ["truecolor", "256", "16"])
def test_each_colour_form_is_monotone_and_keeps_its_sign(form: str) -> None:
    values = [lab(colors.terminal_rgb(float(t), form)) for t in LEVELS]
    lightness = np.array([v[0] for v in values])
    middle = len(LEVELS) // 2
    assert np.all(np.diff(lightness[: middle + 1]) >= -1e-9), "darker towards zero (negative)"
    assert np.all(np.diff(lightness[middle:]) <= 1e-9), "lighter away from zero (positive)"
    assert lightness[0] < lightness[middle] - 30 and lightness[-1] < lightness[middle] - 30
    for t, (_, a, b) in zip(LEVELS, values, strict=True):
        if t <= -0.4:
            assert b < -5 and b < a, f"{t:+.2f} is not blue in the {form} form"
        if t >= 0.4:
            assert a > 5, f"{t:+.2f} is not red in the {form} form"
    # the strongest values are the ends, never a colour that also shows lesser values
    assert colors.terminal_rgb(1.0, form) != colors.terminal_rgb(0.5, form)
    assert colors.terminal_rgb(-1.0, form) != colors.terminal_rgb(-0.5, form)


@pytest.mark.parametrize("form", ["truecolor", "256", "16"])
def test_walls_look_like_no_value(form: str) -> None:
    wall = lab(colors.terminal_rgb(float("nan"), form))
    assert abs(wall[1]) < 2 and abs(wall[2]) < 2, "a wall has no hue"
    for t in LEVELS:
        assert colors.terminal_rgb(float(t), form) != colors.terminal_rgb(float("nan"), form)


def test_256_form_near_full_scale_stays_on_the_red_ramp() -> None:
    """0.9 to 1.0 of full scale was magenta in a 256-colour terminal (rich's downgrade
    of the truecolor map); now it is the dark end of the red ramp."""
    for t in np.linspace(0.85, 1.0, 16):
        r, g, b = colors.terminal_rgb(float(t), "256")
        assert r > 2 * b and r > 2 * g


@pytest.mark.parametrize(("form", "system"), [("256", ColorSystem.EIGHT_BIT),
                                              ("16", ColorSystem.STANDARD)])
def test_palette_forms_survive_the_terminal_downgrade(form: str, system: ColorSystem) -> None:
    ramp = colors.XTERM256_RAMP if form == "256" else colors.ANSI16_RAMP
    wall = colors.XTERM256_WALL if form == "256" else colors.ANSI16_WALL
    for index, t in zip(ramp, np.linspace(-1, 1, len(ramp)), strict=True):
        rgb = colors.terminal_rgb(float(t), form)
        assert Color.from_rgb(*rgb).downgrade(system).number == index
    assert Color.from_rgb(*colors.terminal_rgb(float("nan"), form)).downgrade(system).number \
        == wall


def test_truecolor_form_is_the_renderers_map() -> None:
    for t in (-1.0, -0.3, 0.0, 0.7, 1.0):
        assert colors.terminal_rgb(t, "truecolor") == tuple(colors.diverging(np.array(t), 1.0))
    assert colors.terminal_rgb(0.0, "truecolor") == (255, 255, 255)


def test_no_colour_form_is_a_signed_ramp_and_walls_are_light() -> None:
    chars = [colors.mono_char(float(t)) for t in LEVELS]
    order = [colors.MONO_RAMP.index(c) for c in chars]
    assert order == sorted(order) and chars[0] == "=" and chars[-1] == "#"
    assert colors.mono_char(float("nan")) == colors.MONO_WALL
    assert colors.MONO_WALL not in colors.MONO_RAMP and colors.MONO_WALL not in "█#▓"
    painted = gridpaint.paint(np.array([[np.nan, 1.0, -1.0, 0.0]]), color="mono").plain
    assert painted == colors.MONO_WALL + "#=·"


@pytest.mark.parametrize(("system", "no_color", "form"), [
    ("truecolor", False, "truecolor"), ("256", False, "256"), ("standard", False, "16"),
    ("windows", False, "16"), (None, False, "mono"), ("truecolor", True, "mono")])
def test_form_follows_the_terminal(system, no_color, form) -> None:
    assert colors.form_for(system, no_color) == form


def test_paint_uses_the_form_it_is_given() -> None:
    grid = np.array([[1.0], [-1.0]])
    text = gridpaint.paint(grid, 1.0, "256")
    style = text.spans[0].style
    assert style.color.triplet == colors.xterm256_rgb(52)
    assert style.bgcolor.triplet == colors.xterm256_rgb(24)
    with pytest.raises(ValueError, match="unknown colour form"):
        colors.terminal_rgb(0.0, "cmyk")
