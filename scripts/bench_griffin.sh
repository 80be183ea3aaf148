#!/usr/bin/env bash
# Issue 5's cost gates, on a quiet machine:
# - training step (forward + backward + Adam) at d_model 128, L = H = 96, batch 32, ETT's 7
#   channels through the patch adapter: griffin (3 residual blocks = one [rec, rec, att]
#   pattern), hawk (3 recurrent blocks) and mamba with 3 layers, interleaved round by round
#   (ROUNDS, default 5; STEPS timed steps each, default 10) because this VM's speed drifts;
# - step decoding latency (batch 1) at positions 64, 1024 and 8192 with the default window
#   1024 and with window 64, where the ring of keys stops growing.
# Writes results/griffin_bench/{train_step.jsonl,decode.jsonl,summary.md}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin archzoo
bin=target/release/archzoo
dest=results/griffin_bench
mkdir -p "$dest"
: > "$dest/train_step.jsonl"
for round in $(seq "${ROUNDS:-5}"); do
  for arch in griffin hawk mamba; do
    "$bin" bench train-step --arch "$arch" --layers 3 --steps "${STEPS:-10}" --json |
      jq -c --arg arch "$arch" --argjson round "$round" \
        '{arch: $arch, round: $round, median_ms: .step.median_ms, params, peak_rss_bytes, git_commit}' \
        >> "$dest/train_step.jsonl"
  done
done
: > "$dest/decode.jsonl"
"$bin" bench decode --arch griffin --positions 64,1024,8192 --json | jq -c '. + {window: 1024}' >> "$dest/decode.jsonl"
"$bin" bench decode --arch griffin --window 64 --positions 64,1024,8192 --json | jq -c '. + {window: 64}' >> "$dest/decode.jsonl"
"$bin" bench decode --arch hawk --positions 64,1024,8192 --json | jq -c '. + {window: null}' >> "$dest/decode.jsonl"
{
  echo "# Griffin, Hawk and Mamba: training step and step decoding"
  echo
  echo "Command: \`ROUNDS=${ROUNDS:-5} STEPS=${STEPS:-10} scripts/bench_griffin.sh\`."
  echo
  echo "Training step, d_model 128, 3 blocks, L = H = 96, batch 32, 7 channels, patches 16/8:"
  echo "median over rounds of each round's median step."
  echo
  echo "| arch | params | median ms | rounds (ms) | peak RSS MB |"
  echo "|---|---|---|---|---|"
  jq -rs 'group_by(.arch)[] | (map(.median_ms) | sort) as $ms |
    "| \(.[0].arch) | \(.[0].params) | \($ms[($ms | length) / 2 | floor] * 10 | round / 10) | \(map(.median_ms * 10 | round / 10 | tostring) | join(", ")) | \(map(.peak_rss_bytes) | max / 1e5 | round / 10) |"' \
    "$dest/train_step.jsonl"
  echo
  jq -rs 'def med: sort | .[length / 2 | floor];
    group_by(.round) | map(map({key: .arch, value: .median_ms}) | from_entries) |
    "griffin / mamba per round: \(map(.griffin / .mamba * 100 | round / 100 | tostring) | join(", ")) (median \(map(.griffin / .mamba) | med * 100 | round / 100)); hawk / mamba median \(map(.hawk / .mamba) | med * 100 | round / 100)"' \
    "$dest/train_step.jsonl"
  echo
  echo "Step decoding (batch 1, median of the 9 steps ending at each position):"
  echo
  echo "| arch | window | position | ms per step | state floats |"
  echo "|---|---|---|---|---|"
  jq -r '. as $r | .positions[] | "| \($r.arch) | \($r.window // "-") | \(.position) | \(.step.median_ms * 1000 | round / 1000) | \(.state_floats) |"' "$dest/decode.jsonl"
} > "$dest/summary.md"
cat "$dest/summary.md"
