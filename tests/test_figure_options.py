"""Paper options of `allo render` / `allo compare`: --annotate, --scale, --size, wrapping,
--x-range / --tail, --linear-cos, and their bad values (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import SyntheticRun

from allo import rundir
from allo.layouts import load_builtin
from renderers import RenderOptions, kinds, runner
from renderers import figures as figs
from renderers.command import main as render
from renderers.plan import Job


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("opts") / "my_named_run"
    synthetic = SyntheticRun(path, layout=load_builtin("room4"), d=7, total_steps=2000)
    synthetic.advance(2000, log_freq=50, export_freq=1000)
    synthetic.finish()
    return path


def build(run: Path, kind: str, **options):
    opts = RenderOptions(**options)
    data = figs.RunData(rundir.RunReader(run), opts)
    step = 1000 if kind == "learned_eigenvectors" else None
    return runner.build(data, Job(kind, kind, (), step=step), None, opts.size)


def test_the_run_name_only_with_annotate(run):
    name = rundir.read_json(run / "run.json")["name"]
    for kind in ("ground_truth_eigenvectors", "learning_curves"):
        assert name not in build(run, kind).subtitle
        assert name in build(run, kind, annotate=True).subtitle


def test_per_vector_scale_is_shared_by_truth_and_learned(run):
    figure = build(run, "final_comparison")
    assert figure.scale == "per-vector"
    truth = [p for p, label in zip(figure.panels, _row_of(figure), strict=True)
             if label == "ground truth" and not p.blank]
    learned = [p for p, label in zip(figure.panels, _row_of(figure), strict=True)
               if label == "learned" and not p.blank]
    assert len(truth) == len(learned) == 7
    for t, learnt in zip(truth, learned, strict=True):
        assert t.vmax == learnt.vmax > 0
        top = max(np.nanmax(np.abs(t.values)), np.nanmax(np.abs(learnt.values)))
        assert t.vmax == pytest.approx(top)
    # e1 (constant) and a high vector are on scales of their own
    assert len({round(p.vmax, 6) for p in truth}) > 2
    shared = build(run, "final_comparison", scale="shared")
    assert shared.scale == "shared" and all(p.vmax == 0 for p in shared.panels)


def _row_of(figure) -> list[str]:
    return [figure.row_labels[i // figure.ncols] for i in range(len(figure.panels))]


def test_a_wide_final_comparison_wraps_into_alternating_rows(run):
    figure = build(run, "final_comparison")  # 7 vectors: 4 + 3 per row
    assert figure.ncols == 4
    assert figure.row_labels == ["ground truth", "learned"] * 2
    assert [p.blank for p in figure.panels[-4:]] == [False] * 3 + [True]
    titles = [p.title.split()[0] for p in figure.panels if not p.blank]
    assert titles == ["e1", "e2", "e3", "e4"] * 2 + ["e5", "e6", "e7"] * 2


def test_row_labels_share_one_size(run):
    from renderers import mpldraw

    figure = build(run, "final_comparison")
    drawn = mpldraw.grid_figure(figure, "column", 100)
    labels = [t for ax in drawn.axes for t in ax.texts if t.get_text() in figure.row_labels]
    assert {t.get_text() for t in labels} == {"ground truth", "learned"}
    assert len({t.get_fontsize() for t in labels}) == 1


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf", "text"])
def test_a_wrapped_figure_draws_in_every_format(run, tmp_path, fmt):
    assert render([str(run), "--format", fmt, "--skip-learned", "--skip-metrics",
                   "--skip-ground-truth", "--out", str(tmp_path), "--dpi", "50"]) == 0
    assert (tmp_path / f"final_comparison.{'txt' if fmt == 'text' else fmt}").stat().st_size


def test_tail_and_x_range_leave_out_the_first_steps(run):
    whole = build(run, "cosine_similarity").panels[0]
    tail = build(run, "cosine_similarity", tail=0.5).panels[0]
    window = build(run, "cosine_similarity", x_range=(600.0, 1500.0)).panels[0]
    assert whole.x_axis.view[0] < 100 and tail.x_axis.view == (1000.0, 2000.0)
    assert window.x_axis.view == (600.0, 1500.0)
    assert all(line.steps.min() >= 1000 for line in tail.lines)


def test_tail_beyond_the_rows_is_not_yet_possible(run):
    with pytest.raises(figs.NotYet, match="no metric rows in steps"):
        build(run, "learning_curves", x_range=(5000.0, None))


def test_linear_cos_puts_cos_back_on_a_linear_axis(run):
    panel = build(run, "cosine_similarity", linear_cos=True).panels[0]
    assert not panel.log_y and panel.y_axis.view == (0.0, 1.0)
    log = build(run, "cosine_similarity").panels[0]
    assert log.log_y and log.y_axis.scale == "log"


def test_page_size_puts_curve_panels_side_by_side(run):
    assert build(run, "learning_curves").ncols == 1
    assert build(run, "learning_curves", size="page").ncols == 2


@pytest.mark.slow
def test_every_kind_in_the_table_is_made_by_render(run, tmp_path):
    assert render([str(run), "--out", str(tmp_path), "--dpi", "40"]) == 0
    made = {p.stem.split("_step_")[0] for p in tmp_path.glob("*.png")}
    assert made == {k.name for k in kinds.TABLE if k.group != "compare"}


def test_table_names_match_the_run_format():
    assert kinds.GT_VALUES == rundir.GT_EIGENVALUES and kinds.GT_VECTORS == rundir.GT_EIGENVECTORS
    assert kinds.FINAL == rundir.FINAL_LEARNED
    for kind in kinds.TABLE:
        assert kind.builder == "" or callable(getattr(figs, kind.builder))


@pytest.mark.parametrize(
    "flags, needle",
    [(["--x-range", "abc"], "START:END"), (["--x-range", "500:100"], "after the start"),
     (["--x-range", ":"], "START:END"), (["--tail", "0"], "fraction"),
     (["--tail", "1.5"], "fraction"), (["--size", "huge"], "invalid choice"),
     (["--scale", "global"], "invalid choice"), (["--dpi", "5"], "10..1200")],
)
def test_bad_option_values_are_one_line_exit_2(run, capsys, flags, needle):
    assert render([str(run), *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
