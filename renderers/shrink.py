"""Grids too big for a terminal, drawn smaller: the TUI's panels and the text renderer
share this one reduction."""

from __future__ import annotations

import numpy as np


def shrunk(grid: np.ndarray, factor: int) -> np.ndarray:
    """Each `factor` x `factor` block of cells as one: the mean of its free cells, or a
    wall where walls are most of it; for a layout too big for the terminal."""
    if factor <= 1:
        return grid
    height, width = grid.shape
    padded = np.full((-(-height // factor) * factor, -(-width // factor) * factor), np.nan)
    padded[:height, :width] = grid
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor,
                            factor).swapaxes(1, 2).reshape(padded.shape[0] // factor,
                                                           padded.shape[1] // factor, -1)
    free = np.isfinite(blocks)
    total = np.where(free, blocks, 0.0).sum(axis=-1)
    count = free.sum(axis=-1)
    inside = np.ones_like(padded, dtype=bool)  # padding beyond the layout counts as wall
    inside[height:, :] = inside[:, width:] = False
    cells = inside.reshape(blocks.shape[0], factor, blocks.shape[1], factor).sum(axis=(1, 3))
    return np.where(2 * count >= cells, total / np.maximum(count, 1), np.nan)


def factor_to_fit(width: int, cell_width: int, columns: int) -> int:
    """The smallest shrink factor that fits `width` cells of `cell_width` characters
    into `columns` characters (1: it fits as it is)."""
    return max(1, -(-width * cell_width // max(1, columns)))
