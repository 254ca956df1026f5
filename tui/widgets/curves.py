"""Curves panel: one chart of metrics over steps, chosen with keys, drawn by plotext."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from tui.chart import CHARTS, render_chart

if TYPE_CHECKING:
    from tui.series import MetricStore


class Curves(Widget, can_focus=True):
    """Redraws only when data, size or a toggle changed (CPU idle otherwise)."""

    BINDINGS = [
        Binding("left", "cycle(-1)", "prev chart", show=False),
        Binding("right", "cycle(1)", "next chart", show=False),
    ]

    chart_index: reactive[int] = reactive(0)
    log_y: reactive[bool] = reactive(False)
    smooth: reactive[bool] = reactive(False)

    def __init__(self, store: MetricStore | None = None, **kwargs) -> None:
        """`store=None`: the app's store, looked up when first drawn (it needs numpy,
        which loads after the first frame)."""
        super().__init__(**kwargs)
        self._store = store
        self.color = True
        self.plot_ready = False  # plotext is imported off the first-paint path
        self._cache: tuple[tuple, Text] | None = None
        self.version = 0  # bumped by the app whenever the store changes

    def on_mount(self) -> None:
        self.update_title()

    @property
    def store(self) -> MetricStore:
        return self._store if self._store is not None else self.app.store

    @property
    def chart(self):
        return CHARTS[self.chart_index]

    def data_changed(self) -> None:
        self.version += 1
        self.refresh()

    def action_cycle(self, delta: int) -> None:
        self.chart_index = (self.chart_index + delta) % len(CHARTS)

    def watch_chart_index(self) -> None:
        self.update_title()

    def watch_log_y(self) -> None:
        self.update_title()

    def watch_smooth(self) -> None:
        self.update_title()

    def update_title(self) -> None:
        keys = " ".join(
            f"[reverse]{i + 1} {c.key}[/]" if i == self.chart_index else f"{i + 1} {c.key}"
            for i, c in enumerate(CHARTS)
        )
        self.border_title = f"Curves: {self.chart.title}"
        flags = ("log-y " if self.log_y else "") + ("EMA " if self.smooth else "")
        self.border_subtitle = f"{keys}{'  ' + flags.strip() if flags else ''}"

    def render(self) -> Text:
        if not self.plot_ready:
            return Text("loading plotter…", style="dim")
        width, height = self.content_size
        key = (self.version, self.chart_index, self.log_y, self.smooth, width, height, self.color)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        text = render_chart(
            self.store,
            self.chart,
            width,
            height,
            log_y=self.log_y,
            smooth=self.smooth,
            color=self.color,
        )
        self._cache = (key, text)
        return text
