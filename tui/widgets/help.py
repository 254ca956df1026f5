"""The ? screen: every key, since everything works without a mouse."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]allo watch[/b]: a live, read-only view of one training run

[b]q[/b]             quit            [b]?[/b]  this help (esc closes)
[b]tab[/b] shift-tab move focus between panels
[b]1 2 3 4 5[/b]     curves: convergence (1 − mean |cos|, log), losses,
              orthogonality, eigenvalue errors, gradient and barrier;
              each metric in its own panel on its own scale
[b]← →[/b]           previous / next chart (curves focused)
[b]l[/b]             log-y: log10 of positive values (≤0 left out)
[b]s[/b]             EMA smoothing (weight 0.9, debiased)
[b]x[/b]             x axis: steps or training time
[b]z[/b]             show the last 50%, 20%, 5% of the run, then all
[b]+ -[/b]  [b]< >[/b]  [b]0[/b]    zoom in / out, pan, whole run again
[b]c[/b]  [b], .[/b]         value cursor on/off, move it
[b][ ][/b]           previous / next page of eigenvectors
              (arrows and PgUp/PgDn when that panel is focused)
[b]↑ ↓ PgUp PgDn[/b] scroll the eigenvalue table (when focused)
[b]t[/b]             curves and table / curves / table (80x24: one or other)
[b]r[/b]             render the latest export to PNG in RUN/plots
[b]o[/b]  [b]esc[/b]        the runs of this folder

Eigenvectors: ground truth (left), latest learned export (right),
sign-aligned and rotated within repeated eigenvalues; both on the
truth's colour scale: blue negative, red positive, grey walls.
STALLED: run.json says running, heartbeat older than 120 s.
"""


RUNS_HELP = """\
[b]allo watch FOLDER[/b]: every run below a folder, live and read-only

[b]↑ ↓[/b] PgUp PgDn  move in the table     [b]q[/b] quit   [b]?[/b] this help
[b]space[/b]         select / unselect a run for the overlay (keeps its colour)
[b]a[/b]             select all shown runs (again: none)
[b]enter[/b]         open the run on the single-run screen (esc comes back)
[b]f[/b]             filter: words (substring), globs (room*), /regex/ or
              re:regex, key=value (config), -word excludes; all must match
[b]o O[/b]  [b]R[/b]        sort by the next / previous column, reverse
[b]g[/b]             group runs of one configuration: mean and 95% band
              (Student t, as allo compare)
[b]h[/b]  [b]i[/b]          hide the run from the overlay, isolate it (again: undo)
[b]v[/b]             table and overlay / table / overlay
[b]1-5[/b]           overlay chart: convergence, losses, orthogonality,
              eigenvalue errors, gradient and barrier
[b]l s x z[/b]       log-y, EMA, step/time axis, last 50/20/5%
[b]+ - < > 0[/b]     zoom, pan, whole run   [b]c , .[/b] value cursor

Status: running, finished, failed, interrupted, stalled (no heartbeat
for 120 s), or what is wrong with the run directory. →0.99: the first
logged step with mean |cos| ≥ 0.99. steps/s over the last 30 s.
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: auto; max-width: 96%; height: auto; max-height: 96%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen #help-text { width: auto; }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "close"),
    ]

    def __init__(self, text: str = HELP) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.text, id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
