"""SVG renderer: writes SVG directly (no matplotlib), so it is fast and exact.

Grids reuse the pixel layout of `renderers.raster` (same placement as the PNGs) and
emit one `<rect class="cell ...">` per grid cell, walls included, so a figure can be
inspected (and tested) cell by cell. Curves are drawn on hand-made axes.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from renderers import colors, raster
from renderers.base import GridCurveRenderer
from renderers.figures import CurveFigure, CurvePanel, GridFigure
from renderers.ticks import format_tick, log_ticks, nice_ticks, padded_range

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
PT = 100 / 72  # pixels per point at 100 px per inch


def _text(
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    anchor: str = "start",
    bold: bool = False,
    color: str = "#000000",
    baseline: str = "middle",
    rotate: int = 0,
) -> str:
    """One <text>; several lines become <tspan>s."""
    lines = text.split("\n")
    attrs = (
        f'x="{x:.1f}" y="{y:.1f}" font-size="{size * PT:.1f}" text-anchor="{anchor}" '
        f'fill="{color}" dominant-baseline="{baseline}"'
    )
    if bold:
        attrs += ' font-weight="bold"'
    if rotate:
        attrs += f' transform="rotate({rotate} {x:.1f} {y:.1f})"'
    if len(lines) == 1:
        return f"<text {attrs}>{escape(text)}</text>"
    step = size * PT * 1.15
    first = y - step * (len(lines) - 1) * (1.0 if baseline == "text-after-edge" else 0.5)
    spans = "".join(
        f'<tspan x="{x:.1f}" y="{first + i * step:.1f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return f"<text {attrs}>{spans}</text>"


def _document(width: float, height: float, body: list[str], title: str) -> bytes:
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family={quoteattr(FONT)}>\n'
        f"<title>{escape(title)}</title>\n"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="4" '
        'markerHeight="4" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{colors.rgb_to_hex(colors.MARK)}"/></marker></defs>\n'
        f'<rect width="100%" height="100%" fill="#ffffff"/>\n'
    )
    return (head + "\n".join(body) + "\n</svg>\n").encode("utf-8")


_ANCHOR = {"left": "start", "center": "middle", "right": "end"}
_BASELINE = {
    "top": "hanging",
    "center": "middle",
    "bottom": "text-after-edge",
    "baseline": "alphabetic",
}


class SvgRenderer(GridCurveRenderer):
    name = "svg"
    extension = ".svg"
    options_used = ()  # the RenderOptions fields it reads

    # ------------------------------------------------------------------------ grids
    def grid(self, figure: GridFigure) -> bytes:
        layout = raster.grid_layout(figure, 1.0)
        cell = layout.cell
        height, width = figure.walls.shape
        mark = colors.rgb_to_hex(colors.MARK)
        body: list[str] = []
        for panel, (x0, y0) in zip(figure.panels, layout.panels, strict=False):
            values = np.where(figure.walls, np.nan, panel.values)
            rgb = colors.diverging(values, figure.vmax)
            body.append(f'<g class="panel"><title>{escape(panel.title)}</title>')
            for r in range(height):
                for c in range(width):
                    wall = figure.walls[r, c]
                    value = "" if wall else f' data-value="{values[r, c]:.6g}"'
                    body.append(
                        f'<rect class="{"cell wall" if wall else "cell"}" '
                        f'x="{x0 + c * cell}" y="{y0 + r * cell}" width="{cell}" '
                        f'height="{cell}" fill="{colors.rgb_to_hex(rgb[r, c])}"{value}/>'
                    )
            body.append(
                f'<rect x="{x0}" y="{y0}" width="{cell * width}" height="{cell * height}" '
                'fill="none" stroke="#3c3c3c" stroke-width="1"/>'
            )
            for (r0, c0), (r1, c1) in figure.doors:
                ax, ay = x0 + (c0 + 0.5) * cell, y0 + (r0 + 0.5) * cell
                bx, by = x0 + (c1 + 0.5) * cell, y0 + (r1 + 0.5) * cell
                body.append(
                    f'<line class="door" x1="{ax + 0.2 * (bx - ax):.1f}" '
                    f'y1="{ay + 0.2 * (by - ay):.1f}" x2="{ax + 0.8 * (bx - ax):.1f}" '
                    f'y2="{ay + 0.8 * (by - ay):.1f}" stroke="{mark}" '
                    f'stroke-width="{max(1.2, cell * 0.12):.1f}" marker-end="url(#arrow)"/>'
                )
            if figure.start is not None:
                r, c = figure.start
                body.append(
                    f'<circle class="start" cx="{x0 + (c + 0.5) * cell:.1f}" '
                    f'cy="{y0 + (r + 0.5) * cell:.1f}" r="{max(1.5, cell * 0.18):.1f}" '
                    f'fill="{mark}"/>'
                )
            for r, c in figure.goals:
                half = max(2.0, cell * 0.28)
                body.append(
                    f'<rect class="goal" x="{x0 + (c + 0.5) * cell - half:.1f}" '
                    f'y="{y0 + (r + 0.5) * cell - half:.1f}" width="{2 * half:.1f}" '
                    f'height="{2 * half:.1f}" fill="none" stroke="{mark}"/>'
                )
            body.append("</g>")
        body += self._colorbar(figure, layout)
        for item in layout.texts:
            body.append(
                _text(
                    item.x,
                    item.y,
                    item.text,
                    item.size,
                    anchor=_ANCHOR[item.ha],
                    bold=item.bold,
                    color=item.color,
                    baseline=_BASELINE[item.va],
                    rotate=-item.rotation,
                )
            )
        return _document(layout.width, layout.height, body, figure.title)

    @staticmethod
    def _colorbar(figure: GridFigure, layout: raster.GridLayout) -> list[str]:
        bx, by, bw, bh = layout.colorbar
        stops = "".join(
            f'<stop offset="{i / 10:.1f}" '
            f'stop-color="{colors.rgb_to_hex(colors.diverging(np.array([v]), 1.0)[0])}"/>'
            for i, v in enumerate(np.linspace(1.0, -1.0, 11))
        )
        out = [
            f'<linearGradient id="scale" x1="0" y1="0" x2="0" y2="1">{stops}</linearGradient>',
            f'<rect class="colorbar" x="{bx}" y="{by}" width="{bw}" height="{bh}" '
            'fill="url(#scale)" stroke="#3c3c3c" stroke-width="1"/>',
        ]
        out += [
            f'<line x1="{bx + bw}" y1="{y}" x2="{bx + bw + 4}" y2="{y}" stroke="#3c3c3c"/>'
            for _, y in layout.ticks
        ]
        return out

    # ------------------------------------------------------------------------ curves
    def curves(self, figure: CurveFigure) -> bytes:
        outside = any(p.legend == "outside" for p in figure.panels)
        panel_w, panel_h = 540, 300
        left, right = 75, (125 if outside else 25)
        top, hgap, vgap, bottom = 70, 80, 75, 55
        width = left + figure.ncols * panel_w + (figure.ncols - 1) * hgap + right
        height = top + figure.nrows * panel_h + (figure.nrows - 1) * vgap + bottom
        body = [
            _text(left, 20, figure.title, 11, bold=True),
            _text(left, 42, figure.subtitle, 8, color="#555555"),
        ]
        for index, panel in enumerate(figure.panels):
            row, col = divmod(index, figure.ncols)
            x = left + col * (panel_w + hgap)
            y = top + row * (panel_h + vgap) + 20
            body += self._panel(panel, x, y, panel_w, panel_h - 20)
        return _document(width, height, body, figure.title)

    @staticmethod
    def _panel(panel: CurvePanel, x0: float, y0: float, w: float, h: float) -> list[str]:
        steps = [line.steps for line in panel.lines if len(line.steps)]
        if not steps:
            return [_text(x0, y0 - 12, panel.title, 9)]
        xs = np.concatenate(steps).astype(np.float64)
        values = [line.values for line in panel.lines if len(line.values)]
        values += [b for line in panel.lines if line.band is not None for b in line.band]
        ys = np.concatenate(values)
        ys = ys[np.isfinite(ys) & ((ys > 0) if panel.log_y else True)]
        xlo, xhi = padded_range(float(xs.min()), float(xs.max()))
        if panel.ylim is not None:
            ylo, yhi = panel.ylim
        elif ys.size:
            ylo, yhi = padded_range(float(ys.min()), float(ys.max()), panel.log_y)
        else:
            ylo, yhi = (0.1, 1.0) if panel.log_y else (0.0, 1.0)

        def fy(v):
            if panel.log_y:
                v = np.log10(np.maximum(v, 1e-300))
                lo, hi = math.log10(ylo), math.log10(yhi)
            else:
                lo, hi = ylo, yhi
            return y0 + h - (np.asarray(v) - lo) / ((hi - lo) or 1.0) * h

        def fx(v):
            return x0 + (np.asarray(v, dtype=np.float64) - xlo) / ((xhi - xlo) or 1.0) * w

        out = [_text(x0, y0 - 12, panel.title, 9)]
        yticks = log_ticks(ylo, yhi) if panel.log_y else nice_ticks(ylo, yhi, 5)
        for t in yticks:
            ty = float(fy(t))
            out.append(
                f'<line x1="{x0}" y1="{ty:.1f}" x2="{x0 + w}" y2="{ty:.1f}" '
                'stroke="#e5e5e5" stroke-width="0.8"/>'
            )
            out.append(_text(x0 - 6, ty, format_tick(t, panel.log_y), 8, anchor="end"))
        for t in nice_ticks(xlo, xhi, 6):
            tx = float(fx(t))
            out.append(
                f'<line x1="{tx:.1f}" y1="{y0}" x2="{tx:.1f}" y2="{y0 + h}" '
                'stroke="#e5e5e5" stroke-width="0.8"/>'
            )
            out.append(_text(tx, y0 + h + 12, format_tick(t), 8, anchor="middle"))
        out.append(
            f'<clipPath id="c{int(x0)}_{int(y0)}"><rect x="{x0}" y="{y0}" width="{w}" '
            f'height="{h}"/></clipPath>'
        )
        clip = f'clip-path="url(#c{int(x0)}_{int(y0)})"'
        legend = []
        for line in panel.lines:
            color = colors.line_color(line.color)
            px = fx(line.steps)
            if line.band is not None:
                low, high = line.band
                ok = np.isfinite(low) & np.isfinite(high)
                if ok.any():
                    pts = [f"{a:.1f},{b:.1f}" for a, b in zip(px[ok], fy(high[ok]), strict=False)]
                    pts += [
                        f"{a:.1f},{b:.1f}"
                        for a, b in zip(px[ok][::-1], fy(low[ok])[::-1], strict=False)
                    ]
                    out.append(
                        f'<polygon class="band" points="{" ".join(pts)}" fill="{color}" '
                        f'fill-opacity="0.18" stroke="none" {clip}/>'
                    )
            py = fy(line.values)
            ok = np.isfinite(py)
            dash = ' stroke-dasharray="6,4"' if line.dashed else ""
            for segment in _runs(ok):
                pts = " ".join(
                    f"{a:.1f},{b:.1f}" for a, b in zip(px[segment], py[segment], strict=False)
                )
                out.append(
                    f'<polyline class="curve" points="{pts}" fill="none" '
                    f'stroke="{color}" stroke-width="{2.0 if line.bold else 1.3}"'
                    f"{dash} {clip}/>"
                )
            if line.label:
                legend.append((line.label, color, dash))
        if len(legend) < 2:
            legend = []  # one curve: the panel title names it
        out.append(
            f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" '
            'stroke="#3c3c3c" stroke-width="0.8"/>'
        )
        out.append(_text(x0 + w / 2, y0 + h + 32, panel.xlabel, 9, anchor="middle"))
        out.append(_text(x0 - 52, y0 + h / 2, panel.ylabel, 9, anchor="middle", rotate=-90))
        text_w = 30 + 6 * max((len(label) for label, _, _ in legend), default=0)
        if panel.legend == "outside":
            lx, ly = x0 + w + 12, y0 + 8
        else:
            lx = x0 + w - text_w - 6 if "right" in panel.legend else x0 + 10
            ly = y0 + h - 14 * len(legend) - 4 if "lower" in panel.legend else y0 + 12
            if legend:
                out.append(
                    f'<rect x="{lx - 5}" y="{ly - 9}" width="{text_w + 6}" '
                    f'height="{14 * len(legend) + 4}" fill="#ffffff" '
                    'fill-opacity="0.85" stroke="#dddddd"/>'
                )
        for i, (label, color, dash) in enumerate(legend):
            yy = ly + i * 14
            out.append(
                f'<line x1="{lx}" y1="{yy}" x2="{lx + 18}" y2="{yy}" stroke="{color}" '
                f'stroke-width="1.6"{dash}/>'
            )
            out.append(_text(lx + 23, yy, label, 8))
        return out


def _runs(mask: np.ndarray) -> list[np.ndarray]:
    """Index arrays of consecutive True runs (a NaN breaks a curve)."""
    idx = np.flatnonzero(mask)
    if not idx.size:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    return [run for run in np.split(idx, breaks) if run.size]
