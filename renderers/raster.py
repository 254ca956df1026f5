"""Grid figures laid out in pixels and painted with numpy.

Drawing ten small matplotlib axes per figure costs about half a second on a laptop CPU;
painting the cells into one RGB canvas costs milliseconds. The PNG renderer shows the
canvas with one `figimage` and adds only the text; the SVG renderer reuses the layout so
both formats place everything the same way. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from renderers import colors
from renderers.figures import GridFigure
from renderers.ticks import format_tick, nice_ticks

BORDER = (60, 60, 60)


@dataclass
class Text:
    x: float  # pixels from the left
    y: float  # pixels from the top
    text: str
    size: float  # points at 100 dpi
    bold: bool = False
    color: str = "#000000"
    ha: str = "left"  # left | center | right
    va: str = "center"  # top | center | bottom | baseline
    rotation: int = 0


@dataclass
class GridLayout:
    width: int
    height: int
    cell: int  # pixels per grid cell
    panels: list[tuple[int, int]]  # top-left pixel (x, y) of each panel
    colorbar: tuple[int, int, int, int]  # x, y, w, h
    ticks: list[tuple[float, int]]  # (value, y pixel) on the colour bar
    texts: list[Text] = field(default_factory=list)


def text_width(text: str, size: float, scale: float, bold: bool = False) -> int:
    """A generous estimate of a line's width in pixels (size in points, scale = dpi /
    100) without measuring it: DejaVu Sans averages under 0.6 em a character, 0.66 bold."""
    longest = max((len(line) for line in text.splitlines()), default=0)
    return round(longest * size * 100 / 72 * scale * (0.66 if bold else 0.6))


def grid_layout(figure: GridFigure, scale: float = 1.0) -> GridLayout:
    """Pixel positions of every part of a grid figure; `scale` = dpi / 100."""
    height, width = figure.walls.shape
    cell = max(3, round(190 * scale / max(height, width)))
    pw, ph = cell * width, cell * height
    gap = round(20 * scale)
    lines = max(p.title.count("\n") + 1 for p in figure.panels)
    title_h = round((15 * lines + 8) * scale)
    label_w = round(26 * scale) if figure.row_labels else 0
    left, top, bottom = round(16 * scale) + label_w, round(66 * scale), round(14 * scale)
    row_h = title_h + ph + gap
    cbar_x = left + figure.ncols * pw + (figure.ncols - 1) * gap + round(22 * scale)
    texts = [
        Text(left, round(20 * scale), figure.title, 11, bold=True),
        Text(left, round(42 * scale), figure.subtitle, 8, color="#555555"),
    ]
    # a figure of few panels is narrower than its heading: widen it rather than cut it
    heading = max(text_width(t.text, t.size, scale, t.bold) for t in texts)
    total_w = max(cbar_x + round(16 * scale) + round(48 * scale),
                  left + heading + round(16 * scale))
    total_h = top + figure.nrows * row_h - gap + bottom
    panels = []
    for index, panel in enumerate(figure.panels):
        row, col = divmod(index, figure.ncols)
        x, y = left + col * (pw + gap), top + row * row_h + title_h
        panels.append((x, y))
        texts.append(
            Text(x + pw / 2, y - round(4 * scale), panel.title, 8.5, ha="center", va="bottom")
        )
        if figure.row_labels and col == 0 and row < len(figure.row_labels):
            texts.append(
                Text(
                    x - round(8 * scale),
                    y + ph / 2,
                    figure.row_labels[row],
                    9,
                    bold=True,
                    ha="right",
                    va="center",
                    rotation=90,
                )
            )
    area_top, area_bottom = top, total_h - bottom
    bar_h = min(area_bottom - area_top, round(260 * scale))
    bar_y = area_top + (area_bottom - area_top - bar_h) // 2
    bar = (cbar_x, bar_y, round(16 * scale), bar_h)
    ticks = []
    for value in nice_ticks(-figure.vmax, figure.vmax, 4):
        y = bar_y + round((1 - (value + figure.vmax) / (2 * figure.vmax)) * (bar_h - 1))
        ticks.append((value, y))
        texts.append(Text(cbar_x + bar[2] + round(7 * scale), y, format_tick(value), 7))
    return GridLayout(total_w, total_h, cell, panels, bar, ticks, texts)


def painted_regions(figure: GridFigure, layout: GridLayout) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every painted area, borders and tick marks included; no text
    ever falls inside one, so text drawn elsewhere can be pasted around them."""
    height, width = figure.walls.shape
    pw, ph = layout.cell * width, layout.cell * height
    regions = [(y - 1, y + ph + 1, x - 1, x + pw + 1) for x, y in layout.panels]
    bx, by, bw, bh = layout.colorbar
    regions.append((by - 1, by + bh + 1, bx - 1, bx + bw + 4))
    return regions


def _disk(canvas: np.ndarray, cy: float, cx: float, radius: float, color) -> None:
    r0, r1 = int(cy - radius - 1), int(cy + radius + 2)
    c0, c1 = int(cx - radius - 1), int(cx + radius + 2)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    inside = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= radius**2
    canvas[yy[inside], xx[inside]] = color


def _ring(canvas: np.ndarray, cy: float, cx: float, half: float, color) -> None:
    """A small hollow square (the goal mark)."""
    r0, r1 = int(round(cy - half)), int(round(cy + half))
    c0, c1 = int(round(cx - half)), int(round(cx + half))
    canvas[r0 : r1 + 1, [c0, c1]] = color
    canvas[[r0, r1], c0 : c1 + 1] = color


def _arrow(canvas: np.ndarray, start, end, width: float, head: float, color) -> None:
    """A straight arrow from start to end (pixel (y, x) pairs), head at `end`."""
    (y0, x0), (y1, x1) = start, end
    length = float(np.hypot(y1 - y0, x1 - x0))
    if length == 0:
        return
    uy, ux = (y1 - y0) / length, (x1 - x0) / length
    r0, r1 = int(min(y0, y1) - head - 1), int(max(y0, y1) + head + 2)
    c0, c1 = int(min(x0, x1) - head - 1), int(max(x0, x1) + head + 2)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    py, px = yy + 0.5 - y0, xx + 0.5 - x0
    along = py * uy + px * ux  # distance along the arrow
    across = np.abs(-py * ux + px * uy)  # distance from its axis
    shaft = (along >= 0) & (along <= length - head) & (across <= width / 2)
    tip = (
        (along > length - head)
        & (along <= length)
        & (across <= (length - along) / head * head * 0.55)
    )
    mask = shaft | tip
    keep = (yy >= 0) & (yy < canvas.shape[0]) & (xx >= 0) & (xx < canvas.shape[1]) & mask
    canvas[yy[keep], xx[keep]] = color


def paint(figure: GridFigure, layout: GridLayout) -> np.ndarray:
    """The RGB canvas (uint8, height x width x 3): panels, marks, doors, colour bar."""
    canvas = np.full((layout.height, layout.width, 3), 255, dtype=np.uint8)
    cell = layout.cell
    height, width = figure.walls.shape
    pw, ph = cell * width, cell * height
    for panel, (x, y) in zip(figure.panels, layout.panels, strict=False):
        rgb = colors.diverging(np.where(figure.walls, np.nan, panel.values), figure.vmax)
        canvas[y : y + ph, x : x + pw] = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
        canvas[y - 1 : y + ph + 1, [x - 1, x + pw]] = BORDER
        canvas[[y - 1, y + ph], x - 1 : x + pw + 1] = BORDER
        for (r0, c0), (r1, c1) in figure.doors:
            a = (y + (r0 + 0.5) * cell, x + (c0 + 0.5) * cell)
            b = (y + (r1 + 0.5) * cell, x + (c1 + 0.5) * cell)
            start = (a[0] + 0.2 * (b[0] - a[0]), a[1] + 0.2 * (b[1] - a[1]))
            end = (a[0] + 0.8 * (b[0] - a[0]), a[1] + 0.8 * (b[1] - a[1]))
            _arrow(canvas, start, end, max(1.5, cell * 0.14), max(3.0, cell * 0.4), colors.MARK)
        if figure.start is not None:
            r, c = figure.start
            _disk(
                canvas,
                y + (r + 0.5) * cell,
                x + (c + 0.5) * cell,
                max(1.5, cell * 0.18),
                colors.MARK,
            )
        for r, c in figure.goals:
            _ring(
                canvas,
                y + (r + 0.5) * cell,
                x + (c + 0.5) * cell,
                max(2.0, cell * 0.28),
                colors.MARK,
            )
    bx, by, bw, bh = layout.colorbar
    ramp = colors.diverging(np.linspace(figure.vmax, -figure.vmax, bh), figure.vmax)
    canvas[by : by + bh, bx : bx + bw] = ramp[:, None, :]
    canvas[by - 1 : by + bh + 1, [bx - 1, bx + bw]] = BORDER
    canvas[[by - 1, by + bh], bx - 1 : bx + bw + 1] = BORDER
    for _, ty in layout.ticks:
        canvas[ty, bx + bw : bx + bw + 4] = BORDER
    return canvas
