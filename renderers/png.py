"""PNG renderer: matplotlib's Agg raster of the one drawing (renderers/mpldraw.py)."""

from __future__ import annotations

from renderers.mplrender import MatplotlibRenderer


class PngRenderer(MatplotlibRenderer):
    name = "png"
    extension = ".png"
    options_used = ("dpi", "size")
