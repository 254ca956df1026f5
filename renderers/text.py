"""Text renderer: figures for a terminal or a .txt file, no matplotlib.

Eigenvector grids are coloured half-block cells: each `▀` carries two grid rows, the
upper as foreground colour and the lower as background, on the same diverging scale as
the PNGs. Without colour (NO_COLOR) each cell prints as a sign and a level 0-9. Curves
go through plotext, imported only when a curve figure is drawn.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from renderers import axes, colors
from renderers.base import GridCurveRenderer
from renderers.figures import CurveFigure, GridFigure, Line
from renderers.shrink import factor_to_fit, shrunk

RESET = "\x1b[0m"
HALF = "▀"
PANEL_GAP = 3
TEXT_Y_TICKS = 5  # at most this many y labels: plotext gives a panel few rows


def _fg(rgb) -> str:
    return f"\x1b[38;2;{int(rgb[0])};{int(rgb[1])};{int(rgb[2])}m"


def _bg(rgb) -> str:
    return f"\x1b[48;2;{int(rgb[0])};{int(rgb[1])};{int(rgb[2])}m"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class TextRenderer(GridCurveRenderer):
    name = "text"
    extension = ".txt"
    options_used = ("color", "width")  # the RenderOptions fields it reads (and CONTENT)

    # ------------------------------------------------------------------------ grids
    def _cells_colour(self, figure: GridFigure, panel, scale: int) -> list[str]:
        """Rows of half-block characters; `scale` characters per cell across."""
        grid = np.where(figure.walls, np.nan, panel.values)
        rgb = colors.diverging(grid, panel.vmax or figure.vmax)
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        lines = []
        for top in range(0, rgb.shape[0], 2):
            parts = []
            for col in range(rgb.shape[1]):
                upper = rgb[top, col]
                if top + 1 < rgb.shape[0]:
                    parts.append(_fg(upper) + _bg(rgb[top + 1, col]) + HALF)
                else:
                    parts.append(RESET + _fg(upper) + HALF)
            lines.append("".join(parts) + RESET)
        return lines

    @staticmethod
    def _cells_plain(figure: GridFigure, panel) -> list[str]:
        """Two characters per cell: '##' wall, ' .' near zero, '+7' / '-3' otherwise."""
        values, vmax = panel.values, panel.vmax or figure.vmax
        lines = []
        for r in range(values.shape[0]):
            parts = []
            for c in range(values.shape[1]):
                value = values[r, c]
                if figure.walls[r, c] or not np.isfinite(value):
                    parts.append("##")
                    continue
                level = int(round(min(1.0, abs(value) / vmax) * 9))
                parts.append(" ." if level == 0 else f"{'+' if value > 0 else '-'}{level}")
            lines.append("".join(parts))
        return lines

    def grid(self, figure: GridFigure) -> bytes:
        colour = self.options.color
        figure = fitted(figure, factor_to_fit(figure.walls.shape[1], 1 if colour else 2,
                                              max(self.options.width, 12)))
        height, width = figure.walls.shape
        scale = 2 if colour and width <= 24 else 1
        cell_w = scale if colour else 2
        panel_w = max(width * cell_w, 12)
        per_row = max(1, (self.options.width + PANEL_GAP) // (panel_w + PANEL_GAP))
        per_row = min(per_row, figure.ncols) if figure.row_labels else per_row
        out = [figure.title, figure.subtitle, ""]
        blocks: list[Any] = []
        for panel in figure.panels:
            if panel.blank:
                blocks.append(([""], []))
                continue
            body = (
                self._cells_colour(figure, panel, scale)
                if colour
                else self._cells_plain(figure, panel)
            )
            titles = [_fit(t, panel_w) for t in panel.title.split("\n")]
            blocks.append((titles, body))
        title_lines = max(len(t) for t, _ in blocks)
        for start in range(0, len(blocks), per_row):
            chunk = blocks[start : start + per_row]
            for i in range(title_lines):
                out.append(
                    (" " * PANEL_GAP)
                    .join((t[i] if i < len(t) else "").ljust(panel_w) for t, _ in chunk)
                    .rstrip()
                )
            rows = max(len(b) for _, b in chunk)
            for i in range(rows):
                out.append(
                    (" " * PANEL_GAP)
                    .join(
                        b[i] + " " * (panel_w - width * cell_w) if i < len(b) else " " * panel_w
                        for _, b in chunk
                    )
                    .rstrip()
                )
            out.append("")
        out.append(self._legend(figure))
        return ("\n".join(out) + "\n").encode("utf-8")

    def _legend(self, figure: GridFigure) -> str:
        if self.options.color:
            ramp = colors.diverging(np.linspace(-1.0, 1.0, 21), 1.0)
            bar = "".join(_bg(c) + " " for c in ramp) + RESET
            wall = _bg(colors.WALL) + "  " + RESET
        else:
            bar, wall = "-9 … . … +9", "##"
        _, labels = figure.bar_ticks()
        scale = f"scale {labels[0]} {bar} {labels[-1]}"
        if figure.bar_label:
            scale += f" {figure.bar_label} (each vector's own)"
        parts = [scale, f"wall {wall}"]
        if figure.start is not None:
            parts.append(f"start {list(figure.start)}")
        if figure.goals:
            parts.append("goal " + " ".join(str(list(g)) for g in figure.goals))
        if figure.doors:
            parts.append(
                "one-way doors " + ", ".join(f"{list(a)}->{list(b)}" for a, b in figure.doors)
            )
        return "   ".join(parts)

    # ------------------------------------------------------------------------ curves
    def curves(self, figure: CurveFigure) -> bytes:
        """plotext on the settled axes (renderers/axes.py): the ticks of the PNG. Log and
        symlog axes are drawn as plotext's linear ones over the transformed values."""
        import plotext

        axes.settle_once(figure, self.options.size)
        plot = plotext.figure
        plot.clear()
        width = max(60, self.options.width)
        panel_h = 22
        # plotext fits at most two rows of panels in a plot's height: more go side by side
        ncols = 2 if len(figure.panels) > 2 else 1
        nrows = -(-len(figure.panels) // ncols)
        plot.plot_size(width, panel_h * nrows)
        single = len(figure.panels) == 1
        if not single:
            plot.subplots(nrows, ncols)
        for index, panel in enumerate(figure.panels):
            row, col = divmod(index, ncols)
            sub = plot if single else plot.subplot(row + 1, col + 1)
            sub.title(panel.title)
            sub.label(panel.xlabel)
            labelled = sum(bool(line.label) for line in panel.lines) > 1
            for line in panel.lines:
                self._line(plotext, sub, line, panel.y_axis, labelled)
            x_axis, y_axis = panel.x_axis, panel.y_axis
            sub.ruler("x").ticks(list(x_axis.ticks), list(x_axis.labels))
            sub.ruler("x").lim(*x_axis.view)
            # the PNG's ticks, every k-th where a few text rows cannot hold them all
            stride = -(-len(y_axis.ticks) // TEXT_Y_TICKS)
            sub.ruler("y").ticks(list(_shown(y_axis, y_axis.ticks))[::stride],
                                 list(y_axis.labels)[::stride])
            sub.ruler("y").lim(*_shown(y_axis, y_axis.view))
        text = plot.build().string(colorless=not self.options.color)
        plot.clear()
        return f"{figure.title}\n{figure.subtitle}\n{text}\n".encode()

    @staticmethod
    def _line(plotext, sub, line: Line, y_axis, labelled: bool) -> None:
        rgb = colors.hex_to_rgb(colors.line_color(line.color))
        steps = np.asarray(line.steps, dtype=np.float64)
        values = _shown(y_axis, line.values)
        ok = np.isfinite(values)
        if not ok.any():
            return
        if line.dashed and np.ptp(values[ok]) == 0:
            sub.line(float(values[ok][0]), style="dotted", pixel=plotext.pixel(rgb))
            return
        # past the palette's ten colours, a plainer marker tells e11 from e1
        marker = "hd" if colors.palette_pass(line.color) == 0 else "•"
        signal = sub.signal(steps[ok].tolist(), values[ok].tolist(),
                            marker=plotext.marker(marker, rgb))
        if line.label and labelled:
            signal.label(line.label)
        sub.draw(signal.lines())
        for bound in line.band or ():
            shown = _shown(y_axis, bound)
            fine = np.isfinite(shown)
            if fine.any():
                sub.draw(sub.signal(steps[fine].tolist(), shown[fine].tolist(),
                                    marker=plotext.marker("·", rgb)))


def _shown(y_axis, values) -> np.ndarray:
    """Values in the axis's drawing coordinates: log10 on log axes (non-positive values
    become gaps), the symlog transform on symlog axes."""
    values = np.asarray(values, dtype=np.float64)
    if y_axis.scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
    if y_axis.scale == "symlog":
        return axes.symlog(values, y_axis.linthresh)
    return values


def fitted(figure: GridFigure, factor: int) -> GridFigure:
    """The figure with each `factor` x `factor` block of cells as one (renderers.shrink),
    so a large layout's panel fits the text width; the subtitle says how much smaller."""
    if factor <= 1:
        return figure
    walls = ~np.isfinite(shrunk(np.where(figure.walls, np.nan, 0.0), factor))
    panels = [panel if panel.blank else dataclasses.replace(
        panel, values=shrunk(np.where(figure.walls, np.nan, panel.values), factor))
        for panel in figure.panels]
    return dataclasses.replace(figure, walls=walls, panels=panels,
                               subtitle=f"{figure.subtitle} · 1/{factor} size")
