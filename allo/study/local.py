"""The local executor: a study's jobs in parallel processes on this machine.

As many jobs run at once as the machine fits: on CPU one per core (at most the number of
jobs), the cores split between them as torch threads; with GPUs one job per GPU (its
CUDA_VISIBLE_DEVICES). One rich progress display follows the whole study by reading the
runs' run.json (step / total steps), never the trainers' output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from allo import rundir, signals
from allo.study import state
from allo.study.jobs import JobRunner, JobSpec

# How long a trainer asked to stop (SIGTERM) may take to checkpoint before it is forced.
STOP_GRACE = 60.0


class Terminated(KeyboardInterrupt):
    """SIGTERM to `allo study` itself (`kill`, `timeout`, a scheduler): unlike a Ctrl-C at
    the terminal, which reaches the whole process group, its trainers did not get it."""

    exit_code = 143


def terminate_as_interrupt() -> contextlib.AbstractContextManager:
    """SIGTERM raises Terminated in the main thread while inside (a handler can only be
    set there; elsewhere the default stays)."""

    def handle(signum: int, frame: object) -> None:
        raise Terminated

    return signals.handling_in_main_thread([signal.SIGTERM], handle)


def gpu_count() -> int:
    """GPUs visible here, without importing torch (nvidia-smi; CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def plan_slots(jobs: int, cpus: int, gpus: int, limit: int | None) -> list[dict]:
    """One entry per parallel worker: its torch threads and environment."""
    if gpus > 0:
        workers = min(jobs, limit or gpus, gpus)
        threads = max(1, cpus // max(1, workers))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(gpus))))
        ids = [d.strip() for d in visible.split(",")]
        return [{"threads": threads, "env": {"CUDA_VISIBLE_DEVICES": ids[i]}}
                for i in range(workers)]
    workers = max(1, min(jobs, limit or cpus))
    threads = max(1, cpus // workers)
    return [{"threads": threads, "env": {}} for _ in range(workers)]


class LocalExecutor:
    def __init__(self, folder: Path, jobs: list[JobSpec], parallel: int | None = None,
                 cpu_only: bool = False, show: bool = True):
        self.folder = folder
        self.jobs = jobs
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        self.slots = plan_slots(len(jobs), cpus, 0 if cpu_only else gpu_count(), parallel)
        self.free = list(range(len(self.slots)))
        self.guard = threading.Lock()
        self.runners: list[JobRunner] = []
        self.show = show

    def describe(self) -> str:
        slot = self.slots[0]
        where = "GPU" if slot["env"] else f"{slot['threads']} CPU thread(s)"
        return f"{len(self.slots)} job(s) at a time, each on {where}"

    def work(self, spec: JobSpec) -> dict[str, str]:
        with self.guard:
            slot = self.free.pop(0)
        try:
            spec.threads = self.slots[slot]["threads"]
            spec.env = dict(self.slots[slot]["env"])
            runner = JobRunner(spec)
            with self.guard:
                self.runners.append(runner)
            return runner.run()
        finally:
            with self.guard:
                self.free.append(slot)

    def run(self) -> dict[str, str]:
        """Every run's status at the end. Ctrl-C or SIGTERM stops the trainers at a
        checkpoint (their runs end interrupted; the next `allo study` resumes them)."""
        outcome: dict[str, str] = {}
        pool = ThreadPoolExecutor(max_workers=len(self.slots))
        futures = [pool.submit(self.work, spec) for spec in self.jobs]
        try:
            with terminate_as_interrupt():
                follow(self.folder, self.jobs, futures, self.show)
                for future in futures:
                    outcome.update(future.result())
        except KeyboardInterrupt as stop:
            for future in futures:
                future.cancel()
            with self.guard:
                runners = list(self.runners)
            for runner in runners:
                runner.stopping = True
            if isinstance(stop, Terminated):  # pass it on: the trainers checkpoint and end
                for runner in runners:
                    runner.signal_trainer(signal.SIGTERM)
                for runner in runners:
                    runner.stop(grace=STOP_GRACE, limit=5.0)
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)
        return outcome


def run_progress(folder: Path, name: str, finished: dict[str, tuple[int, int]]
                 ) -> tuple[int, int] | None:
    """(step, total) from run.json; a finished run's goes into `finished` and is not read
    again (a large grid's run.json holds its layout: hundreds of kilobytes, every poll)."""
    if name in finished:
        return finished[name]
    try:
        info = rundir.RunReader(folder / state.RUNS / name).info()
    except (rundir.RunDirError, OSError):
        return None
    step, total = info.step, info.total_steps
    if step is None or total is None or total <= 0:
        return None
    if info.status == rundir.Status.FINISHED:
        finished[name] = (step, total)
    return step, total


def wait_for(futures: list) -> None:
    for future in futures:
        future.exception()


def follow(folder: Path, jobs: list[JobSpec], futures: list, show: bool) -> None:
    """One progress display for the study until every job is done (or just wait: with
    no terminal to draw on, no run.json is polled, so the trainers keep every core)."""
    if not show:
        return wait_for(futures)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return wait_for(futures)
    names = [spec.run_name(seed) for spec in jobs for seed in spec.seeds]
    finished: dict[str, tuple[int, int]] = {}
    with Progress(TextColumn("[bold]study"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("runs  {task.fields[now]}"), TimeElapsedColumn(),
                  console=console, refresh_per_second=2) as bar:
        task = bar.add_task("study", total=len(names), now="")
        while True:
            done = sum(f.done() for f in futures)
            steps = [run_progress(folder, name, finished) for name in names]
            known = [s for s in steps if s is not None]
            fraction = sum(min(1.0, s / t) for s, t in known)
            running = sum(1 for f in futures if f.running())
            bar.update(task, completed=fraction,
                       now=f"jobs {done}/{len(futures)} done, {running} running")
            if done == len(futures):
                break
            time.sleep(0.5)
