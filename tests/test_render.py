"""`allo render`: selection, incremental skipping, partial and corrupt runs, safety."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import SyntheticRun, make_run

from allo import rundir
from renderers import RenderOptions, command, drawn_with
from renderers.base import GridCurveRenderer
from renderers.plan import Selection, make_plan

D = 3


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("tpl") / "run", d=D, total_steps=300, exports=3)


@pytest.fixture
def run(template, tmp_path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(template, path)
    return path


def render(*args: str) -> int:
    return command.main([*map(str, args)])


def plots(run: Path) -> set[str]:
    """The figures in RUN/plots (the options record, a dotfile, aside)."""
    if not (run / "plots").exists():
        return set()
    return {p.name for p in (run / "plots").iterdir() if not p.name.startswith(".")}


ALL_SVG = {
    "ground_truth_eigenvectors.svg",
    "learned_eigenvectors_step_100.svg",
    "learned_eigenvectors_step_200.svg",
    "learned_eigenvectors_step_300.svg",
    "final_comparison.svg",
    "learning_curves.svg",
    "dual_variable_evolution.svg",
    "cosine_similarity.svg",
}


@pytest.mark.slow
def test_all_figures_and_summary(run, capsys):
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert plots(run) == ALL_SVG
    out = capsys.readouterr().out
    assert "8 made, 0 up to date, 0 not yet possible" in out


@pytest.mark.slow
def test_png_in_parallel(run, capsys):
    assert render(run, "--jobs", "2", "--dpi", "40", "--skip-metrics") == 0
    assert {p for p in plots(run)} == {n.replace(".svg", ".png") for n in ALL_SVG} - {
        "learning_curves.png",
        "dual_variable_evolution.png",
        "cosine_similarity.png",
    }
    assert "5 made" in capsys.readouterr().out


def test_skip_flags_and_latest_only(run):
    assert (
        render(
            run,
            "--format",
            "svg",
            "--latest-only",
            "--skip-metrics",
            "--skip-ground-truth",
            "--skip-comparison",
        )
        == 0
    )
    assert plots(run) == {"learned_eigenvectors_step_300.svg"}
    assert (
        render(
            run,
            "--format",
            "svg",
            "--steps",
            "100",
            "--skip-metrics",
            "--skip-ground-truth",
            "--skip-comparison",
        )
        == 0
    )
    assert plots(run) == {"learned_eigenvectors_step_300.svg", "learned_eigenvectors_step_100.svg"}


def test_step_order_is_numeric(tmp_path):
    run = SyntheticRun(tmp_path / "r", d=2, total_steps=10000)
    for step in (10000, 999, 1000):
        run.export(step)
    reader = rundir.RunReader(tmp_path / "r")
    plan = make_plan(reader, Selection(metrics=False, comparison=False, ground_truth=False))
    assert [job.step for job in plan.jobs] == [999, 1000, 10000]
    latest = make_plan(
        reader, Selection(metrics=False, comparison=False, ground_truth=False, latest_only=True)
    )
    assert [job.stem for job in latest.jobs] == ["learned_eigenvectors_step_10000"]



def test_latest_only_splits_the_heavy_curve_figures_across_two_processes(run):
    """--latest-only after a new export redraws one grid and three curve figures; the two
    dearest curve figures in one process made it the critical path (0.8 s of 1.1 s)."""
    from renderers.runner import _shares

    plan = make_plan(
        rundir.RunReader(run),
        Selection(ground_truth=False, comparison=False, latest_only=True),
    )
    shares = _shares(plan.jobs, 2)
    kinds = [{job.kind for job in share} for share in shares]
    assert not any({"learning_curves", "dual_variable_evolution"} <= k for k in kinds), kinds
    costs = sorted(sum(job.cost for job in share) for share in shares)
    assert costs[1] - costs[0] <= min(job.cost for job in plan.jobs), costs

def test_incremental_skips_current_figures(run, capsys):
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in (run / "plots").iterdir()}
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "0 made, 8 up to date" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in (run / "plots").iterdir()}
    # A new export, then new metrics, redo only what depends on them.
    time.sleep(0.01)
    synthetic_export(run, 400)
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "1 made, 8 up to date" in capsys.readouterr().out
    time.sleep(0.01)
    with open(run / rundir.METRICS_JSONL, "a") as handle:
        handle.write('{"step": 400, "cos/mean": 0.9}\n')
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "3 made, 6 up to date" in capsys.readouterr().out
    assert render(run, "--format", "svg", "--jobs", "1", "--force") == 0
    assert "9 made, 0 up to date" in capsys.readouterr().out


@pytest.mark.slow
def test_incremental_redraws_what_other_options_drew(run, capsys):
    """After --eigenvectors 1,2 a plain render must not call the two-panel figures current."""
    svg = run / "plots" / "ground_truth_eigenvectors.svg"
    assert render(run, "--format", "svg", "--jobs", "1", "--eigenvectors", "1,2") == 0
    assert "e1 " in svg.read_text() and "e2 " in svg.read_text()  # numbered from 1
    assert "e3 " not in svg.read_text()
    capsys.readouterr()
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "8 made, 0 up to date" in capsys.readouterr().out
    assert "e3 " in svg.read_text() and "e0 " not in svg.read_text()
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "0 made, 8 up to date" in capsys.readouterr().out
    # SVG declares that it ignores --dpi; PNG reads it
    assert render(run, "--format", "svg", "--jobs", "1", "--dpi", "200") == 0
    assert "0 made, 8 up to date" in capsys.readouterr().out
    one = ["--format", "png", "--jobs", "1", "--latest-only", "--skip-metrics",
           "--skip-comparison", "--skip-ground-truth"]
    assert render(run, *one) == 0 and render(run, *one, "--dpi", "50") == 0
    assert render(run, *one, "--dpi", "50") == 0 and render(run, *one) == 0
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()] == [
        "allo render: 1 made", "allo render: 1 made", "allo render: 0 made",
        "allo render: 1 made"]


def test_options_a_renderer_does_not_name_all_count():
    options = RenderOptions(dpi=100, color=True, width=120, x_range=(10, None))
    content = {"size": "column", "annotate": False, "scale": "per-vector", "linear_cos": False,
               "x_range": [10, None], "tail": None}  # what a figure shows counts always
    everything = drawn_with.signature(options, [0, 1])
    assert everything == {"dpi": 100, "color": True, "width": 120, "eigenvectors": [0, 1],
                          **content}
    assert drawn_with.signature(options, None, ("dpi",)) == {"dpi": 100, "eigenvectors": None,
                                                              **content}
    assert drawn_with.signature(options, [], ()) == {"eigenvectors": None, **content}
    assert drawn_with.signature(options, [], (), 2) == {"eigenvectors": None, "drawing": 2,
                                                         **content}


@pytest.mark.parametrize("record", ["{not json", "[1, 2]", '{"cosine_similarity.svg": 3}'])
def test_an_unreadable_options_record_means_drawing_again(run, capsys, record):
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    (run / "plots" / ".drawn-with.json").write_text(record)
    capsys.readouterr()
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "8 made, 0 up to date" in capsys.readouterr().out
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "0 made, 8 up to date" in capsys.readouterr().out


def test_figures_drawn_by_older_drawing_code_are_drawn_again_once(run, capsys):
    """A record from before drawing versions (labels e0..) has no "drawing" entry: an
    upgrade must not count those figures as current."""
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    record = run / "plots" / ".drawn-with.json"
    entries = json.loads(record.read_text())
    assert {entry["drawing"] for entry in entries.values()} == {GridCurveRenderer.drawing_version}
    record.write_text(json.dumps({name: {k: v for k, v in entry.items() if k != "drawing"}
                                  for name, entry in entries.items()}))
    capsys.readouterr()
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "8 made, 0 up to date" in capsys.readouterr().out
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    assert "0 made, 8 up to date" in capsys.readouterr().out


def test_options_record_follows_out(run, tmp_path, capsys):
    out = tmp_path / "figures"
    assert render(run, "--format", "text", "--out", out, "--latest-only", "--jobs", "1") == 0
    assert (out / ".drawn-with.json").is_file() and not (run / "plots").exists()
    capsys.readouterr()
    assert render(run, "--format", "text", "--out", out, "--latest-only", "--jobs", "1") == 0
    assert "0 made, 6 up to date" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "says"), [
    (["--eigenvectors", "1,4"], "--eigenvectors 4: this run has 3 eigenvectors, numbered 1..3"),
    (["--eigenvectors", "0,2"], "--eigenvectors 0: this run has 3 eigenvectors, numbered 1..3"),
    (["--steps", "150,200"], "--steps 150: this finished run has no export there "
                             "(its exports: 100,200,300)"),
])
def test_what_the_run_does_not_have_is_a_usage_error(run, capsys, args, says):
    assert render(run, "--format", "svg", *args) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"allo render: {says}"
    assert not plots(run)


def test_a_step_a_running_run_has_not_exported_is_not_yet(tmp_path, capsys):
    run = SyntheticRun(tmp_path / "r", d=D, total_steps=1000)
    run.advance(250, log_freq=10, export_freq=100)
    assert render(tmp_path / "r", "--format", "svg", "--steps", "200,900", "--skip-metrics",
                  "--skip-comparison", "--skip-ground-truth") == 0
    out = capsys.readouterr().out
    assert "not yet: learned_eigenvectors_step_900: no export for step 900" in out
    assert plots(tmp_path / "r") == {"learned_eigenvectors_step_200.svg"}


def synthetic_export(run: Path, step: int) -> None:
    vectors = rundir.load_npy(run / rundir.GT_EIGENVECTORS)
    rundir.atomic_save_npy(run / rundir.export_name(step), vectors)


@pytest.mark.slow
def test_quiet_prints_nothing(run, capsys):
    assert render(run, "--format", "svg", "--latest-only", "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_partial_run_makes_what_it_can(tmp_path, capsys):
    run = SyntheticRun(tmp_path / "r", d=D, total_steps=1000)
    run.advance(250, log_freq=10, export_freq=100)  # running: no final file
    with open(tmp_path / "r" / rundir.METRICS_JSONL, "a") as handle:
        handle.write('{"step": 260, "cos/mean": 0.')  # an unfinished last line
    assert render(tmp_path / "r", "--format", "svg", "--jobs", "1") == 0
    out = capsys.readouterr().out
    assert "not yet: final_comparison: final_learned_eigenvectors.npy not written yet" in out
    assert "(run is running)" in out
    assert "learned_eigenvectors_step_200.svg" in plots(tmp_path / "r")
    assert "final_comparison.svg" not in plots(tmp_path / "r")
    assert "learning_curves.svg" in plots(tmp_path / "r")


def test_run_without_anything_yet(tmp_path, capsys):
    run = SyntheticRun(tmp_path / "r", d=D, total_steps=1000)
    for name in (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS):
        (run.path / name).unlink()
    assert render(run.path, "--format", "svg", "--jobs", "1") == 0
    out = capsys.readouterr().out
    assert "0 made" in out and "not yet: ground_truth_eigenvectors" in out
    assert "metrics.jsonl has no complete rows yet" in out


@pytest.mark.parametrize("damage", ["truncate", "object"])
def test_corrupt_npy_fails_only_its_figure(run, capsys, damage):
    path = run / rundir.export_name(200)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:60])
    else:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert render(run, "--format", "svg", "--jobs", "1") == 1
    captured = capsys.readouterr()
    assert plots(run) == ALL_SVG - {"learned_eigenvectors_step_200.svg"}
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1
    assert "learned_eigenvectors_step_200" in errors[0] and "Traceback" not in captured.err
    assert "1 failed" in captured.out


def test_corrupt_ground_truth_fails_grids_not_curves(run, capsys):
    (run / rundir.GT_EIGENVECTORS).write_bytes(b"garbage")
    assert render(run, "--format", "svg", "--jobs", "1") == 1
    assert plots(run) == {
        "learning_curves.svg",
        "dual_variable_evolution.svg",
        "cosine_similarity.svg",
    }
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5 and all("gt_eigenvectors.npy" in e for e in errors)
    assert all(e.count(":") >= 2 for e in errors)  # figure: file: problem


def test_bad_run_json_is_exit_2_one_line(run, capsys):
    """Issue 6: an unreadable run.json makes the directory no usable run."""
    (run / "run.json").write_text("{not json")
    assert render(run, "--format", "svg", "--jobs", "1", "--skip-learned") == 2
    assert not (run / "plots").exists() or not any((run / "plots").iterdir())
    err = capsys.readouterr().err
    assert "invalid JSON" in err and "run.json" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("make", ["missing", "not_run", "file"])
def test_missing_or_non_run_dir_is_exit_2_one_line(tmp_path, capsys, make):
    path = tmp_path / "x"
    if make == "not_run":
        path.mkdir()
    elif make == "file":
        path.write_text("hi")
    assert render(path) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_usage_errors_exit_2(run, capsys):
    assert render(run, "--format", "nope") == 2
    assert "no renderer named 'nope'" in capsys.readouterr().err
    assert render(run, "--steps", "a,b") == 2
    assert render() == 2


def test_names_in_run_json_cannot_redirect_output(run, tmp_path):
    info = rundir.read_json(run / "run.json")
    info["name"] = "../../escaped"
    info["env"]["name"] = "../../../etc/x"
    rundir.atomic_write_json(run / "run.json", info)
    before = set(tmp_path.rglob("*"))
    assert render(run, "--format", "svg", "--jobs", "1") == 0
    new = set(tmp_path.rglob("*")) - before
    assert new and all((run / "plots") in p.parents or p == run / "plots" for p in new)


def test_out_inside_run_is_refused(run, capsys):
    assert render(run, "--format", "text", "--out", run / "sub") == 2
    assert "inside run" in capsys.readouterr().err


def test_text_out_writes_txt_files(run, tmp_path):
    out = tmp_path / "txt"
    assert render(run, "--format", "text", "--out", out, "--latest-only", "--jobs", "1") == 0
    assert (out / "learned_eigenvectors_step_300.txt").exists()
    assert (out / "learning_curves.txt").read_text().startswith("Learning curves")


def test_list_formats(capsys):
    assert render("--list-formats") == 0
    out = capsys.readouterr().out
    for name in ("png", "svg", "text"):
        assert name in out


def run_cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    code = (
        "import sys; from allo.cli import main; rc = main(sys.argv[1:]); "
        "bad = [m for m in ('matplotlib', 'torch') if m in sys.modules]; "
        "print('LOADED', bad, file=sys.stderr); sys.exit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.mark.slow
def test_text_path_imports_neither_matplotlib_nor_torch(run):
    result = run_cli(["render", str(run), "--format", "text"], {"NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stderr
    assert "##" in result.stdout and "\x1b[" not in result.stdout
    assert "Learning curves" in result.stdout


@pytest.mark.slow
def test_text_colour_on_request_and_no_color_wins(run):
    coloured = run_cli(
        ["render", str(run), "--format", "text", "--latest-only", "--skip-metrics"],
        {"FORCE_COLOR": "1", "NO_COLOR": ""},
    )
    assert "▀" in coloured.stdout and "\x1b[38;2;" in coloured.stdout
    plain = run_cli(
        ["render", str(run), "--format", "text", "--latest-only", "--skip-metrics"],
        {"FORCE_COLOR": "1", "NO_COLOR": "1"},
    )
    assert "\x1b[" not in plain.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["final_comparison", "learned_eigenvectors_step_300"])
def test_a_figure_of_one_panel_is_as_wide_as_its_heading(run, tmp_path, kind):
    """The heading is wider than one panel: the figure widens to hold it, so no dark
    pixel of the title touches the right edge (it was cut there)."""
    from PIL import Image

    out = tmp_path / "figures"
    assert render(run, "--format", "png", "--eigenvectors", "2", "--out", out,
                  "--latest-only", "--jobs", "1") == 0
    pixels = np.asarray(Image.open(out / f"{kind}.png").convert("L"))
    heading = pixels[: pixels.shape[0] // 8]  # title and subtitle rows
    dark_columns = np.nonzero((heading < 128).any(axis=0))[0]
    assert dark_columns.size and dark_columns.max() < pixels.shape[1] - 8


@pytest.mark.parametrize("color", [True, False])
def test_text_grids_of_a_large_layout_are_shrunk_to_the_width(color):
    """A 256 x 256 layout's panels fit the text width (blocks of cells averaged, walls
    where walls are most of a block) instead of printing every cell."""
    import re

    from renderers.figures import GridFigure, GridPanel
    from renderers.text import TextRenderer

    side = 256
    walls = np.zeros((side, side), dtype=bool)
    walls[:, side // 2] = True  # a wall down the middle, one cell wide
    values = np.where(walls, np.nan, np.linspace(-1, 1, side)[None, :].repeat(side, 0))
    figure = GridFigure("kind", "title", "sub", [GridPanel(values, "e1")], 1, walls, 1.0)
    renderer = TextRenderer(RenderOptions(color=color, width=80))
    text = renderer.grid(figure).decode()
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]
    assert max(len(line) for line in lines) <= 80
    assert "1/7 size" in text if not color else "1/4 size" in text
    assert len(lines) < 80  # not one line per grid row
    if not color:  # the left half negative, the right positive; the thin wall is averaged
        body = [line for line in lines if line.startswith(("-", "+"))]
        assert body and body[0].startswith("-9") and body[0].rstrip().endswith("+9")
