"""The watcher thread's logic: incremental reads, late files, resume, exports, read-only."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import numpy as np
import pytest

from allo import rundir
from tui.messages import ExportLanded, GroundTruthLoaded, InfoChanged, MetricsArrived, WatchProblem
from tui.watcher import RunWatcher

try:
    from tests.synthetic import SyntheticRun
except ImportError:  # tests/ itself on sys.path (pytest's default rootdir insertion)
    from synthetic import SyntheticRun


def kinds(messages) -> list[str]:
    return [type(m).__name__ for m in messages]


def test_first_poll_reports_everything_then_only_news(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=1000)
    run.advance(200, log_freq=10, export_freq=100)
    watcher = RunWatcher(run.path)
    first = watcher.poll()
    assert kinds(first) == ["InfoChanged", "GroundTruthLoaded", "MetricsArrived", "ExportLanded"]
    metrics = first[2]
    assert isinstance(metrics, MetricsArrived) and list(metrics.steps[-3:]) == [180, 190, 200]
    export = first[3]
    assert isinstance(export, ExportLanded) and export.step == 200
    assert export.aligned.shape == (run.layout.num_free, 4)
    assert watcher.poll() == []  # nothing new, nothing said

    run.advance(10, log_freq=10, export_freq=100)
    news = watcher.poll()
    assert kinds(news) == ["InfoChanged", "MetricsArrived"]
    assert list(news[1].steps) == [210]


def test_export_is_aligned_to_truth(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=100)
    run.advance(100, log_freq=10, export_freq=100)
    flipped = -run.vectors.copy()  # a perfect export with every sign wrong
    run.writer.export_learned(100, flipped)
    watcher = RunWatcher(run.path)
    export = [m for m in watcher.poll() if isinstance(m, ExportLanded)][0]
    np.testing.assert_allclose(export.aligned, run.vectors, atol=1e-5)
    np.testing.assert_allclose(export.cosines, 1.0, atol=1e-5)


def test_files_appearing_late(tmp_path: Path) -> None:
    path = tmp_path / "run"
    run = SyntheticRun(path, d=4)
    # Only run.json so far: the trainer has not written ground truth or metrics yet.
    for name in (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS):
        (path / name).rename(tmp_path / name)
    watcher = RunWatcher(path)
    assert kinds(watcher.poll()) == ["InfoChanged"]
    assert watcher.poll() == []
    for name in (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS):
        (tmp_path / name).rename(path / name)
    assert kinds(watcher.poll()) == ["GroundTruthLoaded"]
    run.advance(100, log_freq=50, export_freq=100)
    assert kinds(watcher.poll()) == ["InfoChanged", "MetricsArrived", "ExportLanded"]


def test_unfinished_last_line_waits_for_its_end(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    run.advance(20, log_freq=10, export_freq=1000)
    watcher = RunWatcher(run.path)
    watcher.poll()
    with open(run.path / rundir.METRICS_JSONL, "a", encoding="utf-8") as handle:
        handle.write('{"step": 30, "cos/mean": 0.')
    assert [m for m in watcher.poll() if isinstance(m, MetricsArrived)] == []
    with open(run.path / rundir.METRICS_JSONL, "a", encoding="utf-8") as handle:
        handle.write("5}\n")
    arrived = [m for m in watcher.poll() if isinstance(m, MetricsArrived)]
    assert len(arrived) == 1 and list(arrived[0].steps) == [30]
    assert arrived[0].columns["cos/mean"][0] == 0.5


def test_resume_truncation_resets_series(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    run.advance(100, log_freq=10, export_freq=1000)
    watcher = RunWatcher(run.path)
    watcher.poll()
    run.writer.truncate_metrics_after(50)  # what --resume does
    arrived = [m for m in watcher.poll() if isinstance(m, MetricsArrived)]
    assert arrived and arrived[0].reset
    assert list(arrived[0].steps) == [10, 20, 30, 40, 50]


def test_bad_line_is_reported_once_and_skipped(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    run.advance(10, log_freq=10, export_freq=1000)
    with open(run.path / rundir.METRICS_JSONL, "a", encoding="utf-8") as handle:
        handle.write("not json\n")
    watcher = RunWatcher(run.path)
    problems = [m for m in watcher.poll() if isinstance(m, WatchProblem)]
    assert len(problems) == 1 and "not a JSON object" in problems[0].text
    assert [m for m in watcher.poll() if isinstance(m, WatchProblem)] == []


def test_finish_switches_to_final_export(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=100)
    run.advance(100, log_freq=10, export_freq=50)
    watcher = RunWatcher(run.path)
    watcher.poll()
    run.finish()
    news = watcher.poll()
    info = [m for m in news if isinstance(m, InfoChanged)][0]
    assert info.info.status == "finished"
    assert [m.step for m in news if isinstance(m, ExportLanded)] == ["final"]


def test_truth_shape_mismatch_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    rundir.atomic_save_npy(run.path / rundir.GT_EIGENVECTORS, np.zeros((3, 4)))
    messages = RunWatcher(run.path).poll()
    assert not any(isinstance(m, GroundTruthLoaded) for m in messages)
    assert any("free cells" in m.text for m in messages if isinstance(m, WatchProblem))


def test_watcher_never_opens_run_files_for_writing(tmp_path: Path, monkeypatch) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=200)
    run.advance(200, log_freq=10, export_freq=100)
    run.finish()
    before = sorted(p.name for p in run.path.rglob("*"))
    root = str(run.path.resolve())
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, Path)) and str(Path(file).resolve()).startswith(root):
            assert not set(mode) & set("wax+"), f"opened {file} with mode {mode}"
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(file, flags, *args, **kwargs):
        if str(Path(file).resolve()).startswith(root):
            assert not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT), f"os.open({file}) to write"
        return real_os_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    watcher = RunWatcher(run.path)
    assert len(watcher.poll()) >= 4
    watcher.poll()
    monkeypatch.undo()
    assert sorted(p.name for p in run.path.rglob("*")) == before


def test_missing_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(rundir.NotARunError):
        RunWatcher(tmp_path / "nope")
