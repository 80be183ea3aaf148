#!/usr/bin/env bash
# One sweep over a Slurm job array: task i of n runs shard i/n; all tasks write one output
# folder (runs are disjoint by id, each run directory is written atomically, and the ledger is
# rewritten atomically from the run directories), so the results merge by construction.
#   sbatch --array=0-7 scripts/slurm_sweep.sh experiments/configs/NAME.toml [OUT_DIR]
# With ARCHZOO_TIME_LIMIT=MINUTES (below the job's --time) each task pauses its run at an epoch
# boundary before Slurm would kill it; submitting the same array again resumes every shard.
# GNU parallel does the same without Slurm:
#   parallel -j 4 archzoo sweep FILE --shard {}/4 ::: 0 1 2 3
#SBATCH --job-name=archzoo-sweep
#SBATCH --cpus-per-task=2
#SBATCH --output=archzoo-sweep-%A_%a.log
set -euo pipefail
file="${1:?usage: sbatch --array=0-(N-1) scripts/slurm_sweep.sh SWEEP.toml [OUT_DIR]}"
out="${2:-runs/$(basename "${file%.toml}")}"
count="${SLURM_ARRAY_TASK_COUNT:?run as a job array (sbatch --array=0-(N-1))}"
index="${SLURM_ARRAY_TASK_ID:?run as a job array}"
# Arrays may start at an offset (--array=1-8): shards are 0-based.
index=$((index - ${SLURM_ARRAY_TASK_MIN:-0}))
bin="${ARCHZOO:-target/release/archzoo}"
exec "$bin" sweep "$file" --shard "$index/$count" --out "$out" \
  ${ARCHZOO_TIME_LIMIT:+--time-limit "$ARCHZOO_TIME_LIMIT"}
