"""`allo watch FOLDER --once` (or not a terminal): the runs table as plain text, then
per configuration the mean and 95% interval of the final metrics, for a SLURM log or CI.
"""

from __future__ import annotations

import time
from pathlib import Path

from tui.groups import group_rows, interval_text
from tui.runstable import COLUMNS, RunRow, build_row, differing_keys, run_config, sorted_rows
from tui.tracker import FolderWatcher

WIDEST = {"run": 36, "settings": 30, "status": 40}  # longer cells end in …


def folder_rows(folder: Path, now: float | None = None) -> list[RunRow]:
    watcher = FolderWatcher(folder)
    watcher.poll()
    trackers = list(watcher.trackers.values())
    differing = differing_keys([run_config(t.info) for t in trackers if t.info is not None])
    return [build_row(t, differing, now) for t in trackers]


def table_text(rows: list[RunRow], columns: tuple[str, ...] = COLUMNS) -> list[str]:
    cells = [r.cells() for r in rows]
    shown = [c for c in columns
             if c not in ("settings", "strict") or any(x[c] not in ("", "—") for x in cells)]
    widths = {}
    for column in shown:
        longest = max([len(column)] + [len(x[column]) for x in cells])
        widths[column] = min(longest, WIDEST.get(column, longest))

    def fit(text: str, column: str) -> str:
        width = widths[column]
        text = text if len(text) <= width else text[: width - 1] + "…"
        left = column in ("run", "layout", "objective", "settings", "status")
        return text.ljust(width) if left else text.rjust(width)

    lines = ["  ".join(fit(c, c) for c in shown).rstrip()]
    lines += ["  ".join(fit(x[c], c) for c in shown).rstrip() for x in cells]
    return lines


def summarize_runs(folder: Path, now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = sorted_rows(folder_rows(folder, now), "run")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"allo runs  {folder}  ({len(rows)} runs: {tally})", ""]
    lines += table_text(rows)
    groups = group_rows(rows)
    lines += ["", "per configuration: mean ± 95% interval half-width (Student t, as allo compare)"]
    for group in groups:
        cos = interval_text(*group.final("cos"))
        strict = group.final("strict")
        if strict[3]:
            cos += f"   strict |cos| {interval_text(*strict)}"
        eig = interval_text(*group.final("eig_error"), digits=2)
        converged = interval_text(*group.final("converged_at"), digits=4)
        lines.append(f"  {group.label}  [{len(group.rows)} runs]")
        lines.append(f"      mean |cos| {cos}   eig err {eig}   steps to 0.99 {converged}")
    return "\n".join(lines)
