"""Eigenvalues panel: each estimate beside its ground truth, with errors and |cos|.

Two estimates: the duals' (-beta_ii / 2, the paper's; its error columns) and the
Rayleigh quotient of the learned vector under the run's own data ("vec. λ", docs/math.md
section 9), which is far less noisy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import DataTable

from tui.chart import format_number, format_percent

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("#", "truth λ", "est. λ", "|error|", "rel", "|cos|", "vec. λ")
# Fixed widths: cells are updated in place, which does not widen a column, and the
# first row (lambda = 0) has no relative error to size "rel" by. No cell padding: one
# column of each width is the gap, so all seven fit 46 columns (the panel at 80x24).
WIDTHS = {"#": 2, "truth λ": 8, "est. λ": 8, "|error|": 8, "rel": 6, "|cos|": 6, "vec. λ": 8}


def error_style(relative: float | None) -> str:
    if relative is None or not math.isfinite(relative):
        return ""
    if relative < 0.05:
        return "green"
    if relative < 0.25:
        return "yellow"
    return "red"


def cos_style(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return "green" if value >= 0.95 else "yellow" if value >= 0.8 else "red"


class Eigenvalues(DataTable):
    """Rows are updated in place so the cursor and scroll survive updates."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kwargs)
        self.truth: np.ndarray | None = None
        self.latest: Mapping[str, Any] | None = None

    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        self.show_cursor = False  # a highlighted row would read as "selected"

    def on_mount(self) -> None:
        self.show_cursor = self.has_focus
        for name in COLUMNS:
            label = Text(name, justify="left" if name == "#" else "right")
            self.add_column(label, key=name, width=WIDTHS[name])

    def set_truth(self, values: np.ndarray) -> None:
        import numpy as np  # loaded by the watcher by now; kept off the first-paint path

        self.truth = np.asarray(values, dtype=np.float64)
        self.refresh_rows()

    def set_latest(self, latest: Mapping[str, Any] | None) -> None:
        self.latest = latest
        self.refresh_rows()

    def row_cells(self, i: int) -> list[Text]:
        truth = float(self.truth[i]) if self.truth is not None and i < len(self.truth) else None
        latest = self.latest or {}

        def pick(key: str) -> float | None:
            values = latest.get(key)
            if isinstance(values, list) and i < len(values):
                value = values[i]
                return float(value) if isinstance(value, (int, float)) else None
            return None

        estimate = pick("eig/estimate")
        abs_err = pick("eig/abs_error")
        if abs_err is None and estimate is not None and truth is not None:
            abs_err = abs(estimate - truth)
        rel = abs_err / abs(truth) if abs_err is not None and truth and abs(truth) > 1e-12 else None
        cos = pick("cos/per_vector")
        rayleigh = pick("eig/rayleigh")
        return [
            Text(str(i + 1), style="dim"),
            Text(format_number(truth), justify="right"),
            Text(format_number(estimate), justify="right"),
            Text(format_number(abs_err), justify="right", style=error_style(rel)),
            Text(format_percent(rel), justify="right", style=error_style(rel)),
            Text(f"{cos:.3f}" if cos is not None else "—", justify="right", style=cos_style(cos)),
            Text(format_number(rayleigh), justify="right"),
        ]

    def refresh_rows(self) -> None:
        count = 0
        if self.truth is not None:
            count = len(self.truth)
        if self.latest and isinstance(self.latest.get("eig/estimate"), list):
            count = max(count, len(self.latest["eig/estimate"]))
        if self.row_count != count:
            self.clear()
            for i in range(count):
                self.add_row(*self.row_cells(i), key=str(i))
            return
        for i in range(count):
            for name, cell in zip(COLUMNS, self.row_cells(i), strict=True):
                self.update_cell(str(i), name, cell)
