"""A one-line notice above the footer, instead of a toast over the panels.

A toast floats over the bottom right, which is where the eigenvector panel is: the
very panel a "render finished" or "export unreadable" message is about. This line
takes a row of its own while it shows, then gives the row back.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

STYLES = {"information": "bold", "warning": "bold yellow", "error": "bold red"}


@dataclass
class Note:
    message: str
    severity: str


class Notice(Static):
    DEFAULT_CSS = """
    Notice { height: 1; display: none; padding: 0 1; background: $boost; }
    Notice.-shown { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history: list[Note] = []
        self._timer: Timer | None = None

    def show(self, message: str, severity: str = "information", timeout: float = 6.0) -> None:
        self.history.append(Note(message, severity))
        del self.history[:-50]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("● ", STYLES.get(severity, "bold"))
        text.append(message)
        self.update(text)
        self.add_class("-shown")
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(max(0.5, timeout), self.hide)

    def hide(self) -> None:
        self.remove_class("-shown")
