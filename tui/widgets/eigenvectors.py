"""Eigenvectors panel: ground truth beside the latest learned export, paged.

Learned vectors arrive already aligned (sign, and rotation inside repeated
eigenvalues); both pictures of a pair share the ground truth's colour scale so
the eye compares like with like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from tui.chart import format_number
from tui.widgets.eigenvalues import cos_style

if TYPE_CHECKING:  # numpy (and tui.gridpaint, which uses it) load after the first frame
    import numpy as np

    from allo.rundir import EnvInfo

GAP = 2  # columns between the two pictures of a pair, and between pairs


def _hstack(blocks: list[Text], widths: list[int], gap: int) -> Text:
    """Place multi-line Texts side by side, padding each to its width."""
    split = [block.split("\n", allow_blank=True) for block in blocks]
    height = max(len(lines) for lines in split)
    out = Text(no_wrap=True, overflow="crop")
    for row in range(height):
        if row:
            out.append("\n")
        for i, lines in enumerate(split):
            line = lines[row].copy() if row < len(lines) else Text("")
            line.truncate(widths[i], pad=True)
            out.append_text(line)
            if i < len(split) - 1:
                out.append(" " * gap)
    return out


class Eigenvectors(Widget, can_focus=True):
    BINDINGS = [
        Binding("left,up,pageup", "page(-1)", "prev", show=False),
        Binding("right,down,pagedown", "page(1)", "next", show=False),
    ]

    first: reactive[int] = reactive(0)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.env: EnvInfo | None = None
        self.values: np.ndarray | None = None
        self.truth: np.ndarray | None = None
        self.aligned: np.ndarray | None = None
        self.cosines: np.ndarray | None = None
        self.export_step: int | str | None = None
        self.run_step: int | None = None  # the run's current step, to spot stale exports
        self.color = True
        self.forced_form: str | None = None  # tests; else the terminal's own
        self.per_page = 1

    @property
    def form(self) -> str:
        """The shared colour map's form this terminal draws (renderers.colors): a
        256-colour terminal gets the 256-colour ramp, not a downgrade of truecolor."""
        from renderers.colors import form_for  # numpy: loaded by the time grids draw

        if self.forced_form is not None:
            return self.forced_form
        return form_for(self.app.console.color_system, not self.color)

    # ------------------------------------------------------------------ data
    def set_truth(self, env: EnvInfo, values: np.ndarray, vectors: np.ndarray) -> None:
        self.env, self.values, self.truth = env, values, vectors
        self.refresh()
        self.update_title()

    def set_export(self, step: int | str, aligned: np.ndarray, cosines: np.ndarray) -> None:
        self.export_step, self.aligned, self.cosines = step, aligned, cosines
        self.refresh()
        self.update_title()

    def pair_width(self) -> int:
        """Columns of one truth|learned pair (a guess until the layout is known)."""
        if self.env is None:
            return 28
        from tui.gridpaint import painted_size

        cols, _ = painted_size(self.env.height, self.env.width, self.color)
        return max(2 * cols + GAP, 20)

    @property
    def count(self) -> int:
        return 0 if self.truth is None else self.truth.shape[1]

    def action_page(self, direction: int) -> None:
        if not self.count:
            return
        step = max(1, self.per_page)
        self.first = max(0, min(self.count - 1, self.first + direction * step))
        self.first -= self.first % step

    def watch_first(self) -> None:
        self.update_title()

    def update_title(self) -> None:
        if not self.count:
            self.border_title = "Eigenvectors"
            return
        last = min(self.count, self.first + self.per_page)
        shown = f"#{self.first + 1}" if last == self.first + 1 else f"#{self.first + 1}–{last}"
        self.border_title = f"Eigenvectors {shown} of {self.count}"
        if self.export_step is None:
            where = "no export yet"
        elif self.export_step == "final":
            where = "final export"
        else:
            where = f"export step {self.export_step:,}"
            if (self.run_step is not None and isinstance(self.export_step, int)
                    and self.export_step > self.run_step):
                # Left over from the attempt before a resume; replaced when reached again.
                where = f"export {self.export_step:,} (pre-resume)"
        self.border_subtitle = where

    # ------------------------------------------------------------------ drawing
    def item(self, i: int, stacked: bool, shrink: int) -> tuple[Text, int]:
        """One pair (truth | learned) with its captions, and its width, arranged as
        `arrangement` says."""
        assert self.env is not None and self.truth is not None and self.values is not None
        import numpy as np

        from tui.gridpaint import paint, painted_size, shrunk

        env = self.env
        finite = np.abs(self.truth[:, i])
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        cols, _ = painted_size(env.height, env.width, self.color, shrink)
        form = self.form
        truth_pic = paint(shrunk(env.grid(self.truth[:, i]), shrink), scale, form)
        if self.aligned is not None and i < self.aligned.shape[1]:
            learned_pic = paint(shrunk(env.grid(self.aligned[:, i]), shrink), scale, form)
            cos = float(self.cosines[i]) if self.cosines is not None else None
        else:
            learned_pic = Text("(waiting)", style="dim")
            cos = None
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(f"#{i + 1}", "bold")
        header.append(f" λ {format_number(float(self.values[i]))}")
        if shrink > 1:  # each character shows shrink x shrink cells, averaged
            header.append(f"  1/{shrink} size", "dim")
        score = Text(no_wrap=True)
        score.append("|cos| ")
        score.append("—" if cos is None else f"{cos:.3f}", cos_style(cos))
        if stacked:
            # Too narrow for a pair side by side (a big layout): truth above learned.
            parts = [header, Text("truth", "dim"), truth_pic, Text("learned", "dim")]
            block = Text("\n", no_wrap=True).join([*parts, learned_pic, score])
            return block, self.item_size(stacked, shrink)[0]
        pictures = _hstack([truth_pic, learned_pic], [cols, cols], GAP)
        captions = _hstack([Text("truth", "dim"), Text("learned", "dim")], [cols, cols], GAP)
        footer = Text(" " * (cols + GAP), no_wrap=True).append_text(score)
        block = Text("\n", no_wrap=True).join([header, captions, pictures, footer])
        return block, self.item_size(stacked, shrink)[0]

    def stacked(self) -> bool:
        """Whether a pair must be drawn one picture above the other."""
        return self.arrangement()[0]

    def arrangement(self) -> tuple[bool, int]:
        """Stacked or not, and the shrink (cells per character each way) that fit a pair
        in the panel: full size, side by side when the panel is wide enough; a layout
        too big for the panel either way (32x32 at 80x24) is drawn 2, 3, ... times
        smaller, side by side first, rather than cut off."""
        width, height = self.content_size
        stacked = width < self.pair_width()
        if self.env is None or not width or not height or self.fits(stacked, 1):
            return stacked, 1
        for shrink in range(2, max(self.env.height, self.env.width) + 1):
            for stacked_small in (False, True):
                if self.fits(stacked_small, shrink):
                    return stacked_small, shrink
        return stacked, 1

    def fits(self, stacked: bool, shrink: int) -> bool:
        item_w, item_h = self.item_size(stacked, shrink)
        return item_w <= self.content_size.width and item_h + 1 <= self.content_size.height

    def item_size(self, stacked: bool, shrink: int = 1) -> tuple[int, int]:
        """Columns and rows of one pair, side by side or stacked, captions included."""
        assert self.env is not None
        from tui.gridpaint import painted_size

        cols, rows = painted_size(self.env.height, self.env.width, self.color, shrink)
        return (max(cols, 12), 2 * rows + 4) if stacked else (max(2 * cols + GAP, 12), rows + 3)

    def stacked_height(self) -> int:
        """Rows one stacked pair needs in the panel: the pair, a spare row, the legend."""
        return 0 if self.env is None else self.item_size(stacked=True)[1] + 2

    def layout_pages(self, stacked: bool, shrink: int) -> tuple[int, int]:
        """How many pairs so arranged fit across and down the panel."""
        item_w, item_h = self.item_size(stacked, shrink)
        width, height = self.content_size
        across = max(1, (width + GAP) // (item_w + GAP))
        down = max(1, (height - 1) // (item_h + 1))
        return across, down

    def render(self) -> Text:
        if self.env is None or self.truth is None:
            return Text("waiting for ground truth…", style="dim")
        from tui.gridpaint import colorbar, wall_swatch

        arrangement = self.arrangement()
        across, down = self.layout_pages(*arrangement)
        per_page = max(1, min(across * down, self.count))
        if per_page != self.per_page:
            self.per_page = per_page
            self.first -= self.first % per_page
            self.call_after_refresh(self.update_title)
        indices = list(range(self.first, min(self.count, self.first + per_page)))
        rows: list[Text] = []
        for start in range(0, len(indices), across):
            items = [self.item(i, *arrangement) for i in indices[start : start + across]]
            rows.append(_hstack([t for t, _ in items], [w for _, w in items], GAP + 1))
        body = Text("\n\n", no_wrap=True).join(rows)
        bar_width = min(24, max(8, self.content_size.width - 12))
        form = self.form
        legend = Text.assemble(colorbar(bar_width, form), ("  walls ", "dim"))
        legend.append_text(wall_swatch(form))
        return Text("\n", no_wrap=True).join([body, legend])
