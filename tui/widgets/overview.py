"""Run overview: status, progress, speed and timing, layout and config highlights."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

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


class Overview(Static):
    """Two lines at the top. Re-checks the clock so a silent run turns 'stalled'."""

    DEFAULT_CSS = """
    Overview { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.info: dict | None = None
        self.latest: dict | None = None
        self.clock = time.time  # replaced in tests
        self.run_name = ""

    def on_mount(self) -> None:
        self.set_interval(2.0, self.refresh_status)

    def on_resize(self) -> None:
        self.refresh_status()  # the progress bar's width follows the panel's

    def set_info(self, info: dict) -> None:
        self.info = info
        self.refresh_status()

    def set_latest(self, latest: dict | None) -> None:
        self.latest = latest
        self.refresh_status()

    def reset(self) -> None:
        self.latest = None
        self.refresh_status()

    @property
    def state(self) -> RunStatus | None:
        if self.info is None:
            return None
        return run_status(self.info, self.latest, self.clock())

    def refresh_status(self) -> None:
        self.update(self.compose_text())

    def compose_text(self) -> Text:
        state = self.state
        if state is None:
            return Text("reading run.json…", style="dim")
        info = self.info or {}
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
        second = Text(no_wrap=True, overflow="ellipsis")
        second.append(layout_line(info), "bold")
        for label, value in config_items(info):
            second.append("  ")
            if label:
                second.append(f"{label} ", "dim")
            second.append(value)
        device = info.get("device")
        if device:
            second.append("  on ", "dim")
            second.append(str(device))
        if self.run_name:
            second.append("  run ", "dim")
            second.append(self.run_name)
        lines = [first, second]
        if note:  # why it failed or stalled gets its own line: it is the news
            lines.insert(1, Text(note, STATUS_STYLE.get(state.status, ""), no_wrap=True))
        text = Text("\n").join(lines)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text
