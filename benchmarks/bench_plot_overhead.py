"""Training speed with and without --plot-during-training (issue 3: within 5%).

    python benchmarks/bench_plot_overhead.py [--repeats 3] [--steps 3000] [--plot-freq 500]

Runs the real `allo train room4` in fresh processes, with and without the flag,
interleaved (off on, on off, off on, ...) so that a change in the machine's load hits
both alike. Speed = gradient steps / seconds in the training loop (run.json `timings`:
training + exports; the exports include starting the renderer). CPU seconds of the
training process and its renderers are reported too, so a busy machine can still be
read. Writes benchmarks/results/plot_overhead.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import describe as machine_facts  # noqa: E402

from allo import rundir  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "plot_overhead.json"
TARGET = 0.05  # at most 5% slower with the flag


def train_once(folder: Path, name: str, steps: int, plot_freq: int, plotting: bool) -> dict:
    """One `allo train room4` process; its loop speed, wall and CPU (renderers included)."""
    run = folder / name
    command = [sys.executable, "-m", "allo.cli", "train", "room4", "--steps", str(steps),
               "--plot-freq", str(plot_freq), "--checkpoint-freq", str(steps),
               "--run-dir", str(run)]
    if plotting:
        command.append("--plot-during-training")
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    timings = rundir.RunReader(run).info().timings or {}
    # the loop, plus waiting for the recorder thread's last writes (exports included)
    loop = timings["training"] + timings.get("recording_after_training", 0.0)
    plots = sorted(p.name for p in (run / rundir.PLOTS).glob("*.png")) if plotting else []
    return {
        "plotting": plotting,
        "steps_per_s": steps / loop,
        "loop_s": loop,
        "process_wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "load_average_before": load,
        "pngs": len(plots),
    }


def summary(runs: list[dict]) -> dict:
    speeds = [r["steps_per_s"] for r in runs]
    return {"best_steps_per_s": max(speeds), "median_steps_per_s": statistics.median(speeds),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "median_loop_s": statistics.median(r["loop_s"] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--plot-freq", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="allo-plot-overhead-") as tmp:
        for rep in range(args.repeats):
            order = (False, True) if rep % 2 == 0 else (True, False)
            for plotting in order:
                run = train_once(Path(tmp), f"r{rep}_{int(plotting)}", args.steps,
                                 args.plot_freq, plotting)
                run["repeat"] = rep
                runs.append(run)
                print(f"repeat {rep} {'with   ' if plotting else 'without'} the flag: "
                      f"{run['steps_per_s']:6.1f} steps/s, cpu {run['cpu_s']:5.1f} s, "
                      f"{run['pngs']} PNGs, load {run['load_average_before']:.2f}", flush=True)
    off = [r for r in runs if not r["plotting"]]
    on = [r for r in runs if r["plotting"]]
    # the same repetition ran both ways back to back: its ratio cancels slow drifts
    paired = [b["steps_per_s"] / a["steps_per_s"] for a, b in zip(off, on, strict=True)]
    results = {
        "machine": machine_facts(),  # after the runs: its load_average is the end's
        "settings": {"layout": "room4", "steps": args.steps, "plot_freq": args.plot_freq,
                     "repeats": args.repeats},
        "without": summary(off),
        "with": summary(on),
        "paired_speed_ratios": paired,
        "slowdown_median_paired": 1 - statistics.median(paired),
        "slowdown_best_vs_best": 1 - summary(on)["best_steps_per_s"]
        / summary(off)["best_steps_per_s"],
        "target_slowdown": TARGET,
        "runs": runs,
    }
    print(f"{'':<10}{'best steps/s':>14}{'median steps/s':>16}{'median cpu s':>14}")
    for name in ("without", "with"):
        s = results[name]
        print(f"{name:<10}{s['best_steps_per_s']:>14.1f}{s['median_steps_per_s']:>16.1f}"
              f"{s['median_cpu_s']:>14.1f}")
    slowdown = results["slowdown_median_paired"]
    flag = "" if slowdown <= TARGET else "  (over target)"
    print(f"slowdown with the flag: {slowdown:.1%} median of paired runs, "
          f"{results['slowdown_best_vs_best']:.1%} best vs best (target <= {TARGET:.0%}){flag}")
    rundir.atomic_write_json(args.out, results)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
