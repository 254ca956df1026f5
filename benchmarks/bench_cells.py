"""Time to mean |cos| 0.99 against the grid's size: the exact expectation against sampled
batches whose network runs on the batch's cells only (allo/cells.py). A benchmark, not a
test; results in benchmarks/results/cells.json, summary in BENCHMARKS.md "Large grids".

    python benchmarks/bench_cells.py --layouts GridRoom-32,GridRoom-64 \
        --settings exact,b256:lr1e-3 --cap 600

Each (layout, setting) is one `allo train` process on one thread (--threads 1), seed 0,
run until its first metrics row with mean |cos| >= 0.99 (then stopped: SIGTERM, the
trainer's clean interrupt) or until --cap seconds of training. A setting is `exact` (the
default expectation) or `bB[:lrX][:sN][:flag=value]`: --batch-size B, --learning-rate X,
--steps N, and any other `allo train` flag.
The time reported is the row's own training time (metrics.jsonl `time`); the time from
launch adds the ground truth and the data collection (run.json timings). `gamma=0.8` as a
setting pins the discount a layout would otherwise choose (allo/discount.py).

    python benchmarks/bench_cells.py --step-cost 544,1088,2500,4096 --batches 64,256,1024

times one training step in this process (one thread, one seed, allo's default network)
for the exact expectation and for sampled batches on their cells, alternating the
settings round by round so a changing load hits them alike: steps to 0.99 (above,
independent of the load) times this cost is the time to 0.99 on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from allo.rundir import RunReader

REFERENCE = Path("/work/shared/reference-layouts")
RESULTS = Path(__file__).parent / "results" / "cells.json"
TARGET = 0.99


def layout_file(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else REFERENCE / f"{name}.txt"


def setting_flags(setting: str) -> list[str]:
    """`exact` or `bB[:lrX][:sN][:flag=value]` as allo train flags."""
    if setting == "exact":
        return []
    flags = []
    for part in setting.split(":"):
        if "=" in part:  # any other flag: lr-duals=0.01
            name, value = part.split("=", 1)
            flags += [f"--{name}", value]
        elif part.startswith("b"):
            flags += ["--batch-size", part[1:]]
        elif part.startswith("lr"):
            flags += ["--learning-rate", part[2:]]
        elif part.startswith("s"):
            flags += ["--steps", part[1:]]
        else:
            raise SystemExit(f"bench_cells: unknown setting part {part!r}")
    return flags


def quality_rows(metrics: Path) -> list[dict]:
    if not metrics.exists():
        return []
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line still being written
            continue
        if row.get("cos/mean") is not None:
            rows.append(row)
    return rows


def run_one(name: str, setting: str, cap: float, seed: int) -> dict:
    """Train until mean |cos| reaches TARGET or `cap` training seconds pass."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        command = [sys.executable, "-m", "allo.cli", "train", "--env-file",
                   str(layout_file(name)), "--run-dir", str(run), "--threads", "1",
                   "--seed", str(seed), *setting_flags(setting)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        first = None
        while process.poll() is None:
            time.sleep(2.0)
            rows = quality_rows(run / "metrics.jsonl")
            first = next((r for r in rows if r["cos/mean"] >= TARGET), None)
            if first or (rows and rows[-1]["time"] > cap):
                process.send_signal(signal.SIGTERM)
                break
        _, err = process.communicate()
        rows = quality_rows(run / "metrics.jsonl")
        info = RunReader(run).info()
    if not rows:
        raise SystemExit(f"bench_cells: {name} {setting} wrote no rows: {err.strip()[-300:]}")
    first = next((r for r in rows if r["cos/mean"] >= TARGET), None)
    last = rows[-1]
    config = info.config or {}
    return {"layout": name, "cells": (info.env or {}).get("num_free"), "setting": setting,
            "batch_size": config.get("batch_size"),
            "steps_budget": config.get("num_gradient_steps"),
            "learning_rate": config.get("learning_rate"), "gamma": config.get("gamma"),
            "step_to_099": first["step"] if first else None,
            "seconds_to_099": round(first["time"], 1) if first else None,
            "seconds_from_launch_to_099": round(first["time"] + sum(
                (info.timings or {}).get(phase, 0.0) for phase in ("ground_truth", "data")), 1)
            if first else None,
            "last_step": last["step"], "last_seconds": round(last["time"], 1),
            "last_cos_mean": last["cos/mean"], "steps_per_second": round(
                last["step"] / max(last["time"], 1e-9), 1),
            "timings": info.timings}


def open_layout(cells: int):
    """An open square room of about `cells` free cells (walls around)."""
    from allo.layouts import parse_layout

    side = max(2, round(cells ** 0.5))
    rows = ["X" * (side + 2)] + ["X" + "." * side + "X" for _ in range(side)]
    return parse_layout("\n".join(rows + ["X" * (side + 2)]), name=f"open{side}")


def step_cost(sizes: list[int], batches: list[int], rounds: int, steps: int) -> list[dict]:
    """Seconds per step of each (cells, setting), alternating settings every round."""
    import torch

    from allo.config import TrainConfig
    from allo.data import collect, empirical_pair_law, weight_source
    from allo.learner import Learner

    torch.set_num_threads(1)
    rows = []
    for cells in sizes:
        layout = open_layout(cells)
        law = empirical_pair_law(collect(layout, 200, 200, 200, seed=0), 0.8, layout.num_free)
        coords = torch.as_tensor(layout.coordinates())
        learners = {}
        for batch in [None, *batches]:
            cfg = TrainConfig(batch_size=batch, num_gradient_steps=10**6)
            sampler = weight_source([law], [0], torch.device("cpu"), batch)
            name = "exact" if batch is None else f"b{batch}"
            learners[name] = Learner(cfg, [0], torch.device("cpu"), sampler, coords)
            if batch is not None and learners[name].rows is None:  # also on cells
                learners[f"{name}/cells"] = Learner(cfg, [0], torch.device("cpu"), sampler,
                                                    coords, on_cells=True)
        spent = dict.fromkeys(learners, 0.0)
        for _ in range(rounds):
            for name, learner in learners.items():
                learner.step()  # warm
                start = time.perf_counter()
                for _ in range(steps):
                    learner.step()
                spent[name] += time.perf_counter() - start
        for name, learner in learners.items():
            rows.append({"cells": layout.num_free, "setting": name,
                         "on_cells": learner.rows is not None,
                         "ms_per_step": round(1000 * spent[name] / (rounds * steps), 3),
                         "load": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="")
    parser.add_argument("--step-cost", default="", help="cell counts to time a step at")
    parser.add_argument("--batches", default="64,256,1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settings", default="exact,b256")
    parser.add_argument("--cap", type=float, default=600.0, help="training seconds per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    if args.step_cost:
        rows += step_cost([int(n) for n in args.step_cost.split(",")],
                          [int(b) for b in args.batches.split(",")], args.rounds, 20)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    for name in filter(None, args.layouts.split(",")):
        for setting in args.settings.split(","):
            row = run_one(name, setting, args.cap, args.seed)
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
