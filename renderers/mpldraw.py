"""The one drawing path: every figure drawn by matplotlib, saved as PNG, SVG or PDF.

A figure is laid out once, in inches, from renderers/style.py (no tight or constrained
layout: they measure every text and dominate the cost of small figures), and saved in
the format asked for, so the three formats agree tick for tick. Grid cells are one
QuadMesh per panel: vector shapes in SVG and PDF (they scale in a paper); a panel of
more than RASTER_CELLS cells is rasterised inside the vector file, as a large grid
would otherwise make a file too big to open. Curve axes come settled
(renderers/axes.py): the ticks are fixed here, not chosen again. matplotlib is imported
on first use and pyplot never.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from renderers import colors
from renderers import style as styles
from renderers.figures import CurveFigure, CurvePanel, GridFigure

RASTER_CELLS = 4096
_MPL: dict[str, Any] = {}
GREY = "#555555"


def mpl() -> dict[str, Any]:
    """Import matplotlib once per process, Agg only (renderers.mplimport says how)."""
    if not _MPL:
        from renderers.mplimport import import_agg

        loaded = import_agg()
        loaded["matplotlib"].rcParams.update(
            {
                "axes.spines.top": False,
                "axes.spines.right": False,
                "axes.linewidth": 0.6,
                "xtick.major.width": 0.6,
                "ytick.major.width": 0.6,
                "xtick.major.size": 2.5,
                "ytick.major.size": 2.5,
                "path.simplify": True,
                "svg.fonttype": "none",  # text stays text: editable, searchable, small
                "svg.hashsalt": "allo",  # the same figure gives the same bytes
                "pdf.fonttype": 42,  # TrueType, as publishers ask
            }
        )
        from matplotlib.collections import QuadMesh
        from matplotlib.colors import LinearSegmentedColormap, Normalize

        ticker = loaded["ticker"]
        _MPL.update(
            Figure=loaded["Figure"],
            Canvas=loaded["Canvas"],
            FixedLocator=ticker.FixedLocator,
            FixedFormatter=ticker.FixedFormatter,
            NullLocator=ticker.NullLocator,
            QuadMesh=QuadMesh,
            Normalize=Normalize,
            cmap=colormap(LinearSegmentedColormap),
        )
    return _MPL


def colormap(factory):
    """matplotlib's form of the shared diverging map (renderers/colors.py), walls grey."""
    # an odd number of entries: 0 falls on the middle one, pure white
    cmap = factory.from_list("allo_diverging", colors.anchors() / 255.0, N=255)
    return cmap.with_extremes(bad=np.asarray(colors.WALL) / 255.0)


def tex_safe(text: str) -> str:
    """Text from run.json must not switch matplotlib into mathtext."""
    return text.replace("$", r"\$")


def save(fig, fmt: str, dpi: int) -> bytes:
    """The figure's file; dates left out, so the same figure gives the same bytes."""
    buffer = io.BytesIO()
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    if fmt == "png":
        canvas = mpl()["Canvas"](fig)
        canvas.print_png(buffer, metadata={"Software": None}, pil_kwargs=None)
        return buffer.getvalue()
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata.get(fmt))
    return buffer.getvalue()


def heading(fig, figure, st: styles.Style, height: float) -> float:
    """Title (and subtitle) at the top, their type shrunk to fit the width; returns the
    inches they take."""
    used = 0.06
    room = (st.width - 0.12) * 72
    if figure.title:
        size = fit(figure.title, room, st.title, bold=True)
        fig.text(0.06 / st.width, 1 - (used + st.title * 0.7 / 72) / height,
                 tex_safe(figure.title), fontsize=size, weight="bold", va="center")
        used += st.title * 1.45 / 72
    if figure.subtitle:
        size = fit(figure.subtitle, room, st.font - 0.5)
        fig.text(0.06 / st.width, 1 - (used + st.font * 0.6 / 72) / height,
                 tex_safe(figure.subtitle), fontsize=size, color=GREY, va="center")
        used += st.font * 1.4 / 72
    return used + 0.04


def fit(text: str, room_pt: float, largest: float, bold: bool = False) -> float:
    """A font size at most `largest` at which `text` fits `room_pt` points (DejaVu Sans
    averages under 0.6 em a character, 0.66 bold), never below 4.5 pt."""
    longest = max((len(line) for line in text.split("\n")), default=1)
    return max(4.5, min(largest, room_pt / ((0.66 if bold else 0.6) * max(1, longest))))


def heading_height(figure, st: styles.Style) -> float:
    return (0.1 + (st.title * 1.45 / 72 if figure.title else 0)
            + (st.font * 1.4 / 72 if figure.subtitle else 0))


# ---------------------------------------------------------------------------- grids


def grid_figure(figure: GridFigure, size: str, dpi: int):
    st = styles.style(size)
    lib = mpl()
    height, width = figure.walls.shape
    label_w = st.font * 1.6 / 72 if figure.row_labels else 0.0
    bar_w = 0.5 if figure.bar_label else 0.42
    pitch = (st.width - 0.08 - label_w - bar_w) / figure.ncols
    gap = min(0.08, pitch * 0.08)
    panel_w = pitch - gap
    panel_h = panel_w * height / width
    lines = max(p.title.count("\n") + 1 for p in figure.panels)
    title_font = _fit_font(figure, panel_w, st.font - 0.5)
    title_h = lines * title_font * 1.25 / 72 + 0.03
    row_h = title_h + panel_h + gap
    top = heading_height(figure, st)
    fig_h = top + figure.nrows * row_h + 0.04
    fig = lib["Figure"](figsize=(st.width, fig_h), dpi=dpi)
    heading(fig, figure, st, fig_h)
    for index, panel in enumerate(figure.panels):
        row, col = divmod(index, figure.ncols)
        if panel.blank:
            continue
        x = 0.04 + label_w + col * pitch
        y = fig_h - top - row * row_h - title_h - panel_h
        ax = fig.add_axes((x / st.width, y / fig_h, panel_w / st.width, panel_h / fig_h))
        _grid_panel(ax, figure, panel, lib)
        ax.text(0.5, 1.0 + 0.02 * width / height, tex_safe(panel.title), transform=ax.transAxes,
                ha="center", va="bottom", fontsize=title_font, linespacing=1.1)
        if figure.row_labels and col == 0 and row < len(figure.row_labels):
            # one size for every row label, the longest one's fit, so rows read as peers
            label_font = min(fit(text, panel_h * 72, st.font, bold=True)
                             for text in figure.row_labels)
            ax.text(-0.06, 0.5, figure.row_labels[row], transform=ax.transAxes, rotation=90,
                    ha="right", va="center", fontsize=label_font, weight="bold")
    _colour_bar(fig, figure, st, fig_h, top, bar_w, lib)
    return fig


def _fit_font(figure: GridFigure, panel_w: float, largest: float) -> float:
    """Panel titles shrink (down to 4.5 pt) to fit the panel's width."""
    longest = max((p.title for p in figure.panels), key=len)
    return fit(longest, panel_w * 72, largest)


def _grid_panel(ax, figure: GridFigure, panel, lib) -> None:
    height, width = figure.walls.shape
    values = np.ma.masked_invalid(np.where(figure.walls, np.nan, panel.values))
    vmax = panel.vmax if panel.vmax else figure.vmax
    # edges in the cell's own colour: no hairline seams between cells in PDF viewers
    mesh = ax.pcolormesh(values, cmap=lib["cmap"], norm=lib["Normalize"](-vmax, vmax),
                         edgecolors="face", linewidth=0.25, antialiased=False,
                         rasterized=height * width > RASTER_CELLS)
    mesh.set_gid(f"cells-{panel.title.split()[0] if panel.title else 'blank'}")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.5)
        spine.set_color("#3c3c3c")
    mark = np.asarray(colors.MARK) / 255.0
    if figure.start is not None:
        r, c = figure.start
        ax.plot([c + 0.5], [r + 0.5], "o", ms=2.2, color=mark, mec="none")
    if figure.goals:
        rows, cols = zip(*figure.goals, strict=True)
        ax.plot(np.add(cols, 0.5), np.add(rows, 0.5), "s", ms=3.0, mfc="none", mec=mark,
                mew=0.7)
    if figure.doors:
        starts = np.array([[c0 + 0.5, r0 + 0.5] for (r0, c0), _ in figure.doors])
        ends = np.array([[c1 + 0.5, r1 + 0.5] for _, (r1, c1) in figure.doors])
        delta = ends - starts
        ax.quiver(starts[:, 0] + 0.2 * delta[:, 0], starts[:, 1] + 0.2 * delta[:, 1],
                  0.6 * delta[:, 0], 0.6 * delta[:, 1], angles="xy", scale_units="xy",
                  scale=1, color=mark, width=0.012, headwidth=3.5, headlength=3.5)


def _colour_bar(fig, figure: GridFigure, st, fig_h: float, top: float, bar_w: float,
                lib) -> None:
    area = fig_h - top - 0.04
    bar_h = min(area * 0.9, 1.6)
    x = st.width - bar_w + 0.04
    y = (fig_h - top - area) + (area - bar_h) / 2
    ax = fig.add_axes((x / st.width, y / fig_h, 0.08 / st.width, bar_h / fig_h))
    ramp = np.linspace(-1.0, 1.0, 255)[:, None]  # an image: smooth in every viewer
    ax.imshow(ramp, cmap=lib["cmap"], norm=lib["Normalize"](-1.0, 1.0), aspect="auto",
              origin="lower", extent=(0.0, 1.0, -1.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    ax.set_ylim(-1, 1)
    ax.yaxis.tick_right()
    ax.spines["right"].set_visible(True)
    ax.spines["top"].set_visible(True)
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
    positions, labels = figure.bar_ticks()
    ax.yaxis.set_major_locator(lib["FixedLocator"](positions))
    ax.yaxis.set_major_formatter(lib["FixedFormatter"](labels))
    ax.tick_params(labelsize=st.font - 1, length=2, pad=1.5)
    if figure.bar_label:  # along the bar's right edge, beyond its tick labels
        fig.text(1 - 0.05 / st.width, (y + bar_h / 2) / fig_h, figure.bar_label, rotation=90,
                 ha="center", va="center", fontsize=st.font - 1.5, color=GREY)


# ---------------------------------------------------------------------------- curves


def curve_figure(figure: CurveFigure, size: str, dpi: int):
    """The figure's axes must be settled (renderers.axes.settle) for this size."""
    st = styles.style(size)
    lib = mpl()
    panel_w = styles.curve_width(st, figure.ncols)
    below = [_legend_rows(p, figure.ncols) * st.font * 1.35 / 72 for p in figure.panels]
    rows = [max(below[i] for i in range(r * figure.ncols,
                                          min(len(below), (r + 1) * figure.ncols)))
            for r in range(figure.nrows)]
    top = heading_height(figure, st)
    title_h = st.font * 1.6 / 72
    # below the last row only its tick labels, step label and legend
    fig_h = top + sum(title_h + st.curve_h + st.vgap + extra for extra in rows) - st.vgap + 0.36
    fig = lib["Figure"](figsize=(st.width, fig_h), dpi=dpi)
    heading(fig, figure, st, fig_h)
    y_top = fig_h - top
    for row in range(figure.nrows):
        y_top -= title_h
        for col in range(figure.ncols):
            index = row * figure.ncols + col
            if index >= len(figure.panels):
                break
            x = st.left + col * (panel_w + st.hgap)
            y = y_top - st.curve_h
            ax = fig.add_axes((x / st.width, y / fig_h, panel_w / st.width,
                               st.curve_h / fig_h))
            _curve_panel(ax, figure.panels[index], st, lib, figure.ncols)
        y_top -= st.curve_h + st.vgap + rows[row]
    return fig


def _legend_rows(panel: CurvePanel, ncols: int) -> int:
    labelled = sum(bool(line.label) for line in panel.lines)
    if labelled < 2 or panel.legend != "outside":
        return 0
    return -(-labelled // _legend_cols(labelled, ncols))


def _legend_cols(labelled: int, ncols: int) -> int:
    return min(labelled, 5 if ncols == 1 else 4)


# A line's style by its pass through the palette: solid, then dash-dot, then dotted (the
# plain dash is the exact values' lines).
_PASS_STYLES: tuple = ("-", (0, (6, 1.5, 1.5, 1.5)), (0, (1, 1.2)))


def _curve_panel(ax, panel: CurvePanel, st, lib, ncols: int) -> None:
    x_axis, y_axis = panel.x_axis, panel.y_axis
    if y_axis.scale == "log":
        ax.set_yscale("log")
    elif y_axis.scale == "symlog":
        ax.set_yscale("symlog", linthresh=y_axis.linthresh)
    labelled = 0
    for line in panel.lines:
        color = colors.line_color(line.color)
        if line.band is not None:
            band = ax.fill_between(line.steps, line.band[0], line.band[1], color=color,
                                   alpha=0.2, lw=0)
            band.set_gid("band")
        labelled += bool(line.label)
        ax.plot(line.steps, line.values, color=color,
                label=tex_safe(line.label) if line.label else "_nolegend_",
                lw=(1.4 if line.bold else 0.9) * (0.8 if ncols == 1 else 1.0),
                ls=(0, (3, 1.5)) if line.dashed else _PASS_STYLES[
                    min(colors.palette_pass(line.color), len(_PASS_STYLES) - 1)],
                zorder=line.zorder)
    ax.set_xlim(*x_axis.view)
    ax.set_ylim(*y_axis.view)
    for axis, settled in ((ax.xaxis, x_axis), (ax.yaxis, y_axis)):
        axis.set_major_locator(lib["FixedLocator"](settled.ticks))
        axis.set_major_formatter(lib["FixedFormatter"](settled.mathtext or settled.labels))
        axis.set_minor_locator(lib["NullLocator"]())
    ax.tick_params(labelsize=st.font, pad=2)
    ax.grid(True, color="#e5e5e5", lw=0.5)
    ax.set_axisbelow(True)
    ax.text(0.0, 1.03, tex_safe(panel.title), transform=ax.transAxes, fontsize=st.font + 0.5,
            va="bottom")
    ax.annotate(panel.xlabel, xy=(1.0, 0.0), xycoords="axes fraction", xytext=(0, -st.font * 2),
                textcoords="offset points", ha="right", va="top", fontsize=st.font,
                color=GREY)
    ax.annotate(tex_safe(panel.ylabel), xy=(0.0, 0.5), xycoords="axes fraction",
                xytext=(-st.left * 72 + 2, 0), textcoords="offset points", ha="left",
                va="center", rotation=90, fontsize=st.font)
    if labelled > 1:  # one curve: the panel title names it
        if panel.legend == "outside":
            count = sum(bool(line.label) for line in panel.lines)
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.22), frameon=False,
                      borderaxespad=0.0, ncol=_legend_cols(count, ncols), fontsize=st.font,
                      handlelength=1.4, columnspacing=1.0, handletextpad=0.4)
        else:
            ax.legend(loc=panel.legend, frameon=False, fontsize=st.font, handlelength=1.4)
