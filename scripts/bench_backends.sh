#!/usr/bin/env bash
# Compare the CPU backends (flex, ndarray): the tslib DLinear run on ETTh1 end to end (3 runs
# each), its training step, and f32 matmuls of Transformer-like sizes. Writes
# results/backends/{runs.csv,bench.jsonl}. Run on a quiet machine (nothing compiling).
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA="${ARCHZOO_DATA:-data}"
cargo build --release --bin archzoo
bin=target/release/archzoo
dest=results/backends
out=runs/backends
mkdir -p "$dest"
: > "$dest/bench.jsonl"
for backend in flex ndarray; do
  for i in 1 2 3; do
    "$bin" train --arch dlinear --data ETTh1 --preset tslib --backend "$backend" --out "$out/$i" --force
  done
  "$bin" bench train-step --arch dlinear --seq-len 96 --pred-len 96 --batch 32 --steps 100 --warmup 10 \
    --backend "$backend" --json | jq -c . >> "$dest/bench.jsonl"
  for shape in "1 1024" "4 1024" "8 512" "32 96"; do
    set -- $shape
    "$bin" bench matmul --backend "$backend" --batch "$1" --n "$2" --repeats 20 --json | jq -c . >> "$dest/bench.jsonl"
  done
done
jq -r '[.backend, .run_id, .test_mse, .epochs_run, .wall_seconds, .peak_rss_bytes] | @csv' \
  "$out"/*/*/summary.json > "$dest/runs.csv"
echo "end-to-end DLinear tslib ETTh1 (backend, run, test_mse, epochs, wall s, peak RSS bytes):"
cat "$dest/runs.csv"
echo "train step and matmuls:"
jq -r 'if .step then "\(.backend) dlinear train-step median \(.step.median_ms) ms" else "\(.backend) matmul \(.batch)x\(.n)^3: \(.gflops) GFLOP/s" end' "$dest/bench.jsonl"
