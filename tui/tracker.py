"""Follow many run directories cheaply: what the runs table and the overlay need.

Each `RunTracker` remembers run.json's signature and how far it has read metrics.jsonl;
a poll stats the folder and two files and reads only new bytes, so a quiet run costs
three stat calls and nothing else. Series are kept bounded (tui.series.BoundedSeries), so
memory does not grow with a run's length. Never writes; a run directory that is half
copied, corrupt or deleted is reported in its own row (`problem`) and nothing else.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allo import rundir
from allo.rate import RateWindow
from tui.discover import find_run_dirs, study_names
from tui.series import BoundedSeries, file_signature, rows_to_columns

# The scalar metrics the overlay can draw (tui.chart.CHARTS), kept per run.
OVERLAY_KEYS = (
    "cos/mean", "cos_strict/mean", "loss/total", "loss/graph", "loss/dual", "loss/barrier",
    "orth/error", "eig/mean_abs_error", "eig/mean_rel_error", "grad/norm", "barrier/coef",
    "time",
)  # fmt: skip
SERIES_CAPACITY = 512  # points per metric per run: 300 runs x 12 metrics stay a few MB
CONVERGED_COS = 0.99  # "steps to 0.99": the first logged step with mean |cos| >= this


@dataclass
class RunTracker:
    path: Path
    name: str = ""
    info: rundir.RunInfo | None = None
    latest: Mapping[str, Any] | None = None
    problem: str | None = None
    rows: int = 0
    steps_to_converged: int | None = None
    series: dict[str, BoundedSeries] = field(default_factory=dict)
    rates: RateWindow = field(default_factory=RateWindow)
    _info_sig: tuple | None = None
    _tail: rundir.MetricsTail | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.path.name
        self._tail = rundir.MetricsTail(self.path / rundir.METRICS_JSONL)

    def poll(self) -> bool:
        """Read what changed; True if anything did (the row must be redrawn)."""
        changed = self._poll_info()
        return self._poll_metrics() or changed

    def _poll_info(self) -> bool:
        if not self.path.is_dir():
            return self._set_problem("run directory deleted")
        signature = file_signature(self.path / rundir.RUN_JSON)
        if signature is None:
            return self._set_problem("run.json missing")
        if signature == self._info_sig:
            return False
        self._info_sig = signature
        try:
            info = rundir.RunReader(self.path).info()
        except rundir.RunDirError as err:
            return self._set_problem(_short(str(err), self.path))
        self.info = info
        self.problem = None
        return True

    def _set_problem(self, text: str) -> bool:
        if self.problem == text:
            return False
        self.problem = text
        self._info_sig = None
        return True

    def _poll_metrics(self) -> bool:
        assert self._tail is not None
        collecting = gc.isenabled()
        gc.disable()  # many small dicts, no cycles: the cyclic GC only slows the parse
        try:
            rows, reset = self._tail.read_new()
        except OSError as err:
            return self._set_problem(f"metrics.jsonl unreadable: {err.strerror or err}")
        finally:
            if collecting:
                gc.enable()
        if reset:
            self.series.clear()
            self.rates.clear()
            self.rows, self.latest, self.steps_to_converged = 0, None, None
        if self._tail.problems and self.problem is None:
            self.problem = f"metrics.jsonl: {self._tail.problems[-1]}"
        if not rows:
            return reset
        self.add_rows(rows)
        return True

    def add_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        import numpy as np

        steps, columns = rows_to_columns(rows)
        for key in OVERLAY_KEYS:
            values = columns.get(key)
            if values is None:
                continue
            present = ~np.isnan(values)
            target = self.series.get(key)
            if target is None:
                target = self.series[key] = BoundedSeries(SERIES_CAPACITY)
            target.extend(steps[present], values[present])
        times = columns.get("time")
        if times is not None:
            finite = np.isfinite(times)
            self.rates.extend(zip(times[finite][-4000:].tolist(),
                                  steps[finite][-4000:].tolist(), strict=True))
        cos = columns.get("cos/mean")
        if self.steps_to_converged is None and cos is not None:
            hit = np.flatnonzero(cos >= CONVERGED_COS)
            if len(hit):
                self.steps_to_converged = int(steps[hit[0]])
        self.rows += len(rows)
        self.latest = rows[-1]

    def get(self, key: str):
        """(steps, values) of a kept metric, as tui.series.MetricStore.get."""
        import numpy as np

        found = self.series.get(key)
        if found is None:
            return np.empty(0, dtype=np.int64), np.empty(0)
        return found.arrays()


def _short(text: str, path: Path) -> str:
    """An error without the run's own path in front (the row already names the run)."""
    prefix = str(path) + "/"
    return text[len(prefix):] if text.startswith(prefix) else text


class FolderWatcher:
    """All runs below a folder: finds new ones now and then, polls the known ones."""

    def __init__(self, folder: Path, rescan_seconds: float = 5.0):
        self.folder = Path(folder)
        self.rescan_seconds = rescan_seconds
        self.trackers: dict[Path, RunTracker] = {}
        self._scanned = -1e18

    def scan(self) -> list[RunTracker]:
        """Trackers for runs not seen before (new runs join the table)."""
        names = study_names(self.folder)
        added = []
        found = find_run_dirs(self.folder)
        counts: dict[str, int] = {}
        for path in list(self.trackers) + found:
            counts[path.name] = counts.get(path.name, 0) + 1
        for path in found:
            if path not in self.trackers:
                try:
                    name = names.get(path.resolve(), "")
                except OSError:
                    name = ""
                # the run directory's own name, or its path below the folder where two
                # runs share a name (seed0/ in several configurations' folders)
                default = path.name if counts[path.name] == 1 else _relative(path, self.folder)
                tracker = RunTracker(path, name=name or default)
                self.trackers[path] = tracker
                added.append(tracker)
        self._scanned = time.monotonic()
        return added

    def poll(self, info_only: bool = False) -> list[RunTracker]:
        """The trackers whose run changed since the last poll (new ones included).
        `info_only`: run.json alone, so a first screen of many runs fills at once and
        their metrics follow."""
        changed: list[RunTracker] = []
        if time.monotonic() - self._scanned >= self.rescan_seconds:
            self.scan()
        for tracker in self.trackers.values():
            if tracker._poll_info() if info_only else tracker.poll():
                changed.append(tracker)
        return changed


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name
