#!/usr/bin/env bash
# Issue 4's scan gate: one Mamba block (d_model 128, d_inner 256, d_state 16), batch 32, L = 256,
# forward + backward, with the fused selective scan, with the per-time-step reference scan, and
# its four projections alone (the floor); each in its own process so peak RSS is its own. Then
# the training step at TSLib's MambaSimple ETTh1 sizes through the patch adapter (default) and
# point-wise (one token per time step, as TSLib's model). Run on a quiet machine.
# $ROUNDS rounds (default 5) each measure everything once, so the fused and reference figures of
# a ratio are taken minutes apart at most; the summary gives, per measurement, the median over
# rounds and the range, and the median of the per-round ratios. Writes
# results/mamba_bench/{bench.jsonl,summary.md} (one line per measurement per round).
#   ROUNDS=5 scripts/bench_mamba_block.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
cargo build --release --bin archzoo
bin=target/release/archzoo
dest=results/mamba_bench
mkdir -p "$dest"
: > "$dest/bench.jsonl"
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  for path in fused projections; do
    "$bin" bench mamba-block --path "$path" --steps 10 --json |
      jq -c --argjson round "$round" '{round: $round, kind: ("block-" + .path), median_ms: .time.median_ms, peak_rss_bytes, git_commit, machine}' >> "$dest/bench.jsonl"
  done
  "$bin" bench mamba-block --path reference --steps 3 --warmup 1 --json |
    jq -c --argjson round "$round" '{round: $round, kind: ("block-" + .path), median_ms: .time.median_ms, peak_rss_bytes, git_commit, machine}' >> "$dest/bench.jsonl"
  "$bin" bench train-step --arch mamba --steps 10 --json |
    jq -c --argjson round "$round" '{round: $round, kind: "train-step-patches", median_ms: .step.median_ms, params, peak_rss_bytes}' >> "$dest/bench.jsonl"
  "$bin" bench train-step --arch mamba --patch-len 1 --stride 1 --steps 5 --warmup 1 --json |
    jq -c --argjson round "$round" '{round: $round, kind: "train-step-pointwise", median_ms: .step.median_ms, params, peak_rss_bytes}' >> "$dest/bench.jsonl"
done
python3 - "$dest" "$rounds" <<'PY'
import json, statistics, sys
dest, rounds = sys.argv[1], int(sys.argv[2])
rows = [json.loads(line) for line in open(f"{dest}/bench.jsonl")]
kinds = list(dict.fromkeys(r["kind"] for r in rows))
by = {(r["round"], r["kind"]): r for r in rows}
lines = ["# Mamba: fused scan, reference scan, projections floor, training steps", "",
         f"Command: `ROUNDS={rounds} scripts/bench_mamba_block.sh` (commit {rows[0]['git_commit']}).", "",
         "| what | median over rounds, ms | range, ms | peak RSS MB (max) |", "|---|---|---|---|"]
for kind in kinds:
    ms = [r["median_ms"] for r in rows if r["kind"] == kind]
    rss = max(r["peak_rss_bytes"] for r in rows if r["kind"] == kind) / 1e6
    lines.append(f"| {kind} | {statistics.median(ms):.1f} | {min(ms):.1f}–{max(ms):.1f} | {rss:.1f} |")
def ratios(num, den):
    return [by[(i, num)]["median_ms"] / by[(i, den)]["median_ms"] for i in range(1, rounds + 1)]
speedup, floor = ratios("block-reference", "block-fused"), ratios("block-fused", "block-projections")
lines += ["", f"fused vs reference scan, per round: {', '.join(f'{x:.1f}x' for x in speedup)}; "
          f"median **{statistics.median(speedup):.1f}x** faster",
          f"fused block / projections alone, per round: {', '.join(f'{x:.2f}' for x in floor)}; "
          f"median {statistics.median(floor):.2f}"]
open(f"{dest}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
