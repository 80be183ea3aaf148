"""Collect the summary.json files under a runs folder into runs.csv and a mean ± std table.

Usage: python3 scripts/summarize_runs.py RUNS_DIR DEST_DIR [--keep]
(Stand-in until `archzoo report` exists; reads only what the runs wrote.)

--keep also keeps the rows of DEST_DIR/runs.csv whose run folders are not under RUNS_DIR (runs
made on another machine or in an earlier checkout, whose folders are gone); a run found under
RUNS_DIR replaces its old row. Without it, runs.csv holds exactly the runs under RUNS_DIR.
"""
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

args = [a for a in sys.argv[1:] if a != "--keep"]
if len(args) != 2:
    sys.exit(__doc__)
runs_dir, dest = Path(args[0]), Path(args[1])
keep = "--keep" in sys.argv[1:]

def load(summary):
    row = json.loads(summary.read_text())
    config = summary.with_name("config.json")
    # The learning rate actually used (a preset's, or --lr): runs at another rate are their own group.
    row["lr"] = json.loads(config.read_text())["train"]["lr"] if config.exists() else None
    # Epochs after which a run resumed from its checkpoint (same numbers as one go; provenance).
    row["resumed_after_epochs"] = " ".join(map(str, row.get("resumed_after_epochs", [])))
    return row


fields = ["run_id", "arch", "dataset", "seq_len", "pred_len", "features", "preset", "lr", "seed",
          "test_mse", "test_mae", "val_mse", "n_test_windows", "params", "epochs_run",
          "best_epoch", "wall_seconds", "peak_rss_bytes", "backend", "git_commit",
          "resumed_after_epochs"]
INTS = {"seq_len", "pred_len", "seed", "n_test_windows", "params", "epochs_run", "best_epoch",
        "peak_rss_bytes"}
FLOATS = {"lr", "test_mse", "test_mae", "val_mse", "wall_seconds"}


def kept(row):
    """A runs.csv row back in summary.json's types (csv reads every cell as a string)."""
    for k in INTS & row.keys():
        row[k] = int(row[k]) if row[k] else None
    for k in FLOATS & row.keys():
        row[k] = float(row[k]) if row[k] else None
    return row


rows = {r["run_id"]: r for r in map(load, sorted(runs_dir.glob("*/summary.json")))}
if keep and (dest / "runs.csv").exists():
    with open(dest / "runs.csv", newline="") as f:
        old = [kept(r) for r in csv.DictReader(f) if r["run_id"] not in rows]
    rows.update((r["run_id"], r) for r in old)
rows = sorted(rows.values(), key=lambda r: r["run_id"])
with open(dest / "runs.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)

groups = defaultdict(list)
for r in rows:
    groups[(r["arch"], r["preset"], r["seq_len"], r["pred_len"], r["lr"] or 0.0)].append(r)

def ms(values):
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

lines = ["| arch | preset | L | H | lr | seeds | test MSE | test MAE | epochs | wall s (median) | peak RSS MB (max) |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
for (arch, preset, l, h, lr), rs in sorted(groups.items()):
    lines.append(
        f"| {arch} | {preset} | {l} | {h} | {lr:g} | {', '.join(str(r['seed']) for r in rs)} | "
        f"{ms([r['test_mse'] for r in rs])} | {ms([r['test_mae'] for r in rs])} | "
        f"{', '.join(str(r['epochs_run']) for r in rs)} | "
        f"{statistics.median(r['wall_seconds'] for r in rs):.1f} | "
        f"{max(r['peak_rss_bytes'] or 0 for r in rs) / 1e6:.0f} |")
(dest / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
