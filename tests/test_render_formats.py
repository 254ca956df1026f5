"""Each built-in renderer draws each figure kind from a small synthetic run."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from synthetic import SyntheticRun

from allo import rundir
from allo.layouts import parse_layout
from renderers import RenderOptions, load
from renderers import figures as figs
from renderers.raster import grid_layout

LAYOUT = """\
XXXXXXX
XS    X
X  X  X
X    GX
XXXXXXX
"""
D = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    layout = parse_layout(LAYOUT, "doors")
    layout.doors = [((1, 2), (1, 3))]
    path = tmp_path_factory.mktemp("fmt") / "run"
    synthetic = SyntheticRun(path, layout=layout, d=D, total_steps=200)
    synthetic.advance(200, log_freq=10, export_freq=100)
    synthetic.finish()
    return path


def all_figures(path: Path) -> dict[str, object]:
    data = figs.RunData(rundir.RunReader(path))
    return {
        "ground_truth_eigenvectors": figs.ground_truth_figure(data),
        "learned_eigenvectors": figs.learned_figure(data, 100),
        "final_comparison": figs.final_comparison_figure(data),
        "learning_curves": figs.learning_curves_figure(data),
        "dual_variable_evolution": figs.dual_variables_figure(data),
        "cosine_similarity": figs.cosine_figure(data),
    }


def png_size(payload: bytes) -> tuple[int, int]:
    assert payload[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert payload[12:16] == b"IHDR"
    return struct.unpack(">II", payload[16:24])


@pytest.mark.parametrize("fmt", ["png", "svg", "text"])
def test_every_kind_renders(run, fmt):
    renderer = load(fmt)(RenderOptions(color=False))
    for kind, figure in all_figures(run).items():
        payload = getattr(renderer, kind)(figure)
        assert isinstance(payload, bytes) and len(payload) > 200, kind


@pytest.mark.parametrize("dpi", [60, 100])
def test_png_grid_is_valid_and_sized_by_layout(run, dpi):
    figure = all_figures(run)["ground_truth_eigenvectors"]
    payload = load("png")(RenderOptions(dpi=dpi)).ground_truth_eigenvectors(figure)
    layout = grid_layout(figure, dpi / 100)
    assert png_size(payload) == (layout.width, layout.height)


def test_png_decodes_and_zero_is_white(run):
    import io

    import matplotlib.image as mpimg

    figure = all_figures(run)["ground_truth_eigenvectors"]
    figure.panels[0].values = np.where(figure.walls, np.nan, 0.0)
    image = mpimg.imread(io.BytesIO(load("png")(RenderOptions()).grid(figure)), format="png")
    layout = grid_layout(figure)
    x, y = layout.panels[0]
    cell = layout.cell
    # Free cell (row 2, col 1) holds 0 -> white; wall (0, 0) -> the neutral grey.
    centre = image[y + int(2.5 * cell), x + int(1.5 * cell), :3]
    wall = image[y + cell // 2, x + cell // 2, :3]
    assert np.allclose(centre, 1.0, atol=1 / 255)
    assert np.allclose(wall * 255, (110, 110, 110), atol=1)


def test_png_curves_are_valid(run):
    payload = load("png")(RenderOptions(dpi=50)).learning_curves(
        all_figures(run)["learning_curves"]
    )
    width, height = png_size(payload)
    assert width > 100 and height > 100


def test_svg_has_one_element_per_grid_cell(run):
    figures = all_figures(run)
    renderer = load("svg")(RenderOptions())
    cells_per_panel = 5 * 7
    for kind, panels in (("ground_truth_eigenvectors", D), ("final_comparison", 2 * D)):
        root = ET.fromstring(getattr(renderer, kind)(figures[kind]))
        cells = [e for e in root.iter() if "cell" in e.get("class", "").split()]
        walls = [e for e in cells if "wall" in e.get("class", "").split()]
        assert len(cells) == panels * cells_per_panel
        assert len(walls) == panels * (cells_per_panel - 14)  # 14 free cells
        doors = [e for e in root.iter() if e.get("class") == "door"]
        assert len(doors) == panels
        assert len([e for e in root.iter() if e.get("class") == "start"]) == panels


def test_svg_curves_parse(run):
    renderer = load("svg")(RenderOptions())
    for kind in ("learning_curves", "dual_variable_evolution", "cosine_similarity"):
        root = ET.fromstring(getattr(renderer, kind)(all_figures(run)[kind]))
        assert [e for e in root.iter() if e.get("class") == "curve"], kind


def test_text_plain_grid_shows_walls_and_values(run):
    figure = all_figures(run)["ground_truth_eigenvectors"]
    text = load("text")(RenderOptions(color=False)).grid(figure).decode()
    lines = text.splitlines()
    assert "\x1b[" not in text
    # Top wall row of all panels side by side, then a row with a free cell pattern.
    assert sum(line.count("#" * 14) for line in lines) >= 2 * D
    first = next(i for i, line in enumerate(lines) if line.startswith("#" * 14))
    assert lines[first + 1].startswith("##") and lines[first + 1][2:4].strip() != "#"
    assert "λ =" in text


def test_text_curves_label_steps_with_round_numbers(run):
    """Steps 10..200: ticks 50 100 150 200, not plotext's own 1.0e1 5.8e1 ..."""
    renderer = load("text")(RenderOptions(color=False, width=120))
    for kind in ("cosine_similarity", "learning_curves"):
        text = renderer.curves(all_figures(run)[kind]).decode()
        lines = text.splitlines()
        axis = [lines[i + 1].split() for i, line in enumerate(lines[:-1])
                if "└" in line and "┬" in line]  # an x axis with tick marks, not a legend
        assert axis and all(labels and set(labels) <= {"50", "100", "150", "200"}
                            for labels in axis), axis
        assert ["50", "100", "150", "200"] in axis or kind == "learning_curves"


def test_text_colour_grid_uses_half_blocks(run):
    figure = all_figures(run)["learned_eigenvectors"]
    text = load("text")(RenderOptions(color=True)).grid(figure).decode()
    assert "▀" in text and "\x1b[38;2;" in text and "\x1b[48;2;" in text
    # 5 grid rows -> 3 half-block lines per panel at scale 2 -> 5 character rows.
    assert text.count("▀") == D * (7 * 2) * 5


def test_titles_escape_control_characters_and_dollars(tmp_path, run):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    info = rundir.read_json(copy / "run.json")
    info["name"] = "evil\x1b[31m $x^2$ name"
    rundir.atomic_write_json(copy / "run.json", info)
    figure = figs.ground_truth_figure(figs.RunData(rundir.RunReader(copy)))
    assert "\x1b" not in figure.subtitle
    load("png")(RenderOptions(dpi=40)).grid(figure)  # '$' must not reach mathtext


@pytest.mark.parametrize(("low", "high", "labels"), [(0.1, 0.6, 3), (1e-28, 1.0, 3)])
def test_png_log_axis_labels_more_than_one_tick(low, high, labels):
    """A log axis spanning less than a decade once showed a single label (10^-1)."""
    from renderers import png

    mpl = png._mpl()
    fig = mpl["Figure"](figsize=(4, 3))
    ax = fig.add_axes((0.2, 0.2, 0.7, 0.7))
    steps = np.arange(50.0)
    line = figs.Line("norm", steps, np.geomspace(high, low, 50), 0)
    png.PngRenderer._curve_panel(ax, figs.CurvePanel("norm", [line], log_y=True))
    mpl["Canvas"](fig).draw()
    bottom, top = ax.get_ylim()
    shown = [
        tick.label1.get_text()
        for tick in ax.yaxis.get_major_ticks()
        if bottom <= tick.get_loc() <= top and tick.label1.get_text()
    ]
    assert len(shown) >= labels, shown
    assert png.log_decades([line]) == pytest.approx(np.log10(high / low))


@pytest.mark.parametrize(
    ("kinds", "built"), [("learning_curves", True), ("final_comparison", False)]
)
def test_png_prepare_builds_mathtext_only_for_log_axes(kinds, built):
    """Workers fork after prepare(): a parser built there is built once, not per worker;
    for grid figures alone it would be 0.3 s of CPU spent for nothing."""
    code = (
        "from renderers import RenderOptions, png\n"
        f"png.PngRenderer(RenderOptions()).prepare([{kinds!r}])\n"
        "from matplotlib.mathtext import MathTextParser\n"
        "print(MathTextParser._parser is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(built)
