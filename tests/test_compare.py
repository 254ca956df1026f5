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
from renderers.stats import mean_interval, positive_interval, t_quantile, unit_interval


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


def test_positive_interval_is_the_t_interval_of_the_logs():
    values = np.array([0.01, 0.5, 0.02])  # the plain interval's low end is negative here
    _, plain_low, _ = mean_interval(values)
    assert float(plain_low) < 0
    centre, low, high = positive_interval(values)
    logs = np.log(values)
    half = 4.302653 * np.std(logs, ddof=1) / math.sqrt(3)
    assert float(centre) == pytest.approx(math.exp(logs.mean()))
    assert float(low) == pytest.approx(math.exp(logs.mean() - half), rel=1e-6)
    assert float(high) == pytest.approx(math.exp(logs.mean() + half), rel=1e-6)
    assert 0 < float(low) < float(centre) < float(high)


def test_unit_interval_never_passes_one():
    values = np.array([[0.999, 0.9], [0.9999, 0.99], [0.99, 0.2]])  # runs x steps
    centre, low, high = unit_interval(values, axis=0)
    assert np.all(high < 1.0) and np.all(low >= 0.0) and np.all(low <= centre)
    _, _, plain_high = mean_interval(values, axis=0)
    assert float(plain_high[0]) > 1.0  # what the plain interval would have drawn
    gap_centre, gap_low, gap_high = positive_interval(1 - values, axis=0)
    assert np.allclose(1 - centre, gap_centre) and np.allclose(1 - high, gap_low)


def test_legend_is_sorted_numerically():
    runs = [summary(name, {"env": "room4", "num_gradient_steps": steps}, [0.5, 0.6])
            for name, steps in (("a", 8000), ("b", 30000), ("c", 3000))]
    labels = [g.label for g in group_runs(runs)]
    assert labels == ["num_gradient_steps=3000", "num_gradient_steps=8000",
                      "num_gradient_steps=30000"]
    lrs = [summary(str(lr), {"learning_rate": lr}, [0.5]) for lr in (0.01, 1e-4, 0.001)]
    assert [g.label for g in group_runs(lrs)] == [
        "learning_rate=0.0001", "learning_rate=0.001", "learning_rate=0.01"]


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


def test_setting_counts_a_grown_data_set_as_the_default_it_grew_from():
    # one `--seeds 0-2` command: seed 0's data grew to 16000 environments, seed 1's did not
    config = {"env": "maze", "objective": "allo", "learning_rate": 1e-3}
    grown = {"config": dict(config, seed=0, num_envs=16000),
             "budget": {"num_envs": 16000, "data_ceiling_before_growth": 0.97}}
    kept = {"config": dict(config, seed=1, num_envs=4000),
            "budget": {"num_envs": 4000, "data_ceiling_before_growth": None}}
    asked = {"config": dict(config, seed=2, num_envs=16000),  # --num-envs 16000 as given
             "budget": {"num_envs": 16000, "data_ceiling_before_growth": None}}
    assert setting(grown) == setting(kept)
    assert setting(asked) != setting(kept)
    assert setting(asked)["num_envs"] == 16000


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


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
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


def spread_runs(folder: Path, errors: list[float]) -> list[Path]:
    """Seeds of one setting whose eigenvalue errors spread over decades."""
    paths = []
    for seed, error in enumerate(errors):
        path = folder / f"spread__{seed}"
        run = SyntheticRun(path, d=3, total_steps=200, seed=seed)
        info = rundir.read_json(path / "run.json")
        info["config"].update(seed=seed, run_dir=str(path))
        run.writer.write_info(info)
        run.advance(200, log_freq=20, export_freq=100)
        run.finish()
        rows = [json.loads(line) for line in (path / rundir.METRICS_JSONL).read_text().splitlines()]
        for row in rows:
            row["eig/mean_abs_error"] = error * (1 + row["step"] / 100)
            row["cos/mean"] = 1 - error
        (path / rundir.METRICS_JSONL).write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths


def test_compare_band_stays_where_the_plain_interval_went_negative(tmp_path):
    runs = [compare.summarize_run(str(p)) for p in spread_runs(tmp_path, [0.01, 0.5, 0.02])]
    figure = compare.comparison_figure(group_runs(runs))
    for panel in figure.panels:
        assert panel.log_y
        (line,) = panel.lines
        low, high = line.band
        assert np.all(np.isfinite(low)) and np.all(low > 0) and np.all(high > line.values)
    _, _, plain_low, _ = band(runs, compare.ERR)
    assert np.all(plain_low < 0)  # the old band: dropped from a log axis


def test_compare_figure_draws_the_band_where_the_plain_interval_went_negative(tmp_path):
    """The drawn figure: both log panels carry their band (a filled path), in SVG."""
    import xml.etree.ElementTree as ET

    runs = spread_runs(tmp_path, [0.01, 0.5, 0.02])
    out = tmp_path / "cmp"
    assert compare.main([*map(str, runs), "--format", "svg", "--out", str(out)]) == 0
    root = ET.parse(out / "comparison.svg").getroot()
    svg = "{http://www.w3.org/2000/svg}"
    bands = [g for g in root.iter(svg + "g") if g.get("id", "").startswith("band")]
    assert len(bands) == 2 and all(list(g.iter(svg + "path")) for g in bands)


def test_compare_linear_cos_band_stays_below_one(tmp_path):
    runs = [compare.summarize_run(str(p)) for p in spread_runs(tmp_path, [0.001, 0.3, 0.002])]
    cos_panel = compare.comparison_figure(group_runs(runs), linear_cos=True).panels[0]
    (line,) = cos_panel.lines
    assert not cos_panel.log_y and np.all(line.band[1] < 1.0)


def test_compare_writes_beside_the_runs_and_never_over_another(runs, tmp_path, capsys):
    assert compare.main([*map(str, runs[:2]), "--format", "text"]) == 0
    first = list((tmp_path / "comparisons").iterdir())
    assert len(first) == 1 and (first[0] / "comparison.json").exists()
    assert compare.main([*map(str, runs), "--format", "text"]) == 0
    both = sorted((tmp_path / "comparisons").iterdir())
    assert len(both) == 2  # a second comparison gets a folder of its own
    data = json.loads((first[0] / "comparison.json").read_text())
    assert data["runs"] == sorted(str(p.resolve()) for p in runs[:2])  # left as it was
    # the same runs again: the same folder, refreshed
    assert compare.main([*map(str, runs[:2]), "--format", "text"]) == 0
    assert len(list((tmp_path / "comparisons").iterdir())) == 2
    # other runs into a folder that holds a comparison: refused in one line, unless --force
    capsys.readouterr()
    assert compare.main([*map(str, runs), "--format", "text", "--out", str(first[0])]) == 2
    err = capsys.readouterr().err
    assert "holds a comparison of other runs" in err and len(err.splitlines()) == 1
    assert compare.main([*map(str, runs), "--format", "text", "--out", str(first[0]),
                         "--force"]) == 0


def test_compare_text_to_stdout(runs, tmp_path, capsys):
    assert compare.main([*map(str, runs), "--format", "text", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "1 - mean |cos| to ground truth" in out and "learning_rate=0.001" in out


def test_compare_missing_run_and_bad_out(runs, tmp_path, capsys):
    assert compare.main([str(runs[0]), str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert compare.main([str(runs[0]), "--out", str(runs[0])]) == 2


def test_the_table_shows_cos_strict_beside_cos():
    runs = [summary(name, {"env": "room4"}, [0.5, 0.9]) for name in "ab"]
    for run, strict in zip(runs, (0.8, 0.6), strict=True):
        run.rows[-1]["cos_strict/mean"] = strict
    text, data = compare.table(group_runs(runs))
    assert "cos_strict" in text.splitlines()[0]
    entry = data["groups"][0]
    assert [r["cos_strict_mean"] for r in entry["runs"]] == [0.8, 0.6]
    assert entry["summary"]["cos_strict_mean"]["mean"] == pytest.approx(0.7)
    # an older run without the key shows "-" rather than failing
    old = [summary("c", {"env": "room4"}, [0.5, 0.9])]
    assert "-" in compare.table(group_runs(old))[0].splitlines()[2]
