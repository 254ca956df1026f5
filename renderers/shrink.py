"""Grids too big for a terminal, drawn smaller: the TUI's panels and the text renderer
share this one reduction."""

from __future__ import annotations

import numpy as np

# Walls at most this share of the layout: rooms (GridRoom-64 35%, a 128 x 128 four-room
# 2%), not mazes (about half).
ROOMY = 0.4


def shrunk(grid: np.ndarray, factor: int) -> np.ndarray:
    """Each `factor` x `factor` block of cells as one: the mean of its free cells, or a
    wall where walls are most of it or where a thin wall runs across it; for a layout
    too big for the terminal.

    A one-cell wall between rooms is a small part of every block it crosses, so the
    majority rule alone would erase it (and its doors with it). A block is therefore also
    a wall where one of its rows or columns is wall from edge to edge with free cells on
    both sides, and the block holds no more than two such lines' worth of walls: a room's
    dividing wall shows and a door in it breaks the line and stays open, while the outer
    wall (free on one side only) does not darken the edge. Only in layouts that are
    mostly free space (ROOMY): in a maze, walls cross nearly every block, and drawing them
    would hide the values the panel is for."""
    if factor <= 1:
        return grid
    height, width = grid.shape
    padded = np.full((-(-height // factor) * factor, -(-width // factor) * factor), np.nan)
    padded[:height, :width] = grid
    blocks = _blocks(padded, factor)
    free = np.isfinite(blocks)
    total = np.where(free, blocks, 0.0).sum(axis=(2, 3))
    count = free.sum(axis=(2, 3))
    inside = np.ones_like(padded, dtype=bool)  # padding beyond the layout counts as wall
    inside[height:, :] = inside[:, width:] = False
    cells = _blocks(inside, factor).sum(axis=(2, 3))
    walls = inside & ~np.isfinite(padded)
    wall = 2 * count < cells
    if walls.sum() <= ROOMY * inside.sum():
        thin = (cells - count) <= 2 * factor
        crossed = (_separating_rows(walls, np.isfinite(padded), factor)
                   | _separating_rows(walls.T, np.isfinite(padded).T, factor).T)
        wall |= crossed & thin
    return np.where(wall, np.nan, total / np.maximum(count, 1))


def _blocks(array: np.ndarray, factor: int) -> np.ndarray:
    """(rows, cols, factor, factor) view of an array whose sides are multiples of factor."""
    rows, cols = array.shape[0] // factor, array.shape[1] // factor
    return array.reshape(rows, factor, cols, factor).swapaxes(1, 2)


def _separating_rows(walls: np.ndarray, free: np.ndarray, factor: int) -> np.ndarray:
    """(rows, cols) of blocks: whether one of the block's rows is wall all across the
    block with a free cell just above and just below it (in the grid, so a wall on the
    block's edge counts, and the layout's outer wall does not)."""
    above = np.zeros_like(free)
    above[1:] = free[:-1]
    below = np.zeros_like(free)
    below[:-1] = free[1:]
    full = np.all(_blocks(walls, factor), axis=3)  # (rows, cols, f)
    between = full & np.any(_blocks(above, factor), axis=3) & np.any(_blocks(below, factor),
                                                                       axis=3)
    return np.asarray(np.any(between, axis=2))


def factor_to_fit(width: int, cell_width: int, columns: int) -> int:
    """The smallest shrink factor that fits `width` cells of `cell_width` characters
    into `columns` characters (1: it fits as it is)."""
    return max(1, -(-width * cell_width // max(1, columns)))
