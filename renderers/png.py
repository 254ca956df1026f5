"""PNG renderer (matplotlib, Agg backend).

matplotlib is imported on first use, never at module import, so listing or loading this
plugin stays cheap and the text path never pays for it. Layout is computed by hand in
inches (no tight_layout / constrained layout: they dominate the cost of small figures),
grids are one imshow of precomputed RGB per panel, and pyplot is never touched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection
from typing import Any

import numpy as np

from renderers import colors, raster
from renderers.base import GridCurveRenderer
from renderers.figures import CurveFigure, GridFigure

_MPL: dict[str, Any] = {}

CURVE_W, CURVE_H = 5.4, 3.2
# Figures with log axes (renderers.figures): their tick labels need mathtext.
LOG_AXIS_KINDS = frozenset({"learning_curves", "dual_variable_evolution"})
LEGEND_W = 1.15


def _mpl() -> dict[str, Any]:
    """Import matplotlib once per process, Agg only (renderers.mplimport says how)."""
    if not _MPL:
        from renderers.mplimport import import_agg

        loaded = import_agg()
        loaded["matplotlib"].rcParams.update(
            {
                "font.size": 9,
                "axes.titlesize": 9,
                "axes.labelsize": 9,
                "legend.fontsize": 8,
                "xtick.labelsize": 8,
                "ytick.labelsize": 8,
                "axes.spines.top": False,
                "axes.spines.right": False,
                "path.simplify": True,
            }
        )
        ticker = loaded["ticker"]
        _MPL.update(
            Figure=loaded["Figure"],
            Canvas=loaded["Canvas"],
            NullLocator=ticker.NullLocator,
            MaxNLocator=ticker.MaxNLocator,
            LogLocator=ticker.LogLocator,
            LogFormatter=ticker.LogFormatterSciNotation,
        )
    return _MPL


def encode_png(rgb: np.ndarray, dpi: int) -> bytes:
    """PNG bytes of an RGB array (Pillow ships with matplotlib)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="png", compress_level=3, dpi=(dpi, dpi))
    return buffer.getvalue()


def log_decades(lines) -> float:
    """How many decades the positive finite values of `lines` span (0 when none)."""
    low, high = math.inf, 0.0
    for line in lines:
        values = np.asarray(line.values, dtype=np.float64)
        positive = values[np.isfinite(values) & (values > 0)]
        if positive.size:
            low, high = min(low, float(positive.min())), max(high, float(positive.max()))
    return math.log10(high / low) if high > 0 else 0.0


def _tex_safe(text: str) -> str:
    """Text from run.json must not switch matplotlib into mathtext."""
    return text.replace("$", r"\$")


class PngRenderer(GridCurveRenderer):
    name = "png"
    extension = ".png"
    options_used = ("dpi",)  # the RenderOptions fields it reads

    def prepare(self, kinds: Collection[str] = ()) -> None:
        """Import matplotlib before worker processes fork, so they share it.

        Log-axis tick labels (10^-4) are mathtext, and the first mathtext string in a
        process builds matplotlib's parser (about 0.3 s of CPU); built here, every
        worker inherits it instead of building its own.
        """
        _mpl()
        if LOG_AXIS_KINDS.intersection(kinds):
            from matplotlib.mathtext import MathTextParser

            MathTextParser("agg").parse(r"$10^{0}$", self.options.dpi)

    def _save(self, fig) -> bytes:
        agg = _mpl()["Canvas"](fig)
        agg.draw()
        return encode_png(np.asarray(agg.buffer_rgba())[..., :3], self.options.dpi)

    # ------------------------------------------------------------------------ grids
    def grid(self, figure: GridFigure) -> bytes:
        """Text from matplotlib, everything else painted by numpy and pasted in.

        No axes, no image resampling: the cost is the text alone plus PNG encoding.
        """
        mpl = _mpl()
        dpi = self.options.dpi
        layout = raster.grid_layout(figure, dpi / 100)
        painted = raster.paint(figure, layout)
        fig = mpl["Figure"](figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi)
        for item in layout.texts:
            fig.text(
                item.x / layout.width,
                1 - item.y / layout.height,
                _tex_safe(item.text),
                fontsize=item.size,
                weight="bold" if item.bold else "normal",
                color=item.color,
                ha=item.ha,
                va=item.va,
                rotation=item.rotation,
                linespacing=1.15,
            )
        agg = mpl["Canvas"](fig)
        agg.draw()
        text = np.asarray(agg.buffer_rgba())[: layout.height, : layout.width, :3]
        out = np.full_like(painted, 255)
        out[: text.shape[0], : text.shape[1]] = text
        for y0, y1, x0, x1 in raster.painted_regions(figure, layout):
            out[y0:y1, x0:x1] = painted[y0:y1, x0:x1]
        return encode_png(out, dpi)

    # ------------------------------------------------------------------------ curves
    def curves(self, figure: CurveFigure) -> bytes:
        mpl = _mpl()
        outside = any(p.legend == "outside" for p in figure.panels)
        left, right = 0.75, (LEGEND_W + 0.25 if outside else 0.25)
        top, bottom, hgap, vgap = 0.62, 0.5, 0.75, 0.62
        fig_w = left + figure.ncols * CURVE_W + (figure.ncols - 1) * hgap + right
        fig_h = top + figure.nrows * CURVE_H + (figure.nrows - 1) * vgap + bottom
        fig = mpl["Figure"](figsize=(fig_w, fig_h))
        fig.text(
            left / fig_w,
            1 - 0.2 / fig_h,
            _tex_safe(figure.title),
            fontsize=11,
            weight="bold",
            va="center",
        )
        fig.text(
            left / fig_w,
            1 - 0.42 / fig_h,
            _tex_safe(figure.subtitle),
            fontsize=8,
            color="#555555",
            va="center",
        )
        for index, panel in enumerate(figure.panels):
            row, col = divmod(index, figure.ncols)
            x = left + col * (CURVE_W + hgap)
            y = fig_h - top - (row + 1) * CURVE_H - row * vgap
            ax = fig.add_axes((x / fig_w, y / fig_h, CURVE_W / fig_w, (CURVE_H - 0.25) / fig_h))
            self._curve_panel(ax, panel)
        return self._save(fig)

    @staticmethod
    def _curve_panel(ax, panel) -> None:
        """One panel. Titles and axis labels are plain text at fixed places: matplotlib's
        own set_title / set_xlabel measure every tick label to place them, which was a
        third of the figure's cost."""
        mpl = _mpl()
        labelled = 0
        for line in panel.lines:
            color = colors.line_color(line.color)
            if line.band is not None:
                low, high = line.band
                ax.fill_between(line.steps, low, high, color=color, alpha=0.18, lw=0)
            label = _tex_safe(line.label) if line.label else "_nolegend_"
            labelled += bool(line.label)
            ax.plot(
                line.steps,
                line.values,
                color=color,
                label=label,
                lw=2.0 if line.bold else 1.2,
                ls="--" if line.dashed else "-",
            )
        if panel.log_y:
            ax.set_yscale("log")
            # Minor ticks on log axes are hundreds of artists: most of the drawing time.
            ax.yaxis.set_minor_locator(mpl["NullLocator"]())
            if log_decades(panel.lines) < 2:  # decades alone would leave one label or none
                ax.yaxis.set_major_locator(mpl["LogLocator"](subs=(1.0, 2.0, 5.0)))
                # label every one of them (by default it skips some below a decade)
                ax.yaxis.set_major_formatter(
                    mpl["LogFormatter"](minor_thresholds=(math.inf, math.inf))
                )
        else:
            ax.yaxis.set_major_locator(mpl["MaxNLocator"](nbins=5))
        ax.xaxis.set_major_locator(mpl["MaxNLocator"](nbins=6, integer=True))
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        ax.text(0.0, 1.03, _tex_safe(panel.title), transform=ax.transAxes, fontsize=9, va="bottom")
        ax.annotate(
            panel.xlabel,
            xy=(0.5, 0.0),
            xycoords="axes fraction",
            xytext=(0, -20),
            textcoords="offset points",
            ha="center",
            va="top",
        )
        ax.annotate(
            panel.ylabel,
            xy=(0.0, 0.5),
            xycoords="axes fraction",
            xytext=(-36, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            rotation=90,
        )
        ax.grid(True, color="#e5e5e5", lw=0.6)
        ax.set_axisbelow(True)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        if labelled > 1:  # one curve: the panel title names it
            if panel.legend == "outside":
                ax.legend(
                    loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0.0
                )
            else:
                ax.legend(loc=panel.legend, frameon=False)
