"""Time to mean |cos| 0.99 against the grid's size: the exact expectation against sampled
batches whose network runs on the batch's cells only (allo/cells.py). A benchmark, not a
test; results in benchmarks/results/cells.json, summary in BENCHMARKS.md "Large grids".

    python benchmarks/bench_cells.py --layouts GridRoom-32,GridRoom-64 \
        --settings exact,b256:lr1e-3 --cap 600

Each (layout, setting) is one `allo train` process on one thread (--threads 1), seed 0,
run until its first metrics row with mean |cos| >= 0.99 (then stopped: SIGTERM, the
trainer's clean interrupt) or until --cap seconds of training. A setting is `exact` (the
default expectation) or `bB[:lrX][:sN]`: --batch-size B, --learning-rate X, --steps N.
The time reported is the row's own training time (metrics.jsonl `time`), without the
ground truth and data collection, which bench_scale.py measures.
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
    """`exact` or `bB[:lrX][:sN]` as allo train flags."""
    if setting == "exact":
        return []
    flags = []
    for part in setting.split(":"):
        if part.startswith("b"):
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
            "learning_rate": config.get("learning_rate"),
            "step_to_099": first["step"] if first else None,
            "seconds_to_099": round(first["time"], 1) if first else None,
            "last_step": last["step"], "last_seconds": round(last["time"], 1),
            "last_cos_mean": last["cos/mean"], "steps_per_second": round(
                last["step"] / max(last["time"], 1e-9), 1),
            "timings": info.timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", required=True)
    parser.add_argument("--settings", default="exact,b256")
    parser.add_argument("--cap", type=float, default=600.0, help="training seconds per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    for name in args.layouts.split(","):
        for setting in args.settings.split(","):
            row = run_one(name, setting, args.cap, args.seed)
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
