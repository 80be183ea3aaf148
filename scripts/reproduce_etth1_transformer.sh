#!/usr/bin/env bash
# Reproduce the Transformer (PatchTST-style) ETTh1 (M) results of issue 3 and write
# results/etth1_transformer/{runs.csv,table.md}. Needs the ETT files under $ARCHZOO_DATA.
#   tslib preset, L = 96: H = 96 with seeds 2021-2023 (~5 min each on 2 cores), and
#   H = 192, 336, 720 with seed 2021.
#   patchtst preset, L = 336, H = 96 (100 epochs, ~1.5 h each on 2 cores): seeds in
#   $PATCHTST_SEEDS (default none; e.g. PATCHTST_SEEDS="2021 2022 2023"), $PATCHTST_JOBS at a
#   time (default 1). With more than one job each process runs on one thread: results do not
#   depend on the thread count (a 1-epoch run wrote identical forecasts with RAYON_NUM_THREADS
#   1 and 2), and separate processes keep both cores busier than one process's threads.
# Runs already in runs/etth1_transformer are skipped (train without --force), and a run that was
# killed resumes from its last epoch's checkpoint with the same numbers, so the script picks up
# where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA="${ARCHZOO_DATA:-data}"
cargo build --release --bin archzoo
bin=target/release/archzoo
out=runs/etth1_transformer
dest=results/etth1_transformer
mkdir -p "$dest"
for seed in 2021 2022 2023; do
  "$bin" train --arch transformer --data ETTh1 --preset tslib --pred-len 96 --seed "$seed" --out "$out"
done
for horizon in 192 336 720; do
  "$bin" train --arch transformer --data ETTh1 --preset tslib --pred-len "$horizon" --seed 2021 --out "$out"
done
jobs="${PATCHTST_JOBS:-1}"
threads=$([ "$jobs" -gt 1 ] && echo 1 || echo "${RAYON_NUM_THREADS:-0}")  # 0: rayon decides
for seed in ${PATCHTST_SEEDS:-}; do echo "$seed"; done |
  RAYON_NUM_THREADS="$threads" xargs -P "$jobs" -I{} \
    "$bin" train --arch transformer --data ETTh1 --preset patchtst --pred-len 96 --seed {} --out "$out"
python3 scripts/summarize_runs.py "$out" "$dest"
