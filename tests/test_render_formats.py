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
from renderers import RenderOptions, load, runner
from renderers import figures as figs
from renderers.plan import Job

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


SVG = "{http://www.w3.org/2000/svg}"


def drawn(run: Path, fmt: str, kind: str, **options) -> bytes:
    """One figure as `allo render` draws it: built, settled, drawn."""
    opts = RenderOptions(color=False, **options)
    data = figs.RunData(rundir.RunReader(run), opts)
    step = 100 if kind == "learned_eigenvectors" else None
    figure = runner.build(data, Job(kind, kind, (), step=step), None, opts.size)
    return runner.draw_figure(load(fmt)(opts), kind, figure)


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf", "text"])
def test_every_kind_renders(run, fmt):
    for kind in all_figures(run):
        payload = drawn(run, fmt, kind)
        assert isinstance(payload, bytes) and len(payload) > 200, kind
    if fmt == "pdf":
        assert payload.startswith(b"%PDF")


@pytest.mark.parametrize(("size", "inches"), [("column", 3.3), ("page", 6.8)])
@pytest.mark.parametrize("dpi", [60, 200])
def test_png_is_as_wide_as_a_column_or_the_page(run, size, inches, dpi):
    for kind in ("ground_truth_eigenvectors", "final_comparison", "learning_curves"):
        width, _ = png_size(drawn(run, "png", kind, dpi=dpi, size=size))
        assert width == round(inches * dpi), kind


def test_png_default_is_200_dpi():
    assert RenderOptions().dpi == 200


def test_zero_is_white_and_walls_grey(run):
    import io

    import matplotlib.image as mpimg

    from renderers import mpldraw

    cmap, norm = mpldraw.mpl()["cmap"], mpldraw.mpl()["Normalize"](-1.0, 1.0)
    assert np.allclose(cmap(norm(0.0))[:3], 1.0, atol=1 / 255)
    assert np.allclose(np.asarray(cmap(np.ma.masked_invalid([np.nan]))[0][:3]) * 255,
                       (110, 110, 110), atol=1)
    # the picture: a vector of zeros shows white cells, and the walls their grey
    figure = all_figures(run)["ground_truth_eigenvectors"]
    figure.panels = [figs.GridPanel(np.where(figure.walls, np.nan, 0.0), "zero", 1.0)]
    figure.ncols = 1
    image = mpimg.imread(io.BytesIO(load("png")(RenderOptions(dpi=100)).grid(figure)), "png")
    pixels = (image[..., :3] * 255).round().reshape(-1, 3)
    assert (np.abs(pixels - 110).max(axis=1) <= 1).sum() > 100  # walls
    assert (pixels.min(axis=1) == 255).sum() > 1000  # white cells (and the background)


def test_svg_and_pdf_grid_cells_are_vector_shapes(run):
    payload = drawn(run, "svg", "final_comparison")
    root = ET.fromstring(payload)
    groups = [g for g in root.iter(SVG + "g") if g.get("id", "").startswith("cells-")]
    assert len(groups) == 2 * D
    for group in groups:  # one path per grid cell, walls included
        assert len(list(group.iter(SVG + "path"))) == 5 * 7
    assert payload.count(b"<image") == 1  # the colour bar's ramp only; no panel rasterised
    assert drawn(run, "pdf", "final_comparison").count(b"/Subtype /Image") == 1


def test_a_large_grid_is_rasterised_in_vector_files(run):
    from renderers import mpldraw

    figure = all_figures(run)["ground_truth_eigenvectors"]
    side = int(np.ceil(np.sqrt(mpldraw.RASTER_CELLS + 1)))
    figure.walls = np.zeros((side, side), bool)
    figure.panels = [figs.GridPanel(np.linspace(-1, 1, side * side).reshape(side, side),
                                    "large", 1.0)]
    figure.ncols, figure.start, figure.goals, figure.doors = 1, None, [], []
    assert load("svg")(RenderOptions()).grid(figure).count(b"<image") == 2  # panel and bar


def svg_texts(payload: bytes) -> list[str]:
    return [t.text for t in ET.fromstring(payload).iter(SVG + "text") if t.text]


@pytest.mark.parametrize("kind", ["learning_curves", "dual_variable_evolution",
                                  "cosine_similarity"])
def test_every_format_shows_the_settled_ticks(run, kind):
    """PNG, SVG and PDF are one matplotlib drawing with the ticks fixed by
    renderers/axes.py; the SVG (text kept as text) shows exactly those labels, and the
    text renderer prints the same x labels."""
    opts = RenderOptions(color=False, width=140)
    figure = runner.build(figs.RunData(rundir.RunReader(run), opts), Job(kind, kind, ()),
                          None, opts.size)
    texts = svg_texts(load("svg")(opts).curves(figure))
    text = load("text")(opts).curves(figure).decode()
    for panel in figure.panels:
        assert panel.x_axis.ticks and len(panel.y_axis.ticks) >= 2
        for label in panel.x_axis.labels:
            assert label in texts and label in text
        for label in panel.y_axis.labels:
            if panel.y_axis.scale == "linear":
                assert label in texts


def test_curves_show_convergence_on_a_log_axis(run):
    figures = all_figures(run)
    cos = figures["cosine_similarity"].panels[0]
    assert cos.log_y and cos.title.startswith("1 - ")
    learning = figures["learning_curves"]
    assert any(p.log_y and p.title.startswith("1 - mean |cos|") for p in learning.panels)
    losses = learning.panels[0]
    assert losses.log_y or losses.symlog is not None


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
    """Steps 10..200: matplotlib's round ticks (the PNG's), not plotext's 1.0e1 5.8e1 ..."""
    renderer = load("text")(RenderOptions(color=False, width=120))
    for kind in ("cosine_similarity", "learning_curves"):
        figure = all_figures(run)[kind]
        text = renderer.curves(figure).decode()
        lines = text.splitlines()
        axis = [lines[i + 1].split() for i, line in enumerate(lines[:-1])
                if "└" in line and "┬" in line]  # an x axis with tick marks, not a legend
        # panels may stand two to a row; plotext may drop a label that reaches the edge
        shown = figure.panels[0].x_axis.labels
        assert axis and all(set(labels) <= set(shown) and len(set(labels)) >= len(shown) - 1
                            for labels in axis), axis
        labels = [int(label) for label in figure.panels[0].x_axis.labels]
        step = labels[1] - labels[0]
        assert step in (20, 25, 50) and labels == list(range(labels[0], labels[-1] + 1, step))


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
def test_log_axis_labels_more_than_one_tick(low, high, labels):
    """A log axis spanning less than a decade once showed a single label (10^-1)."""
    from renderers import axes

    line = figs.Line("norm", np.arange(50.0), np.geomspace(high, low, 50), 0)
    figure = figs.CurveFigure("x", "", "", [figs.CurvePanel("norm", [line], log_y=True)])
    axes.settle(figure)
    assert len(figure.panels[0].y_axis.ticks) >= labels


@pytest.mark.parametrize(
    ("kinds", "built"), [("learning_curves", True), ("final_comparison", False)]
)
@pytest.mark.slow
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


def test_lines_past_the_palettes_ten_colours_are_drawn_differently(tmp_path):
    """d = 11 (the paper preset): e11 takes e1's colour again, so it takes another line
    style in the figures and another marker in text, and the two still read apart."""
    from renderers import mpldraw

    path = tmp_path / "run"
    SyntheticRun(path, layout="room4", d=11, total_steps=200).advance(200, log_freq=10,
                                                                    export_freq=100)
    opts = RenderOptions(color=False)
    data = figs.RunData(rundir.RunReader(path), opts)
    figure = runner.build(data, Job("cosine_similarity", "cosine_similarity", ()), None,
                          opts.size)
    fig = mpldraw.curve_figure(figure, opts.size, 100)
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    first, eleventh, second = lines["e1"], lines["e11"], lines["e2"]
    assert first.get_color() == eleventh.get_color() != second.get_color()
    assert first.get_linestyle() == second.get_linestyle() != eleventh.get_linestyle()
    text = runner.draw_figure(load("text")(opts), "cosine_similarity", figure).decode()
    assert "•" in text
    small = tmp_path / "small"
    SyntheticRun(small, layout="room4", d=10, total_steps=200).advance(200, log_freq=10,
                                                                     export_freq=100)
    data = figs.RunData(rundir.RunReader(small), opts)
    figure = runner.build(data, Job("cosine_similarity", "cosine_similarity", ()), None,
                          opts.size)
    assert "•" not in runner.draw_figure(load("text")(opts), "cosine_similarity",
                                         figure).decode()
