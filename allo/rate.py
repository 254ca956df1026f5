"""Training speed as the trainer's progress line and `allo watch` both show it.

One definition, so the two never disagree: steps per second of training time over the
last RATE_WINDOW_SECONDS, from the (time, step) of logged metrics rows. A single log
interval is too jumpy (an export or a checkpoint lands in it), the whole run's mean too
slow to follow a change of speed. Standard library only: the dashboard's first frame
must not wait for numpy.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

RATE_WINDOW_SECONDS = 30.0


class RateWindow:
    """(time, step) points of the last window; `rate()` is steps/s across it."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS):
        self.window = window
        self.points: deque[tuple[float, int]] = deque()

    def clear(self) -> None:
        self.points.clear()

    def add(self, time: float, step: int) -> None:
        if not (isinstance(time, (int, float)) and math.isfinite(time)):
            return
        if self.points and (time < self.points[-1][0] or step < self.points[-1][1]):
            self.points.clear()  # a resume: times and steps start a new history
        self.points.append((float(time), int(step)))
        # keep the newest point older than the window as the left end of the span
        while len(self.points) > 2 and self.points[1][0] <= time - self.window:
            self.points.popleft()

    def extend(self, pairs: Iterable[tuple[float, int]]) -> None:
        for time, step in pairs:
            self.add(time, step)

    def rate(self) -> float | None:
        if len(self.points) < 2:
            return None
        (t0, s0), (t1, s1) = self.points[0], self.points[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)


def rate_of_rows(rows: Iterable[Mapping[str, Any]],
                 window: float = RATE_WINDOW_SECONDS) -> float | None:
    """The windowed rate at the last of these metrics rows."""
    rates = RateWindow(window)
    for row in rows:
        time, step = row.get("time"), row.get("step")
        if isinstance(time, (int, float)) and isinstance(step, int):
            rates.add(time, step)
    return rates.rate()


def eta_seconds(rate: float | None, step: int, total: int | None) -> float | None:
    if not rate or rate <= 0 or not total:
        return None
    return max(0, total - step) / rate


def clock(seconds: float | None) -> str:
    """1:05:09, 4:07 or 12s; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    if minutes:
        return f"{minutes}:{secs:02d}"
    return f"{secs}s"
