"""Switch between the runs of a folder (newest first)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from allo import rundir


def describe(run: Path) -> str:
    """One line per run: name, status, step of total."""
    try:
        raw = rundir.read_json(run / rundir.RUN_JSON)
        info = rundir.as_info(raw if isinstance(raw, dict) else {})
        status = rundir.effective_status(info)
        step = "?" if info.step is None else info.step
        total = "?" if info.total_steps is None else info.total_steps
        return f"{run.name}  {status}  step {step}/{total}"
    except rundir.RunDirError:
        return f"{run.name}  (unreadable run.json)"


class RunPicker(ModalScreen[Path | None]):
    DEFAULT_CSS = """
    RunPicker { align: center middle; }
    RunPicker > Vertical {
        width: 90%; height: auto; max-height: 90%;
        border: round $accent; background: $surface;
    }
    RunPicker OptionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape,q", "cancel", "close")]

    def __init__(self, runs: list[Path], current: Path) -> None:
        super().__init__()
        self.runs = runs
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Open run (enter), esc to go back", classes="title")
            yield OptionList(
                *[
                    Option(("▶ " if run == self.current else "  ") + describe(run), id=str(i))
                    for i, run in enumerate(self.runs)
                ]
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.runs[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(None)
