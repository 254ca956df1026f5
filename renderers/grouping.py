"""Which runs are seeds of one setting, and their curves on a shared step axis.

Two runs belong to one group when their run.json `config` objects are equal after
dropping bookkeeping fields (BOOKKEEPING): seeds, where results go, device, logging and
export frequencies, resume and plotting switches. Everything else (layout, d, gamma,
learning rates, barrier, steps, ...) defines the setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allo import rundir
from renderers.figures import clean
from renderers.stats import mean_interval, positive_interval, unit_interval

_NUMBER = re.compile(r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
BOOKKEEPING = frozenset(
    {
        "seed",
        "door_seed_offset",
        "run_dir",
        "results_dir",
        "exp_number",
        "exp",
        "resume",
        "device",
        "plot_during_training",
        "log_freq",
        "plot_freq",
        "export_freq",
        "checkpoint_freq",
        "keep_checkpoints",
        "quiet",
        "verbose",
        "progress",
        "name",
        "num_threads",
        "compile",
    }
)


@dataclass
class RunSummary:
    path: str
    name: str
    status: str
    config: dict
    rows: list[dict]
    wall_time: float | None

    @property
    def final_step(self) -> int | None:
        return self.rows[-1]["step"] if self.rows else None

    def final(self, key: str) -> float:
        steps, values = rundir.series(self.rows, key)
        return float(values[-1]) if len(values) else float("nan")


@dataclass
class Group:
    key: str
    config: dict
    runs: list[RunSummary] = field(default_factory=list)
    label: str = ""


def setting(info: rundir.RunInfo | Mapping[str, Any]) -> dict:
    """The run's configuration as asked for, without bookkeeping fields.

    A data set the trainer grew by itself (run.json's budget has
    data_ceiling_before_growth) counts as the default it grew from, so the seeds of one
    command stay one setting however far each seed's data grew."""
    info = rundir.as_info(info)
    config = info.config
    if config is None:  # older runs: what defines the setting anyway
        config = {"objective": info.objective, "d": info.d, "gamma": info.gamma,
                  "env": info.env_name}
    elif info.budget is not None and info.budget.data_ceiling_before_growth is not None:
        config = {**config, "num_envs": rundir.BASE_NUM_ENVS}
    return {k: v for k, v in config.items() if k not in BOOKKEEPING}


def group_runs(runs: list[RunSummary]) -> list[Group]:
    """Groups in order of first appearance, each labelled by what sets it apart."""
    groups: dict[str, Group] = {}
    for run in runs:
        key = json.dumps(rundir.to_json_safe(run.config), sort_keys=True)
        groups.setdefault(key, Group(key, run.config)).runs.append(run)
    ordered = list(groups.values())
    keys = sorted({k for g in ordered for k in g.config})
    differing = [k for k in keys if len({json.dumps(g.config.get(k)) for g in ordered}) > 1]
    for index, group in enumerate(ordered):
        parts = [f"{k}={_short(group.config.get(k))}" for k in differing]
        if not parts:
            env = group.config.get("env", "?")
            parts = [f"{env}", f"{group.config.get('objective', '')}".strip()]
        group.label = clean(" ".join(p for p in parts if p), 60) or f"setting {index + 1}"
    return sorted(ordered, key=lambda group: natural_key(group.label))


def natural_key(text: str) -> list:
    """Sort key reading numbers as numbers: steps=3000 < steps=8000 < steps=30000,
    lr=1e-4 < lr=0.001."""
    parts: list = []
    for token in _NUMBER.split(text):
        if not token:
            continue
        try:
            parts.append((0, float(token), ""))
        except ValueError:
            parts.append((1, 0.0, token))
    return parts


def _short(value) -> str:
    if value is None:
        return "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)


def aligned(runs: list[RunSummary], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values[n_runs, T]) on the union of logged steps inside the common range.

    Runs that log the same steps (the usual case) are read exactly; otherwise each run is
    linearly interpolated between its own rows. Steps outside a run's range are not
    extrapolated: the range is where every run has data.
    """
    return aligned_series([rundir.series(run.rows, key) for run in runs])


def aligned_series(series: list[tuple[np.ndarray, np.ndarray]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """aligned() of (steps, values) pairs, for callers that hold series rather than rows
    (the dashboard's bounded series)."""
    series = [(np.asarray(s), np.asarray(v, dtype=np.float64)) for s, v in series if len(s)]
    if not series:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    low = max(int(s[0]) for s, _ in series)
    high = min(int(s[-1]) for s, _ in series)
    steps = np.unique(np.concatenate([s for s, _ in series]))
    steps = steps[(steps >= low) & (steps <= high)]
    values = np.stack([np.interp(steps, s, v) for s, v in series])
    return steps, values


# How a band is taken (renderers.stats): "any" quantity, a "positive" one (log space),
# a "unit" one in [0, 1] near 1 (log space of 1 - x), or "gap": 1 - x of a unit one.
INTERVALS = {
    "any": mean_interval,
    "positive": positive_interval,
    "unit": unit_interval,
    "gap": lambda values, axis: positive_interval(1.0 - values, axis=axis),
}


def band(runs: list[RunSummary], key: str, kind: str = "any"):
    """(steps, centre, low, high) across runs; low/high NaN for a single run."""
    steps, values = aligned(runs, key)
    if not len(steps):
        return steps, np.zeros(0), np.zeros(0), np.zeros(0)
    centre, low, high = INTERVALS[kind](values, axis=0)
    return steps, centre, low, high
