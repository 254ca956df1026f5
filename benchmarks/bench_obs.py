"""Step speed of each observation type against xy (a benchmark, not a test).

    python benchmarks/bench_obs.py                      # xy, pixels, grid, both on room4
    python benchmarks/bench_obs.py --obs xy --rounds 5  # xy alone (run in two trees to
                                                        # compare code before and after)

Times `Learner.step` (forward of every free cell, the objective's closed-form gradient,
backward, clipping, Adam, duals) with allo's defaults on room4 (d 10, 4 x 256 MLP, the
exact expectation, one CPU thread), 10 warm-up steps then --steps timed steps, the
observation types alternating for --rounds rounds so the machine's load hits them alike.
Prints steps/s per round, the median and each type's median ratio to xy; writes
benchmarks/results/obs.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from machine import describe as machine_facts  # noqa: E402

from allo.config import TrainConfig  # noqa: E402
from allo.data import DataLawWeights  # noqa: E402
from allo.layouts import load_builtin  # noqa: E402
from allo.learner import Learner  # noqa: E402
from allo.spectrum import ground_truth  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "obs.json"


def inputs(cfg: TrainConfig, layout, device: torch.device):
    if getattr(cfg, "obs", "xy") == "xy":  # the same call as before observations existed
        return torch.as_tensor(layout.coordinates(), device=device)
    from allo.encoder import observation_inputs

    return observation_inputs(cfg, layout, device)


def steps_per_second(obs: str, layout, law, steps: int) -> float:
    device = torch.device("cpu")
    cfg = TrainConfig(num_gradient_steps=steps + 10)
    if obs != "xy":
        cfg = dataclasses.replace(cfg, obs=obs)
    sampler = DataLawWeights([law], [0], device)
    learner = Learner(cfg, [0], device, sampler, inputs(cfg, layout, device))
    for _ in range(10):
        learner.step()
    started = time.perf_counter()
    for _ in range(steps):
        learner.step()
    return steps / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obs", default="xy,pixels,grid,both")
    parser.add_argument("--layout", default="room4")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    layout = load_builtin(args.layout)
    defaults = TrainConfig()
    truth = ground_truth(layout, defaults.discount, defaults.num_steps,
                         defaults.max_episode_length)
    kinds = [k.strip() for k in args.obs.split(",") if k.strip()]
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for round_number in range(args.rounds):
        for kind in kinds:
            rates[kind].append(steps_per_second(kind, layout, truth.pair_law, args.steps))
        print(f"round {round_number + 1}: " + ", ".join(
            f"{k} {rates[k][-1]:.1f}/s" for k in kinds), flush=True)
    medians = {k: statistics.median(v) for k, v in rates.items()}
    # time per step relative to xy, paired round by round
    ratios = {k: (statistics.median(x / y for x, y in zip(rates["xy"], v, strict=True))
                  if "xy" in rates else None) for k, v in rates.items()}
    for kind in kinds:
        ratio = ratios[kind]
        print(f"{kind:>7}: median {medians[kind]:.1f} steps/s"
              + (f", {ratio:.2f}x the time of an xy step" if ratio else ""))
    result = {"machine": machine_facts(), "torch": torch.__version__, "layout": args.layout,
              "steps": args.steps, "rounds": args.rounds, "steps_per_s": rates,
              "median_steps_per_s": medians, "time_ratio_to_xy": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
