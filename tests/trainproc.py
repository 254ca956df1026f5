"""Run `allo` commands as real, killable processes that start warm.

Importing torch takes seconds on a loaded 2-core CI machine, and the reliability tests
start dozens of trainings. So a server process imports `allo.train` (and torch) once and
forks one child per command. Each child runs `allo.cli.main(argv)` exactly as the
console script does, with its own pid that a test may SIGKILL, SIGTERM or SIGINT, and
with stdout/stderr in files. The server itself runs no torch op, so no thread pool is
shared across the fork; OMP_NUM_THREADS=1 keeps results bit-identical between runs.

`allo_subprocess` runs the real console script instead (cold start) for the few checks
that must see the genuine entry point.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import SMALL_LAYOUT, tiny_flags

# A seconds-long training on SMALL_LAYOUT (conftest: 5x7, 14 free cells): conftest's TINY
# with a smaller network and data set, and frequent logs, exports and checkpoints.
TINY = tiny_flags(num_envs=50, max_episode_length=None, hidden_size=32, batch_size=256,
                  learning_rate=None, log_freq=10, plot_freq=20, checkpoint_freq=20,
                  device="cpu", seed=3,
                  # a constant rate after warm-up: the decay depends on --steps, which the
                  # tests change when they stop a run early and extend it with --resume
                  lr_final_fraction=1)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
       "NO_COLOR": "1", "COLUMNS": "100"}

_SERVER = r"""
import json, os, signal, sys, traceback
import allo.cli, allo.train, allo.train_cli, renderers.command  # the slow imports, once
import torch._dynamo  # noqa: F401  (torch.optim imports it lazily on first use)
out = sys.stdout
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "wait":
        _, status = os.waitpid(req["pid"], 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"code": code}) + "\n"); out.flush()
        continue
    pid = os.fork()
    if pid:
        out.write(json.dumps({"pid": pid}) + "\n"); out.flush()
        continue
    # child: fresh stdio, default signal dispositions, then the CLI
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(req["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        sys.stdin = open(os.devnull)
        sys.stdout = open(1, "w", closefd=False, buffering=1)
        sys.stderr = open(2, "w", closefd=False, buffering=1)
        os.environ.update(req.get("env") or {})
        try:
            code = allo.cli.main(req["argv"])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except KeyboardInterrupt:
            traceback.print_exc()
            code = 130
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


class Proc:
    """One forked `allo` command."""

    def __init__(self, server: WarmServer, pid: int, out: Path, err: Path):
        self.server, self.pid, self._out, self._err = server, pid, out, err
        self.code: int | None = None

    def signal(self, sig: int) -> None:
        if self.code is None:
            os.kill(self.pid, sig)

    def wait(self) -> Result:
        if self.code is None:
            self.code = self.server._ask({"op": "wait", "pid": self.pid})["code"]
        return Result(self.code, self._out.read_text(), self._err.read_text())

    def alive(self) -> bool:
        """True until the child exits (a zombie counts as exited)."""
        try:
            with open(f"/proc/{self.pid}/stat") as handle:
                return handle.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False


class WarmServer:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=ENV, text=True, bufsize=1,
        )
        self.count = 0
        self.logs = Path(tempfile.mkdtemp(prefix="allo-warm-"))

    def _ask(self, request: dict) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the warm allo server died"
        return json.loads(line)

    def start(self, *argv: str, cwd: Path | None = None, env: dict | None = None) -> Proc:
        self.count += 1
        out, err = self.logs / f"{self.count}.out", self.logs / f"{self.count}.err"
        out.write_text(""), err.write_text("")  # a child killed at once leaves them empty
        pid = self._ask({"op": "run", "argv": [str(a) for a in argv],
                         "cwd": str(cwd or os.getcwd()), "stdout": str(out),
                         "stderr": str(err), "env": env})["pid"]
        return Proc(self, pid, out, err)

    def run(self, *argv: str, **kw) -> Result:
        return self.start(*argv, **kw).wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.logs, ignore_errors=True)


_server: WarmServer | None = None


def warm() -> WarmServer:
    """The one server of this pytest process (started on first use)."""
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = WarmServer()
        atexit.register(_server.close)
    return _server


def allo_subprocess(*argv: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real console script, cold start (the genuine entry point)."""
    return subprocess.run([sys.executable, "-m", "allo.cli", *map(str, argv)],
                          capture_output=True, text=True, env=ENV, timeout=timeout, **kw)


def layout_file(folder: Path, text: str = SMALL_LAYOUT, name: str = "small.txt") -> Path:
    path = Path(folder) / name
    path.write_text(text)
    return path


def train_args(layout: Path, run: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "--env-file", str(layout), "--run-dir", str(run), *TINY,
            "--steps", str(steps), *extra]


def reference_run(folder: Path, steps: int) -> tuple[Path, Path]:
    """An uninterrupted run of `steps`: what every interrupted or resumed run must match.

    Returns (layout file, run directory)."""
    layout = layout_file(folder)
    result = warm().run(*train_args(layout, folder / "run", steps))
    assert result.code == 0, result.stderr
    return layout, folder / "run"


def final_vectors(run: Path) -> np.ndarray:
    return np.load(Path(run) / "final_learned_eigenvectors.npy", allow_pickle=False)


def metric_steps(run: Path) -> list[int]:
    from allo import rundir

    return [row["step"] for row in rundir.RunReader(run).metrics()]


def wait_for(predicate, timeout: float = 60.0, every: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def one_line_error(text: str) -> bool:
    """stderr holds exactly one non-empty line and no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text

