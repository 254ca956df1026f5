"""The ? screen: every key, since everything works without a mouse."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]allo watch[/b]: a live view of one training run (read-only)

[b]q[/b]              quit
[b]?[/b]              this help (esc closes)
[b]tab / shift-tab[/b] move focus between panels
[b]1 … 5[/b]          curves: |cos|, losses, orthogonality, eigenvalue errors, grad/barrier
[b]← →[/b]            (curves focused) previous / next chart
[b]l[/b]              log-y on/off (log10 of positive values; ≤0 values are left out)
[b]s[/b]              EMA smoothing on/off (weight 0.9, debiased)
[b][ ][/b]            previous / next page of eigenvectors (also arrows, PgUp/PgDn when focused)
[b]↑ ↓ PgUp PgDn[/b]  (eigenvalue table focused) scroll
[b]r[/b]              render the latest export to PNG (RUN/plots) in the background
[b]o[/b]              open another run of the same folder

Eigenvectors: ground truth (left) beside the latest learned export (right), learned
vectors sign-aligned and, where eigenvalues repeat, rotated onto the truth; both on
the truth's colour scale (blue negative, red positive, grey walls).
Status "stalled": run.json says running but its heartbeat is over 120 s old.
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: auto; max-width: 96%; height: auto; max-height: 96%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(HELP, id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
