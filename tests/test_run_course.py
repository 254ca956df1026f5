"""benchmarks/run_course.py: a set of seed runs summarised every N steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import benchmark_script
from synthetic import make_run

from allo import rundir


def load_tool():
    return benchmark_script("run_course")


def test_rows_every_n_steps_and_the_interval_across_seeds(tmp_path, capsys):
    runs = [make_run(tmp_path / f"s{seed}", total_steps=1000) for seed in range(3)]
    assert load_tool().main([*map(str, runs), "--every", "500", "--command", "c"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "c" and len(out["seeds"]) == 3
    finals = []
    for run, seed in zip(runs, out["seeds"], strict=True):
        rows = {row["step"]: row for row in rundir.RunReader(run).metrics()}
        assert sorted(seed["rows"], key=int) == ["500", "1000"]
        assert seed["rows"]["1000"]["cos_strict"] == round(rows[1000]["cos_strict/mean"], 4)
        values, _ = rundir.RunReader(run).ground_truth()
        d = len(rows[1000]["eig/estimate"])
        ratio = np.asarray(rows[1000]["eig/estimate"])[1:] / values[1:d]  # lambda_1 = 0
        assert seed["rows"]["1000"]["dual_estimate_over_eigenvalue"] == pytest.approx(
            np.median(ratio), abs=1e-3)
        finals.append(seed["rows"]["1000"]["cos_strict"])
    across = out["across_seeds"]["cos_strict"]["1000"]
    assert across["mean"] == pytest.approx(np.mean(finals), abs=1e-4)
    assert across["low"] <= across["mean"] <= across["high"]


def test_a_folder_that_is_no_run_is_refused_in_one_line(tmp_path, capsys):
    assert load_tool().main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not run directories" in err
    run = make_run(tmp_path / "s0", total_steps=100)
    assert load_tool().main([str(run), "--every", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--every must be >= 1" in err
