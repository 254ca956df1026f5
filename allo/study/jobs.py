"""One job of a study: the ordinary `allo train` on one configuration's seeds.

The same code runs under every executor (a local worker thread, a SLURM array task). For
each seed it takes the run's lock, then: a finished run is skipped, a failed one stays
failed (its message kept), the interrupted or killed ones continue with `allo train
--resume` (those stopped at one checkpoint step together, as one batched model), and the
missing ones start together in one `allo train --seeds` process (one batched model).
Each `allo train` is a child process: a crash in one job cannot take the study down,
and its output goes to logs/<job>.log. study.json is updated after each step.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from allo import rundir
from allo.study import state
from allo.study.spec import Job

# `allo train` exit codes (allo/cli.py): 2 bad input (or a run held by another process)
USAGE = 2


def exited(pid: int, seconds: float) -> bool:
    """Whether child `pid` ends within `seconds`, without reaping it (its Popen.wait may
    be suspended under a signal handler that calls this)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def clear_unstarted(run: Path) -> None:
    """A folder a killed trainer made before its run.json (empty folders, a lock file):
    not a run, and `allo train --run-dir` refuses a non-empty folder that is not one."""
    if run.is_dir() and not (run / rundir.RUN_JSON).exists():
        shutil.rmtree(run)


def ignore_warning_signal() -> None:
    """In the `allo train` child of a SLURM task: SLURM's time-limit warning (USR2, sent
    to every process of the step) is for submitit in the parent; by default it would
    kill the trainer before its checkpoint."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


@dataclass
class JobSpec:
    """What a worker needs to run a job; plain data (a SLURM task receives a copy)."""

    study: str  # the study directory
    key: str
    option_args: list[str]
    seeds: list[int]
    threads: int = 1
    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES

    @classmethod
    def of(cls, folder: Path, job: Job, seeds: list[int] | None = None) -> JobSpec:
        return cls(str(folder.resolve()), job.key, job.option_args(), list(seeds or job.seeds))

    def run_name(self, seed: int) -> str:
        return f"{self.key}__s{seed}"


class JobRunner:
    """Runs one JobSpec; `stop()` (from a signal handler or another thread) asks the
    current `allo train` to stop at its next step and checkpoint (SIGTERM)."""

    def __init__(self, spec: JobSpec, under_slurm: bool = False):
        self.spec = spec
        self.under_slurm = under_slurm  # no threads in this process: preexec_fn is safe
        self.folder = Path(spec.study)
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.errors: dict[str, tuple[str, str | None]] = {}

    def stop(self, grace: float = 0.0, limit: float = 60.0) -> None:
        """Start no more trainers; the current one gets `grace` seconds to end by itself
        (it may have had the signal already: a second one would stop it without its
        checkpoint), then SIGTERM and `limit` seconds to checkpoint, then SIGKILL."""
        self.stopping = True
        child = self.child
        if child is None or exited(child.pid, grace):
            return
        child.send_signal(signal.SIGTERM)
        if not exited(child.pid, limit):
            child.kill()

    def signal_trainer(self, sig: int) -> None:
        """Send `sig` to the current `allo train`, if one is running."""
        child = self.child
        if child is not None and not exited(child.pid, 0.0):
            child.send_signal(sig)

    def run(self) -> dict[str, str]:
        """Every seed's status at the end (finished, failed, interrupted, running)."""
        locks, outcome, fresh, resume = {}, {}, [], []
        for seed in self.spec.seeds:
            name = self.spec.run_name(seed)
            lock = state.RunLock(self.folder, name)
            if not lock.acquire():  # another process (maybe another machine) trains it
                outcome[name] = state.RUNNING
                continue
            locks[name] = lock
            status, _error, _info = state.classify_unlocked(self.folder, name)
            if status == state.MISSING:
                clear_unstarted(self.folder / state.RUNS / name)
                fresh.append(seed)
            elif status == state.INTERRUPTED:
                resume.append(seed)
        try:
            self.record(locks)
            if fresh and not self.stopping:
                names = [self.spec.run_name(s) for s in fresh]
                code = self.train(self.fresh_args(fresh), [locks[n] for n in names])
                self.note_exit(code, names)
                self.record({n: locks[n] for n in names})
            for group in self.resume_groups(resume):
                self.resume(group, locks)
            outcome.update(self.record(locks))
        finally:
            for lock in locks.values():
                lock.release()
        return outcome

    def resume_groups(self, seeds: list[int]) -> list[list[int]]:
        """Seeds whose newest checkpoints share a step go on as one batched model (as
        they were stopped together); the others each alone."""
        groups: dict[int, list[int]] = {}
        for seed in seeds:
            steps = rundir.checkpoint_steps(self.folder / state.RUNS / self.spec.run_name(seed))
            groups.setdefault(steps[-1] if steps else 0, []).append(seed)
        return list(groups.values())

    def resume(self, seeds: list[int], locks: dict[str, state.RunLock]) -> None:
        """`allo train --resume` on these seeds' runs together; where the trainer refuses
        the group (an unusable newest checkpoint leaves them at different steps), each
        run goes on alone."""
        if self.stopping:
            return
        names = [self.spec.run_name(seed) for seed in seeds]
        runs = [str(self.folder / state.RUNS / name) for name in names]
        code = self.train(["--resume", *runs], [locks[name] for name in names])
        if code == USAGE and len(seeds) > 1 and "one at a time" in self.last_error():
            for seed in seeds:
                self.resume([seed], locks)
            return
        self.note_exit(code, names)
        self.record({name: locks[name] for name in names})

    def fresh_args(self, seeds: list[int]) -> list[str]:
        template = str(self.folder / state.RUNS / f"{self.spec.key}__s{{seed}}")
        if len(seeds) == 1:
            return [*self.spec.option_args, "--seed", str(seeds[0]),
                    "--run-dir", template.replace("{seed}", str(seeds[0]))]
        return [*self.spec.option_args, "--seeds", ",".join(map(str, seeds)),
                "--run-dir", template]

    def train(self, args: list[str], locks: list[state.RunLock]) -> int:
        """One `allo train` child holding the runs' locks; its output appended to the log."""
        command = [sys.executable, "-m", "allo.cli", "train", *args,
                   "--threads", str(self.spec.threads)]
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"}
        log = self.folder / state.LOGS / f"{self.spec.key}.log"
        with open(log, "ab") as out:
            out.write(f"\n$ allo train {' '.join(args)}  # {time.ctime()}\n".encode())
            out.flush()
            self.child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, pass_fds=[lock.fd for lock in locks if lock.fd is not None],
                preexec_fn=ignore_warning_signal if self.under_slurm else None)
            if self.stopping:  # the stop came as it started: it had no signal of its own
                self.child.send_signal(signal.SIGTERM)
            code = self.child.wait()
        self.child = None
        return code

    def record(self, locks: dict[str, state.RunLock]) -> dict[str, str]:
        """Write these runs' states (read from their directories) into study.json."""
        entries, outcome = {}, {}
        for name in locks:
            status, error, info = state.classify_unlocked(self.folder, name)
            if name in self.errors and status in (state.MISSING, state.INTERRUPTED):
                status, error = self.errors[name]
            entries[name] = {"status": status, "error": error, "step": info.step,
                             "total_steps": info.total_steps}
            outcome[name] = status
        state.update_study_json(self.folder, entries)
        return outcome

    def note_exit(self, code: int, names: list[str]) -> None:
        """A child that ended badly without a run to show for it: why, from its log."""
        if code == 0 or self.stopping:
            return
        line = self.last_error()
        held = code == USAGE and "lock" in line.lower()  # the run's own lock: busy elsewhere
        for name in names:
            self.errors[name] = (state.RUNNING, None) if held else (state.FAILED, line)

    def last_error(self) -> str:
        """The last line `allo train` wrote (its one-line reason) from the job's log."""
        log = self.folder / state.LOGS / f"{self.spec.key}.log"
        try:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "allo train failed (no log)"
        return lines[-1].strip()[:500] if lines else "allo train failed"
