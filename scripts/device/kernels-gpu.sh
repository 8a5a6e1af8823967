#!/usr/bin/env bash
# The GPU checks of the kernels, run on a lent GPU machine from the repository root (see
# .library/device): the kernel tests compiled for the GPU, then `gumbelkit bench kernels`.
# Everything it prints or writes goes under $OUT.
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-bench-results/device}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
    | tee -a "$OUT/gpu.txt"
timeout "${TEST_SECONDS:-150}" python3 -m pytest -q -p no:cacheprovider -n 16 tests/kernels \
    >"$OUT/tests.log" 2>&1
echo "kernel tests: exit $?"; tail -5 "$OUT/tests.log"
timeout "${BENCH_SECONDS:-300}" python3 -m gumbelkit.cli bench kernels --device cuda \
    --out "$OUT/kernels" "$@" 2>"$OUT/bench.err"
echo "bench: exit $?"; tail -3 "$OUT/bench.err"
