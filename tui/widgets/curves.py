"""Curves panel: one chart of metrics over steps, chosen with keys, drawn by plotext."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from tui.chart import CHARTS, render_chart
from tui.viewstate import ViewState

if TYPE_CHECKING:
    from tui.app import WatchApp
    from tui.series import MetricStore

# The x-range keys, shared with the runs overlay (tui.widgets.overlay).
VIEW_BINDINGS = [
    Binding("x", "view('toggle_axis')", "step/time", show=False),
    Binding("z", "view('cycle_last')", "last N%", show=False),
    Binding("plus,equals_sign", "zoom(0.5)", "zoom in", show=False),
    Binding("minus", "zoom(2.0)", "zoom out", show=False),
    Binding("less_than_sign", "pan(-1)", "pan left", show=False),
    Binding("greater_than_sign", "pan(1)", "pan right", show=False),
    Binding("c", "view('toggle_cursor')", "cursor", show=False),
    Binding("comma", "cursor(-1)", "cursor left", show=False),
    Binding("full_stop", "cursor(1)", "cursor right", show=False),
    Binding("0", "view('reset_range')", "whole run", show=False),
]


class ViewKeys:
    """Actions for VIEW_BINDINGS on a widget that has `state: ViewState`."""

    state: ViewState

    def view_changed(self) -> None:
        raise NotImplementedError

    def action_view(self, name: str) -> None:
        getattr(self.state, name)()
        self.view_changed()

    def action_zoom(self, factor: float) -> None:
        self.state.zoom(factor)
        self.view_changed()

    def action_pan(self, direction: int) -> None:
        self.state.pan(direction)
        self.view_changed()

    def action_cursor(self, direction: int) -> None:
        self.state.move_cursor(direction)
        self.view_changed()


class Curves(ViewKeys, Widget, can_focus=True):
    """Redraws only when data, size or a toggle changed (CPU idle otherwise)."""

    BINDINGS = [
        Binding("left", "cycle(-1)", "prev chart", show=False),
        Binding("right", "cycle(1)", "next chart", show=False),
        *VIEW_BINDINGS,
    ]

    chart_index: reactive[int] = reactive(0)

    def __init__(self, store: MetricStore | None = None, **kwargs) -> None:
        """`store=None`: the app's store, looked up when first drawn (it needs numpy,
        which loads after the first frame)."""
        super().__init__(**kwargs)
        self._store = store
        self.color = True
        self.plot_ready = False  # plotext is imported off the first-paint path
        self._cache: tuple[tuple, Text] | None = None
        self.version = 0  # bumped by the app whenever the store changes
        self.state = ViewState()

    def on_mount(self) -> None:
        self.update_title()

    @property
    def store(self) -> MetricStore:
        return self._store if self._store is not None else cast("WatchApp", self.app).store

    @property
    def chart(self):
        return CHARTS[self.chart_index]

    @property
    def log_y(self) -> bool:
        return self.state.view.log_y

    @log_y.setter
    def log_y(self, value: bool) -> None:
        if value != self.state.view.log_y:
            self.state.toggle_log()
            self.view_changed()

    @property
    def smooth(self) -> bool:
        return self.state.view.smooth

    @smooth.setter
    def smooth(self, value: bool) -> None:
        if value != self.state.view.smooth:
            self.state.toggle_smooth()
            self.view_changed()

    def data_changed(self) -> None:
        self.version += 1
        self.refresh()

    def view_changed(self) -> None:
        self.update_title()
        self.refresh()

    def action_cycle(self, delta: int) -> None:
        self.chart_index = (self.chart_index + delta) % len(CHARTS)

    def watch_chart_index(self) -> None:
        self.update_title()

    def update_title(self) -> None:
        keys = " ".join(
            f"[reverse]{i + 1} {c.key}[/]" if i == self.chart_index else f"{i + 1} {c.key}"
            for i, c in enumerate(CHARTS)
        )
        self.border_title = f"Curves: {self.chart.title}"
        flags = self.state.flags()
        self.border_subtitle = f"{keys}{'  ' + flags if flags else ''}"

    def render(self) -> Text:
        if not self.plot_ready:
            return Text("loading plotter…", style="dim")
        width, height = self.content_size
        key = (self.version, self.chart_index, self.state.version, width, height, self.color)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        text = render_chart(self.store, self.chart, width, height, color=self.color,
                            view=self.state.view)
        self._cache = (key, text)
        return text
