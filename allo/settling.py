"""When a run of the default length may stop: its vectors have stopped turning.

A pair of nearly equal eigenvalues that starts swapped (u_i nearer e_(i+1)) leaves that
saddle at the rate of its gap from however deep in it started (docs/math.md section 8),
so no budget fixed before training covers every seed (BENCHMARKS.md, "Accuracy across
layouts"). The training data alone says whether a seed is there. ALLO's fixed
points are the eigenvectors of the data set's own operator L_data, and within the span
the vectors have learned, the Rayleigh-Ritz vectors of L_data are where they are headed;
a vector far from its Ritz vector (its *Ritz alignment*, docs/math.md section 10) is
still turning inside that span, which is exactly what a swapped pair does. The span
itself may still be turning too: u_d mixed with e_(d+1) is its own Ritz vector. So the
alignment also counts each vector's share inside the data set's own top eigenspace
(its eigenvectors come with its data ceiling, allo.budget.ceilings).

So an ALLO run whose steps were not given goes on past its budget, at the schedule's final
learning rate, looking again every CHECK_EVERY steps, while any vector of a seed is below
SETTLED_ALIGNMENT, and at most to EXTENSION_LIMIT times its budget. Raising the learning
rate again did not speed the turn (BENCHMARKS.md, "Accuracy across layouts"). Each seed
decides for itself from its own data and stops on its own step, so a batched seed still matches the
run it would have been alone; seeds that have stopped leave the batch (allo.training.batch.narrowed)
so they cost no more compute. No ground-truth vector is read (but for --data exact,
whose data set is the exact law); the blocks of repeated
eigenvalues (whose vectors may turn freely inside their eigenspace) come from the exact
spectrum, as the budget's do. GGDO is left alone: its fixed points are not L_data's
eigenvectors, so the test would keep it going to the limit for nothing.
"""

from __future__ import annotations

import numpy as np

from allo import sparse_law
from allo.sparse_law import Law

# A vector is still turning while its Ritz alignment is below this: the alignment of a
# close pair tracks that pair's |cos| to the exact eigenvectors once training is under
# way (BENCHMARKS.md, "Accuracy across layouts").
SETTLED_ALIGNMENT = 0.99
# Go on at most to this many times the budget.
EXTENSION_LIMIT = 2
# Steps between two looks at a seed that is still turning.
CHECK_EVERY = 1000


def ritz_alignment(learned: np.ndarray, pair_law: Law, blocks: list[range]
                   ) -> np.ndarray:
    """Per learned vector, the length of its part along the Ritz vectors of its own block
    (1: it is a Ritz vector, or a mixture of its block's; docs/math.md (14)).

    `learned`: (N, d) vectors; `pair_law`: the data set's (N, N) pair law (sparse); `blocks`:
    index ranges of (near-)repeated eigenvalues, covering 0..d-1. Vectors that are not
    linearly independent under rho have no Ritz basis: all zeros.
    """
    vectors = np.asarray(learned, dtype=np.float64)
    sym = sparse_law.symmetric(pair_law)
    rho = sparse_law.row_sums(sym)
    gram = vectors.T @ (rho[:, None] * vectors)  # <u_i, u_j>_rho
    energy = gram - vectors.T @ np.asarray(sym @ vectors)  # <u_i, L u_j>_rho
    try:
        factor = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return np.zeros(vectors.shape[1])
    inverse = np.linalg.inv(factor)
    _, rotation = np.linalg.eigh(inverse @ energy @ inverse.T)  # ascending Ritz values
    coefficients = inverse.T @ rotation  # Ritz vector k = U @ coefficients[:, k]
    cosines = (gram @ coefficients) / np.sqrt(np.diag(gram))[:, None]  # rows: unit length
    alignment = np.zeros(vectors.shape[1])
    for block in blocks:
        inside = [k for k in block if k < vectors.shape[1]]
        for i in inside:
            alignment[i] = float(np.sqrt(np.sum(cosines[i, inside] ** 2)))
    return alignment


def span_share(learned: np.ndarray, pair_law: Law, span: np.ndarray) -> np.ndarray:
    """Per learned vector, the length of its part inside the data set's eigenspace `span`
    in the rho geometry (docs/math.md (14b)): 1 inside it; cos theta for a vector turned
    by theta towards an eigenvector outside it (e_(d+1), which the Ritz alignment, inside
    the learned span, cannot see). `span`: (N, W) eigenvectors of the data set's operator,
    W >= d. A zero vector has no direction: 0."""
    vectors = np.asarray(learned, dtype=np.float64)
    basis = np.asarray(span, dtype=np.float64)
    rho = sparse_law.row_sums(sparse_law.symmetric(pair_law))
    weighted = rho[:, None] * basis
    inside = np.linalg.lstsq(basis.T @ weighted, weighted.T @ vectors, rcond=None)[0]
    projected = basis @ inside  # the rho-orthogonal projection onto the span
    length = np.einsum("ni,n,ni->i", vectors, rho, vectors)
    kept = np.einsum("ni,n,ni->i", projected, rho, projected)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.sqrt(np.clip(kept / length, 0.0, 1.0))
    return np.where(length > 0, share, 0.0)


def alignment(learned: np.ndarray, pair_law: Law, blocks: list[range],
              span: np.ndarray | None) -> np.ndarray:
    """How settled each learned vector is: its Ritz alignment inside the learned span
    times its share inside the data's own eigenspace (docs/math.md section 10)."""
    ritz = ritz_alignment(learned, pair_law, blocks)
    return ritz if span is None else ritz * span_share(learned, pair_law, span)


def turning(alignment: np.ndarray) -> list[int]:
    """0-based indices of the vectors still turning."""
    return [i for i, value in enumerate(alignment) if value < SETTLED_ALIGNMENT]


def extension_limit(budget_steps: int) -> int:
    return EXTENSION_LIMIT * budget_steps


def going_on_note(seed: int, step: int, alignment: np.ndarray, limit: int) -> str:
    """The line `allo train` prints when a seed first goes on past its budget."""
    lagging = turning(alignment)
    names = ", ".join(str(i + 1) for i in lagging[:4])
    values = ", ".join(f"{alignment[i]:.3f}" for i in lagging[:4])
    more = f" (and {len(lagging) - 4} more)" if len(lagging) > 4 else ""
    return (f"seed {seed}: vectors {names}{more} are still turning at step {step} "
            f"(alignment {values} with this data set's eigenvectors, settled at "
            f"{SETTLED_ALIGNMENT}); going on until they settle, at most to step {limit}")
