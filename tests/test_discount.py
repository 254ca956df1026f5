"""allo.discount: the discount a run takes where --gamma is not given."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from trainproc import allo_subprocess

from allo import discount
from allo.budget import MIN_STEPS, REPEAT_TOLERANCE, recommend
from allo.config import DEFAULT_GAMMA, TrainConfig
from allo.layouts import add_random_doors, load_builtin, load_layout_file, parse_layout
from allo.metrics import cosine_similarities
from allo.spectrum import ground_truth

ROOT = Path(__file__).resolve().parents[1]
ROOMS16 = ROOT / "benchmarks" / "layouts" / "rooms16.txt"


def truth(layout, gamma):
    return ground_truth(layout, gamma, 1000, 1000)


def test_the_spectrum_at_another_discount_follows_from_the_one_at_the_default():  # (12)
    """lambda at 0.9 .. 0.99 predicted from lambda at 0.8 through mu, against the exact
    spectra; and the same eigenvectors at every discount (no goal, start or door). (12) is
    exact for the uncut offset law; allo's 1000-step episodes cut the longest offsets, so
    the prediction drifts as the mean offset grows (why discount.keep checks the real
    spectrum)."""
    layout = load_layout_file(str(ROOMS16))
    base = truth(layout, DEFAULT_GAMMA)
    mu = discount.random_walk_eigenvalues(base.eigenvalues[:12], DEFAULT_GAMMA)
    np.testing.assert_allclose(discount.at_discount(mu, DEFAULT_GAMMA), base.eigenvalues[:12],
                               atol=1e-12)
    for gamma, within in ((0.9, 0.006), (0.95, 0.02), (0.99, 0.1)):
        other = truth(layout, gamma)
        np.testing.assert_allclose(discount.at_discount(mu, gamma), other.eigenvalues[:12],
                                   rtol=within, atol=1e-12)
        cos = cosine_similarities(other.eigenvectors[:, :10], base.eigenvectors[:, :11],
                                  base.eigenvalues[:11])
        assert cos.min() > 1 - 1e-8


def test_a_layout_at_the_floor_keeps_the_default():
    values = truth(load_builtin("room4"), DEFAULT_GAMMA).eigenvalues
    assert recommend(values, 10).needed <= MIN_STEPS
    assert discount.choose(values, 10, REPEAT_TOLERANCE) is None


def test_the_largest_discount_that_keeps_the_eigenspaces_is_taken():
    # lambda at 0.8 for mu of a large room: gaps of about 3e-4, 36000 steps; 0.95 would
    # come near the floor (9000), 0.99 spreads the gaps most (2000)
    mu = np.array([0.0, 1e-4, 1.5e-4, 2.2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4])
    values = discount.at_discount(mu, DEFAULT_GAMMA)
    assert recommend(values, 10).needed > MIN_STEPS
    needed = [recommend(discount.at_discount(mu, g), 10).needed for g in discount.CANDIDATES]
    assert needed == sorted(needed, reverse=True) and needed[-1] < MIN_STEPS
    choice = discount.choose(values, 10, REPEAT_TOLERANCE)
    assert choice is not None and choice.gamma == max(discount.CANDIDATES) == 0.99
    assert choice.steps_at_default == recommend(values, 10).needed
    assert choice.steps == recommend(discount.at_discount(mu, 0.99), 10).needed


def test_a_layout_too_slow_for_every_candidate_still_takes_the_largest():
    mu = np.array([0.0, 1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 7e-6, 8e-6, 9e-6, 1e-5])
    choice = discount.choose(discount.at_discount(mu, DEFAULT_GAMMA), 10, REPEAT_TOLERANCE)
    assert choice is not None and choice.gamma == 0.99 and choice.steps > MIN_STEPS


def test_a_discount_that_would_merge_two_eigenspaces_is_not_taken():
    """A larger discount compresses the upper spectrum: mu 0.5 and 0.51 are 0.7% apart at
    0.8 and within REPEAT_TOLERANCE at 0.9 and above, where the budget would skip them;
    mu 0.2 and 0.21 (4.5% at 0.8) merge only at 0.99, so 0.95 is taken."""
    mu = np.array([0.0, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 0.5, 0.51])
    values = discount.at_discount(mu, DEFAULT_GAMMA)
    assert recommend(values, 10).needed > MIN_STEPS
    assert discount.choose(values, 10, REPEAT_TOLERANCE) is None
    mu[-2:] = [0.2, 0.21]
    choice = discount.choose(discount.at_discount(mu, DEFAULT_GAMMA), 10, REPEAT_TOLERANCE)
    assert choice is not None and choice.gamma == 0.95


def test_a_spectrum_that_does_no_better_keeps_the_default():
    choice = discount.Choice(0.99, steps_at_default=20000, steps=3000)
    assert discount.keep(choice, recommend(np.array([0.0, 1e-4, 2e-4]), 2)) is None
    kept = discount.keep(choice, recommend(np.array([0.0, 0.01, 0.02]), 2))
    assert kept is not None and kept.steps < 20000


def test_only_runs_whose_eigenvectors_stay_may_choose():
    open_room = load_builtin("room4")
    assert discount.may_choose(open_room, None, None)
    assert not discount.may_choose(open_room, 0.8, None)  # --gamma given
    assert not discount.may_choose(open_room, None, 1024)  # sampled batches
    assert not discount.may_choose(load_builtin("maze"), None, None)  # a start S
    goal = parse_layout("XXXXX\nX  GX\nX   X\nXXXXX\n")
    assert not discount.may_choose(goal, None, None)
    assert not discount.may_choose(add_random_doors(open_room, 2, 0), None, None)
    big = parse_layout("\n".join(["X" * 53] + ["X" + " " * 51 + "X"] * 51 + ["X" * 53]))
    assert big.num_free > 2500 and not discount.may_choose(big, None, None)


def test_the_config_reads_the_default_until_a_run_chooses():
    assert TrainConfig().gamma is None and TrainConfig().discount == DEFAULT_GAMMA
    assert TrainConfig(gamma=0.9).discount == 0.9


@pytest.mark.slow
def test_a_run_records_the_discount_it_chose_and_resumes_with_it(tmp_path):
    def allo(*args: str) -> subprocess.CompletedProcess:
        return allo_subprocess(*args, timeout=300)

    # rooms16's close pair asks for 35000 steps at 0.8; at 0.99 its lambda_9, lambda_10
    # would be within REPEAT_TOLERANCE, so 0.95 is the largest it may take
    rooms16 = load_layout_file(str(ROOMS16))
    choice = discount.choose(truth(rooms16, DEFAULT_GAMMA).eigenvalues, 10, REPEAT_TOLERANCE)
    assert choice is not None and choice.gamma == 0.95
    run = tmp_path / "chosen"
    first = allo("train", "--env-file", str(ROOMS16), "--steps", "2", "--num-envs", "20",
                 "--run-dir", str(run))
    assert first.returncode == 0, first.stderr
    notes = [line for line in first.stderr.splitlines() if "gamma 0.95, not 0.8" in line]
    assert len(notes) == 1 and "--gamma 0.8 keeps" in notes[0]
    info = json.loads((run / "run.json").read_text())
    assert info["gamma"] == 0.95 and info["config"]["gamma"] == 0.95
    np.testing.assert_allclose(np.load(run / "gt_eigenvalues.npy", allow_pickle=False)[:10],
                               truth(rooms16, 0.95).eigenvalues[:10], atol=1e-10)
    again = allo("train", "--resume", str(run), "--steps", "4")
    assert again.returncode == 0, again.stderr
    assert "not 0.8" not in again.stderr
    assert json.loads((run / "run.json").read_text())["config"]["gamma"] == 0.95

    given = tmp_path / "given"
    kept = allo("train", "--env-file", str(ROOMS16), "--steps", "2", "--num-envs", "20",
                "--gamma", "0.8", "--run-dir", str(given))
    assert kept.returncode == 0, kept.stderr
    assert "not 0.8" not in kept.stderr
    assert json.loads((given / "run.json").read_text())["gamma"] == 0.8
