"""The training progress bar (rich, on stderr so stdout stays scriptable)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """One bar: step M/N, steps/s, ETA, current mean |cos|; export lines print above it."""

    def __init__(self, total: int):
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]} steps/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("mean|cos| {task.fields[cos]}"),
            console=self.console,
            refresh_per_second=4,
            disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=total, sps="-", cos="-")

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, total: int, row: dict | None) -> None:
        fields = {}
        if row is not None:
            fields = {"sps": f"{row['sps']:.0f}", "cos": f"{row['cos/mean']:.4f}"}
        self.progress.update(self.task, completed=step, total=total, **fields)

    def log(self, line: str) -> None:
        if self.console.is_terminal:
            self.progress.console.print(line, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)
