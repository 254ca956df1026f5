"""Which run directories a command trains, and what they hold before the first step."""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from allo import __version__, bounds, capacity, dataset, identity, observations, rundir, settling
from allo import config as config_module
from allo.budget import data_advice
from allo.config import TrainConfig, parse_seeds
from allo.layouts import (
    Layout,
    LayoutError,
    add_random_doors,
    load_builtin,
    load_layout_file,
)
from allo.metrics import block_complete_width, eigenspace_blocks
from allo.rundir import Metric
from allo.spectrum import CONVENTION, GroundTruth
from allo.training import TrainError


@dataclass
class Outcome:
    run_dir: Path
    status: rundir.Status  # finished | interrupted | failed
    exit_code: int
    last_row: dict | None
    wall: float
    message: str | None = None  # why it failed or was interrupted


def load_layout(cfg: TrainConfig) -> Layout:
    layout = load_layout_file(cfg.env_file) if cfg.env_file else load_builtin(cfg.env)
    return add_random_doors(layout, cfg.doors, cfg.door_seed)


def recorded_layout(run: Path) -> Layout:
    """The layout a run was started with, from its run.json (the file may have moved)."""
    try:
        layout = Layout.from_record(rundir.RunReader(run).info().env)  # type: ignore[arg-type]
    except (KeyError, TypeError, rundir.RunDirError) as err:
        raise LayoutError(f"{run / rundir.RUN_JSON}: cannot rebuild the layout ({err})") from None
    return layout


def open_writer(run: Path, new: bool) -> rundir.RunWriter:
    """The run's writer, holding its lock; a second writer is one line (TrainError)."""
    try:
        return rundir.RunWriter(run, new=new)
    except rundir.RunDirError as err:
        raise TrainError(str(err)) from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def default_run_dir(cfg: TrainConfig, env_name: str) -> Path:
    name = f"{env_name}__{cfg.objective}__{cfg.exp_number}__{cfg.seed}__{int(time.time())}"
    return Path(cfg.results_dir) / env_name / name


@dataclass
class SeedRun:
    """One seed's run directory and how it is going."""

    seed: int
    cfg: TrainConfig  # the config this run records: its own seed, no --seeds
    run: Path
    writer: rundir.RunWriter | None = None
    status: rundir.Status = rundir.Status.RUNNING
    exit_code: int = 0
    message: str | None = None
    last_row: dict | None = None
    end_step: int | None = None  # set when it concludes (seeds may go on past the budget)
    end_spent: float = 0.0
    end_training: float = 0.0
    identity: dict | None = None  # what its checkpoints carry (allo/identity.py)


def plan_runs(cfg: TrainConfig, resume: Sequence[Path] = ()) -> tuple[list[SeedRun], Layout]:
    """Validate everything a user can get wrong before any work starts. `resume`: the
    runs to go on with (their seeds come from their run.json), none for new runs."""
    try:
        cfg.validate()
        # a resume takes each run's writer lock before anything else (allo/runlock.py)
        writers = [open_writer(run, new=False) for run in resume]
        if resume:
            layout, recorded = resumed_together(resume)
            seeds = [own.seed for own in recorded]
        else:
            layout = load_layout(cfg)
            seeds = parse_seeds(cfg.seeds) if cfg.seeds else [cfg.seed]
        observations.check(cfg.obs, cfg.obs_size, layout)
    except (ValueError, LayoutError) as err:
        raise TrainError(str(err)) from None
    if not resume and cfg.run_dir and len(seeds) > 1 and "{seed}" not in cfg.run_dir:
        raise TrainError("--run-dir names one run; with --seeds use --results-dir, or put "
                         "{seed} in --run-dir")
    if resume:  # the largest of the seeds' own data sets
        cfg = dataclasses.replace(cfg, num_envs=max(
            (own.num_envs for own in recorded if own.num_envs is not None), default=None))
    pairs = capacity.expected_pairs(layout.num_free, (cfg.num_envs or dataset.BASE_ENVS)
                                    * cfg.num_steps, cfg.discount)
    problem = capacity.fits(layout.num_free, len(seeds), dataset.CHUNK_ENVS, pairs=pairs,
                            exact=cfg.data == "exact")
    if problem:
        raise TrainError(problem)
    try:  # the model, its activations, the batch, the schedule, the data collection
        bounds.check_memory(cfg, layout.num_free, len(seeds))
    except ValueError as err:
        raise TrainError(str(err)) from None
    if layout.components() > 1:
        print(f"allo: warning: layout {layout.name!r} has {layout.components()} disconnected "
              "free regions; each adds a zero eigenvalue", file=sys.stderr)
    runs = []
    for number, seed in enumerate(seeds):
        own = dataclasses.replace(cfg, seed=seed, seeds=None)
        if resume:
            own = dataclasses.replace(own, **place_fields(recorded[number]),
                                      num_envs=recorded[number].num_envs)
        if cfg.obs in ("pixels", "both"):  # record the image size the run draws
            own.obs_size = observations.obs_size(layout, cfg.obs_size)
        if resume:
            runs.append(SeedRun(seed, own, resume[number], writer=writers[number]))
            continue
        run = (Path(cfg.run_dir.replace("{seed}", str(seed))) if cfg.run_dir
               else default_run_dir(own, layout.name))
        try:
            rundir.check_new_run_dir(run)
        except rundir.RunDirError as err:
            raise TrainError(str(err)) from None
        runs.append(SeedRun(seed, own, run))
    return runs, layout


def place_fields(cfg: TrainConfig) -> dict:
    """Where a run's files live: its own, even when it resumes beside other runs."""
    return {name: getattr(cfg, name) for name in identity.PLACE_FIELDS - {"seeds"}}


def resumed_together(runs: Sequence[Path]) -> tuple[Layout, list[TrainConfig]]:
    """The layout the runs were started with and each one's recorded config. Runs that
    go on as one model must share the configuration (all but their place and
    identity.SEED_OWN_FIELDS), the layout and the step they go on from; TrainError
    otherwise."""
    layout = recorded_layout(runs[0])
    recorded: list[TrainConfig] = []
    seeds: set[int] = set()
    resumes_from: dict[Path, int] = {}
    for run in runs:
        own = config_module.from_dict(rundir.RunReader(run).info().config, run / rundir.RUN_JSON)
        if recorded and identity.config_hash(dataclasses.replace(
                own, num_envs=recorded[0].num_envs)) != identity.config_hash(recorded[0]):
            raise TrainError(f"{run}: was trained with another configuration than "
                             f"{runs[0]}; resume them one at a time")
        if identity.layout_hash(recorded_layout(run)) != identity.layout_hash(layout):
            raise TrainError(f"{run}: was trained on another layout than {runs[0]}; "
                             "resume them one at a time")
        if own.seed in seeds:
            raise TrainError(f"{run}: seed {own.seed} is resumed twice")
        seeds.add(own.seed)
        steps = rundir.checkpoint_steps(run)
        resumes_from[run] = steps[-1] if steps else 0
        recorded.append(own)
    if len(set(resumes_from.values())) > 1:
        listing = ", ".join(f"{run.name} from step {step}" for run, step in resumes_from.items())
        raise TrainError(f"--resume: the runs would go on from different checkpoints "
                         f"({listing}); resume them one at a time")
    return layout, recorded


def going_on_limit(cfg: TrainConfig, chosen: bool, resume: Sequence[Path]) -> int:
    """The last step a seed still turning may go on to (allo/settling.py): only ALLO runs
    whose steps the budget chose; a resume keeps what its run recorded unless --steps
    changes."""
    steps = cfg.num_gradient_steps
    assert steps is not None
    if cfg.objective != "allo":
        return steps
    if not resume:
        return steps if chosen else settling.extension_limit(steps)
    info = rundir.RunReader(resume[0]).info()  # the runs resumed together share it
    recorded = info.budget.extension_limit if info.budget is not None else None
    try:
        same = config_module.from_dict(info.config).num_gradient_steps == steps
    except ValueError:  # train_cli has refused such a run.json before
        same = False
    return int(recorded) if recorded and same else steps


def data_notes(seeds: list[int], datasets: list[dataset.DataSet]) -> list[str]:
    """What the data sets did and still limit, in at most two lines for all seeds."""
    lines = []
    grown = [(seed, data) for seed, data in zip(seeds, datasets, strict=True)
             if data.base_ceiling is not None]
    if grown:
        parts = [f"seed {seed} to {data.num_envs} environments (ceiling {data.base_ceiling:.3f}"
                 f" -> {float(np.mean(data.ceiling)):.3f})" for seed, data in grown[:4]]
        extra = len(grown) - 4
        more = f" and {extra} more seed{'s' if extra > 1 else ''}" if extra > 0 else ""
        lines.append(f"the data set's own operator limited mean |cos| (its data ceiling), so "
                     f"it grew: {'; '.join(parts)}{more}")
    worst = min(datasets, key=lambda data: float(np.mean(data.ceiling)))
    advice_line = data_advice(worst.ceiling, worst.num_envs, worst.base_ceiling,
                              worst.more_data_helps)
    if advice_line:
        lines.append(advice_line)
    return lines


def start_run(seed_run: SeedRun, layout: Layout, truth: GroundTruth, device: torch.device,
              seeds: list[int], resuming: bool) -> None:
    """Create (or reopen) the run directory and write what is known before training."""
    cfg, run, d = seed_run.cfg, seed_run.run, seed_run.cfg.num_eigenvectors
    if seed_run.writer is None:
        seed_run.writer = open_writer(run, new=not resuming)
    writer = seed_run.writer
    writer.remove_temporaries()  # left by a killed write; nothing else writes here now
    now = time.time()
    reachable = int(truth.support.sum())
    blocks = eigenspace_blocks(truth.eigenvalues[: min(d + 1, reachable)])
    width = block_complete_width(truth.eigenvalues, d)
    completion = (truth.eigenvalues[d:width], truth.eigenvectors[:, d:width])
    if not resuming:
        writer.start(rundir.RunInfo(
            name=run.name, status=rundir.Status.RUNNING, message=None, step=0,
            total_steps=cfg.num_gradient_steps, started=now, heartbeat=now, finished=None,
            elapsed=0.0, device=describe_device(device),
            versions={"allo": __version__, "python": platform.python_version(),
                      "torch": torch.__version__, "numpy": np.__version__},
            config=dataclasses.asdict(cfg), d=d, gamma=cfg.discount, objective=cfg.objective,
            seed=cfg.seed, trained_with_seeds=seeds, eigenvalue_convention=CONVENTION,
            env=layout.record(),
            ground_truth=rundir.TruthInfo(
                blocks=[[b.start, b.stop] for b in blocks if b.start < d],
                eigenvalues_next=float(truth.eigenvalues[d]) if reachable > d else None),
            resumes=[]))
        writer.write_ground_truth(*truth.top(d), completion=completion)
        return
    writer.reopen()
    problem = identity.truth_disagreement(run, layout, truth.top(d)[0], d)
    if problem is not None:
        raise TrainError(f"{run}: {problem}; nothing resumed")
    if not all((run / name).exists() for name in (rundir.GT_EIGENVALUES,
                                                  rundir.GT_EIGENVECTORS)):
        # a kill came before it was written
        writer.write_ground_truth(*truth.top(d), completion=completion)


def first_row(runs: list[SeedRun]) -> dict | None:
    return next((r.last_row for r in runs if r.last_row is not None), None)


def format_row(row: dict) -> str:
    parts = [f"step {row[Metric.STEP]:>7}", f"mean|cos| {row[Metric.COS_MEAN]:.4f}"]
    if row.get(Metric.COS_STRICT_MEAN) is not None:
        parts.append(f"strict {row[Metric.COS_STRICT_MEAN]:.4f}")
    if row.get(Metric.EIG_MEAN_ABS_ERROR) is not None:
        parts.append(f"eig err {row[Metric.EIG_MEAN_ABS_ERROR]:.4f}")
    parts.append(f"loss {row[Metric.LOSS_TOTAL]:.4f}")
    return "  ".join(parts)


def format_rows(runs: list[SeedRun]) -> str:
    """The progress line of an export: one seed in full, several seeds side by side."""
    rows = [(r.seed, r.last_row) for r in runs if r.last_row is not None]
    if len(runs) == 1:
        return format_row(rows[0][1]) if rows else ""
    if not rows:
        return ""
    cosines = "  ".join(f"{seed}:{row[Metric.COS_MEAN]:.4f}" for seed, row in rows)
    # seeds that ended at their budget keep their last row; the step is the latest
    step = max(row[Metric.STEP] for _, row in rows)
    return f"step {step:>7}  mean|cos| by seed  {cosines}"
