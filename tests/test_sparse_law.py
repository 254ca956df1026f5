"""The data set's pair law stored sparsely: the pair-enumerating builder equals the dense
recursion, and training on the sparse law (sparse L_W) takes the dense law's steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from allo import budget, sparse_law
from allo import data as data_module
from allo.config import TrainConfig
from allo.data import DataLawWeights, collect, dense_rows, empirical_pair_law, state_law
from allo.layouts import load_builtin, parse_layout
from allo.learner import Learner
from allo.objective import graph_term
from allo.settling import ritz_alignment
from allo.spectrum import ground_truth


@pytest.mark.parametrize(("name", "gamma", "length"), [
    ("room4", 0.8, 100),  # episodes longer than the offsets kept: the tail is cut
    ("maze", 0.95, 30),  # every episode shorter than the offsets kept: nothing is cut
    ("corridor", 0.5, 7),  # a goal ends episodes early
])
def test_enumerated_law_equals_the_dense_recursion(name, gamma, length):
    layout = parse_layout("S....G") if name == "corridor" else load_builtin(name)
    data = collect(layout, num_envs=40, num_steps=150, max_episode_length=length, seed=3)
    n = layout.num_free
    exact = dense_rows(data, gamma, n)
    fast = sparse_law.enumerated(data.source, data.target, data.episode_last, gamma, n)
    assert fast.has_canonical_format
    # what the cut moves is below the exact truth's series tolerance (per unit mass)
    np.testing.assert_allclose(fast.toarray(), exact, rtol=1e-12, atol=1e-15)
    assert fast.sum() == pytest.approx(1.0, abs=1e-12)
    assert fast.nnz == np.count_nonzero(exact)  # exactly the pairs the data holds


def test_enumerated_blocks_split_only_between_cells(monkeypatch):
    """Tiny blocks (a cell per block, and a dense table of a few entries) give the same
    law as one block."""
    layout = load_builtin("room4")
    data = collect(layout, num_envs=10, num_steps=80, max_episode_length=40, seed=1)
    n = layout.num_free
    whole = sparse_law.enumerated(data.source, data.target, data.episode_last, 0.8, n)
    monkeypatch.setattr(sparse_law, "BLOCK_ENTRIES", 50)
    monkeypatch.setattr(sparse_law, "DENSE_BLOCK", 7)
    pieces = sparse_law.enumerated(data.source, data.target, data.episode_last, 0.8, n)
    np.testing.assert_allclose(pieces.toarray(), whole.toarray(), rtol=1e-14, atol=0)


def test_empirical_law_takes_the_sparse_builder_above_the_limit(monkeypatch):
    layout = load_builtin("room4")
    data = collect(layout, num_envs=30, num_steps=100, max_episode_length=100, seed=0)
    dense = empirical_pair_law(data, 0.8, layout.num_free)
    monkeypatch.setattr(sparse_law, "DENSE_MAX_CELLS", 10)
    enumerated = empirical_pair_law(data, 0.8, layout.num_free)
    np.testing.assert_allclose(enumerated.toarray(), dense.toarray(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state_law(enumerated), state_law(dense.toarray()), atol=1e-15)


def small_learner(laws, sparse: bool, objective: str, monkeypatch) -> Learner:
    monkeypatch.setattr(sparse_law, "DENSE_MAX_CELLS", 0 if sparse else 10**6)
    layout = load_builtin("room4")
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, num_gradient_steps=20,
                      lr_warmup_steps=5, objective=objective)
    weights = DataLawWeights(laws, [0, 1], torch.device("cpu"))
    assert weights.expectation.pairs.layout == (torch.sparse_csr if sparse else torch.strided)
    return Learner(cfg, [0, 1], torch.device("cpu"), weights,
                   torch.as_tensor(layout.coordinates(), dtype=torch.float32))


@pytest.mark.parametrize("objective", ["allo", "ggdo", "omm", "lora", "sqp"])
def test_sparse_expectation_takes_the_dense_steps(objective, monkeypatch):
    """Same first steps' losses and tables (float32 tolerance) with L_W sparse or dense."""
    layout = load_builtin("room4")
    laws = [empirical_pair_law(collect(layout, 50, 100, 100, seed=s), 0.8, layout.num_free)
            for s in (0, 1)]
    dense = small_learner(laws, False, objective, monkeypatch)
    sparse = small_learner(laws, True, objective, monkeypatch)
    for _ in range(5):
        a, b = dense.step(), sparse.step()
        torch.testing.assert_close(b.total, a.total, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b.graph_per_vector, a.graph_per_vector, rtol=1e-4,
                                   atol=1e-6)
    torch.testing.assert_close(sparse.tables(), dense.tables(), rtol=1e-3, atol=1e-5)
    table = dense.tables()
    torch.testing.assert_close(
        graph_term(table, sparse.sampler.expectation.pairs, sparse.sampler.expectation.laplacian),
        graph_term(table, dense.sampler.expectation.pairs, dense.sampler.expectation.laplacian),
        rtol=1e-4, atol=1e-6)


def test_sparse_law_gives_the_same_ceiling_and_alignment():
    """The data ceiling and the Ritz alignment read the sparse law as the dense one."""
    layout = load_builtin("room4")
    truth = ground_truth(layout, 0.8, 100, 100)
    law = empirical_pair_law(collect(layout, 30, 100, 100, seed=4), 0.8, layout.num_free)
    values, vectors = truth.eigenvalues[:8], truth.eigenvectors[:, :8]
    np.testing.assert_allclose(budget.data_ceiling(law, values, vectors, 6),
                               budget.data_ceiling(law.toarray(), values, vectors, 6),
                               rtol=0, atol=1e-12)
    learned = vectors[:, :4] + 0.01 * np.random.default_rng(0).standard_normal((len(vectors), 4))
    blocks = [range(0, 1), range(1, 2), range(2, 3), range(3, 4)]
    np.testing.assert_allclose(ritz_alignment(learned, law, blocks),
                               ritz_alignment(learned, law.toarray(), blocks), atol=1e-12)


def test_sparse_expectation_holds_no_dense_table(monkeypatch):
    monkeypatch.setattr(sparse_law, "DENSE_MAX_CELLS", 0)
    layout = load_builtin("room4")
    law = empirical_pair_law(collect(layout, 20, 50, 50, seed=0), 0.8, layout.num_free)
    weights = data_module.DataLawWeights([law, law], [0, 1], torch.device("cpu")).expectation
    n = layout.num_free
    assert weights.laplacian is not None and weights.degree is not None
    assert weights.laplacian.layout == torch.sparse_csr
    assert weights.laplacian.shape == (2 * n, 2 * n) and weights.degree.shape == (2, n)
    degree = law.sum(axis=0).A1 + law.sum(axis=1).A1
    np.testing.assert_allclose(weights.degree[1].numpy(), degree, rtol=1e-6)
