"""The training progress bar (rich, on stderr so stdout stays scriptable)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from allo.rate import RateWindow, clock, eta_seconds


class TrainProgress:
    """One bar: step M/N, steps/s, ETA, current mean |cos|; export lines print above it.

    steps/s and the ETA come from allo.rate, the same windowed rate `allo watch` shows."""

    def __init__(self, total: int):
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]} steps/s"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("mean|cos| {task.fields[cos]}"),
            console=self.console,
            refresh_per_second=4,
            disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=total, sps="-", cos="-", eta="-")
        # steps/s and ETA as `allo watch` computes them (allo.rate), from the rows' times
        self.rates = RateWindow()

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, total: int, row: dict | None) -> None:
        fields: dict[str, Any] = {}
        if row is not None:
            self.rates.add(row.get("time", float("nan")), row["step"])
            rate = self.rates.rate()
            fields = {"sps": "-" if rate is None else f"{rate:.0f}",
                      "cos": f"{row['cos/mean']:.4f}",
                      "eta": clock(eta_seconds(rate, step, total))}
        self.progress.update(self.task, completed=step, total=total, **fields)

    def log(self, line: str) -> None:
        if self.console.is_terminal:
            self.progress.console.print(line, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)
