"""Train ALLO on a gridworld and export a run directory (docs/run-format.md).

    allo train room4
    allo train maze --num-gradient-steps 5000 --seed 3
    allo train --env-file my_layout.txt --doors 4 --door-seed 1
    allo train --resume results/room4/room4__allo__0__0__1700000000

Reads top to bottom: layout, ground truth, budget, data, model, resume, one loop. What the
loop writes goes through allo/training/outputs.py; the other parts live in allo/training/.
The trainer never plots: --plot-during-training hands exports to a renderer process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from allo import capacity, dataset, discount, identity, rundir, runlock, signals, sparse_law
from allo.budget import Budget, advice, recommend, separation_tolerance, strict_data_ceiling
from allo.config import TrainConfig
from allo.data import DataLawWeights, weight_source
from allo.encoder import observation_inputs
from allo.evaluator import Evaluator
from allo.layouts import Layout
from allo.learner import Learner
from allo.metrics import block_complete_width, eigenspace_blocks, near_repeat_note
from allo.spectrum import GroundTruth, ground_truth
from allo.training import TrainError
from allo.training.batch import Batch, first_batch, graphed_batch, narrowed, use_cuda_graph
from allo.training.checkpoint import load_checkpoint
from allo.training.outputs import EXIT_CODES, RunOutputs, Settling, export_interval
from allo.training.runs import (
    Outcome,
    SeedRun,
    data_notes,
    describe_device,
    first_row,
    format_row,
    going_on_limit,
    plan_runs,
    resolve_device,
    start_run,
)

__all__ = ["Batch", "Evaluator", "Outcome", "RenderHandoff", "TrainError", "data_notes",
           "format_row", "graphed_batch", "narrowed", "train", "train_seeds"]

Progress = Callable[[int, int, dict | None], None]
# Layouts of this many free cells or more take long enough to prepare (ground truth, the
# data's pair law) that each phase is announced on stderr.
LONG_PREPARATION_CELLS = 2000


def train(cfg: TrainConfig, resume: Path | None = None, progress: Progress | None = None,
          announce: Callable[[str], None] | None = None) -> Outcome:
    """Run (or resume) one training; returns how it ended. Raises TrainError on bad input."""
    if cfg.seeds:
        raise TrainError("train() runs one seed; use train_seeds() for --seeds")
    return train_seeds(cfg, [resume] if resume is not None else (), progress, announce)[0]


def train_seeds(cfg: TrainConfig, resume: Sequence[Path] = (), progress: Progress | None = None,
                announce: Callable[[str], None] | None = None) -> list[Outcome]:
    """Train every seed of cfg.seeds (or cfg.seed) as one batched model; one Outcome each.
    `resume`: runs to go on with instead, one model for their seeds (same configuration,
    same checkpoint step).

    Denormals are flushed to zero while training (tiny activations early on are much
    slower as denormals; BENCHMARKS.md, "Training") and restored afterwards: the flag is
    process-wide CPU state, and other code in the same process (tests, notebooks)
    expects IEEE floats.
    """
    torch.set_flush_denormal(True)
    try:
        with runlock.released_on_exit():  # each run's writer lock, however it ends
            return _train(cfg, resume, progress, announce)
    finally:
        torch.set_flush_denormal(False)


def _train(cfg: TrainConfig, resume: Sequence[Path], progress: Progress | None,
           announce: Callable[[str], None] | None) -> list[Outcome]:
    """Setup, in order, then the loop."""
    runs, layout = plan_runs(cfg, resume)
    seeds = [r.seed for r in runs]
    device = resolve_device(cfg.device)
    graphed = use_cuda_graph(cfg, device)
    if cfg.threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    say = announce or (lambda line: print(line, file=sys.stderr))
    timings = {"ground_truth": 0.0, "data": 0.0, "capture": 0.0, "training": 0.0}

    # exact ground truth for the law the sampler draws from (the same for every seed)
    phase = time.perf_counter()
    if layout.num_free >= LONG_PREPARATION_CELLS:  # tens of seconds or more: say so
        say(f"allo: computing the exact ground truth of {layout.num_free} cells ...")
    cfg, truth, budget, discount_note = exact_spectrum(layout, cfg, runs)
    timings["ground_truth"] = time.perf_counter() - phase
    reachable = int(truth.support.sum())
    if reachable < cfg.num_eigenvectors:
        raise TrainError(f"--num-eigenvectors {cfg.num_eigenvectors}: the data reaches only "
                         f"{reachable} cells of layout {layout.name!r}")

    # steps: as asked, or as many as the spectrum's closest pair needs (allo/budget.py)
    tol = separation_tolerance(cfg.data)
    chosen = cfg.num_gradient_steps is not None
    if not chosen:
        cfg = with_fields(cfg, runs, num_gradient_steps=budget.steps)
    if cfg.plot_freq is None:  # a large grid's exports are MBs each
        assert cfg.num_gradient_steps is not None
        cfg = with_fields(cfg, runs, plot_freq=export_interval(
            layout.num_free, cfg.num_eigenvectors, cfg.num_gradient_steps))
    limit = going_on_limit(cfg, chosen, resume)
    if not resume:
        for line in (discount_note,
                     advice(budget, budget.steps if cfg.num_gradient_steps is None
                            else cfg.num_gradient_steps, chosen),
                     None if cfg.data == "exact" else
                     near_repeat_note(truth.eigenvalues[:reachable], cfg.num_eigenvectors)):
            if line:
                say(f"allo: note: {line}")
    for seed_run in runs:
        start_run(seed_run, layout, truth, device, seeds, resuming=bool(resume))

    # data: collected once per seed (a resume collects the very same data), summed into
    # the exact pair law of that data set; without --num-envs it grows where its own
    # operator would limit the eigenvectors (allo/dataset.py)
    phase = time.perf_counter()
    if layout.num_free >= LONG_PREPARATION_CELLS:
        plural = "s" if len(seeds) > 1 else ""
        say(f"allo: ground truth done in {timings['ground_truth']:.1f} s; collecting the "
            f"data of {len(seeds)} seed{plural} ...")
    try:
        with stoppable():  # minutes on a large grid: Ctrl-C ends the runs interrupted
            datasets = collect_data(layout, cfg, truth, runs, say)
    except PreparationStopped as stopped:
        return stopped_before_training(runs, stopped.signum, timings)
    laws = [data.law for data in datasets]
    problem = capacity.check_pairs(layout.num_free, len(seeds), dataset.CHUNK_ENVS,
                                   max(sparse_law.as_sparse(law).nnz for law in laws))
    if problem:  # the estimate before the data was too low: say so before training
        raise TrainError(problem)
    sampler = weight_source(laws, seeds, device, cfg.batch_size)
    timings["data"] = time.perf_counter() - phase
    if not resume:
        for line in data_notes(seeds, datasets):
            say(f"allo: note: {line}")
    record_budget(runs, datasets, budget, limit)
    for seed_run in runs:  # the config is final now: what its checkpoints carry
        seed_run.identity = identity.run_identity(seed_run.cfg, layout)

    # model, optimizer and duals for all seeds at once; the evaluator scores them
    coords = observation_inputs(cfg, layout, device)  # (N, 2) xy, or images
    learner = Learner(cfg, seeds, device, sampler, coords)
    own_laws = (sampler.expectation if isinstance(sampler, DataLawWeights)
                else DataLawWeights(laws, seeds, device).expectation)
    evaluator = Evaluator(truth, cfg.num_eigenvectors, cfg.objective, own_laws)
    start_step, elapsed = resume_runs(runs, learner, device) if resume else (0, 0.0)

    # the run's outputs, and the first batch (a CUDA graph is captured here)
    handoff = RenderHandoff(cfg.plot_during_training)
    values = truth.eigenvalues[:block_complete_width(truth.eigenvalues, cfg.num_eigenvectors)]
    blocks = [range(b.start, min(b.stop, cfg.num_eigenvectors))
              for b in eigenspace_blocks(values, tol) if b.start < cfg.num_eigenvectors]
    assert cfg.num_gradient_steps is not None
    outputs = RunOutputs(runs, cfg, Settling(cfg.num_gradient_steps, limit, laws, blocks,
                                             [data.eigenvectors for data in datasets]),
                         handoff.export_landed, say, timings)
    phase = time.perf_counter()
    batch = first_batch(learner, evaluator, list(range(len(runs))),
                        graphed and start_step < limit)
    timings["capture"] = time.perf_counter() - phase
    outcomes = loop(cfg, outputs, batch, start_step, elapsed, laws, truth, graphed,
                    progress, announce)
    handoff.finish([r.run for r in runs if r.status == rundir.Status.FINISHED])
    return outcomes


def exact_spectrum(layout: Layout, cfg: TrainConfig, runs: list[SeedRun]
                   ) -> tuple[TrainConfig, GroundTruth, Budget, str | None]:
    """The exact ground truth and its step budget, at --gamma or, where it is not given,
    at the discount allo/discount.py chooses; the config (and each seed's) with that
    discount, and the line that says why where it is not the usual one."""
    gamma = cfg.discount
    d, tol, sampled = cfg.num_eigenvectors, separation_tolerance(cfg.data), bool(cfg.batch_size)

    def at(candidate: float) -> tuple[GroundTruth, Budget]:
        truth = ground_truth(layout, candidate, cfg.num_steps, cfg.max_episode_length,
                             count=d + 1)
        return truth, recommend(truth.eigenvalues, d, sampled=sampled, tol=tol)

    truth, budget = at(gamma)
    choice = None
    if discount.may_choose(layout, cfg.gamma, cfg.batch_size):
        choice = discount.choose(truth.eigenvalues, d, tol)
    if choice is not None:
        other, other_budget = at(choice.gamma)
        choice = discount.keep(choice, other_budget)
        if choice is not None:
            truth, budget, gamma = other, other_budget, choice.gamma
    cfg = with_fields(cfg, runs, gamma=gamma)
    return cfg, truth, budget, choice.note() if choice is not None else None


def with_fields(cfg: TrainConfig, runs: list[SeedRun], **fields: Any) -> TrainConfig:
    """cfg, and each seed's own config, with the values settled before training."""
    for seed_run in runs:
        seed_run.cfg = dataclasses.replace(seed_run.cfg, **fields)
    return dataclasses.replace(cfg, **fields)


def loop(cfg: TrainConfig, outputs: RunOutputs, batch: Batch, step: int, elapsed: float,
         laws: list[np.ndarray], truth: GroundTruth, graphed: bool,
         progress: Progress | None, announce: Callable[[str], None] | None) -> list[Outcome]:
    """The training loop: one gradient step for every running seed at a time."""
    outputs.start_clock(elapsed)
    interval_start, interval_step = outputs.clock, step
    shown, terms, sps = None, None, 0.0
    try:
        with StopRequest() as stop:
            while outputs.running():
                # a seed at its end goes on while its vectors turn, else concludes; the
                # batch then narrows to the seeds still running (allo/settling.py)
                due = outputs.due(step)
                if due:
                    if outputs.settle(due, step, batch, terms, sps):
                        if graphed:
                            outputs.recorder.drain()  # no device copy during a capture
                        batch = narrowed(batch, outputs.running(), laws, truth, graphed)
                    if not outputs.running():
                        break

                # one gradient step for all seeds; it completes the row logged before it
                terms = batch.step()
                outputs.complete_row(batch.learner.forward_table)
                step += 1

                # log: a snapshot for the recorder thread; nothing here waits for the device
                if step % cfg.log_freq == 0:
                    tick = time.perf_counter()
                    sps = (step - interval_step) / max(tick - interval_start, 1e-9)
                    outputs.log(step, batch, terms, sps, defer=True)
                    interval_start, interval_step = time.perf_counter(), step
                if progress and step % 10 == 0:
                    row = first_row(outputs.runs)
                    progress(step, outputs.total(step), row if row is not shown else None)
                    shown = row

                # export and checkpoint (a seed at its end gets both when it concludes)
                if step % cfg.export_every == 0:
                    outputs.export(step, batch)
                    if announce:
                        outputs.announce(announce)
                if step % cfg.checkpoint_freq == 0:
                    targets = [i for i in outputs.running() if step < outputs.plan.ends[i]]
                    if targets:
                        outputs.checkpoint(step, batch, targets)

                # stop: seeds the recorder found diverged, or a signal
                outputs.collect_failures()
                if stop.signal is not None:
                    outputs.interrupt(stop.signal, step)
                    break
        outputs.close(step, batch)
    finally:
        outputs.drain()
    return outputs.outcomes(step)


def collect_data(layout: Layout, cfg: TrainConfig, truth: GroundTruth, runs: list[SeedRun],
                 say: Callable[[str], None]) -> list[dataset.DataSet]:
    """Each seed's data set, of its own size (seeds resumed together may have grown
    theirs to different sizes); several seeds are built side by side, one per core
    (numpy and torch release the GIL)."""
    seeds = [seed_run.seed for seed_run in runs]
    own_envs = {seed_run.seed: seed_run.cfg.num_envs for seed_run in runs}
    d = cfg.num_eigenvectors
    width = block_complete_width(truth.eigenvalues, d)
    values, vectors = truth.eigenvalues[:width], truth.eigenvectors[:, :width]
    cores = os.cpu_count() or 1

    most = capacity.max_pairs(layout.num_free, len(seeds), dataset.CHUNK_ENVS)
    stop = threading.Event()  # set when the main thread stops: the builders end too

    def build(seed: int, workers: int) -> dataset.DataSet:
        own = dataclasses.replace(cfg, num_envs=own_envs[seed])
        return dataset.build(layout, own, seed, values, vectors, d, workers,
                             announce=lambda line: say(f"allo: {line}"), max_pairs=most,
                             stop=stop)

    if cfg.data == "exact":  # the law collection estimates (docs/math.md (6)), no data
        from allo.pair_operator import PairLawOperator  # O(K N^2): N <= EXACT_MAX_CELLS

        law = truth.pair_law if truth.pair_law is not None else PairLawOperator(
            layout, cfg.discount, cfg.num_steps, cfg.max_episode_length).dense()  # sparse truth
        return [dataset.exact(law, d, vectors) for _ in seeds]
    if len(seeds) == 1:
        built = [build(seeds[0], cores)]
    else:
        pool = ThreadPoolExecutor(max_workers=min(len(seeds), cores))
        try:
            built = list(pool.map(lambda seed: build(seed, 1), seeds))
        except BaseException:
            stop.set()  # the other seeds' builders end at their next chunk
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    # the strict data ceiling (cos_strict of the data's own eigenvectors, math.md 6),
    # where the data set did not bring it from the same solve
    return [data if data.strict_ceiling is not None else dataclasses.replace(
        data, strict_ceiling=strict_data_ceiling(data.law, values, vectors, d, layout,
                                                 cfg.discount)) for data in built]


def record_budget(runs: list[SeedRun], datasets: list[dataset.DataSet], budget: Budget,
                  limit: int) -> None:
    """run.json's budget and each seed's config as trained (its data set's size)."""
    for seed_run, data in zip(runs, datasets, strict=True):
        if seed_run.cfg.data != "exact":  # nothing collected: num_envs stays as given
            seed_run.cfg = dataclasses.replace(seed_run.cfg, num_envs=data.num_envs)
        assert seed_run.writer is not None and seed_run.cfg.num_gradient_steps is not None
        strict = [] if data.strict_ceiling is None else [float(c) for c in data.strict_ceiling]
        seed_run.writer.plan(dataclasses.asdict(seed_run.cfg), rundir.BudgetInfo(
            recommended_steps=budget.steps, needed_steps=budget.needed,
            closest_pair=list(budget.pair),
            gap=budget.gap if np.isfinite(budget.gap) else None,
            data_ceiling=float(np.mean(data.ceiling)),
            data_ceiling_per_vector=[float(c) for c in data.ceiling],
            data_ceiling_strict=float(np.mean(strict)) if strict else None,
            data_ceiling_strict_per_vector=strict or None,
            num_envs=data.num_envs, data_ceiling_before_growth=data.base_ceiling,
            extension_limit=limit if limit > seed_run.cfg.num_gradient_steps else None))


def resume_runs(runs: list[SeedRun], learner: Learner,
                device: torch.device) -> tuple[int, float]:
    """Load each run's newest usable checkpoint (one step for all: one model goes on);
    drop what was written after it (it is recomputed identically). Returns (step,
    elapsed seconds) to go on from."""
    states = []
    for seed_run in runs:
        assert seed_run.identity is not None
        states.append(load_checkpoint(seed_run.run, device, seed_run.identity))
    steps = {None if state is None else int(state["step"]) for state in states}
    if len(steps) > 1:  # a newest checkpoint was unusable, and an older one was taken
        listing = ", ".join(f"{seed_run.run.name} from step {state['step'] if state else 0}"
                            for seed_run, state in zip(runs, states, strict=True))
        raise TrainError(f"the runs would go on from different checkpoints ({listing}); "
                         "resume them one at a time")
    start_step, elapsed = 0, 0.0
    if states[0] is not None:  # then every run has one, at the same step
        loaded = [state for state in states if state is not None]
        start_step = int(loaded[0]["step"])
        try:
            learner.load_seed_states(loaded)
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
            raise TrainError(f"{runs[0].run / rundir.CHECKPOINTS}: step {start_step} does not "
                             f"fit this run's model ({str(err).splitlines()[0]})") from None
        # seeds trained together share the clock; runs resumed apart may differ a little
        elapsed = max(float(state["elapsed"]) for state in loaded)
    for seed_run in runs:
        writer = seed_run.writer
        assert writer is not None and seed_run.cfg.num_gradient_steps is not None
        writer.truncate_metrics_after(start_step)
        writer.drop_exports_after(start_step)  # recomputed identically from here
        writer.resume(start_step, seed_run.cfg.num_gradient_steps,
                      dataclasses.asdict(seed_run.cfg), describe_device(device))
    return start_step, elapsed


# ----------------------------------------------------------------------------- process


class StopRequest:
    """SIGINT / SIGTERM set a flag; the loop stops at the next step boundary."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._handlers = stop_handlers(self._handle)

    def __enter__(self) -> StopRequest:
        self._handlers.__enter__()
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        self._handlers.__exit__(None, None, None)


def stop_handlers(handle: Callable[[int, Any], None]) -> contextlib.AbstractContextManager:
    """`handle` for SIGINT and SIGTERM while inside; the previous handlers after."""
    return signals.handling(EXIT_CODES, handle)


class PreparationStopped(Exception):
    """SIGINT or SIGTERM arrived before the training loop (which stops at a step)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stoppable() -> contextlib.AbstractContextManager:
    """SIGINT / SIGTERM raise PreparationStopped in the main thread (elsewhere, where
    handlers cannot be set, the defaults stay)."""

    def handle(signum: int, frame: object) -> None:
        raise PreparationStopped(signum)

    return signals.handling_in_main_thread(EXIT_CODES, handle)


def stopped_before_training(runs: list[SeedRun], signum: int,
                            timings: dict[str, float]) -> list[Outcome]:
    """Each run ends interrupted where it stood (step 0, or its checkpoint on a resume);
    its data is collected again, identically, when it resumes."""
    outcomes = []
    stopping = signal.Signals(signum)
    for seed_run in runs:
        assert seed_run.writer is not None
        info = seed_run.writer.info
        step = info.step if info is not None and info.step is not None else 0
        elapsed = info.elapsed if info is not None and info.elapsed is not None else 0.0
        message = (f"stopped by {stopping.name} while collecting its data, before training"
                   + (f" on from step {step}" if step else ""))
        seed_run.writer.interrupt(message, step, elapsed, timings)
        seed_run.status = rundir.Status.INTERRUPTED
        outcomes.append(Outcome(seed_run.run, rundir.Status.INTERRUPTED, EXIT_CODES[stopping],
                                None, 0.0, message))
    return outcomes


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
        # trains (BENCHMARKS.md, "--plot-during-training")
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
