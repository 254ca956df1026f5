"""Run overview: status, progress, speed and timing, layout and config highlights."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from allo.rate import RateWindow
from allo.rundir import RunInfo
from tui.runinfo import (
    STATUS_STYLE,
    RunStatus,
    config_items,
    duration,
    layout_line,
    run_status,
    status_note,
)


def progress_bar(fraction: float | None, width: int) -> Text:
    if fraction is None or width < 3:
        return Text("")
    filled = round(fraction * width)
    return Text.assemble(("━" * filled, "green"), ("━" * (width - filled), "dim"))


SETTINGS_LINES = 2  # the settings wrap onto a second line rather than being cut


def wrap_items(items: list[Text], width: int, most: int) -> list[Text]:
    """Items joined by two spaces, wrapped between items onto at most `most` lines."""
    lines = [Text(no_wrap=True, overflow="ellipsis")]
    for item in items:
        line = lines[-1]
        if line.cell_len and line.cell_len + 2 + item.cell_len > width and len(lines) < most:
            lines.append(Text(no_wrap=True, overflow="ellipsis"))
            line = lines[-1]
        if line.cell_len:
            line.append("  ")
        line.append_text(item)
    return lines


class Overview(Static):
    """Two lines at the top. Re-checks the clock so a silent run turns 'stalled'."""

    DEFAULT_CSS = """
    Overview { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.info: RunInfo | None = None
        self.latest: Mapping[str, Any] | None = None
        self.clock = time.time  # replaced in tests
        self.rates = RateWindow()  # the trainer's own steps/s definition (allo.rate)
        self.run_name = ""

    def on_mount(self) -> None:
        self.set_interval(2.0, self.refresh_status)

    def on_resize(self) -> None:
        self.refresh_status()  # the progress bar's width follows the panel's

    def set_info(self, info: RunInfo) -> None:
        self.info = info
        self.refresh_status()

    def set_latest(self, latest: Mapping[str, Any] | None) -> None:
        self.latest = latest
        self.refresh_status()

    def add_times(self, times, steps) -> None:
        """(time, step) of new metrics rows, for the windowed rate."""
        self.rates.extend(zip(times, steps, strict=True))

    def reset(self) -> None:
        self.latest = None
        self.rates.clear()
        self.refresh_status()

    @property
    def state(self) -> RunStatus | None:
        if self.info is None:
            return None
        return run_status(self.info, self.latest, self.clock(), self.rates.rate())

    def refresh_status(self) -> None:
        self.update(self.compose_text())

    def compose_text(self) -> Text:
        state = self.state
        if state is None:
            return Text("reading run.json…", style="dim")
        info = self.info or RunInfo()
        width = max(20, self.size.width or 80)
        first = Text(no_wrap=True, overflow="ellipsis")
        first.append(f"{state.status.upper()}", STATUS_STYLE.get(state.status, "bold"))
        total = f"{state.total:,}" if state.total else "?"
        first.append(f"  step {state.step:,}/{total}")
        if state.fraction is not None:
            first.append(f" {state.fraction:4.0%} ")
            bar_width = max(0, min(20, width - 78))
            if bar_width >= 5:
                first.append_text(progress_bar(state.fraction, bar_width))
        if state.sps is not None:
            first.append(f"  {state.sps:,.0f} steps/s")
        if state.eta_seconds is not None:
            first.append("  ETA ")
            first.append(duration(state.eta_seconds), "bold")
        first.append(f"  elapsed {duration(state.elapsed_seconds)}")
        note = status_note(state)
        items = [Text(layout_line(info), "bold")]
        for label, value in config_items(info):
            items.append(Text.assemble((f"{label} ", "dim") if label else "", value))
        if info.device:
            items.append(Text.assemble(("on ", "dim"), info.device))
        if self.run_name:
            items.append(Text.assemble(("run ", "dim"), self.run_name))
        settings = wrap_items(items, width - 2, SETTINGS_LINES)
        lines = [first, *settings]
        if note:  # why it failed or stalled gets its own line: it is the news
            lines.insert(1, Text(note, STATUS_STYLE.get(state.status, ""), no_wrap=True))
        text = Text("\n").join(lines)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text
