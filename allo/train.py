"""Train ALLO on a gridworld and export a run directory (docs/run-format.md).

    allo train room4
    allo train maze --num-gradient-steps 5000 --seed 3
    allo train --env-file my_layout.txt --doors 4 --door-seed 1
    allo train --resume results/room4/room4__allo__0__0__1700000000

Reads top to bottom: layout, ground truth, data, model, objective, one loop, export.
The trainer never plots: --plot-during-training hands exports to a renderer process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from allo import __version__, dataset, rundir, settling
from allo.budget import advice, data_advice, recommend
from allo.config import TrainConfig, parse_seeds
from allo.data import DataLawWeights, weight_source
from allo.layouts import (
    Layout,
    LayoutError,
    add_random_doors,
    load_builtin,
    load_layout_file,
)
from allo.learner import Learner
from allo.metrics import (
    eigenspace_bases,
    eigenspace_blocks,
    eigenvalue_errors,
    near_repeat_note,
    quality_row,
)
from allo.objective import Terms, Weights, graph_term
from allo.recorder import Recorder, to_host
from allo.spectrum import CONVENTION, GroundTruth, ground_truth

CHECKPOINTS_KEPT = 2
HEARTBEAT_SECONDS = 1.0  # run.json's heartbeat is rewritten at most this often
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


@dataclass
class Outcome:
    run_dir: Path
    status: str  # finished | interrupted | failed
    exit_code: int
    last_row: dict | None
    wall: float
    message: str | None = None  # why it failed or was interrupted


# ----------------------------------------------------------------------------- setup


def load_layout(cfg: TrainConfig) -> Layout:
    layout = load_layout_file(cfg.env_file) if cfg.env_file else load_builtin(cfg.env)
    return add_random_doors(layout, cfg.doors, cfg.door_seed)


def recorded_layout(run: Path) -> Layout:
    """The layout a run was started with, from its run.json (the file may have moved)."""
    try:
        layout = Layout.from_record(rundir.RunReader(run).info()["env"])
    except (KeyError, TypeError, rundir.RunDirError) as err:
        raise LayoutError(f"{run / rundir.RUN_JSON}: cannot rebuild the layout ({err})") from None
    return layout


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


def block_complete_width(values: np.ndarray, d: int) -> int:
    """Columns of ground truth needed so the eigenspace of eigenvalue d is complete."""
    finite = values[np.isfinite(values)]
    for block in eigenspace_blocks(finite):
        if d - 1 in block:
            return max(d, block.stop)
    return d


# ----------------------------------------------------------------------------- state


def save_checkpoint(writer: rundir.RunWriter, state: dict) -> None:
    target = writer.checkpoint_dir / rundir.checkpoint_name(state["step"])
    rundir.atomic_write(target, lambda handle: torch.save(state, handle))
    writer.prune_checkpoints(CHECKPOINTS_KEPT)


# A checkpoint holds one seed: a seed trained beside others resumes alone.
CHECKPOINT_KEYS = ("step", "elapsed", "model", "adam", "duals", "barrier", "sampler",
                   "step_index")


def load_checkpoint(run: Path, device: torch.device) -> dict | None:
    """Newest usable checkpoint by step number; never unpickles (weights_only=True).

    None when there is no checkpoint at all; TrainError when there are some but none is
    usable, so a resume never silently starts over (and drops the logged metrics).
    """
    steps = rundir.checkpoint_steps(run)
    for step in reversed(steps):
        path = run / rundir.CHECKPOINTS / rundir.checkpoint_name(step)
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as err:  # a torn or foreign file: say so, try the previous one
            if "Weights only load failed" in str(err):
                why = "refused: it holds Python objects, not only tensors (never unpickled)"
            else:
                why = (str(err).splitlines() or [type(err).__name__])[0]
            print(f"allo: skipping {path}: {why}", file=sys.stderr)
            continue
        if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
            print(f"allo: skipping {path}: not a checkpoint of this allo version",
                  file=sys.stderr)
            continue
        return state
    if steps:
        raise TrainError(f"{run / rundir.CHECKPOINTS}: none of {len(steps)} checkpoint(s) "
                         "is usable; nothing resumed")
    return None


# ----------------------------------------------------------------------------- metrics


class Evaluator:
    """Turns the learner's state into metrics rows, in two halves: `device_values` in the
    training thread (device tensors only, no sync), `rows` on the host (numpy)."""

    def __init__(self, truth: GroundTruth, d: int, objective: str, data: Weights):
        width = block_complete_width(truth.eigenvalues, d)
        self.data = data  # each seed's data-set laws on the device: the Rayleigh operator
        self.values = truth.eigenvalues[:width]
        self.vectors = truth.eigenvectors[:, :width]
        self.bases = eigenspace_bases(self.vectors, self.values, d)
        self.d, self.objective = d, objective

    def device_values(self, learner: Learner, terms: Terms) -> dict[str, torch.Tensor]:
        return {**self.state_values(learner, terms), **self.table_values(learner.tables())}

    def state_values(self, learner: Learner, terms: Terms) -> dict[str, torch.Tensor]:
        """The step's losses, norms and eigenvalue estimates."""
        if learner.grad_norm is not None:  # clipping keeps the norm it clipped
            grad_norm = learner.grad_norm
        else:
            grad_norm = learner.model.grad.norm(dim=1)
        scalars = torch.stack([terms.total, terms.graph, terms.dual, terms.barrier,
                               terms.constraint.flatten(1).norm(dim=1), grad_norm,
                               learner.barrier]).T
        if self.objective == "allo":  # lambda_i = -beta_ii / 2
            estimates = -0.5 * torch.diagonal(learner.duals, dim1=1, dim2=2)
        else:  # GGDO has no duals: <u_i, L u_i> / <u_i, u_i> from the batch
            norms = torch.diagonal(terms.constraint, dim1=-2, dim2=-1) + 1.0
            estimates = terms.graph_per_vector / norms.clamp(min=1e-12)
        return {"scalars": scalars.detach(), "estimates": estimates.detach()}

    def table_values(self, tables: torch.Tensor) -> dict[str, torch.Tensor]:
        """The (S, N, d) representation and its Rayleigh quotients."""
        # docs/math.md (13) under each seed's own data, on the device (N^2 d per seed)
        norms = (self.data.states1[..., None] * tables * tables).sum(dim=-2)
        rayleigh = graph_term(tables, self.data.pairs, self.data.laplacian) / norms.clamp(
            min=1e-30)
        return {"rayleigh": rayleigh, "tables": tables}

    def rows(self, step: int, values: dict[str, np.ndarray]) -> list[dict]:
        """One row per seed from `device_values`, moved to the host."""
        rows = []
        scalars = values["scalars"].astype(np.float64)
        estimates = values["estimates"].astype(np.float64)
        for seed, table in enumerate(values["tables"]):
            total, graph, dual, barrier, orth, grad, coef = (float(x) for x in scalars[seed])
            row = {"step": step, "loss/total": total, "loss/graph": graph, "loss/dual": dual,
                   "loss/barrier": barrier, "orth/error": orth, "grad/norm": grad,
                   "barrier/coef": coef}
            if self.objective == "allo":
                row["dual/diag"] = (-2.0 * estimates[seed]).tolist()
            else:
                row.pop("loss/dual")
            row.update(quality_row(table, estimates[seed], self.vectors, self.values, self.d,
                                   self.bases))
            rayleigh = values["rayleigh"][seed].astype(np.float64)
            row["eig/rayleigh"] = rayleigh.tolist()
            row["eig/rayleigh_mean_rel_error"] = eigenvalue_errors(
                rayleigh, self.values[: self.d])["mean_rel"]
            rows.append(row)
        return rows


# ----------------------------------------------------------------------------- training


class StopRequest:
    """SIGINT / SIGTERM set a flag; the loop stops at the next step boundary."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        for sig in EXIT_CODES:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class RenderHandoff:
    """--plot-during-training: one renderer process at a time (for all seeds together);
    training never waits for it. A run whose export landed while the renderer was busy
    is rendered next."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.process: subprocess.Popen | None = None
        self.pending: list[Path] = []

    @staticmethod
    def command(run: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "allo.cli", "render", str(run),
                "--format", "png", "--latest-only", "--quiet", *extra]

    def export_landed(self, run: Path) -> None:
        if not self.enabled:
            return
        if run not in self.pending:
            self.pending.append(run)
        if self.process is not None and self.process.poll() is None:
            return
        # One renderer process, niced: on a small machine it must not take the core that
        # trains (issue 3: within 5% of training without it; benchmarks/bench_plot_overhead.py)
        self.process = subprocess.Popen(self.command(self.pending.pop(0), "--jobs", "1"),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        if hasattr(os, "setpriority"):  # after exec: preexec_fn is unsafe with threads
            with contextlib.suppress(OSError):  # already gone: nothing to lower
                niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
                os.setpriority(os.PRIO_PROCESS, self.process.pid, niceness)

    def finish(self, runs: list[Path]) -> None:
        if not self.enabled:
            return
        if self.process is not None:
            self.process.wait()
        for run in runs:
            subprocess.run(self.command(run), stdin=subprocess.DEVNULL, check=False)


@dataclass
class SeedRun:
    """One seed's run directory and how it is going."""

    seed: int
    cfg: TrainConfig  # the config this run records: its own seed, no --seeds
    run: Path
    writer: rundir.RunWriter | None = None
    status: str = "running"
    exit_code: int = 0
    message: str | None = None
    last_row: dict | None = None
    end_step: int | None = None  # set when it concludes (seeds may go on past the budget)
    end_spent: float = 0.0
    end_training: float = 0.0


def plan_runs(cfg: TrainConfig, resume: Path | None) -> tuple[list[SeedRun], Layout]:
    """Validate everything a user can get wrong before any work starts."""
    try:
        cfg.validate()
        seeds = parse_seeds(cfg.seeds) if cfg.seeds else [cfg.seed]
        layout = load_layout(cfg) if resume is None else recorded_layout(resume)
    except (ValueError, LayoutError) as err:
        raise TrainError(str(err)) from None
    if resume is not None and len(seeds) > 1:
        raise TrainError("--resume continues one run; resume the seeds of a --seeds run "
                         "one at a time")
    if cfg.run_dir and len(seeds) > 1:
        raise TrainError("--run-dir names one run; with --seeds use --results-dir")
    if layout.components() > 1:
        print(f"allo: warning: layout {layout.name!r} has {layout.components()} disconnected "
              "free regions; each adds a zero eigenvalue", file=sys.stderr)
    runs = []
    for seed in seeds:
        own = dataclasses.replace(cfg, seed=seed, seeds=None)
        run = resume if resume is not None else (
            Path(cfg.run_dir) if cfg.run_dir else default_run_dir(own, layout.name))
        if resume is None and rundir.is_run_dir(run):
            raise TrainError(f"{run}: already holds a run; use --resume {run} or another "
                             "--run-dir")
        runs.append(SeedRun(seed, own, run))
    return runs, layout


def going_on_limit(cfg: TrainConfig, chosen: bool, resume: Path | None) -> int:
    """The last step a seed still turning may go on to (allo/settling.py): only ALLO runs
    whose steps the budget chose; a resume keeps what its run recorded unless --steps
    changes."""
    steps = cfg.num_gradient_steps
    assert steps is not None
    if cfg.objective != "allo":
        return steps
    if resume is None:
        return steps if chosen else settling.extension_limit(steps)
    info = rundir.read_json(resume / rundir.RUN_JSON)
    recorded = (info.get("budget") or {}).get("extension_limit")
    same = (info.get("config") or {}).get("num_gradient_steps") == steps
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


@dataclass
class Batch:
    """The seeds still training, as one batched learner: slot j holds runs[members[j]]."""

    learner: Learner
    evaluator: Evaluator
    step: Callable[[], Terms]
    members: list[int]
    # a row's device values as a CUDA graph (allo/cuda_graph.py), when the step is one
    graphed_values: Callable[[], Callable[[], dict[str, np.ndarray]]] | None = None

    def slots(self) -> dict[int, int]:
        """Run index -> slot, as it is now (jobs for the recorder take a copy)."""
        return {run: slot for slot, run in enumerate(self.members)}

    def row_values(self, terms: Terms) -> Callable[[], dict[str, np.ndarray]]:
        """This step's values for a metrics row, on their way to the host (to_host)."""
        if self.graphed_values is not None:  # it reads the graphed step's own Terms
            return self.graphed_values()
        return to_host(self.evaluator.device_values(self.learner, terms))


def graphed_batch(learner: Learner, evaluator: Evaluator, members: list[int]) -> Batch:
    """A batch whose step and row values replay CUDA graphs."""
    from allo.cuda_graph import GraphedStep, GraphedValues

    step = GraphedStep(learner)
    values = GraphedValues(lambda: evaluator.device_values(learner, step.terms),
                           learner.device)
    return Batch(learner, evaluator, step, members, values)


def narrowed(batch: Batch, keep: list[int], laws: list[np.ndarray], truth: GroundTruth,
             graphed: bool) -> Batch:
    """The same learner state for the seeds in `keep` only (run indices), so seeds that
    have concluded stop costing compute while others go on past the budget. Each seed's
    arithmetic is its own, so it continues exactly as before."""
    old, slots = batch.learner, batch.slots()
    seeds = [old.seeds[slots[i]] for i in keep]
    own = [laws[i] for i in keep]
    sampler = weight_source(own, seeds, old.device, old.cfg.batch_size)
    learner = Learner(old.cfg, seeds, old.device, sampler, old.coords)
    learner.load_seed_states([old.seed_state(slots[i]) for i in keep])
    expectation = (sampler.expectation if isinstance(sampler, DataLawWeights)
                   else DataLawWeights(own, seeds, old.device).expectation)
    evaluator = Evaluator(truth, old.cfg.num_eigenvectors, old.cfg.objective, expectation)
    if graphed:
        return graphed_batch(learner, evaluator, list(keep))
    return Batch(learner, evaluator, learner.step, list(keep))


def use_cuda_graph(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.cuda_graph == "on" and device.type != "cuda":
        raise TrainError("--cuda-graph on needs a CUDA device (--device cuda)")
    return device.type == "cuda" and cfg.cuda_graph != "off"


def train(
    cfg: TrainConfig,
    resume: Path | None = None,
    progress: Callable[[int, int, dict | None], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Outcome:
    """Run (or resume) one training; returns how it ended. Raises TrainError on bad input."""
    if cfg.seeds:
        raise TrainError("train() runs one seed; use train_seeds() for --seeds")
    return train_seeds(cfg, resume, progress, announce)[0]


def train_seeds(
    cfg: TrainConfig,
    resume: Path | None = None,
    progress: Callable[[int, int, dict | None], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Train every seed of cfg.seeds (or cfg.seed) as one batched model; one Outcome each.

    Denormals are flushed to zero while training (tiny activations early on run 4x
    slower as denormals) and restored afterwards: the flag is process-wide CPU state,
    and other code in the same process (tests, notebooks) expects IEEE floats.
    """
    torch.set_flush_denormal(True)
    try:
        return _train(cfg, resume, progress, announce)
    finally:
        torch.set_flush_denormal(False)


def start_run(seed_run: SeedRun, layout: Layout, truth: GroundTruth, device: torch.device,
              seeds: list[int], resume: Path | None) -> None:
    """Create (or reopen) the run directory and write what is known before training."""
    cfg, run, d = seed_run.cfg, seed_run.run, seed_run.cfg.num_eigenvectors
    writer = seed_run.writer = rundir.RunWriter(run)
    writer.remove_temporaries()  # left by a killed write; nothing else writes here now
    now = time.time()
    reachable = int(truth.support.sum())
    blocks = eigenspace_blocks(truth.eigenvalues[: min(d + 1, reachable)])
    width = block_complete_width(truth.eigenvalues, d)
    completion = (truth.eigenvalues[d:width], truth.eigenvectors[:, d:width])
    if resume is None:
        writer.write_info({
            "name": run.name, "status": "running", "message": None, "step": 0,
            "total_steps": cfg.num_gradient_steps, "started": now, "heartbeat": now,
            "finished": None, "elapsed": 0.0, "device": describe_device(device),
            "versions": {"allo": __version__, "python": platform.python_version(),
                         "torch": torch.__version__, "numpy": np.__version__},
            "config": dataclasses.asdict(cfg), "d": d, "gamma": cfg.gamma,
            "objective": cfg.objective, "seed": cfg.seed,
            "trained_with_seeds": seeds,
            "eigenvalue_convention": CONVENTION, "env": layout.record(),
            "ground_truth": {
                "blocks": [[b.start, b.stop] for b in blocks if b.start < d],
                "eigenvalues_next": float(truth.eigenvalues[d]) if reachable > d else None,
            },
            "resumes": [],
        })
        writer.write_ground_truth(*truth.top(d), completion=completion)
    elif not all((run / name).exists() for name in (rundir.GT_EIGENVALUES,
                                                      rundir.GT_EIGENVECTORS)):
        # a kill came before it was written
        writer.write_ground_truth(*truth.top(d), completion=completion)


def _train(
    cfg: TrainConfig,
    resume: Path | None,
    progress: Callable[[int, int, dict | None], None] | None,
    announce: Callable[[str], None] | None,
) -> list[Outcome]:
    runs, layout = plan_runs(cfg, resume)
    seeds = [r.seed for r in runs]
    device = resolve_device(cfg.device)
    graphed = use_cuda_graph(cfg, device)
    d = cfg.num_eigenvectors
    if cfg.threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.threads)

    timings = {"ground_truth": 0.0, "data": 0.0, "capture": 0.0, "training": 0.0}
    phase = time.perf_counter()

    # exact ground truth for the law the sampler draws from (the same for every seed)
    truth = ground_truth(layout, cfg.gamma, cfg.num_steps, cfg.max_episode_length)
    timings["ground_truth"] = time.perf_counter() - phase
    reachable = int(truth.support.sum())
    if reachable < d:
        raise TrainError(f"--num-eigenvectors {d}: the data reaches only {reachable} cells "
                         f"of layout {layout.name!r}")
    # steps: as asked, or as many as the spectrum's closest pair needs (allo/budget.py)
    budget = recommend(truth.eigenvalues, d, sampled=bool(cfg.batch_size))
    chosen = cfg.num_gradient_steps is not None
    if not chosen:
        cfg = dataclasses.replace(cfg, num_gradient_steps=budget.steps)
        for seed_run in runs:
            seed_run.cfg = dataclasses.replace(seed_run.cfg, num_gradient_steps=budget.steps)
    limit = going_on_limit(cfg, chosen, resume)
    say = announce or (lambda line: print(line, file=sys.stderr))
    line = advice(budget, cfg.num_gradient_steps, chosen)
    if line and resume is None:
        say(f"allo: note: {line}")
    line = near_repeat_note(truth.eigenvalues[:reachable], d)
    if line and resume is None:
        say(f"allo: note: {line}")
    for seed_run in runs:
        start_run(seed_run, layout, truth, device, seeds, resume)

    # data: collected once per seed (a resume collects the very same data), summed into
    # the exact pair law of that data set; without --num-envs it grows where its own
    # operator would limit the eigenvectors (allo/dataset.py)
    phase = time.perf_counter()
    width = block_complete_width(truth.eigenvalues, d)
    values, vectors = truth.eigenvalues[:width], truth.eigenvectors[:, :width]
    cores = os.cpu_count() or 1

    def build(seed: int, workers: int) -> dataset.DataSet:
        return dataset.build(layout, cfg, seed, values, vectors, d, workers,
                             announce=lambda line: say(f"allo: {line}"))

    if len(seeds) > 1:  # numpy and torch release the GIL here: one seed per core
        with ThreadPoolExecutor(max_workers=min(len(seeds), cores)) as pool:
            datasets = list(pool.map(lambda seed: build(seed, 1), seeds))
    else:
        datasets = [build(seeds[0], cores)]
    laws = [data.law for data in datasets]
    sampler = weight_source(laws, seeds, device, cfg.batch_size)
    timings["data"] = time.perf_counter() - phase
    if resume is None:
        for line in data_notes(seeds, datasets):
            say(f"allo: note: {line}")
    for seed_run, data in zip(runs, datasets, strict=True):
        assert seed_run.writer is not None
        seed_run.cfg = dataclasses.replace(seed_run.cfg, num_envs=data.num_envs)
        seed_run.writer.update_info(config=dataclasses.asdict(seed_run.cfg), budget={
            "recommended_steps": budget.steps, "needed_steps": budget.needed,
            "closest_pair": list(budget.pair),
            "gap": budget.gap if np.isfinite(budget.gap) else None,
            "data_ceiling": float(np.mean(data.ceiling)),
            "data_ceiling_per_vector": [float(c) for c in data.ceiling],
            "num_envs": data.num_envs, "data_ceiling_before_growth": data.base_ceiling,
            "extension_limit": limit if limit > cfg.num_gradient_steps else None})
    coords = torch.as_tensor(layout.coordinates(), device=device)  # (N, 2)

    learner = Learner(cfg, seeds, device, sampler, coords)
    own_laws = (sampler.expectation if isinstance(sampler, DataLawWeights)
                else DataLawWeights(laws, seeds, device).expectation)
    evaluator = Evaluator(truth, d, cfg.objective, own_laws)
    start_step, elapsed = 0, 0.0
    if resume is not None:
        writer = runs[0].writer
        assert writer is not None
        state = load_checkpoint(resume, device)
        if state is not None:
            try:
                learner.load_seed_states([state])
                start_step, elapsed = int(state["step"]), float(state["elapsed"])
            except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
                raise TrainError(f"{resume / rundir.CHECKPOINTS}: step {state.get('step')} "
                                 f"does not fit this run's model ({str(err).splitlines()[0]})"
                                 ) from None
        writer.truncate_metrics_after(start_step)
        writer.drop_exports_after(start_step)  # recomputed identically from here
        info = rundir.read_json(resume / rundir.RUN_JSON)
        now = time.time()
        writer.update_info(status="running", message=None, step=start_step,
                           total_steps=cfg.num_gradient_steps, heartbeat=now, finished=None,
                           config=dataclasses.asdict(runs[0].cfg),
                           device=describe_device(device),
                           resumes=[*info.get("resumes", []), {"step": start_step, "time": now}])
    handoff = RenderHandoff(cfg.plot_during_training)

    phase = time.perf_counter()
    members = list(range(len(runs)))
    if graphed and start_step < limit:
        batch = graphed_batch(learner, evaluator, members)
    else:
        batch = Batch(learner, evaluator, learner.step, members)
    timings["capture"] = time.perf_counter() - phase

    recorder = Recorder()
    heartbeats = [0.0] * len(runs)
    # each seed's last step: the budget, moved on while its vectors still turn (settle)
    ends = [cfg.num_gradient_steps] * len(runs)
    blocks = [range(b.start, min(b.stop, d)) for b in eigenspace_blocks(values) if b.start < d]

    def running() -> list[int]:
        return [i for i, r in enumerate(runs) if r.status == "running"]

    # An eager row's table is the next step's forward pass (Learner.forward_table), not a
    # forward of its own; whatever reads or changes the state before then completes it.
    pending_row: Callable[[torch.Tensor | None], None] | None = None

    def log(step: int, terms: Terms, tick: float, sps: float,
            only: list[int] | None = None, defer: bool = False) -> None:
        nonlocal pending_row
        spent, targets = elapsed + tick - clock, running() if only is None else only
        evaluator, slots, learner = batch.evaluator, batch.slots(), batch.learner
        if not defer or batch.graphed_values is not None:
            submit_row(step, batch.row_values(terms), spent, sps, targets, evaluator, slots)
            return
        state = to_host(evaluator.state_values(learner, terms))

        def complete(table: torch.Tensor | None) -> None:
            tables = to_host(evaluator.table_values(learner.tables() if table is None
                                                    else table))
            submit_row(step, lambda: {**state(), **tables()}, spent, sps, targets,
                       evaluator, slots)

        pending_row = complete

    def complete_row(table: torch.Tensor | None = None) -> None:
        """Submit the pending row, with `table` from the next step or a forward now."""
        nonlocal pending_row
        if pending_row is not None:
            complete, pending_row = pending_row, None
            complete(table)

    def submit_row(step: int, ready: Callable[[], dict[str, np.ndarray]], spent: float,
                   sps: float, targets: list[int], evaluator: Evaluator,
                   slots: dict[int, int]) -> None:
        def job() -> None:
            values = ready()
            rows = evaluator.rows(step, values)
            for i in targets:
                row = {"step": step, "time": spent, "sps": sps, **rows[slots[i]]}
                seed_run = runs[i]
                writer = seed_run.writer
                assert writer is not None
                if seed_run.status == "failed":
                    continue
                writer.append_metrics(row)
                problem = failure(step, row["loss/total"], values["tables"][slots[i]])
                if problem is not None:
                    seed_run.status, seed_run.exit_code, seed_run.message = "failed", 1, problem
                    finish_run(seed_run, step, spent, timings)
                    continue
                seed_run.last_row = row
                if time.monotonic() - heartbeats[i] >= HEARTBEAT_SECONDS:
                    heartbeats[i] = time.monotonic()
                    writer.update_info(step=step, heartbeat=time.time(), elapsed=spent)

        recorder.submit(job)

    def export(step: int, spent: float, final: bool = False,
               only: list[int] | None = None) -> None:
        complete_row()
        ready, slots = to_host({"tables": batch.learner.tables()}), batch.slots()
        targets = running() if only is None else only

        def job() -> None:
            tables = ready()["tables"]
            for i in targets:
                writer = runs[i].writer
                assert writer is not None
                if runs[i].status == "failed":
                    continue
                if final:
                    writer.export_final(tables[slots[i]])
                else:
                    writer.export_learned(step, tables[slots[i]])
                writer.write_metrics_history()
                writer.update_info(step=step, heartbeat=time.time(), elapsed=spent)
                handoff.export_landed(runs[i].run)

        recorder.submit(job)

    def checkpoint(step: int, spent: float, targets: list[int]) -> None:
        complete_row()
        slots = batch.slots()  # device copies of this step:
        states = {i: batch.learner.seed_state(slots[i]) for i in targets}

        def job() -> None:
            for i, state in states.items():
                if runs[i].status != "failed":
                    assert runs[i].writer is not None
                    save_checkpoint(runs[i].writer, {"step": step, "elapsed": spent, **state})

        recorder.submit(job)

    def conclude(targets: list[int], step: int, terms: Terms | None, sps: float) -> None:
        """Last row, checkpoint and exports of seeds at their end; they stop running."""
        tick = time.perf_counter()
        spent = elapsed + tick - clock
        if terms is not None and step % cfg.log_freq != 0:
            log(step, terms, tick, sps, only=targets)
        checkpoint(step, spent, targets)
        export(step, spent, final=True, only=targets)
        if step % cfg.plot_freq != 0:
            export(step, spent, only=targets)
        for i in targets:
            runs[i].status = "finished"
            runs[i].end_step, runs[i].end_spent, runs[i].end_training = step, spent, tick - clock

            def job(seed_run: SeedRun = runs[i]) -> None:  # watchers see it end now
                if seed_run.writer is not None and seed_run.status == "finished":
                    seed_run.writer.update_info(status="finished", step=step, total_steps=step,
                                                heartbeat=time.time(), finished=time.time(),
                                                elapsed=spent)

            recorder.submit(job)

    def settle(due: list[int], step: int, terms: Terms | None, sps: float) -> None:
        """At a seed's end: go on while its vectors still turn (allo/settling.py), or
        conclude it; the batch then narrows to the seeds still running."""
        nonlocal batch
        complete_row()
        going_on = []
        if step < limit:
            tables = batch.learner.tables().double().cpu().numpy()  # a sync, per CHECK_EVERY
            slots = batch.slots()
            for i in due:
                alignment = settling.ritz_alignment(tables[slots[i]], laws[i], blocks)
                if not settling.turning(alignment):
                    continue
                if ends[i] == cfg.num_gradient_steps:
                    say(f"allo: {settling.going_on_note(runs[i].seed, step, alignment, limit)}")
                    writer = runs[i].writer
                    assert writer is not None
                    recorder.submit(lambda writer=writer: writer.update_info(total_steps=limit))
                ends[i] = min(limit, step + settling.CHECK_EVERY)
                going_on.append(i)
        if going_on and step % cfg.checkpoint_freq == 0:  # the loop left them to conclude
            checkpoint(step, elapsed + time.perf_counter() - clock, going_on)
        conclude([i for i in due if i not in going_on], step, terms, sps)
        if going_on and len(running()) < len(batch.members):
            if graphed:
                recorder.drain()  # no checkpoint may copy from the device during capture
            batch = narrowed(batch, running(), laws, truth, graphed)

    step = start_step
    clock = time.perf_counter()
    interval_start, interval_step = clock, step
    shown, terms, sps = None, None, 0.0
    try:
        with StopRequest() as stop:
            while running():
                due = [i for i in running() if step >= ends[i]]
                if due:
                    settle(due, step, terms, sps)
                    if not running():
                        break
                terms = batch.step()
                complete_row(batch.learner.forward_table)  # the table of the step before
                step += 1

                # log: a snapshot for the recorder thread; nothing here waits for the device
                if step % cfg.log_freq == 0:
                    tick = time.perf_counter()
                    sps = (step - interval_step) / max(tick - interval_start, 1e-9)
                    log(step, terms, tick, sps, defer=True)
                    interval_start, interval_step = time.perf_counter(), step
                if progress and step % 10 == 0:
                    row = first_row(runs)
                    # a seed going on may run to the limit (as run.json's total_steps says)
                    total = max((limit if ends[i] > cfg.num_gradient_steps else ends[i]
                                 for i in running()), default=step)
                    progress(step, total, row if row is not shown else None)
                    shown = row

                # export and checkpoint (a seed at its end gets both when it concludes)
                if step % cfg.plot_freq == 0:
                    export(step, elapsed + time.perf_counter() - clock)
                    if announce:  # after this step's row is written, from the recorder
                        recorder.submit(lambda: first_row(runs) and announce(format_rows(runs)))
                if step % cfg.checkpoint_freq == 0:
                    targets = [i for i in running() if step < ends[i]]
                    if targets:
                        checkpoint(step, elapsed + time.perf_counter() - clock, targets)

                if stop.signal is not None:
                    for i in running():
                        runs[i].status = "interrupted"
                        runs[i].exit_code = EXIT_CODES[stop.signal]
                        runs[i].message = (f"stopped by {signal.Signals(stop.signal).name} "
                                           f"at step {step}")
                    break

        complete_row()  # stopped by a signal right after a log step
        spent = elapsed + time.perf_counter() - clock
        timings["training"] = time.perf_counter() - clock
        # a failed run keeps its last good checkpoint; an interrupted one gets one now
        checkpoint(step, spent, [i for i, r in enumerate(runs) if r.status == "interrupted"])
    finally:
        drain = time.perf_counter()
        recorder.close()  # every row, export and checkpoint is on disk after this
        timings["recording_after_training"] = time.perf_counter() - drain
        timings["recorder_busy"] = recorder.busy_seconds
    for seed_run in runs:
        if seed_run.status == "failed":
            continue  # finished by the recorder when it diverged
        if seed_run.end_step is None:  # interrupted
            seed_run.end_step, seed_run.end_spent = step, spent
            seed_run.end_training = timings["training"]
        finish_run(seed_run, seed_run.end_step, seed_run.end_spent,
                   {**timings, "training": seed_run.end_training})
    handoff.finish([r.run for r in runs if r.status == "finished"])
    return [Outcome(r.run, r.status, r.exit_code, r.last_row, r.end_spent or spent, r.message)
            for r in runs]


def failure(step: int, loss: float, table: np.ndarray) -> str | None:
    """Why a run cannot recover, or None: a non-finite loss or network, or a network
    whose every output is the same in all cells (its ReLUs died: no gradient reaches
    them again, so it would log cos 1/d until the end)."""
    if not np.isfinite(loss) or not np.isfinite(table).all():
        bad = "loss/total" if not np.isfinite(loss) else "the network"
        return f"diverged at step {step}: {bad} is not finite; lower --learning-rate"
    spread = float(np.ptp(table, axis=0).max())
    if spread <= 1e-6 * max(1.0, float(np.abs(table).max())):
        return (f"collapsed at step {step}: the network gives every cell the same values "
                "(dead ReLUs); try a smaller --max-grad-norm or another seed")
    return None


def finish_run(seed_run: SeedRun, step: int, spent: float, timings: dict) -> None:
    """Final metrics history and status of one run; its writer is closed."""
    writer = seed_run.writer
    assert writer is not None
    writer.write_metrics_history()
    writer.update_info(status=seed_run.status, message=seed_run.message, step=step,
                       **({"total_steps": step} if seed_run.status == "finished" else {}),
                       heartbeat=time.time(), finished=time.time(), elapsed=spent,
                       timings={k: round(v, 3) for k, v in timings.items()})
    writer.close()


def first_row(runs: list[SeedRun]) -> dict | None:
    return next((r.last_row for r in runs if r.last_row is not None), None)


def format_row(row: dict) -> str:
    parts = [f"step {row['step']:>7}", f"mean|cos| {row['cos/mean']:.4f}"]
    if row.get("eig/mean_abs_error") is not None:
        parts.append(f"eig err {row['eig/mean_abs_error']:.4f}")
    parts.append(f"loss {row['loss/total']:.4f}")
    return "  ".join(parts)


def format_rows(runs: list[SeedRun]) -> str:
    """The progress line of an export: one seed in full, several seeds side by side."""
    rows = [(r.seed, r.last_row) for r in runs if r.last_row is not None]
    if len(runs) == 1:
        return format_row(rows[0][1]) if rows else ""
    if not rows:
        return ""
    cosines = "  ".join(f"{seed}:{row['cos/mean']:.4f}" for seed, row in rows)
    return f"step {rows[0][1]['step']:>7}  mean|cos| by seed  {cosines}"
