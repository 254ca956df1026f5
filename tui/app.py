"""`allo watch`: the Textual app that follows one run directory.

A thread worker polls the run (tui.watcher) about twice a second and posts
messages; the UI thread only stores bounded series and repaints the panels that
changed. Nothing here writes into the run directory.

First paint: the overview is drawn from run.json alone (read by the command, or
here, without numpy). numpy, the watcher and plotext load once that frame is out;
no module imported at startup may import numpy (tests/test_tui_command.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer
from textual.worker import get_current_worker

from tui.messages import (
    ExportLanded,
    GroundTruthLoaded,
    InfoChanged,
    MetricsArrived,
    WatchProblem,
)
from tui.widgets.curves import Curves
from tui.widgets.eigenvalues import Eigenvalues
from tui.widgets.eigenvectors import Eigenvectors
from tui.widgets.notice import Notice
from tui.widgets.overview import Overview

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from allo.rundir import RunInfo
    from tui.series import MetricStore

POLL_SECONDS = 0.5
MIN_CURVES_WIDTH = 30  # columns left for curves and table beside a wide eigenvector panel
SHORT_SCREEN_ROWS = 28  # below this the overview drops its frame (2 rows instead of 4)
# What the left column shows, in the order `t` steps through them.
LEFT_MODES = ("both", "curves", "table")
LEFT_MODES_SHORT = ("curves", "table")


def window_tail(times, steps) -> tuple[list[float], list[int]]:
    """The rows of a batch that the steps/s window can still use: those of the last
    window of training time and one before it (a long run's first read has many)."""
    import numpy as np

    from allo.rate import RATE_WINDOW_SECONDS

    finite = np.isfinite(times)
    times, steps = times[finite], steps[finite]
    if not len(times):
        return [], []
    start = max(0, int(np.searchsorted(times, times[-1] - RATE_WINDOW_SECONDS)) - 1)
    return times[start:].tolist(), steps[start:].tolist()


class WatchApp(App[None]):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "allo watch"
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("l", "toggle_log", "log-y"),
        Binding("s", "toggle_smooth", "EMA"),
        Binding("left_square_bracket", "page(-1)", "prev φ", key_display="["),
        Binding("right_square_bracket", "page(1)", "next φ", key_display="]"),
        Binding("t", "toggle_table", "table"),
        Binding("r", "render", "PNG"),
        Binding("o", "open_run", "runs"),
        Binding("escape", "back", "runs", show=False),
        *[Binding(str(i), f"chart({i - 1})", show=False) for i in range(1, 6)],
    ]

    def __init__(
        self,
        run: Path,
        runs: list[Path] | None = None,
        *,
        poll_seconds: float = POLL_SECONDS,
        watch: bool = True,
        info: RunInfo | None = None,
        folder: Path | None = None,
    ) -> None:
        """`info`: run.json as the command already read it, for the first frame.
        `folder`: open on the runs table of this folder (tui.widgets.runs)."""
        super().__init__()
        self.folder = Path(folder) if folder is not None else None
        self.opened = folder is None  # a run is shown (the folder mode opens none first)
        self.run_path = Path(run)
        self.runs = runs or [self.run_path]
        self.poll_seconds = poll_seconds
        self.watching = watch
        self.first_info = info
        self._store: MetricStore | None = None
        self.wake = threading.Event()  # lets tests and run switches poll at once
        self.last_problem: str | None = None
        self.left_mode = ""  # set on the first resize (LEFT_MODES)

    @property
    def store(self) -> MetricStore:
        """Bounded metric history; created on first use, as it needs numpy."""
        if self._store is None:
            from tui.series import MetricStore

            self._store = MetricStore()
        return self._store

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Overview(id="overview")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Curves(id="curves")
                yield Eigenvalues(id="eigenvalues")
            yield Eigenvectors(id="eigenvectors")
        yield Notice(id="notice")
        yield Footer()

    def on_mount(self) -> None:
        color = not self.no_color
        self.query_one(Curves).color = color
        self.query_one(Eigenvectors).color = color
        self.query_one(Eigenvalues).border_title = "Eigenvalues (L = I − T)"
        self.set_run_title()
        self.show_first_info()
        self.query_one(Curves).focus()
        if self.folder is not None:
            from tui.widgets.runs import RunsScreen

            self.install_screen(RunsScreen(self.folder, self.poll_seconds), name="runs")
            self.push_screen("runs")
        # The watcher (numpy's imports) and plotext, both slow to import, start once the
        # first frame is out, so they do not compete with it for the GIL.
        self.call_after_refresh(self.after_first_frame)

    def after_first_frame(self) -> None:
        if self.watching and self.opened:
            self.start_watching()
        self.set_timer(0.3, self.load_plotter)

    def show_first_info(self) -> None:
        """Status and config from run.json before anything else loads."""
        info = self.first_info
        if info is None:
            from allo.rundir import RunDirError, RunReader

            try:
                info = RunReader(self.run_path).info()
            except RunDirError:
                return  # the watcher reports it
        self.query_one(Overview).set_info(info)

    def set_run_title(self) -> None:
        overview = self.query_one(Overview)
        overview.border_title = "allo watch"
        overview.run_name = self.run_path.name
        overview.refresh_status()

    @property
    def short(self) -> bool:
        return self.size.height < SHORT_SCREEN_ROWS

    def on_resize(self) -> None:
        """Short screens drop the overview's frame; the eigenvector column fits its grids."""
        self.screen.set_class(self.short, "-short")
        order = LEFT_MODES_SHORT if self.short else LEFT_MODES
        if self.left_mode not in order:
            self.set_left_mode(order[0])
        self.fit_eigenvectors()

    def fit_eigenvectors(self) -> None:
        """Wide enough for one truth|learned pair, or two on a wide screen."""
        panel = self.query_one(Eigenvectors)
        pair = panel.pair_width()
        frame = 4  # border and padding
        width = pair + frame
        screen_width = self.size.width
        if screen_width >= 140 and 2 * pair + 3 + frame <= screen_width * 0.45:
            width = 2 * pair + 3 + frame
        if width > screen_width // 2:
            if (self.stack_too_tall(panel.stacked_height())
                    and screen_width - width >= MIN_CURVES_WIDTH):
                # Stacked, the learned picture would be cut off at the bottom (rooms16 at
                # 80x24): side by side, with narrower curves, shows both whole.
                panel.styles.width = width
                return
            # A big layout: pictures stack (truth above learned); keep room for the curves.
            single = pair // 2 + frame
            width = max(screen_width // 2, min(single, screen_width - 34))
        panel.styles.width = max(24, width)

    def stack_too_tall(self, needed: int) -> bool:
        """Whether `needed` rows exceed the eigenvector panel's inside on this screen:
        the screen less the overview (2 rows on a short screen, 4 with its frame), the
        footer and the panel's own frame."""
        overview = 2 if self.size.height < SHORT_SCREEN_ROWS else 4
        return self.size.height - overview - 1 - 2 < needed

    # ------------------------------------------------------------------ workers
    @work(thread=True, exclusive=True, group="plotter")
    def load_plotter(self) -> None:
        """Import plotext after the first paint (its import is a visible share of the start;
        BENCHMARKS.md, "allo watch"), then draw the curves."""
        import plotext  # noqa: F401

        self.call_from_thread(self._plotter_ready)

    def _plotter_ready(self) -> None:
        curves = self.query_one(Curves)
        curves.plot_ready = True
        curves.refresh()

    def start_watching(self) -> None:
        self.watch_run(self.run_path)

    @work(thread=True, exclusive=True, group="watch")
    def watch_run(self, path: Path) -> None:
        from tui.watcher import RunWatcher

        worker = get_current_worker()
        try:
            watcher = RunWatcher(path)
        except Exception as err:  # the folder vanished since the command checked it
            self.post_message(WatchProblem(str(err), run=path))
            return
        while not worker.is_cancelled:
            try:
                for batch in watcher.poll_batches():
                    for message in batch:
                        self.post_message(message)
            except Exception as err:  # keep watching: a half-moved file fixes itself
                self.post_message(WatchProblem(f"{type(err).__name__}: {err}", run=path))
            self.wake.wait(self.poll_seconds)
            self.wake.clear()

    def poll_now(self) -> None:
        self.wake.set()

    # ------------------------------------------------------------------ messages
    def _current(self, message) -> bool:
        return message.run is None or Path(message.run) == self.run_path

    @on(InfoChanged)
    def on_info(self, message: InfoChanged) -> None:
        if self._current(message):
            self.query_one(Overview).set_info(message.info)
            self.note_run_step()

    def note_run_step(self) -> None:
        state = self.query_one(Overview).state
        panel = self.query_one(Eigenvectors)
        step = state.step if state is not None else None
        if step != panel.run_step:
            panel.run_step = step
            panel.update_title()

    @on(MetricsArrived)
    def on_metrics(self, message: MetricsArrived) -> None:
        if not self._current(message) or not self.query(Overview):  # closing down
            return
        overview = self.query_one(Overview)
        if message.reset:
            self.store.clear()
            overview.rates.clear()
            self.notify("metrics.jsonl was rewritten (resume); reloading", timeout=4)
        self.store.add_columns(message.steps, message.columns)
        times = message.columns.get("time")
        if times is not None:
            overview.add_times(*window_tail(times, message.steps))
        if message.latest is not None:
            self.store.latest = message.latest
        self.query_one(Curves).data_changed()
        self.query_one(Overview).set_latest(self.store.latest)
        self.query_one(Eigenvalues).set_latest(self.store.latest)
        self.note_run_step()

    @on(GroundTruthLoaded)
    def on_truth(self, message: GroundTruthLoaded) -> None:
        if self._current(message):
            panel = self.query_one(Eigenvectors)
            panel.set_truth(message.env, message.eigenvalues, message.eigenvectors)
            self.fit_eigenvectors()
            self.query_one(Eigenvalues).set_truth(message.eigenvalues)

    @on(ExportLanded)
    def on_export(self, message: ExportLanded) -> None:
        if self._current(message):
            self.query_one(Eigenvectors).set_export(message.step, message.aligned, message.cosines)

    @on(WatchProblem)
    def on_problem(self, message: WatchProblem) -> None:
        if self._current(message):
            self.last_problem = message.text
            self.notify(message.text, severity="warning", timeout=8)

    def notify(self, message: str, *, title: str = "",
               severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """On the notice line above the footer, never over a panel (tui.widgets.notice)."""
        del title, markup
        notices = self.screen.query(Notice) if self.screen.is_current else None
        target = notices.first() if notices else None
        if target is None:
            try:
                target = self.query_one(Notice)
            except Exception:  # no main screen yet
                return super().notify(message, severity=severity, timeout=timeout)
        target.show(message, severity, 6.0 if timeout is None else timeout)

    @property
    def notices(self) -> list:
        return self.query_one(Notice).history

    # ------------------------------------------------------------------ actions
    def action_help(self) -> None:
        from tui.widgets.help import HelpScreen  # modals load on demand, not at startup

        self.push_screen(HelpScreen())

    def action_toggle_log(self) -> None:
        curves = self.query_one(Curves)
        curves.log_y = not curves.log_y

    def action_toggle_smooth(self) -> None:
        curves = self.query_one(Curves)
        curves.smooth = not curves.smooth

    def action_toggle_table(self) -> None:
        """The left column shows curves and table, curves only, or the table only (all
        its rows and columns); a short screen (80x24) never splits it in two."""
        order = LEFT_MODES_SHORT if self.short else LEFT_MODES
        current = self.left_mode if self.left_mode in order else order[0]
        self.set_left_mode(order[(order.index(current) + 1) % len(order)])

    def set_left_mode(self, mode: str) -> None:
        self.left_mode = mode
        left = self.query_one("#left")
        for name in LEFT_MODES:
            left.set_class(name == mode, f"-{name}")
        table, curves = self.query_one(Eigenvalues), self.query_one(Curves)
        table.display = mode != "curves"
        curves.display = mode != "table"
        if not table.display and table.has_focus:
            curves.focus()
        if not curves.display and curves.has_focus:
            table.focus()

    def action_chart(self, index: int) -> None:
        self.query_one(Curves).chart_index = index

    def action_page(self, direction: int) -> None:
        self.query_one(Eigenvectors).action_page(direction)

    def action_render(self) -> None:
        self.notify(f"rendering PNG of {self.run_path.name}…", timeout=3)
        self.render_png(self.run_path)

    @work(thread=True, exclusive=True, group="render")
    def render_png(self, run: Path) -> None:
        from tui.render import run_render

        result = run_render(run)
        self.call_from_thread(
            self.notify, result.text, severity="information" if result.ok else "error", timeout=8
        )

    def action_back(self) -> None:  # type: ignore[override]  # App's is a coroutine
        """Escape: back to the runs table (folder mode), selection and filter kept."""
        if self.folder is not None:
            self.push_screen("runs")

    def open_from_table(self, run: Path) -> None:
        self.pop_screen()
        first = not self.opened
        self.opened = True
        if first and run == self.run_path:
            self.first_info = None
            self.show_first_info()
            self.start_watching()
            self.poll_now()
            return
        self.switch_run(run, force=first)

    def action_open_run(self) -> None:
        if self.folder is not None:
            self.action_back()
            return
        if len(self.runs) < 2:
            self.notify("no other runs in this folder", timeout=3)
            return
        from tui.widgets.runpicker import RunPicker

        self.push_screen(RunPicker(self.runs, self.run_path), self.switch_run)

    def switch_run(self, run: Path | None, force: bool = False) -> None:
        if run is None or (run == self.run_path and not force):
            return
        self.run_path = Path(run)
        self.first_info = None
        self.store.clear()
        self.set_run_title()
        # Fresh panels: nothing of the previous run may linger.
        self.query_one(Overview).info = None
        self.query_one(Overview).reset()
        eigenvectors = self.query_one(Eigenvectors)
        eigenvectors.env = eigenvectors.truth = eigenvectors.aligned = None
        eigenvectors.export_step = None
        eigenvectors.first = 0
        eigenvectors.refresh()
        table = self.query_one(Eigenvalues)
        table.truth, table.latest = None, None
        table.refresh_rows()
        self.query_one(Curves).data_changed()
        self.start_watching()
        self.poll_now()


def make_app(run: Path, runs: list[Path] | None = None, **kwargs) -> WatchApp:
    """The one factory for the command and the tests."""
    return WatchApp(run, runs, **kwargs)
