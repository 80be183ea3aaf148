#!/usr/bin/env bash
# Reproduce the Transformer (PatchTST-style) ETTh1 (M) results of issue 3 and write
# results/etth1_transformer/{runs.csv,table.md}. Needs the ETT files under $ARCHZOO_DATA.
#   tslib preset, L = 96: H = 96 with seeds 2021-2023 (~5 min each on 2 cores), and
#   H = 192, 336, 720 with seed 2021.
#   patchtst preset, L = 336, H = 96 (100 epochs, ~1-2 h each on 2 cores): seeds in
#   $PATCHTST_SEEDS (default none; e.g. PATCHTST_SEEDS="2021 2022 2023").
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
for seed in ${PATCHTST_SEEDS:-}; do
  "$bin" train --arch transformer --data ETTh1 --preset patchtst --pred-len 96 --seed "$seed" --out "$out"
done
python3 scripts/summarize_runs.py "$out" "$dest"
