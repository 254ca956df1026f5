"""What the overview shows, derived from run.json and the newest metrics row.

Pure functions of their inputs (the clock is a parameter), shared by the dashboard
and the `--once` summary, and deterministic for a finished run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allo.rate import clock
from allo.rundir import STALL_SECONDS, Metric, RunInfo, as_info, effective_status

STATUS_STYLE = {
    "running": "bold green",
    "finished": "bold blue",
    "failed": "bold red",
    "interrupted": "bold yellow",
    "stalled": "bold magenta",
    "unknown": "bold",
}

# Config fields worth a glance, in display order, if the trainer wrote them.
CONFIG_HIGHLIGHTS = (  # TrainConfig field -> short label
    ("learning_rate", "lr"),
    ("batch_size", "batch"),
    ("lr_duals", "dual lr"),
    ("barrier_max", "b max"),
    ("hidden_size", "hidden"),
    ("num_envs", "envs"),
    ("max_episode_length", "ep len"),
)
# What a highlighted field's null means (the trainer's default for it).
CONFIG_NULL_MEANING = {"batch_size": "all data"}  # the exact expectation, no sampling


@dataclass
class RunStatus:
    status: str  # running | finished | failed | interrupted | stalled | unknown
    step: int
    total: int | None
    sps: float | None
    eta_seconds: float | None
    elapsed_seconds: float | None
    heartbeat_age: float | None
    message: str | None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def run_status(info: RunInfo | Mapping[str, Any], latest: Mapping[str, Any] | None,
               now: float | None = None, rate: float | None = None) -> RunStatus:
    """Status, progress, speed and timing; ETA only while the run is really running.

    `rate`: steps/s from allo.rate (the trainer's own windowed rate); without one, the
    newest row's `sps` (its last log interval) stands in."""
    now = time.time() if now is None else now
    info = as_info(info)
    status = effective_status(info, now)
    step = int(_number(info.step) or 0)
    if latest is not None and isinstance(latest.get(Metric.STEP), int):
        step = max(step, latest[Metric.STEP])
    total = _number(info.total_steps)
    total_int = int(total) if total else None
    sps = rate if rate is not None else (_number(latest.get(Metric.SPS)) if latest else None)
    candidates = (_number(info.elapsed), _number((latest or {}).get(Metric.TIME)))
    elapsed = max((v for v in candidates if v is not None), default=None)
    if elapsed is None:
        started, ended = _number(info.started), _number(info.finished)
        if started is not None and ended is not None:
            elapsed = max(0.0, ended - started)
    eta = None
    if status == "running" and sps and sps > 0 and total_int:
        eta = max(0, total_int - step) / sps
    heartbeat = _number(info.heartbeat)
    age = now - heartbeat if heartbeat is not None and status in ("running", "stalled") else None
    return RunStatus(status, step, total_int, sps, eta, elapsed, age, info.message)


def duration(seconds: float | None) -> str:
    """1:05:09, 4:07 or 12s (allo.rate.clock, as the trainer's line writes it)."""
    return clock(seconds)


def layout_line(info: RunInfo | Mapping[str, Any]) -> str:
    """'room4 13x13, 104 cells' from run.json's env."""
    env = as_info(info).env or {}
    name = env.get("name", "?")
    width, height = env.get("width"), env.get("height")
    cells = env.get("num_free") or len(env.get("free_cells") or [])
    size = f" {width}x{height}" if width and height else ""
    doors = len(env.get("doors") or [])
    return f"{name}{size}, {cells} cells" + (f", {doors} doors" if doors else "")


def config_items(info: RunInfo | Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs: objective, d, gamma, seed, then any highlighted config."""
    info = as_info(info)
    items: list[tuple[str, str]] = []
    for value, label in ((info.objective, ""), (info.d, "d"), (info.gamma, "γ"),
                         (info.seed, "seed")):
        if value is not None:
            items.append((label, str(value)))
    config = info.config or {}
    shown: set[str] = set()
    for key, label in CONFIG_HIGHLIGHTS:
        if key not in config or label in shown:
            continue
        value = config[key]
        if value is None and key in CONFIG_NULL_MEANING:
            value = CONFIG_NULL_MEANING[key]
        if value is not None:
            shown.add(label)
            items.append((label, f"{value:g}" if isinstance(value, float) else str(value)))
    return items


def status_note(state: RunStatus) -> str:
    """The extra words beside the status: why it failed, how long the silence is."""
    if state.status == "stalled" and state.heartbeat_age is not None:
        return f"no heartbeat for {duration(state.heartbeat_age)} (>{int(STALL_SECONDS)}s)"
    if state.status in ("failed", "interrupted") and state.message:
        return state.message
    return ""
