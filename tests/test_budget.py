"""allo.budget: steps from the exact spectrum (the smallest gap between eigenspaces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from allo.budget import (
    MAX_STEPS,
    MIN_STEPS,
    STEPS_TIMES_GAP,
    STEPS_TIMES_GAP_SAMPLED,
    STEPS_TIMES_GAP_SUM,
    advice,
    data_advice,
    data_ceiling,
    recommend,
    separation_tolerance,
    smallest_gap,
    unsettled_advice,
)
from allo.layouts import load_builtin, load_layout_file
from allo.spectrum import ground_truth


def test_smallest_gap_skips_repeated_eigenvalues_and_includes_lambda_d_plus_1():
    values = np.array([0.0, 0.1, 0.1, 0.3, 0.31, 0.5])
    assert smallest_gap(values, d=4) == (pytest.approx(0.01), (4, 5))
    # d = 3 still looks at lambda_4: u_3 must turn away from e_4
    assert smallest_gap(np.array([0.0, 0.3, 0.6, 0.61, 0.9]), d=3) == (
        pytest.approx(0.01), (3, 4))
    # a repeat that continues past d needs no separating at all
    assert smallest_gap(np.array([0.0, 0.2, 0.5, 0.5]), d=3) == (pytest.approx(0.2), (1, 2))


def test_many_close_gaps_add_up_as_a_cascade():
    # ten gaps of 0.001: the closest pair alone asks for 2 / 0.001 = 2000 steps, the
    # cascade for 1.5 x (10 x 1000) = 15000
    values = np.linspace(0.0, 0.010, 11)
    budget = recommend(values, d=10)
    assert budget.cascade and budget.steps == budget.needed == 15000
    assert budget.needed == pytest.approx(STEPS_TIMES_GAP_SUM * 10 / 0.001, rel=1e-6)
    line = advice(budget, 5000, flag_given=True)
    assert line is not None and "one after another" in line and "--steps 15000" in line
    # one close pair among wide gaps: that pair sets the steps, as before
    single = recommend(np.array([0.0, 0.2, 0.4, 0.6, 0.61, 0.9]), d=5)
    assert not single.cascade and single.pair == (4, 5)


def test_near_repeated_eigenvalues_need_no_separating():
    # 0.1% apart: one eigenspace by metrics.REPEAT_TOLERANCE, so the run is not sized for it
    near = recommend(np.array([0.0, 0.2, 0.2002, 0.5]), d=3)
    assert near.pair == (1, 2) and near.steps == MIN_STEPS
    # scored strictly (each vector alone) the same spectrum would need the cap
    assert smallest_gap(np.array([0.0, 0.2, 0.2002, 0.5]), d=3, tol=0.0)[1] == (2, 3)


def test_smallest_gap_ignores_off_support_padding():
    values = np.array([0.0, 0.05, 0.4, np.nan, np.nan])
    assert smallest_gap(values, d=4) == (pytest.approx(0.05), (1, 2))


@pytest.mark.parametrize("sampled,rate,gap", [(False, STEPS_TIMES_GAP, 1e-4),
                                               (True, STEPS_TIMES_GAP_SAMPLED, 0.002)])
def test_steps_grow_like_one_over_the_gap_within_the_bounds(sampled, rate, gap):
    wide = recommend(np.array([0.0, 0.2, 0.4, 0.6]), d=3, sampled=sampled)
    assert wide.steps == MIN_STEPS and not wide.capped
    middle = recommend(np.array([0.0, 0.01, 0.01 + gap, 0.5]), d=3, sampled=sampled)
    assert middle.needed == pytest.approx(rate / gap, rel=0.05)
    assert middle.steps == middle.needed and MIN_STEPS < middle.steps <= MAX_STEPS
    assert middle.steps % 1000 == 0
    # 1% apart: distinct eigenspaces, but a gap too small for MAX_STEPS
    tiny = recommend(np.array([0.0, 0.001, 0.001 + 1e-5, 0.5]), d=3, sampled=sampled)
    assert tiny.capped and tiny.steps == MAX_STEPS and tiny.needed > MAX_STEPS
    assert tiny.pair == (2, 3)


@pytest.mark.slow
def test_rooms16_gets_room_for_a_swapped_pair_and_easy_layouts_keep_the_floor():
    """rooms16's lambda_2, lambda_3 (1.16e-4 apart): a pair that starts swapped needed
    steps x gap = 3.4 on one seed of five (BENCHMARKS.md), so 4 / gap; room4 and the maze
    stay at the floor."""
    rooms16 = Path(__file__).resolve().parent.parent / "benchmarks" / "layouts" / "rooms16.txt"
    values = ground_truth(load_layout_file(rooms16), 0.8, 1000, 1000).eigenvalues
    budget = recommend(values, d=10)
    assert budget.pair == (2, 3) and not budget.cascade
    assert budget.steps == 35000 and budget.steps * budget.gap > 3.4
    for name in ("room4", "maze"):
        easy = ground_truth(load_builtin(name), 0.8, 1000, 1000).eigenvalues
        assert recommend(easy, d=10).steps == MIN_STEPS


@pytest.mark.slow
def test_sampled_batches_need_more_steps_than_the_expectation():
    values = ground_truth(load_builtin("obstacles"), 0.8, 1000, 1000).eigenvalues
    exact, sampled = recommend(values, d=10), recommend(values, d=10, sampled=True)
    assert exact.pair == sampled.pair
    assert exact.steps == MIN_STEPS < sampled.steps  # measured: 6000 against 10500


def test_a_larger_gamma_widens_the_maze_gap_and_shortens_the_run():
    maze = load_builtin("maze")
    at_08 = recommend(ground_truth(maze, 0.8, 1000, 1000).eigenvalues, d=10, sampled=True)
    at_095 = recommend(ground_truth(maze, 0.95, 1000, 1000).eigenvalues, d=10, sampled=True)
    assert at_08.pair == at_095.pair == (2, 3)  # lambda_2, lambda_3: the slow pair
    assert at_095.gap > 3 * at_08.gap
    assert at_095.steps < at_08.steps


def test_advice_names_the_pair_and_the_flag():
    budget = recommend(np.array([0.0, 0.1, 0.102, 0.5]), d=3, sampled=True)
    assert advice(budget, budget.steps, flag_given=False) is None
    assert advice(budget, budget.steps + 1000, flag_given=True) is None
    line = advice(budget, 5000, flag_given=True)
    assert line is not None and f"--steps {budget.steps}" in line
    assert "lambda_2 and lambda_3" in line
    capped = recommend(np.array([0.0, 0.001, 0.001 + 1e-5, 0.5]), d=3)
    line = advice(capped, capped.steps, flag_given=False)
    assert line is not None and f"--steps {capped.needed}" in line and "eigenspace" in line


@pytest.mark.slow
def test_data_ceiling_is_one_for_exact_data_and_low_for_a_close_pair_on_little_data():
    from allo.data import collect, empirical_pair_law

    layout = load_builtin("obstacles")  # lambda_2, lambda_3 differ by 2%
    truth = ground_truth(layout, 0.95, 1000, 1000)
    values, vectors = truth.eigenvalues[:11], truth.eigenvectors[:, :11]
    exact = data_ceiling(truth.pair_law, values, vectors, d=10)
    assert exact.min() > 0.9999
    assert data_advice(exact, 1000) is None
    small = collect(layout, num_envs=100, num_steps=1000, max_episode_length=1000, seed=0)
    ceiling = data_ceiling(empirical_pair_law(small, 0.95, layout.num_free), values,
                           vectors, d=10)
    assert ceiling.mean() < 0.99 and min(ceiling[1], ceiling[2]) < 0.95
    line = data_advice(ceiling, 100)
    assert line is not None and "--num-envs" in line and "2, 3" in line


def test_no_advice_for_a_short_run_of_an_easy_layout():
    """A gap that needs fewer steps than the default floor: --steps 100 is a choice."""
    easy = recommend(np.array([0.0, 0.3, 0.6, 0.9]), d=3)
    assert easy.needed < easy.steps
    assert advice(easy, 100, flag_given=True) is None


def test_vectors_still_turning_are_named_with_the_command_that_goes_on():
    """rooms16 seed 2 at 18000 steps: its pair at 0.57 against a data ceiling of 0.965."""
    cos = [1.0, 0.573, 0.573, 1.0, 0.999, 0.999, 1.0, 1.0, 0.999, 0.999]
    ceiling = [1.0, 0.965, 0.965, 1.0, 0.999, 0.999, 1.0, 1.0, 0.999, 0.999]
    line = unsettled_advice(cos, ceiling, 18000, "results/rooms16/run", recommended=18000)
    assert line.startswith("vectors 2, 3 ended at |cos| 0.573, 0.573")
    assert "(0.965, 0.965)" in line and "start swapped" in line
    assert line.endswith("allo train --resume results/rooms16/run --steps 36000")
    # at (or above) the ceiling, or within the lag: nothing to say
    assert unsettled_advice([0.95, 0.99], [0.96, 0.999], 8000, "r") is None
    assert unsettled_advice([0.99, 1.0], [0.97, 0.99], 8000, "r") is None
    # a deliberately short run is told its budget instead, and the worst four are named
    short = unsettled_advice([0.1 * i for i in range(6)], [1.0] * 6, 300, "r", 8000)
    assert short.startswith("vectors 1, 2, 3, 4 (and 2 more)")
    assert "this run did 300 steps; its spectrum asks for 8000" in short
    assert short.endswith("--steps 8000")


def test_exact_data_budgets_for_near_repeats_that_collected_data_scores_as_one():
    """A 0.3% gap (GridRoomSym-4's lambda_7, lambda_8) is one eigenspace for collected data
    but must be separated on --data exact, where cos_strict scores each vector alone."""
    values = np.array([0.0, 0.03, 0.06, 0.333, 0.3333, 0.37])
    collected = recommend(values, d=5, tol=separation_tolerance("collected"))
    exact = recommend(values, d=5, tol=separation_tolerance("exact"))
    assert collected.pair != (4, 5) and collected.steps == MIN_STEPS
    assert exact.pair == (4, 5) and exact.gap == pytest.approx(0.0003)
    assert exact.steps >= STEPS_TIMES_GAP / 0.0003 > collected.steps
    # exact repeats stay one eigenspace either way
    repeated = np.array([0.0, 0.1, 0.1, 0.3, 0.5])
    assert recommend(repeated, d=4, tol=0.0).pair == recommend(repeated, d=4).pair
