"""Sampled cells: a training step whose network runs on its batch's own cells only.

With --batch-size B, the step may evaluate the network on every free cell and weigh that
table's rows by the batch's counts (allo/data.PairSampler.weights: N forwards and N x N
weights per step), or on the batch's 4B cells alone: the B pairs' s and s' and the two
constraint batches c1, c2 (PairSampler.cells). Both give the same estimates from the same
draws; the second costs O(B) per step instead of O(N + N^2 d), which is what lets training
cost stop growing with the grid (docs/math.md section 16). Rows keep a fixed order and
count (s, s', c1, c2, B each, duplicates included), so shapes are static and a CUDA graph
captures the step; removing duplicates would make the shape depend on the draw.
"""

from __future__ import annotations

import torch

from allo.objective import Weights

ROWS_PER_PAIR = 4  # s, s', c1, c2
# The whole-table step adds N x N work to its N forwards (the batch's pair histogram and
# the product with its L_W): in forwards of one cell, about N^2 / TABLE_SCALE, the scale
# fitted to `bench_cells.py --step-cost` (BENCHMARKS.md, "Large grids").
TABLE_SCALE = 800


def use_cells(batch_size: int | None, num_cells: int, obs: str) -> bool:
    """Whether a step runs the network on its batch's cells: where its 4B rows cost less
    than the whole table's step, N forwards plus its N x N work (so a batch of the paper's
    1024 pairs weighs the table up to about 1450 cells), for (x, y) inputs (an image
    encoder's inputs are not gathered by cell)."""
    if not batch_size or obs != "xy":
        return False
    return ROWS_PER_PAIR * batch_size < num_cells * (1.0 + num_cells / TABLE_SCALE)


def row_weights(num_seeds: int, batch_size: int, device: torch.device) -> Weights:
    """The batch as weights on its own rows: pair b joins rows b and B + b (pair_rows),
    rows [2B, 3B) and [3B, 4B) are the constraint batches, 1 / B each. Fixed for a run."""
    rows = ROWS_PER_PAIR * batch_size
    states1 = torch.zeros(num_seeds, rows, device=device)
    states2 = torch.zeros(num_seeds, rows, device=device)
    states1[:, 2 * batch_size:3 * batch_size] = 1.0 / batch_size
    states2[:, 3 * batch_size:] = 1.0 / batch_size
    return Weights(torch.empty(0, device=device), states1, states2, pair_rows=batch_size)


def gather(inputs: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(N, k) inputs of every cell -> (S, 4B, k) inputs of an (S, 4, B) batch's rows."""
    seeds = cells.shape[0]
    return inputs.index_select(0, cells.reshape(-1)).view(seeds, -1, inputs.shape[-1])


def scatter(rows: torch.Tensor, cells: torch.Tensor, num_cells: int) -> torch.Tensor:
    """(S, 4B, d) row values -> (S, N, d), summed per cell: what the rows' gradient is as
    a gradient of the whole table (tests compare the two paths with it)."""
    seeds, _, d = rows.shape
    flat = cells.reshape(seeds, -1)
    out = torch.zeros(seeds, num_cells, d, dtype=rows.dtype, device=rows.device)
    return out.scatter_add_(1, flat[..., None].expand(-1, -1, d), rows)
