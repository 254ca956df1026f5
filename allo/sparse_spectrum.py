"""The top eigenpairs of L = I - T from the matrix-free pair law, for grids of any size.

The same eigenproblem as allo/spectrum.py (docs/math.md section 4): S = R^-1/2 D_sym R^-1/2
on the cells the data reaches, whose largest eigenvalues mu are 1 - lambda for the
smallest lambda of L. Here S is a scipy LinearOperator built on allo.pair_operator (a
product with S costs 2K sparse products with P_G, memory K x N), and ARPACK's Lanczos
(`scipy.sparse.linalg.eigsh`, which="LA") finds only the eigenpairs a run needs: the top
`count`, plus as many more as complete the eigenspace of the last one (a repeated
eigenvalue is scored by its whole eigenspace, allo/metrics.py).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from allo.layouts import Layout
from allo.metrics import eigenspace_blocks
from allo.pair_operator import PairLawOperator
from allo.spectrum import SUPPORT_FLOOR, GroundTruth, fix_signs, operator_spectrum

# Eigenpairs asked for beyond `count`, so the eigenspace of the last one is seen to end.
EXTRA_PAIRS = 4
# Lanczos basis size: at least this many vectors (more converges in fewer products).
MIN_BASIS = 40
# Fixed start vector: the same layout always gives the same signs and the same vectors.
START_SEED = 0


def sparse_ground_truth(layout: Layout, gamma: float, num_steps: int, max_len: int,
                        count: int) -> GroundTruth:
    """The `count` smallest eigenvalues of L (ascending) and their rho-orthonormal
    eigenvectors (N, >= count), extended to a whole eigenspace at the end."""
    law = PairLawOperator(layout, gamma, num_steps, max_len)
    rho = law.state_law()
    support = rho > SUPPORT_FLOOR
    idx = np.flatnonzero(support)
    n, m = layout.num_free, idx.size
    inv_sqrt = 1.0 / np.sqrt(rho[idx])

    def product(block: np.ndarray) -> np.ndarray:
        full = np.zeros((n,) + block.shape[1:])
        full[idx] = (inv_sqrt if block.ndim == 1 else inv_sqrt[:, None]) * block
        out = law.apply_symmetric(full)[idx]
        return (inv_sqrt if block.ndim == 1 else inv_sqrt[:, None]) * out

    if m <= count + EXTRA_PAIRS + 1:  # Lanczos needs k < m - 1: tiny layouts go dense
        return operator_spectrum(law.dense())
    kernel = LinearOperator((m, m), matvec=product, matmat=product, dtype=np.float64)
    start = np.random.default_rng(START_SEED).standard_normal(m)
    wanted = count + EXTRA_PAIRS
    while True:
        mu, vecs = eigsh(kernel, k=wanted, which="LA", tol=0.0, v0=start,
                         ncv=min(m, max(MIN_BASIS, 2 * wanted + 1)))
        order = np.argsort(-mu, kind="stable")
        values = np.clip(1.0 - mu[order], 0.0, None)
        last = next(b for b in eigenspace_blocks(values) if min(count, m) - 1 in b)
        if last.stop < wanted or wanted >= m - 1:
            break
        wanted = min(m - 1, wanted + 2 * EXTRA_PAIRS)
    vectors = np.zeros((n, wanted))
    vectors[idx] = vecs[:, order] * inv_sqrt[:, None]
    return GroundTruth(values, fix_signs(vectors), rho, None, support)
