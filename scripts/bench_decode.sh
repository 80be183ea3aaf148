#!/usr/bin/env bash
# Recurrent `step` decoding latency against position (inference, batch 1): the Transformer's KV
# cache (causal, rotary, registry default size) and Mamba (registry default size), positions 64,
# 256, 1024 and 8192. Writes results/decode/{bench.jsonl,summary.md}. Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin archzoo
bin=target/release/archzoo
dest=results/decode
mkdir -p "$dest"
: > "$dest/bench.jsonl"
"$bin" bench decode --arch transformer --causal --positions 64,256,1024,8192 --json | jq -c . >> "$dest/bench.jsonl"
"$bin" bench decode --arch mamba --positions 64,256,1024,8192 --json | jq -c . >> "$dest/bench.jsonl"
{
  echo "# Step decoding latency (batch 1; median of the 9 steps ending at each position, each window decoded 5 times)"
  echo
  echo "Command: \`scripts/bench_decode.sh\`."
  echo
  echo "| arch | width | params | position | ms per step | state floats |"
  echo "|---|---|---|---|---|---|"
  jq -r '. as $r | .positions[] | "| \($r.arch) | \($r.width) | \($r.params) | \(.position) | \(.step.median_ms * 1000 | round / 1000) | \(.state_floats) |"' "$dest/bench.jsonl"
} > "$dest/summary.md"
cat "$dest/summary.md"
