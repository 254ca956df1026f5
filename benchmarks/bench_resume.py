"""Resuming a --seeds run's seeds together (one batched model) against one at a time
(a benchmark, not a test).

    python benchmarks/bench_resume.py                       # room4, 5 seeds, CPU
    python benchmarks/bench_resume.py --layout rooms16 --device cuda --repeats 3

A killed study job, or a Ctrl-C'd `allo train --seeds`, leaves its seeds interrupted at
one checkpoint step. `allo train --resume RUN_0 .. RUN_k` continues them as the one model
they were; before, each resumed in a process of its own, one after another. Both go on
from the same checkpoint (the runs are trained once, then cut back to the middle
checkpoint); together they end with the uninterrupted run's vectors (on CPU), alone with
vectors that may part from them as lone and batched arithmetic round differently (README,
--seeds). The wall-time ratio together / one at a time is the number. With --repeats N
the two are timed alternately N times. Writes benchmarks/results/bench_resume.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe as machine_facts

from allo import rundir

RESULTS = Path(__file__).parent / "results" / "bench_resume.json"


def allo(*args: str) -> float:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "allo.cli", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def cut_back(runs: list[Path], step: int) -> None:
    """As if stopped at `step`: the later checkpoints go (the resume drops the rest)."""
    for run in runs:
        for later in rundir.checkpoint_steps(run):
            if later > step:
                (run / rundir.CHECKPOINTS / rundir.checkpoint_name(later)).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="room4")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    half = args.steps // 2
    device = ["--device", args.device, "--threads", str(args.threads)]
    pairs = []
    with tempfile.TemporaryDirectory(prefix="bench_resume_") as tmp:
        folder = Path(tmp)
        allo("train", args.layout, "--seeds", f"0-{args.seeds - 1}", "--steps",
             str(args.steps), "--checkpoint-freq", str(half), *device,
             "--run-dir", str(folder / "trained" / "s{seed}"))
        trained = [folder / "trained" / f"s{seed}" for seed in range(args.seeds)]
        for repeat in range(args.repeats):
            copies = {}
            for way in ("together", "alone"):
                shutil.rmtree(folder / way, ignore_errors=True)
                copies[way] = [Path(shutil.copytree(run, folder / way / run.name))
                               for run in trained]
                cut_back(copies[way], half)
            times = {}
            for way in (("together", "alone") if repeat % 2 == 0 else ("alone", "together")):
                if way == "together":
                    times[way] = allo("train", "--resume", *map(str, copies[way]), *device)
                else:
                    times[way] = sum(allo("train", "--resume", str(run), *device)
                                     for run in copies[way])
            # against the uninterrupted run: the batched resume redoes its arithmetic;
            # a lone seed's matmuls round differently, which a close pair amplifies
            apart = {way: max(float(np.abs(rundir.RunReader(a).final()
                                           - rundir.RunReader(b).final()).max())
                              for a, b in zip(copies[way], trained, strict=True))
                     for way in copies}
            pairs.append({"together_s": times["together"], "one_at_a_time_s": times["alone"],
                          "ratio": times["together"] / times["alone"],
                          "final_vectors_vs_uninterrupted_together": apart["together"],
                          "final_vectors_vs_uninterrupted_one_at_a_time": apart["alone"]})
            print(f"repeat {repeat + 1}: together {times['together']:.1f} s, one at a time "
                  f"{times['alone']:.1f} s, ratio {pairs[-1]['ratio']:.3f}; final vectors "
                  f"off the uninterrupted run's by {apart['together']:.1e} together, "
                  f"{apart['alone']:.1e} one at a time", flush=True)
    result = {
        "what": "resume of a --seeds run's seeds together vs one at a time (wall seconds)",
        "layout": args.layout, "seeds": args.seeds, "steps": args.steps,
        "resumed_from": half, "device": args.device, "threads": args.threads,
        "pairs": pairs, "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "machine": machine_facts(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median ratio {result['median_ratio']:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
