"""--plot-during-training: the renderer process must not compete with training for a core."""

from __future__ import annotations

import os
import sys

import pytest

from allo.train import RenderHandoff


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities here")
def test_handoff_process_is_niced(tmp_path, monkeypatch):
    handoff = RenderHandoff(tmp_path, True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    monkeypatch.setattr(handoff, "command", lambda *extra: sleeper)
    handoff.export_landed()
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
    RenderHandoff(tmp_path, True).export_landed()
    (args,) = seen
    assert args[args.index("--jobs") + 1] == "1" and "--latest-only" in args
