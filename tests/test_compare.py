"""`allo compare`: grouping by setting, the t-interval by hand, table and outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from synthetic import SyntheticRun

from allo import rundir
from renderers import compare
from renderers.grouping import RunSummary, aligned, band, group_runs, setting
from renderers.stats import mean_interval, t_quantile


def summary(name: str, config: dict, cos: list[float], steps=None, wall=1.0) -> RunSummary:
    steps = steps or [10 * (i + 1) for i in range(len(cos))]
    rows = [
        {"step": s, "cos/mean": c, "eig/mean_abs_error": 1 - c}
        for s, c in zip(steps, cos, strict=True)
    ]
    return RunSummary(name, name, "finished", config, rows, wall)


def test_t_quantiles_match_tables():
    for df, expected in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_interval_by_hand():
    # values 1, 3, 5: mean 3, s = 2, n = 3 -> half-width 4.3027 * 2 / sqrt(3) = 4.9683
    mean, low, high = mean_interval(np.array([1.0, 3.0, 5.0]))
    assert float(mean) == 3.0
    assert float(high - mean) == pytest.approx(4.302653 * 2 / math.sqrt(3), rel=1e-6)
    # one value: no interval
    _, low, high = mean_interval(np.array([2.0]))
    assert math.isnan(float(low)) and math.isnan(float(high))


def test_setting_ignores_bookkeeping_only():
    base = {
        "env": "room4",
        "seed": 0,
        "run_dir": "a",
        "results_dir": "r",
        "exp_number": 1,
        "resume": None,
        "learning_rate": 1e-3,
        "log_freq": 100,
    }
    other_seed = dict(base, seed=5, run_dir="b", exp_number=2, log_freq=50)
    other_lr = dict(base, learning_rate=1e-2)
    assert setting({"config": base}) == setting({"config": other_seed})
    assert setting({"config": base}) != setting({"config": other_lr})


def test_grouping_and_labels():
    runs = [
        summary("a", {"env": "room4", "learning_rate": 0.001}, [0.5, 0.6]),
        summary("b", {"env": "room4", "learning_rate": 0.01}, [0.5, 0.7]),
        summary("c", {"env": "room4", "learning_rate": 0.001}, [0.7, 0.8]),
    ]
    groups = group_runs(runs)
    assert [[r.name for r in g.runs] for g in groups] == [["a", "c"], ["b"]]
    assert groups[0].label == "learning_rate=0.001" and groups[1].label == "learning_rate=0.01"


def test_band_aligns_steps_and_computes_interval():
    runs = [
        summary("a", {}, [0.2, 0.4, 0.6]),
        summary("b", {}, [0.4, 0.6, 0.8]),
        summary("c", {}, [0.6, 0.8, 1.0, 1.0], steps=[10, 20, 30, 40]),  # longer run
    ]
    steps, mean, low, high = band(runs, "cos/mean")
    assert steps.tolist() == [10, 20, 30]  # the range every run covers
    assert mean == pytest.approx([0.4, 0.6, 0.8])
    half = 4.302653 * 0.2 / math.sqrt(3)  # s = 0.2 at every step
    assert (high - mean) == pytest.approx([half] * 3, rel=1e-5)
    assert (mean - low) == pytest.approx([half] * 3, rel=1e-5)


def test_alignment_interpolates_between_logged_steps():
    runs = [
        summary("a", {}, [0.0, 1.0], steps=[0, 100]),
        summary("b", {}, [0.0, 0.5, 1.0], steps=[0, 50, 100]),
    ]
    steps, values = aligned(runs, "cos/mean")
    assert steps.tolist() == [0, 50, 100]
    assert values[0].tolist() == [0.0, 0.5, 1.0]


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    paths = []
    for seed, lr in ((0, 0.001), (1, 0.001), (2, 0.01)):
        path = tmp_path / f"room__{seed}"
        run = SyntheticRun(path, d=3, total_steps=200, seed=seed)
        info = rundir.read_json(path / "run.json")
        info["config"].update(seed=seed, learning_rate=lr, run_dir=str(path))
        info["elapsed"] = 10.0 + seed
        run.writer.write_info(info)
        run.advance(200, log_freq=20, export_freq=100)
        run.finish()
        paths.append(path)
    return paths


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_compare_writes_figure_table_and_json(runs, tmp_path, capsys, fmt):
    out = tmp_path / "cmp"
    assert compare.main([*map(str, runs), "--format", fmt, "--out", str(out), "--dpi", "40"]) == 0
    printed = capsys.readouterr().out
    assert (out / f"comparison.{fmt}").stat().st_size > 500
    table = (out / "comparison_table.txt").read_text()
    assert table in printed and "mean of 2" in table and "mean of 1" in table
    data = json.loads((out / "comparison.json").read_text())
    first = data["groups"][0]
    assert [r["name"] for r in first["runs"]] == ["room__0", "room__1"]
    walls = [r["wall_time"] for r in first["runs"]]
    assert walls == [10.0, 11.0]
    half = 12.7062 * np.std(walls, ddof=1) / math.sqrt(2)
    assert first["summary"]["wall_time"]["ci95_high"] == pytest.approx(10.5 + half, rel=1e-4)
    assert all(not (path / "plots").exists() for path in runs)  # runs only read


def test_compare_text_to_stdout(runs, tmp_path, capsys):
    assert compare.main([*map(str, runs), "--format", "text", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "Mean |cos| to ground truth" in out and "learning_rate=0.001" in out


def test_compare_missing_run_and_bad_out(runs, tmp_path, capsys):
    assert compare.main([str(runs[0]), str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert compare.main([str(runs[0]), "--out", str(runs[0])]) == 2
