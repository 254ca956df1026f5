"""Training speed and time to accuracy (a benchmark, not a test).

    python benchmarks/bench_train.py                 # everything, 5 seeds of room4
    python benchmarks/bench_train.py --seeds 1 --skip-accuracy

Measures, on this machine, in one run:
  data         1e6 random-walk transitions (room4, 1000 envs x 1000 steps)
  ground truth the exact operator and its spectrum (room4, defaults)
  step         achieved matmul FLOP/s of a training step vs. plain GEMMs of the same shapes
  logging      steps/s with --log-freq 10 against --log-freq 1000
  end to end   the default `allo train room4`, split into phases (from run.json timings)
  accuracy     steps and seconds until mean |cos| >= 0.99, per seed and the median
Prints a table and writes benchmarks/results/train.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import describe as machine_facts

from allo import rundir
from allo.config import TrainConfig
from allo.data import collect, empirical_pair_law, weight_source
from allo.dataset import BASE_ENVS
from allo.layouts import load_builtin
from allo.learner import Learner
from allo.spectrum import ground_truth
from allo.train import train

RESULTS = Path(__file__).parent / "results" / "train.json"


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_data() -> dict:
    layout = load_builtin("room4")
    seconds = best_of(lambda: collect(layout, 1000, 1000, 1000, seed=0))
    truth = best_of(lambda: ground_truth(layout, 0.8, 1000, 1000))
    return {"data_1e6_transitions_s": seconds, "ground_truth_s": truth}


def matmul_flops(n: int, d: int, hidden: int, layers: int) -> float:
    """Forward matmul FLOPs of the MLP on n rows, times 3 for forward + backward."""
    widths = [2] + [hidden] * layers + [d]
    forward = sum(2 * n * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return 3.0 * forward


def make_learner(cfg: TrainConfig, device: torch.device, seeds: int = 1) -> Learner:
    layout = load_builtin("room4")
    data = collect(layout, cfg.num_envs or BASE_ENVS, cfg.num_steps, cfg.max_episode_length, 0)
    law = empirical_pair_law(data, cfg.discount, layout.num_free)
    seed_list = list(range(seeds))
    cfg = dataclasses.replace(cfg, num_gradient_steps=cfg.num_gradient_steps or 12000)
    sampler = weight_source([law] * seeds, seed_list, device, cfg.batch_size)
    coords = torch.as_tensor(layout.coordinates(), device=device)
    return Learner(cfg, seed_list, device, sampler, coords)


def steps_per_second(step, device: torch.device, steps: int) -> float:
    def run() -> None:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(20):
        step()
    return steps / best_of(run)


def bench_step(cfg: TrainConfig, steps: int = 300) -> dict:
    """Achieved FLOP/s of the real step against GEMMs of the same shapes (same threads)."""
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    torch.set_flush_denormal(True)
    cpu = torch.device("cpu")
    learner = make_learner(cfg, cpu)
    n, d = learner.coords.shape[0], cfg.num_eigenvectors
    step_s = 1.0 / steps_per_second(learner.step, cpu, steps)
    # sampled batches only (--batch-size); the default's expectation is fixed tensors
    sample_s = (1.0 / steps_per_second(lambda: learner.sampler.weights(cfg.batch_size), cpu,
                                       steps) if cfg.batch_size else 0.0)
    four = make_learner(cfg, cpu, seeds=4)
    four_s = 1.0 / steps_per_second(four.step, cpu, steps // 4)
    # the same matmuls as forward + backward (x W, grad x, grad W), nothing else
    widths = [2] + [cfg.hidden_size] * cfg.hidden_layers + [d]
    mats = [(torch.randn(n, a), torch.randn(a, b), torch.randn(n, b))
            for a, b in zip(widths[:-1], widths[1:], strict=True)]

    def gemms() -> None:
        for x, w, g in mats:
            torch.mm(x, w)
            torch.mm(g, w.T)
            torch.mm(x.T, g)

    gemm_s = best_of(lambda: [gemms() for _ in range(steps)]) / steps
    flops = matmul_flops(n, d, cfg.hidden_size, cfg.hidden_layers)
    return {
        "step_ms": step_s * 1e3,
        "sampling_ms": sample_s * 1e3,
        "gemm_only_ms": gemm_s * 1e3,
        "step_gflops": flops / step_s / 1e9,
        "gemm_gflops": flops / gemm_s / 1e9,
        "fraction_of_gemm": gemm_s / step_s,
        "steps_per_s": 1.0 / step_s,
        "four_seeds_step_ms": four_s * 1e3,
        "four_seeds_gemm_fraction": 4 * gemm_s / four_s,
    }


def bench_gpu(cfg: TrainConfig, steps: int = 2000) -> dict:
    """Steps/s on CUDA: eager and graphed, one seed and many (steps/s per seed)."""
    from allo.cuda_graph import GraphedStep

    device = torch.device("cuda")
    result: dict = {"device": torch.cuda.get_device_name(device)}
    eager = make_learner(cfg, device)
    result["eager_1_seed_sps"] = steps_per_second(eager.step, device, steps // 4)
    for seeds in (1, 8, 32):
        graphed = make_learner(cfg, device, seeds=seeds)
        result[f"graph_{seeds}_seeds_sps"] = steps_per_second(GraphedStep(graphed), device,
                                                              steps)
        print(f"  graph, {seeds} seeds: {result[f'graph_{seeds}_seeds_sps']:.0f} steps/s",
              flush=True)
    return result


def run_training(cfg: TrainConfig, folder: Path) -> tuple[rundir.RunInfo, list[rundir.MetricsRow]]:
    outcome = train(cfg)
    reader = rundir.RunReader(outcome.run_dir)
    return reader.info(), reader.metrics()


def bench_logging(cfg: TrainConfig, folder: Path, steps: int = 2000, pairs: int = 3) -> dict:
    """--log-freq 10 against 1000 in alternating pairs of runs; the median pair's ratio
    (one pair of 3-second runs moved by +-4% on the shared VM)."""
    rates: dict[int, list[float]] = {10: [], 1000: []}
    for pair in range(pairs):
        for log_freq in (10, 1000):
            run_cfg = TrainConfig(**{**cfg.__dict__, "num_gradient_steps": steps,
                                     "log_freq": log_freq, "plot_freq": steps,
                                     "checkpoint_freq": steps,
                                     "run_dir": str(folder / f"log{log_freq}_{pair}")})
            info, _ = run_training(run_cfg, folder)
            # waiting for the recorder to finish writing counts against logging
            timings = info.timings or {}
            busy = timings["training"] + timings["recording_after_training"]
            rates[log_freq].append(steps / busy)
    ratios = [fast / slow for fast, slow in zip(rates[10], rates[1000], strict=True)]
    return {"sps_log10": statistics.median(rates[10]),
            "sps_log1000": statistics.median(rates[1000]),
            "log10_over_log1000": statistics.median(ratios),
            "log10_over_log1000_pairs": ratios}


def bench_accuracy(cfg: TrainConfig, folder: Path, seeds: int) -> dict:
    per_seed = []
    for seed in range(seeds):
        run_cfg = TrainConfig(**{**cfg.__dict__, "seed": seed, "log_freq": 100,
                                 "run_dir": str(folder / f"seed{seed}")})
        started = time.perf_counter()
        info, rows = run_training(run_cfg, folder)
        total = time.perf_counter() - started
        hit = next((r for r in rows if (r.get("cos/mean") or 0) >= 0.99), None)
        per_seed.append({
            "seed": seed,
            "final_cos": rows[-1]["cos/mean"],
            "final_eig_rel_error": rows[-1].get("eig/mean_rel_error"),
            "steps_to_0.99": hit["step"] if hit else None,
            "seconds_to_0.99": hit["time"] if hit else None,
            "total_s": total,
            "timings": info.timings,
        })
        print(f"  seed {seed}: final mean|cos| {per_seed[-1]['final_cos']:.4f}, "
              f"0.99 at step {per_seed[-1]['steps_to_0.99']}, total {total:.1f}s",
              flush=True)
    finals = [s["final_cos"] for s in per_seed]
    hits = [s["seconds_to_0.99"] for s in per_seed]
    reached = [h for h in hits if h is not None]
    return {
        "per_seed": per_seed,
        "median_final_cos": statistics.median(finals),
        "median_total_s": statistics.median(s["total_s"] for s in per_seed),
        # seeds that never reach 0.99 count as infinitely slow in the median
        "median_seconds_to_0.99": (statistics.median([h if h is not None else float("inf")
                                                      for h in hits]) if reached else None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: eager vs CUDA-graph steps/s and runs on the GPU")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sampled batches of this size instead of the default exact "
                             "expectation over the data set")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    suffix = f"_batch{args.batch_size}" if args.batch_size else ""
    out = args.out or RESULTS.with_name(f"train_{args.device}{suffix}.json")
    cfg = TrainConfig(device=args.device, batch_size=args.batch_size)
    results: dict = {
        "machine": {**machine_facts(), "torch": torch.__version__},
        "config": cfg.__dict__,
    }
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["data"] = data = bench_data()
        rows += [("1e6 transitions collected (s)", data["data_1e6_transitions_s"]),
                 ("exact ground truth, room4 (s)", data["ground_truth_s"])]
        if args.device == "cuda":
            results["gpu"] = gpu = bench_gpu(cfg)
            rows += [(f"{k} ({gpu['device']})", v) for k, v in gpu.items() if k != "device"]
        else:
            results["step"] = step = bench_step(cfg)
            rows += [
                ("training step (ms)", step["step_ms"]),
                ("  of which sampling (ms)", step["sampling_ms"]),
                ("  same matmuls alone (ms)", step["gemm_only_ms"]),
                ("step matmul GFLOP/s", step["step_gflops"]),
                ("GEMM GFLOP/s, same shapes", step["gemm_gflops"]),
                ("step / GEMM throughput", step["fraction_of_gemm"]),
                ("4 seeds batched: step (ms)", step["four_seeds_step_ms"]),
                ("4 seeds batched: step / GEMM throughput", step["four_seeds_gemm_fraction"]),
            ]
        # a 2000-step run lasts 0.6 s on an H200: too short for its end not to weigh
        log_steps = 6000 if args.device == "cuda" else 2000
        results["logging"] = log = bench_logging(cfg, folder, log_steps)
        rows.append(("steps/s, log every 10 / every 1000 (median pair)",
                     log["log10_over_log1000"]))
        if not args.skip_accuracy:
            results["accuracy"] = acc = bench_accuracy(cfg, folder, args.seeds)
            rows += [("median final mean|cos| (room4)", acc["median_final_cos"]),
                     ("median seconds to mean|cos| 0.99", acc["median_seconds_to_0.99"] or -1),
                     ("median end-to-end seconds", acc["median_total_s"])]
            phases = acc["per_seed"][0]["timings"] or {}
            rows += [(f"  seed 0 phase: {name} (s)", value) for name, value in phases.items()]
    print(f"{'measure':<52}{'value':>12}")
    for name, value in rows:
        print(f"{name:<52}{value:>12.4g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rundir.to_json_safe(results), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
