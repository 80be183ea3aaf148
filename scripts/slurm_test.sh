#!/usr/bin/env bash
# The scale-out path under a real scheduler: install Slurm from Debian's packages (slurmctld,
# slurmd, munge), start a one-node cluster on localhost, submit a sweep as a job array through
# scripts/slurm_sweep.sh, wait, and check that the merged output equals the unsharded sweep's:
# the same run ids, the same test MSE bit for bit (summary.json writes the shortest decimal that
# round-trips, so equal text is equal bits), one leaderboard with the same rows.
#
#   scripts/slurm_test.sh [ARCHZOO_BINARY]     (root; .ci/run runs it after the tests)
#
# Skips with the reason, exit 0, only where Slurm cannot be installed (not root, no apt-get, no
# package registry). Everything else that goes wrong fails. The daemons run from a temporary
# folder with their own slurm.conf and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin="$(realpath "${1:-target/release/archzoo}")"
started=$(date +%s)

skip() {
  echo "slurm test: SKIPPED: $*"
  exit 0
}

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  [ "$(id -u)" = 0 ] || skip "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
  echo "slurm test: installing slurmctld, slurmd, slurm-client, munge from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1; }; }; then
    skip "apt-get could not install slurmctld, slurmd, slurm-client and munge"
  fi
fi
[ -x "$bin" ] || { echo "slurm test: $bin is not built (cargo build --release --workspace)"; exit 1; }

work=$(mktemp -d /tmp/archzoo-slurm.XXXXXX)
chmod 755 "$work"
conf="$work/slurm.conf"
export SLURM_CONF="$conf"
cleanup() {
  status=$?
  for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid" "$work/munged.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  if [ "$status" != 0 ]; then
    echo "slurm test: FAILED; daemon logs follow"
    tail -n 30 "$work"/*.log 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# munge: the package's key, or a fresh one; the daemon on its own socket in the work folder.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
if ! munge -n >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file="$work/munged.pid" --log-file="$work/munged.log" 2>/dev/null ||
      munged --force --pid-file="$work/munged.pid" --log-file="$work/munged.log"
  else
    munged --force --pid-file="$work/munged.pid" --log-file="$work/munged.log"
  fi
fi
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null || { echo "slurm test: munge does not authenticate"; exit 1; }

node=$(hostname -s)
cpus=$(nproc)
mkdir -p "$work/state" "$work/spool"
cat >"$conf" <<EOF
ClusterName=archzoo-ci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 100); do
  state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.3
done
[ "$state" = idle ] || { echo "slurm test: the node did not come up (state '$state')"; exit 1; }
echo "slurm test: one-node cluster up ($node, $cpus CPUs, Slurm $(sinfo -V | awk '{print $2}'))"

# A sweep of six short runs on the built-in series: two shards of three.
sweep="$work/sweep.toml"
cat >"$sweep" <<'EOF'
description = "slurm test: shards of a job array merge into the unsharded sweep"
arch = ["dlinear", "nlinear", "rlinear"]
data = "synthetic"
seq_len = 48
pred_len = 12
preset = "tslib"
epochs = 2
seed = [1, 2]
EOF
"$bin" sweep "$sweep" --out "$work/whole" >"$work/whole.log" 2>&1 ||
  { cat "$work/whole.log"; exit 1; }

mkdir -p "$work/array"
chmod 777 "$work/array"
# Bounded: a cluster that never starts the tasks fails the test instead of hanging CI.
if ! ARCHZOO="$bin" timeout 600 sbatch --wait --array=0-1 --chdir="$repo" --cpus-per-task=1 \
  --output="$work/array-%a.log" scripts/slurm_sweep.sh "$sweep" "$work/array" >"$work/sbatch.out"; then
  echo "slurm test: the job array did not finish within 10 minutes, or a task failed"
  squeue 2>/dev/null || true
  exit 1
fi
job=$(awk '{print $NF}' "$work/sbatch.out")
echo "slurm test: job array $job (2 tasks) finished"

# What each folder holds: run id and test MSE text, sorted by run id.
runs() {
  for summary in "$1"/*/summary.json; do
    printf '%s %s\n' "$(basename "$(dirname "$summary")")" "$(grep -m1 '"test_mse"' "$summary" | tr -d ' ,')"
  done | sort
}
whole=$(runs "$work/whole")
array=$(runs "$work/array")
[ "$(echo "$whole" | wc -l)" = 6 ] || { echo "slurm test: the unsharded sweep wrote $(echo "$whole" | wc -l) runs, not 6"; exit 1; }
if [ "$whole" != "$array" ]; then
  echo "slurm test: the job array's runs differ from the unsharded sweep's"
  diff <(echo "$whole") <(echo "$array") || true
  exit 1
fi
for task in 0 1; do
  grep -q "" "$work/array-$task.log" || { echo "slurm test: task $task left no log"; exit 1; }
done
# One leaderboard over all six runs, equal to the unsharded one except for the timing column.
leaderboards=$(find "$work/array" -name leaderboard.csv | wc -l)
[ "$leaderboards" = 1 ] || { echo "slurm test: $leaderboards leaderboards in the merged folder"; exit 1; }
without_time() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "train_seconds_median") skip = i }
           { line = ""; for (i = 1; i <= NF; i++) if (i != skip) line = line (line == "" ? "" : ",") $i; print line }' "$1"
}
if [ "$(without_time "$work/whole/leaderboard.csv")" != "$(without_time "$work/array/leaderboard.csv")" ]; then
  echo "slurm test: the merged leaderboard differs from the unsharded one"
  diff <(without_time "$work/whole/leaderboard.csv") <(without_time "$work/array/leaderboard.csv") || true
  exit 1
fi
echo "slurm test: passed in $(($(date +%s) - started)) s: 6 runs in 2 array tasks, the same run ids and test MSE bit for bit as the unsharded sweep, one leaderboard"
