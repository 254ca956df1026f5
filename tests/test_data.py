"""Experience collection and pair sampling: episodes, truncation, short episodes."""

from __future__ import annotations

import numpy as np
import torch

from allo.data import PairSampler, collect
from allo.layouts import load_builtin, parse_layout

CORRIDOR = "S....G"


def test_collection_shapes_and_episode_ends():
    layout = parse_layout(CORRIDOR)
    data = collect(layout, num_envs=7, num_steps=30, max_episode_length=5, seed=0)
    assert data.size == 7 * 30
    goal = layout.cell_index()[(0, 5)]
    # a transition ends its episode exactly when it reaches the goal, hits the length
    # limit or the environment's step budget
    ends = np.flatnonzero(data.episode_last == np.arange(data.size))
    assert (data.source != goal).all()  # episodes never continue from the goal
    reached_goal = data.target == goal
    assert set(np.flatnonzero(reached_goal)) <= set(ends.tolist())
    lengths = np.diff(np.concatenate([[-1], ends]))
    assert lengths.max() <= 5
    # every environment's budget ends an episode
    assert set(range(29, 7 * 30, 30)) <= set(ends.tolist())


def test_consecutive_transitions_chain_within_an_episode():
    layout = load_builtin("maze")
    data = collect(layout, num_envs=20, num_steps=200, max_episode_length=50, seed=1)
    inside = data.episode_last[:-1] != np.arange(data.size - 1)
    assert (data.target[:-1][inside] == data.source[1:][inside]).all()


def test_pairs_never_span_two_episodes():
    layout = parse_layout(CORRIDOR)
    data = collect(layout, num_envs=50, num_steps=40, max_episode_length=4, seed=2)
    sampler = PairSampler(data, gamma=0.95, device=torch.device("cpu"), seed=0)
    # re-derive each pair's episode: the target must be reachable inside the episode
    i = torch.randint(0, data.size, (20000,), generator=sampler.generator)
    uniform = torch.rand(20000, generator=sampler.generator)
    j = torch.minimum(i + sampler.offsets(uniform) - 1, sampler.last[i])
    assert (j >= i).all()
    assert (sampler.last[j] == sampler.last[i]).all()  # same episode
    assert ((j - i) < 4).all()  # an episode has at most 4 transitions


def test_short_episodes_and_batches_are_valid_cells():
    layout = load_builtin("spiral")
    data = collect(layout, num_envs=100, num_steps=100, max_episode_length=20, seed=3)
    sampler = PairSampler(data, gamma=0.8, device=torch.device("cpu"), seed=3)
    batch = sampler.batch(4096)
    assert batch.shape == (4, 4096)
    assert batch.min() >= 0 and batch.max() < layout.num_free


def test_collection_is_fast_enough_to_not_matter():
    """One million transitions: correctness of the vectorised path at full size."""
    layout = load_builtin("room4")
    data = collect(layout, num_envs=1000, num_steps=1000, max_episode_length=1000, seed=0)
    assert data.size == 1_000_000
    counts = np.bincount(data.source, minlength=layout.num_free)
    # the uniform walk on room4 keeps the uniform start law: every cell is visited a lot
    assert counts.min() > 0.5 * counts.mean()
