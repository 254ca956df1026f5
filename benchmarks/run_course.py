"""The course of a set of seed runs over training, as a results file (a benchmark tool).

    python benchmarks/run_course.py RUN [RUN ...] --every 5000 \\
        --command "allo train ..." --note "..." > benchmarks/results/NAME.json

For the experiments beside the accuracy table (`benchmarks/results/paper_allo_*.json`):
every `--every` steps, each seed's cos_strict and its vectors' cos_strict, the barrier, and
the median ratio of its eigenvalue estimates to the eigenvalues over the nonzero ones (how
far the duals have relaxed, docs/math.md section 13); over the seeds, cos_strict's mean and
95% t interval. Reads the runs through allo.rundir only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from machine import describe  # noqa: E402

from allo import rundir  # noqa: E402
from allo.metrics import ZERO_EIGENVALUE  # noqa: E402
from renderers.stats import mean_interval  # noqa: E402


def seed_course(run: Path, every: int) -> dict:
    """One run's status, data ceiling and rows every `every` steps."""
    reader = rundir.RunReader(run)
    info = reader.info()
    values, _ = reader.ground_truth()
    d = reader.num_eigenvectors()
    nonzero = np.abs(values[:d]) > ZERO_EIGENVALUE  # a free region each adds a zero
    rows = {}
    for row in reader.metrics():
        step = row.get(rundir.Metric.STEP)
        if not isinstance(step, int) or step % every or "cos_strict/mean" not in row:
            continue
        estimates = np.asarray(row["eig/estimate"], dtype=np.float64)
        rows[str(step)] = {
            "cos_strict": round(row["cos_strict/mean"], 4),
            "dual_estimate_over_eigenvalue": round(
                float(np.median(estimates[nonzero] / values[:d][nonzero])), 3),
            "barrier": round(float(row.get("barrier/coef", 0.0)), 2),
            "per_vector": [round(x, 2) for x in row["cos_strict/per_vector"]],
        }
    ceiling = info.budget.data_ceiling_strict if info.budget else None
    return {"run": str(run), "seed": info.seed,
            "status": info.status.value if info.status else None,
            "data_strict_ceiling": None if ceiling is None else round(ceiling, 4),
            "rows": rows}


def across_seeds(seeds: list[dict]) -> dict:
    """cos_strict's mean and 95% t interval at each step every seed logged."""
    steps = sorted(set.intersection(*(set(s["rows"]) for s in seeds)), key=int)
    out = {}
    for step in steps:
        mean, low, high = mean_interval(np.array([s["rows"][step]["cos_strict"]
                                                  for s in seeds]))
        out[step] = {"mean": round(float(mean), 4), "low": round(float(low), 4),
                     "high": round(float(high), 4)}
    ceilings = [s["data_strict_ceiling"] for s in seeds if s["data_strict_ceiling"] is not None]
    return {"cos_strict": out,
            "data_strict_ceiling": round(float(np.mean(ceilings)), 4) if ceilings else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=5000)
    parser.add_argument("--command", default="", help="the command that made the runs")
    parser.add_argument("--note", default="", help="what the runs are for")
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not rundir.is_run_dir(run)]
    if missing or args.every < 1:
        what = f"not run directories: {', '.join(missing)}" if missing else "--every must be >= 1"
        print(f"run_course: {what}", file=sys.stderr)
        return 2
    seeds = [seed_course(run, args.every) for run in args.runs]
    first = rundir.RunReader(args.runs[0]).info()
    out = {"command": args.command, "note": args.note, "layout": first.env_name,
           "objective": first.objective, "config": first.config, "device": first.device,
           "summarised_on": describe(), "seeds": seeds, "across_seeds": across_seeds(seeds)}
    json.dump(out, sys.stdout, indent=1, allow_nan=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
