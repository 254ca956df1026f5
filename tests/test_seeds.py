"""--seeds: several seeds as one batched model, each the same as training it alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TWO_ROOMS, tiny_config

from allo import rundir
from allo.config import TrainConfig, parse_seeds
from allo.cuda_graph import restore, snapshot
from allo.data import PairSampler, collect, empirical_pair_law
from allo.layouts import load_builtin
from allo.learner import Learner
from allo.train import train, train_seeds

# conftest's tiny training, a few dozen steps (a seed's arithmetic, not its accuracy)
SHORT = {"num_gradient_steps": 60, "log_freq": 20, "plot_freq": 30, "checkpoint_freq": 30,
         "lr_warmup_steps": 10}


def small_config(tmp_path: Path, **changes) -> TrainConfig:
    """TWO_ROOMS in `tmp_path`, runs under tmp_path/results."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    layout = tmp_path / "small.txt"
    layout.write_text(TWO_ROOMS)
    return tiny_config(layout, results_dir=str(tmp_path / "results"), **{**SHORT, **changes})


def test_parse_seeds():
    assert parse_seeds("0-7") == list(range(8))
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    for bad in ("", "a-b", "3-1", "1,,2", "-1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


@pytest.mark.parametrize("objective,batch_size", [("allo", 2048), ("ggdo", 2048),
                                                  ("allo", None)])
def test_two_batched_seeds_match_two_single_runs(tmp_path, objective, batch_size):
    together = train_seeds(small_config(tmp_path / "b", seeds="3,5", objective=objective,
                                        batch_size=batch_size))
    assert [o.status for o in together] == ["finished", "finished"]
    for seed, outcome in zip((3, 5), together, strict=True):
        alone = train(small_config(tmp_path / f"s{seed}", seed=seed, objective=objective,
                                   batch_size=batch_size))
        batched, single = rundir.RunReader(outcome.run_dir), rundir.RunReader(alone.run_dir)
        assert batched.info().seed == seed and batched.info().config["seeds"] is None
        np.testing.assert_allclose(batched.final(), single.final(), atol=1e-5)
        np.testing.assert_allclose(batched.learned(30), single.learned(30), atol=1e-5)
        rows_b, rows_s = batched.metrics(), single.metrics()
        assert [r["step"] for r in rows_b] == [r["step"] for r in rows_s]
        assert rows_b[-1]["cos/mean"] == pytest.approx(rows_s[-1]["cos/mean"], abs=1e-5)
    # the two seeds really are different runs
    first, second = (rundir.RunReader(o.run_dir).final() for o in together)
    assert np.abs(first - second).max() > 1e-2


def resume_from(run: Path, step: int):
    """Cut a run back to its checkpoint of `step` (the later ones deleted) and resume it."""
    for later in rundir.checkpoint_steps(run):
        if later > step:
            (run / rundir.CHECKPOINTS / rundir.checkpoint_name(later)).unlink()
    info = rundir.RunReader(run).info()
    return train(TrainConfig(**info.config), resume=run)


@pytest.mark.parametrize("batch_size", [2048, None])
def test_a_seed_of_a_batch_resumes_alone(tmp_path, batch_size):
    cfg = small_config(tmp_path, seeds="0-1", num_gradient_steps=60, batch_size=batch_size)
    outcomes = train_seeds(cfg)
    full = rundir.RunReader(outcomes[1].run_dir).final()
    # cut seed 1 back to its step-30 checkpoint and resume it on its own
    run = outcomes[1].run_dir
    resumed = resume_from(run, 30)
    assert resumed.status == "finished"
    np.testing.assert_allclose(rundir.RunReader(run).final(), full, atol=1e-5)


def cut_back(run: Path, step: int) -> None:
    """Delete the run's checkpoints after `step`, as if it had been stopped there."""
    for later in rundir.checkpoint_steps(run):
        if later > step:
            (run / rundir.CHECKPOINTS / rundir.checkpoint_name(later)).unlink()


@pytest.mark.parametrize("batch_size", [2048, None])
def test_the_seeds_of_a_batch_resume_together_as_they_would_have_gone_on(tmp_path, batch_size):
    cfg = small_config(tmp_path, seeds="0-2", batch_size=batch_size)
    outcomes = train_seeds(cfg)
    runs = [outcome.run_dir for outcome in outcomes]
    full = [rundir.RunReader(run).final() for run in runs]
    for run in runs:
        cut_back(run, 30)
    info = rundir.RunReader(runs[0]).info()
    again = train_seeds(TrainConfig(**{**info.config, "seeds": "0-2"}), resume=runs)
    assert [o.status for o in again] == ["finished"] * 3
    for run, final in zip(runs, full, strict=True):
        reader = rundir.RunReader(run)
        # the same batched arithmetic as the uninterrupted run: bit for bit on CPU
        np.testing.assert_array_equal(reader.final(), final)
        assert [entry["step"] for entry in reader.info().resumes] == [30]
        steps = [row["step"] for row in reader.metrics()]
        assert steps == sorted(set(steps)) and steps[-1] == 60  # nothing twice


def test_seeds_with_data_sets_of_different_sizes_resume_together(tmp_path):
    """Without --num-envs each seed grows its own data set (allo/dataset.py), so the seeds
    of one --seeds run record different sizes. They were refused as "differ in
    --num-envs" and went on one at a time; now each goes on, beside the other, on its own
    data, as it would have gone on alone."""
    runs, finals = [], []
    for seed, envs in ((0, 100), (1, 160)):
        outcome = train(small_config(tmp_path, seed=seed, num_envs=envs,
                                     run_dir=str(tmp_path / f"s{seed}")))
        runs.append(outcome.run_dir)
        finals.append(rundir.RunReader(outcome.run_dir).final())
    for run in runs:
        cut_back(run, 30)
    from allo.cli import main

    assert main(["train", "--resume", *map(str, runs)]) == 0
    for run, final, envs in zip(runs, finals, (100, 160), strict=True):
        info = rundir.RunReader(run).info()
        assert info.status == "finished" and info.config["num_envs"] == envs
        assert [entry["step"] for entry in info.resumes] == [30]
        np.testing.assert_allclose(rundir.RunReader(run).final(), final, atol=1e-5)


def seeds_run(tmp_path: Path, **changes) -> list[Path]:
    """Two batched seeds, 60 steps, as `allo train` writes them."""
    return [o.run_dir for o in train_seeds(small_config(tmp_path, seeds="0-1", **changes))]


def refused(capsys, *argv) -> str:
    from allo.cli import main

    code = main(["train", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_runs_that_cannot_go_on_as_one_model_are_refused_in_one_line(tmp_path, capsys):
    first, second = seeds_run(tmp_path / "a")
    other_seed0, _ = seeds_run(tmp_path / "b", hidden_size=16)
    before = {run: (run / rundir.RUN_JSON).read_bytes() for run in (first, second, other_seed0)}
    assert "given twice" in refused(capsys, "--resume", first, first)
    assert "both seed 0" in refused(capsys, "--resume", first, other_seed0)
    other = seeds_run(tmp_path / "c", hidden_size=16)[1]
    err = refused(capsys, "--resume", first, other)
    assert "differ in --hidden-size" in err and "one at a time" in err
    cut_back(second, 30)  # first goes on from 60, second from 30
    err = refused(capsys, "--resume", first, second)
    assert "different checkpoints" in err and "from step 30" in err
    assert "--seeds" in refused(capsys, "--resume", first, second, "--seeds", "0-1")
    assert all((run / rundir.RUN_JSON).read_bytes() == data for run, data in before.items())


def test_an_overridable_setting_that_differs_may_be_given_for_all(tmp_path, capsys):
    first, second = seeds_run(tmp_path)
    info = json.loads((second / rundir.RUN_JSON).read_text())
    info["config"]["log_freq"] = 10  # as if it had been resumed alone with --log-freq 10
    (second / rundir.RUN_JSON).write_text(json.dumps(info))
    err = refused(capsys, "--resume", first, second, "--steps", "90")
    assert "differ in --log-freq" in err and "give --log-freq for all" in err
    from allo.cli import main

    assert main(["train", "--resume", str(first), str(second), "--steps", "90",
                 "--log-freq", "15"]) == 0
    for run in (first, second):
        info = rundir.RunReader(run).info()
        assert info.status == "finished" and info.step == 90 and info.config["log_freq"] == 15


def test_snapshot_restore_undoes_warmup_steps():
    """The CUDA graph's warm-up steps are undone by restore(); checked here on the CPU."""
    layout = load_builtin("room4")
    law = empirical_pair_law(collect(layout, 50, 100, 100, seed=0), 0.8, layout.num_free)
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, batch_size=512, num_gradient_steps=20)
    coords = torch.as_tensor(layout.coordinates())

    def fresh() -> Learner:
        return Learner(cfg, [0], torch.device("cpu"), PairSampler([law], [0], "cpu"), coords)

    reference, learner = fresh(), fresh()
    for warm in (learner, reference):
        warm.step()  # from a state with Adam moments, too
    saved = snapshot(learner)
    for _ in range(3):
        learner.step()
    restore(learner, saved)
    for _ in range(4):
        a, b = reference.step(), learner.step()
        assert torch.equal(a.total, b.total)
    assert torch.equal(reference.tables(), learner.tables())
    assert torch.equal(reference.duals, learner.duals)
    # and restoring to a state before Adam's first step zeroes the moments it created
    first, untouched = fresh(), fresh()
    saved = snapshot(first)
    first.step()
    restore(first, saved)
    first.step(), untouched.step()
    assert torch.equal(first.tables(), untouched.tables())


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "allo.cli", "train", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_cli_seeds_writes_one_run_per_seed(tmp_path):
    layout = tmp_path / "small.txt"
    layout.write_text(TWO_ROOMS)
    flags = ["--env-file", str(layout), "--num-envs", "50", "--num-steps", "50",
             "--hidden-size", "32", "--hidden-layers", "2", "--batch-size", "512",
             "--num-eigenvectors", "3", "--steps", "40", "--log-freq", "20"]
    done = run_cli(*flags, "--seeds", "2,4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    runs = [Path(tmp_path, line) for line in lines[-2:]]
    assert [rundir.RunReader(r).info().seed for r in runs] == [2, 4]
    assert all(rundir.RunReader(r).info().status == "finished" for r in runs)
    for bad, why in ((["--seeds", "3-1"], "empty"), (["--seeds", "0-1", "--run-dir", "x"],
                                                     "--run-dir"),
                     (["--cuda-graph", "on", "--device", "cpu"], "CUDA")):
        failed = run_cli(*flags, *bad, cwd=tmp_path)
        assert failed.returncode == 2
        assert why in failed.stderr and "Traceback" not in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1


def test_gradient_clipping_is_per_seed():
    layout = load_builtin("room4")
    law = empirical_pair_law(collect(layout, 50, 100, 100, seed=0), 0.8, layout.num_free)
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, batch_size=512, num_gradient_steps=20)
    coords = torch.as_tensor(layout.coordinates())
    learner = Learner(cfg, [0, 1], torch.device("cpu"),
                      PairSampler([law, law], [0, 1], "cpu"), coords)
    learner.step()
    grad = learner.model.grad  # (seeds, parameters): each weight and bias gradient a view
    learner.model.weight_grads[0][1] *= 1e-3  # seed 1 has a tiny gradient ...
    for view in learner.model.weight_grads[1:] + learner.model.bias_grads:
        view[1] *= 1e-3  # ... in every parameter
    before = torch.stack([torch.cat([g[s].flatten() for g in learner.model.weight_grads
                                     + learner.model.bias_grads]).norm() for s in (0, 1)])
    assert grad[1].norm() == pytest.approx(float(before[1]), rel=1e-5)
    learner.clip_gradients(float(before[0]) / 2)
    after = grad.norm(dim=1)
    assert after[0] == pytest.approx(float(before[0]) / 2, rel=1e-4)
    assert after[1] == pytest.approx(float(before[1]), rel=1e-6)  # untouched


def test_duals_warm_up_with_the_learning_rate():
    """Step 1 of a 10-step warm-up moves the duals a tenth of lr_duals times h."""
    layout = load_builtin("room4")
    law = empirical_pair_law(collect(layout, 50, 100, 100, seed=0), 0.8, layout.num_free)
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, batch_size=512, num_gradient_steps=20,
                      lr_warmup_steps=10, lr_duals=0.5)
    learner = Learner(cfg, [0], torch.device("cpu"), PairSampler([law], [0], "cpu"),
                      torch.as_tensor(layout.coordinates()))
    terms = learner.step()
    torch.testing.assert_close(learner.duals, terms.constraint * 0.5 / 10)
    for _ in range(12):
        before = learner.duals.clone()
        terms = learner.step()
    torch.testing.assert_close(learner.duals - before, terms.constraint * 0.5)  # full speed
    assert learner.grad_norm is not None and float(learner.grad_norm[0]) > 0


def test_the_progress_line_of_seeds_that_ended_apart_shows_the_latest_step():
    """A seed settled at its budget keeps its last row while another goes on."""
    from allo.training.runs import SeedRun, format_rows

    ended, going_on = (SeedRun(seed, TrainConfig(seed=seed), Path(f"run{seed}"))
                       for seed in (0, 2))
    ended.last_row = {"step": 8000, "cos/mean": 1.0}
    going_on.last_row = {"step": 9000, "cos/mean": 0.9991}
    assert format_rows([ended, going_on]) == "step    9000  mean|cos| by seed  0:1.0000  2:0.9991"
