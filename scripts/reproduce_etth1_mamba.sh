#!/usr/bin/env bash
# Mamba behind the patch adapter on ETTh1 (M), preset tslib (L = 96), registry default size
# (TSLib MambaSimple's: d_model 128, 2 layers, d_state 16, expand 2); writes
# results/etth1_mamba/{runs.csv,table.md}. Needs the ETT files under $ARCHZOO_DATA.
#   SEEDS (default "2021 2022 2023") at H = 96; HORIZONS (default "192 336 720") with seed 2021;
#   LRS (default "1e-3"): stability runs at H = 96, seed 2021, with that learning rate (the
#   preset's is 1e-4); a run whose loss turns NaN or inf stops with an error, so a finished run
#   is the evidence.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA="${ARCHZOO_DATA:-data}"
# BIN: a prebuilt archzoo (so a long run is not disturbed by rebuilds in this checkout).
if [ -z "${BIN:-}" ]; then
  cargo build --release --bin archzoo
fi
bin="${BIN:-target/release/archzoo}"
out=runs/etth1_mamba
dest=results/etth1_mamba
mkdir -p "$dest"
for seed in ${SEEDS-2021 2022 2023}; do
  "$bin" train --arch mamba --data ETTh1 --preset tslib --pred-len 96 --seed "$seed" --out "$out"
done
for lr in ${LRS-1e-3}; do
  "$bin" train --arch mamba --data ETTh1 --preset tslib --pred-len 96 --seed 2021 --lr "$lr" --out "$out"
done
for horizon in ${HORIZONS-192 336 720}; do
  "$bin" train --arch mamba --data ETTh1 --preset tslib --pred-len "$horizon" --seed 2021 --out "$out"
done
python3 scripts/summarize_runs.py "$out" "$dest"
