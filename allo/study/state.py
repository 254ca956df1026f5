"""The study directory: study.json, the per-run locks, and what state each run is in.

    results/studies/<name>/
      study.toml   the study file as last launched
      study.json   format_version; per run: config, config hash, run dir, status, error
      runs/        ordinary run directories, <layout>__<objective>__<hash>__s<seed>
      locks/       one lock file per run, held (flock) while a process trains it
      logs/        `allo train` output per job; submitit's own files under logs/slurm/

study.json is shared by every process working on the study (local workers, SLURM tasks
on other machines): each update is a read-modify-write under an exclusive flock of
study.json.lock, written to a temporary name and renamed, so no update is lost and no
reader sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from allo import rundir
from allo.study.spec import Job, Study, StudyError

FORMAT_VERSION = 1
STUDY_JSON = "study.json"
STUDY_TOML = "study.toml"
RUNS, LOCKS, LOGS = "runs", "locks", "logs"
# What a run can be, as `--status` says it.
MISSING, RUNNING, FINISHED, FAILED, INTERRUPTED = (
    "missing", "running", "finished", "failed", "interrupted")


def study_dir(results: Path | str, name: str) -> Path:
    return Path(results) / "studies" / name


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created if absent) for the duration of the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def read_study_json(folder: Path) -> dict:
    path = folder / STUDY_JSON
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "runs": {}}
    try:
        data = rundir.read_json(path)
    except rundir.RunDirError as err:
        raise StudyError(str(err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise StudyError(f"{path}: not a study.json (no 'runs' object)")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > FORMAT_VERSION:
        raise StudyError(f"{path}: format_version {data.get('format_version')!r} is not one "
                         f"this allo reads ({FORMAT_VERSION})")
    return data


def update_study_json(folder: Path, runs: dict[str, dict], **top: Any) -> dict:
    """Merge run entries (by run name, field by field) and top-level fields, atomically."""
    with locked(folder / (STUDY_JSON + ".lock")):
        data = read_study_json(folder)
        for name, fields in runs.items():
            data["runs"].setdefault(name, {}).update(fields)
        data.update(top, format_version=FORMAT_VERSION, updated=time.time())
        rundir.atomic_write_json(folder / STUDY_JSON, data)
    return data


def run_entry(study_folder: Path, job: Job, seed: int) -> dict:
    return {"config": job.config, "config_hash": job.config_hash, "job": job.key,
            "seed": seed, "run_dir": f"{RUNS}/{job.run_name(seed)}",
            "options": job.options, "layout": job.layout.name}


def register(study: Study, folder: Path) -> dict:
    """Create the study directory, copy the file, add new runs to study.json (old kept)."""
    for sub in (RUNS, LOCKS, LOGS):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_text(folder / STUDY_TOML, study.text)
    existing = read_study_json(folder)["runs"]
    entries = {}
    for job, seed in study.runs:
        entry = run_entry(folder, job, seed)
        old = existing.get(job.run_name(seed))
        if old is None:
            entry["status"] = MISSING
        entries[job.run_name(seed)] = entry
    return update_study_json(folder, entries, name=study.name)


class RunLock:
    """An exclusive, non-blocking flock on locks/<run>.lock, held by the process that
    trains the run (and inherited by its `allo train` child, so a killed launcher does
    not free a run whose trainer still works)."""

    def __init__(self, folder: Path, name: str):
        self.path = folder / LOCKS / f"{name}.lock"
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.set_inheritable(fd, True)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.uname().nodename} {os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text().strip() or "another process"
        return "another process"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def is_held(folder: Path, name: str) -> bool:
    """Whether some process (on any machine sharing the folder) trains this run now."""
    lock = RunLock(folder, name)
    if not lock.path.exists():
        return False
    if lock.acquire():
        lock.release()
        return False
    return True


def classify(folder: Path, name: str) -> tuple[str, str | None, rundir.RunInfo]:
    """(status, error, run.json) of one run from its directory and its lock.

    A run held by a live process is running, whatever its run.json says.
    """
    if is_held(folder, name):
        return RUNNING, None, _info(folder / RUNS / name)
    return classify_unlocked(folder, name)


def classify_unlocked(folder: Path, name: str) -> tuple[str, str | None, rundir.RunInfo]:
    """The same, for a run nobody trains (or that the caller holds): a run marked
    running then was killed, so it is interrupted (and resumes)."""
    run = folder / RUNS / name
    if not (run / rundir.RUN_JSON).is_file():
        return MISSING, None, rundir.RunInfo()
    info = _info(run)
    status = info.status
    if status == FINISHED:
        return FINISHED, None, info
    if status == FAILED:
        return FAILED, str(info.message or "failed (no message recorded)"), info
    return INTERRUPTED, None, info


def _info(run: Path) -> rundir.RunInfo:
    try:
        return rundir.RunReader(run).info()
    except rundir.RunDirError:
        return rundir.RunInfo()


def check_recorded(folder: Path, job: Job, seed: int, info: rundir.RunInfo) -> None:
    """A run directory under this configuration's name must hold this configuration."""
    recorded = info.config
    if recorded is None:
        return
    env_name = info.env_name
    problems = [f"layout {env_name!r} (study: {job.layout.name!r})"
                for _ in [0] if env_name not in (None, job.layout.name)]
    for key, value in job.options.items():
        if key in recorded and key not in ("device", "cuda_graph", "threads",
                                           "plot_during_training") and recorded[key] != value:
            problems.append(f"{key}={recorded[key]!r} (study: {value!r})")
    if problems:
        raise StudyError(f"{folder / RUNS / job.run_name(seed)}: holds a run with "
                         f"{', '.join(problems)}; the study's configuration changed under an "
                         "existing name: move that run away or give the study another name")
