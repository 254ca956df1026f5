"""Experience and training pairs.

Collection: `num_envs` environments step `num_steps` times each under the uniform random
policy, vectorised over environments. An episode ends on reaching a goal or after
`max_episode_length` transitions; that environment then restarts. Everything is stored
flat, one entry per transition, so a pair never needs Python per sample.

Sampling (on the training device): a source transition i uniformly; an offset
k ~ Geometric(1 - gamma) on {1, 2, ...}; the target is the state reached after
min(k, steps left in the episode) transitions. A pair therefore never spans two episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from allo.layouts import Layout


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
    layout: Layout, num_envs: int, num_steps: int, max_episode_length: int, seed: int
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


class PairSampler:
    """Draws training pairs and constraint states on the training device.

    All randomness comes from one torch.Generator, so its state is the sampler's state.
    """

    def __init__(self, data: Transitions, gamma: float, device: torch.device, seed: int):
        if not 0.0 < gamma < 1.0:
            raise ValueError("gamma must lie in (0, 1)")
        self.device = torch.device(device)
        self.source = torch.as_tensor(data.source, device=self.device)
        self.target = torch.as_tensor(data.target, device=self.device)
        self.last = torch.as_tensor(data.episode_last, device=self.device)  # (M,) int64
        self.size = data.size
        self.log_gamma = math.log(gamma)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def offsets(self, uniform: torch.Tensor) -> torch.Tensor:
        """k ~ Geometric(1 - gamma) on {1, 2, ...}: P(k) = (1 - gamma) gamma^(k - 1)."""
        k = torch.floor(torch.log1p(-uniform) / self.log_gamma) + 1
        return k.clamp_(max=float(self.size)).long()

    def _endpoints(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, self.size, (count,), generator=self.generator, device=self.device)
        uniform = torch.rand(count, generator=self.generator, device=self.device)
        # index_select is several times faster than advanced indexing on CPU
        j = torch.minimum(i + self.offsets(uniform) - 1, self.last.index_select(0, i))
        return self.source.index_select(0, i), self.target.index_select(0, j)

    def pairs(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, s') cell indices, each (count,)."""
        return self._endpoints(count)

    def batch(self, count: int) -> torch.Tensor:
        """(4, count) cell indices: rows s, s', and two independent constraint batches.

        Constraint states are drawn from rho: an endpoint, chosen by a fair coin, of a
        fresh pair. All 3 * count pairs come from one draw to keep the kernel count low.
        """
        s, s_next = self._endpoints(3 * count)
        coin = torch.rand(2 * count, generator=self.generator, device=self.device) < 0.5
        states = torch.where(coin, s[count:], s_next[count:])
        return torch.cat([s[:count], s_next[:count], states]).view(4, count)

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
