"""PDF renderer: matplotlib's PDF of the one drawing, for papers to embed (vector
grids, TrueType fonts)."""

from __future__ import annotations

from renderers.mplrender import MatplotlibRenderer


class PdfRenderer(MatplotlibRenderer):
    name = "pdf"
    extension = ".pdf"
