"""Runs of one configuration as a group: centre and 95% interval, as `allo compare` does.

The curve of a group is its runs' series on the union of their logged steps inside the
range every run covers (linear interpolation between a run's own rows, no
extrapolation: renderers.grouping.aligned), summarised by the interval compare's figure
takes for that kind of quantity (renderers.grouping.INTERVALS: 1 - |cos| and errors in
log space, |cos| below 1, anything else mean +- t s / sqrt(n)). Final values are
summarised as the study table does: mean +- half-width (renderers.stats.mean_interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renderers.grouping import aligned_series
from renderers.stats import mean_interval
from tui.runstable import RunRow


@dataclass
class GroupSummary:
    label: str
    rows: list[RunRow]

    def final(self, attribute: str) -> tuple[float, float, float, int]:
        """(mean, low, high, n) of a row attribute over the runs that have it."""
        present = [getattr(r, attribute) for r in self.rows]
        values = np.array([v for v in present if v is not None], dtype=np.float64)
        if not len(values):
            return float("nan"), float("nan"), float("nan"), 0
        mean, low, high = mean_interval(values[:, None], axis=0)
        return float(mean[0]), float(low[0]), float(high[0]), len(values)


def group_rows(rows: list[RunRow]) -> list[GroupSummary]:
    """Groups in order of first appearance, labelled by layout, objective and settings."""
    groups: dict[str, GroupSummary] = {}
    for row in rows:
        if not row.config:  # run.json unreadable: no configuration to group by
            continue
        label = " ".join(p for p in (row.layout, row.objective, row.settings) if p)
        groups.setdefault(row.group, GroupSummary(label, [])).rows.append(row)
    return list(groups.values())


def band(series: list[tuple[np.ndarray, np.ndarray]], kind: str = "any"):
    """(steps, centre, low, high) across runs; low/high NaN for a single run. `kind`:
    renderers.grouping.INTERVALS ("any", "positive", "unit", "gap")."""
    from renderers.grouping import INTERVALS

    steps, values = aligned_series(series)
    if not len(steps):
        return steps, np.zeros(0), np.zeros(0), np.zeros(0)
    centre, low, high = INTERVALS[kind](values, axis=0)
    return steps, centre, low, high


def interval_text(mean: float, low: float, high: float, n: int, digits: int = 4) -> str:
    """'0.9921 ± 0.0031 (n=3)'; a single run has no interval."""
    if n == 0 or not np.isfinite(mean):
        return "—"
    if n < 2 or not np.isfinite(high):
        return f"{mean:.{digits}g} (n=1)"
    return f"{mean:.{digits}g} ± {(high - low) / 2:.2g} (n={n})"
