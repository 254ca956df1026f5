"""A convenience base for renderers that draw every grid kind one way and every curve
kind another (all built-ins do). Third-party renderers may subclass it or not."""

from __future__ import annotations

from renderers import RenderOptions
from renderers.figures import CurveFigure, GridFigure


class GridCurveRenderer:
    name = "base"
    extension = ".bin"
    # the built-in drawing code's version (renderers/drawn_with.py): bumped when the same
    # run and options give different figures; 2: eigenvectors labelled e1..ed (were e0..);
    # 3: a grid figure of few panels widens to hold its heading (it was cut at the right)
    drawing_version = 3

    def __init__(self, options: RenderOptions | None = None):
        self.options = options or RenderOptions()

    def grid(self, figure: GridFigure) -> bytes:
        raise NotImplementedError

    def curves(self, figure: CurveFigure) -> bytes:
        raise NotImplementedError

    def ground_truth_eigenvectors(self, figure: GridFigure) -> bytes:
        return self.grid(figure)

    def learned_eigenvectors(self, figure: GridFigure) -> bytes:
        return self.grid(figure)

    def final_comparison(self, figure: GridFigure) -> bytes:
        return self.grid(figure)

    def learning_curves(self, figure: CurveFigure) -> bytes:
        return self.curves(figure)

    def dual_variable_evolution(self, figure: CurveFigure) -> bytes:
        return self.curves(figure)

    def cosine_similarity(self, figure: CurveFigure) -> bytes:
        return self.curves(figure)

    def comparison(self, figure: CurveFigure) -> bytes:
        return self.curves(figure)
