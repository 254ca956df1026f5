"""--log-freq 10 against 1000 (bench_train.bench_logging) for the tree in the working
directory, so that two versions can be compared in alternating processes on one card:

    python benchmarks/device/log_ratio.py --device cuda --steps 6000 --pairs 3 --out F
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "benchmarks"))

from bench_train import bench_logging  # noqa: E402

from allo.config import TrainConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = bench_logging(TrainConfig(device=args.device), Path(tmp), args.steps,
                               args.pairs)
    print(json.dumps(result))
    args.out.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
