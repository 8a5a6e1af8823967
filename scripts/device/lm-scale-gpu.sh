#!/usr/bin/env bash
# The GPU checks of issue 14 (language-model scale), run on a lent GPU machine from the
# repository root (see .library/device): the soft embedding and the portable noise on CUDA
# against the CPU (tests skipped without a GPU), then `gumbelkit bench vocab --device cuda` at
# (4096, 50257, 768) and (4096, 128256, 4096). Everything it prints or writes goes under $OUT.
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-bench-results/device}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout "${TEST_SECONDS:-120}" python3 -m pytest -q -p no:cacheprovider -rs \
    tests/test_embedding.py tests/kernels/test_triton_embedding.py tests/test_portable.py \
    tests/test_restricted.py \
    >"$OUT/lm-tests.log" 2>&1
echo "lm-scale tests: exit $?"; tail -5 "$OUT/lm-tests.log"
for dtype in bf16 fp32; do
    timeout "${BENCH_SECONDS:-240}" python3 -m gumbelkit.cli bench vocab --device cuda \
        --dtype "$dtype" --out "$OUT/vocab-$dtype" "$@" 2>"$OUT/vocab-$dtype.err"
    echo "bench vocab $dtype: exit $?"; tail -3 "$OUT/vocab-$dtype.err"
done
