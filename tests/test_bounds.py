"""Every numeric flag has a documented range, checked before any work with what it
implies (allo/config.py, allo/bounds.py); README lists them all."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest
from trainproc import layout_file, one_line_error, train_args, warm

from allo import bounds, rundir
from allo.config import TrainConfig, flag, parse_seeds

ROOT = Path(__file__).resolve().parents[1]
RANGED = [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("bounds")]


def problem(**values) -> str | None:
    try:
        TrainConfig(**values).validate()
    except ValueError as err:
        return str(err)
    return None


@pytest.mark.parametrize("f", RANGED, ids=lambda f: f.name)
def test_each_range_holds_its_ends_and_refuses_past_them(f):
    low, high = f.metadata["bounds"]
    step = 1 if isinstance(low, int) else max(abs(high), 1.0) * 1e-6
    inside = ([low + step, high - step] if f.metadata["exclusive"] else [low, high])
    if f.name == "threads":
        inside = [low, bounds.usable_cores()]
    for value in inside:
        assert problem(**{f.name: value}) is None, (f.name, value)
    outside = [low - step, high + step, float("nan") if isinstance(low, float) else -10**30]
    if f.metadata["exclusive"]:
        outside += [low, high]
    for value in outside:
        message = problem(**{f.name: value})
        assert message is not None and "\n" not in message, (f.name, value)
        assert message.startswith(f"{flag(f.name)} ") and f.metadata["why"] in message


def test_infinite_floats_are_refused():
    assert "--learning-rate inf" in problem(learning_rate=float("inf"))
    assert "--gamma" in problem(gamma=float("-inf"))


def test_threads_beyond_the_cores_are_refused():
    message = problem(threads=bounds.usable_cores() + 1)
    assert message and "core" in message and "--threads" in message


def test_a_huge_seed_range_is_refused_before_it_is_listed():
    began = time.perf_counter()
    with pytest.raises(ValueError, match="limit is 256"):
        parse_seeds("0-1000000000")
    with pytest.raises(ValueError, match="32-bit"):
        parse_seeds("4294967290-4294967300")
    with pytest.raises(ValueError, match="limit is 256"):
        parse_seeds(",".join(f"{k * 10}-{k * 10 + 9}" for k in range(30)))
    assert time.perf_counter() - began < 1.0  # listed nothing (a hang before)
    assert parse_seeds("0-3,2,9") == [0, 1, 2, 3, 9]
    assert parse_seeds("0-255") == list(range(256))


def test_memory_names_the_option_that_needs_it():
    cfg = TrainConfig(hidden_size=16384, hidden_layers=64, num_gradient_steps=1000)
    with pytest.raises(ValueError) as err:
        bounds.check_memory(cfg, num_free=104, num_seeds=8, memory=64 * 2**30)
    message = str(err.value)
    assert message.startswith("--hidden-size 16384: the model needs about")
    assert "64.0 GiB" in message and "\n" not in message
    bounds.check_memory(TrainConfig(num_gradient_steps=60000), 2500, 8, memory=8 * 2**30)
    with pytest.raises(ValueError, match=r"^--num-steps 10000000: the data collection"):
        bounds.check_memory(TrainConfig(num_steps=10**7, num_gradient_steps=10),
                            104, 1, memory=64 * 2**30)


def test_readme_lists_every_bound():
    readme = (ROOT / "README.md").read_text()
    for row in bounds.flag_table():
        assert row in readme, f"README lacks: {row}"
    for name in ("MAX_SEEDS", "MAX_SIDE", "MAX_FREE_CELLS", "MAX_FILE_BYTES", "MEMORY_SHARE",
                 "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_METRICS_BYTES", "MAX_NPY_BYTES",
                 "MAX_STUDY_BYTES"):
        assert name in readme, name
    from allo import safeio
    assert f"`MAX_JSON_DEPTH` = {safeio.MAX_JSON_DEPTH} levels" in readme
    assert f"`MAX_SEEDS` = {bounds.MAX_SEEDS} seeds" in readme


@pytest.mark.slow
@pytest.mark.parametrize("flags,needle", [
    (["--seed", "-1"], "--seed -1: outside its range"),
    (["--seed", str(2**63)], "--seed"),
    (["--hidden-size", "1000000000"], "--hidden-size"),
    (["--batch-size", "4000000000"], "--batch-size"),
    (["--num-envs", "2000000000"], "--num-envs"),
    (["--threads", "100000"], "--threads"),
    (["--seeds", "0-100000"], "limit is 256"),
    (["--steps", str(10**12)], "--num-gradient-steps"),
    (["--gamma", "nan"], "--gamma nan"),
    (["--learning-rate", "inf"], "--learning-rate inf"),
])
def test_the_cli_refuses_in_one_line_before_any_work(tmp_path, flags, needle):
    layout = layout_file(tmp_path)
    run = tmp_path / "run"
    result = warm().run("train", "--env-file", layout, "--run-dir", run, *flags)
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert needle in result.stderr
    assert not run.exists()


@pytest.mark.slow
def test_a_resume_checks_the_recorded_config_too(tmp_path):
    layout = layout_file(tmp_path)
    result = warm().run(*train_args(layout, tmp_path / "run", 20))
    assert result.code == 0, result.stderr
    run = Path(shutil.copytree(tmp_path / "run", tmp_path / "edited"))
    info = json.loads((run / rundir.RUN_JSON).read_text())
    info["config"]["hidden_size"] = 10**12
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    result = warm().run("train", "--resume", run, "--steps", "40")
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert "--hidden-size 1000000000000" in result.stderr
