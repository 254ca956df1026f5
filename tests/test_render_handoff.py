"""--plot-during-training: the renderer process must not compete with training for a core."""

from __future__ import annotations

import os
import sys

import pytest

from allo.train import RenderHandoff


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities here")
def test_handoff_process_is_niced(tmp_path, monkeypatch):
    handoff = RenderHandoff(True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    monkeypatch.setattr(handoff, "command", lambda run, *extra: sleeper)
    handoff.export_landed(tmp_path)
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, handoff.process.pid) == min(19, ours + 10)
        assert handoff.process.args == sleeper
    finally:
        handoff.process.kill()
        handoff.process.wait()


def test_handoff_starts_the_renderer_with_jobs_1(tmp_path, monkeypatch):
    seen: list[list[str]] = []

    class Recorder:
        pid = os.getpid()

        def __init__(self, args, **_kw):
            seen.append(list(args))

        def poll(self):
            return 0

    monkeypatch.setattr("allo.train.subprocess.Popen", Recorder)
    monkeypatch.setattr("allo.train.os.setpriority", lambda *a: None, raising=False)
    RenderHandoff(True).export_landed(tmp_path)
    (args,) = seen
    assert args[args.index("--jobs") + 1] == "1" and "--latest-only" in args


def test_exports_that_land_while_the_renderer_is_busy_are_rendered_next(tmp_path, monkeypatch):
    """--seeds: one renderer at a time for all runs; none of them is forgotten."""
    started: list[str] = []

    class Busy:
        pid = os.getpid()
        running = True

        def __init__(self, args, **_kw):
            started.append(args[args.index("render") + 1])

        def poll(self):
            return None if Busy.running else 0

    monkeypatch.setattr("allo.train.subprocess.Popen", Busy)
    monkeypatch.setattr("allo.train.os.setpriority", lambda *a: None, raising=False)
    handoff = RenderHandoff(True)
    for run in ("a", "b", "c", "b"):
        handoff.export_landed(tmp_path / run)
    assert started == [str(tmp_path / "a")] and handoff.pending == [tmp_path / "b",
                                                                      tmp_path / "c"]
    Busy.running = False
    handoff.export_landed(tmp_path / "a")
    assert started[-1] == str(tmp_path / "b")
