"""benchmarks/accuracy.py: its --quick smoke run, its layouts, and its JSON and table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import benchmark_script

from allo.budget import MIN_STEPS
from allo.layouts import load_layout_file
from allo.metrics import eigenspace_blocks
from allo.spectrum import ground_truth

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ROOT / "benchmarks" / "layouts"


def load_benchmark():
    return benchmark_script("accuracy")


@pytest.mark.parametrize("path", sorted(LAYOUTS.glob("*.txt")), ids=lambda p: p.stem)
def test_benchmark_layouts_parse_and_are_connected(path):
    layout = load_layout_file(path)
    assert layout.components() == 1
    assert layout.num_free > 10  # d = 10 eigenvectors need at least that many cells


@pytest.mark.slow
def test_symmetric_four_rooms_has_repeated_top_eigenvalues():
    truth = ground_truth(load_layout_file(LAYOUTS / "room4sym.txt"), 0.8, 1000, 1000)
    values = truth.eigenvalues[:11]
    exact = [(b.start, b.stop) for b in eigenspace_blocks(values, tol=0.0) if len(b) > 1]
    near = [(b.start, b.stop) for b in eigenspace_blocks(values) if len(b) > 1]
    # symmetry pairs; then the four room-local modes 5..8, 0.08% apart, as one block
    assert exact == [(1, 3), (5, 7), (9, 11)], np.round(values, 6)
    assert near == [(1, 3), (4, 8), (9, 11)], np.round(values, 6)


@pytest.mark.slow
def test_quick_run_writes_table_and_json(tmp_path, capsys):
    bench = load_benchmark()
    out = tmp_path / "accuracy.json"
    code = bench.main(["--quick", "--layouts", "maze7x9", "--seeds", "1",
                       "--objectives", "allo,ggdo", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "command:" in printed and "machine:" in printed
    assert "cos mean" in printed and "maze7x9" in printed and "ceiling" in printed

    data = json.loads(out.read_text())
    assert {"machine", "command", "config", "layouts", "runs", "summary", "table"} <= set(data)
    assert data["quick"] is True
    assert data["layouts"]["maze7x9"]["components"] == 1
    assert [(s["layout"], s["objective"]) for s in data["summary"]] == [
        ("maze7x9", "allo"), ("maze7x9", "ggdo")]
    steps = data["config"]["num_gradient_steps"]
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        assert run["status"] == "finished"
        assert run["final_step"] == steps
        assert 0.0 <= run["final_cos"] <= 1.0 + 1e-9
        # maze7x9 repeats no eigenvalue: the strict score of the final vectors is the same
        assert run["final_cos_strict"] == pytest.approx(run["final_cos"], abs=1e-4)
        assert len(run["final_cos_strict_per_vector"]) == 10
        assert math.isfinite(run["final_eig_rel_error"]) and run["final_eig_rel_error"] >= 0
        assert math.isfinite(run["final_rayleigh_rel_error"])
        assert run["final_rayleigh_rel_error"] >= 0
        hit = run["steps_to_0.99"]
        assert hit is None or hit in run["logged_steps"]
        assert (hit is None) == (run["seconds_to_0.99"] is None)
        assert run["total_s"] > 0
        assert 0.0 <= run["data_ceiling"] <= 1.0 + 1e-9
        assert len(run["data_ceiling_per_vector"]) == 10
        assert run["num_envs"] == 50  # --quick gives --num-envs 50: never grown
        assert run["recommended_steps"] == MIN_STEPS  # maze7x9's gaps are wide: the floor
    for row in data["summary"]:
        assert row["seeds"] == 1 and row["free_cells"] == data["layouts"]["maze7x9"]["free_cells"]
        assert row["cos_min"] <= row["cos_mean"] + 1e-12
        assert row["rayleigh_rel_error_mean"] == pytest.approx(
            data["runs"][0 if row["objective"] == "allo" else 1]["final_rayleigh_rel_error"])
        assert 0 <= row["reached_0.99"] <= row["seeds"]


def test_first_hit_is_the_first_logged_row_at_the_target():
    bench = load_benchmark()
    rows = [{"step": 10, "cos/mean": 0.5}, {"step": 20, "cos/mean": 0.991},
            {"step": 30, "cos/mean": 0.98}, {"step": 40, "cos/mean": 0.995}]
    assert bench.first_hit(rows)["step"] == 20
    assert bench.first_hit(rows[:1]) is None


def test_unknown_layout_or_objective_is_refused(tmp_path):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--layouts", "nope", "--out", str(tmp_path / "a.json")])
    with pytest.raises(SystemExit):
        bench.main(["--objectives", "sgd", "--out", str(tmp_path / "a.json")])


@pytest.mark.slow
def test_batched_seeds_are_the_same_runs_as_single_seeds(tmp_path):
    """--batched trains seeds 0..N-1 of a layout as one model; each matches a lone run."""
    bench = load_benchmark()
    common = ["--quick", "--layouts", "maze7x9", "--seeds", "2", "--objectives", "allo"]
    bench.main([*common, "--out", str(tmp_path / "single.json")])
    bench.main([*common, "--batched", "--out", str(tmp_path / "batched.json")])
    single = json.loads((tmp_path / "single.json").read_text())["runs"]
    batched = json.loads((tmp_path / "batched.json").read_text())["runs"]
    assert [r["seed"] for r in batched] == [0, 1]
    for a, b in zip(single, batched, strict=True):
        assert a["final_cos"] == pytest.approx(b["final_cos"], abs=1e-5)


@pytest.mark.slow
def test_append_adds_runs_replaces_reruns_and_summarises_all(tmp_path, capsys):
    bench = load_benchmark()
    out = tmp_path / "accuracy.json"
    quick = ["--quick", "--layouts", "maze7x9", "--seeds", "1", "--out", str(out)]
    assert bench.main([*quick, "--objectives", "allo"]) == 0
    assert bench.main([*quick, "--objectives", "ggdo", "--append"]) == 0
    data = json.loads(out.read_text())
    assert [(r["objective"], r["seed"]) for r in data["runs"]] == [("allo", 0), ("ggdo", 0)]
    assert [s["objective"] for s in data["summary"]] == ["allo", "ggdo"]
    assert len(data["commands"]) == 2 and "--append" in data["commands"][1]
    # the same layout, objective and seed again: replaced, not counted twice
    assert bench.main([*quick, "--objectives", "allo", "--append"]) == 0
    data = json.loads(out.read_text())
    assert sorted((r["objective"], r["seed"]) for r in data["runs"]) == [("allo", 0),
                                                                          ("ggdo", 0)]
    assert all(s["seeds"] == 1 for s in data["summary"])
    # without --append the file starts over
    assert bench.main([*quick, "--objectives", "ggdo"]) == 0
    assert [r["objective"] for r in json.loads(out.read_text())["runs"]] == ["ggdo"]
    capsys.readouterr()


@pytest.mark.slow
def test_listed_seeds_add_to_an_earlier_file(tmp_path, capsys):
    """--seeds 1 then --seeds 2,3 --append: seeds 0..3, each run under its own seed."""
    bench = load_benchmark()
    out = tmp_path / "accuracy.json"
    quick = ["--quick", "--layouts", "maze7x9", "--objectives", "allo", "--out", str(out)]
    assert bench.main([*quick, "--seeds", "1"]) == 0
    assert bench.main([*quick, "--seeds", "2,3", "--batched", "--append"]) == 0
    data = json.loads(out.read_text())
    assert [r["seed"] for r in data["runs"]] == [0, 2, 3]
    assert data["summary"][0]["seeds"] == 3
    assert bench.seed_list("3") == [0, 1, 2] and bench.seed_list("5-6") == [5, 6]
    for bad in ("0", "x", "4-2"):
        with pytest.raises(SystemExit):
            bench.main([*quick, "--seeds", bad])
    capsys.readouterr()


def test_append_to_an_unreadable_file_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "accuracy.json"
    out.write_text("{not json")
    with pytest.raises(SystemExit) as stop:
        load_benchmark().main(["--quick", "--layouts", "maze7x9", "--seeds", "1",
                               "--out", str(out), "--append"])
    assert stop.value.code == 2
    assert "--append: cannot read" in capsys.readouterr().err


def test_published_scores_are_read_from_the_reference_readme(tmp_path):
    bench = load_benchmark()
    assert bench.published_scores(tmp_path) == {}  # no README: no paper column
    (tmp_path / "README.md").write_text(
        "Published average |cos|:\n\n| layout | free cells | ALLO | GGDO |\n|---|---|---|---|\n"
        "| GridMaze-7 | 11 | 0.9996 | 0.2959 |\n| GridRoomSym-4 | 104 | 0.8411 | 0.8326 |\n\n"
        "| a | note | with | words |\n")
    assert bench.published_scores(tmp_path) == {
        "GridMaze-7": {"allo": 0.9996, "ggdo": 0.2959},
        "GridRoomSym-4": {"allo": 0.8411, "ggdo": 0.8326}}


@pytest.mark.slow
def test_merge_joins_runs_made_side_by_side(tmp_path, capsys):
    bench = load_benchmark()
    quick = ["--quick", "--layouts", "maze7x9", "--seeds", "1"]
    allo, ggdo, out = tmp_path / "allo.json", tmp_path / "ggdo.json", tmp_path / "all.json"
    assert bench.main([*quick, "--objectives", "allo", "--out", str(allo)]) == 0
    assert bench.main([*quick, "--objectives", "ggdo", "--out", str(ggdo)]) == 0
    merger = benchmark_script("merge_accuracy")
    assert merger.main([str(out), str(allo), str(ggdo)]) == 0
    data = json.loads(out.read_text())
    assert sorted(r["objective"] for r in data["runs"]) == ["allo", "ggdo"]
    assert [s["objective"] for s in data["summary"]] == ["allo", "ggdo"]
    assert len(data["commands"]) == 2 and "ggdo" in data["table"]
    # the same file twice: its runs replace themselves, nothing is counted twice
    assert merger.main([str(out), str(allo), str(allo)]) == 0
    assert len(json.loads(out.read_text())["runs"]) == 1
    assert merger.main([str(out)]) == 2
    assert merger.main([str(out), str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_published_scores_prefer_the_csv(tmp_path):
    bench = load_benchmark()
    (tmp_path / "published.csv").write_text(
        "layout,objective,obs,seeds,metric,value\n"
        "GridRoom-4,allo,xy,60,cos_strict,0.9965\nGridRoom-4,ggdo,xy,60,cos_strict,0.9073\n")
    assert bench.published_scores(tmp_path) == {"GridRoom-4": {"allo": 0.9965, "ggdo": 0.9073}}
