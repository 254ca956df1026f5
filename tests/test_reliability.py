"""Kill it, stop it, read it while it runs: what survives (issue 6, docs/run-format.md).

Trainings run as real processes (forked warm by `trainproc`, see there) on an 18-cell
layout with a tiny network, so a whole run takes about a second.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from trainproc import (
    ENV,
    final_vectors,
    metric_steps,
    reference_run,
    train_args,
    wait_for,
    warm,
)

from allo import rundir

STEPS = 500
HAS_WATCH = importlib.util.find_spec("tui.command") is not None
# Row keys that depend on the wall clock, not on the computation.
CLOCK_KEYS = ("time", "sps")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: the result every interrupted one must reproduce."""
    layout, run = reference_run(tmp_path_factory.mktemp("reference"), STEPS)
    return layout, final_vectors(run), rundir.RunReader(run).metrics()


def temporaries(run: Path) -> list[str]:
    return [f"{folder.name}/{name}" for folder in (run, run / rundir.CHECKPOINTS)
            for name in _names(folder) if name.endswith(".tmp")]


def same_rows(rows: list[dict], expected: list[dict]) -> None:
    """Rows equal the reference's, step by step, clock fields aside."""
    assert [r["step"] for r in rows] == [r["step"] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        for key, value in want.items():
            if key not in CLOCK_KEYS:
                assert got[key] == value, (got["step"], key)


def check_readers(run: Path) -> None:
    """Every reader works on whatever a kill left behind."""
    if not rundir.is_run_dir(run):
        return
    reader = rundir.RunReader(run)
    info = reader.info()
    assert info.status in rundir.STATUSES
    reader.env()
    if (run / rundir.GT_EIGENVECTORS).exists():
        reader.ground_truth()
    for step in reader.export_steps():
        assert reader.learned(step).shape == (14, 3)
    rows, problems = reader.metrics_with_problems()
    assert problems == []
    steps = [row["step"] for row in rows]
    assert steps == sorted(set(steps)), "metric rows duplicated or out of order"
    tail_rows, _ = reader.tail().read_new()
    assert [r["step"] for r in tail_rows] == steps


def check_render_and_watch(run: Path) -> None:
    if not rundir.is_run_dir(run):
        return
    result = warm().run("render", run, "--format", "text", "--latest-only", "--quiet")
    assert result.code in (0, 1) and "Traceback" not in result.stderr, result.stderr
    if HAS_WATCH:
        result = warm().run("watch", run, "--once")
        assert result.code == 0 and "Traceback" not in result.stderr, result.stderr


def kill_when(proc, predicate, timeout: float = 5.0) -> bool:
    """SIGKILL the moment `predicate` holds; False if the process ended first."""
    def ready():
        return predicate() or not proc.alive()

    wait_for(ready, timeout, every=0.0002)
    if not proc.alive():
        return False
    proc.signal(signal.SIGKILL)
    return True


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path, reference):
    layout, expected_final, expected_rows = reference
    run = tmp_path / "run"
    rng = random.Random(6)
    checkpoint_dir = run / rundir.CHECKPOINTS

    def export_tmp():
        return any(n.startswith(".learned_eigenvectors_step_") for n in _names(run))

    def checkpoint_tmp():
        return any(n.startswith(".checkpoint_step_") for n in _names(checkpoint_dir))

    # a kill after a random delay must land inside the run on any machine: draw the
    # delay against how long an uninterrupted run takes here (0.65 s on one VM, 1.5 s on
    # a slower one, where a fixed 0-0.5 s used to suit)
    started = time.monotonic()
    assert warm().run(*train_args(layout, tmp_path / "timed", STEPS)).code == 0
    longest_delay = 0.3 * (time.monotonic() - started)
    kills, landed = 0, {"export": 0, "checkpoint": 0, "other": 0}
    cycle = 0
    while cycle < 60 and (kills < 12 or not (landed["export"] and landed["checkpoint"])):
        cycle += 1
        server = warm()
        if rundir.is_run_dir(run):
            proc = server.start("train", "--resume", run)
        else:
            proc = server.start(*train_args(layout, run, STEPS))
        before = set(temporaries(run))
        mode = ("delay", "export", "checkpoint")[cycle % 3]
        if mode == "delay":
            wait_for(lambda p=proc: not p.alive(), rng.uniform(0.0, longest_delay))
            killed = proc.alive()
            if killed:
                proc.signal(signal.SIGKILL)
        else:
            killed = kill_when(proc, export_tmp if mode == "export" else checkpoint_tmp)
        result = proc.wait()
        if not killed or result.code == 0:  # the run finished before the kill
            assert result.code == 0, result.stderr
            break
        assert result.code == -signal.SIGKILL, result.stderr
        kills += 1
        left = set(temporaries(run)) - before  # left by this kill: it hit a write
        if any(".learned_eigenvectors_step_" in n for n in left):
            landed["export"] += 1
        elif any(".checkpoint_step_" in n for n in left):
            landed["checkpoint"] += 1
        elif left:
            landed["other"] += 1

        # after every kill: readers, render, watch; rows up to the checkpoint intact
        check_readers(run)
        check_render_and_watch(run)
        if rundir.is_run_dir(run):
            last = max(rundir.checkpoint_steps(run), default=0)
            rows = [r for r in rundir.RunReader(run).metrics() if r["step"] <= last]
            same_rows(rows, [r for r in expected_rows if r["step"] <= last])

    print(f"{kills} kills in {cycle} cycles; leftover temporaries: {landed}")
    assert kills >= 10, f"only {kills} kills landed before the run finished"
    assert landed["export"] and landed["checkpoint"], landed

    # the last resume runs to the end
    result = warm().run("train", "--resume", run)
    assert result.code == 0, result.stderr
    assert np.abs(final_vectors(run) - expected_final).max() <= 1e-5
    same_rows(rundir.RunReader(run).metrics(), expected_rows)
    assert rundir.RunReader(run).info().status == "finished"
    assert temporaries(run) == [], "a resume leaves no stale temporary files"


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_sigterm_stop_checkpoint_and_resume(tmp_path, reference, sig, code):
    layout, expected_final, expected_rows = reference
    run = tmp_path / "run"
    proc = warm().start(*train_args(layout, run, STEPS))
    # wait until training is under way (a first metric row), then signal
    assert wait_for(lambda: metric_steps(run) if (run / rundir.METRICS_JSONL).exists() else 0)
    proc.signal(sig)
    result = proc.wait()
    assert result.code == code, result.stderr
    info = rundir.RunReader(run).info()
    assert info.status == "interrupted" and signal.Signals(sig).name in info.message
    stopped = info.step
    assert 0 < stopped < STEPS
    assert rundir.checkpoint_steps(run)[-1] == stopped, "a checkpoint at the stopping step"
    assert "Traceback" not in result.stderr and f"--resume {run}" in result.stderr

    result = warm().run("train", "--resume", run)
    assert result.code == 0, result.stderr
    assert np.abs(final_vectors(run) - expected_final).max() <= 1e-5
    same_rows(rundir.RunReader(run).metrics(), expected_rows)
    resumes = rundir.RunReader(run).info().resumes
    assert [entry["step"] for entry in resumes] == [stopped]


@pytest.mark.slow
def test_sigterm_real_console_script(tmp_path, reference):
    """The genuine entry point (cold start): SIGTERM is exit 143, status interrupted."""
    layout = reference[0]
    run = tmp_path / "run"
    argv = train_args(layout, run, 100000)
    proc = subprocess.Popen([sys.executable, "-m", "allo.cli", *argv], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (run / rundir.METRICS_JSONL).exists(), timeout=90)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert rundir.RunReader(run).info().status == "interrupted"
    assert out.strip().splitlines()[-1] == str(run)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_collecting_data_ends_every_seed_interrupted_at_once(tmp_path, reference,
                                                                         sig, code):
    """Two seeds' data sets are built side by side (minutes on a large grid): a signal
    before the first step ends both within seconds, each run interrupted with a message,
    not left 'running' while the collection finishes."""
    layout = reference[0]
    runs = [tmp_path / "run0", tmp_path / "run1"]
    argv = [*train_args(layout, tmp_path / "run{seed}", 100), "--seeds", "0,1",
            "--num-envs", "2000000"]
    proc = subprocess.Popen([sys.executable, "-m", "allo.cli", *argv], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: all((run / rundir.RUN_JSON).exists() for run in runs),
                        timeout=90)
        time.sleep(1.0)  # inside the collection
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    for run in runs:
        info = rundir.RunReader(run).info()
        assert info.status == "interrupted" and info.step == 0
        assert f"stopped by {signal.Signals(sig).name} while collecting" in info.message
        assert str(run) in out.splitlines()
        assert not (run / rundir.METRICS_JSONL).exists() or metric_steps(run) == []
    # one command resumes them, together as they were stopped
    assert f"resume with: allo train --resume {runs[0]} {runs[1]}" in err.splitlines()


@pytest.mark.slow
def test_readers_against_a_live_writer(tmp_path, reference):
    """Every reader, in a loop, over a training's whole length: no error, no torn read."""
    layout = reference[0]
    run = tmp_path / "run"
    proc = warm().start(*train_args(layout, run, 200, "--log-freq", "1", "--plot-freq", "5"))
    tail = rundir.MetricsTail(run / rundir.METRICS_JSONL)
    tailed: list[int] = []
    reads = exports_read = 0
    while proc.alive():
        if not rundir.is_run_dir(run):
            continue
        reader = rundir.RunReader(run)
        info = reader.info()
        assert info.format_version == rundir.FORMAT_VERSION
        reader.env()
        if (run / rundir.GT_EIGENVECTORS).exists():
            values, vectors = reader.ground_truth()
            assert vectors.shape == (14, 3) and values.shape == (3,)
        steps = reader.export_steps()
        if steps:
            assert reader.learned(steps[-1]).shape == (14, 3)
            exports_read += 1
        new, reset = tail.read_new()
        assert not reset
        tailed += [row["step"] for row in new]
        rows, problems = reader.metrics_with_problems()  # read after the tail: a superset
        assert problems == []
        assert tailed == [row["step"] for row in rows][: len(tailed)]
        if (run / rundir.METRICS_HISTORY).exists():
            history = rundir.read_json(run / rundir.METRICS_HISTORY)
            assert isinstance(history, list)
        reads += 1
    result = proc.wait()
    assert result.code == 0, result.stderr
    new, _ = tail.read_new()
    tailed += [row["step"] for row in new]
    assert tailed == list(range(1, 201))
    assert reads > 10 and exports_read > 3, (reads, exports_read)


@pytest.mark.slow
def test_divergence_fails_the_run_and_keeps_the_last_good_files(tmp_path, reference):
    layout = reference[0]
    run = tmp_path / "run"
    # the largest learning rate allowed overflows the float32 network at once
    result = warm().run(*train_args(layout, run, STEPS, "--learning-rate", "1e6"))
    assert result.code == 1, result.stderr
    info = rundir.RunReader(run).info()
    assert info.status == "failed"
    assert "diverged" in info.message and "not finite" in info.message
    assert "Traceback" not in result.stderr and "diverged" in result.stderr
    # the last good export and checkpoint are there and finite
    reader = rundir.RunReader(run)
    for step in reader.export_steps():
        assert np.isfinite(reader.learned(step)).all()
    assert not (run / rundir.FINAL_LEARNED).exists()


@pytest.mark.slow
def test_divergence_mid_run_keeps_good_export_and_checkpoint(tmp_path, monkeypatch, reference):
    """NaN injected into the duals after step 45 is caught at the log step 50."""
    torch = pytest.importorskip("torch")
    from allo import train as train_module
    from allo.config import TrainConfig

    layout = reference[0]
    original = train_module.Learner.ascend
    calls = {"n": 0}

    def poisoned(self, terms):
        original(self, terms)
        calls["n"] += 1
        if calls["n"] >= 45:
            self.duals.fill_(float("nan"))

    monkeypatch.setattr(train_module.Learner, "ascend", poisoned)
    cfg = TrainConfig(env_file=str(layout), run_dir=str(tmp_path / "run"), num_envs=50,
                      num_steps=100, hidden_size=32, hidden_layers=2, batch_size=256,
                      num_eigenvectors=3, num_gradient_steps=STEPS, log_freq=10,
                      plot_freq=20, checkpoint_freq=20, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = train_module.train(cfg)
    finally:
        torch.set_num_threads(threads)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert outcome.message.startswith("diverged at step 50: loss/total is not finite")
    reader = rundir.RunReader(outcome.run_dir)
    info = reader.info()
    assert info.status == "failed" and info.message == outcome.message
    assert reader.export_steps() == [20, 40] and reader.checkpoint_steps() == [20, 40]
    assert all(np.isfinite(reader.learned(s)).all() for s in (20, 40))
    assert reader.final() is None
    # the failing row is logged (non-finite values as null) so the curves show it
    assert [r["step"] for r in reader.metrics()][-1] == 50


def _tiny_cli(layout: Path, run: Path, steps: int = 100) -> list[str]:
    return train_args(layout, run, steps)[1:]  # without the "train" subcommand


@pytest.mark.slow
@pytest.mark.parametrize("after", [0, 3, 12])
def test_disk_full_is_one_line_and_leaves_no_partial_files(tmp_path, monkeypatch, capsys,
                                                         reference, after):
    """ENOSPC on the `after`-th atomic write (0: the very first, run.json)."""
    import errno

    from allo import train_cli

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    run = tmp_path / "run"
    code = train_cli.main(_tiny_cli(reference[0], run))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    errors = [line for line in err.splitlines()  # not progress, not notes
              if line.startswith("allo") and not line.startswith("allo: note:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], err
    assert str(run) in errors[0], "the message names the file"
    monkeypatch.undo()
    assert temporaries(run) == [], "a failed write leaves no partial file"
    if rundir.is_run_dir(run):
        check_readers(run)


@pytest.mark.slow
def test_unwritable_results_dir_is_one_line(tmp_path, capsys, reference):
    """A results 'directory' that is a file (chmod does not stop root, this does)."""
    from allo import train_cli

    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    code = train_cli.main(_tiny_cli(reference[0], blocker / "run"))
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("allo")]) == 1, err
    assert blocker.read_text() == "not a folder"
