#!/usr/bin/env bash
# The committed efficiency run (issue 6): experiments/configs/efficiency.toml → results/efficiency/
# (scaling.csv, scaling.json with the measured configs, and the throughput, memory and decoding
# charts). Timings need a quiet machine: nothing else running, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN: a prebuilt archzoo.
if [ -z "${BIN:-}" ]; then
  cargo build --release --bin archzoo
fi
bin="${BIN:-target/release/archzoo}"
dest="results/efficiency"
mkdir -p "$dest"
"$bin" bench scaling --config experiments/configs/efficiency.toml --out "$dest/scaling.csv"
"$bin" plot "$dest" --out "$dest"
