"""The built-in matplotlib renderers (png, svg, pdf): one class, three file formats.

Each format is this class with its own `name` and `extension`; the drawing itself is
renderers/mpldraw.py, so the three agree tick for tick.
"""

from __future__ import annotations

from collections.abc import Collection

from renderers import axes, kinds
from renderers.base import GridCurveRenderer
from renderers.figures import CurveFigure, GridFigure


class MatplotlibRenderer(GridCurveRenderer):
    name = "mpl"
    extension = ".mpl"
    options_used: tuple[str, ...] = ("size",)  # the RenderOptions fields it reads

    def prepare(self, names: Collection[str] = ()) -> None:
        """Import matplotlib before worker processes fork, so they share it.

        Log-axis tick labels (10^-4) are mathtext, and the first mathtext string in a
        process builds matplotlib's parser; built here, every worker inherits it.
        """
        from renderers import mpldraw

        mpldraw.mpl()
        if any(kinds.KINDS[name].shape == "curves" for name in names if name in kinds.KINDS):
            from matplotlib.mathtext import MathTextParser

            MathTextParser("agg").parse(r"$10^{0}$", self.options.dpi)

    def grid(self, figure: GridFigure) -> bytes:
        from renderers import mpldraw

        fig = mpldraw.grid_figure(figure, self.options.size, self.options.dpi)
        return mpldraw.save(fig, self.name, self.options.dpi)

    def curves(self, figure: CurveFigure) -> bytes:
        from renderers import mpldraw

        axes.settle_once(figure, self.options.size)
        fig = mpldraw.curve_figure(figure, self.options.size, self.options.dpi)
        return mpldraw.save(fig, self.name, self.options.dpi)
