"""The SLURM executor: one array task per job, submitted through submitit.

Each task runs the same JobRunner as the local executor, on the node, with the node's
CPUs (--cpus-per-task) as torch threads. A task that hits its time limit or is preempted
gets SLURM's warning signal; submitit then calls SlurmTask.checkpoint, which stops the
running `allo train` (SIGTERM: it checkpoints at its next step and marks the run
interrupted) and hands back a fresh task for the same job; submitit requeues it, and the
new task resumes the runs from their checkpoints. submitit keeps its own serialized
tasks in logs/slurm/ (pickles of this module's objects, never read from a run directory).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import submitit

from allo.study import state
from allo.study.jobs import JobRunner, JobSpec
from allo.study.spec import StudyError

STOP_WAIT_SECONDS = 60.0  # how long a stopping `allo train` may take to checkpoint


class SlurmTask(submitit.helpers.Checkpointable):
    """The callable each array task runs: one job, given as plain data."""

    def __init__(self) -> None:
        self.runner: JobRunner | None = None

    def __call__(self, spec: dict) -> dict[str, str]:
        job = JobSpec(**spec)
        job.threads = int(os.environ.get("SLURM_CPUS_PER_TASK") or job.threads or 1)
        self.runner = JobRunner(job, under_slurm=True)
        return self.runner.run()

    def checkpoint(self, spec: dict) -> submitit.helpers.DelayedSubmission:
        """Time limit or preemption: let the trainer checkpoint, then requeue the job.
        On preemption SLURM has sent SIGTERM to the trainer already: it gets a moment to
        end by itself before it is asked (a second SIGTERM would skip its checkpoint)."""
        if self.runner is not None:
            self.runner.stop(grace=10.0, limit=STOP_WAIT_SECONDS)
        return submitit.helpers.DelayedSubmission(SlurmTask(), spec)

    def __getstate__(self) -> dict:
        return {"runner": None}  # a running child and its locks never travel


def reachable() -> str | None:
    """None when a SLURM controller answers here, else why not (one line)."""
    for command in ("sbatch", "sinfo", "sacct"):
        if shutil.which(command) is None:
            return f"no `{command}` on PATH"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                             timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return f"sinfo failed: {lines[-1] if lines else 'exit ' + str(out.returncode)}"
    return None


def slurm_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise StudyError(f"--slurm-option {pair!r}: expected KEY=VALUE, e.g. account=abc")
        options[key.strip().lstrip("-")] = value
    return options


class SlurmExecutor:
    def __init__(self, folder: Path, jobs: list[JobSpec], parameters: dict, wait: bool):
        self.folder = folder
        self.jobs = jobs
        self.parameters = parameters
        self.wait = wait

    @classmethod
    def from_args(cls, args: argparse.Namespace, folder: Path, jobs: list[JobSpec]
                  ) -> SlurmExecutor:
        why = reachable()
        if why is not None:
            raise StudyError(f"--executor slurm: no SLURM cluster reachable from here ({why})")
        for flag in ("time", "gpus_per_task", "cpus_per_task", "array_parallelism"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise StudyError(f"--{flag.replace('_', '-')} must be at least 1")
        parameters = {"time": args.time, "array_parallelism": args.array_parallelism,
                      "job_name": f"allo-{folder.name}",
                      "additional_parameters": slurm_options(args.slurm_option)}
        for name in ("partition", "gpus_per_task", "cpus_per_task", "mem"):
            if getattr(args, name) is not None:
                parameters[name] = getattr(args, name)
        return cls(folder, jobs, parameters, args.wait)

    def describe(self) -> str:
        cpus = self.parameters.get("cpus_per_task", 1)
        return (f"a SLURM job array of {len(self.jobs)} task(s), {cpus} CPU(s) each"
                + (f", {self.parameters['gpus_per_task']} GPU(s)"
                   if "gpus_per_task" in self.parameters else ""))

    def run(self) -> None:
        logs = self.folder / state.LOGS / "slurm"
        executor = submitit.SlurmExecutor(folder=logs, max_num_timeout=20)
        executor.update_parameters(**self.parameters)
        specs = [dataclasses.asdict(spec) for spec in self.jobs]
        for spec in specs:
            spec["threads"] = int(self.parameters.get("cpus_per_task", 1))
        submitted = executor.map_array(SlurmTask(), specs)
        ids = {spec["key"]: job.job_id for spec, job in zip(specs, submitted, strict=True)}
        entries = {f"{spec['key']}__s{seed}": {"slurm_job": ids[spec["key"]]}
                   for spec in specs for seed in spec["seeds"]}
        state.update_study_json(self.folder, entries, slurm_jobs=sorted(set(ids.values())))
        print(f"allo study: submitted {len(submitted)} array task(s) as SLURM job "
              f"{submitted[0].job_id.split('_')[0]}; logs in {logs}", file=sys.stderr)
        if self.wait:
            follow(submitted)


def follow(jobs: list) -> None:
    """Wait until every array task has ended (completed, failed or cancelled)."""
    pending = list(jobs)
    while pending:
        time.sleep(2.0)
        pending = [job for job in pending if not job.done()]
