"""`allo study STUDY.toml`: run a whole experiment here or on SLURM, safely re-runnable.

Exit codes: 0 every run finished (or --dry-run / --status), 1 some run failed or is not
finished (study.json says why), 2 bad input (one line; nothing launched), 130 interrupted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from allo.study import state
from allo.study.jobs import JobSpec
from allo.study.spec import Study, StudyError, load_study

PROG = "allo study"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__.splitlines()[0],
                      epilog="docs/study.md explains the file, the executors and the table.")
    p.add_argument("study", help="study file (TOML), or a study directory for --status")
    p.add_argument("--seeds", default=None,
                   help="override the file's seeds: a count (3: seeds 0..2) or a list (0-7, 1,5,9)")
    p.add_argument("--results-dir", default="results",
                   help="the study goes to RESULTS_DIR/studies/<name> (default: results)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the expanded runs and their jobs; launch nothing")
    p.add_argument("--status", action="store_true",
                   help="what is finished, running, failed (and why) or missing")
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: processes on this machine (default); slurm: a job array")
    p.add_argument("--jobs", type=int, default=None,
                   help="local: jobs at once (default: one per core, or one per GPU)")
    p.add_argument("--cpu", action="store_true", help="local: ignore GPUs")
    slurm = p.add_argument_group("slurm executor (through submitit)")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--time", type=int, default=60, help="minutes per array task")
    slurm.add_argument("--gpus-per-task", type=int, default=None)
    slurm.add_argument("--cpus-per-task", type=int, default=None)
    slurm.add_argument("--mem", default=None, help="e.g. 8G")
    slurm.add_argument("--array-parallelism", type=int, default=256,
                       help="array tasks running at once")
    slurm.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option (repeatable), e.g. account=abc")
    slurm.add_argument("--no-wait", dest="wait", action="store_false",
                       help="submit and return (default: follow the array until it ends)")
    return p


def fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    target = Path(args.study)
    if target.is_dir():
        if not args.status:
            return fail(f"{target}: a study directory; give the study file, or --status")
        return show_status_dir(target)
    try:
        study = load_study(target, args.seeds)
    except StudyError as err:
        return fail(str(err))
    folder = state.study_dir(args.results_dir, study.name)
    if args.dry_run:
        print_plan(study, folder)
        return 0
    if args.status:
        return show_status(study, folder)
    if args.jobs is not None and args.jobs < 1:
        return fail("--jobs must be at least 1")
    try:
        todo = plan_work(study, folder)
        executor = make_executor(args, folder, todo)
    except StudyError as err:
        return fail(str(err))
    return launch(study, folder, todo, executor)


def plan_work(study: Study, folder: Path) -> list[JobSpec]:
    """The jobs with something left to do; refuses a changed config under an old name."""
    todo = []
    for job in study.jobs:
        seeds = []
        for seed in job.seeds:
            status, _error, info = state.classify(folder, job.run_name(seed))
            if info:
                state.check_recorded(folder, job, seed, info)
            if status not in (state.FINISHED, state.FAILED):
                seeds.append(seed)
        if seeds:
            todo.append(JobSpec.of(folder, job, seeds))
    return todo


def make_executor(args: argparse.Namespace, folder: Path, todo: list[JobSpec]):
    if args.executor == "slurm":
        from allo.study.slurm import SlurmExecutor

        return SlurmExecutor.from_args(args, folder, todo)  # StudyError when unreachable
    from allo.study.local import LocalExecutor

    return LocalExecutor(folder, todo, parallel=args.jobs, cpu_only=args.cpu)


def launch(study: Study, folder: Path, todo: list[JobSpec], executor) -> int:
    data = state.register(study, folder)
    runs = [job.run_name(seed) for job, seed in study.runs]
    before = Counter(data["runs"].get(name, {}).get("status", state.MISSING) for name in runs)
    left = sum(len(spec.seeds) for spec in todo)
    print(f"{PROG}: {study.name}: {len(runs)} runs in {len(study.jobs)} jobs -> {folder}",
          file=sys.stderr)
    if not todo:
        print(f"{PROG}: nothing to do: {describe_counts(before)}", file=sys.stderr)
        return summary(study, folder)
    print(f"{PROG}: {left} runs in {len(todo)} jobs to start or resume; "
          f"{executor.describe()}", file=sys.stderr)
    executor.run()
    if not getattr(executor, "wait", True):  # submitted to SLURM; the runs go on there
        print(f"{PROG}: `allo study {study.path} --status` follows it", file=sys.stderr)
        print(folder)
        return 0
    return summary(study, folder)


def refresh(study: Study, folder: Path) -> dict[str, dict]:
    """Each run's state from its directory and lock, written back into study.json."""
    entries = {}
    recorded = state.read_study_json(folder)["runs"] if folder.exists() else {}
    for job, seed in study.runs:
        name = job.run_name(seed)
        status, error, info = state.classify(folder, name)
        old = recorded.get(name, {})
        if status == state.MISSING and old.get("status") == state.FAILED:
            error, status = old.get("error"), state.FAILED  # it failed before it had a run
        entry = {**state.run_entry(folder, job, seed), "status": status, "error": error,
                 "step": info.step, "total_steps": info.total_steps}
        entries[name] = entry
    if folder.exists():
        state.update_study_json(folder, entries)
    return entries


def summary(study: Study, folder: Path) -> int:
    entries = refresh(study, folder)
    counts = Counter(e["status"] for e in entries.values())
    print(f"{PROG}: {study.name}: {describe_counts(counts)}", file=sys.stderr)
    for name, entry in entries.items():
        if entry["status"] == state.FAILED:
            print(f"  failed {name}: {entry['error']}", file=sys.stderr)
    if counts.get(state.RUNNING):
        print(f"{PROG}: {counts[state.RUNNING]} runs are held by another process; "
              f"`allo study {study.path} --status` follows them", file=sys.stderr)
    print(folder)
    return 0 if counts.get(state.FINISHED, 0) == len(entries) else 1


def describe_counts(counts: Counter) -> str:
    order = (state.FINISHED, state.RUNNING, state.INTERRUPTED, state.FAILED, state.MISSING)
    return ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))


def print_plan(study: Study, folder: Path) -> None:
    print(f"study {study.name}: {len(study.runs)} runs in {len(study.jobs)} jobs "
          f"(one `allo train --seeds` process each) -> {folder}")
    for index, job in enumerate(study.jobs, 1):
        seeds = ",".join(map(str, job.seeds))
        options = " ".join(job.option_args())
        print(f"job {index:>3}  {job.key}  seeds {seeds}")
        print(f"          allo train {options}")


def show_status(study: Study, folder: Path) -> int:
    if not (folder / state.STUDY_JSON).exists():
        print(f"{PROG}: {study.name}: not launched yet ({folder} has no study.json); "
              f"{len(study.runs)} runs missing")
        return 0
    entries = refresh(study, folder)
    print_status(study.name, folder, entries)
    return 0


def show_status_dir(folder: Path) -> int:
    try:
        data = state.read_study_json(folder)
        if not (folder / state.STUDY_JSON).exists():
            raise StudyError(f"{folder}: not a study directory (no study.json)")
    except StudyError as err:
        return fail(str(err))
    entries = {}
    for name, entry in data["runs"].items():
        status, error, info = state.classify(folder, name)
        if status == state.MISSING and entry.get("status") == state.FAILED:
            status, error = state.FAILED, entry.get("error")
        entries[name] = {**entry, "status": status, "error": error,
                         "step": info.step, "total_steps": info.total_steps}
    print_status(str(data.get("name", folder.name)), folder, entries)
    return 0


def queue_line(folder: Path) -> str | None:
    """What SLURM's accounting says of the study's array jobs, where it answers."""
    jobs = state.read_study_json(folder).get("slurm_jobs") or []
    arrays = sorted({str(j).split("_")[0] for j in jobs})
    if not arrays or shutil.which("sacct") is None:
        return None
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j",
                              ",".join(arrays)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    states = Counter(line.split("|")[1].split()[0] for line in out.stdout.splitlines()
                     if "|" in line)
    if out.returncode != 0 or not states:
        return None
    return (f"slurm job {', '.join(arrays)}: "
            + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))


STATUS_WIDTH = len(state.INTERRUPTED)  # the longest status a run line shows


def print_status(name: str, folder: Path, entries: dict[str, dict]) -> None:
    counts = Counter(e["status"] for e in entries.values())
    print(f"study {name} ({folder}): {len(entries)} runs: {describe_counts(counts)}")
    line = queue_line(folder)
    if line:
        print(f"  {line} (array tasks)")
    jobs: dict[str, list[tuple[str, dict]]] = {}
    for run, entry in entries.items():
        jobs.setdefault(str(entry.get("job", run.rsplit("__s", 1)[0])), []).append((run, entry))
    for key, runs in jobs.items():
        per = Counter(e["status"] for _, e in runs)
        print(f"  {key}: {describe_counts(per)}")
        for run, entry in runs:
            step, total = entry.get("step"), entry.get("total_steps")
            where = f" step {step}/{total}" if step is not None and total else ""
            if entry["status"] == state.FAILED:
                print(f"    {state.FAILED:<{STATUS_WIDTH}} {run}: {entry.get('error')}")
            elif entry["status"] in (state.RUNNING, state.INTERRUPTED):
                print(f"    {entry['status']:<{STATUS_WIDTH}} {run}{where}")
