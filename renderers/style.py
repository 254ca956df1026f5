"""Figure sizes and fonts for a paper: one column (about 3.3 in) or the page (6.8 in).

Fonts are chosen for the size the figure is printed at (no scaling in the paper), so
a column figure uses smaller type than a page one, as a journal's own captions do.
Every renderer reads the same numbers: the matplotlib formats for inches and points,
renderers/axes.py for how many ticks fit an axis.
"""

from __future__ import annotations

from dataclasses import dataclass

SIZES = ("column", "page")


@dataclass(frozen=True)
class Style:
    width: float  # inches
    font: float  # points: tick labels, legends, panel titles
    title: float  # points: the figure heading
    curve_h: float  # inches: one curve panel's plot area
    curve_cols: int  # curve panels side by side (at most)
    left: float  # inches: room for y tick labels and the axis label
    right: float
    hgap: float  # inches between curve panels side by side
    vgap: float  # inches between rows of curve panels (x labels, titles)
    grid_cols: int  # grid panels per row before wrapping


STYLES = {
    "column": Style(width=3.3, font=6.5, title=7.5, curve_h=1.35, curve_cols=1, left=0.52,
                    right=0.2, hgap=0.5, vgap=0.62, grid_cols=5),
    "page": Style(width=6.8, font=8.0, title=9.0, curve_h=1.9, curve_cols=2, left=0.62,
                  right=0.25, hgap=0.62, vgap=0.72, grid_cols=5),
}


def style(size: str) -> Style:
    return STYLES[size]


def curve_columns(panels: int, wanted: int, size: str) -> int:
    """Curve panels per row: what the figure asks, at most what the width holds."""
    return max(1, min(panels, wanted, STYLES[size].curve_cols))


def curve_width(st: Style, ncols: int) -> float:
    """Inches of one curve panel's plot area."""
    return (st.width - st.left - st.right - (ncols - 1) * st.hgap) / ncols
