"""Text renderer: figures for a terminal or a .txt file, no matplotlib.

Eigenvector grids are coloured half-block cells: each `▀` carries two grid rows, the
upper as foreground colour and the lower as background, on the same diverging scale as
the PNGs. Without colour (NO_COLOR) each cell prints as a sign and a level 0-9. Curves
go through plotext, imported only when a curve figure is drawn.
"""

from __future__ import annotations

import math

import numpy as np

from renderers import colors, ticks
from renderers.base import GridCurveRenderer
from renderers.figures import CurveFigure, GridFigure, Line

RESET = "\x1b[0m"
HALF = "▀"
PANEL_GAP = 3


def _fg(rgb) -> str:
    return f"\x1b[38;2;{int(rgb[0])};{int(rgb[1])};{int(rgb[2])}m"


def _bg(rgb) -> str:
    return f"\x1b[48;2;{int(rgb[0])};{int(rgb[1])};{int(rgb[2])}m"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class TextRenderer(GridCurveRenderer):
    name = "text"
    extension = ".txt"
    options_used = ("color", "width")  # the RenderOptions fields it reads

    # ------------------------------------------------------------------------ grids
    def _cells_colour(self, figure: GridFigure, values: np.ndarray, scale: int) -> list[str]:
        """Rows of half-block characters; `scale` characters per cell across."""
        grid = np.where(figure.walls, np.nan, values)
        rgb = colors.diverging(grid, figure.vmax)
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
    def _cells_plain(figure: GridFigure, values: np.ndarray) -> list[str]:
        """Two characters per cell: '##' wall, ' .' near zero, '+7' / '-3' otherwise."""
        lines = []
        for r in range(values.shape[0]):
            parts = []
            for c in range(values.shape[1]):
                value = values[r, c]
                if figure.walls[r, c] or not np.isfinite(value):
                    parts.append("##")
                    continue
                level = int(round(min(1.0, abs(value) / figure.vmax) * 9))
                parts.append(" ." if level == 0 else f"{'+' if value > 0 else '-'}{level}")
            lines.append("".join(parts))
        return lines

    def grid(self, figure: GridFigure) -> bytes:
        height, width = figure.walls.shape
        colour = self.options.color
        scale = 2 if colour and width <= 24 else 1
        cell_w = scale if colour else 2
        panel_w = max(width * cell_w, 12)
        per_row = max(1, (self.options.width + PANEL_GAP) // (panel_w + PANEL_GAP))
        per_row = min(per_row, figure.ncols) if figure.row_labels else per_row
        out = [figure.title, figure.subtitle, ""]
        blocks = []
        for panel in figure.panels:
            body = (
                self._cells_colour(figure, panel.values, scale)
                if colour
                else self._cells_plain(figure, panel.values)
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
        vmax = figure.vmax
        if self.options.color:
            ramp = colors.diverging(np.linspace(-vmax, vmax, 21), vmax)
            bar = "".join(_bg(c) + " " for c in ramp) + RESET
            wall = _bg(colors.WALL) + "  " + RESET
        else:
            bar, wall = "-9 … . … +9", "##"
        parts = [f"scale {-vmax:.3g} {bar} {vmax:.3g}", f"wall {wall}"]
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
        import plotext

        plot = plotext.figure
        plot.clear()
        width = max(60, self.options.width)
        panel_h = 22
        plot.plot_size(width, panel_h * figure.nrows)
        single = len(figure.panels) == 1
        if not single:
            plot.subplots(figure.nrows, figure.ncols)
        for index, panel in enumerate(figure.panels):
            row, col = divmod(index, figure.ncols)
            sub = plot if single else plot.subplot(row + 1, col + 1)
            sub.title(panel.title)
            sub.label(panel.xlabel)
            labelled = sum(bool(line.label) for line in panel.lines) > 1
            for line in panel.lines:
                self._line(plotext, sub, line, panel.log_y, labelled)
            self._step_ticks(sub, panel.lines, width // figure.ncols)
            if panel.log_y:
                sub.ruler("y").scale("log")
            if panel.ylim is not None:
                sub.ruler("y").lim(*panel.ylim)
        text = plot.build().string(colorless=not self.options.color)
        plot.clear()
        return f"{figure.title}\n{figure.subtitle}\n{text}\n".encode()

    @staticmethod
    def _step_ticks(sub, lines: list[Line], width: int) -> None:
        """Round step numbers (2000, 4000, 10k) instead of plotext's own (1.4e3, 2.7e3)."""
        steps = [float(s) for line in lines for s in line.steps if math.isfinite(float(s))]
        if not steps:
            return
        positions = ticks.nice_ticks(min(steps), max(steps), max(2, min(7, width // 12)))
        if positions:
            sub.ruler("x").ticks(positions, [ticks.format_tick(p) for p in positions])

    @staticmethod
    def _line(plotext, sub, line: Line, log_y: bool, labelled: bool) -> None:
        rgb = colors.hex_to_rgb(colors.line_color(line.color))
        values = np.asarray(line.values, dtype=np.float64)
        ok = np.isfinite(values) & ((values > 0) if log_y else True)
        if not ok.any():
            return
        steps = np.asarray(line.steps, dtype=np.float64)[ok].tolist()
        if line.dashed and np.ptp(values[ok]) == 0:
            sub.line(float(values[ok][0]), style="dotted", pixel=plotext.pixel(rgb))
            return
        signal = sub.signal(steps, values[ok].tolist(), marker=plotext.marker("hd", rgb))
        if line.label and labelled:
            signal.label(line.label)
        sub.draw(signal.lines())
        if line.band is not None:
            for bound in line.band:
                b = np.asarray(bound, dtype=np.float64)
                fine = np.isfinite(b) & ((b > 0) if log_y else True)
                if fine.any() and not math.isnan(float(np.nanmax(b))):
                    edge = sub.signal(
                        np.asarray(line.steps, dtype=np.float64)[fine].tolist(),
                        b[fine].tolist(),
                        marker=plotext.marker("·", rgb),
                    )
                    sub.draw(edge)
