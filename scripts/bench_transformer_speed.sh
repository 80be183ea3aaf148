#!/usr/bin/env bash
# Issue 3 speed gate: archzoo's Transformer training step against Time-Series-Library's PyTorch
# PatchTST at TSLib's ETTh1 script configuration (L=96, H=96, batch 32, 1 layer, 2 heads,
# d_model 512, d_ff 2048, patch 16, stride 8, dropout 0.1), interleaved round by round so that
# both see the same machine, plus the flex matmul rate measured in the same rounds.
# Writes results/transformer_speed/{bench.jsonl,summary.md}. Run on a quiet machine.
#   ROUNDS=5 STEPS=20 scripts/bench_transformer_speed.sh
# The PyTorch peer needs `python3 -c "import torch"` to work (pip install torch numpy); set
# PYTHON to another interpreter if needed. Without it only archzoo's numbers are recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
steps="${STEPS:-20}"
python="${PYTHON:-python3}"
cargo build --release --bin archzoo
bin=target/release/archzoo
dest=results/transformer_speed
mkdir -p "$dest"
: > "$dest/bench.jsonl"
config=(--seq-len 96 --pred-len 96 --batch 32 --layers 1 --heads 2 --d-model 512 --d-ff 2048
  --patch-len 16 --stride 8 --dropout 0.1)
have_torch=0
if "$python" -c "import torch" 2>/dev/null; then have_torch=1; else
  echo "no torch for $python: recording archzoo only" >&2
fi
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  "$bin" bench train-step --arch transformer "${config[@]}" --steps "$steps" --warmup 3 --json |
    jq -c '{kind: "archzoo", median_ms: .step.median_ms, min_ms: .step.min_ms, params, peak_rss_bytes, git_commit, machine}' >> "$dest/bench.jsonl"
  if [ "$have_torch" = 1 ]; then
    "$python" scripts/peers/patchtst_tslib_step.py --threads 2 --steps "$steps" --warmup 3 |
      jq -c '{kind: "pytorch", median_ms, min_ms, params, torch}' >> "$dest/bench.jsonl"
  fi
  "$bin" bench matmul --batch 1 --n 1024 --repeats 20 --json |
    jq -c '{kind: "matmul", median_ms: .time.median_ms, gflops}' >> "$dest/bench.jsonl"
done
"$python" - "$dest" <<'PY'
import json, statistics, sys
dest = sys.argv[1]
rows = [json.loads(l) for l in open(f"{dest}/bench.jsonl")]
def med(kind, key="median_ms"):
    v = [r[key] for r in rows if r["kind"] == kind]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
# Matmul FLOPs of one forward at this configuration (tokens T = b*c*n, n = 12 patches):
# patch embedding, q/k/v and output projections, attention scores and weighted values, the
# two feed-forward layers and the flatten head; a training step is ~3x the forward.
b, c, n, p, d, f, h, H = 32, 7, 12, 16, 512, 2048, 2, 96
T = b * c * n
forward = 2 * T * (p * d + 3 * d * d + d * d + 2 * d * f) + 2 * b * c * 2 * n * n * d + 2 * b * c * n * d * H
step_gflop = 3 * forward / 1e9
ours, torch, mm = med("archzoo"), med("pytorch"), med("matmul", "gflops")
lines = ["# Transformer training step at TSLib's PatchTST ETTh1 configuration", "",
         "Command: `scripts/bench_transformer_speed.sh` (rounds interleave archzoo, PyTorch and a flex matmul).", "",
         f"Matmul work per step: {step_gflop:.1f} GFLOP (3 x forward).", "",
         "| what | median of round medians | best round | worst round | rounds | achieved GFLOP/s |",
         "|---|---|---|---|---|---|"]
for name, m in [("archzoo (burn flex)", ours), ("TSLib PatchTST (PyTorch)", torch)]:
    if m:
        lines.append(f"| {name} | {m[0]:.0f} ms | {m[1]:.0f} ms | {m[2]:.0f} ms | {m[3]} | {step_gflop / m[0] * 1e3:.0f} |")
if mm:
    lines.append(f"| flex matmul 1024^3 | | | | {mm[3]} | {mm[0]:.0f} (best {mm[2]:.0f}) |")
if ours and torch:
    lines += ["", f"archzoo / PyTorch step time: {ours[0] / torch[0]:.2f}"]
if ours and mm:
    lines += [f"archzoo step rate / flex 1024^3 matmul rate: {step_gflop / ours[0] * 1e3 / mm[0]:.2f}"]
open(f"{dest}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
