"""How the exact ground truth and training scale with the grid (a benchmark, not a test).

    python benchmarks/bench_scale.py                      # ground truth, 100 .. 65536 cells
    python benchmarks/bench_scale.py --sizes 100,2500     # a few sizes only
    python benchmarks/bench_scale.py --train GridRoom-32  # + time to mean |cos| 0.99
    python benchmarks/bench_scale.py --data               # + the data law against N
    python benchmarks/bench_scale.py --sizes 400,1024,2500,4096 --crossover  # dense/sparse

Ground truth: for open rooms (side x side, no walls) and perfect mazes (corridors one cell
wide, built by a seeded depth-first search) of about 100 .. 65536 free cells, each in a
fresh process: the seconds of `allo.spectrum.ground_truth` as `allo train` calls it (d =
10, so count = 11; the dense path up to allo.spectrum.DENSE_MAX_CELLS, the matrix-free one
above), the process's peak resident memory, and, up to --dense-max cells, the dense path
(N x N matrices, numpy's eigh) for comparison.

Data law (--data): for the same layouts, each in a fresh process, the default data set's
first chunk (--data-envs environments x 1000 steps) collected and summed into its sparse
pair law as `allo train` does (allo.data.empirical_pair_law): seconds of each, nonzero
pairs (per cell), the law's bytes and the process's peak memory.

Crossover (--crossover): on open rooms of --sizes cells, in one process, alternating: the
dense recursion against the pair-enumerating builder of the same law, and the dense
against the sparse CSR product L_W U (float32, d = 11, one seed) of the exact expectation;
this is what sets allo.sparse_law.DENSE_MAX_CELLS.

Training (--train LAYOUT[,LAYOUT]: reference layout names or layout files): `allo train`
with defaults, one seed; the first logged step and wall second at which mean |cos| reached
0.99, and the final mean |cos|.

Writes benchmarks/results/scale.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe as machine_facts

RESULTS = Path(__file__).parent / "results" / "scale.json"
REFERENCE = Path("/work/shared/reference-layouts")
SIZES = (100, 400, 1024, 2500, 4096, 9216, 16384, 32761, 65536)


def open_room(cells: int) -> str:
    side = int(round(np.sqrt(cells)))
    return "\n".join(["." * side] * side)


def maze(cells: int, seed: int = 0) -> str:
    """A perfect maze with about `cells` free cells: rooms on odd coordinates joined by a
    depth-first search (free cells ~ side^2 / 2), walls around."""
    side = int(round(np.sqrt(2 * cells))) | 1
    side = min(side, 255)  # allo.layouts.MAX_SIDE with the wall ring
    rooms = (side - 1) // 2
    grid = np.ones((side, side), dtype=bool)  # True: wall
    rng = np.random.default_rng(seed)
    stack, seen = [(0, 0)], {(0, 0)}
    grid[1, 1] = False
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                   if 0 <= r + dr < rooms and 0 <= c + dc < rooms and (r + dr, c + dc) not in seen]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rng.integers(len(options))]
        grid[2 * nr + 1, 2 * nc + 1] = False
        grid[r + nr + 1, c + nc + 1] = False  # the wall between the two rooms
        seen.add((nr, nc))
        stack.append((nr, nc))
    return "\n".join("".join("X" if w else "." for w in row) for row in grid)


def one(kind: str, cells: int, dense: bool) -> dict:
    """Run in a fresh process: one ground truth, its time and the peak memory."""
    from allo.layouts import parse_layout
    from allo.spectrum import ground_truth, operator_spectrum, pair_law

    layout = parse_layout(open_room(cells) if kind == "open" else maze(cells), kind)
    start = time.perf_counter()
    truth = ground_truth(layout, 0.8, 1000, 1000, count=11)
    row = {"kind": kind, "cells": layout.num_free, "side": layout.width,
           "seconds": time.perf_counter() - start,
           "lambda_2": float(truth.eigenvalues[1]),
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if dense:
        start = time.perf_counter()
        operator_spectrum(pair_law(layout, 0.8, 1000, 1000))
        row["dense_seconds"] = time.perf_counter() - start
    return row


MAZE_MAX_CELLS = 32761  # a 255 x 255 maze has about 32000 free cells


def cases(sizes: list[int]) -> list[tuple[str, int]]:
    """(kind, cells) of every open room and maze the sizes ask for."""
    return [(kind, cells) for kind in ("open", "maze") for cells in sizes
            if kind == "open" or cells <= MAZE_MAX_CELLS]


def in_fresh_process(call: str) -> dict:
    """A call of this module's (e.g. "one('open', 100, True)") in a fresh interpreter, so
    each size's time and peak memory are its own; its printed JSON row."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_scale; print(json.dumps(bench_scale.{call}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ground_truth_rows(sizes: list[int], dense_max: int) -> list[dict]:
    rows = []
    for kind, cells in cases(sizes):
        row = in_fresh_process(f"one({kind!r}, {cells}, {cells <= dense_max})")
        rows.append(row)
        print(f"{row['kind']:<5}{row['cells']:>7} cells  {row['seconds']:8.2f} s  "
              f"{row['peak_mb']:8.0f} MB peak"
              + (f"  dense {row['dense_seconds']:.2f} s" if "dense_seconds" in row else ""),
              flush=True)
    return rows


def data_one(kind: str, cells: int, envs: int) -> dict:
    """Run in a fresh process: one data set's collection and sparse law, time and memory."""
    from allo.data import collect, empirical_pair_law
    from allo.layouts import parse_layout
    from allo.sparse_law import nbytes

    layout = parse_layout(open_room(cells) if kind == "open" else maze(cells), kind)
    start = time.perf_counter()
    data = collect(layout, envs, 1000, 1000, 0)
    middle = time.perf_counter()
    law = empirical_pair_law(data, 0.8, layout.num_free)
    end = time.perf_counter()
    return {"kind": kind, "cells": layout.num_free, "envs": envs, "transitions": data.size,
            "collect_seconds": middle - start, "law_seconds": end - middle,
            "pairs": int(law.nnz), "pairs_per_cell": law.nnz / layout.num_free,
            "law_mb": nbytes(law) / 2**20,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def data_rows(sizes: list[int], envs: int) -> list[dict]:
    rows = []
    for kind, cells in cases(sizes):
        row = in_fresh_process(f"data_one({kind!r}, {cells}, {envs})")
        rows.append(row)
        print(f"{row['kind']:<5}{row['cells']:>7} cells  collect {row['collect_seconds']:6.2f}"
              f" s  law {row['law_seconds']:7.2f} s  {row['pairs_per_cell']:6.0f} pairs/cell"
              f"  {row['law_mb']:7.0f} MB law  {row['peak_mb']:7.0f} MB peak", flush=True)
    return rows


def crossover_rows(sizes: list[int], envs: int, repeats: int = 3) -> list[dict]:
    """Dense against sparse, builder and product, alternating within each size."""
    import torch
    from scipy import sparse

    from allo.data import collect, dense_rows, torch_csr
    from allo.layouts import parse_layout
    from allo.sparse_law import enumerated

    rows = []
    for cells in sizes:
        layout = parse_layout(open_room(cells))
        n = layout.num_free
        data = collect(layout, envs, 1000, 1000, 0)
        times: dict[str, list[float]] = {"dense_build": [], "sparse_build": [],
                                         "dense_product": [], "sparse_product": []}
        law = None
        for _ in range(repeats):
            start = time.perf_counter()
            table = dense_rows(data, 0.8, n)
            times["dense_build"].append(time.perf_counter() - start)
            start = time.perf_counter()
            law = enumerated(data.source, data.target, data.episode_last, 0.8, n)
            times["sparse_build"].append(time.perf_counter() - start)
        del table
        assert law is not None
        degree = np.asarray(law.sum(axis=0)).ravel() + np.asarray(law.sum(axis=1)).ravel()
        laplacian = (sparse.diags(degree) - law - law.T).tocsr()
        dense_lap = torch.as_tensor(laplacian.toarray(), dtype=torch.float32)[None]
        sparse_lap = torch_csr(laplacian, torch.device("cpu"))
        u = torch.randn(1, n, 11)
        for _ in range(repeats):
            for key, left, right in (("dense_product", dense_lap, u),
                                     ("sparse_product", sparse_lap, u[0])):
                start = time.perf_counter()
                for _ in range(10):
                    torch.bmm(left, right) if left.dim() == 3 else left @ right
                times[key].append((time.perf_counter() - start) / 10)
        row = {"cells": n, "envs": envs, "pairs_per_cell": law.nnz / n,
               **{f"{k}_seconds": float(np.median(v)) for k, v in times.items()}}
        rows.append(row)
        print(f"{n:>7} cells  build dense {row['dense_build_seconds']:6.2f} s  sparse "
              f"{row['sparse_build_seconds']:6.2f} s   L_W U dense "
              f"{1e3 * row['dense_product_seconds']:7.2f} ms  sparse "
              f"{1e3 * row['sparse_product_seconds']:7.2f} ms", flush=True)
    return rows


def layout_file(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else REFERENCE / f"{name}.txt"


def train_row(name: str) -> dict:
    """`allo train` with defaults on one layout: when mean |cos| first reached 0.99."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "allo.cli", "train", "--env-file",
                        str(layout_file(name)), "--run-dir", str(run)], check=True,
                       capture_output=True)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        info = json.loads((run / "run.json").read_text())
    quality = [r for r in rows if "cos/mean" in r]
    first = next((r for r in quality if r["cos/mean"] >= 0.99), None)
    return {"layout": name, "cells": info["env"]["num_free"], "wall_s": wall,
            "steps": quality[-1]["step"], "final_cos_mean": quality[-1]["cos/mean"],
            "step_to_099": first["step"] if first else None,
            "training_seconds_to_099": first.get("time") if first else None,
            "timings": info.get("timings")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--dense-max", type=int, default=2500,
                        help="also time the dense path up to this many cells")
    parser.add_argument("--train", default="", help="layouts to train, comma-separated")
    parser.add_argument("--data", action="store_true", help="also the data law against N")
    parser.add_argument("--data-envs", type=int, default=4000,
                        help="environments of the data set (--data, --crossover)")
    parser.add_argument("--crossover", action="store_true",
                        help="only the dense/sparse crossover, on open rooms of --sizes")
    parser.add_argument("--no-truth", action="store_true", help="skip the ground truth rows")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    result: dict = {"machine": machine_facts()}
    if args.crossover:
        result["crossover"] = crossover_rows(sizes, args.data_envs)
    elif not args.no_truth:
        result["ground_truth"] = ground_truth_rows(sizes, args.dense_max)
    if args.data:
        result["data_law"] = data_rows(sizes, args.data_envs)
    if args.train:
        result["training"] = []
        for name in args.train.split(","):
            row = train_row(name)
            result["training"].append(row)
            print(f"{name}: 0.99 at step {row['step_to_099']} "
                  f"({row['training_seconds_to_099']} s of training); "
                  f"final mean |cos| {row['final_cos_mean']:.4f}", flush=True)
    result["machine_after"] = machine_facts()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
