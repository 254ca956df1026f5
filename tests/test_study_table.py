"""`allo compare STUDY_DIR --format md|csv|tex`: the study table, its numbers checked by hand."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from renderers import compare, tables
from renderers.stats import t_quantile

REFERENCE = "layout,objective,obs,seeds,metric,value\nsmall,allo,xy,60,cos_strict,0.9912\n" \
            "small,ggdo,xy,60,cos_strict,0.9073\nsmall,allo,pixels,60,cos_strict,0.5\n"


def make_run(folder: Path, name: str, cos: list[float], strict: list[float] | None = None,
             err: float = 0.01, status: str = "finished", ceiling: float | None = None
             ) -> None:
    """A run directory with metric rows every 100 steps (time = step / 50 s)."""
    run = folder / "runs" / name
    run.mkdir(parents=True)
    info: dict = {"format_version": 1, "status": status, "config": {}, "heartbeat": 0}
    if ceiling is not None:
        info["budget"] = {"data_ceiling_strict": ceiling}
    (run / "run.json").write_text(json.dumps(info))
    rows = []
    for i, value in enumerate(cos):
        row = {"step": 100 * (i + 1), "time": 2.0 * (i + 1), "cos/mean": value,
               "eig/mean_abs_error": err}
        if strict is not None:
            row["cos_strict/mean"] = strict[i]
        rows.append(json.dumps(row))
    (run / "metrics.jsonl").write_text("\n".join(rows) + "\n")


def make_study(folder: Path, with_strict: bool = True) -> None:
    """small x {allo, ggdo} x 3 seeds, and maze x allo x 1 seed (no interval)."""
    runs = {}
    finals = {"allo": [0.995, 0.991, 0.999], "ggdo": [0.90, 0.91, 0.89]}
    for objective, values in finals.items():
        config = {"layout": "small", "layout_sha256": "x", "objective": objective,
                  "num_gradient_steps": 300}
        for seed, final in enumerate(values):
            name = f"small__{objective}__h__s{seed}"
            curve = [0.5, 0.992 if seed == 0 and objective == "allo" else 0.9, final]
            make_run(folder, name, curve, [c - 0.001 for c in curve] if with_strict else None,
                     err=0.01 * (seed + 1), ceiling=0.998 if with_strict else None)
            runs[name] = {"config": config, "job": f"small__{objective}__h", "seed": seed,
                          "run_dir": f"runs/{name}", "status": "finished"}
    make_run(folder, "maze__allo__h__s0", [0.2, 0.5, 0.7])
    make_run(folder, "maze__allo__h__s1", [0.1, 0.2], status="interrupted")
    runs["maze__allo__h__s1"] = {"config": {"layout": "maze", "objective": "allo",
                                            "num_gradient_steps": 300},
                                 "job": "maze__allo__h", "run_dir": "runs/maze__allo__h__s1"}
    runs["maze__allo__h__s0"] = {"config": {"layout": "maze", "objective": "allo",
                                            "num_gradient_steps": 300},
                                 "job": "maze__allo__h", "run_dir": "runs/maze__allo__h__s0"}
    (folder / "study.json").write_text(json.dumps({"format_version": 1, "runs": runs}))


def interval(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values)
    return float(array.mean()), t_quantile(0.975, len(values) - 1) * float(
        array.std(ddof=1)) / math.sqrt(len(values))


def test_cells_hold_mean_interval_strict_and_first_crossing(tmp_path):
    make_study(tmp_path)
    cells = {(c.layout, c.setting): c for c in tables.load_cells(tmp_path)}
    assert set(cells) == {("small", "allo"), ("small", "ggdo"), ("maze", "allo")}
    allo = cells[("small", "allo")]
    mean, half, n = allo.stat("final_cos")
    expected = interval([0.995, 0.991, 0.999])
    assert n == 3 and mean == pytest.approx(expected[0]) and half == pytest.approx(expected[1])
    assert allo.stat("final_strict")[0] == pytest.approx(expected[0] - 0.001)
    # seed 0 crossed 0.99 at step 200 (4 s), seeds 1 and 2 at step 300 (6 s)
    assert allo.stat("steps_to")[0] == pytest.approx(800 / 3)
    assert allo.stat("seconds_to")[0] == pytest.approx(16 / 3)
    assert cells[("small", "ggdo")].stat("steps_to")[2] == 0
    assert cells[("maze", "allo")].stat("final_cos") == (pytest.approx(0.7), pytest.approx(
        math.nan, nan_ok=True), 1)


def test_markdown_csv_latex_and_reference(tmp_path, capsys):
    make_study(tmp_path)
    ref = tmp_path / "published.csv"
    ref.write_text(REFERENCE)
    out = tmp_path / "out"
    assert compare.main([str(tmp_path), "--format", "md", "--reference", str(ref),
                         "--out", str(out)]) == 0
    md = capsys.readouterr().out
    assert md == (out / "table.md").read_text()
    mean, half = interval([0.995, 0.991, 0.999])
    lines = md.splitlines()
    assert lines[0] == "| layout | allo | allo (published) | ggdo | ggdo (published) |"
    small = next(line for line in lines if line.startswith("| small |"))
    # the interval passes 1: clipped to [0, 1], as the figures' bands are
    assert mean + half > 1.0
    assert (f"{mean:.4f} [{mean - half:.4f}, 1.0000] (n=3); strict {mean - 0.001:.4f} "
            f"[{mean - 0.001 - half:.4f}, 1.0000]; ceiling 0.9980") in small
    ggdo_mean, ggdo_half = interval([0.90, 0.91, 0.89])
    assert f"{ggdo_mean:.4f} ± {ggdo_half:.4f} (n=3)" in small  # inside [0, 1]: symmetric
    assert "| 0.9912 |" in small and "| 0.9073 |" in small  # xy values, not pixels
    maze = next(line for line in lines if line.startswith("| maze |"))
    assert "0.7000 (n=1)" in maze and "| - |" in maze
    assert "1 not finished" in maze  # the interrupted seed's last row is not a final
    assert "never (0/3)" in md and "(1/3)" not in md.split("| small | allo |")[1].split("\n")[0]

    assert compare.main([str(tmp_path), "--format", "csv", "--reference", str(ref),
                         "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    row = next(r for r in rows if r["layout"] == "small" and r["setting"] == "allo")
    assert float(row["cos_mean"]) == pytest.approx(mean, abs=1e-6)
    assert float(row["cos_ci95_half"]) == pytest.approx(half, rel=1e-5)
    assert float(row["cos_ci95_low"]) == pytest.approx(mean - half, rel=1e-5)
    assert float(row["cos_ci95_high"]) == 1.0
    assert float(row["ceiling_strict_mean"]) == pytest.approx(0.998)
    assert row["cos_n"] == "3" and row["published"] == "0.9912"
    assert float(row["steps_to_0.99_mean"]) == pytest.approx(800 / 3, rel=1e-5)

    assert compare.main([str(tmp_path), "--format", "tex", "--out", str(out)]) == 0
    tex = capsys.readouterr().out
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "mean |cos|" in tex  # maze has no strict score, so cells show mean |cos|
    assert f"${mean:.4f}\\,[{mean - half:.4f}, 1.0000]$" in tex
    assert f"${ggdo_mean:.4f} \\pm {ggdo_half:.4f}$" in tex


def test_strict_column_only_where_logged(tmp_path, capsys):
    make_study(tmp_path, with_strict=False)
    assert compare.main([str(tmp_path), "--format", "md", "--out", str(tmp_path / "o")]) == 0
    assert "strict 0." not in capsys.readouterr().out


def test_settings_name_what_varies(tmp_path):
    make_study(tmp_path)
    data = json.loads((tmp_path / "study.json").read_text())
    for name, entry in data["runs"].items():
        entry["config"] = {**entry["config"], "barrier_initial": 0.5 if "s1" in name else 2.0}
        entry["job"] += "_b" if "s1" in name else ""
    (tmp_path / "study.json").write_text(json.dumps(data))
    settings = {c.setting for c in tables.load_cells(tmp_path)}
    assert "allo barrier-initial=0.5" in settings and "ggdo barrier-initial=2" in settings


@pytest.mark.parametrize("args, words", [
    (["--format", "md"], ["need one study directory"]),
    (["--reference", "x.csv"], ["need one study directory"]),
])
def test_table_formats_need_a_study(tmp_path, capsys, args, words):
    run = tmp_path / "run"
    make_run(tmp_path, "r", [0.5])
    assert compare.main([str(run), *args]) == 2 or compare.main(
        [str(tmp_path / "runs" / "r"), *args]) == 2
    assert all(w in capsys.readouterr().err for w in words)


def test_bad_reference_and_broken_study(tmp_path, capsys):
    make_study(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert compare.main([str(tmp_path), "--format", "md", "--reference", str(bad)]) == 2
    assert "expected the columns" in capsys.readouterr().err
    assert compare.main([str(tmp_path), "--format", "md", "--reference",
                         str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err  # read through allo.safeio: names the file and the problem
    assert len(err.strip().splitlines()) == 1 and "nope.csv" in err and "not found" in err
    (tmp_path / "study.json").write_text("{broken")
    assert compare.main([str(tmp_path), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "study.json" in err
