"""What the network sees of a cell: --obs xy | pixels | grid | both (numpy only).

- xy: the cell's (x, y) scaled to [-1, 1] (Layout.coordinates), allo's default.
- pixels: an RGB image of the whole grid, obs_size x obs_size, walls grey (110), free
  cells white (255), the agent a blue disc (0, 0, 255) in its cell; a cell covers
  obs_size / height by obs_size / width pixels, as the official code's pygame canvas
  (tarod13/laplacian_dual_dynamics, src/env/grid/grid.py, `_create_canvas`, without
  gridlines or target, which its pixel observations also leave out).
- grid: one pixel per cell, the same colours (grid.py `_create_grid_representation`).
- both: xy beside the pixel image's features (the official `both`).

Images are scaled to [0, 1] (the official code divides by 255), centred on the mean
image over the free cells (allo.encoder.observation_inputs; allo's choice, not the
official code's) and go through a small ConvNet (allo/encoder.py, calibrated before the
first step so its features vary across cells) before the MLP. Every
free cell's observation is rendered once per run, (N, 3, H, W), and the network evaluates
all of them every step, as for xy.
"""

from __future__ import annotations

import numpy as np

from allo.config import OBSERVATIONS
from allo.layouts import Layout

IMAGE_OBSERVATIONS = ("pixels", "grid", "both")
WALL, FREE, AGENT = (110, 110, 110), (255, 255, 255), (0, 0, 255)
# Without --obs-size a cell gets this many pixels along the grid's larger side. The
# official code draws a 64 x 64 window whatever the grid (about 5 px per cell on
# GridRoom-4, 1.6 on GridRoom-64). Two are the fewest that give every cell a block of
# its own on square grids (the agent's disc then fills its 2 x 2 block) while the
# ConvNet's input stays 4 values per cell and colour, so pixel training costs a small
# multiple of xy's (BENCHMARKS.md); --obs-size draws finer discs.
PIXELS_PER_CELL = 2


def default_obs_size(layout: Layout) -> int:
    return PIXELS_PER_CELL * max(layout.height, layout.width)


def obs_size(layout: Layout, requested: int | None) -> int:
    return requested if requested is not None else default_obs_size(layout)


def check(obs: str, requested: int | None, layout: Layout) -> None:
    """ValueError (one line) for an observation setting this layout cannot have."""
    if obs not in OBSERVATIONS:
        raise ValueError(f"--obs {obs!r}: choose from {', '.join(OBSERVATIONS)}")
    if requested is not None and obs not in ("pixels", "both"):
        raise ValueError(f"--obs-size sets the image of --obs pixels or both, not --obs {obs}")
    side = max(layout.height, layout.width)
    if requested is not None and requested < side:
        raise ValueError(f"--obs-size {requested} is too small for the {layout.height} x "
                         f"{layout.width} grid {layout.name!r}: each cell needs a pixel "
                         f"(at least {side}; default {default_obs_size(layout)})")


def background(layout: Layout) -> np.ndarray:
    """(height, width, 3) uint8: walls grey, free cells white."""
    image = np.empty((layout.height, layout.width, 3), dtype=np.uint8)
    image[:] = WALL
    free = np.asarray(layout.free_cells, dtype=np.int64).reshape(-1, 2)
    image[free[:, 0], free[:, 1]] = FREE
    return image


def grid_images(layout: Layout) -> np.ndarray:
    """(N, height, width, 3) uint8: one pixel per cell, the agent in cell n of image n."""
    free = np.asarray(layout.free_cells, dtype=np.int64).reshape(-1, 2)
    images = np.repeat(background(layout)[None], len(free), axis=0)
    images[np.arange(len(free)), free[:, 0], free[:, 1]] = AGENT
    return images


def pixel_images(layout: Layout, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8: the grid drawn at `size` pixels, the agent a disc."""
    rows = (np.arange(size) + 0.5) * layout.height / size  # pixel centres, in cells
    cols = (np.arange(size) + 0.5) * layout.width / size
    cell_row, cell_col = rows.astype(np.int64), cols.astype(np.int64)
    canvas = background(layout)[cell_row[:, None], cell_col[None, :]]  # (size, size, 3)
    free = np.asarray(layout.free_cells, dtype=np.int64).reshape(-1, 2)
    images = np.repeat(canvas[None], len(free), axis=0)
    # the disc inscribed in the agent's cell: pixel centres within half a cell of its centre
    dy = rows[None, :] - (free[:, :1] + 0.5)  # (N, size)
    dx = cols[None, :] - (free[:, 1:] + 0.5)
    inside = (dy[:, :, None] ** 2 + dx[:, None, :] ** 2) <= 0.25  # (N, size, size)
    images[inside] = AGENT
    return images


def images(layout: Layout, obs: str, size: int | None) -> np.ndarray:
    """(N, 3, H, W) float32 in [0, 1]: every free cell's image observation."""
    raw = grid_images(layout) if obs == "grid" else pixel_images(layout, obs_size(layout, size))
    return np.ascontiguousarray(raw.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
