#!/usr/bin/env bash
# Rebuild experiments/assets/DejaVuSans-subset.ttf, the font the PNG charts rasterise text with
# (embedded in the binary, so charts need no system fonts): DejaVu Sans cut down to Basic Latin,
# Latin-1 (±, ×, ², µ, ·), Greek, dashes, arrows and the math signs the chart labels use.
# Needs fontTools (`pip install fonttools`) and DejaVu Sans (Debian: fonts-dejavu-core).
set -euo pipefail
cd "$(dirname "$0")/.."
src="${DEJAVU_SANS:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}"
pyftsubset "$src" \
  --unicodes="U+0020-007E,U+00A0-00FF,U+0391-03C9,U+2013-2014,U+2026,U+2190-2193,U+2212,U+2248,U+2264-2265" \
  --layout-features='*' --no-hinting --desubroutinize \
  --output-file=experiments/assets/DejaVuSans-subset.ttf
