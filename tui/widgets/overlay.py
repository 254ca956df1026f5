"""The runs overlay: selected runs' curves together, or their groups' mean and band.

Each run keeps the colour it was given when first selected, for the whole session. A
group is the runs of one configuration (tui.groups): its mean line and 95% interval
(band edges dotted) use the colour of its first run. Hidden runs stay selected but are
not drawn; isolating one run draws it alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.chart import CHARTS, Line, Panel, View, format_number, metric_values, render_panels
from tui.chart import swatch as line_swatch
from tui.viewstate import ViewState
from tui.widgets.curves import ViewKeys

if TYPE_CHECKING:
    from tui.runstable import RunRow
    from tui.tracker import RunTracker


class Overlay(ViewKeys, Widget):
    """Redrawn when the selection, the view or a selected run's data changed."""

    chart_index: reactive[int] = reactive(0)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = ViewState()
        self.color = True
        self.grouped = False
        self.entries: list[tuple[RunTracker, RunRow, int, bool]] = []  # run, row, colour, shown
        self.version = 0
        self._cache: tuple[tuple, Text] | None = None

    @property
    def chart(self):
        return CHARTS[self.chart_index]

    def view_changed(self) -> None:
        self.update_title()
        self.refresh()

    def watch_chart_index(self) -> None:
        self.view_changed()

    def set_entries(self, entries: list, grouped: bool) -> None:
        self.entries = entries
        self.grouped = grouped
        self.version += 1
        self.update_title()
        self.refresh()

    def update_title(self) -> None:
        keys = " ".join(
            f"[reverse]{i + 1} {c.key}[/]" if i == self.chart_index else f"{i + 1} {c.key}"
            for i, c in enumerate(CHARTS)
        )
        mode = "groups: mean, 95% band" if self.grouped else "runs"
        self.border_title = f"Overlay ({mode}): {self.chart.title}"
        flags = self.state.flags()
        self.border_subtitle = f"{keys}{'  ' + flags if flags else ''}"

    def panels(self, view: View) -> tuple[list[Panel], list[tuple[str, int, bool]]]:
        """Panels of the chart and the legend entries (label, colour, shown)."""
        shown = [(t, r, c) for t, r, c, visible in self.entries if visible]
        units = _groups(shown) if self.grouped else [(run_label(r), c, [t]) for t, r, c in shown]
        legend: list[tuple[str, int, bool]] = [(label, colour, True) for label, colour, _ in units]
        legend += [(run_label(r), c, False) for _, r, c, visible in self.entries
                   if not visible and not self.grouped]
        panels = []
        for metric in self.chart.metrics:
            lines = []
            for label, colour, trackers in units:
                line = _line(metric, label, colour, trackers, view.time_axis)
                if line is not None:
                    lines.append(line)
            if lines:
                panels.append(Panel(metric.label, metric.log, lines))
        return panels, legend

    def legend_text(self, panels: list[Panel], legend, width: int) -> Text:
        """Swatch, name and the first panel's value (at the cursor, or the latest)."""
        values: dict[str, float | None] = {}
        if panels:
            for line in panels[0].lines:
                values[line.label] = _value_at(line, self.state.view, panels)
        rows = [Text(no_wrap=True, overflow="ellipsis")]
        for label, colour, shown in legend:
            item = Text(no_wrap=True)
            item.append_text(line_swatch(colour, self.color))
            item.append(f" {label} ", style="" if shown else "dim strike")
            if shown:
                item.append(format_number(values.get(label)), style="bold")
            row = rows[-1]
            if row.cell_len and row.cell_len + 2 + item.cell_len > width and len(rows) < 3:
                rows.append(Text(no_wrap=True, overflow="ellipsis"))
                row = rows[-1]
            if row.cell_len:
                row.append("  ")
            row.append_text(item)
        if panels:
            what = "at cursor" if self.state.view.cursor is not None else "latest"
            rows[-1].append(f"  ({panels[0].title}, {what})", style="dim")
        out = Text("\n").join(rows)
        out.no_wrap, out.overflow = True, "ellipsis"
        return out

    def render(self) -> Text:
        if not self.entries:
            return Text("select runs with space (a: all shown runs) to overlay their curves",
                        style="dim")
        width, height = self.content_size
        key = (self.version, self.chart_index, self.state.version, width, height, self.color)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        with self.app_lock():
            panels, legend = self.panels(self.state.view)
        header = self.legend_text(panels, legend, width)
        text = render_panels(panels, width, height, self.state.view, self.color, header=header)
        self._cache = (key, text)
        return text

    def app_lock(self):
        """The folder watcher's lock: series are read while no poll is changing them."""
        return self.screen.watcher_lock  # type: ignore[attr-defined]

    def data_changed(self) -> None:
        self.version += 1
        self.refresh()


def run_label(row: RunRow) -> str:
    """A run as a researcher names it: layout, objective, differing settings, seed
    ('maze allo s2'); the directory name where run.json says none of that."""
    if row.layout == "?" and row.objective == "?":
        return row.name
    parts = [row.layout, row.objective, row.settings, f"s{row.seed}" if row.seed else ""]
    return " ".join(p for p in parts if p)


def _groups(shown) -> list[tuple[str, int, list]]:
    from tui.groups import group_rows

    rows = [r for _, r, _ in shown]
    by_path = {r.path: (t, c) for t, r, c in shown}
    units = []
    for group in group_rows(rows):
        trackers = [by_path[r.path][0] for r in group.rows]
        colour = by_path[group.rows[0].path][1]
        units.append((f"{group.label} (n={len(trackers)})", colour, trackers))
    return units


def _line(metric, label: str, colour: int, trackers: list, time_axis: bool) -> Line | None:
    import numpy as np

    from tui.chart import x_of

    series = []
    for tracker in trackers:
        steps, values = tracker.get(metric.key)
        if len(steps):
            series.append((steps, metric_values(metric, values), tracker))
    if not series:
        return None
    if len(trackers) == 1:
        steps, values, tracker = series[0]
        return Line(label, colour, x_of(tracker, steps, time_axis), values,
                    latest=float(values[-1]))
    from tui.groups import band

    # 1 - |cos| arrives here already as 1 - x: its band is compare's "gap" band
    steps, mean, low, high = band([(s, v) for s, v, _ in series], metric.interval)
    if not len(steps):
        return None
    x = x_of(series[0][2], steps, time_axis) if time_axis else steps.astype(np.float64)
    return Line(label, colour, x, mean, low, high, latest=float(mean[-1]))


def _value_at(line: Line, view: View, panels: list[Panel]) -> float | None:
    import numpy as np

    from tui.chart import visible_range, x_extent

    if view.cursor is None or not len(line.x):
        return line.latest
    extent = x_extent(panels[:1])
    if extent is None:
        return None
    lo, hi = visible_range(extent, view.x_window)
    at = lo + view.cursor * (hi - lo)
    if not line.x[0] <= at <= line.x[-1]:
        return None
    return float(np.interp(at, line.x, line.y))
