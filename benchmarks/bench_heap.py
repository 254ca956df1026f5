"""`allo train` with freed memory kept (allo/heap.py) against glibc's defaults
(a benchmark, not a test).

    python benchmarks/bench_heap.py                     # the cases below, 2 repeats
    python benchmarks/bench_heap.py --repeats 3 --threads 1

Each case runs as an `allo train` process twice per repeat, alternately: as shipped, and
with ALLO_KEEP_FREED_MEMORY=0 (glibc's defaults). The number is the training phase's
steps per second (run.json's timings), beside the minor page faults and the kernel CPU
seconds of the whole process (wait4). The GridRoom-64 case needs
../shared/reference-layouts (the published benchmark's layouts); without it, it is skipped.
Writes benchmarks/results/heap.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import describe as machine_facts  # noqa: E402

from allo import heap, rundir  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "heap.json"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference-layouts"

CASES = {
    "room4, defaults, 1 seed": ["room4", "--steps", "4000"],
    "room4, defaults, 5 seeds": ["room4", "--seeds", "0-4", "--steps", "3000"],
    "GridRoom-64, --protocol paper GGDO, 5 seeds": [
        "--env-file", str(REFERENCE / "GridRoom-64.txt"), "--protocol", "paper",
        "--objective", "ggdo", "--seeds", "0-4", "--steps", "1500"],
}


def train(args: list[str], run_dir: Path, keep: bool, threads: int) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not heap.user_tuned({key: value})}  # else `allo train` would keep glibc as is
    env.update(PYTHONUNBUFFERED="1", **{heap.OPT_OUT: "1" if keep else "0"})
    template = str(run_dir / "s{seed}") if "--seeds" in args else str(run_dir / "s0")
    child = subprocess.Popen(
        [sys.executable, "-m", "allo.cli", "train", *args, "--threads", str(threads),
         "--device", "cpu", "--run-dir", template],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)  # its rusage: faults and kernel time
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if child.returncode != 0:
        raise SystemExit(f"bench_heap: allo train {' '.join(args)} exited {child.returncode}")
    info = rundir.RunReader(run_dir / "s0").info()
    seconds = (info.timings or {})["training"]
    return {"steps_per_s": info.step / seconds, "training_s": seconds,
            "minor_faults": usage.ru_minflt, "kernel_cpu_s": usage.ru_stime,
            "user_cpu_s": usage.ru_utime}


def median_of(samples: list[dict]) -> dict:
    return {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    problem = ("--repeats must be >= 1" if args.repeats < 1 else
               "--threads must be >= 1" if args.threads < 1 else
               None if heap.on_glibc() else "this C library is not glibc; allo leaves it alone")
    if problem:
        print(f"bench_heap: {problem}", file=sys.stderr)
        return 2
    cases = {name: case for name, case in CASES.items()
             if "--env-file" not in case or Path(case[1]).is_file()}
    report: dict = {"machine": machine_facts(), "threads": args.threads,
                    "repeats": args.repeats, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="bench_heap_") as tmp:
        for name, case in cases.items():
            samples: dict[str, list[dict]] = {"kept": [], "glibc defaults": []}
            for repeat in range(args.repeats):
                for way in samples:
                    run_dir = Path(tmp) / f"{len(report['cases'])}-{way}-{repeat}"
                    samples[way].append(train(case, run_dir, way == "kept", args.threads))
            medians = {way: median_of(runs) for way, runs in samples.items()}
            speedup = medians["kept"]["steps_per_s"] / medians["glibc defaults"]["steps_per_s"]
            report["cases"][name] = {"command": "allo train " + " ".join(case),
                                     **medians, "speedup": round(speedup, 3)}
            print(f"{name}: {medians['glibc defaults']['steps_per_s']:.1f} -> "
                  f"{medians['kept']['steps_per_s']:.1f} steps/s (x{speedup:.2f}); faults "
                  f"{medians['glibc defaults']['minor_faults']:.0f} -> "
                  f"{medians['kept']['minor_faults']:.0f}", flush=True)
    rundir.atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
