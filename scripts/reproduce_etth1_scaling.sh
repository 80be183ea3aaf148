#!/usr/bin/env bash
# The committed reference scaling sweep (issue 6): experiments/configs/etth1_scaling.toml on
# ETTh1 (needs the ETT files under $ARCHZOO_DATA), then its leaderboard and charts.
# Writes results/etth1_scaling/: runs/ (each run's config, metrics, sampled forecasts and
# summary: the charts are drawn from these alone), ledger.csv, leaderboard.{md,csv} and the
# charts. The sweep resumes where it stopped if interrupted; SHARD=i/n runs one shard.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA="${ARCHZOO_DATA:-data}"
# BIN: a prebuilt archzoo (so a long sweep is not disturbed by rebuilds in this checkout).
if [ -z "${BIN:-}" ]; then
  cargo build --release --bin archzoo
fi
bin="${BIN:-target/release/archzoo}"
dest="results/etth1_scaling"
started=$(date +%s)
"$bin" sweep experiments/configs/etth1_scaling.toml --no-report --out "$dest/runs" ${SHARD:+--shard "$SHARD"}
echo "sweep wall time: $(( $(date +%s) - started )) s"
"$bin" report "$dest/runs" --out "$dest"
"$bin" plot "$dest/runs" --out "$dest"
