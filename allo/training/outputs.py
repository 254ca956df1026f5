"""Everything a training writes for its seeds, behind one object the loop calls at its beats.

At a log, export or checkpoint step `RunOutputs` takes a snapshot of the device values it
needs and queues the file work on the recorder thread (allo/recorder.py), which runs it in
submission order: a step's row, then its export, then its checkpoint (docs/run-format.md,
"What survives a crash"). It also decides a seed's end: at its budget a seed goes on while
its vectors still turn (allo/settling.py), else it concludes.

Only the training thread calls these methods and changes a run's status. The recorder
thread checks each row; when a seed diverged it stops writing for that seed and reports
it through a queue that the loop drains once a step (`collect_failures`).
"""

from __future__ import annotations

import functools
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from allo import settling
from allo.config import EXPORT_EVERY, TrainConfig
from allo.evaluator import Evaluator
from allo.objective import Terms
from allo.recorder import Recorder, to_host
from allo.rundir import Metric, Status
from allo.training.batch import Batch
from allo.training.checkpoint import save_checkpoint
from allo.training.runs import Outcome, SeedRun, first_row, format_rows

HEARTBEAT_SECONDS = 1.0  # run.json's heartbeat is rewritten at most this often
# Without --plot-freq, exports come every EXPORT_EVERY steps unless a run's budget of
# exports (N x d float32 each) would pass EXPORTS_BYTES; then as often as that allows, in
# whole EXPORT_EVERY steps. Only grids of tens of thousands of cells reach it.
EXPORTS_BYTES = 64 * 2**20


def export_interval(num_free: int, d: int, steps: int) -> int:
    """Steps between exports where --plot-freq is not given."""
    exports_fitting = max(1, EXPORTS_BYTES // (num_free * d * 4))
    rounds = -(-steps // (exports_fitting * EXPORT_EVERY))
    return EXPORT_EVERY * max(1, rounds)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

HostValues = Callable[[], dict[str, np.ndarray]]


@dataclass
class PendingRow:
    """A logged step whose table is still to come: an eager row's table is the next
    step's forward pass (Learner.forward_table), not a forward of its own."""

    step: int
    state: HostValues  # losses and estimates, on their way to the host
    spent: float
    sps: float
    targets: list[int]
    batch: Batch  # the learner and slots as they were at the logged step
    slots: dict[int, int]


@dataclass
class Failure:
    """A seed the recorder found diverged or collapsed, reported to the training thread."""

    index: int
    step: int
    spent: float
    message: str


@dataclass
class Settling:
    """How far each seed goes: its budget, moved on while its vectors still turn."""

    budget: int  # the steps the run planned (cfg.num_gradient_steps)
    limit: int  # the last step a seed still turning may go on to
    laws: list[np.ndarray]  # each seed's data-set pair law (N, N)
    blocks: list[range]  # index ranges of (near-)repeated eigenvalues among the first d
    # each seed's data-set eigenvectors through lambda_d's block (allo.dataset.DataSet)
    spans: list[np.ndarray | None] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # each seed's last step, as now decided


class RunOutputs:
    """The run directories of one training: rows, heartbeats, exports, checkpoints and
    each seed's end. Methods run in the training thread; `_write_*` on the recorder."""

    def __init__(self, runs: list[SeedRun], cfg: TrainConfig, settle: Settling,
                 on_export: Callable[[Path], None], say: Callable[[str], None],
                 timings: dict[str, float]):
        self.runs, self.cfg, self.plan = runs, cfg, settle
        self.plan.ends = [settle.budget] * len(runs)
        self.on_export, self.say, self.timings = on_export, say, timings
        self.recorder, self.recorder_open = Recorder(), True
        self.failures: queue.SimpleQueue[Failure] = queue.SimpleQueue()
        self.pending: PendingRow | None = None
        self.elapsed, self.clock = 0.0, time.perf_counter()
        # recorder-thread state: last heartbeat per seed, seeds no longer written
        self._heartbeats = [0.0] * len(runs)
        self._stopped: set[int] = set()

    # ---------------------------------------------------------------- clock and seeds
    def start_clock(self, elapsed: float) -> None:
        """`elapsed`: training seconds of earlier sessions (a resume goes on from them)."""
        self.elapsed, self.clock = elapsed, time.perf_counter()

    def spent(self) -> float:
        return self.elapsed + time.perf_counter() - self.clock

    def running(self) -> list[int]:
        return [i for i, r in enumerate(self.runs) if r.status == Status.RUNNING]

    def due(self, step: int) -> list[int]:
        """Seeds that reached their end at `step`."""
        return [i for i in self.running() if step >= self.plan.ends[i]]

    def total(self, step: int) -> int:
        """The progress bar's last step: a seed going on may run to the limit (as run.json's
        total_steps says)."""
        return max((self.plan.limit if self.plan.ends[i] > self.plan.budget else self.plan.ends[i]
                    for i in self.running()), default=step)

    def _submit(self, job: Callable[[], None]) -> None:
        """Queue file work on the recorder thread; once it has closed, do it now."""
        if self.recorder_open:
            self.recorder.submit(job)
        else:
            job()

    # ---------------------------------------------------------------- metric rows
    def log(self, step: int, batch: Batch, terms: Terms, sps: float,
            only: list[int] | None = None, defer: bool = False) -> None:
        """Queue this step's row; with `defer` its table waits for the next forward pass."""
        spent, targets = self.spent(), self.running() if only is None else only
        # a step on sampled cells forwards no whole table for the row to wait for
        if not defer or batch.graphed_values is not None or batch.learner.rows is not None:
            self._submit(functools.partial(self._write_rows, step, batch.row_values(terms),
                                           spent, sps, targets, batch.evaluator, batch.slots()))
            return
        state = to_host(batch.evaluator.state_values(batch.learner, terms))
        self.pending = PendingRow(step, state, spent, sps, targets, batch, batch.slots())

    def complete_row(self, table: torch.Tensor | None = None) -> None:
        """Submit the pending row, with `table` from the next step or a forward now.
        Whatever reads or changes the learner's state first calls this."""
        row, self.pending = self.pending, None
        if row is None:
            return
        evaluator, learner = row.batch.evaluator, row.batch.learner
        tables = to_host(evaluator.table_values(learner.tables() if table is None else table))
        values = functools.partial(merged, row.state, tables)
        self._submit(functools.partial(self._write_rows, row.step, values, row.spent, row.sps,
                                       row.targets, evaluator, row.slots))

    def _write_rows(self, step: int, ready: HostValues, spent: float, sps: float,
                    targets: list[int], evaluator: Evaluator, slots: dict[int, int]) -> None:
        """Recorder thread: append each seed's row, check it, beat the heartbeat."""
        values = ready()
        rows = evaluator.rows(step, values)
        for i in targets:
            if i in self._stopped:
                continue
            row: dict[str, Any] = {Metric.STEP: step, Metric.TIME: spent, Metric.SPS: sps,
                                   **rows[slots[i]]}
            writer = self.runs[i].writer
            assert writer is not None
            writer.append_metrics(row)
            problem = failure(step, row[Metric.LOSS_TOTAL], values["tables"][slots[i]])
            if problem is not None:
                self._stopped.add(i)  # no row, export or checkpoint after it
                self.failures.put(Failure(i, step, spent, problem))
                continue
            self.runs[i].last_row = row
            if time.monotonic() - self._heartbeats[i] >= HEARTBEAT_SECONDS:
                self._heartbeats[i] = time.monotonic()
                writer.heartbeat(step, spent)

    def collect_failures(self) -> None:
        """Mark the seeds the recorder found diverged as failed, and close their runs."""
        while not self.failures.empty():
            found = self.failures.get()
            seed_run = self.runs[found.index]
            seed_run.status, seed_run.exit_code, seed_run.message = Status.FAILED, 1, found.message
            self._submit(functools.partial(finish_run, seed_run, found.step, found.spent,
                                           self.timings))

    # ---------------------------------------------------------------- exports, checkpoints
    def export(self, step: int, batch: Batch, final: bool = False,
               only: list[int] | None = None) -> None:
        self.complete_row()
        tables = to_host({"tables": batch.learner.tables()})
        targets = self.running() if only is None else only
        self._submit(functools.partial(self._write_exports, step, tables, batch.slots(),
                                       targets, self.spent(), final))

    def _write_exports(self, step: int, ready: HostValues, slots: dict[int, int],
                       targets: list[int], spent: float, final: bool) -> None:
        tables = ready()["tables"]
        for i in targets:
            writer = self.runs[i].writer
            assert writer is not None
            if i in self._stopped:
                continue
            if final:
                writer.export_final(tables[slots[i]])
            else:
                writer.export_learned(step, tables[slots[i]])
            writer.write_metrics_history()
            writer.heartbeat(step, spent)
            self.on_export(self.runs[i].run)

    def announce(self, show: Callable[[str], None]) -> None:
        """The progress line of an export, once this step's row is written."""
        self._submit(functools.partial(self._announce, show))

    def _announce(self, show: Callable[[str], None]) -> None:
        if first_row(self.runs):
            show(format_rows(self.runs))

    def checkpoint(self, step: int, batch: Batch, targets: list[int]) -> None:
        self.complete_row()
        slots = batch.slots()  # device copies of this step:
        states = {i: batch.learner.seed_state(slots[i]) for i in targets}
        self._submit(functools.partial(self._write_checkpoints, step, self.spent(), states))

    def _write_checkpoints(self, step: int, spent: float, states: dict[int, dict]) -> None:
        for i, state in states.items():
            writer = self.runs[i].writer
            if i not in self._stopped and writer is not None:
                # each names its run (allo/identity.py): a resume takes only its own
                save_checkpoint(writer, {"step": step, "elapsed": spent,
                                         "identity": self.runs[i].identity, **state})

    # ---------------------------------------------------------------- a seed's end
    def settle(self, due: list[int], step: int, batch: Batch, terms: Terms | None,
               sps: float) -> bool:
        """At a seed's end: go on while its vectors still turn (allo/settling.py), or
        conclude it. True when the batch should narrow to the seeds still running."""
        self.complete_row()
        going_on = self._still_turning(due, step, batch) if step < self.plan.limit else []
        if going_on and step % self.cfg.checkpoint_freq == 0:  # the loop left them to us
            self.checkpoint(step, batch, going_on)
        self.conclude([i for i in due if i not in going_on], step, batch, terms, sps)
        return bool(going_on) and len(self.running()) < len(batch.members)

    def _still_turning(self, due: list[int], step: int, batch: Batch) -> list[int]:
        """The due seeds whose vectors still turn; their end moves on."""
        tables = batch.learner.tables().double().cpu().numpy()  # a sync, per CHECK_EVERY
        slots, plan, going_on = batch.slots(), self.plan, []
        for i in due:
            span = plan.spans[i] if plan.spans else None
            alignment = settling.alignment(tables[slots[i]], plan.laws[i], plan.blocks, span)
            if not settling.turning(alignment):
                continue
            if plan.ends[i] == plan.budget:
                note = settling.going_on_note(self.runs[i].seed, step, alignment, plan.limit)
                self.say(f"allo: {note}")
                writer = self.runs[i].writer
                assert writer is not None
                self._submit(functools.partial(writer.going_on, plan.limit))
            plan.ends[i] = min(plan.limit, step + settling.CHECK_EVERY)
            going_on.append(i)
        return going_on

    def conclude(self, targets: list[int], step: int, batch: Batch, terms: Terms | None,
                 sps: float) -> None:
        """Last row, checkpoint and exports of seeds at their end; they stop running."""
        if terms is not None and step % self.cfg.log_freq != 0:
            self.log(step, batch, terms, sps, only=targets)
        self.checkpoint(step, batch, targets)
        self.export(step, batch, final=True, only=targets)
        if step % self.cfg.export_every != 0:
            self.export(step, batch, only=targets)
        spent, training = self.spent(), time.perf_counter() - self.clock
        for i in targets:
            seed_run = self.runs[i]
            seed_run.status = Status.FINISHED
            seed_run.end_step, seed_run.end_spent, seed_run.end_training = step, spent, training
            # watchers see it end now
            self._submit(functools.partial(self._write_finished, i, step, spent))

    def _write_finished(self, i: int, step: int, spent: float) -> None:
        writer = self.runs[i].writer
        if writer is not None and i not in self._stopped:
            writer.finish(step, spent)

    def interrupt(self, signum: int, step: int) -> None:
        """A signal stopped training: the seeds still running are interrupted."""
        for i in self.running():
            seed_run = self.runs[i]
            seed_run.status = Status.INTERRUPTED
            seed_run.exit_code = EXIT_CODES[signal.Signals(signum)]
            seed_run.message = f"stopped by {signal.Signals(signum).name} at step {step}"

    # ---------------------------------------------------------------- the end
    def close(self, step: int, batch: Batch) -> None:
        """After the loop: the last row, and a checkpoint for interrupted seeds (a failed
        run keeps its last good one)."""
        self.complete_row()  # stopped by a signal right after a log step
        self.timings["training"] = time.perf_counter() - self.clock
        self.checkpoint(step, batch, [i for i, r in enumerate(self.runs)
                                      if r.status == Status.INTERRUPTED])

    def drain(self) -> None:
        """Wait for the recorder: every row, export and checkpoint is on disk after this."""
        began = time.perf_counter()
        self.recorder_open = False
        self.recorder.close()
        self.timings["recording_after_training"] = time.perf_counter() - began
        self.timings["recorder_busy"] = self.recorder.busy_seconds

    def outcomes(self, step: int) -> list[Outcome]:
        """Each run's final status in run.json, its writer closed; how each ended."""
        self.collect_failures()  # found by the last rows, after the loop
        spent = self.elapsed + self.timings["training"]
        for seed_run in self.runs:
            if seed_run.status == Status.FAILED:
                continue  # closed when its failure was collected
            if seed_run.end_step is None:  # interrupted
                seed_run.end_step, seed_run.end_spent = step, spent
                seed_run.end_training = self.timings["training"]
            finish_run(seed_run, seed_run.end_step, seed_run.end_spent,
                       {**self.timings, "training": seed_run.end_training})
        return [Outcome(r.run, r.status, r.exit_code, r.last_row, r.end_spent or spent,
                        r.message) for r in self.runs]


def merged(*parts: HostValues) -> dict[str, np.ndarray]:
    """One dict of host values from several snapshots (waits for each)."""
    return {name: value for part in parts for name, value in part().items()}


def failure(step: int, loss: float, table: np.ndarray) -> str | None:
    """Why a run cannot recover, or None: a non-finite loss or network, or a network
    whose every output is the same in all cells (its ReLUs died: no gradient reaches
    them again, so it would log cos 1/d until the end)."""
    if not np.isfinite(loss) or not np.isfinite(table).all():
        bad = Metric.LOSS_TOTAL if not np.isfinite(loss) else "the network"
        return f"diverged at step {step}: {bad} is not finite; lower --learning-rate"
    spread = float(np.ptp(table, axis=0).max())
    if spread <= 1e-6 * max(1.0, float(np.abs(table).max())):
        return (f"collapsed at step {step}: the network gives every cell the same values "
                "(dead ReLUs); try a smaller --max-grad-norm or another seed")
    return None


def finish_run(seed_run: SeedRun, step: int, spent: float, timings: dict) -> None:
    """Final metrics history and status of one run; its writer is closed and unlocked."""
    writer = seed_run.writer
    assert writer is not None
    writer.write_metrics_history()
    if seed_run.status == Status.FAILED:
        writer.fail(seed_run.message or "", step, spent, timings)
    elif seed_run.status == Status.INTERRUPTED:
        writer.interrupt(seed_run.message or "", step, spent, timings)
    else:
        writer.finish(step, spent, timings)
    writer.release()  # closes metrics.jsonl, gives up the writer lock
