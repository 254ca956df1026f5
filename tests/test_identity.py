"""A resume takes only its own run: checkpoint identity, the recorded layout and the
ground truth must agree (allo/identity.py, docs/run-format.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from trainproc import SMALL_LAYOUT, layout_file, one_line_error, train_args, warm

from allo import identity, rundir
from allo.config import TrainConfig
from allo.layouts import parse_layout

# Same 5x7 shape and the same 14 free cells as SMALL_LAYOUT, another grid.
OTHER_LAYOUT = "XXXXXXX\nX     X\nX X   X\nX     X\nXXXXXXX\n"
# No wall on the first or last row: the grid must be trained as the file shows it.
OPEN_LAYOUT = "       \nX  X  X\n       \n"


def train(folder: Path, name: str, text: str, steps: int, *extra: str) -> Path:
    layout = layout_file(folder, text, f"{name}.txt")
    result = warm().run(*train_args(layout, folder / name, steps, *extra))
    assert result.code == 0, result.stderr
    return folder / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("identity")
    return {"mine": train(folder, "mine", SMALL_LAYOUT, 40),
            "seed4": train(folder, "seed4", SMALL_LAYOUT, 40, "--seed", "4"),
            "other": train(folder, "other", OTHER_LAYOUT, 40)}


def copy_run(runs: dict, tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs["mine"], tmp_path / "run"))


def ckpt(run: Path, step: int) -> Path:
    return run / rundir.CHECKPOINTS / rundir.checkpoint_name(step)


def resume(run: Path, steps: int = 60):
    return warm().run("train", "--resume", run, "--steps", str(steps))


@pytest.mark.slow
@pytest.mark.parametrize("source,why", [("seed4", "belongs to seed 4, this run is seed 3"),
                                        ("other", "trained on another layout")])
def test_a_checkpoint_copied_from_another_run_is_refused(runs, tmp_path, source, why):
    run = copy_run(runs, tmp_path)
    for path in (run / rundir.CHECKPOINTS).iterdir():
        path.unlink()
    shutil.copy(ckpt(runs[source], 40), ckpt(run, 40))
    rows = (run / rundir.METRICS_JSONL).read_bytes()
    result = resume(run)
    assert result.code == 2, result.stderr
    assert why in result.stderr and "none of 1 checkpoint(s) is usable" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 2
    assert (run / rundir.METRICS_JSONL).read_bytes() == rows  # nothing written


@pytest.mark.slow
def test_a_foreign_newest_checkpoint_falls_back_to_the_runs_own(runs, tmp_path):
    run = copy_run(runs, tmp_path)
    shutil.copy(ckpt(runs["seed4"], 40), ckpt(run, 40))
    result = resume(run)
    assert result.code == 0, result.stderr
    assert "belongs to seed 4" in result.stderr
    assert rundir.RunReader(run).info().resumes[-1]["step"] == 20


@pytest.mark.slow
def test_a_renamed_checkpoint_is_refused(runs, tmp_path):
    run = copy_run(runs, tmp_path)
    ckpt(run, 40).unlink()
    ckpt(run, 20).rename(ckpt(run, 40))
    result = resume(run)
    assert result.code == 2, result.stderr
    assert "holds step 20, not the step 40 of its name" in result.stderr


@pytest.mark.slow
def test_an_edited_config_does_not_resume_the_checkpoint(runs, tmp_path):
    run = copy_run(runs, tmp_path)
    info = json.loads((run / rundir.RUN_JSON).read_text())
    info["config"]["lr_duals"] = 0.5
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    result = resume(run)
    assert result.code == 2, result.stderr
    assert "another configuration" in result.stderr


@pytest.mark.slow
def test_an_edited_layout_text_is_refused(runs, tmp_path):
    run = copy_run(runs, tmp_path)
    info = json.loads((run / rundir.RUN_JSON).read_text())
    info["env"]["layout"] = info["env"]["layout"].replace("X", ".", 3)
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    result = resume(run)
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert "disagree" in result.stderr


@pytest.mark.slow
def test_a_consistently_edited_layout_meets_the_ground_truth(runs, tmp_path):
    """run.json rewritten to another grid of the same size, checkpoints gone: the ground
    truth on disk belongs to the original grid, so nothing resumes."""
    run = copy_run(runs, tmp_path)
    shutil.rmtree(run / rundir.CHECKPOINTS)
    info = json.loads((run / rundir.RUN_JSON).read_text())
    info["env"] = {**parse_layout(OTHER_LAYOUT, "small").record(),
                   "doors": info["env"]["doors"]}
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    result = resume(run)
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert "gt_eigenvalues.npy is not the spectrum of the layout" in result.stderr


@pytest.mark.slow
def test_an_open_border_layout_trains_and_resumes_the_grid_of_its_file(tmp_path):
    run = train(tmp_path, "open", OPEN_LAYOUT, 20)
    expected = parse_layout(OPEN_LAYOUT)
    assert expected.num_free == 7 * 3 - 3
    info = rundir.RunReader(run).info()
    assert info.env["num_free"] == expected.num_free and info.env["height"] == 3
    assert np.load(run / rundir.GT_EIGENVECTORS).shape == (expected.num_free, 3)
    result = resume(run, 40)
    assert result.code == 0, result.stderr
    reader = rundir.RunReader(run)
    assert reader.info().env["num_free"] == expected.num_free
    assert reader.final().shape == (expected.num_free, 3)


def test_identity_hashes_what_a_resume_may_not_change():
    layout = parse_layout(SMALL_LAYOUT)
    base = identity.run_identity(TrainConfig(), layout)
    moved = TrainConfig(run_dir="/elsewhere", results_dir="r", device="cpu",
                        num_gradient_steps=99, log_freq=7, threads=3)
    assert identity.run_identity(moved, layout) == base
    assert identity.run_identity(TrainConfig(lr_duals=1), layout) == identity.run_identity(
        TrainConfig(lr_duals=1.0), layout)
    assert identity.run_identity(TrainConfig(hidden_size=64), layout) != base
    assert identity.run_identity(TrainConfig(seed=1), layout)["seed"] == 1
    other = parse_layout(OTHER_LAYOUT)
    assert identity.run_identity(TrainConfig(), other)["layout_hash"] != base["layout_hash"]
