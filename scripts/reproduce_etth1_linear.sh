#!/usr/bin/env bash
# Reproduce the ETTh1 (M, H = 96) table of the linear family and the repeat baseline, 3 seeds,
# and write results/etth1_linear/{runs.csv,table.md}. Needs the ETT files under $ARCHZOO_DATA
# (`archzoo data download ett --dir data`). About 2 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA="${ARCHZOO_DATA:-data}"
cargo build --release --bin archzoo
bin=target/release/archzoo
out=runs/etth1_linear
dest=results/etth1_linear
mkdir -p "$dest"
for seed in 2021 2022 2023; do
  for arch in dlinear nlinear rlinear linear; do
    "$bin" train --arch "$arch" --data ETTh1 --preset ltsf --seq-len 336 --pred-len 96 --seed "$seed" --out "$out"
  done
  "$bin" train --arch dlinear --data ETTh1 --preset tslib --seq-len 96 --pred-len 96 --seed "$seed" --out "$out"
done
"$bin" train --arch repeat --data ETTh1 --preset ltsf --seq-len 336 --pred-len 96 --out "$out"
python3 scripts/summarize_runs.py "$out" "$dest"
