#!/usr/bin/env bash
# The GPU checks of issue 14 (language-model scale), run on a lent GPU machine from the
# repository root (see .library/device): the soft embedding and the portable noise on CUDA
# against the CPU (tests skipped without a GPU), the soft embedding's kernels profiled
# (scripts/device/profile-embedding.py), then `gumbelkit bench vocab --device cuda` at
# (4096, 50257, 768) and (4096, 128256, 4096). Its time limits sum to under 600 s (one call).
# Everything it prints or writes goes under $OUT.
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
timeout "${PROFILE_SECONDS:-80}" python3 scripts/device/profile-embedding.py \
    >"$OUT/profile-embedding.txt" 2>&1
echo "profile: exit $?"
for dtype in bf16 fp32; do
    timeout "${BENCH_SECONDS:-170}" python3 -m gumbelkit.cli bench vocab --device cuda \
        --dtype "$dtype" --out "$OUT/vocab-$dtype" "$@" 2>"$OUT/vocab-$dtype.err"
    echo "bench vocab $dtype: exit $?"; tail -3 "$OUT/vocab-$dtype.err"
done
