#!/usr/bin/env bash
# What CI runs: the test suite (the README's test command), formatting, clippy, and a clippy
# pass over the wgpu build.
# Tests that need ETT read it from $ARCHZOO_DATA (default ../shared/datasets); they are ignored
# (with the reason) unless run with --include-ignored, as here.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA="${ARCHZOO_DATA:-../shared/datasets}"

# `check.sh lint` skips the tests (.ci/run runs them itself first).
if [ "${1:-all}" != lint ]; then
  echo "== cargo test --release --workspace -- --include-ignored"
  cargo test --release --workspace -- --include-ignored
fi

# Run folders belong under results/ (committed reference runs) or in an ignored runs/ folder.
echo "== no run folder committed outside results/"
stray=$(git ls-files | grep -E '(^|/)(summary\.json|metrics\.jsonl|checkpoint/state\.json)$' | grep -v '^results/' || true)
if [ -n "$stray" ]; then
  echo "run files committed outside results/:"
  echo "$stray"
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings

# The GPU backend must keep compiling: check it (no codegen) with its feature on.
echo "== cargo clippy --features experiments/wgpu -- -D warnings"
cargo clippy --release --workspace --features experiments/wgpu -- -D warnings
