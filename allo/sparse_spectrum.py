"""The top eigenpairs of L = I - T from the matrix-free pair law, for grids of any size.

The same eigenproblem as allo/spectrum.py (docs/math.md section 4): S = R^-1/2 D_sym R^-1/2
on the cells the data reaches; the smallest eigenvalues lambda of I - S are those of L.
Here I - S is a scipy LinearOperator built on allo.pair_operator (one product costs 2K
sparse products with P_G, memory K x N), and only the eigenpairs a run needs are found:
the top `count`, plus as many more as complete the eigenspace of the last one (a repeated
eigenvalue is scored by its whole eigenspace, allo/metrics.py).

The solver is LOBPCG (`scipy.sparse.linalg.lobpcg`) with a preconditioner from the plain
random walk. Without goals, a fixed start or cut episodes, T = (1 - g) P (I - g P)^-1
(docs/math.md (12)), so I - T = (I - P)(I - g P)^-1 and its inverse is (I - g P)(I - P)^-1:
with P_s = (P_G + P_G^T) / 2 on the support, (I - g P_s)((1 + eps) I - P_s)^-1 (one sparse
LU, symmetric positive definite) is close to (I - S)^-1 on every layout, so the iterations
do not grow with N (Lanczos, whose steps grow like 1 / sqrt(gap), needed thousands at
16384 cells). Where LOBPCG does not reach RESIDUAL_TOLERANCE, ARPACK's Lanczos
(`eigsh`) is the fallback. tests/test_sparse_spectrum.py checks the result against the
dense path to 1e-10 on every built-in and reference layout.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import LinearOperator, eigsh, lobpcg, splu

from allo.layouts import Layout
from allo.metrics import eigenspace_blocks
from allo.pair_operator import PairLawOperator
from allo.spectrum import SUPPORT_FLOOR, GroundTruth, fix_signs, operator_spectrum

# Eigenpairs asked for beyond `count`, so the eigenspace of the last one is seen to end.
EXTRA_PAIRS = 4
# LOBPCG stops when every residual norm |A x - lambda x| is below this; the eigenvectors'
# error is about that over the gap to the next eigenvalue.
RESIDUAL_TOLERANCE = 1e-12
# scipy's LOBPCG is asked for this much; `polish` then goes to RESIDUAL_TOLERANCE.
LOBPCG_TOLERANCE = 1e-9
MAX_ITERATIONS = 200
# Polishing steps before giving up for Lanczos.
POLISH_ITERATIONS = 60
# Shift that makes (1 + eps) I - P_s invertible (P_s has the eigenvalue 1).
PRECONDITIONER_SHIFT = 1e-6
# Fixed start vectors: the same layout always gives the same signs and the same vectors.
START_SEED = 0


def sparse_ground_truth(layout: Layout, gamma: float, num_steps: int, max_len: int,
                        count: int) -> GroundTruth:
    """The `count` smallest eigenvalues of L (ascending) and their rho-orthonormal
    eigenvectors (N, >= count), extended to a whole eigenspace at the end."""
    law = PairLawOperator(layout, gamma, num_steps, max_len)
    return spectrum_of(law.apply_symmetric, law.state_law(), law.transitions, gamma, count)


def spectrum_of(apply_symmetric: Callable[[np.ndarray], np.ndarray], rho: np.ndarray,
                walk: sparse.csr_matrix, gamma: float, count: int) -> GroundTruth:
    """The top of the spectrum of any pair law given by its product D_sym x (the exact
    law above, or a data set's own: allo.budget.data_ceiling) and its state law rho;
    `walk`: the layout's P_G, for the preconditioner."""
    support = rho > SUPPORT_FLOOR
    idx = np.flatnonzero(support)
    n, m = rho.size, idx.size
    if m <= 5 * (count + EXTRA_PAIRS):  # too small for a block solver: dense is instant
        return operator_spectrum(apply_symmetric(np.eye(n)))
    inv_sqrt = 1.0 / np.sqrt(rho[idx])

    def laplacian(block: np.ndarray) -> np.ndarray:
        """(I - S) block, on the support."""
        block = block.reshape(m, -1)
        full = np.zeros((n, block.shape[1]))
        full[idx] = inv_sqrt[:, None] * block
        return block - inv_sqrt[:, None] * apply_symmetric(full)[idx]

    operator = LinearOperator((m, m), matvec=laplacian, matmat=laplacian, dtype=np.float64)
    preconditioner = random_walk_preconditioner(walk, idx, gamma)
    rng = np.random.default_rng(START_SEED)
    wanted = count + EXTRA_PAIRS
    while True:
        values, vecs = smallest_eigenpairs(operator, preconditioner, wanted, rng)
        last = next(b for b in eigenspace_blocks(values) if count - 1 in b)
        if last.stop < wanted or 5 * (wanted + 2 * EXTRA_PAIRS) >= m:
            break
        wanted += 2 * EXTRA_PAIRS
    vectors = np.zeros((n, wanted))
    vectors[idx] = vecs * inv_sqrt[:, None]
    return GroundTruth(values, fix_signs(vectors), rho, None, support)


def random_walk_preconditioner(walk: sparse.csr_matrix, idx: np.ndarray, gamma: float
                               ) -> LinearOperator:
    """(I - g P_s)((1 + eps) I - P_s)^-1 on the support: close to (I - S)^-1 (see above)."""
    symmetric = (0.5 * (walk + walk.T)).tocsr()[idx][:, idx]
    eye = sparse.identity(idx.size, format="csc")
    factor = splu(((1.0 + PRECONDITIONER_SHIFT) * eye - symmetric).tocsc())
    smoothing = (eye - gamma * symmetric).tocsr()

    def apply(block: np.ndarray) -> np.ndarray:
        block = block.reshape(idx.size, -1)
        return smoothing @ factor.solve(np.ascontiguousarray(block))

    size = (idx.size, idx.size)
    return LinearOperator(size, matvec=apply, matmat=apply, dtype=np.float64)


def smallest_eigenpairs(operator: LinearOperator, preconditioner: LinearOperator, k: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k smallest eigenpairs of the symmetric `operator` (ascending values, unit vectors).

    scipy's LOBPCG finds the subspace fast but stalls around residuals of 1e-6..1e-8 (its
    Gram matrices lose definiteness), so `polish` takes it the rest of the way; Lanczos is
    the fallback where neither gets there.
    """
    start = rng.standard_normal((operator.shape[0], k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is checked by polish, not warned
        # ValueError, LinAlgError: its Gram matrices lost definiteness; polish goes on
        with contextlib.suppress(ValueError, np.linalg.LinAlgError):
            _, start = lobpcg(operator, start, M=preconditioner, largest=False,
                              tol=LOBPCG_TOLERANCE, maxiter=MAX_ITERATIONS)
    polished = polish(operator, preconditioner, start)
    if polished is not None:
        return polished
    mu, vectors = eigsh(LinearOperator(operator.shape, dtype=np.float64,
                                       matvec=lambda x: x - operator.matvec(x)),
                        k=k, which="LA", tol=0.0, v0=rng.standard_normal(operator.shape[0]))
    order = np.argsort(1.0 - mu, kind="stable")
    return np.clip(1.0 - mu[order], 0.0, None), vectors[:, order]


def polish(operator: LinearOperator, preconditioner: LinearOperator, start: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray] | None:
    """Preconditioned block steepest descent with Rayleigh-Ritz on [V, T R], every basis
    orthonormalised by SVD (stable to round-off); None if RESIDUAL_TOLERANCE is not met
    within POLISH_ITERATIONS."""
    k = start.shape[1]
    vectors = orthonormal(start)
    product = operator.matmat(vectors)
    for _ in range(POLISH_ITERATIONS):
        values, rotation = np.linalg.eigh(symmetric(vectors.T @ product))
        vectors, product = vectors @ rotation, product @ rotation
        residual = product - vectors * values
        if np.linalg.norm(residual, axis=0).max() <= RESIDUAL_TOLERANCE:
            return np.clip(values, 0.0, None), vectors
        step = preconditioner.matmat(residual)
        for _ in range(2):  # twice is enough (Kahan)
            step -= vectors @ (vectors.T @ step)
        step = orthonormal(step)
        basis = np.hstack([vectors, step])
        products = np.hstack([product, operator.matmat(step)])
        _, rotation = np.linalg.eigh(symmetric(basis.T @ products))
        vectors, product = basis @ rotation[:, :k], products @ rotation[:, :k]
    return None


def orthonormal(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the block's span, dropping directions below round-off."""
    left, singular, _ = np.linalg.svd(block, full_matrices=False)
    return left[:, singular > singular[0] * 1e-12]


def symmetric(matrix: np.ndarray) -> np.ndarray:
    return 0.5 * (matrix + matrix.T)
