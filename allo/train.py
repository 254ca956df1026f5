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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from allo import __version__, rundir
from allo.config import TrainConfig
from allo.data import PairSampler, collect
from allo.layouts import (
    Layout,
    LayoutError,
    add_random_doors,
    load_builtin,
    load_layout_file,
)
from allo.metrics import eigenspace_blocks, quality_row
from allo.model import MLP
from allo.objective import Terms, Weights, allo_terms, batch_weights, ggdo_terms
from allo.spectrum import CONVENTION, GroundTruth, ground_truth

CHECKPOINTS_KEPT = 2
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


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Fused Adam (one kernel for all parameters: 4x faster on CPU here) where torch has it."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or an unsupported device
        return torch.optim.Adam(params, lr=lr)


class Learner:
    """Network, optimiser, duals and barrier: everything a checkpoint must hold."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg = cfg
        self.device = device
        d = cfg.num_eigenvectors
        self.model = MLP(d, cfg.hidden_layers, cfg.hidden_size).to(device)
        self.optimizer = make_adam(self.model.parameters(), cfg.learning_rate)
        self.duals = torch.zeros(d, d, device=device)  # (d, d), lower triangle used
        self.barrier = torch.tensor(cfg.barrier_initial, device=device)

    def set_learning_rate(self, step: int) -> None:
        """Linear warm-up, then linear decay to lr_final_fraction at the last step."""
        progress = step / max(1, self.cfg.num_gradient_steps)
        fraction = 1.0 - (1.0 - self.cfg.lr_final_fraction) * progress
        if step < self.cfg.lr_warmup_steps:
            fraction *= (step + 1) / self.cfg.lr_warmup_steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.learning_rate * fraction

    def terms(self, table: torch.Tensor, weights: Weights) -> Terms:
        if self.cfg.objective == "ggdo":
            return ggdo_terms(table, weights, self.barrier)
        return allo_terms(table, weights, self.duals, self.barrier)

    @torch.no_grad()
    def ascend(self, terms: Terms) -> None:
        """Gradient ascent on the duals, monotone growth of the barrier (both on device)."""
        if self.cfg.objective == "ggdo":
            return
        self.duals.add_(terms.constraint, alpha=self.cfg.lr_duals)
        grown = self.barrier + self.cfg.lr_barrier * terms.barrier_signal.clamp(min=0.0)
        self.barrier = grown.clamp(max=self.cfg.barrier_max)

    def state(self, step: int, elapsed: float, sampler: PairSampler) -> dict:
        return {
            "step": step,
            "elapsed": elapsed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "duals": self.duals,
            "barrier": self.barrier,
            "sampler": sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load(self, state: dict, sampler: PairSampler) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.duals = state["duals"].to(self.device)
        self.barrier = state["barrier"].to(self.device)
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])


def save_checkpoint(writer: rundir.RunWriter, state: dict) -> None:
    target = writer.checkpoint_dir / rundir.checkpoint_name(state["step"])
    rundir.atomic_write(target, lambda handle: torch.save(state, handle))
    writer.prune_checkpoints(CHECKPOINTS_KEPT)


CHECKPOINT_KEYS = ("step", "elapsed", "model", "optimizer", "duals", "barrier", "sampler",
                   "torch_rng")


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
            print(f"allo: skipping {path}: not an allo checkpoint", file=sys.stderr)
            continue
        return state
    if steps:
        raise TrainError(f"{run / rundir.CHECKPOINTS}: none of {len(steps)} checkpoint(s) "
                         "is usable; nothing resumed")
    return None


# ----------------------------------------------------------------------------- metrics


class Evaluator:
    """Turns the current network into one metrics row (host sync happens only here)."""

    def __init__(self, truth: GroundTruth, d: int):
        width = block_complete_width(truth.eigenvalues, d)
        self.values = truth.eigenvalues[:width]
        self.vectors = truth.eigenvectors[:, :width]
        self.d = d

    def row(self, step: int, learner: Learner, table: np.ndarray, terms: Terms) -> dict:
        grads = [p.grad.norm() for p in learner.model.parameters() if p.grad is not None]
        row = {
            "step": step,
            "loss/total": terms.total.item(),
            "loss/graph": terms.graph.item(),
            "loss/dual": terms.dual.item(),
            "loss/barrier": terms.barrier.item(),
            "orth/error": terms.constraint.norm().item(),
            "grad/norm": torch.stack(grads).norm().item() if grads else 0.0,
            "barrier/coef": learner.barrier.item(),
        }
        if learner.cfg.objective == "allo":
            diag = torch.diagonal(learner.duals).cpu().numpy().astype(np.float64)
            estimate = -diag / 2.0
            row["dual/diag"] = diag.tolist()
        else:
            row.pop("loss/dual")
            estimate = rayleigh_quotients(terms)
        row.update(quality_row(table, estimate, self.vectors, self.values, self.d))
        return row


def rayleigh_quotients(terms: Terms) -> np.ndarray:
    """GGDO has no duals: estimate lambda_i by <u_i, L u_i> / <u_i, u_i> from the batch."""
    norms = np.diag(terms.constraint.cpu().numpy()).astype(np.float64) + 1.0
    graph = terms.graph_per_vector.cpu().numpy().astype(np.float64)
    return graph / np.maximum(norms, 1e-12)


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
    """--plot-during-training: one renderer process at a time; training never waits."""

    def __init__(self, run: Path, enabled: bool):
        self.run, self.enabled = run, enabled
        self.process: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "allo.cli", "render", str(self.run),
                "--format", "png", "--latest-only", "--quiet", *extra]

    def export_landed(self) -> None:
        if not self.enabled or (self.process is not None and self.process.poll() is None):
            return
        # One renderer process, niced: on a small machine it must not take the core that
        # trains (issue 3: within 5% of training without it; benchmarks/bench_plot_overhead.py)
        self.process = subprocess.Popen(self.command("--jobs", "1"), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if hasattr(os, "setpriority"):  # after exec: preexec_fn is unsafe with threads
            with contextlib.suppress(OSError):  # already gone: nothing to lower
                niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
                os.setpriority(os.PRIO_PROCESS, self.process.pid, niceness)

    def finish(self) -> None:
        if not self.enabled:
            return
        if self.process is not None:
            self.process.wait()
        subprocess.run(self.command(), stdin=subprocess.DEVNULL, check=False)


def prepare_run(cfg: TrainConfig, resume: Path | None) -> tuple[TrainConfig, Path, Layout]:
    """Validate everything a user can get wrong before any work starts."""
    try:
        cfg.validate()
        layout = load_layout(cfg) if resume is None else recorded_layout(resume)
    except (ValueError, LayoutError) as err:
        raise TrainError(str(err)) from None
    if layout.components() > 1:
        print(f"allo: warning: layout {layout.name!r} has {layout.components()} disconnected "
              "free regions; each adds a zero eigenvalue", file=sys.stderr)
    run = resume if resume is not None else (
        Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg, layout.name))
    if resume is None and rundir.is_run_dir(run):
        raise TrainError(f"{run}: already holds a run; use --resume {run} or another --run-dir")
    return cfg, run, layout


def train(
    cfg: TrainConfig,
    resume: Path | None = None,
    progress: Callable[[int, int, dict | None], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Outcome:
    """Run (or resume) one training; returns how it ended. Raises TrainError on bad input.

    Denormals are flushed to zero while training (tiny activations early on run 4x
    slower as denormals) and restored afterwards: the flag is process-wide CPU state,
    and other code in the same process (tests, notebooks) expects IEEE floats.
    """
    torch.set_flush_denormal(True)
    try:
        return _train(cfg, resume, progress, announce)
    finally:
        torch.set_flush_denormal(False)


def _train(
    cfg: TrainConfig,
    resume: Path | None,
    progress: Callable[[int, int, dict | None], None] | None,
    announce: Callable[[str], None] | None,
) -> Outcome:
    cfg, run, layout = prepare_run(cfg, resume)
    device = resolve_device(cfg.device)
    d = cfg.num_eigenvectors
    if cfg.threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.threads)

    timings = {"ground_truth": 0.0, "data": 0.0, "training": 0.0, "exports": 0.0}
    phase = time.perf_counter()

    # exact ground truth for the law the sampler draws from
    truth = ground_truth(layout, cfg.gamma, cfg.num_steps, cfg.max_episode_length)
    timings["ground_truth"] = time.perf_counter() - phase
    reachable = int(truth.support.sum())
    if reachable < d:
        raise TrainError(f"--num-eigenvectors {d}: the data reaches only {reachable} cells "
                         f"of layout {layout.name!r}")

    writer = rundir.RunWriter(run)
    writer.remove_temporaries()  # left by a killed write; nothing else writes here now
    now = time.time()
    blocks = eigenspace_blocks(truth.eigenvalues[: min(d + 1, reachable)])
    if resume is None:
        writer.write_info({
            "name": run.name, "status": "running", "message": None, "step": 0,
            "total_steps": cfg.num_gradient_steps, "started": now, "heartbeat": now,
            "finished": None, "elapsed": 0.0, "device": describe_device(device),
            "versions": {"allo": __version__, "python": platform.python_version(),
                         "torch": torch.__version__, "numpy": np.__version__},
            "config": dataclasses.asdict(cfg), "d": d, "gamma": cfg.gamma,
            "objective": cfg.objective, "seed": cfg.seed,
            "eigenvalue_convention": CONVENTION, "env": layout.record(),
            "ground_truth": {
                "blocks": [[b.start, b.stop] for b in blocks if b.start < d],
                "eigenvalues_next": float(truth.eigenvalues[d]) if reachable > d else None,
            },
            "resumes": [],
        })
        writer.write_ground_truth(*truth.top(d))
    elif not all((run / name).exists() for name in (rundir.GT_EIGENVALUES,
                                                      rundir.GT_EIGENVECTORS)):
        writer.write_ground_truth(*truth.top(d))  # a kill came before it was written

    # data: collected once from the seed (a resume collects the very same data)
    phase = time.perf_counter()
    experience = collect(layout, cfg.num_envs, cfg.num_steps, cfg.max_episode_length, cfg.seed)
    timings["data"] = time.perf_counter() - phase
    sampler = PairSampler(experience, cfg.gamma, device, cfg.seed)
    coords = torch.as_tensor(layout.coordinates(), device=device)  # (N, 2)
    num_cells = layout.num_free

    # model, optimiser, duals
    torch.manual_seed(cfg.seed)
    learner = Learner(cfg, device)
    evaluator = Evaluator(truth, d)
    start_step, elapsed = 0, 0.0
    if resume is not None:
        state = load_checkpoint(run, device)
        if state is not None:
            try:
                learner.load(state, sampler)
                start_step, elapsed = int(state["step"]), float(state["elapsed"])
            except (RuntimeError, ValueError, TypeError, KeyError) as err:
                raise TrainError(f"{run / rundir.CHECKPOINTS}: step {state.get('step')} "
                                 f"does not fit this run's model ({str(err).splitlines()[0]})"
                                 ) from None
        writer.truncate_metrics_after(start_step)
        writer.drop_exports_after(start_step)  # recomputed identically from here
        info = rundir.read_json(run / rundir.RUN_JSON)
        writer.update_info(status="running", message=None, step=start_step,
                           total_steps=cfg.num_gradient_steps, heartbeat=now, finished=None,
                           config=dataclasses.asdict(cfg), device=describe_device(device),
                           resumes=[*info.get("resumes", []), {"step": start_step, "time": now}])
    handoff = RenderHandoff(run, cfg.plot_during_training)

    def export(step: int, final: bool = False) -> None:
        began = time.perf_counter()
        with torch.no_grad():
            table = learner.model(coords).cpu().numpy()
        if final:
            writer.export_final(table)
        else:
            writer.export_learned(step, table)
        writer.write_metrics_history()
        handoff.export_landed()
        timings["exports"] += time.perf_counter() - began

    def checkpoint(step: int, spent: float) -> None:
        began = time.perf_counter()
        save_checkpoint(writer, learner.state(step, spent, sampler))
        timings["exports"] += time.perf_counter() - began

    status, exit_code, message, last_row = "finished", 0, None, None
    step = start_step
    clock = time.perf_counter()
    interval_start, interval_step = clock, step
    with StopRequest() as stop:
        while step < cfg.num_gradient_steps:
            learner.set_learning_rate(step)
            # forward every free cell once; the batch weighs rows of this table
            table = learner.model(coords)  # (N, d)
            weights = batch_weights(sampler.batch(cfg.batch_size), num_cells)
            terms = learner.terms(table, weights)
            learner.optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            learner.optimizer.step()
            learner.ascend(terms)
            step += 1

            # log (the only host synchronisation besides exports)
            if step % cfg.log_freq == 0 or step == cfg.num_gradient_steps:
                with torch.no_grad():
                    current = learner.model(coords).cpu().numpy()
                tick = time.perf_counter()
                row = {"step": step, "time": elapsed + tick - clock,
                       "sps": (step - interval_step) / max(tick - interval_start, 1e-9)}
                row.update(evaluator.row(step, learner, current, terms))
                interval_start, interval_step = tick, step
                if not (np.isfinite(row["loss/total"]) and np.isfinite(current).all()):
                    bad = "loss/total" if not np.isfinite(row["loss/total"]) else "the network"
                    status, exit_code = "failed", 1
                    message = f"diverged at step {step}: {bad} is not finite; lower --learning-rate"
                    writer.append_metrics(row)
                    break
                writer.append_metrics(row)
                writer.update_info(step=step, heartbeat=time.time(),
                                   elapsed=elapsed + tick - clock)
                last_row = row
                if progress:
                    progress(step, cfg.num_gradient_steps, row)
            elif progress and step % 10 == 0:
                progress(step, cfg.num_gradient_steps, None)

            # export and checkpoint
            if step % cfg.plot_freq == 0:
                export(step)
                if announce and last_row:
                    announce(format_row(last_row))
            if step % cfg.checkpoint_freq == 0 and step < cfg.num_gradient_steps:
                checkpoint(step, elapsed + time.perf_counter() - clock)

            if stop.signal is not None:
                status, exit_code = "interrupted", EXIT_CODES[stop.signal]
                message = f"stopped by {signal.Signals(stop.signal).name} at step {step}"
                break

    spent = elapsed + time.perf_counter() - clock
    timings["training"] = time.perf_counter() - clock - timings["exports"]
    if status != "failed":
        checkpoint(step, spent)
    if status == "finished":
        export(step, final=True)
        if step % cfg.plot_freq != 0:
            export(step)
    writer.write_metrics_history()
    writer.update_info(status=status, message=message, step=step, heartbeat=time.time(),
                       finished=time.time(), elapsed=spent,
                       timings={k: round(v, 3) for k, v in timings.items()})
    writer.close()
    if status == "finished":
        handoff.finish()
    return Outcome(run, status, exit_code, last_row, spent, message)


def format_row(row: dict) -> str:
    parts = [f"step {row['step']:>7}", f"mean|cos| {row['cos/mean']:.4f}"]
    if row.get("eig/mean_abs_error") is not None:
        parts.append(f"eig err {row['eig/mean_abs_error']:.4f}")
    parts.append(f"loss {row['loss/total']:.4f}")
    return "  ".join(parts)
