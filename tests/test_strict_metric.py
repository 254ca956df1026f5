"""cos_strict (docs/math.md section 6): the official code's greedy rotation within exactly
repeated eigenvalues, beside the eigenspace-aware cos."""

from __future__ import annotations

import numpy as np
import pytest

from allo.budget import strict_data_ceiling
from allo.layouts import parse_layout
from allo.metrics import cosine_similarities, greedy_rotation, quality_row, strict_cosines
from allo.spectrum import ground_truth


def orthonormal(n: int, k: int, seed: int = 0) -> np.ndarray:
    basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return basis


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def test_exact_eigenvectors_score_one_and_scale_and_sign_do_not_matter():
    truth = orthonormal(12, 4)
    values = np.array([0.0, 0.1, 0.2, 0.3])
    learned = truth * np.array([3.0, -0.5, 2.0, -7.0])
    assert strict_cosines(learned, truth, values) == pytest.approx(np.ones(4))


def test_a_turn_inside_an_exact_repeat_is_undone():
    """Exactly repeated eigenvalues: any rotation of their vectors is as right, and the
    greedy rotation finds it (the official code's reason to rotate)."""
    truth = orthonormal(12, 4, seed=1)
    values = np.array([0.0, 0.1, 0.1, 0.3])
    learned = truth.copy()
    learned[:, 1:3] = truth[:, 1:3] @ rotation(0.7)
    assert strict_cosines(learned, truth, values) == pytest.approx(np.ones(4))


def test_a_turn_inside_a_near_repeat_counts_for_strict_not_for_cos():
    """0.2% apart: one eigenspace for cos (the data cannot separate them), two vectors
    scored alone for cos_strict, as published tables do."""
    truth = orthonormal(12, 4, seed=2)
    values = np.array([0.0, 0.1, 0.1002, 0.3])
    learned = truth.copy()
    angle = np.pi / 6
    learned[:, 1:3] = truth[:, 1:3] @ rotation(angle)
    strict = strict_cosines(learned, truth, values)
    assert strict == pytest.approx([1.0, np.cos(angle), np.cos(angle), 1.0])
    assert cosine_similarities(learned, truth, values) == pytest.approx(np.ones(4))


def test_greedy_rotation_serves_the_first_vector_first():
    """With orthonormal learned columns E the greedy choice gives u_1 its projection onto
    span(E), and u_2 what is left of E^T u_2 after removing its part along E^T u_1."""
    truth = orthonormal(10, 2, seed=3)
    learned = orthonormal(10, 2, seed=4)
    rotated = greedy_rotation(truth, learned)
    unit = rotated / np.linalg.norm(rotated, axis=0)
    a1, a2 = learned.T @ truth[:, 0], learned.T @ truth[:, 1]
    w1 = a1 / np.linalg.norm(a1)
    assert abs(unit[:, 0] @ truth[:, 0]) == pytest.approx(np.linalg.norm(a1))
    assert abs(unit[:, 1] @ truth[:, 1]) == pytest.approx(np.linalg.norm(a2 - (w1 @ a2) * w1))
    # and it is greedy, not the best joint fit: another order scores differently
    swapped = greedy_rotation(truth[:, ::-1], learned)
    assert not np.allclose(np.abs(np.sum(unit * truth, axis=0)),
                           np.abs(np.sum(swapped / np.linalg.norm(swapped, axis=0)
                                         * truth[:, ::-1], axis=0))[::-1])


def test_a_repeat_cut_at_d_is_not_completed():
    """lambda_d = lambda_(d+1): cos completes the eigenspace from beyond d, the official
    code (and cos_strict) only sees the first d exact vectors."""
    truth = orthonormal(12, 4, seed=5)
    values = np.array([0.0, 0.1, 0.3, 0.3])
    learned = truth[:, :3].copy()
    learned[:, 2] = truth[:, 3]  # the other vector of the repeated pair
    assert cosine_similarities(learned, truth, values)[2] == pytest.approx(1.0)
    assert strict_cosines(learned, truth, values)[2] == pytest.approx(0.0, abs=1e-12)


def test_metrics_rows_carry_both_metrics():
    truth = orthonormal(12, 4, seed=6)
    values = np.array([0.0, 0.1, 0.1002, 0.3])
    learned = truth.copy()
    learned[:, 1:3] = truth[:, 1:3] @ rotation(0.5)
    row = quality_row(learned, values, truth, values, 4)
    assert row["cos/mean"] == pytest.approx(1.0)
    assert row["cos_strict/mean"] == pytest.approx(np.mean(row["cos_strict/per_vector"]))
    assert row["cos_strict/mean"] == pytest.approx((2 + 2 * np.cos(0.5)) / 4)


def test_strict_data_ceiling_of_the_exact_law_is_one():
    layout = parse_layout("\n".join(["....."] * 5), name="g")
    truth = ground_truth(layout, 0.8, 200, 200)
    # a square room repeats eigenvalues exactly (symmetry): the greedy rotation handles them
    assert abs(truth.eigenvalues[1] - truth.eigenvalues[2]) < 1e-9
    # the data's own eigenvectors of a repeat are any rotation of the exact ones
    vectors = truth.eigenvectors.copy()
    vectors[:, 1:3] = vectors[:, 1:3] @ rotation(1.0)
    ceiling = strict_data_ceiling(truth.pair_law, truth.eigenvalues, vectors, 6)
    assert ceiling == pytest.approx(np.ones(6), abs=1e-6)


def test_a_training_logs_cos_strict_and_records_the_strict_ceiling(tmp_path):
    from allo import rundir
    from allo.config import TrainConfig
    from allo.train import format_row, train

    layout = tmp_path / "room.txt"
    layout.write_text("XXXXXXX\nX     X\nX     X\nX     X\nXXXXXXX\n")  # repeats exactly
    cfg = TrainConfig(env_file=str(layout), run_dir=str(tmp_path / "run"), num_envs=100,
                      num_steps=100, max_episode_length=100, hidden_size=32,
                      hidden_layers=2, num_eigenvectors=4, num_gradient_steps=200,
                      log_freq=100, plot_freq=200, checkpoint_freq=200)
    outcome = train(cfg)
    reader = rundir.RunReader(outcome.run_dir)
    row = reader.metrics()[-1]
    assert len(row["cos_strict/per_vector"]) == 4
    assert row["cos_strict/mean"] == pytest.approx(np.mean(row["cos_strict/per_vector"]))
    values, vectors = reader.scoring_truth()
    final = np.load(outcome.run_dir / rundir.FINAL_LEARNED)
    assert row["cos_strict/per_vector"] == pytest.approx(
        strict_cosines(final, vectors, values).tolist(), abs=1e-6)
    budget = reader.info().budget
    assert 0.0 <= budget.data_ceiling_strict <= 1.0
    assert len(budget.data_ceiling_strict_per_vector) == 4
    assert f"strict {row['cos_strict/mean']:.4f}" in format_row(row)
