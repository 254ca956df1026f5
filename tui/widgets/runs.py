"""The runs screen: every run below a folder in one live table, and their curves.

A thread polls the folder (tui.tracker.FolderWatcher: new runs join, only new bytes
are read) and posts the rows that changed; this screen filters, sorts and shows them,
and overlays the selected runs' curves (tui.widgets.overlay). Enter opens a run on the
single-run screen; escape there comes back here with the selection kept.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from tui.chart import CHARTS, PALETTE
from tui.runinfo import STATUS_STYLE
from tui.widgets.curves import VIEW_BINDINGS
from tui.widgets.notice import Notice
from tui.widgets.overlay import Overlay

if TYPE_CHECKING:
    from tui.runstable import RunRow

LAYOUTS = ("split", "table", "overlay")  # `v` steps through what the screen shows
TABLE_COLUMNS = ("sel", "run", "layout", "objective", "settings", "seed", "status", "step",
                 "steps/s", "|cos|", "strict", "eig err", "→0.99", "ETA")  # fmt: skip
RIGHT = frozenset({"seed", "step", "steps/s", "|cos|", "strict", "eig err", "→0.99", "ETA"})
# When the screen is too narrow for every column, these go first (in this order; the
# run directory's name before the layout, objective and seed that tell runs apart); a
# column whose value is the same for every run goes before any (the head names it), and
# so does "strict" where it equals |cos| on every run (no repeated eigenvalue rotated):
# where they differ, strict is the score to compare with the paper and stays long.
DROP_ORDER = ("steps/s", "run", "→0.99", "ETA", "seed", "strict", "eig err", "layout",
              "objective")
CAPS = {"run": 20, "settings": 24, "status": 22}  # widest a column grows; longer ends in …
# Before strict goes, settings narrows to this (its first key=value still reads).
SETTINGS_SQUEEZED = 14


@dataclass
class RunsChanged(Message):
    """Rows of runs that changed (all rows when the settings columns changed)."""

    rows: list
    everything: bool


class RunsScreen(Screen[None]):
    DEFAULT_CSS = """
    RunsScreen { layout: vertical; }
    RunsScreen #runs-head { height: 1; padding: 0 1; background: $boost; }
    RunsScreen #runs-table { height: 1fr; min-height: 4; }
    RunsScreen #overlay { height: 2fr; min-height: 8; border: round $secondary;
                          padding: 0 1 0 0; text-wrap: nowrap; text-overflow: ellipsis; }
    RunsScreen #filter { display: none; height: 3; }
    RunsScreen #filter.-shown { display: block; }
    RunsScreen.-table #overlay { display: none; }
    RunsScreen.-overlay #runs-table { display: none; }
    RunsScreen.-overlay #overlay { height: 1fr; }
    """
    BINDINGS = [
        Binding("q", "app.quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("space", "select", "select"),
        Binding("a", "select_all", "all"),
        Binding("enter", "open", "open", show=False),
        Binding("f", "filter", "filter"),
        Binding("o", "sort(1)", "sort"),
        Binding("O", "sort(-1)", "sort back", show=False),
        Binding("R", "reverse", "reverse", show=False),
        Binding("g", "group", "group"),
        Binding("h", "hide", "hide"),
        Binding("i", "isolate", "isolate"),
        Binding("v", "layout", "view"),
        Binding("l", "overlay_view('toggle_log')", "log-y"),
        Binding("s", "overlay_view('toggle_smooth')", "EMA"),
        *[Binding(str(i), f"chart({i - 1})", show=False) for i in range(1, 6)],
        *[Binding(b.key, f"overlay_{b.action}", b.description, show=False)
          for b in VIEW_BINDINGS],
    ]

    def __init__(self, folder: Path, poll_seconds: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.folder = Path(folder)
        self.poll_seconds = poll_seconds
        self.watcher_lock = threading.Lock()
        self.wake = threading.Event()
        self.trackers: dict[str, object] = {}
        self.rows: dict[str, RunRow] = {}
        self.selected: list[str] = []  # paths, in selection order
        self.colours: dict[str, int] = {}  # path -> palette index, kept for the session
        self.hidden: set[str] = set()
        self.isolated: str | None = None
        self.grouped = False
        self.filter_text = ""
        self.sort_column = "run"
        self.reverse = False
        self.layout_mode = "split"
        self.order: list[str] = []
        self.columns: list[tuple[str, int]] = []
        self.shown_cells: dict[str, list[Text]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="runs-head")
        yield Input(placeholder="filter: words, globs (room*), /regex/, key=value, -exclude",
                    id="filter")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield Overlay(id="overlay")
        yield Notice(id="notice")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        overlay = self.query_one(Overlay)
        overlay.color = not self.app.no_color
        overlay.update_title()
        self.update_head()
        table.focus()
        self.follow_folder()

    # ------------------------------------------------------------------ worker
    @work(thread=True, exclusive=True, group="folder")
    def follow_folder(self) -> None:
        from tui.runstable import build_row, differing_keys, run_config
        from tui.tracker import FolderWatcher

        worker = get_current_worker()
        watcher = FolderWatcher(self.folder)
        differing: list[str] | None = None
        rebuilt = 0.0
        first = True
        while not worker.is_cancelled:
            try:
                with self.watcher_lock:
                    changed = watcher.poll(info_only=first)
                    trackers = list(watcher.trackers.values())
                now_differing = differing_keys([run_config(t.info) for t in trackers
                                                if t.info is not None])
                everything = now_differing != differing
                differing = now_differing
                targets = trackers if everything else changed
                if not everything and time.monotonic() - rebuilt > 5.0:
                    # a running run's status (stalled) and ETA follow the clock; a
                    # finished one's do not, so a quiet study costs nothing here
                    rebuilt = time.monotonic()
                    ticking = [t for t in trackers if t not in changed and t.info
                               and t.info.status == "running"]
                    targets = changed + ticking
                rows = [(t, build_row(t, differing)) for t in targets]
                if rows or everything:
                    self.app.call_from_thread(self.apply_rows, rows, everything)
            except Exception as err:  # a folder being moved: say so, keep following
                self.app.call_from_thread(self.notify_line, f"{type(err).__name__}: {err}")
            if first:  # the metrics of the runs just listed: at once, not after a pause
                first = False
                continue
            self.wake.wait(self.poll_seconds)
            self.wake.clear()

    def notify_line(self, text: str, severity: str = "warning") -> None:
        self.query_one(Notice).show(text, severity)

    def poll_now(self) -> None:
        self.wake.set()

    # ------------------------------------------------------------------ rows
    def apply_rows(self, rows: list, everything: bool) -> None:
        for tracker, row in rows:
            self.trackers[row.path] = tracker
            self.rows[row.path] = row
        self.refresh_table(changed={row.path for _, row in rows} if not everything else None)
        if any(row.path in self.selected for _, row in rows):
            self.push_overlay()
        self.update_head()

    def visible_paths(self) -> list[str]:
        from tui.runstable import FilterError, compile_filter, sorted_rows

        rows = list(self.rows.values())
        try:
            keep = compile_filter(self.filter_text)
        except FilterError:
            keep = None
        if keep is not None:
            rows = [r for r in rows if keep(r)]
        return [r.path for r in sorted_rows(rows, self.sort_column, self.reverse)]

    def fit_columns(self, order: list[str]) -> list[tuple[str, int]]:
        """(column, width) that fit the screen: constant columns and then DROP_ORDER go."""
        cells = [self.rows[p].cells() for p in order]
        widths = {"sel": 1}
        for name in TABLE_COLUMNS[1:]:
            longest = max([len(name)] + [len(c[name]) for c in cells])
            widths[name] = min(longest, CAPS.get(name, longest))
        names = list(TABLE_COLUMNS)
        for optional in ("settings", "strict"):  # only when some run has one
            if not any(c[optional] not in ("", "—") for c in cells):
                names.remove(optional)
        room = max(20, self.size.width - 2)

        def needed() -> int:
            return sum(widths[n] + 1 for n in names)  # each cell starts with one space

        for name in ("layout", "objective", "seed"):
            if needed() > room and len(cells) > 1 and len({c[name] for c in cells}) == 1:
                names.remove(name)
        if needed() > room and "strict" in names and all(c["strict"] == c["|cos|"]
                                                         for c in cells):
            names.remove("strict")
        for name in DROP_ORDER:
            if name == "strict" and needed() > room:
                widths["settings"] = min(widths["settings"], SETTINGS_SQUEEZED)
            if needed() > room and name in names:
                names.remove(name)
        return [(n, widths[n]) for n in names]

    def refresh_table(self, changed: set[str] | None = None) -> None:
        table = self.query_one(DataTable)
        order = self.visible_paths()
        columns = self.fit_columns(order)
        if order != self.order or columns != self.columns:
            cursor = self.cursor_path()
            table.clear(columns=columns != self.columns)
            if columns != self.columns:
                for name, width in columns:
                    label = Text("" if name == "sel" else " " + name,
                                 justify="right" if name in RIGHT else "left")
                    table.add_column(label, key=name, width=width + 1)  # +1: a leading gap
                self.columns = columns
            self.shown_cells = {}
            for path in order:
                cells = self.shown_cells[path] = self.row_cells(path)
                table.add_row(*cells, key=path)
            self.order = order
            if cursor in order:
                table.move_cursor(row=order.index(cursor))
            return
        for path in order if changed is None else [p for p in order if p in changed]:
            cells = self.row_cells(path)
            before = self.shown_cells.get(path)
            for i, ((name, _), cell) in enumerate(zip(columns, cells, strict=True)):
                if before is None or before[i] != cell:  # only what changed is redrawn
                    table.update_cell(path, name, cell)
            self.shown_cells[path] = cells

    def on_resize(self) -> None:
        if self.rows:
            self.refresh_table()

    def row_cells(self, path: str) -> list[Text]:
        row = self.rows[path]
        cells = row.cells()
        out = []
        for name, width in self.columns:
            if name == "sel":
                out.append(self.mark(path))
                continue
            style = STATUS_STYLE.get(row.status, "bold red") if name == "status" else ""
            if name == "status" and row.problem:
                style = "bold red"
            text = cells[name]
            if len(text) > width and name == "run":  # a run's name ends in what tells
                text = "…" + text[len(text) - width + 1 :]  # it apart (seed, time)
            elif len(text) > width:
                text = text[: width - 1] + "…"
            out.append(Text(" " + text, style=style, justify="right" if name in RIGHT else "left"))
        return out

    def mark(self, path: str) -> Text:
        if path not in self.selected:
            return Text(" ")
        colour = self.colours[path]
        style = f"color({PALETTE[colour % len(PALETTE)]})" if not self.app.no_color else ""
        glyph = "○" if path in self.hidden or (self.isolated and self.isolated != path) else "●"
        return Text(glyph, style=style)

    def cursor_path(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.order or table.cursor_row is None or table.cursor_row >= len(self.order):
            return None
        return self.order[table.cursor_row]

    def update_head(self) -> None:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"{self.folder}  ", "bold")
        head.append(f"{len(self.rows)} runs")
        for status, n in sorted(counts.items()):
            head.append(f"  {n} ")
            head.append(status, STATUS_STYLE.get(status, "bold red"))
        shown = len(self.order)
        if self.filter_text:
            head.append(f"  filter '{self.filter_text}': {shown} shown", "italic")
        arrow = "▼" if self.reverse else "▲"
        head.append(f"  sort {self.sort_column} {arrow}", "dim")
        if self.selected:
            head.append(f"  {len(self.selected)} selected", "dim")
        self.query_one("#runs-head", Static).update(head)

    # ------------------------------------------------------------------ overlay
    def push_overlay(self) -> None:
        entries = []
        for path in self.selected:
            if path not in self.rows:
                continue
            shown = path not in self.hidden and (self.isolated is None or self.isolated == path)
            entries.append((self.trackers[path], self.rows[path], self.colours[path], shown))
        self.query_one(Overlay).set_entries(entries, self.grouped)

    def toggle(self, path: str, on: bool | None = None) -> None:
        selected = path in self.selected
        want = not selected if on is None else on
        if want and not selected:
            self.selected.append(path)
            self.colours.setdefault(path, len(self.colours))
        elif not want and selected:
            self.selected.remove(path)

    def action_select(self) -> None:
        path = self.cursor_path()
        if path is None:
            return
        self.toggle(path)
        self.after_selection()
        table = self.query_one(DataTable)
        table.move_cursor(row=min(table.cursor_row + 1, len(self.order) - 1))

    def action_select_all(self) -> None:
        everyone = all(p in self.selected for p in self.order)
        for path in self.order:
            self.toggle(path, on=not everyone)
        self.after_selection()

    def after_selection(self) -> None:
        self.refresh_table(changed=set(self.order))
        self.push_overlay()
        self.update_head()

    def action_hide(self) -> None:
        path = self.cursor_path()
        if path is None or path not in self.selected:
            self.notify_line("hide: select the run first (space)", "information")
            return
        self.hidden.symmetric_difference_update({path})
        self.after_selection()

    def action_isolate(self) -> None:
        path = self.cursor_path()
        if path is None or path not in self.selected:
            self.notify_line("isolate: select the run first (space)", "information")
            return
        self.isolated = None if self.isolated == path else path
        self.after_selection()

    def action_group(self) -> None:
        self.grouped = not self.grouped
        self.push_overlay()

    def action_chart(self, index: int) -> None:
        self.query_one(Overlay).chart_index = index

    def action_overlay_view(self, name: str) -> None:
        self.query_one(Overlay).action_view(name)

    def action_overlay_zoom(self, factor: float) -> None:
        self.query_one(Overlay).action_zoom(factor)

    def action_overlay_pan(self, direction: int) -> None:
        self.query_one(Overlay).action_pan(direction)

    def action_overlay_cursor(self, direction: int) -> None:
        self.query_one(Overlay).action_cursor(direction)

    def action_layout(self) -> None:
        self.layout_mode = LAYOUTS[(LAYOUTS.index(self.layout_mode) + 1) % len(LAYOUTS)]
        for name in LAYOUTS[1:]:
            self.set_class(self.layout_mode == name, f"-{name}")

    # ------------------------------------------------------------------ sort, filter
    def action_sort(self, direction: int) -> None:
        from tui.runstable import COLUMNS

        index = COLUMNS.index(self.sort_column) if self.sort_column in COLUMNS else 0
        self.sort_column = COLUMNS[(index + direction) % len(COLUMNS)]
        self.refresh_table()
        self.update_head()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.refresh_table()
        self.update_head()

    @on(DataTable.HeaderSelected)
    def header_sort(self, event: DataTable.HeaderSelected) -> None:
        name = str(event.column_key.value)
        if name == "sel":
            return
        self.reverse = not self.reverse if name == self.sort_column else False
        self.sort_column = name
        self.refresh_table()
        self.update_head()

    def action_filter(self) -> None:
        box = self.query_one(Input)
        box.value = self.filter_text
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted)
    def filter_submitted(self, event: Input.Submitted) -> None:
        from tui.runstable import FilterError, compile_filter

        try:
            compile_filter(event.value)
        except FilterError as err:
            self.notify_line(f"filter: {err}", "error")
            return
        self.filter_text = event.value.strip()
        event.input.remove_class("-shown")
        self.refresh_table()
        self.update_head()
        self.query_one(DataTable).focus()

    def key_escape(self) -> None:
        box = self.query_one(Input)
        if box.has_class("-shown"):
            box.remove_class("-shown")
            self.query_one(DataTable).focus()

    # ------------------------------------------------------------------ open, help
    def action_open(self) -> None:
        path = self.cursor_path()
        if path is not None:
            self.app.open_from_table(Path(path))  # type: ignore[attr-defined]

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_help(self) -> None:
        from tui.widgets.help import RUNS_HELP, HelpScreen

        self.app.push_screen(HelpScreen(RUNS_HELP))


__all__ = ["CHARTS", "RunsChanged", "RunsScreen"]
