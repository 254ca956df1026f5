"""A data set's pair law as a sparse matrix: counts of the pairs it really holds.

The law (docs/math.md (4)-(5)) gives the pair (s_i, target of transition i + k - 1) the
weight (1 - g) g^(k-1) for each source transition i and offset k before the episode's
last transition, and the episode's last target the rest, g^(k-1). A pair law of N cells
is an N x N table, but a data set reaches from each cell only the cells a short walk gets
to: its nonzero pairs grow like N, not N^2. Past MAX_OFFSET(g) offsets, where g^k falls
below the exact ground truth's series cut (allo.spectrum.SERIES_TOLERANCE), the rest of
a source's mass goes to the target reached there, as if its episode ended: the law still
sums to 1 and moves less than that cut.

Two builders give the same law: `dense_rows` (allo/data.py, the recursion over the whole
row of each transition, O(transitions x N)) for small layouts, and `enumerated` here
(O(transitions x MAX_OFFSET), memory O(nonzero pairs)) above DENSE_MAX_CELLS, where
it is faster (BENCHMARKS.md, "Large grids").
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from scipy import sparse

from allo.spectrum import offset_terms

# Up to this many cells a law may be dense: `empirical_pair_law` runs the dense recursion
# and the exact expectation (allo.data.DataLawWeights) multiplies dense N x N tables; above
# it the pairs are enumerated and L_W is a sparse CSR product. Both builders and both
# products cost about the same here on one CPU thread; above it the sparse ones win and
# dense memory grows like N^2 (BENCHMARKS.md, "Large grids").
DENSE_MAX_CELLS = 2500
# Raw (source, target, weight) entries handled at once: bounds the builder's scratch memory.
BLOCK_ENTRIES = 1 << 22
# Entries of the dense table that sums one block's duplicates (float64: 8 bytes each).
DENSE_BLOCK = 1 << 22

Law: TypeAlias = "np.ndarray | sparse.csr_matrix"  # a pair law: dense (tests) or sparse


def enumerated(source: np.ndarray, target: np.ndarray, episode_last: np.ndarray,
               gamma: float, num_cells: int) -> sparse.csr_matrix:
    """The (N, N) pair law of these transitions as CSR, summing to 1.

    Transitions are taken in order of their source cell, in groups whose raw entries fit
    BLOCK_ENTRIES and never split a cell, so each group fills its own rows and the rows
    are stacked at the end, never added.
    """
    size = source.size
    offsets = offset_terms(gamma)  # the exact truth's series cut
    powers = gamma ** np.arange(offsets)
    inside = (1.0 - gamma) * powers  # weight of offset k + 1 before the episode's end
    inside[-1] = powers[-1]  # the tail of the geometric law goes to the last offset kept
    order = np.argsort(source, kind="stable")
    sorted_source = source[order]
    bounds = np.searchsorted(sorted_source, np.arange(num_cells + 1))
    per_group = max(1, BLOCK_ENTRIES // offsets)
    blocks, row = [], 0
    while row < num_cells:
        # the most whole cells whose transitions fit one block (one cell at least)
        stop = max(row + 1, int(np.searchsorted(bounds, bounds[row] + per_group, "right")) - 1)
        stop = min(stop, num_cells)
        index = order[bounds[row]:bounds[stop]]
        blocks.append(_rows(index, source, target, episode_last, inside, powers,
                            row, stop - row, num_cells))
        row = stop
    law = sparse.vstack(blocks, format="csr")
    law.data /= size
    return law


def _rows(index: np.ndarray, source: np.ndarray, target: np.ndarray,
          episode_last: np.ndarray, inside: np.ndarray, powers: np.ndarray,
          first_row: int, num_rows: int, num_cells: int) -> sparse.csr_matrix:
    """Rows first_row .. first_row + num_rows of the unnormalised law, from the
    transitions `index` (in order of their source) whose sources lie there.

    Duplicates are summed in a dense table over only the columns these rows reach (a
    mask over the cells, no sort), at most DENSE_BLOCK entries at a time; its nonzeros
    come out row by row with their columns in order, a canonical CSR.
    """
    if index.size == 0:  # cells no transition leaves (a goal, or never reached)
        return sparse.csr_matrix((num_rows, num_cells))
    position = index[:, None] + np.arange(inside.size)[None, :]  # reached after each offset
    last = episode_last[index][:, None]
    # past the episode's end an offset adds nothing (weight 0, target clipped to the end)
    weight = np.where(position < last, inside[None, :],
                      np.where(position == last, powers[None, :], 0.0)).ravel()
    cols = target[np.minimum(position, last)].ravel()
    # rows are sorted: `index` is in order of source
    rows = np.repeat(source[index] - first_row, inside.size)
    reached = np.zeros(num_cells, dtype=bool)
    reached[cols] = True
    columns = np.flatnonzero(reached)
    compact = np.cumsum(reached) - 1
    width = columns.size
    key = rows.astype(np.int64) * width + compact[cols]
    step = max(1, DENSE_BLOCK // width)
    counts, indices, values = np.zeros(num_rows, dtype=np.int64), [], []
    for start in range(0, num_rows, step):
        stop = min(num_rows, start + step)
        lo, hi = np.searchsorted(rows, [start, stop])
        table = np.bincount(key[lo:hi] - start * width, weights=weight[lo:hi],
                            minlength=(stop - start) * width)
        nonzero = np.flatnonzero(table)
        counts[start:stop] = np.bincount(nonzero // width, minlength=stop - start)
        indices.append(columns[nonzero % width])
        values.append(table[nonzero])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sparse.csr_matrix((np.concatenate(values), np.concatenate(indices), indptr),
                             shape=(num_rows, num_cells))


def as_sparse(law: Law) -> sparse.csr_matrix:
    return law if sparse.issparse(law) else sparse.csr_matrix(np.asarray(law))


def row_sums(law: Law) -> np.ndarray:
    return np.asarray(law.sum(axis=1), dtype=np.float64).ravel()


def column_sums(law: Law) -> np.ndarray:
    return np.asarray(law.sum(axis=0), dtype=np.float64).ravel()


def symmetric(law: Law) -> Law:
    """(D + D^T) / 2, sparse if D is."""
    return (law + law.T) * 0.5


def dense(law: Law) -> np.ndarray:
    """The law as an (N, N) array: small layouts only (the dense eigensolver, tests)."""
    if isinstance(law, np.ndarray):
        return law
    return law.toarray()


def nbytes(law: Law) -> int:
    """Memory the law holds."""
    if isinstance(law, np.ndarray):
        return int(law.nbytes)
    return int(law.data.nbytes + law.indices.nbytes + law.indptr.nbytes)
