"""`allo train`: flags from TrainConfig, a progress bar on stderr, the run path last on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from allo import config as config_module
from allo import heap
from allo.cliparse import AlloParser
from allo.config import TrainConfig

# Flags that may change when a run is resumed; everything else must stay as it was.
RESUME_OVERRIDABLE = {"num_gradient_steps", "device", "cuda_graph", "threads",
                      "plot_during_training", "log_freq", "plot_freq", "checkpoint_freq"}


def build_parser() -> argparse.ArgumentParser:
    parser = AlloParser(
        prog="allo train",
        description="Train ALLO on a gridworld layout and export a run directory.",
        epilog="Example: allo train room4 --steps 5000 --seed 1. Every option also takes "
               "its underscore spelling (--num_gradient_steps 20000 --plot_freq 1000), and "
               "--env_type LAYOUT names the layout, as the older script's commands do.",
    )
    parser.add_argument("env", nargs="?", default=None,
                        help=f"built-in layout (default: {TrainConfig.env}; see `allo envs`)")
    # the older script's name for the layout; a dest of its own, since argparse lets a
    # missing optional positional overwrite an option sharing its dest
    parser.add_argument("--env-type", dest="env_type", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--resume", metavar="RUN_DIR", nargs="+", default=None,
                        help="continue a run from its last checkpoint; the seeds of one "
                             "configuration (the run directories of a --seeds run) go on "
                             "together as one batched model")
    config_module.add_arguments(parser)
    return parser


def fail(message: str) -> int:
    print(f"allo train: {message}", file=sys.stderr)
    return 2


def layout_name(args: argparse.Namespace) -> None:
    """Fold --env_type into the positional layout name (they must agree if both given)."""
    given = getattr(args, "env_type", None)
    if given is None:
        return
    if args.env is not None and args.env != given:
        raise ValueError(f"layout given twice: {args.env!r} and --env_type {given!r}")
    args.env = given


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, list[Path]]:
    """The config to train and the runs it resumes (none for a new run)."""
    layout_name(args)
    if args.resume is None:
        return config_module.from_namespace(args), []  # the positional sets cfg.env
    from allo import rundir

    layout_after_resume(args)
    runs = [Path(run) for run in args.resume]
    given = config_module.given_flags(args) - {"resume", "env", "env_type"}
    fixed = sorted(given - RESUME_OVERRIDABLE)
    if fixed or args.env is not None:
        names = ", ".join("--" + n.replace("_", "-") for n in fixed) or "the environment"
        raise ValueError(f"cannot change {names} when resuming; start a new run instead")
    configs = []
    for run in runs:
        info = rundir.RunReader(run).info()
        base = config_module.from_dict(info.config, run / rundir.RUN_JSON)
        configs.append(config_module.from_namespace(args, base))
    check_resumable_together(runs, configs)
    cfg = configs[0]
    if len(runs) > 1:
        cfg = dataclasses.replace(cfg, seeds=",".join(str(c.seed) for c in configs))
    return cfg, runs


def layout_after_resume(args: argparse.Namespace) -> None:
    """`--resume RUN room4`: --resume takes every word after it, so a built-in layout's
    name that is no folder here is the positional layout, which a resume cannot change."""
    from allo.layouts import builtin_names

    last = args.resume[-1]
    if len(args.resume) > 1 and last in builtin_names() and not Path(last).exists():
        args.resume, args.env = args.resume[:-1], last


def check_resumable_together(runs: list[Path], configs: list[TrainConfig]) -> None:
    """Runs resumed as one batched model share every setting but where they live and
    what each seed has of its own (identity.SEED_OWN_FIELDS); ValueError (one line)
    naming what stands in the way."""
    from allo.identity import PLACE_FIELDS, SEED_OWN_FIELDS

    seen: dict[str, Path] = {}
    for run in runs:
        key = str(run.resolve())
        if key in seen:
            raise ValueError(f"--resume: {run} is given twice")
        seen[key] = run
    owners: dict[int, Path] = {}
    for run, cfg in zip(runs, configs, strict=True):
        if cfg.seed in owners:
            raise ValueError(f"--resume: {owners[cfg.seed]} and {run} are both seed {cfg.seed}; "
                             "resume them one at a time")
        owners[cfg.seed] = run
    ignored = PLACE_FIELDS | SEED_OWN_FIELDS
    first = dataclasses.asdict(configs[0])
    for run, cfg in zip(runs[1:], configs[1:], strict=True):
        other = dataclasses.asdict(cfg)
        differ = sorted(name for name in first if name not in ignored
                        and first[name] != other[name])
        if differ:
            names = ", ".join("--" + n.replace("_", "-") for n in differ)
            choose = (f"give {names} for all of them, or resume them one at a time"
                      if set(differ) <= RESUME_OVERRIDABLE else "resume them one at a time")
            raise ValueError(f"--resume: {runs[0]} and {run} differ in {names}, so they "
                             f"cannot go on as one model; {choose}")


def write_failure(err: OSError) -> str:
    """One line: which file could not be written, why, and what was kept."""
    from allo import rundir

    where = f" {err.filename}" if err.filename else ""
    line = f"cannot write{where}: {err.strerror or err}"
    run = next((p for p in Path(str(err.filename or "")).parents if rundir.is_run_dir(p)),
               None)
    if run is None:
        return line
    return (f"{line}; everything written before it is kept (atomic writes), so once there "
            f"is space: allo train --resume {run}")


def unsettled_note(run_dir: Path, row: dict | None) -> str | None:
    """Which vectors ended still turning (far below their data ceiling), if any."""
    from allo.budget import unsettled_advice
    from allo.rundir import BudgetInfo, Metric, RunReader

    info = RunReader(run_dir).info()
    budget = info.budget or BudgetInfo()
    ceiling, cos = budget.data_ceiling_per_vector, (row or {}).get(Metric.COS_PER_VECTOR)
    if not ceiling or not cos or len(ceiling) != len(cos) or row is None:
        return None
    steps = int(info.total_steps or row[Metric.STEP])
    return unsettled_advice(cos, ceiling, steps, str(run_dir), budget.recommended_steps)


def duals_note(cfg: TrainConfig, row: dict | None) -> str | None:
    """Whether an ALLO run ended before its duals could reach the eigenvalues."""
    from allo.budget import unrelaxed_duals_advice
    from allo.rundir import Metric

    barrier = (row or {}).get(Metric.BARRIER_COEF)
    if cfg.objective != "allo" or row is None or barrier is None:
        return None
    return unrelaxed_duals_advice(int(row[Metric.STEP]), float(barrier), cfg.lr_duals)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, resume = resolve_config(args)
    except Exception as err:  # ValueError, RunDirError and friends: one line
        return fail(str(err))

    heap.keep_freed_memory()  # this process trains: its steps reuse what they free

    # torch is imported here, after the flags are known to be sane
    from allo.progress import TrainProgress
    from allo.rundir import RunDirError
    from allo.train import TrainError, format_row, train_seeds

    started = time.perf_counter()
    try:
        with TrainProgress(cfg.num_gradient_steps or 0) as bar:
            outcomes = train_seeds(cfg, resume=resume, progress=bar.update, announce=bar.log)
    except TrainError as err:
        return fail(str(err))
    except RunDirError as err:  # a run file that cannot be read safely (allo/safeio.py)
        return fail(str(err))
    except OSError as err:  # disk full, read-only or vanished results directory
        print(f"allo train: {write_failure(err)}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - started
    seeds = config_module.parse_seeds(cfg.seeds) if cfg.seeds else [cfg.seed]
    for seed, outcome in zip(seeds, outcomes, strict=True):
        row = outcome.last_row
        quality = format_row(row) if row else "no metrics logged"
        status = f"seed {seed} {outcome.status}" if len(outcomes) > 1 else outcome.status
        if outcome.status == "finished":
            print(f"{status}: {quality}  train {outcome.wall:.1f}s  total {wall:.1f}s")
            who = f"seed {seed}: " if len(outcomes) > 1 else ""
            for line in (unsettled_note(outcome.run_dir, row), duals_note(cfg, row)):
                if line:
                    print(f"allo: note: {who}{line}", file=sys.stderr)
        else:
            info_line = f"{status}: {quality}"
            if outcome.message:  # what diverged, or which signal stopped it
                info_line = f"{status}: {outcome.message} (last log: {quality})"
            print(info_line, file=sys.stderr)
    interrupted = [str(o.run_dir) for o in outcomes if o.status == "interrupted"]
    if interrupted:  # seeds stopped together go on together
        print(f"resume with: allo train --resume {' '.join(interrupted)}", file=sys.stderr)
    for outcome in outcomes:  # the run directories come last, one per line, for scripts
        print(outcome.run_dir)
    return max((o.exit_code for o in outcomes), key=lambda code: (code != 0, code))
