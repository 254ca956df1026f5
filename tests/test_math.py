"""Every numbered formula of docs/math.md, checked numerically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from allo.data import PairSampler, Transitions, collect, empirical_pair_law
from allo.layouts import add_random_doors, load_builtin, parse_layout
from allo.metrics import (
    ZERO_EIGENVALUE,
    cosine_similarities,
    eigenspace_blocks,
    eigenvalue_errors,
    rayleigh_eigenvalues,
)
from allo.objective import Weights, allo_terms, graph_term
from allo.spectrum import (
    alive_mass,
    episode_start_density,
    ground_truth,
    horizon_weights,
    pair_law,
)

GRID5 = "\n".join(["....."] * 5)
# A small room with a goal: short episodes, resets and absorbing goals all matter.
GOAL_ROOM = """\
XXXXXXX
X    GX
X XX  X
X     X
XXXXXXX
"""


def test_transition_rows_sum_to_one_and_hand_checked_cells():  # (1)
    layout = load_builtin("room4")
    matrix = layout.transition_matrix()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)  # no doors: symmetric
    index = layout.cell_index()
    corner = index[(1, 1)]  # walls up and left: half the moves stay
    assert matrix[corner, corner] == pytest.approx(0.5)
    assert matrix[corner, index[(1, 2)]] == pytest.approx(0.25)
    assert matrix[corner, index[(2, 1)]] == pytest.approx(0.25)
    doorway = index[(3, 6)]  # the gap in the middle wall of the top rooms
    assert matrix[doorway, doorway] == pytest.approx(0.5)
    assert matrix[doorway, index[(3, 5)]] == pytest.approx(0.25)
    assert matrix[doorway, index[(3, 7)]] == pytest.approx(0.25)


def test_one_way_door_blocks_only_its_reverse():  # (1)
    layout = parse_layout(GRID5)
    layout.doors = [((2, 2), (2, 3))]
    matrix = layout.transition_matrix()
    index = layout.cell_index()
    a, b = index[(2, 2)], index[(2, 3)]
    assert matrix[a, b] == pytest.approx(0.25)
    assert matrix[b, a] == 0.0
    assert matrix[b, b] == pytest.approx(0.25)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)


def test_random_doors_are_recorded_and_reproducible():
    first = add_random_doors(load_builtin("room4"), 5, seed=3).doors
    again = add_random_doors(load_builtin("room4"), 5, seed=3).doors
    assert first == again and len(first) == 5
    assert add_random_doors(load_builtin("room4"), 5, seed=4).doors != first


def test_renewal_density_matches_collected_episodes():  # (2)
    layout = parse_layout(GOAL_ROOM)
    num_steps, max_len = 60, 8
    _, lengths = alive_mass(layout, max_len)
    np.testing.assert_allclose(lengths.sum(), 1.0)
    expected_starts = episode_start_density(lengths, num_steps).sum()
    data = collect(layout, num_envs=20000, num_steps=num_steps, max_episode_length=max_len, seed=0)
    episodes = len(np.unique(data.episode_last))
    assert episodes / 20000 == pytest.approx(expected_starts, rel=0.01)


@pytest.mark.parametrize("num_steps,max_len", [(60, 8), (50, 50), (30, 100)])
def test_horizon_weights_count_every_step(num_steps, max_len):  # (3)
    layout = parse_layout(GOAL_ROOM)
    weights = horizon_weights(layout, num_steps, max_len)
    assert weights.sum() == pytest.approx(num_steps)
    assert (weights >= 0).all()


def test_offset_law_is_geometric_and_cut_at_the_episode_end():  # (4)
    """A chain whose target after k transitions is state i + k shows the offset law in
    one row of the data's pair law: (1 - gamma) gamma^(k-1), the rest at the end."""
    length, gamma = 12, 0.8
    chain = Transitions(source=np.arange(length), target=np.arange(1, length + 1),
                        episode_last=np.full(length, length - 1))
    law = empirical_pair_law(chain, gamma, length + 1).toarray() * length  # rows given the source
    for i in (0, 5, length - 1):
        steps_left = length - i
        ks = np.arange(1, steps_left)
        np.testing.assert_allclose(law[i, i + ks], (1 - gamma) * gamma ** (ks - 1), rtol=1e-12)
        assert law[i, length] == pytest.approx(gamma ** (steps_left - 1), rel=1e-12)
        assert law[i].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("length,gamma,rescale_below", [(12, 0.8, None), (700, 0.5, None),
                                                         (40, 0.8, 0.3)])
def test_offset_law_survives_the_rows_rescaling(monkeypatch, length, gamma, rescale_below):
    """The law's rows are kept divided by gamma^level and renormalised (past 1e-150, or
    every few levels here): the offset law stays exact along a long chain."""
    from allo import data as data_module

    if rescale_below is not None:
        monkeypatch.setattr(data_module, "RESCALE_BELOW", rescale_below)
    chain = Transitions(source=np.arange(length), target=np.arange(1, length + 1),
                        episode_last=np.full(length, length - 1))
    law = empirical_pair_law(chain, gamma, length + 1).toarray() * length
    for i in (0, 1, length // 2, length - 2, length - 1):
        ks = np.arange(1, length - i)
        np.testing.assert_allclose(law[i, i + ks], (1 - gamma) * gamma ** (ks - 1), rtol=1e-12)
        assert law[i, length] == pytest.approx(gamma ** (length - i - 1), rel=1e-12)
        assert law[i].sum() == pytest.approx(1.0, rel=1e-12)


def test_offset_recursion_matches_direct_sum():  # (5)
    layout = parse_layout(GOAL_ROOM)
    from allo.spectrum import absorbing_transitions

    p = absorbing_transitions(layout)
    gamma, tau = 0.7, 6
    direct = sum((1 - gamma) * gamma ** (k - 1) * np.linalg.matrix_power(p, k)
                 for k in range(1, tau))
    direct = direct + gamma ** (tau - 1) * np.linalg.matrix_power(p, tau)
    recursive = p.copy()
    for _ in range(tau - 1):
        recursive = (1 - gamma) * p + gamma * p @ recursive
    np.testing.assert_allclose(recursive, direct, atol=1e-12)
    np.testing.assert_allclose(direct.sum(axis=1), 1.0)


@pytest.mark.slow
def test_data_pair_law_converges_to_the_exact_pair_law():  # (6)
    layout = parse_layout(GOAL_ROOM)
    gamma, num_steps, max_len = 0.8, 40, 6
    law = pair_law(layout, gamma, num_steps, max_len)
    assert law.sum() == pytest.approx(1.0)
    data = collect(layout, num_envs=40000, num_steps=num_steps, max_episode_length=max_len,
                   seed=1)
    empirical = empirical_pair_law(data, gamma, layout.num_free).toarray()
    total_variation = 0.5 * np.abs(empirical - law).sum()
    assert total_variation < 0.01
    # the law without truncation at the episode's end is measurably different
    untruncated = pair_law(layout, gamma, num_steps=10**4, max_len=10**4)
    assert 0.5 * np.abs(empirical - untruncated).sum() > 3 * total_variation


def test_sampler_draws_pairs_and_states_from_the_data_laws():  # (6), (4): rho
    layout = parse_layout(GOAL_ROOM)
    gamma, n = 0.8, layout.num_free
    data = collect(layout, num_envs=2000, num_steps=40, max_episode_length=6, seed=2)
    law = empirical_pair_law(data, gamma, n)
    dense = law.toarray()
    sampler = PairSampler([law], [2], torch.device("cpu"))
    batches = 40
    weights = [sampler.weights(50_000) for _ in range(batches)]
    pairs = sum(w.pairs[0].double() for w in weights).numpy() / batches
    states = sum(w.states1[0].double() + w.states2[0].double() for w in weights) / (2 * batches)
    assert 0.5 * np.abs(pairs - dense).sum() < 0.01
    rho = 0.5 * (dense.sum(axis=0) + dense.sum(axis=1))
    assert 0.5 * np.abs(states.numpy() - rho).sum() < 0.005
    truth = ground_truth(layout, gamma, 40, 6)
    assert 0.5 * np.abs(rho - truth.rho).sum() < 0.02  # and rho is the operator's law


@pytest.mark.slow
@pytest.mark.parametrize("doors", [0, 6])
def test_operator_is_a_reversible_laplacian(doors):  # (7), (8)
    layout = add_random_doors(load_builtin("room4"), doors, seed=0)
    truth = ground_truth(layout, gamma=0.9, num_steps=200, max_len=200)
    kernel = truth.pair_law / truth.rho[:, None]
    np.testing.assert_allclose(kernel.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(truth.rho[:, None] * kernel, (truth.rho[:, None] * kernel).T)
    values = truth.eigenvalues
    assert values[0] == pytest.approx(0.0, abs=1e-10)
    assert (values >= 0).all() and (values <= 2 + 1e-12).all()
    assert np.all(np.diff(values) >= -1e-12)
    vectors = truth.eigenvectors
    # L u = lambda u, and the u are rho-orthonormal
    laplacian = np.eye(layout.num_free) - kernel
    np.testing.assert_allclose(laplacian @ vectors, vectors * values, atol=1e-10)
    gram = vectors.T @ (truth.rho[:, None] * vectors)
    np.testing.assert_allclose(gram, np.eye(layout.num_free), atol=1e-10)


def test_graph_term_equals_rho_quadratic_form():  # (9)
    layout = parse_layout(GOAL_ROOM)
    truth = ground_truth(layout, gamma=0.8, num_steps=40, max_len=6)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(layout.num_free, 3))
    raw = pair_law(layout, 0.8, 40, 6)  # not symmetrised: the term only sees D_sym
    direct = 0.5 * np.einsum("st,si->i", raw, u**2) + 0.5 * np.einsum("st,ti->i", raw, u**2)
    direct -= np.einsum("st,si,ti->i", raw, u, u)
    laplacian = np.eye(layout.num_free) - truth.pair_law / truth.rho[:, None]
    quadratic = np.einsum("si,s,si->i", u, truth.rho, laplacian @ u)
    np.testing.assert_allclose(direct, quadratic, rtol=1e-10)
    term = graph_term(torch.tensor(u), torch.tensor(raw)).numpy()
    np.testing.assert_allclose(term, quadratic, rtol=1e-8)


@pytest.mark.slow
def test_exact_allo_recovers_spectrum():  # (10)
    """Full-batch ALLO on exact expectations: lambda_i = -beta_ii / 2 and the vectors."""
    layout = parse_layout(GRID5)
    truth = ground_truth(layout, gamma=0.9, num_steps=100, max_len=100)
    d = 4
    torch.manual_seed(0)
    pairs = torch.tensor(truth.pair_law)
    rho = torch.tensor(truth.rho)
    weights = Weights(pairs, rho, rho)
    table = torch.nn.Parameter(torch.randn(layout.num_free, d, dtype=torch.float64) * 0.1)
    optimizer = torch.optim.Adam([table], lr=0.02)
    duals = torch.zeros(d, d, dtype=torch.float64)
    barrier = torch.tensor(2.0, dtype=torch.float64)
    steps = 2000
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = 0.02 * (1 - 0.9 * step / steps)
        terms = allo_terms(table, weights, duals, barrier)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        with torch.no_grad():
            duals += 0.2 * terms.constraint
    estimates = -torch.diagonal(duals).numpy() / 2
    np.testing.assert_allclose(estimates, truth.eigenvalues[:d], atol=1e-3)
    cos = cosine_similarities(table.detach().numpy(), truth.eigenvectors[:, : d + 1],
                              truth.eigenvalues[: d + 1])
    assert cos.min() >= 0.999


@pytest.mark.slow
def test_rayleigh_quotients_of_eigenvectors_are_the_eigenvalues():  # (13)
    truth = ground_truth(load_builtin("room4"), gamma=0.8, num_steps=1000, max_len=1000)
    d = 10
    np.testing.assert_allclose(rayleigh_eigenvalues(truth.eigenvectors[:, :d], truth.pair_law),
                               truth.eigenvalues[:d], atol=1e-12)
    # scale-free: any length of u_i gives the same quotient
    scaled = truth.eigenvectors[:, :d] * np.linspace(0.1, 7.0, d)
    np.testing.assert_allclose(rayleigh_eigenvalues(scaled, truth.pair_law),
                               truth.eigenvalues[:d], atol=1e-12)


def test_rayleigh_error_is_second_order_in_the_vector_error():  # section 9
    """Turn e_2 towards e_5 by an angle t: the quotient moves by sin^2 t (lambda_5 -
    lambda_2), so a 10x smaller angle gives a 100x smaller error."""
    truth = ground_truth(load_builtin("room4"), gamma=0.8, num_steps=1000, max_len=1000)
    values, vectors = truth.eigenvalues, truth.eigenvectors
    errors = []
    for angle in (1e-2, 1e-3):
        turned = np.cos(angle) * vectors[:, 1] + np.sin(angle) * vectors[:, 4]
        estimate = rayleigh_eigenvalues(turned[:, None], truth.pair_law)[0]
        expected = values[1] + np.sin(angle) ** 2 * (values[4] - values[1])
        assert estimate == pytest.approx(expected, rel=1e-9)
        errors.append(abs(estimate - values[1]))
    assert errors[0] / errors[1] == pytest.approx(100.0, rel=1e-3)


# A small room without symmetry: distinct eigenvalues, so each direction has one rate.
ODD_ROOM = """\
XXXXXXXX
X      X
X XX   X
X   X  X
X      X
XXXXXXXX
"""


@pytest.mark.parametrize("barrier,lr_duals", [(1.0, 0.1), (10.0, 0.1), (1.0, 0.01)])
def test_slow_direction_decays_at_the_gap_rate(barrier, lr_duals):  # (11)
    """Start at the solution with u_2 tilted towards e_3; natural-gradient descent with
    dual ascent shrinks the tilt by (1 - 2 eta (lambda_3 - lambda_2)) per step, whatever
    the barrier and the dual step size."""
    layout = parse_layout(ODD_ROOM)
    truth = ground_truth(layout, gamma=0.8, num_steps=200, max_len=200)
    d, eta, steps, tilt = 3, 0.02, 200, 1e-4
    values, vectors = truth.eigenvalues, truth.eigenvectors
    assert np.diff(values[: d + 1]).min() > 0.01
    rho = torch.tensor(truth.rho)
    weights = Weights(torch.tensor(truth.pair_law), rho, rho)
    start = vectors[:, :d].copy()
    start[:, 1] += tilt * vectors[:, 2]
    # descent on v = R^(1/2) u: its Euclidean gradient is R^(1/2) times the rho gradient
    v = torch.tensor(start * np.sqrt(truth.rho)[:, None], requires_grad=True)
    duals = torch.tensor(np.diag(-2.0 * values[:d]))
    b = torch.tensor(barrier, dtype=torch.float64)
    for _ in range(steps):
        terms = allo_terms(v / rho.sqrt()[:, None], weights, duals, b)
        (grad,) = torch.autograd.grad(terms.total, v)
        with torch.no_grad():
            v -= eta * grad
            duals += lr_duals * terms.constraint
    u = (v / rho.sqrt()[:, None]).detach().numpy()
    left = float(u[:, 1] @ (truth.rho * vectors[:, 2]))
    expected = tilt * (1 - 2 * eta * (values[2] - values[1])) ** steps
    assert left == pytest.approx(expected, rel=0.01)
    # the rate is the gap's: a rate off by 10% would miss by far more than 1%
    assert abs(expected - tilt * (1 - 2.2 * eta * (values[2] - values[1])) ** steps) > (
        0.05 * expected)


@pytest.mark.slow
def test_gamma_keeps_eigenvectors_and_scales_small_eigenvalues():  # (12)
    """The uncut operator T = (1 - g) P (I - g P)^-1 of a symmetric walk: lambda(mu)."""
    layout = load_builtin("room4")  # no goals, no doors
    walk = layout.transition_matrix()
    n = layout.num_free
    mu, basis = np.linalg.eigh(np.eye(n) - walk)
    for gamma in (0.8, 0.95):
        kernel = (1 - gamma) * walk @ np.linalg.inv(np.eye(n) - gamma * walk)
        values, vectors = np.linalg.eigh(np.eye(n) - 0.5 * (kernel + kernel.T))
        np.testing.assert_allclose(values, np.sort(mu / (1 - gamma + gamma * mu)), atol=1e-10)
        # same eigenvectors, same order (lambda is increasing in mu)
        cos = cosine_similarities(vectors[:, :10], basis[:, :11], mu[:11])
        assert cos.min() > 0.999999
    # the maze's smallest gap among lambda_1..11 (as allo.budget computes it) grows 3.5x
    maze = load_builtin("maze")
    gaps = [np.diff(ground_truth(maze, g, 1000, 1000).eigenvalues[:11]).min()
            for g in (0.8, 0.95)]
    assert gaps[0] == pytest.approx(0.00072, abs=2e-5)
    assert gaps[1] == pytest.approx(0.00254, abs=2e-5)


def test_davis_kahan_bound_for_a_near_repeated_block():  # (DK), section 6
    """A perturbation far smaller than the gap to the rest of the spectrum keeps a
    near-repeated block's eigenspace (within |E| / delta) but turns its single vectors:
    why metrics.eigenspace_blocks scores such a block as one eigenspace."""
    rng = np.random.default_rng(0)
    values = np.array([0.0, 0.05, 0.1, 0.2, 0.20008, 0.20016, 0.2003, 0.3, 0.4, 0.5])
    basis, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    operator = basis @ np.diag(values) @ basis.T
    noise = rng.standard_normal((10, 10))
    noise = 1e-3 * (noise + noise.T) / np.linalg.norm(noise + noise.T, 2)  # |E|_2 = 1e-3
    new_values, new_vectors = np.linalg.eigh(operator + noise)
    block = slice(3, 7)
    delta = min(new_values[7] - values[6], values[3] - new_values[2])
    # (DK): sin of the largest principal angle between the old and the new block
    overlap = np.linalg.svd(basis[:, block].T @ new_vectors[:, block], compute_uv=False)
    sin_theta = np.sqrt(max(0.0, 1.0 - overlap.min() ** 2))
    assert sin_theta <= 1e-3 / delta
    # the single vectors inside the block are not determined by the perturbed operator
    single = np.abs(np.sum(basis[:, block] * new_vectors[:, block], axis=0))
    assert single.min() < 0.9
    # the metric: strict per-vector scores expose the turn, the block's score does not
    assert [(b.start, b.stop) for b in eigenspace_blocks(values) if len(b) > 1] == [(3, 7)]
    strict = cosine_similarities(new_vectors[:, block], basis[:, block], values[block], tol=0.0)
    grouped = cosine_similarities(new_vectors[:, block], basis[:, block], values[block])
    assert strict.min() < 0.9 and grouped.min() > 0.999


def test_near_repeats_do_not_chain_into_one_block():  # section 6
    # each step is 0.4%, within the tolerance, but the run spans 1.6%: blocks of two
    values = 0.2 * 1.004 ** np.arange(5)
    assert [len(b) for b in eigenspace_blocks(values)] == [2, 2, 1]
    # a 1% pair (rooms16's lambda_2, lambda_3 are 0.9% apart) stays two eigenspaces
    assert len(eigenspace_blocks(np.array([0.01241, 0.01253]))) == 2


def test_a_near_repeat_is_named_before_training_an_exact_one_is_not():  # section 6
    from allo.metrics import near_repeat_note

    values = np.array([0.0, 0.015, 0.015, 0.0308, 0.20212, 0.2022, 0.2022, 0.20228, 0.226])
    line = near_repeat_note(values, d=8)
    assert line is not None and "lambda_5..lambda_8 (0.2021-0.2023)" in line
    assert "lambda_2" not in line  # the exact pair needs no explaining
    assert near_repeat_note(values, d=4) is None  # the cluster lies past d
    assert near_repeat_note(np.array([0.0, 0.1, 0.1, 0.3]), d=3) is None


def test_relative_eigenvalue_error_skips_every_free_regions_zero():
    """Two free regions give two zero eigenvalues; an error relative to the second was
    |estimate| / 1e-12 (2e8 on GridMaze-32) and buried the others."""
    layout = parse_layout("     \n     \nXXXXX\n     \n     \n")
    assert layout.components() == 2
    values = ground_truth(layout, gamma=0.8, num_steps=40, max_len=6).eigenvalues[:5]
    assert abs(values[1]) < ZERO_EIGENVALUE < values[2]
    estimates = values + 1e-3
    errors = eigenvalue_errors(estimates, values)
    assert errors["mean_rel"] == pytest.approx(np.mean(1e-3 / values[2:]))
    assert errors["mean_abs"] == pytest.approx(1e-3)
