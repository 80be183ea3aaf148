#!/usr/bin/env bash
# Fetch the four ETT-small CSVs into ${1:-data}/ETT-small, each verified against its pinned
# SHA-256 (files already present and correct are kept). Then: export ARCHZOO_DATA=${1:-data}
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --bin archzoo -- data download ett --dir "${1:-data}"
