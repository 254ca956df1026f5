"""Speed of `allo render` on a synthetic run: 20 exports, d = 10, room4.

    python benchmarks/bench_render.py [--repeats 3]

Each case runs the real CLI in a fresh process (start-up included) and reports the
best and the median wall time. Targets (issue 3, 2-core CPU): all PNG figures cold
<= 5 s, nothing changed <= 0.5 s, --latest-only <= 1 s, text of the latest export
<= 0.5 s. Results go to benchmarks/results/render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from machine import describe as machine_facts  # noqa: E402
from synthetic import make_run  # noqa: E402

from allo import rundir  # noqa: E402

TARGETS = {
    "cold_png_all": 5.0,
    "unchanged_png_all": 0.5,
    "latest_only_png_new_export": 1.0,
    "latest_only_png_cold": 1.0,
    "text_latest_export": 0.5,
}


CPU: dict[str, list[float]] = {}


def cli(*args: str, env: dict | None = None, case: str = "", tree: Path | None = None) -> float:
    """Wall seconds of one CLI process; its CPU seconds (children included) go to CPU.

    CPU time does not grow when other work shares the machine, wall time does: both are
    reported so numbers from a busy machine can still be read.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "allo.cli", "render", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**bytecode_env(), **(env or {}), **({"PYTHONPATH": str(tree)} if tree else {})},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(case, []).append(cpu)
    return wall


def bytecode_env() -> dict[str, str]:
    """The environment without PYTHONDONTWRITEBYTECODE: an installed allo has its modules'
    bytecode cached (pip compiles on install; an editable install writes __pycache__ on
    first import), so the benchmark times that, not recompiling ~40 modules from source
    in every process, which some sandboxes force with the variable."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def against(old: Path, repeats: int) -> int:
    """This tree against an older checkout (`--against OLD`), alternating old and new
    within one session, on a default room4 run (room4, d = 10, 8 exports): cold
    `allo render RUN --format F` and the nothing-changed call. Old and new each at their
    own defaults, and the new also at the old default's 100 dpi."""
    work = Path(tempfile.mkdtemp(prefix="allo-bench-ab-"))
    run = make_run(work / "run", layout="room4", d=10, total_steps=8000, exports=8)
    cases = {
        "old png": (old, []), "new png": (None, []), "new png 100dpi": (None, ["--dpi", "100"]),
        "old svg": (old, ["--format", "svg"]), "new svg": (None, ["--format", "svg"]),
        "new pdf": (None, ["--format", "pdf"]),
    }
    for tree, extra in cases.values():  # warm-up: bytecode caches
        cli(str(run), *extra, "--force", tree=tree)
    times = {name: {"cold": [], "unchanged": []} for name in cases}
    for _ in range(repeats):
        for name, (tree, extra) in cases.items():
            shutil.rmtree(run / "plots", ignore_errors=True)
            times[name]["cold"].append(cli(str(run), *extra, case=name, tree=tree))
            times[name]["unchanged"].append(cli(str(run), *extra, case=name + " unchanged",
                                                tree=tree))
    shutil.rmtree(work, ignore_errors=True)
    medians = {name: {k: statistics.median(v) for k, v in t.items()}
               for name, t in times.items()}
    cpu = {name: statistics.median(CPU[name]) for name in cases}
    results = {"machine": machine_facts(), "old_tree": str(old),
               "run": {"layout": "room4", "d": 10, "exports": 8, "figures": 13},
               "median_s": medians, "cold_cpu_s_median": cpu, "runs": times}
    print(f"{'case':<16} {'cold s':>7} {'cpu s':>6} {'unchanged s':>12}")
    for name in cases:
        print(f"{name:<16} {medians[name]['cold']:>7.2f} {cpu[name]:>6.2f} "
              f"{medians[name]['unchanged']:>12.2f}")
    for new, old_name in (("new png", "old png"), ("new png 100dpi", "old png"),
                          ("new svg", "old svg"), ("new pdf", "old png")):
        print(f"{new} / {old_name}: wall {medians[new]['cold'] / medians[old_name]['cold']:.2f}"
              f"  cpu {cpu[new] / cpu[old_name]:.2f}")
    out = ROOT / "benchmarks" / "results" / "render_ab.json"
    rundir.atomic_write_json(out, results)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", type=Path, default=None,
                        help="an older checkout to compare with, alternating (see against())")
    args = parser.parse_args()
    if args.against is not None:
        return against(args.against.resolve(), args.repeats)
    work = Path(tempfile.mkdtemp(prefix="allo-bench-"))
    run = make_run(work / "run", layout="room4", d=10, total_steps=20000, exports=20)
    steps = rundir.RunReader(run).export_steps()
    assert len(steps) == 20, steps
    times: dict[str, list[float]] = {name: [] for name in TARGETS}
    cli(str(run), case="warm-up")  # untimed: writes the bytecode caches once
    cli(str(run), "--format", "text", "--latest-only", case="warm-up")
    for _ in range(args.repeats):
        shutil.rmtree(run / "plots", ignore_errors=True)
        times["cold_png_all"].append(cli(str(run), case="cold_png_all"))
        times["unchanged_png_all"].append(cli(str(run), case="unchanged_png_all"))
        # Training goes on: one new export and new metric rows, then --latest-only.
        new = steps[-1] + 1000 * (len(times["latest_only_png_new_export"]) + 1)
        rundir.atomic_save_npy(
            run / rundir.export_name(new), rundir.load_npy(run / rundir.FINAL_LEARNED)
        )
        with open(run / rundir.METRICS_JSONL, "a") as handle:
            handle.write(json.dumps({"step": new, "cos/mean": 0.99}) + "\n")
        times["latest_only_png_new_export"].append(
            cli(str(run), "--latest-only", case="latest_only_png_new_export")
        )
        (run / rundir.export_name(new)).unlink()
        shutil.rmtree(run / "plots", ignore_errors=True)
        times["latest_only_png_cold"].append(
            cli(str(run), "--latest-only", case="latest_only_png_cold")
        )
        times["text_latest_export"].append(
            cli(
                str(run),
                "--format",
                "text",
                "--latest-only",
                "--skip-ground-truth",
                "--skip-metrics",
                "--skip-comparison",
                env={"NO_COLOR": ""},
                case="text_latest_export",
            )
        )
    shutil.rmtree(work, ignore_errors=True)
    results = {
        "machine": machine_facts(),  # after the runs: its load_average is the end's
        "run": {"layout": "room4", "d": 10, "exports": 20, "figures_png_all": 25},
        "cases": {
            name: {
                "best_s": min(v),
                "median_s": statistics.median(v),
                "target_s": TARGETS[name],
                "cpu_s_median": statistics.median(CPU[name]),
                "runs": v,
            }
            for name, v in times.items()
        },
    }
    print(f"{'case':<30} {'best s':>8} {'median s':>9} {'cpu s':>7} {'target s':>9}")
    for name, case in results["cases"].items():
        flag = "" if case["best_s"] <= case["target_s"] else "  (over target)"
        print(
            f"{name:<30} {case['best_s']:>8.2f} {case['median_s']:>9.2f} "
            f"{case['cpu_s_median']:>7.2f} {case['target_s']:>9.2f}{flag}"
        )
    out = ROOT / "benchmarks" / "results" / "render.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_json(out, results)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
