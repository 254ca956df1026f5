"""Experience and training pairs.

Collection: `num_envs` environments step `num_steps` times each under the uniform random
policy, vectorised over environments. An episode ends on reaching a goal or after
`max_episode_length` transitions; that environment then restarts. Everything is stored
flat, one entry per transition, so a pair never needs Python per sample.

Pairs: a source transition i uniformly; an offset k ~ Geometric(1 - gamma) on {1, 2, ...};
the target is the state reached after min(k, steps left in the episode) transitions, so a
pair never spans two episodes. `empirical_pair_law` sums this law over the stored data
exactly, once, into a sparse table of the pairs the data holds (allo/sparse_law.py); a
training batch then draws pairs straight from its nonzero entries with Walker's alias
method: the same law as drawing a transition and an offset per sample, in O(1) per pair
and without random reads into a million stored transitions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from allo import sparse_law
from allo.layouts import Layout
from allo.objective import Weights, counts, pair_laplacian
from allo.sparse_law import Law


@dataclass
class Transitions:
    """Flat experience: transition i goes from cell source[i] to cell target[i]."""

    source: np.ndarray  # (M,) int cell index
    target: np.ndarray  # (M,) int cell index
    episode_last: np.ndarray  # (M,) flat index of the last transition of i's episode

    @property
    def size(self) -> int:
        return int(self.source.shape[0])


def collect(
    layout: Layout, num_envs: int, num_steps: int, max_episode_length: int,
    seed: int | list[int]
) -> Transitions:
    """Random-walk experience, vectorised over environments (time-major loop only)."""
    rng = np.random.default_rng(seed)
    table = layout.next_state_table()
    goals = layout.goal_mask()
    start_law = layout.start_distribution()
    start_cells = np.flatnonzero(start_law > 0)

    def reset(count: int) -> np.ndarray:
        return start_cells[rng.integers(0, len(start_cells), size=count)]

    state = reset(num_envs)
    age = np.zeros(num_envs, dtype=np.int64)
    actions = rng.integers(0, table.shape[1], size=(num_steps, num_envs))
    source = np.empty((num_steps, num_envs), dtype=np.int64)
    target = np.empty((num_steps, num_envs), dtype=np.int64)
    done = np.empty((num_steps, num_envs), dtype=bool)
    for t in range(num_steps):
        nxt = table[state, actions[t]]
        source[t], target[t] = state, nxt
        age += 1
        ended = goals[nxt] | (age >= max_episode_length)
        done[t] = ended
        if ended.any():
            state = np.where(ended, 0, nxt)
            state[ended] = reset(int(ended.sum()))
            age[ended] = 0
        else:
            state = nxt
    done[-1] = True  # the step budget cuts every environment's last episode
    # Environment-major flat order keeps each episode contiguous.
    source, target, done = source.T.ravel(), target.T.ravel(), done.T.ravel()
    flat = np.arange(source.size)
    last = np.where(done, flat, source.size)
    last = np.ascontiguousarray(np.minimum.accumulate(last[::-1])[::-1])
    return Transitions(source=source, target=target, episode_last=last)


# empirical_pair_law's rows grow like 1 / scale; renormalise long before float64's 1e308
RESCALE_BELOW = 1e-150


def empirical_pair_law(data: Transitions, gamma: float, num_cells: int
                       ) -> sparse.csr_matrix:
    """(N, N) law of (s, s') over this data set (docs/math.md (4)-(5)), sparse; sums to 1.

    Up to sparse_law.DENSE_MAX_CELLS cells the dense recursion (`dense_rows`) is the
    faster builder; above, the pairs are enumerated (allo/sparse_law.py).
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError("gamma must lie in (0, 1)")
    if num_cells <= sparse_law.DENSE_MAX_CELLS:
        return sparse.csr_matrix(dense_rows(data, gamma, num_cells))
    return sparse_law.enumerated(data.source, data.target, data.episode_last, gamma,
                                 num_cells)


def dense_rows(data: Transitions, gamma: float, num_cells: int) -> np.ndarray:
    """empirical_pair_law as an (N, N) array, by the recursion over whole rows.

    F_i, the law of the target given source transition i, obeys F_i = e_target(i) at the
    episode's last transition and F_i = (1 - gamma) e_target(i) + gamma F_(i+1) before
    it. Transitions are processed by their distance to the episode's end, all episodes
    at once, so the loop runs max-episode-length times, not once per transition.

    The rows are kept as F / scale with scale = gamma^level, so a level adds (1 - gamma) /
    scale at each target and the rows are never multiplied by gamma (a pass over all of
    them per level: 40% of the time); they are renormalised before 1 / scale nears
    float64's range. All terms are positive, so nothing cancels.
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError("gamma must lie in (0, 1)")
    size = data.size
    distance = data.episode_last - np.arange(size)
    order = np.argsort(distance, kind="stable")  # by distance, then by index
    starts = np.searchsorted(distance[order], np.arange(distance.max() + 2))
    source = torch.from_numpy(data.source)
    target = torch.from_numpy(data.target)
    law = torch.zeros(num_cells, num_cells, dtype=torch.float64)
    previous_index: np.ndarray | None = None
    previous_rows: torch.Tensor | None = None
    scale = 1.0  # the true rows are rows * scale
    for level in range(len(starts) - 1):
        index = order[starts[level]:starts[level + 1]]
        flat_target = torch.arange(len(index)) * num_cells + target[index]
        if previous_rows is None or previous_index is None:
            rows = torch.zeros(len(index), num_cells, dtype=torch.float64)
            rows.view(-1)[flat_target] = 1.0
        else:
            if len(index) == len(previous_index) and bool(np.all(previous_index == index + 1)):
                rows = previous_rows  # the same episodes one step earlier: update in place
            else:
                follower = torch.from_numpy(np.searchsorted(previous_index, index + 1))
                rows = previous_rows.index_select(0, follower)
            scale *= gamma
            if scale < RESCALE_BELOW:
                rows.mul_(scale)
                scale = 1.0
            rows.view(-1).index_add_(
                0, flat_target,
                torch.full((len(index),), (1.0 - gamma) / scale, dtype=torch.float64))
        law.index_add_(0, source[index], rows, alpha=scale)
        previous_index, previous_rows = index, rows
    return (law / size).numpy()


def state_law(pair_law: Law) -> np.ndarray:
    """rho: the law of one endpoint, chosen by a fair coin, of a pair (docs/math.md)."""
    return 0.5 * (sparse_law.row_sums(pair_law) + sparse_law.column_sums(pair_law))


class PairSampler:
    """Batch weights for S independent seeds at once, on the training device.

    Seed s draws from its own data set's laws with its own torch.Generator, so a seed's
    batches are the same whether it trains alone or beside others. A pair is drawn by
    inverse CDF over the seed's nonzero pairs only (CSR order: memory and set-up linear
    in the pairs the data holds, never N^2), a constraint state over its state law; one
    float64 uniform per draw, O(log nnz) per draw on the device (torch.searchsorted), exact
    up to the float64 rounding of the cumulative sums.
    """

    def __init__(self, pair_laws: list[Law], seeds: list[int], device: torch.device):
        if len(pair_laws) != len(seeds) or not seeds:
            raise ValueError("one pair law per seed")
        self.device = torch.device(device)
        self.num_seeds = len(seeds)
        self.num_cells = n = pair_laws[0].shape[0]
        self.pair_cdf, self.first, self.second, self.state_cdf = [], [], [], []
        for law in pair_laws:
            table = sparse_law.as_sparse(law)
            rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(table.indptr))
            self.pair_cdf.append(self._cumulative(table.data))
            self.first.append(torch.as_tensor(rows, device=self.device))
            self.second.append(torch.as_tensor(table.indices.astype(np.int32),
                                               device=self.device))
            self.state_cdf.append(self._cumulative(state_law(table)))
        self.generators = []
        for seed_value in seeds:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed_value)
            self.generators.append(generator)

    def _cumulative(self, probabilities: np.ndarray) -> torch.Tensor:
        """Cumulative sums normalised to end at 1 (float64, on the device)."""
        total = np.cumsum(np.asarray(probabilities, dtype=np.float64))
        if total.size == 0 or not total[-1] > 0 or (np.diff(total) < 0).any():
            raise ValueError("a sampler needs non-negative probabilities with a positive sum")
        return torch.as_tensor(total / total[-1], device=self.device)

    def uniforms(self, count: int) -> torch.Tensor:
        """(S, count) float64 uniforms, row s from seed s's generator."""
        return torch.stack([torch.rand(count, generator=g, dtype=torch.float64,
                                       device=self.device) for g in self.generators])

    def cells(self, count: int) -> torch.Tensor:
        """(S, 4, count) cell indices: rows s, s' of `count` pairs, then the two
        constraint batches c1, c2 of `count` states each."""
        u = self.uniforms(3 * count).view(self.num_seeds, 3, count)
        out = []
        for s in range(self.num_seeds):
            pair = _search(self.pair_cdf[s], u[s, 0])
            states = _search(self.state_cdf[s], u[s, 1:])
            out.append(torch.cat([self.first[s][pair][None], self.second[s][pair][None],
                                  states]).long())
        return torch.stack(out)

    def weights(self, count: int | None = None) -> Weights:
        """A batch of `count` pairs and 2 x `count` constraint states, as weights/count."""
        assert count is not None, "a sampler draws batches of --batch-size pairs"
        s, n = self.num_seeds, self.num_cells
        cells = self.cells(count)
        seed = torch.arange(s, device=self.device)[:, None]
        weight = torch.full((s * count,), 1.0 / count, device=self.device)
        pairs = counts((seed * n * n + cells[:, 0] * n + cells[:, 1]).view(-1), s * n * n,
                       weight)
        states1 = counts((seed * n + cells[:, 2]).view(-1), s * n, weight)
        states2 = counts((seed * n + cells[:, 3]).view(-1), s * n, weight)
        return Weights(pairs.view(s, n, n), states1.view(s, n), states2.view(s, n))

    def get_state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: list[torch.Tensor]) -> None:
        for generator, state in zip(self.generators, states, strict=True):
            generator.set_state(state)


def _search(cumulative: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The entry whose cumulative interval holds each uniform (clamped against rounding
    at the top end)."""
    index = torch.searchsorted(cumulative, u.contiguous(), right=True)
    return index.clamp(max=cumulative.numel() - 1)


class DataLawWeights:
    """The exact expectation over each seed's whole data set, every step.

    A batch of B pairs is an estimate, with noise of order 1 / sqrt(B), of the data's pair
    law D_data and state law rho_data (docs/math.md section 3); the network already runs on
    every cell, so the expectation itself costs no more than an estimate. Each step is then
    the full-batch gradient of the data set's ALLO objective: no sampling noise in the
    gradient, in the duals or in the barrier's h h' (which becomes h^2 exactly). Where rho
    spans decades (a fixed start far from rarely reached cells) batch estimates are
    heavy-tailed: a rare cell with a large value turns up in one batch of hundreds.

    Same interface as PairSampler; there is no random state, so get_state gives an empty
    tensor per seed (checkpoints keep their shape).
    """

    def __init__(self, pair_laws: list[Law], seeds: list[int], device: torch.device):
        if len(pair_laws) != len(seeds) or not seeds:
            raise ValueError("one pair law per seed")
        self.device = torch.device(device)
        self.num_seeds = len(seeds)
        self.num_cells = pair_laws[0].shape[0]
        self.generators: list[torch.Generator] = []
        states = torch.as_tensor(np.stack([state_law(law) for law in pair_laws]),
                                 dtype=torch.float32, device=self.device)
        if self.num_cells > sparse_law.DENSE_MAX_CELLS:
            self.expectation = sparse_expectation(pair_laws, states, self.device)
            return
        pairs = torch.as_tensor(np.stack([sparse_law.dense(law) for law in pair_laws]),
                                dtype=torch.float32, device=self.device)
        self.expectation = Weights(pairs, states, states, pair_laplacian(pairs))

    def weights(self, count: int | None = None) -> Weights:
        return self.expectation

    def get_state(self) -> list[torch.Tensor]:
        return [torch.empty(0, dtype=torch.uint8) for _ in range(self.num_seeds)]

    def set_state(self, states: list[torch.Tensor]) -> None:
        if len(states) != self.num_seeds:
            raise ValueError("one state per seed")


def sparse_expectation(pair_laws: list[Law], states: torch.Tensor, device: torch.device
                       ) -> Weights:
    """The exact expectation with W and 2 L_W as sparse CSR tensors: one block-diagonal
    (S N, S N) matrix over all seeds (allo.objective.product multiplies it with the
    (S, N, d) table in one sparse product), and the degree (row + column sums of W)."""
    laws = [sparse_law.as_sparse(law).astype(np.float64) for law in pair_laws]
    degree = np.stack([sparse_law.row_sums(law) + sparse_law.column_sums(law)
                       for law in laws])
    pairs = sparse.block_diag(laws, format="csr")
    laplacian = (sparse.diags(degree.ravel()) - pairs - pairs.T).tocsr()
    return Weights(torch_csr(pairs, device), states, states, torch_csr(laplacian, device),
                   degree=torch.as_tensor(degree, dtype=torch.float32, device=device))


def torch_csr(matrix: sparse.csr_matrix, device: torch.device) -> torch.Tensor:
    """A scipy CSR matrix as a float32 torch CSR tensor."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    with warnings.catch_warnings():  # torch calls its CSR support "beta" at every build
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return torch.sparse_csr_tensor(
            torch.as_tensor(matrix.indptr.astype(np.int64)),
            torch.as_tensor(matrix.indices.astype(np.int64)),
            torch.as_tensor(matrix.data, dtype=torch.float32), size=matrix.shape,
            device=device, check_invariants=False)


def weight_source(pair_laws: list[Law], seeds: list[int], device: torch.device,
                  batch_size: int | None) -> PairSampler | DataLawWeights:
    """Sampled batches of `batch_size` (the paper's way), or the exact expectation (None)."""
    if batch_size:
        return PairSampler(pair_laws, seeds, device)
    return DataLawWeights(pair_laws, seeds, device)
