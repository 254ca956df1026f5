"""`allo train --resume` ends where an uninterrupted run ends (issue 2, item 10).

Same seed, CPU: the final learned eigenvectors agree to 1e-5 and metrics.jsonl holds
the uninterrupted run's steps, each once. Runs are forked warm (see trainproc).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from trainproc import final_vectors, metric_steps, reference_run, train_args, warm

from allo import rundir

STEPS = 200


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("reference"), STEPS)


def assert_same_as(run, reference_run) -> None:
    assert np.abs(final_vectors(run) - final_vectors(reference_run)).max() <= 1e-5
    steps = metric_steps(run)
    assert steps == metric_steps(reference_run)
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), "steps strictly increase"


@pytest.mark.slow
@pytest.mark.parametrize("first", [60, 100])
def test_stopping_early_then_resuming_matches(tmp_path, reference, first):
    layout, ref = reference
    run = tmp_path / "run"
    assert warm().run(*train_args(layout, run, first)).code == 0
    assert rundir.RunReader(run).info().status == "finished"
    result = warm().run("train", "--resume", run, "--steps", STEPS)
    assert result.code == 0, result.stderr
    assert_same_as(run, ref)
    info = rundir.RunReader(run).info()
    assert info.step == STEPS and info.total_steps == STEPS
    assert [r["step"] for r in info.resumes] == [first]


@pytest.mark.slow
def test_resume_from_an_older_checkpoint_drops_later_rows(tmp_path, reference):
    """Rows logged after the checkpoint are recomputed, never duplicated."""
    layout, ref = reference
    run = tmp_path / "run"
    assert warm().run(*train_args(layout, run, 100)).code == 0
    # as if killed at step 100 before its checkpoint landed: only 80 survives, and the
    # last metrics line is half-written
    (run / "checkpoints" / rundir.checkpoint_name(100)).unlink()
    with open(run / rundir.METRICS_JSONL, "a") as handle:
        handle.write('{"step": 110, "loss/to')
    result = warm().run("train", "--resume", run, "--steps", STEPS)
    assert result.code == 0, result.stderr
    assert_same_as(run, ref)
    assert rundir.RunReader(run).info().resumes[-1]["step"] == 80


@pytest.mark.slow
def test_torn_newest_checkpoint_falls_back_to_the_previous(tmp_path, reference):
    layout, ref = reference
    run = tmp_path / "run"
    assert warm().run(*train_args(layout, run, 100)).code == 0
    newest = run / "checkpoints" / rundir.checkpoint_name(100)
    newest.write_bytes(newest.read_bytes()[:500])
    result = warm().run("train", "--resume", run, "--steps", STEPS)
    assert result.code == 0, result.stderr
    assert "skipping" in result.stderr and "checkpoint_step_100.pt" in result.stderr
    assert "Traceback" not in result.stderr
    assert_same_as(run, ref)


@pytest.mark.slow
def test_resume_rewrites_ground_truth_a_kill_prevented(tmp_path, reference):
    """Killed between run.json and the ground-truth files: resume writes them."""
    layout, ref = reference
    run = tmp_path / "run"
    assert warm().run(*train_args(layout, run, 60)).code == 0
    for name in (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS):
        (run / name).unlink()
    result = warm().run("train", "--resume", run, "--steps", STEPS)
    assert result.code == 0, result.stderr
    values, vectors = rundir.RunReader(run).ground_truth()
    ref_values, ref_vectors = rundir.RunReader(ref).ground_truth()
    assert np.array_equal(values, ref_values) and np.array_equal(vectors, ref_vectors)
    assert_same_as(run, ref)


@pytest.mark.slow
def test_resume_without_any_checkpoint_starts_over_identically(tmp_path, reference):
    layout, ref = reference
    run = tmp_path / "run"
    assert warm().run(*train_args(layout, run, 60)).code == 0
    for path in (run / "checkpoints").iterdir():
        path.unlink()
    result = warm().run("train", "--resume", run, "--steps", STEPS)
    assert result.code == 0, result.stderr
    assert_same_as(run, ref)


@pytest.mark.slow
def test_metrics_history_matches_jsonl_after_resume(tmp_path, reference):
    layout, _ = reference
    run = tmp_path / "run"
    assert warm().run(*train_args(layout, run, 60)).code == 0
    assert warm().run("train", "--resume", run, "--steps", 100).code == 0
    history = json.loads((run / rundir.METRICS_HISTORY).read_text())
    assert [r["step"] for r in history] == metric_steps(run) == list(range(10, 101, 10))
