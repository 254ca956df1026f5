"""Exact ground truth: the operator that allo's sampling scheme induces, and its spectrum.

docs/math.md derives every step. In short: the data collection (random walk, goals that
end episodes, episode-length limit, a fixed budget of steps per environment with resets)
and the pair sampler (offset k ~ Geometric(1 - gamma), truncated at the episode's end)
define an expected joint law D(s, s') of training pairs. Symmetrised, with marginal rho,
it gives the reversible kernel T = diag(rho)^-1 D_sym and the Laplacian L = I - T.
ALLO's graph term 1/2 E[(u(s) - u(s'))^2] equals <u, L u>_rho and its constraint batches
are drawn from rho, so ALLO learns the rho-orthonormal eigenvectors of L, and the
eigenvalue estimates are lambda_i = -beta_ii / 2.

Convention used everywhere (run.json "eigenvalue_convention"): eigenvalues of L = I - T,
ascending, lambda_1 = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allo.layouts import Layout

CONVENTION = "laplacian_I_minus_T"
# Terms of the offset series beyond this relative weight are summed in closed form.
SERIES_TOLERANCE = 1e-14
# Cells whose state law rho is below this are off the support (the data never reaches them).
SUPPORT_FLOOR = 1e-15
# Entries within this relative distance of a vector's largest magnitude tie for its sign.
SIGN_TIE = 1e-6
# Up to this many free cells the dense path (N x N matrices, numpy's eigh) is used when the
# caller says how many eigenpairs it needs; above it, the matrix-free one
# (allo/sparse_spectrum.py), whose time and memory grow about linearly in N. Set at
# gamma 0.8; the dense series costs N^3 per term and a larger gamma needs more terms
# (`dense_is_cheaper`).
DENSE_MAX_CELLS = 600
DENSE_REFERENCE_GAMMA = 0.8


@dataclass
class GroundTruth:
    # ascending, of L = I - T on the support: all N (dense path, NaN-padded off the
    # support) or the top ones a run needs (sparse path, a whole eigenspace at the end)
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray  # (N, len(eigenvalues)) rho-orthonormal; zero off the support
    rho: np.ndarray  # (N,) state law of the constraint batches
    # (N, N) symmetrised joint law of training pairs, sums to 1; None from the sparse path
    pair_law: np.ndarray | None
    support: np.ndarray  # (N,) bool: cells the data ever visits

    def top(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        return self.eigenvalues[:d], self.eigenvectors[:, :d]


def absorbing_transitions(layout: Layout) -> np.ndarray:
    """Random-walk transitions where a goal, once reached, is never left."""
    matrix = layout.transition_matrix()
    goals = layout.goal_mask()
    matrix[goals] = 0.0
    matrix[goals, goals] = 1.0
    return matrix


def alive_mass(layout: Layout, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(beta, lengths): beta[a] is the law of the state at age a of an episode still
    running (a transition starts there); lengths[a] = P(episode has a + 1 transitions).
    """
    transitions = layout.transition_matrix()
    goals = layout.goal_mask()
    beta = np.zeros((max_len, layout.num_free))
    lengths = np.zeros(max_len)
    current = layout.start_distribution()
    for age in range(max_len):
        beta[age] = current
        nxt = current @ transitions
        ended = nxt[goals].sum()
        nxt[goals] = 0.0
        if age == max_len - 1:
            ended = nxt.sum() + ended
        lengths[age] = ended
        current = nxt
    return beta, lengths


def episode_start_density(lengths: np.ndarray, num_steps: int) -> np.ndarray:
    """Renewal density r[t] = P(an episode starts at step t) for one environment."""
    starts = np.zeros(num_steps)
    starts[0] = 1.0
    for t in range(1, num_steps):
        upto = min(t, len(lengths))
        # An episode of a transitions that started at t - a ends just before t.
        starts[t] = starts[t - upto : t][::-1] @ lengths[:upto]
    return starts


def horizon_weights(layout: Layout, num_steps: int, max_len: int) -> np.ndarray:
    """w[tau - 1, s]: expected number of pair sources at s with tau steps left before the
    episode is cut (by its length limit or the step budget), per environment.
    """
    max_len = min(max_len, num_steps)
    beta, lengths = alive_mass(layout, max_len)
    starts = episode_start_density(lengths, num_steps)
    # An episode starting at t0 may run h = min(max_len, num_steps - t0) transitions.
    horizon_count = np.zeros(max_len + 1)
    for t0, weight in enumerate(starts):
        horizon_count[min(max_len, num_steps - t0)] += weight
    weights = np.zeros((max_len, layout.num_free))
    for h in range(1, max_len + 1):
        if horizon_count[h] == 0.0:
            continue
        # Age a in [0, h) has tau = h - a steps left.
        weights[h - 1 :: -1][:h] += horizon_count[h] * beta[:h]
    return weights


def pair_law(layout: Layout, gamma: float, num_steps: int, max_len: int) -> np.ndarray:
    """Expected joint law D(s, s') of one sampled training pair (not symmetrised)."""
    if not 0.0 < gamma < 1.0:
        raise ValueError("gamma must lie in (0, 1)")
    transitions = absorbing_transitions(layout)
    weights = horizon_weights(layout, num_steps, max_len)
    n = layout.num_free
    # Offset law truncated at tau steps: M(1) = P, M(tau + 1) = (1 - g) P + g P M(tau).
    exact_terms = offset_terms(gamma)
    joint = np.zeros((n, n))
    offsets = transitions.copy()
    for tau in range(1, min(len(weights), exact_terms) + 1):
        joint += weights[tau - 1][:, None] * offsets
        offsets = (1.0 - gamma) * transitions + gamma * transitions @ offsets
    if len(weights) > exact_terms:
        # Beyond exact_terms, M(tau) equals its limit (1 - g) P (I - g P)^-1 to 1e-14.
        resolvent = np.linalg.solve((np.eye(n) - gamma * transitions).T, transitions.T).T
        limit = (1.0 - gamma) * resolvent
        joint += weights[exact_terms:].sum(axis=0)[:, None] * limit
    return joint / joint.sum()


def ground_truth(
    layout: Layout, gamma: float, num_steps: int, max_len: int, count: int | None = None
) -> GroundTruth:
    """Eigen-decomposition of L = I - T for the law allo's sampler really draws from.

    `count`: the eigenpairs needed (the top `count` and the rest of the last one's
    eigenspace); where the dense series costs more than at DENSE_MAX_CELLS cells and
    gamma 0.8 (`dense_is_cheaper`) they come from the matrix-free operator.
    Without it, every eigenpair, densely."""
    if count is not None and not dense_is_cheaper(layout.num_free, gamma, max_len):
        from allo.sparse_spectrum import sparse_ground_truth  # scipy only where needed

        return sparse_ground_truth(layout, gamma, num_steps, max_len, count)
    return operator_spectrum(pair_law(layout, gamma, num_steps, max_len))


def offset_terms(gamma: float) -> int:
    """Offsets before g^k falls below SERIES_TOLERANCE: the series `pair_law` sums term by
    term (and the offsets the data's sparse law enumerates, allo/sparse_law.py)."""
    return int(np.ceil(np.log(SERIES_TOLERANCE) / np.log(gamma))) + 1


def series_terms(gamma: float, max_len: int) -> int:
    """Dense N x N products `pair_law` runs before the closed-form tail."""
    return min(max_len, offset_terms(gamma))


def dense_is_cheaper(num_free: int, gamma: float, max_len: int) -> bool:
    """Whether the dense path costs no more than it did at DENSE_MAX_CELLS cells and
    gamma 0.8: up to 600 cells at 0.8, about 320 at 0.99 with 1000-step episodes."""
    reference = series_terms(DENSE_REFERENCE_GAMMA, 1000)
    return num_free**3 * series_terms(gamma, max_len) <= DENSE_MAX_CELLS**3 * reference


def operator_spectrum(joint: np.ndarray) -> GroundTruth:
    """Eigen-decomposition of L = I - T for any joint law of pairs (N, N): the exact one
    above, or a data set's own (allo.budget.data_ceiling compares the two)."""
    sym = 0.5 * (joint + joint.T)
    rho = sym.sum(axis=1)
    support = rho > SUPPORT_FLOOR
    n = joint.shape[0]
    idx = np.flatnonzero(support)
    inv_sqrt = 1.0 / np.sqrt(rho[idx])
    # S = R^-1/2 D_sym R^-1/2 is similar to T; its eigenvectors v give u = R^-1/2 v.
    kernel = sym[np.ix_(idx, idx)] * inv_sqrt[:, None] * inv_sqrt[None, :]
    kernel = 0.5 * (kernel + kernel.T)
    mu, vecs = np.linalg.eigh(kernel)
    order = np.argsort(-mu, kind="stable")
    eigenvalues = np.clip(1.0 - mu[order], 0.0, None)
    vectors = np.zeros((n, len(idx)))
    vectors[idx] = vecs[:, order] * inv_sqrt[:, None]
    vectors = fix_signs(vectors)
    # Off-support cells add no eigenvalue; pad so arrays stay (N, N).
    if len(idx) < n:
        pad = n - len(idx)
        eigenvalues = np.concatenate([eigenvalues, np.full(pad, np.nan)])
        vectors = np.concatenate([vectors, np.zeros((n, pad))], axis=1)
    return GroundTruth(eigenvalues, vectors, rho, sym, support)


def fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Deterministic signs: the largest-magnitude entry of each vector is positive.

    Where several entries tie for the largest (symmetric layouts: v and its mirror image),
    the first of them in cell order decides, so rounding noise never picks the sign.
    """
    magnitude = np.abs(vectors)
    near_top = magnitude >= (1.0 - SIGN_TIE) * magnitude.max(axis=0, keepdims=True)
    pivots = np.argmax(near_top, axis=0)
    signs = np.sign(vectors[pivots, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs
