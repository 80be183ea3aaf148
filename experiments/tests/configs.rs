//! Every committed config reads: the sweep files expand into runs (a probe sweep's runs resolve
//! into their configs), the benchmark suites' cases parse as `archzoo bench` command lines. (Running them is what `results/` records.)

use std::path::{Path, PathBuf};
use std::process::Command;

use experiments::probe::ProbeRequest;
use experiments::probe_sweep::ProbePlan;
use experiments::sweep::{SweepFile, is_probe_sweep};

fn configs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {}", dir.display());
    files
}

#[test]
fn every_sweep_file_expands() {
    for file in configs("configs") {
        // efficiency.toml is a `bench scaling` spec, read by its own test.
        if file.file_name().is_some_and(|n| n == "efficiency.toml") {
            continue;
        }
        // A probe sweep (it sets `task`) resolves every run's config here: it needs no data.
        if is_probe_sweep(&file).unwrap() {
            let sweep: SweepFile<ProbeRequest> =
                SweepFile::load(&file).unwrap_or_else(|e| panic!("{e}"));
            let plan = ProbePlan::new(&sweep).unwrap_or_else(|e| panic!("{e}"));
            assert!(!plan.runs.is_empty(), "{}", file.display());
            continue;
        }
        let sweep: SweepFile = SweepFile::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let runs = sweep.requests().unwrap_or_else(|e| panic!("{e}"));
        assert!(!runs.is_empty(), "{}", file.display());
    }
}

#[test]
fn every_bench_suite_parses() {
    let out = std::env::temp_dir().join("archzoo-suite-dry-run");
    for file in configs("configs/bench") {
        let output = Command::new(env!("CARGO_BIN_EXE_archzoo"))
            .args(["bench", "suite", "--dry-run", "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!out.exists(), "a dry run writes nothing");
    }
}

/// results/README.md lists exactly the folders of results/ that hold results (a leaderboard, a
/// benchmark summary, a scaling table or a faithfulness table), and every config its commands name exists.
#[test]
fn results_readme_matches_the_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let results = root.join("results");
    let readme = std::fs::read_to_string(results.join("README.md")).expect("results/README.md");
    let mut listed = std::collections::BTreeSet::new();
    for row in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let folder = cells[1].trim_matches('`').to_string();
        for word in cells[2].split(['`', ' ', ',']) {
            if word.starts_with("experiments/configs/") {
                assert!(
                    root.join(word).exists(),
                    "results/README.md names {word}, which is missing"
                );
            }
        }
        listed.insert(folder);
    }
    let mut found = std::collections::BTreeSet::new();
    let mut stack = vec![results.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.join("summary.json").exists() {
                stack.push(path);
            }
        }
        let holds = [
            "leaderboard.md",
            "summary.md",
            "scaling.csv",
            "faithfulness.md",
        ];
        if holds.iter().any(|name| dir.join(name).exists()) {
            let relative = dir.strip_prefix(&results).unwrap();
            found.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    assert_eq!(
        listed, found,
        "results/README.md's table against the result folders"
    );
}
