"""The exact pair law D of docs/math.md (6) as a sparse linear operator, never a matrix.

D(s, s') = (1 / num_steps) sum_tau w_tau(s) M(tau)(s, s'), with M(tau) the offset law
truncated at tau steps (5). Written out, M(tau) = sum_{k < tau} (1 - g) g^(k-1) P_G^k +
g^(tau-1) P_G^tau, so collecting the terms of each power of P_G:

    D = sum_{k=1..K} diag(b_k) P_G^k,
    b_k = (1 - g) g^(k-1) sum_{tau > k} w_tau  +  g^(k-1) w_k                        (6')

where K is where g^K falls below SERIES_TOLERANCE (the dense path's cut, allo/spectrum.py)
or the episode length, whichever is smaller. Then D x = sum_k b_k * (P^k x) and
D^T y = sum_k (P^T)^k (b_k * y) (Horner) cost K sparse products each, and memory is the
K x N table b: linear in N. The horizon weights w_tau (3) are built by streaming the
alive law beta over ages in chunks, so no (max_len x N) array is held either.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from allo.layouts import Layout
from allo.spectrum import SERIES_TOLERANCE, episode_start_density

# Ages of the alive law handled per dense product when building the horizon weights.
AGE_CHUNK = 128


def transitions_csr(layout: Layout, absorbing: bool = True) -> sparse.csr_matrix:
    """P (docs/math.md (1)) as a sparse matrix; `absorbing`: goals never left (P_G)."""
    table = layout.next_state_table()
    n, actions = table.shape
    rows = np.repeat(np.arange(n), actions)
    values = np.full(rows.size, 1.0 / actions)
    if absorbing:
        goals = layout.goal_mask()
        keep = ~goals[rows]
        rows, cols, values = rows[keep], table.ravel()[keep], values[keep]
        goal_cells = np.flatnonzero(goals)
        rows = np.concatenate([rows, goal_cells])
        cols = np.concatenate([cols, goal_cells])
        values = np.concatenate([values, np.ones(goal_cells.size)])
    else:
        cols = table.ravel()
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(n, n))
    matrix.sum_duplicates()
    return matrix


def series_terms(gamma: float, max_len: int) -> int:
    """K: powers of P_G kept (the dense path's exact_terms, capped by the episode length)."""
    exact = int(np.ceil(np.log(SERIES_TOLERANCE) / np.log(gamma))) + 1
    return min(exact, max_len)


def power_coefficients(layout: Layout, gamma: float, num_steps: int, max_len: int
                       ) -> np.ndarray:
    """b (K, N) of (6'), per environment (unnormalised), from the streamed alive law."""
    if not 0.0 < gamma < 1.0:
        raise ValueError("gamma must lie in (0, 1)")
    max_len = min(max_len, num_steps)
    n = layout.num_free
    terms = series_terms(gamma, max_len)
    alive = transitions_csr(layout, absorbing=False).T.tocsr()
    goals = layout.goal_mask()
    # horizon_count[h]: expected episodes that may run h transitions (docs/math.md (3))
    lengths = np.zeros(max_len)
    current = layout.start_distribution()
    near = np.zeros((terms, n))  # w_tau for tau = 1..K
    total = np.zeros(n)  # sum over every tau of w_tau
    # The start density needs every episode length first: one cheap pass for lengths.
    state = current.copy()
    for age in range(max_len):
        nxt = alive @ state
        ended = nxt[goals].sum()
        nxt[goals] = 0.0
        lengths[age] = ended + (nxt.sum() if age == max_len - 1 else 0.0)
        state = nxt
    starts = episode_start_density(lengths, num_steps)
    horizon = np.zeros(max_len + 1)
    np.add.at(horizon, np.minimum(max_len, num_steps - np.arange(num_steps)), starts)
    # later[a] = sum_{h > a} horizon[h]: episodes still able to run at age a
    later = np.concatenate([np.cumsum(horizon[::-1])[::-1][1:], [0.0]])[:max_len]
    # w_tau gets horizon[a + tau] beta_a (age a of an episode of horizon a + tau); only ages
    # with some horizon a + tau in reach add to it (one age per environment by default)
    taus = np.arange(1, terms + 1)[:, None]
    index = np.arange(max_len)[None, :] + taus
    weights = np.where(index <= max_len, horizon[np.minimum(index, max_len)], 0.0)
    used = np.flatnonzero(weights.any(axis=0))
    last_used = int(used[-1]) if used.size else -1
    pending: list[int] = []
    betas: list[np.ndarray] = []
    for age in range(max_len):
        total += later[age] * current
        if weights[:, age].any():
            pending.append(age)
            betas.append(current)
        if len(pending) == AGE_CHUNK or (pending and age == last_used):
            near += weights[:, pending] @ np.stack(betas)
            pending, betas = [], []
        if age == max_len - 1:
            break
        current = alive @ current
        current[goals] = 0.0
    powers = gamma ** np.arange(terms)[:, None]
    beyond = total[None, :] - np.cumsum(near, axis=0)  # sum_{tau > k} w_tau
    return powers * ((1.0 - gamma) * np.clip(beyond, 0.0, None) + near)


class PairLawOperator:
    """D (normalised to sum 1) and its transpose, applied to vectors or (N, m) blocks."""

    def __init__(self, layout: Layout, gamma: float, num_steps: int, max_len: int):
        self.transitions = transitions_csr(layout)
        self.transposed = self.transitions.T.tocsr()
        coefficients = power_coefficients(layout, gamma, num_steps, max_len)
        ones = np.ones(layout.num_free)
        self.coefficients = coefficients
        rows = self._apply(ones)
        self.coefficients = coefficients / rows.sum()
        self.num_cells = layout.num_free

    def _apply(self, x: np.ndarray) -> np.ndarray:
        power = np.asarray(x, dtype=np.float64)
        out, term = np.zeros_like(power), np.empty_like(power)
        for b in self.coefficients:
            power = self.transitions @ power
            np.multiply(power, b if power.ndim == 1 else b[:, None], out=term)
            out += term
        return out

    def apply(self, x: np.ndarray) -> np.ndarray:
        """D x."""
        return self._apply(x)

    def apply_transpose(self, y: np.ndarray) -> np.ndarray:
        """D^T y = sum_k (P^T)^k (b_k * y), by Horner's rule."""
        y = np.asarray(y, dtype=np.float64)
        acc, term = np.zeros_like(y), np.empty_like(y)
        for b in self.coefficients[::-1]:
            np.multiply(y, b if y.ndim == 1 else b[:, None], out=term)
            acc += term
            acc = self.transposed @ acc
        return acc

    def apply_symmetric(self, x: np.ndarray) -> np.ndarray:
        """D_sym x = (D + D^T) x / 2."""
        return 0.5 * (self.apply(x) + self.apply_transpose(x))

    def state_law(self) -> np.ndarray:
        """rho = (row + column sums of D) / 2 (docs/math.md section 4)."""
        return self.apply_symmetric(np.ones(self.num_cells))

    def dense(self) -> np.ndarray:
        """D as an (N, N) array: for tests on small layouts only."""
        return self.apply(np.eye(self.num_cells))
