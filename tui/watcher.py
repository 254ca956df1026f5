"""Polls one run directory and turns what changed into messages.

Pure logic with no Textual state, so it is tested without an app; the app runs
`poll()` in a thread worker about twice a second. Reads only: it never opens a file
in the run directory for writing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from textual.message import Message

from allo import rundir
from allo.metrics import align_to_truth, cosine_similarities
from tui.messages import (
    ExportLanded,
    GroundTruthLoaded,
    InfoChanged,
    MetricsArrived,
    WatchProblem,
)
from tui.series import file_signature, rows_to_columns

# Rows per MetricsArrived message: a long run's first read is split so the UI
# thread never chews on one giant batch.
CHUNK_ROWS = 5000


class RunWatcher:
    """Remembers what it has seen of a run and reports only what is new."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.reader = rundir.RunReader(self.path)
        self.tail = self.reader.tail()
        self._info_sig: tuple | None = None
        self._export_key: tuple | None = None
        self._truth: tuple[np.ndarray, np.ndarray] | None = None
        self._problems_seen = 0
        self._last_problem: str | None = None
        self.info: rundir.RunInfo | None = None

    def poll(self) -> list[Message]:
        return [message for batch in self.poll_batches() for message in batch]

    def poll_batches(self) -> Iterator[list[Message]]:
        """Messages in the order they are learned, so the app can post each batch at
        once: run.json shows before a long metrics file is parsed."""
        for step in (self._poll_info, self._poll_truth, self._poll_metrics, self._poll_export):
            out: list[Message] = []
            step(out)
            if out:
                yield out

    # ------------------------------------------------------------------ pieces
    def _problem(self, out: list[Message], text: str) -> None:
        if text != self._last_problem:  # say it once, not twice a second
            self._last_problem = text
            out.append(WatchProblem(text, run=self.path))

    def _poll_info(self, out: list[Message]) -> None:
        signature = file_signature(self.path / rundir.RUN_JSON)
        if signature is None or signature == self._info_sig:
            return
        try:
            info = self.reader.info()
        except rundir.RunDirError as err:
            self._problem(out, str(err))
            return
        self._info_sig = signature
        self.info = info
        out.append(InfoChanged(info, run=self.path))

    def _poll_truth(self, out: list[Message]) -> None:
        if self._truth is not None or self.info is None:
            return
        if not (self.path / rundir.GT_EIGENVECTORS).exists():
            return  # the trainer writes it soon after run.json
        try:
            env = rundir.parse_env(self.info)
            values, vectors = self.reader.ground_truth()
        except rundir.RunDirError as err:
            self._problem(out, str(err))
            return
        if vectors.shape[0] != len(env.free_cells):
            self._problem(
                out,
                f"{self.path / rundir.GT_EIGENVECTORS}: {vectors.shape[0]} rows but the "
                f"layout has {len(env.free_cells)} free cells",
            )
            return
        try:  # exports are scored against the completed eigenspace of lambda_d
            self._truth = self.reader.scoring_truth((values, vectors))
        except rundir.RunDirError as err:
            self._problem(out, str(err))
            return
        out.append(GroundTruthLoaded(env, values, vectors, run=self.path))

    def _poll_metrics(self, out: list[Message]) -> None:
        # Opening a long run parses many small JSON objects at once; the cyclic GC
        # would rescan them over and over, and they hold no cycles.
        collecting = gc.isenabled()
        gc.disable()
        try:
            rows, reset = self.tail.read_new()
        finally:
            if collecting:
                gc.enable()
        problems = self.tail.problems
        if len(problems) > self._problems_seen:
            self._problem(out, f"metrics.jsonl: {problems[-1]} (skipped)")
            self._problems_seen = len(problems)
        if not rows and not reset:
            return
        if not rows:
            out.append(MetricsArrived(np.empty(0, np.int64), {}, None, reset=True, run=self.path))
            return
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            steps, columns = rows_to_columns(chunk)
            out.append(
                MetricsArrived(steps, columns, chunk[-1], reset=reset and start == 0, run=self.path)
            )

    def _latest_export(self) -> tuple[int | str, Path] | None:
        final = self.reader.final_path()
        if final.exists():
            return "final", final
        steps = self.reader.export_steps()
        if steps:
            return steps[-1], self.reader.export_path(steps[-1])
        return None

    def _poll_export(self, out: list[Message]) -> None:
        if self._truth is None:
            return
        latest = self._latest_export()
        if latest is None:
            return
        step, path = latest
        key = (step, file_signature(path))
        if key == self._export_key:
            return
        values, vectors = self._truth
        try:
            learned = rundir.load_npy(path, ndim=2)
        except rundir.RunDirError as err:
            self._problem(out, str(err))
            return
        if learned.shape[0] != vectors.shape[0]:
            rows = f"{learned.shape[0]} rows, ground truth has {vectors.shape[0]}"
            self._problem(out, f"{path}: {rows}")
            self._export_key = key
            return
        d = min(learned.shape[1], vectors.shape[1])
        learned = learned[:, :d]
        aligned = align_to_truth(learned, vectors, values)
        cosines = cosine_similarities(learned, vectors, values)
        self._export_key = key
        out.append(ExportLanded(step, aligned, cosines, run=self.path))
