#!/bin/bash
# Run from the repository root on a GPU machine; results go under $OUT. Without a package
# registry there, put pytest wheels in .device/wheels (or $WHEELS) and carry them.
# Optional: the previous version's allo/ and benchmarks/ in .device/old (git archive) for
# a same-card comparison of steps/s.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python -c "import pytest" 2>/dev/null || pip install --no-index --no-deps -q ${WHEELS:-.device/wheels}/*.whl > "$OUT/pip.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/env.txt" 2>&1
python -c "import torch; print(torch.__version__, torch.version.cuda)" >> "$OUT/env.txt" 2>&1
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_step.py tests/test_recorder.py > "$OUT/pytest.txt" 2>&1; echo "rc=$?" >> "$OUT/pytest.txt"
timeout 120 python benchmarks/bench_train.py --device cuda --skip-accuracy --out "$OUT/train_cuda.json" > "$OUT/bench.txt" 2>&1; echo "rc=$?" >> "$OUT/bench.txt"
if [ -d .device/old/allo ]; then
  ( cd .device/old && PYTHONPATH=$PWD timeout 100 python benchmarks/bench_train.py --device cuda --skip-accuracy --out "$OUT/train_cuda_old.json" > "$OUT/bench_old.txt" 2>&1; echo "rc=$?" >> "$OUT/bench_old.txt" )
fi
( time timeout 45 python -m allo.cli train room4 --results-dir "$OUT/runs" ) > "$OUT/e2e_default.txt" 2>&1
( time timeout 75 python -m allo.cli train room4 --seeds 0-31 --results-dir "$OUT/runs32" --plot-freq 12000 --checkpoint-freq 12000 ) > "$OUT/e2e_32.txt" 2>&1
{ python benchmarks/device/summarise_runs.py "$OUT/runs" default; python benchmarks/device/summarise_runs.py "$OUT/runs32" "32 seeds"; } > "$OUT/runs_summary.txt" 2>&1
rm -rf "$OUT"/runs "$OUT"/runs32
[ "${ACCURACY_S:-0}" -gt 0 ] && timeout ${ACCURACY_S} python benchmarks/accuracy.py --batched --device cuda --seeds 5 --out "$OUT/accuracy_cuda.json" > "$OUT/accuracy.txt" 2>&1; echo "rc=$?" >> "$OUT/accuracy.txt"
