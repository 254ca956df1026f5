"""Experience collection, the data's exact pair law, and the sampler over its pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from allo.data import (
    DataLawWeights,
    PairSampler,
    Transitions,
    collect,
    empirical_pair_law,
    state_law,
    weight_source,
)
from allo.layouts import load_builtin, parse_layout
from allo.objective import graph_term, pair_laplacian

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


def brute_force_pair_law(data: Transitions, gamma: float, n: int) -> np.ndarray:
    """The definition, one transition and one offset at a time."""
    law = np.zeros((n, n))
    for i in range(data.size):
        last = data.episode_last[i]
        for j in range(i, last + 1):
            weight = (1 - gamma) * gamma ** (j - i) if j < last else gamma ** (j - i)
            law[data.source[i], data.target[j]] += weight
    return law / data.size


@pytest.mark.parametrize("gamma", [0.5, 0.95])
def test_pair_law_equals_the_definition(gamma):
    layout = parse_layout(CORRIDOR)
    data = collect(layout, num_envs=6, num_steps=25, max_episode_length=7, seed=4)
    fast = empirical_pair_law(data, gamma, layout.num_free).toarray()
    np.testing.assert_allclose(fast, brute_force_pair_law(data, gamma, layout.num_free),
                               atol=1e-15)
    assert fast.sum() == pytest.approx(1.0)
    # pairs never span two episodes: nothing leaves the goal, where episodes end
    goal = layout.cell_index()[(0, 5)]
    assert fast[goal].sum() == 0.0


def test_sampler_draws_the_law_of_its_nonzero_pairs():
    """Counts of many draws match the pair law and the state law (chi-square bound), and
    a pair the data does not hold is never drawn."""
    layout = load_builtin("room4")
    law = empirical_pair_law(collect(layout, 20, 60, 30, seed=2), 0.8, layout.num_free)
    sampler = PairSampler([law], [5], torch.device("cpu"))
    draws = 400_000
    cells = sampler.cells(draws)[0].numpy()
    n = layout.num_free
    pairs = np.bincount(cells[0] * n + cells[1], minlength=n * n).reshape(n, n)
    dense = law.toarray()
    assert (pairs[dense == 0] == 0).all()
    for observed, expected in ((pairs[dense > 0], dense[dense > 0]),
                               (np.bincount(cells[2], minlength=n), state_law(law)),
                               (np.bincount(cells[3], minlength=n), state_law(law))):
        keep = expected > 0
        chi2 = float((((observed[keep] - draws * expected[keep]) ** 2)
                      / (draws * expected[keep])).sum())
        freedom = int(keep.sum()) - 1
        assert chi2 < freedom + 6 * np.sqrt(2 * freedom), (chi2, freedom)
    with pytest.raises(ValueError):
        PairSampler([np.zeros((3, 3))], [0], torch.device("cpu"))


def test_batches_are_valid_cells_and_weights_sum_to_one():
    layout = load_builtin("spiral")
    data = collect(layout, num_envs=100, num_steps=100, max_episode_length=20, seed=3)
    law = empirical_pair_law(data, 0.8, layout.num_free)
    sampler = PairSampler([law, law], [3, 4], torch.device("cpu"))
    weights = sampler.weights(4096)
    n = layout.num_free
    assert weights.pairs.shape == (2, n, n) and weights.states1.shape == (2, n)
    for part in (weights.pairs, weights.states1, weights.states2):
        np.testing.assert_allclose(part.sum(dim=tuple(range(1, part.dim()))).numpy(), 1.0,
                                   rtol=1e-5)
    # only pairs the data holds are ever drawn
    assert (weights.pairs.numpy()[:, law.toarray() == 0] == 0).all()


def test_a_seed_draws_the_same_batches_alone_or_beside_others():
    layout = load_builtin("room4")
    laws = [empirical_pair_law(collect(layout, 50, 100, 100, seed=s), 0.8, layout.num_free)
            for s in (0, 1)]
    alone = PairSampler([laws[1]], [1], torch.device("cpu")).weights(1000)
    together = PairSampler(laws, [0, 1], torch.device("cpu")).weights(1000)
    for a, b in zip((alone.pairs, alone.states1, alone.states2),
                    (together.pairs, together.states1, together.states2), strict=True):
        assert torch.equal(a[0], b[1])
    # and different seeds draw different batches
    assert not torch.equal(together.pairs[0], together.pairs[1])


def test_sampler_state_round_trips():
    layout = load_builtin("room4")
    law = empirical_pair_law(collect(layout, 50, 100, 100, seed=0), 0.8, layout.num_free)
    sampler = PairSampler([law], [0], torch.device("cpu"))
    state = sampler.get_state()
    first = sampler.weights(500).pairs
    sampler.set_state(state)
    assert torch.equal(sampler.weights(500).pairs, first)


def test_collection_is_fast_enough_to_not_matter():
    """One million transitions: correctness of the vectorised path at full size."""
    layout = load_builtin("room4")
    data = collect(layout, num_envs=1000, num_steps=1000, max_episode_length=1000, seed=0)
    assert data.size == 1_000_000
    counts = np.bincount(data.source, minlength=layout.num_free)
    # the uniform walk on room4 keeps the uniform start law: every cell is visited a lot
    assert counts.min() > 0.5 * counts.mean()
    law = empirical_pair_law(data, 0.8, layout.num_free)
    assert law.sum() == pytest.approx(1.0) and (law.data >= 0).all()


@pytest.mark.slow
def test_exact_weights_are_the_data_sets_laws():
    layout = load_builtin("room4")
    laws = [empirical_pair_law(collect(layout, 50, 100, 100, seed=s), 0.8, layout.num_free)
            for s in (0, 1)]
    exact = weight_source(laws, [0, 1], torch.device("cpu"), batch_size=None)
    assert isinstance(exact, DataLawWeights)
    weights = exact.weights(None)
    for s, law in enumerate(laws):
        np.testing.assert_allclose(weights.pairs[s].numpy(), law.toarray(), rtol=1e-6,
                                   atol=1e-9)
        np.testing.assert_allclose(weights.states1[s].numpy(), state_law(law), rtol=1e-6,
                                   atol=1e-9)
    assert weights.states2 is weights.states1  # h h' of the barrier is then h^2 exactly
    torch.testing.assert_close(weights.laplacian, pair_laplacian(weights.pairs))
    # a fixed Laplacian changes nothing in the graph term, only when it is built
    table = torch.randn(2, layout.num_free, 4)
    torch.testing.assert_close(graph_term(table, weights.pairs, weights.laplacian),
                               graph_term(table, weights.pairs))
    # and it is the limit of the sampled batches: the mean of many batches tends to it
    sampled = weight_source(laws, [0, 1], torch.device("cpu"), batch_size=4096)
    assert isinstance(sampled, PairSampler)
    mean = sum(sampled.weights(4096).states1 for _ in range(200)) / 200
    assert float((mean - weights.states1).abs().max()) < 2e-3
    # checkpoints keep a (empty) state per seed
    assert [t.numel() for t in exact.get_state()] == [0, 0]
