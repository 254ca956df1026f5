"""Experience and training pairs.

Collection: `num_envs` environments step `num_steps` times each under the uniform random
policy, vectorised over environments. An episode ends on reaching a goal or after
`max_episode_length` transitions; that environment then restarts. Everything is stored
flat, one entry per transition, so a pair never needs Python per sample.

Pairs: a source transition i uniformly; an offset k ~ Geometric(1 - gamma) on {1, 2, ...};
the target is the state reached after min(k, steps left in the episode) transitions, so a
pair never spans two episodes. `empirical_pair_law` sums this law over the stored data
exactly, once; a training batch then draws pairs straight from that (N, N) table with
Walker's alias method: the same law as drawing a transition and an offset per sample, in
O(1) per pair and without random reads into a million stored transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from allo.layouts import Layout
from allo.objective import Weights, counts, pair_laplacian


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


def empirical_pair_law(data: Transitions, gamma: float, num_cells: int) -> np.ndarray:
    """(N, N) law of (s, s') over this data set (docs/math.md (4)-(5)); sums to 1.

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


def state_law(pair_law: np.ndarray) -> np.ndarray:
    """rho: the law of one endpoint, chosen by a fair coin, of a pair (docs/math.md)."""
    return 0.5 * (pair_law.sum(axis=1) + pair_law.sum(axis=0))


@dataclass
class AliasTable:
    """Walker's alias method: bucket j = floor(K u) keeps j with probability keep[j],
    else gives alias[j]. Exact for the given probabilities, O(1) per draw."""

    keep: np.ndarray  # (K,) float64
    alias: np.ndarray  # (K,) int64

    @classmethod
    def build(cls, probabilities: np.ndarray) -> AliasTable:
        """Vose's construction: pair each under-full bucket with an over-full donor."""
        p = np.asarray(probabilities, dtype=np.float64).ravel()
        if p.size == 0 or (p < 0).any() or not p.sum() > 0:
            raise ValueError("an alias table needs non-negative probabilities with a positive sum")
        size = p.size
        scaled = p * (size / p.sum())
        keep = np.ones(size)
        alias = np.arange(size)
        small = [int(j) for j in np.flatnonzero(scaled < 1.0)]
        large = [int(j) for j in np.flatnonzero(scaled >= 1.0)]
        scaled = scaled.tolist()
        while small and large:
            low, high = small.pop(), large[-1]
            keep[low], alias[low] = scaled[low], high
            scaled[high] -= 1.0 - scaled[low]
            if scaled[high] < 1.0:
                small.append(large.pop())
        # what is left is full up to rounding: it keeps itself (keep = 1)
        return cls(keep=keep, alias=alias)

    def probabilities(self) -> np.ndarray:
        """The law the table draws from (tests compare it with the input)."""
        size = len(self.keep)
        law = self.keep / size
        np.add.at(law, self.alias, (1.0 - self.keep) / size)
        return law


class PairSampler:
    """Batch weights for S independent seeds at once, on the training device.

    Seed s draws from its own data set's laws with its own torch.Generator, so a seed's
    batches are the same whether it trains alone or beside others. All draws of a step go
    through one joint alias table: segment 0 holds every seed's pair table (N^2 entries
    each), segments 1 and 2 every seed's state table (N each; once per constraint batch),
    and the counts of all three land in one histogram. One float64 uniform per draw gives
    both the bucket and the keep-or-alias coin.
    """

    def __init__(self, pair_laws: list[np.ndarray], seeds: list[int], device: torch.device):
        if len(pair_laws) != len(seeds) or not seeds:
            raise ValueError("one pair law per seed")
        self.device = torch.device(device)
        self.num_seeds = count = len(seeds)
        self.num_cells = n = pair_laws[0].shape[0]
        pair_tables = [AliasTable.build(law) for law in pair_laws]
        state_tables = [AliasTable.build(state_law(law)) for law in pair_laws]
        segments = [pair_tables, state_tables, state_tables]
        self.sizes = (n * n, n, n)
        self.segment_starts = (0, count * n * n, count * (n * n + n))
        keep, alias = [], []
        for start, size, tables in zip(self.segment_starts, self.sizes, segments, strict=True):
            for s, table in enumerate(tables):
                keep.append(table.keep)
                alias.append(table.alias + start + s * size)
        self.keep = torch.as_tensor(np.concatenate(keep), device=self.device)
        self.alias = torch.as_tensor(np.concatenate(alias), device=self.device)
        # where bucket 0 of (seed s, segment r) sits in the joint table, and its size
        seed = torch.arange(count, dtype=torch.float64)[:, None, None]
        size = torch.tensor(self.sizes, dtype=torch.float64)[None, :, None]
        start = torch.tensor(self.segment_starts, dtype=torch.float64)[None, :, None]
        self.bucket_size = size.to(self.device)
        self.last_bucket = self.bucket_size - 1
        self.bucket_start = (start + seed * size).to(self.device)
        self.generators = []
        for seed_value in seeds:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed_value)
            self.generators.append(generator)

    def uniforms(self, count: int) -> torch.Tensor:
        """(S, count) float64 uniforms, row s from seed s's generator."""
        return torch.stack([torch.rand(count, generator=g, dtype=torch.float64,
                                       device=self.device) for g in self.generators])

    def draw(self, count: int) -> torch.Tensor:
        """(S, 3, count) joint-table indices: pairs, then two constraint batches."""
        scaled = self.uniforms(3 * count).view(self.num_seeds, 3, count) * self.bucket_size
        bucket = torch.minimum(scaled.floor(), self.last_bucket)
        index = (bucket + self.bucket_start).long().view(-1)
        keep = self.keep.index_select(0, index).view_as(scaled) > scaled - bucket
        alias = self.alias.index_select(0, index).view_as(scaled)
        return torch.where(keep, index.view_as(scaled), alias)

    def weights(self, count: int | None = None) -> Weights:
        """A batch of `count` pairs and 2 x `count` constraint states, as weights/count."""
        assert count is not None, "a sampler draws batches of --batch-size pairs"
        s, n = self.num_seeds, self.num_cells
        index = self.draw(count).view(-1)
        weight = torch.full((index.numel(),), 1.0 / count, device=self.device)
        histogram = counts(index, len(self.keep), weight)
        pairs, states1, states2 = histogram.split([s * n * n, s * n, s * n])
        return Weights(pairs.view(s, n, n), states1.view(s, n), states2.view(s, n))

    def cells(self, count: int) -> torch.Tensor:
        """(S, 4, count) cell indices s, s', c1, c2 of the batch `weights` would draw from
        the same generator state (the same draws, as rows instead of counts)."""
        local = self.draw(count) - self.bucket_start.long()  # each segment's own bucket
        pair, states = local[:, 0], local[:, 1:]
        n = self.num_cells
        return torch.cat([torch.stack([pair // n, pair % n], dim=1), states], dim=1)

    def get_state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: list[torch.Tensor]) -> None:
        for generator, state in zip(self.generators, states, strict=True):
            generator.set_state(state)


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

    def __init__(self, pair_laws: list[np.ndarray], seeds: list[int], device: torch.device):
        if len(pair_laws) != len(seeds) or not seeds:
            raise ValueError("one pair law per seed")
        self.device = torch.device(device)
        self.num_seeds = len(seeds)
        self.num_cells = pair_laws[0].shape[0]
        self.generators: list[torch.Generator] = []
        pairs = torch.as_tensor(np.stack(pair_laws), dtype=torch.float32, device=self.device)
        states = torch.as_tensor(np.stack([state_law(law) for law in pair_laws]),
                                 dtype=torch.float32, device=self.device)
        self.expectation = Weights(pairs, states, states, pair_laplacian(pairs))

    def weights(self, count: int | None = None) -> Weights:
        return self.expectation

    def get_state(self) -> list[torch.Tensor]:
        return [torch.empty(0, dtype=torch.uint8) for _ in range(self.num_seeds)]

    def set_state(self, states: list[torch.Tensor]) -> None:
        if len(states) != self.num_seeds:
            raise ValueError("one state per seed")


def weight_source(pair_laws: list[np.ndarray], seeds: list[int], device: torch.device,
                  batch_size: int | None) -> PairSampler | DataLawWeights:
    """Sampled batches of `batch_size` (the paper's way), or the exact expectation (None)."""
    if batch_size:
        return PairSampler(pair_laws, seeds, device)
    return DataLawWeights(pair_laws, seeds, device)
