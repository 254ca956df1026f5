"""How a layout's data ceiling grows with data (a benchmark tool, not a test).

    python benchmarks/data_ceiling.py --layout rooms16 --seeds 0-4 --max-envs 128000

The data ceiling is the |cos| between the eigenvectors of the operator a data set defines
and the exact ones (`allo.budget.data_ceiling`): no learner of that data does better. For
each seed this collects the chunks `allo train` would collect (chunk k of seed s is the
same data as in a run, `allo.dataset`), one after another, and prints the ceiling at
4000, 8000, 16000, ... environments (the sets are nested, like a growing run's). It is
what sized `allo.budget.MAX_GROWTH`. Writes benchmarks/results/data_ceiling_<layout>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from accuracy import entry_layout, find_layouts, machine  # noqa: E402

from allo import rundir  # noqa: E402
from allo.budget import data_ceiling  # noqa: E402
from allo.config import TrainConfig, parse_seeds  # noqa: E402
from allo.dataset import CHUNK_ENVS, chunk_law  # noqa: E402
from allo.metrics import block_complete_width  # noqa: E402
from allo.spectrum import ground_truth  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def ceilings_by_size(layout, cfg: TrainConfig, seed: int, max_envs: int, d: int,
                     values: np.ndarray, vectors: np.ndarray) -> list[dict]:
    """Per-vector ceilings after 1, 2, 4, ... chunks (and after the last one)."""
    chunks = max(1, max_envs // CHUNK_ENVS)
    total, rows, started = None, [], time.perf_counter()
    for k in range(chunks):
        law = chunk_law(layout, cfg, seed, k, CHUNK_ENVS)
        total = law if total is None else total + law
        count = k + 1
        if count & (count - 1) == 0 or count == chunks:
            ceiling = data_ceiling(total / count, values, vectors, d)
            rows.append({"seed": seed, "num_envs": count * CHUNK_ENVS,
                         "mean": float(np.mean(ceiling)),
                         "per_vector": [float(c) for c in ceiling],
                         "seconds": time.perf_counter() - started})
            print(f"  seed {seed} {count * CHUNK_ENVS:>7} environments: mean "
                  f"{np.mean(ceiling):.4f}, worst vectors "
                  + ", ".join(f"{i + 1}: {ceiling[i]:.3f}" for i in np.argsort(ceiling)[:2]),
                  flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="rooms16")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--max-envs", type=int, default=128000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    entries = {e["name"]: e for e in find_layouts(reference=True)}
    if args.layout not in entries:
        parser.error(f"--layout: unknown {args.layout!r}; known: {', '.join(entries)}")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)
    layout = entry_layout(entries[args.layout])
    cfg = TrainConfig()
    d = cfg.num_eigenvectors
    truth = ground_truth(layout, cfg.discount, cfg.num_steps, cfg.max_episode_length)
    width = block_complete_width(truth.eigenvalues, d)
    values, vectors = truth.eigenvalues[:width], truth.eigenvectors[:, :width]
    print(f"machine: {machine()}\nlayout {args.layout}: lambda_1..{d + 1} = "
          + ", ".join(f"{v:.5f}" for v in truth.eigenvalues[: d + 1]), flush=True)
    rows = [row for seed in seeds
            for row in ceilings_by_size(layout, cfg, seed, args.max_envs, d, values, vectors)]
    out = args.out or RESULTS / f"data_ceiling_{args.layout}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_text(out, json.dumps(rundir.to_json_safe({
        "machine": machine(), "command": " ".join(sys.argv), "layout": args.layout,
        "eigenvalues": [float(v) for v in truth.eigenvalues[: d + 1]], "rows": rows}),
        indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
