"""--protocol paper (the official code's settings) and --data exact (the exact law)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from trainproc import allo_subprocess

from allo import rundir
from allo.config import TrainConfig, given_flags, paper_settings, preset
from allo.train import train
from allo.train_cli import build_parser, resolve_config

ROOM = "XXXXXXXX\nX      X\nX XX   X\nX    X X\nXXXXXXXX\n"


def cli_config(*flags: str) -> TrainConfig:
    config, _ = resolve_config(build_parser().parse_args(list(flags)))
    return config


def test_paper_protocol_is_the_official_settings():
    config = cli_config("--protocol", "paper")
    assert config.protocol == "paper"
    assert (config.num_eigenvectors, config.gamma, config.max_episode_length) == (11, 0.9, 50)
    assert (config.batch_size, config.hidden_layers, config.hidden_size) == (1024, 3, 256)
    assert config.learning_rate == 1e-3 and config.lr_final_fraction == 1.0
    assert config.num_envs * config.num_steps == 200000  # al.yaml's n_samples
    assert config.num_gradient_steps == 50000
    # the official loss is twice allo's: duals and barrier are halved (docs/math.md 13)
    assert config.lr_duals == 0.5e-4 and config.barrier_initial == 0.5
    assert config.lr_barrier == pytest.approx(1.0 / (2 * 11 * 11))
    # allo's own defaults stay as they are
    assert cli_config().batch_size is None and cli_config().num_eigenvectors == 10


def test_explicit_flags_override_the_protocol():
    config = cli_config("--protocol", "paper", "--batch-size", "256", "--gamma", "0.95",
                        "--num-eigenvectors", "8")
    assert config.batch_size == 256 and config.gamma == 0.95
    assert config.num_eigenvectors == 8
    assert config.lr_barrier == pytest.approx(1.0 / (2 * 8 * 8))  # follows d
    assert config.hidden_layers == 3  # the rest is the protocol's


def test_a_zero_given_beside_the_protocol_overrides_it_too():
    """0 == False in Python: a fixed barrier (`--lr-barrier 0`, one of the official sweep's
    settings) was taken for a flag not given, and the preset's growing barrier ran instead."""
    config = cli_config("--protocol", "paper", "--lr-barrier", "0", "--seed", "0")
    assert config.lr_barrier == 0.0 and config.seed == 0
    assert config.barrier_initial == 0.5  # the rest is the protocol's
    assert cli_config("--protocol", "paper", "--barrier-initial", "0").barrier_initial == 0.0


def test_a_zero_counts_as_given_when_resuming_too(tmp_path: Path):
    """The resume check and the protocol share one rule for what was given: a resumed
    run's barrier step cannot be changed, to 0 no more than to 0.5."""
    args = build_parser().parse_args(["--resume", str(tmp_path), "--lr-barrier", "0"])
    assert given_flags(args) == {"resume", "lr_barrier"}
    with pytest.raises(ValueError, match="cannot change --lr-barrier when resuming"):
        resolve_config(args)


def test_the_protocol_follows_the_objective():
    ggdo = cli_config("--protocol", "paper", "--objective", "ggdo")
    assert ggdo.num_gradient_steps == 200000 and ggdo.num_envs * ggdo.num_steps == 100000
    assert preset("paper", objective="ggdo") == ggdo
    assert "lr_barrier" not in paper_settings("ggdo")  # GGDO's barrier is fixed


@pytest.mark.slow
@pytest.mark.parametrize("flags, words", [
    (["--protocol", "paper", "--data", "exact"], "cannot be honoured"),
    (["--data", "exact", "--batch-size", "64"], "drop --batch-size"),
    (["--objective", "nonsense"], "invalid choice"),
    (["--protocol", "nonsense"], "invalid choice"),
    (["--data", "nonsense"], "invalid choice"),
])
def test_bad_protocol_and_data_flags_are_one_line_exit_2(tmp_path, flags, words):
    done = allo_subprocess("train", "--results-dir", str(tmp_path), *flags)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not any(tmp_path.iterdir())  # nothing started


def test_a_config_value_outside_the_choices_is_refused_from_python_too():
    with pytest.raises(ValueError, match="--objective 'nope'"):
        TrainConfig(objective="nope").validate()


@pytest.mark.slow
def test_exact_data_trains_on_the_exact_law(tmp_path):
    layout = tmp_path / "room.txt"
    layout.write_text(ROOM)
    cfg = TrainConfig(env_file=str(layout), run_dir=str(tmp_path / "run"), data="exact",
                      hidden_size=64, hidden_layers=2, num_eigenvectors=4,
                      num_gradient_steps=2500, log_freq=500, plot_freq=2500,
                      checkpoint_freq=2500, learning_rate=0.01, lr_warmup_steps=100)
    outcome = train(cfg)
    assert outcome.status == "finished"
    info = rundir.RunReader(outcome.run_dir).info()
    assert info.config["data"] == "exact" and info.config["num_envs"] is None
    assert info.budget.num_envs == 0
    assert info.budget.data_ceiling == 1.0
    assert info.budget.data_ceiling_strict == pytest.approx(1.0)
    row = rundir.RunReader(outcome.run_dir).metrics()[-1]
    assert row["cos_strict/mean"] >= 0.99
    # the Rayleigh quotients use the training law: with the exact law they are exact
    assert row["eig/rayleigh_mean_rel_error"] < 0.02


def test_exact_data_is_the_ground_truths_law(tmp_path, monkeypatch):
    """The weights a --data exact run trains on are spectrum.pair_law itself."""
    from allo import data as data_module
    from allo import train as train_module

    seen = {}
    original = data_module.DataLawWeights.__init__

    def spy(self, laws, seeds, device):
        seen["laws"] = laws
        original(self, laws, seeds, device)

    monkeypatch.setattr(train_module.DataLawWeights, "__init__", spy)
    layout = tmp_path / "room.txt"
    layout.write_text(ROOM)
    cfg = TrainConfig(env_file=str(layout), run_dir=str(tmp_path / "run"), data="exact",
                      hidden_size=16, hidden_layers=1, num_eigenvectors=3,
                      num_gradient_steps=10, log_freq=10, plot_freq=10, checkpoint_freq=10)
    train(cfg)
    from allo.layouts import load_layout_file
    from allo.spectrum import ground_truth

    truth = ground_truth(load_layout_file(str(layout)), cfg.discount, cfg.num_steps,
                         cfg.max_episode_length)
    from allo.sparse_law import dense

    assert np.allclose(dense(seen["laws"][0]), truth.pair_law)


def test_paper_protocol_runs_end_to_end(tmp_path):
    """A few steps of the paper's settings (minibatches, d 11, 3 x 256) on a small grid."""
    layout = Path(tmp_path / "room.txt")
    layout.write_text("XXXXXXX\nX     X\nX     X\nX     X\nXXXXXXX\n")
    cfg = preset("paper", env_file=str(layout), run_dir=str(tmp_path / "run"),
                 num_gradient_steps=20, num_envs=100, log_freq=10, plot_freq=20,
                 checkpoint_freq=20)
    outcome = train(cfg)
    assert outcome.status == "finished"
    row = rundir.RunReader(outcome.run_dir).metrics()[-1]
    assert len(row["cos_strict/per_vector"]) == 11
    assert rundir.RunReader(outcome.run_dir).info().config["protocol"] == "paper"


# two rooms (3 x 3 and 3 x 5) joined by a door: lambda_7 and lambda_8 are 0.33% apart, a
# near-repeat that collected data scores as one eigenspace but --data exact must separate
TWO_ROOMS = ("XXXXXXXXXXX\nX   X     X\nX         X\nX   X     X\nXXXXXXXXXXX\n")


@pytest.mark.slow
def test_exact_data_separates_a_near_repeat_by_cos_strict(tmp_path, monkeypatch):
    """The budget and the settling check count the near-repeat's gap on exact data (with
    the floor lowered so the gap, not MIN_STEPS, sets the steps: fails without that)."""
    from allo import budget

    monkeypatch.setattr(budget, "MIN_STEPS", 1000)
    layout = tmp_path / "two.txt"
    layout.write_text(TWO_ROOMS)
    cfg = TrainConfig(env_file=str(layout), run_dir=str(tmp_path / "run"), data="exact",
                      num_eigenvectors=8, log_freq=1000, plot_freq=100000,
                      checkpoint_freq=100000)
    outcome = train(cfg)
    assert outcome.status == "finished"
    reader = rundir.RunReader(outcome.run_dir)
    values = np.load(Path(outcome.run_dir) / "gt_eigenvalues.npy")
    assert 0.0 < (values[7] - values[6]) / values[7] < 0.005  # the near-repeat
    strict = reader.metrics()[-1]["cos_strict/per_vector"]
    assert min(strict) >= 0.99, strict
    recorded = reader.info().budget
    assert recorded is not None
    assert recorded.recommended_steps >= budget.STEPS_TIMES_GAP / (values[7] - values[6])


@pytest.mark.slow
def test_the_duals_relax_to_the_eigenvalues_over_two_b_over_the_dual_step(tmp_path):
    """docs/math.md 13: near the primal's equilibrium h_ii = -(2 lambda_i + beta_ii) / (2 b),
    so the estimate -beta_ii / 2 approaches lambda_i as 1 - exp(-t / tau), tau = 2 b / eta.
    On the exact law with a fixed barrier the fitted tau matches (why the paper preset's
    eigenvalues are far off after 50000 steps)."""
    layout = tmp_path / "room.txt"
    layout.write_text(ROOM)
    barrier, dual_step = 2.0, 1e-3
    cfg = TrainConfig(env_file=str(layout), run_dir=str(tmp_path / "run"), data="exact",
                      hidden_size=64, hidden_layers=2, num_eigenvectors=4,
                      num_gradient_steps=3000, log_freq=500, plot_freq=3000,
                      checkpoint_freq=3000, learning_rate=0.01, lr_warmup_steps=1,
                      barrier_initial=barrier, lr_barrier=0.0, lr_duals=dual_step)
    outcome = train(cfg)
    assert outcome.status == "finished"
    rows = {row["step"]: row for row in rundir.RunReader(outcome.run_dir).metrics()}
    truth = np.load(Path(outcome.run_dir) / "gt_eigenvalues.npy")[1:4]
    # after the primal's transient: the gap to each eigenvalue shrinks by exp(-2000 / tau)
    early = truth - np.asarray(rows[1000]["eig/estimate"][1:4])
    late = truth - np.asarray(rows[3000]["eig/estimate"][1:4])
    assert np.all(early * late > 0) and np.all(np.abs(late) < np.abs(early))
    fitted = 2000 / np.log(early / late)
    tau = 2 * barrier / dual_step
    assert np.allclose(fitted, tau, rtol=0.05), (fitted, tau)


def test_a_run_too_short_for_its_duals_is_told_so_and_a_default_one_is_not():
    from allo.budget import MIN_STEPS, unrelaxed_duals_advice

    paper = paper_settings("allo")
    line = unrelaxed_duals_advice(50000, 14.0, paper["lr_duals"])
    assert line is not None and "560000 steps" in line
    assert "(0.089 of that; within 5% takes 3)" in line
    defaults = TrainConfig()
    assert unrelaxed_duals_advice(MIN_STEPS, defaults.barrier_max, defaults.lr_duals) is None
    assert unrelaxed_duals_advice(50000, 14.0, 0.0) is None  # no dual ascent, no estimate


@pytest.mark.slow
def test_allo_train_notes_a_paper_run_whose_duals_have_not_relaxed(tmp_path):
    layout = tmp_path / "room.txt"
    layout.write_text(ROOM)
    done = allo_subprocess("train", "--env-file", layout, "--protocol", "paper",
                           "--steps", "20", "--num-envs", "100",
                           "--results-dir", tmp_path / "results", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "approach the eigenvalues over" in done.stderr
