#!/bin/bash
# Run from the repository root on a GPU machine; results go under $OUT. Without a package
# registry there, put pytest wheels in .device/wheels (or $WHEELS) and carry them.
# The CUDA tests, then the accuracy table: every layout, 5 seeds as one batched model.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python -c "import pytest" 2>/dev/null || pip install --no-index --no-deps -q ${WHEELS:-.device/wheels}/*.whl > "$OUT/pip.txt" 2>&1
timeout 60 python -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/pytest.txt" 2>&1; echo "rc=$?" >> "$OUT/pytest.txt"
timeout ${ACCURACY_S:-300} python benchmarks/accuracy.py --batched --device cuda --seeds 5 --objectives ${OBJECTIVES:-allo} --out "$OUT/accuracy_cuda.json" > "$OUT/accuracy.txt" 2>&1; echo "rc=$?" >> "$OUT/accuracy.txt"
