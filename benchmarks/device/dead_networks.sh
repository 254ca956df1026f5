#!/bin/bash
# Run from the repository root on a GPU machine; results go under $OUT. Without a package
# registry there, put pytest wheels in .device/wheels (or $WHEELS) and carry them.
# Which seeds collapse to a dead network on the GPU, when, and does clipping or a lower lr help?
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python -c "import pytest" 2>/dev/null || pip install --no-index --no-deps -q ${WHEELS:-.device/wheels}/*.whl > "$OUT/pip.txt" 2>&1
timeout 100 python -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/pytest.txt" 2>&1; echo "rc=$?" >> "$OUT/pytest.txt"
for variant in "default" "--max-grad-norm 1" "--learning-rate 1.5e-3"; do
  name=$(echo "$variant" | tr -d ' -.')
  flags=$([ "$variant" = default ] || echo "$variant")
  ( time timeout 80 python -m allo.cli train room4 --seeds 0-31 --log-freq 50 --plot-freq 12000 --checkpoint-freq 12000 --results-dir "$OUT/r_$name" $flags ) > "$OUT/train_$name.txt" 2>&1
  python benchmarks/device/summarise_runs.py "$OUT/r_$name" "$variant" > "$OUT/summary_$name.txt" 2>&1
  rm -rf "$OUT/r_$name"
done
