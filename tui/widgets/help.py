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
[b]1 2 3 4 5[/b]     curves: |cos|, losses, orthogonality error,
              eigenvalue errors, gradient norm and barrier
[b]← →[/b]           previous / next chart (curves focused)
[b]l[/b]             log-y: log10 of positive values (≤0 left out)
[b]s[/b]             EMA smoothing (weight 0.9, debiased)
[b][ ][/b]           previous / next page of eigenvectors
              (arrows and PgUp/PgDn when that panel is focused)
[b]↑ ↓ PgUp PgDn[/b] scroll the eigenvalue table (when focused)
[b]t[/b]             hide / show the eigenvalue table (taller curves)
[b]r[/b]             render the latest export to PNG in RUN/plots
[b]o[/b]             open another run from the same folder

Eigenvectors: ground truth (left), latest learned export (right),
sign-aligned and rotated within repeated eigenvalues; both on the
truth's colour scale: blue negative, red positive, grey walls.
STALLED: run.json says running, heartbeat older than 120 s.
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

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(HELP, id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
