"""SVG renderer: matplotlib's SVG of the one drawing; grid cells are vector shapes
(group id "cells"), text stays text."""

from __future__ import annotations

from renderers.mplrender import MatplotlibRenderer


class SvgRenderer(MatplotlibRenderer):
    name = "svg"
    extension = ".svg"
