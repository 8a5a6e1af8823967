#!/usr/bin/env bash
# The GPU benchmarks within a wall-clock budget, for a lent GPU machine without network access:
#
#   bash scripts/device/bench-gpu.sh BUDGET_SECONDS
#
# run from the repository root, with Fashion-MNIST's idx files in .devdata/fashion-mnist and the
# package not installed (PYTHONPATH=src). Concurrently, one process each, one torch thread each:
#   - `gumbelkit bench poly --estimators gr --powers P` for P = 1.5, 2, 3 (the full protocol:
#     8,000 steps, 10 seeds);
#   - `gumbelkit bench vae --no-throughput` for every (configuration, estimator), 1 seed, each with
#     the same --minutes, chosen so that everything ends within the budget:
#     minutes = (BUDGET - STARTUP_S - TAIL_S - FINAL_S) / 60 (the process start; the last epoch,
#     the gradient diagnostics and the evaluation after the budget runs out; the merge, the
#     tables and the packing).
# Each process records into its own runs.sqlite. At BUDGET - FINAL_S the vae processes still
# running are stopped, at BUDGET - 20 s the poly ones; the runs they finished are kept. The records
# are merged (`gumbelkit merge-runs`), and one normal `gumbelkit bench vae` over the estimators
# recorded in every configuration reuses every run, measures the throughput comparison alone and
# writes the tables; `gumbelkit bench poly` likewise for the powers recorded. Every SNAPSHOT_S
# seconds, and at the end, the work directory (record files copied consistently) is packed into
# $OUT/bench4.tar.gz, so that a killed run still returns its finished runs; the log is
# $OUT/bench4.log, the tables are also $OUT/vae.md and $OUT/poly-gr.md. Run again with the same
# budget on the same machine, it resumes (finished runs are reused).
#
# Overrides, e.g. for a test on a CPU (environment variables): DEVICE (cuda), PYTHON (python3),
# DATA_DIR (.devdata/fashion-mnist), CONFIGURATIONS ("8x4 10x30"), ESTIMATORS (all eight),
# POLY_ESTIMATORS (gr), POWERS ("1.5 2 3"), VAE_ARGS and POLY_ARGS (more options, e.g.
# "--max-steps 3"), MINUTES (computed), STARTUP_S (30), TAIL_S (50), FINAL_S (50),
# SNAPSHOT_S (30), WORK (bench-results/bench4), OUT (bench-results/bench4-out when unset).
set -uo pipefail

budget="${1:?usage: bash scripts/device/bench-gpu.sh BUDGET_SECONDS}"
DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
DATA_DIR="${DATA_DIR:-.devdata/fashion-mnist}"
read -ra configurations <<< "${CONFIGURATIONS:-8x4 10x30}"
read -ra estimators <<< "${ESTIMATORS:-st st-gs gr gst reinmax softmax gs rloo}"
POLY_ESTIMATORS="${POLY_ESTIMATORS:-gr}"
read -ra powers <<< "${POWERS:-1.5 2 3}"
read -ra vae_args <<< "${VAE_ARGS:-}"
read -ra poly_args <<< "${POLY_ARGS:-}"
STARTUP_S="${STARTUP_S:-30}"
TAIL_S="${TAIL_S:-50}"
FINAL_S="${FINAL_S:-50}"
SNAPSHOT_S="${SNAPSHOT_S:-30}"
WORK="${WORK:-bench-results/bench4}"
OUT="${OUT:-bench-results/bench4-out}"
minutes="${MINUTES:-$(awk -v b="$budget" -v r="$((STARTUP_S + TAIL_S + FINAL_S))" \
  'BEGIN { printf "%.2f", (b - r) / 60 }')}"
if ! awk -v m="$minutes" 'BEGIN { exit !(m > 0) }'; then
  echo "bench-gpu: a budget of $budget s leaves no training time" \
       "(STARTUP_S + TAIL_S + FINAL_S = $((STARTUP_S + TAIL_S + FINAL_S)) s)" >&2
  exit 2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_MININTERVAL=5
mkdir -p "$WORK/logs" "$OUT"
stopped="$WORK/.snapshots-stop"  # tells the snapshot loop to end
rm -f "$stopped"
gumbelkit=("$PYTHON" -m gumbelkit.cli)
# the options that make a benchmark's configuration (its digest), the same for its parts and its
# table; the parts of a configuration go to a directory of their own, so that the runs recorded
# there are this configuration's
vae_config=(--device "$DEVICE" --minutes "$minutes" --seeds 1 --data-dir "$DATA_DIR"
            --threads 1 "${vae_args[@]}")
poly_config=(--device "$DEVICE" --threads 1 "${poly_args[@]}")
vae_parts="$WORK/vae-parts/$(printf '%s ' "${vae_config[@]}" | cksum | cut -d ' ' -f 1)"
poly_parts="$WORK/poly-parts/$(printf '%s ' "${poly_config[@]}" | cksum | cut -d ' ' -f 1)"
declare -A vae_pids=() poly_pids=()  # part name -> pid
snapshots=""

say() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }

running() {  # those of the pids given that are still running
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done
}

stop() {  # terminate the pids given; kill what is left after 5 s
  [ $# -gt 0 ] || return 0
  kill "$@" 2>/dev/null
  for _ in 1 2 3 4 5; do [ -n "$(running "$@")" ] || return 0; sleep 1; done
  kill -9 $(running "$@") 2>/dev/null
}

# Copy the work directory into $WORK.mirror (record files through SQLite's backup, so that a copy
# is never caught mid-write; a copy that fails keeps the previous one) and pack the mirror into
# $OUT/bench4.tar.gz, replaced atomically.
snapshot() {
  "$PYTHON" - "$WORK" "$WORK.mirror" "$OUT/bench4.tar.gz" <<'PY' || say "snapshot failed"
import os, shutil, sqlite3, sys, tarfile
from contextlib import closing
work, mirror, target = sys.argv[1:]
tag = f".{os.getpid()}.tmp"
for root, _, files in os.walk(work):
    for name in files:
        if name.endswith(("-journal", "-wal", "-shm")) or name.startswith("."):
            continue
        source = os.path.join(root, name)
        copy = os.path.join(mirror, os.path.relpath(source, work))
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        try:
            if name.endswith(".sqlite"):
                with closing(sqlite3.connect(source, timeout=10)) as src, \
                        closing(sqlite3.connect(copy + tag)) as dst:
                    src.backup(dst)
            else:
                shutil.copy2(source, copy + tag)
            os.replace(copy + tag, copy)
        except (OSError, sqlite3.Error) as error:
            print(f"snapshot: kept the previous copy of {source}: {error}", file=sys.stderr)
with tarfile.open(target + tag, "w:gz") as tar:
    tar.add(mirror, arcname=os.path.basename(work))
os.replace(target + tag, target)
PY
}

snapshot_loop() {  # a snapshot and the GPU's load every SNAPSHOT_S s, until $stopped exists
  trap - INT TERM
  local next=$((SECONDS + SNAPSHOT_S))
  while [ ! -e "$stopped" ]; do
    sleep 1
    if [ "$SECONDS" -ge "$next" ] && [ ! -e "$stopped" ]; then
      snapshot
      if command -v nvidia-smi >/dev/null; then
        say "gpu: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
      fi
      next=$((SECONDS + SNAPSHOT_S))
    fi
  done
}

finish() {  # wait for the parts of the named array until the deadline $2, then stop them
  local -n group="$1"
  local late name status
  while [ -n "$(running "${group[@]}")" ] && [ "$SECONDS" -lt "$2" ]; do sleep 2; done
  read -ra late <<< "$(running "${group[@]}" | tr '\n' ' ')"
  if [ ${#late[@]} -gt 0 ]; then
    say "deadline: stopping ${#late[@]} process(es); the runs they finished are kept"
    stop "${late[@]}"
  fi
  for name in "${!group[@]}"; do
    wait "${group[$name]}"
    status=$?
    [ "$status" -eq 0 ] || say "$name: exit status $status"
  done
}

recorded() {  # the parts in directory $1 with a recorded run (a process may stop after that)
  "$PYTHON" - "$1" <<'PY'
import os, sqlite3, sys
from contextlib import closing
for name in sorted(os.listdir(sys.argv[1]) if os.path.isdir(sys.argv[1]) else []):
    path = os.path.join(sys.argv[1], name, "runs.sqlite")
    if os.path.exists(path):
        with closing(sqlite3.connect(path, timeout=10)) as db:
            if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                print(name)
PY
}

merge_parts() {  # the records of every part in directory $1 into $2/runs.sqlite
  local parts=("$1"/*/runs.sqlite)
  [ -e "${parts[0]}" ] || return 0
  "${gumbelkit[@]}" merge-runs "$2/runs.sqlite" "${parts[@]}" | sed "s|^$1/|  merged |"
}

table() {  # `gumbelkit bench $1 ARGS...` from the records, stopped at the deadline $2
  local kind="$1" left=$(($2 - SECONDS))
  shift 2
  if [ "$left" -lt 5 ]; then
    say "$kind: no time left for the table; the records are in the tarball"
    return
  fi
  say "$kind: the table from the records (at most ${left} s)"
  timeout "$left" "${gumbelkit[@]}" bench "$kind" "$@" > "$WORK/logs/$kind.log" 2>&1
  say "$kind table: exit status $? ($(tail -n 1 "$WORK/logs/$kind.log"))"
}

interrupted() {
  touch "$stopped"
  stop "${vae_pids[@]}" "${poly_pids[@]}"
  [ -z "$snapshots" ] || wait "$snapshots"
  snapshot
  say "interrupted: the finished runs are in $OUT/bench4.tar.gz"
  exit 130
}

summary() {  # the rows of the two tables, in short
  "$PYTHON" - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
path = os.path.join(work, "vae", "vae.json")
if os.path.exists(path):
    with open(path) as handle:
        saved = json.load(handle)
    meta = saved["meta"]
    print(f"vae: {meta['reused']} of {meta['results']} results reused (the "
          f"{len(saved['throughput'])} throughput result(s) are measured after the runs)")
    for row in saved["rows"]:
        print(f"  {row['configuration']:>5} {row['estimator']:<8} {row['epochs_max']:6.1f} epochs"
              f"  test -ELBO {row['test_elbo']:8.2f}  -IW {row['test_iw']:8.2f}"
              f"  {row['seconds_per_step'] * 1e3:6.2f} ms/step")
    for row in saved["throughput"]:
        print(f"  throughput {row['configuration']}: gumbelkit/plain {row['ratio']:.3g} "
              f"[{row['ratio_low']:.3g}, {row['ratio_high']:.3g}]")
else:
    print("vae: no table (see the logs in the tarball)")
path = os.path.join(work, "poly-gr", "poly.json")
rows = []
if os.path.exists(path):
    with open(path) as handle:
        rows = json.load(handle)["rows"]
for row in rows:
    print(f"poly p={row['power']:g} {row['estimator']}: gap {row['gap']:.3g} "
          f"[{row['gap_low']:.3g}, {row['gap_high']:.3g}], train loss {row['train_last']:.4g}, "
          f"{row['seconds_per_step'] * 1e3:.3g} ms/step")
if not rows:
    print("poly: no table (see the logs in the tarball)")
PY
}

main() {
  say "bench-gpu: budget ${budget} s, --minutes ${minutes} per vae run, device ${DEVICE};" \
      "vae ${configurations[*]} x ${estimators[*]}; poly ${POLY_ESTIMATORS} at p = ${powers[*]}"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
  if ! "$PYTHON" -c 'import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda",
      torch.cuda.is_available())
sys.exit(sys.argv[1] == "cuda" and not torch.cuda.is_available())' "$DEVICE"; then
    say "torch sees no CUDA device: nothing run"
    return 3
  fi
  [ -e "$DATA_DIR" ] || say "warning: no $DATA_DIR: the vae runs will fail (carry .devdata)"
  trap interrupted INT TERM

  local configuration estimator power name
  for power in "${powers[@]}"; do
    name="poly-p$power"
    "${gumbelkit[@]}" bench poly --estimators "$POLY_ESTIMATORS" --powers "$power" \
      "${poly_config[@]}" --out "$poly_parts/$name" > "$WORK/logs/$name.log" 2>&1 &
    poly_pids[$name]=$!
  done
  for configuration in "${configurations[@]}"; do
    for estimator in "${estimators[@]}"; do
      name="vae-$configuration-$estimator"
      "${gumbelkit[@]}" bench vae --configurations "$configuration" --estimators "$estimator" \
        --no-throughput "${vae_config[@]}" --out "$vae_parts/$name" \
        > "$WORK/logs/$name.log" 2>&1 &
      vae_pids[$name]=$!
    done
  done
  say "started ${#vae_pids[@]} vae and ${#poly_pids[@]} poly processes"
  snapshot_loop &
  snapshots=$!

  finish vae_pids $((budget - FINAL_S))
  local done_parts=" $(recorded "$vae_parts" | tr '\n' ' ')"
  local complete=() all  # the estimators recorded in every configuration
  for estimator in "${estimators[@]}"; do
    all=1
    for configuration in "${configurations[@]}"; do
      [[ "$done_parts" == *" vae-$configuration-$estimator "* ]] || all=0
    done
    if [ "$all" = 1 ]; then complete+=("$estimator"); else say "not in vae.md: $estimator"; fi
  done
  merge_parts "$vae_parts" "$WORK/vae"
  if [ ${#complete[@]} -gt 0 ]; then
    say "vae: $(running "${poly_pids[@]}" | wc -l) poly process(es) running beside the throughput"
    table vae $((budget - 25)) --configurations "$(IFS=,; echo "${configurations[*]}")" \
      --estimators "$(IFS=,; echo "${complete[*]}")" "${vae_config[@]}" --out "$WORK/vae"
  fi

  finish poly_pids $((budget - 20))
  local done_powers=()
  for name in $(recorded "$poly_parts"); do done_powers+=("${name#poly-p}"); done
  merge_parts "$poly_parts" "$WORK/poly-gr"
  if [ ${#done_powers[@]} -gt 0 ]; then
    table poly $((budget - 6)) --estimators "$POLY_ESTIMATORS" \
      --powers "$(IFS=,; echo "${done_powers[*]}")" "${poly_config[@]}" --out "$WORK/poly-gr"
  fi

  touch "$stopped"
  wait "$snapshots"
  trap - INT TERM
  snapshot
  [ ! -f "$WORK/vae/vae.md" ] || cp "$WORK/vae/vae.md" "$OUT/vae.md"
  [ ! -f "$WORK/poly-gr/poly.md" ] || cp "$WORK/poly-gr/poly.md" "$OUT/poly-gr.md"
  echo
  say "== summary: --minutes ${minutes} per vae run, wall ${SECONDS} s of ${budget} s =="
  summary
  ls -l "$OUT"
}

# the log goes to $OUT too; tee outlives an interrupt, so that the last lines still reach it
main 2>&1 | { trap '' INT TERM; exec tee -a "$OUT/bench4.log"; }
exit "${PIPESTATUS[0]}"
