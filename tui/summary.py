"""The one-screen text summary printed when stdout is not a terminal, or with --once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from allo import rundir
from allo.rate import rate_of_rows
from tui.chart import format_number
from tui.runinfo import config_items, duration, layout_line, run_status, status_note

MAX_EIGEN_ROWS = 10


def summarize(path: Path, runs: list[Path] | None = None, now: float | None = None) -> str:
    """Plain text (no colour codes), at most about 24 lines."""
    reader = rundir.RunReader(path)
    info = reader.info()
    rows, problems = reader.metrics_with_problems()
    latest: Mapping[str, Any] | None = rows[-1] if rows else None
    state = run_status(info, latest, time.time() if now is None else now, rate_of_rows(rows))
    lines = [f"allo run  {path}"]
    config = "  ".join(f"{label} {value}".strip() for label, value in config_items(info))
    device = f"  device {info.device}" if info.device else ""
    lines.append(f"layout    {layout_line(info)}  {config}{device}")
    total = f"{state.total:,}" if state.total else "?"
    progress = f" ({state.fraction:.0%})" if state.fraction is not None else ""
    status = f"status    {state.status}  step {state.step:,}/{total}{progress}"
    if state.sps is not None:
        status += f"  {state.sps:,.0f} steps/s"
    if state.eta_seconds is not None:
        status += f"  ETA {duration(state.eta_seconds)}"
    status += f"  elapsed {duration(state.elapsed_seconds)}"
    lines.append(status)
    note = status_note(state)
    if note:
        lines.append(f"          {note}")
    if latest is None:
        lines.append("metrics   none yet")
    else:
        parts = [
            ("mean |cos|", "cos/mean"),
            ("loss", "loss/total"),
            ("orth err", "orth/error"),
            ("eig mean abs err", "eig/mean_abs_error"),
        ]
        shown = "  ".join(
            f"{label} {format_number(latest.get(key))}"
            for label, key in parts
            if isinstance(latest.get(key), (int, float))
        )
        lines.append(f"metrics   at step {latest['step']:,} ({len(rows):,} rows): {shown}")
    if problems:
        lines.append(f"          {len(problems)} unreadable metrics line(s) skipped")
    lines += eigen_table(reader, latest)
    steps = reader.export_steps()
    final = "yes" if reader.final_path().exists() else "no"
    last = f", latest step {steps[-1]:,}" if steps else ""
    lines.append(f"exports   {len(steps)}{last}; final export: {final}")
    others = [run for run in (runs or []) if run != path]
    if others:
        lines.append(f"also      {len(others)} other run(s) here; newest: {others[0].name}")
    return "\n".join(lines)


def eigen_table(reader: rundir.RunReader, latest: Mapping[str, Any] | None) -> list[str]:
    try:
        truth, _ = reader.ground_truth()
    except rundir.RunDirError:
        return ["eigen     ground truth not written yet"]
    latest = latest or {}

    def pick(key: str, i: int) -> float | None:
        values = latest.get(key)
        if isinstance(values, list) and i < len(values) and isinstance(values[i], (int, float)):
            return float(values[i])
        return None

    lines = ["   #    truth λ   estimate    abs err    |cos|"]
    count = len(truth)
    for i in range(min(count, MAX_EIGEN_ROWS)):
        estimate = pick("eig/estimate", i)
        err = pick("eig/abs_error", i)
        if err is None and estimate is not None:
            err = abs(estimate - float(truth[i]))
        cos = pick("cos/per_vector", i)
        lines.append(
            f"{i + 1:>4} {format_number(float(truth[i])):>10} {format_number(estimate):>10} "
            f"{format_number(err):>10} {'—' if cos is None else f'{cos:.3f}':>8}"
        )
    if count > MAX_EIGEN_ROWS:
        rest = [pick("cos/per_vector", i) for i in range(MAX_EIGEN_ROWS, count)]
        known = [c for c in rest if c is not None]
        mean = f"; their mean |cos| {np.mean(known):.3f}" if known else ""
        lines.append(f"   … {count - MAX_EIGEN_ROWS} more{mean}")
    return lines
