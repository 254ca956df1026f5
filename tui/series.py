"""Bounded metric history for the dashboard.

A long run logs hundreds of thousands of rows; the dashboard keeps at most
`capacity` points per metric (plus the newest). When a series fills up its stride
doubles: every second point is dropped and from then on every second row is kept,
so memory is fixed while the whole run stays covered at an even resolution.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CAPACITY = 4096


class BoundedSeries:
    """(step, value) pairs of one scalar metric, at most `capacity` of them.

    Row k (counting every row offered) is kept while k % stride == 0; the newest row
    is always remembered too, so the chart's right edge follows the run.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        if capacity < 4:
            raise ValueError("capacity must be at least 4")
        self.capacity = capacity
        self._index = np.empty(capacity, dtype=np.int64)
        self._steps = np.empty(capacity, dtype=np.int64)
        self._values = np.empty(capacity, dtype=np.float64)
        self._size = 0
        self._stride = 1
        self._count = 0
        self._last: tuple[int, int, float] | None = None  # (index, step, value)

    def __len__(self) -> int:
        return self._size

    @property
    def stride(self) -> int:
        return self._stride

    def append(self, step: int, value: float) -> None:
        k = self._count
        self._count += 1
        self._last = (k, step, value)
        if k % self._stride:
            return
        if self._size == self.capacity:
            self._compact()
            if k % self._stride:
                return
        self._index[self._size] = k
        self._steps[self._size] = step
        self._values[self._size] = value
        self._size += 1

    def extend(self, steps: Sequence[int], values: Sequence[float]) -> None:
        """Same result as appending one by one, vectorised (a long run's first read)."""
        step_array = np.asarray(steps, dtype=np.int64)
        value_array = np.asarray(values, dtype=np.float64)
        n = len(step_array)
        if n == 0:
            return
        ks = self._count + np.arange(n)
        self._count += n
        self._last = (int(ks[-1]), int(step_array[-1]), float(value_array[-1]))
        pos = 0
        while pos < n:
            chosen = pos + np.flatnonzero(ks[pos:] % self._stride == 0)
            free = self.capacity - self._size
            take = chosen[:free]
            end = self._size + len(take)
            self._index[self._size : end] = ks[take]
            self._steps[self._size : end] = step_array[take]
            self._values[self._size : end] = value_array[take]
            self._size = end
            if len(chosen) <= free:
                break
            pos = int(chosen[free])  # the first row that did not fit
            self._compact()

    def _compact(self) -> None:
        """Double the stride and keep the points that still fall on it."""
        self._stride *= 2
        keep = np.flatnonzero(self._index[: self._size] % self._stride == 0)
        n = len(keep)
        self._index[:n] = self._index[keep]
        self._steps[:n] = self._steps[keep]
        self._values[:n] = self._values[keep]
        self._size = n

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (steps, values), oldest first, ending with the newest row."""
        steps = self._steps[: self._size]
        values = self._values[: self._size]
        last = self._last
        if last is not None and (self._size == 0 or self._index[self._size - 1] != last[0]):
            return np.append(steps, last[1]), np.append(values, last[2])
        return steps.copy(), values.copy()

    def last(self) -> tuple[int, float] | None:
        if self._last is None:
            return None
        return self._last[1], self._last[2]


class MetricStore:
    """Bounded series for every scalar metric seen, plus the newest full row."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self.series: dict[str, BoundedSeries] = {}
        self.latest: Mapping[str, Any] | None = None
        self.rows_seen = 0

    def clear(self) -> None:
        self.series.clear()
        self.latest = None
        self.rows_seen = 0

    def add_columns(self, steps: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Append columns (NaN marks a row without that metric)."""
        for key, values in columns.items():
            target = self.series.get(key)
            if target is None:
                target = self.series[key] = BoundedSeries(self.capacity)
            present = ~np.isnan(values)
            target.extend(steps[present], values[present])
        self.rows_seen += len(steps)

    def add_rows(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        if not rows:
            return
        steps, columns = rows_to_columns(rows)
        self.add_columns(steps, columns)
        self.latest = rows[-1]

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        found = self.series.get(key)
        if found is None:
            return np.empty(0, dtype=np.int64), np.empty(0)
        return found.arrays()

    def last_value(self, key: str) -> float | None:
        found = self.series.get(key)
        last = found.last() if found is not None else None
        return None if last is None else last[1]


def rows_to_columns(rows: Sequence[Mapping[str, Any]]
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Scalar metrics of rows as columns; a row without a key (or with null) gives NaN.

    Done in the watcher thread so the UI thread only appends arrays. One pass over
    the rows: this is the hot loop when a long run is opened.
    """
    n = len(rows)
    steps = np.fromiter((int(row["step"]) for row in rows), dtype=np.int64, count=n)
    nan = float("nan")
    lists: dict[str, list[float]] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            kind = type(value)
            if (kind is float or kind is int) and key != "step":
                column = lists.get(key)
                if column is None:
                    column = lists[key] = [nan] * n
                column[i] = value
    return steps, {key: np.asarray(values, dtype=np.float64) for key, values in lists.items()}


def minmax_downsample(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `points` points that keep every bucket's minimum and maximum.

    A braille chart has two dots per column; averaging would hide the spikes a
    researcher is looking for, min/max keeps them.
    """
    n = len(x)
    if n <= points or points < 2:
        return x, y
    buckets = max(1, points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    out_x: list[float] = []
    out_y: list[float] = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        if stop <= start:
            continue
        chunk = y[start:stop]
        lo = start + int(np.argmin(chunk))
        hi = start + int(np.argmax(chunk))
        for i in sorted({lo, hi}):
            out_x.append(x[i])
            out_y.append(y[i])
    return np.asarray(out_x), np.asarray(out_y)


def ema(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard smooths), NaN-free input."""
    out = np.empty_like(values, dtype=np.float64)
    acc = 0.0
    norm = 0.0
    for i, value in enumerate(values):
        acc = weight * acc + (1.0 - weight) * value
        norm = weight * norm + (1.0 - weight)
        out[i] = acc / norm
    return out


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of a file, None when it is gone: a poll compares these to skip
    unchanged files and to notice a file replaced or truncated."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
