"""`allo study` with the local executor against the same runs launched one by one
(a benchmark, not a test).

    python benchmarks/bench_study.py                  # 4 layouts x 2 objectives x 5 seeds
    python benchmarks/bench_study.py --steps 300 --repeats 2

The study batches each configuration's seeds into one `allo train --seeds` process and runs
as many such jobs at once as the machine has cores. The baseline is what a researcher
would otherwise script: one `allo train --seed S` after another. Both train the same 40
runs with the same options; the wall-time ratio study / one-by-one is the number
(issue 21's target: <= 0.6 on a 2-core CPU). With --repeats N the two are timed
alternately N times (the development machine is shared, so one pair is noisy).
Writes benchmarks/results/bench_study.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe as machine_facts

RESULTS = Path(__file__).parent / "results" / "bench_study.json"
LAYOUTS = ["room4", "maze", "spiral", "obstacles"]
OBJECTIVES = ["allo", "ggdo"]


def options(steps: int) -> dict:
    return {"steps": steps, "num-envs": 1000, "log-freq": 100, "device": "cpu"}


def study_text(steps: int, seeds: int) -> str:
    lines = [f"layouts = {json.dumps(LAYOUTS)}", f"seeds = {seeds}", "[grid]",
             f"objective = {json.dumps(OBJECTIVES)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in options(steps).items()]
    return "\n".join(lines) + "\n"


def run(command: list[str]) -> float:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)
    return time.perf_counter() - started


def time_study(folder: Path, steps: int, seeds: int) -> float:
    path = folder / "bench.toml"
    path.write_text(study_text(steps, seeds))
    return run([sys.executable, "-m", "allo.cli", "study", str(path), "--results-dir",
                str(folder / "study")])


def time_one_by_one(folder: Path, steps: int, seeds: int) -> float:
    flags = [part for key, value in options(steps).items() for part in (f"--{key}", str(value))]
    total = 0.0
    for layout in LAYOUTS:
        for objective in OBJECTIVES:
            for seed in range(seeds):
                total += run([sys.executable, "-m", "allo.cli", "train", layout, *flags,
                              "--objective", objective, "--seed", str(seed), "--run-dir",
                              str(folder / "single" / f"{layout}-{objective}-{seed}")])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    pairs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
            folder = Path(tmp)
            study = time_study(folder, args.steps, args.seeds)
            single = time_one_by_one(folder, args.steps, args.seeds)
        pairs.append({"study_s": study, "one_by_one_s": single, "ratio": study / single})
        print(f"repeat {repeat + 1}: study {study:.1f} s, one by one {single:.1f} s, "
              f"ratio {study / single:.3f}", flush=True)
    result = {
        "what": "local study vs the same runs launched one by one (wall seconds)",
        "runs": len(LAYOUTS) * len(OBJECTIVES) * args.seeds,
        "layouts": LAYOUTS, "objectives": OBJECTIVES, "seeds": args.seeds,
        "options": options(args.steps), "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "machine": machine_facts(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median ratio {result['median_ratio']:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
