"""Short CPU trainings: the trainer learns, the CLI prints what scripts rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config, tiny_flags

from allo import rundir
from allo.config import TrainConfig
from allo.dataset import collect_law
from allo.layouts import load_layout_file
from allo.metrics import rayleigh_eigenvalues
from allo.train import train

# conftest's tiny training, run long enough to learn the eigenvectors of TWO_ROOMS
LEARNS = {"num_gradient_steps": 3000, "log_freq": 300, "plot_freq": 1500, "checkpoint_freq": 500}


def learning_config(layout: Path, run: Path, **changes) -> TrainConfig:
    return tiny_config(layout, run, **{**LEARNS, **changes})


@pytest.mark.slow
def test_short_training_learns_the_eigenvectors(small_layout, tmp_path):
    outcome = train(learning_config(small_layout, tmp_path / "run"))
    assert outcome.status == "finished" and outcome.exit_code == 0
    rows = rundir.RunReader(outcome.run_dir).metrics()
    assert [r["step"] for r in rows] == list(range(300, 3001, 300))
    assert rows[-1]["cos/mean"] >= 0.98
    assert rows[-1]["eig/mean_abs_error"] <= 0.02
    assert rows[0]["cos/mean"] < rows[-1]["cos/mean"]  # it learned, it did not start there


@pytest.mark.parametrize("batch_size", [None, 2048])
def test_a_rows_table_from_the_next_steps_forward_is_the_one_of_its_step(
        small_layout, tmp_path, batch_size):
    """Between exports an eager row reuses the next step's forward pass for its table;
    every row of an export step has a forward of its own. The rows must agree."""
    rows = []
    for name, plot_freq in (("next_forward", 1000), ("own_forward", 5)):
        outcome = train(learning_config(small_layout, tmp_path / name, num_gradient_steps=40,
                                    log_freq=5, plot_freq=plot_freq, checkpoint_freq=1000,
                                    batch_size=batch_size))
        rows.append(rundir.RunReader(outcome.run_dir).metrics())
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == list(range(5, 41, 5))
    for deferred, own in zip(*rows, strict=True):
        for key in ("cos/per_vector", "eig/rayleigh", "loss/total", "eig/estimate"):
            np.testing.assert_allclose(deferred[key], own[key], rtol=1e-6, atol=1e-9)


def test_run_directory_is_complete_and_consistent(small_layout, tmp_path):
    outcome = train(learning_config(small_layout, tmp_path / "run", num_gradient_steps=200,
                                log_freq=50, plot_freq=100, checkpoint_freq=100))
    reader = rundir.RunReader(outcome.run_dir)
    info = reader.info()
    assert info.status == "finished" and info.step == 200
    assert info.eigenvalue_convention == "laplacian_I_minus_T"
    assert info.config["num_gradient_steps"] == 200
    n = info.env["num_free"]
    values, vectors = reader.ground_truth()
    assert values.shape == (3,) and vectors.shape == (n, 3)
    assert reader.export_steps() == [100, 200]
    assert reader.final().shape == (n, 3)
    assert reader.checkpoint_steps() == [100, 200]
    history = rundir.read_json(outcome.run_dir / rundir.METRICS_HISTORY)
    assert history == reader.metrics()
    row = history[-1]
    for key in ("loss/total", "loss/graph", "loss/dual", "loss/barrier", "orth/error",
                "grad/norm", "barrier/coef", "dual/diag", "eig/estimate", "eig/abs_error",
                "eig/mean_rel_error", "cos/per_vector", "cos/mean", "sps", "time"):
        assert key in row, key
    np.testing.assert_allclose(row["eig/estimate"], -np.asarray(row["dual/diag"]) / 2)
    # the Rayleigh quotients of the final table under this run's own data (same seed,
    # same data set: the trainer's collection is deterministic)
    cfg = learning_config(small_layout, tmp_path / "unused")
    law = collect_law(load_layout_file(small_layout), cfg, cfg.seed, cfg.num_envs)
    np.testing.assert_allclose(row["eig/rayleigh"],
                               rayleigh_eigenvalues(reader.final(), law), rtol=1e-4)
    assert row["eig/rayleigh_mean_rel_error"] == pytest.approx(
        np.mean(np.abs(np.asarray(row["eig/rayleigh"][1:]) - values[1:]) / values[1:]))


def test_ggdo_objective_runs_and_reports_rayleigh_estimates(small_layout, tmp_path):
    outcome = train(learning_config(small_layout, tmp_path / "run", objective="ggdo",
                                num_gradient_steps=200, log_freq=50))
    row = rundir.RunReader(outcome.run_dir).metrics()[-1]
    assert "dual/diag" not in row and len(row["eig/estimate"]) == 3


@pytest.mark.slow
def test_cli_prints_summary_and_run_dir_last(small_layout, tmp_path):
    run = tmp_path / "cli_run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "allo.cli", "train", "--env-file", str(small_layout),
         "--run-dir", str(run), "--steps", "100", "--log-freq", "50", *tiny_flags()],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(run)
    assert lines[-2].startswith("finished:") and "mean|cos|" in lines[-2]
    assert "Traceback" not in result.stderr


def test_existing_run_is_not_overwritten(small_layout, tmp_path):
    run = tmp_path / "run"
    train(learning_config(small_layout, run, num_gradient_steps=10, log_freq=5))
    from allo.train import TrainError

    with pytest.raises(TrainError, match="already holds a run"):
        train(learning_config(small_layout, run, num_gradient_steps=10))


def test_training_leaves_ieee_floats_for_the_rest_of_the_process(small_layout, tmp_path):
    """Flushing denormals is process-wide; train() must restore it (hypothesis and
    numpy code running later in the same process rely on subnormal floats)."""
    train(learning_config(small_layout, tmp_path / "run", num_gradient_steps=10, log_freq=5))
    assert subnormals_survive()


def subnormals_survive() -> bool:
    tiny = sys.float_info.min
    return bool(np.float64(tiny) / np.float64(4.0) * np.float64(4.0) == tiny)


def test_a_dead_network_is_a_failed_run_not_a_finished_one(small_layout, tmp_path, monkeypatch):
    """All ReLUs dead: every cell gets the same output, forever. Say so and stop."""
    from allo.learner import Learner

    original = Learner.step

    def kill_relus(self):
        terms = original(self)
        if int(self.step_index) == 40:
            with torch.no_grad():
                self.model.biases[0].fill_(-1e3)  # no input reaches the first layer's output
        return terms

    monkeypatch.setattr(Learner, "step", kill_relus)
    outcome = train(learning_config(small_layout, tmp_path / "run", num_gradient_steps=200,
                                log_freq=20, checkpoint_freq=20))
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert "collapsed at step 40" in outcome.message
    info = rundir.RunReader(outcome.run_dir).info()
    assert info.status == "failed" and "dead ReLUs" in info.message
    assert rundir.checkpoint_steps(outcome.run_dir)[-1] == 20  # the last good one stays


OPEN_ROOM = "XXXXX\nX   X\nX   X\nX   X\nXXXXX\n"  # lambda_2 = lambda_3 by symmetry


def test_an_eigenspace_cut_at_d_is_completed_for_every_reader(tmp_path):
    """d = 2 on a symmetric room cuts the eigenspace of lambda_2 = lambda_3 in half: the
    run directory keeps its other half, and the trainer, the figures and the TUI watcher
    all score the learned e_2 against the whole eigenspace."""
    from renderers.figures import RunData, learned_figure
    from tui.messages import ExportLanded
    from tui.watcher import RunWatcher

    layout = tmp_path / "open.txt"
    layout.write_text(OPEN_ROOM)
    outcome = train(learning_config(layout, tmp_path / "run", num_eigenvectors=2,
                                num_gradient_steps=300, log_freq=100, plot_freq=300,
                                checkpoint_freq=300))
    reader = rundir.RunReader(outcome.run_dir)
    values, vectors = reader.ground_truth()
    full_values, full_vectors = reader.scoring_truth()
    assert vectors.shape == (9, 2) and full_vectors.shape == (9, 3)
    assert full_values[2] == pytest.approx(full_values[1])
    np.testing.assert_array_equal(full_vectors[:, :2], vectors)
    logged = reader.metrics()[-1]["cos/per_vector"]
    figure = learned_figure(RunData(reader), "final")
    titled = [float(p.title.split("|cos| ")[1].split()[0]) for p in figure.panels]
    assert titled == pytest.approx(logged, abs=6e-4)  # titles print 3 decimals
    watcher = RunWatcher(outcome.run_dir)
    messages = [m for _ in range(3) for m in watcher.poll()]
    landed = [m for m in messages if isinstance(m, ExportLanded)]
    assert landed and landed[-1].step == "final"
    assert landed[-1].cosines == pytest.approx(logged, abs=1e-5)


def test_scoring_truth_is_the_top_d_without_a_completion(tmp_path):
    writer = rundir.RunWriter(tmp_path / "run")
    writer.write_info({"name": "run", "d": 2})
    values, vectors = np.array([0.0, 0.5]), np.eye(3)[:, :2]
    writer.write_ground_truth(values, vectors, completion=(np.zeros(0), np.zeros((3, 0))))
    reader = rundir.RunReader(tmp_path / "run")
    assert not (tmp_path / "run" / rundir.GT_COMPLETION_VALUES).exists()
    got_values, got_vectors = reader.scoring_truth()
    np.testing.assert_array_equal(got_values, values)
    assert got_vectors.shape == (3, 2)
