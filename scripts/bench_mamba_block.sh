#!/usr/bin/env bash
# Issue 4's scan gate: one Mamba block (d_model 128, d_inner 256, d_state 16), batch 32, L = 256,
# forward + backward, with the fused selective scan, with the per-time-step reference scan, and
# its four projections alone (the floor); each in its own process so peak RSS is its own. Then
# the training step at TSLib's MambaSimple ETTh1 sizes through the patch adapter (default) and
# point-wise (one token per time step, as TSLib's model). Writes
# results/mamba_bench/{bench.jsonl,summary.md}. Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin archzoo
bin=target/release/archzoo
dest=results/mamba_bench
mkdir -p "$dest"
: > "$dest/bench.jsonl"
for path in fused projections; do
  "$bin" bench mamba-block --path "$path" --steps 10 --json |
    jq -c '{kind: ("block-" + .path), median_ms: .time.median_ms, peak_rss_bytes, git_commit, machine}' >> "$dest/bench.jsonl"
done
"$bin" bench mamba-block --path reference --steps 3 --warmup 1 --json |
  jq -c '{kind: ("block-" + .path), median_ms: .time.median_ms, peak_rss_bytes, git_commit, machine}' >> "$dest/bench.jsonl"
"$bin" bench train-step --arch mamba --steps 10 --json |
  jq -c '{kind: "train-step-patches", median_ms: .step.median_ms, params, peak_rss_bytes}' >> "$dest/bench.jsonl"
"$bin" bench train-step --arch mamba --patch-len 1 --stride 1 --steps 5 --warmup 1 --json |
  jq -c '{kind: "train-step-pointwise", median_ms: .step.median_ms, params, peak_rss_bytes}' >> "$dest/bench.jsonl"
{
  echo "# Mamba: fused scan, reference scan, projections floor, training steps"
  echo
  echo "Command: \`scripts/bench_mamba_block.sh\`."
  echo
  echo "| what | median ms | peak RSS MB |"
  echo "|---|---|---|"
  jq -r '"| \(.kind) | \(.median_ms * 10 | round / 10) | \(.peak_rss_bytes / 1e5 | round / 10) |"' "$dest/bench.jsonl"
  echo
  jq -rs 'map({(.kind): .median_ms}) | add | "fused vs reference scan: \((.["block-reference"] / .["block-fused"]) * 10 | round / 10)x faster; fused block / projections alone: \((.["block-fused"] / .["block-projections"]) * 100 | round / 100)x"' "$dest/bench.jsonl"
} > "$dest/summary.md"
cat "$dest/summary.md"
