"""A convenience base for renderers: options kept, one method per figure shape.
Third-party renderers may subclass it or not (docs/renderers.md)."""

from __future__ import annotations

from renderers import RenderOptions
from renderers.figures import CurveFigure, GridFigure


class GridCurveRenderer:
    name = "base"
    extension = ".bin"
    # the built-in drawing code's version (renderers/drawn_with.py): bumped when the same
    # run and options give different figures; 2: eigenvectors labelled e1..ed (were e0..);
    # 3: a grid figure of few panels widens to hold its heading; 4: one matplotlib drawing
    # for png / svg / pdf, matplotlib's ticks everywhere, paper sizes and scales;
    # 5: mean |cos| in the grid headings to four decimals (0.9995 read 1.000)
    drawing_version = 5

    def __init__(self, options: RenderOptions | None = None):
        self.options = options or RenderOptions()

    def grid(self, figure: GridFigure) -> bytes:
        raise NotImplementedError

    def curves(self, figure: CurveFigure) -> bytes:
        raise NotImplementedError
