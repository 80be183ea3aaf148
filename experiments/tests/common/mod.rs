//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared ETT folder: `$ARCHZOO_DATA` (relative paths are taken from the workspace root, as
/// CI sets it) or `../shared/datasets` beside the checkout. The tests that read it are
/// `#[ignore = "needs the ETT CSVs …"]`: `cargo test` on a machine without them reports them as
/// ignored, not passed; `-- --include-ignored` (what CI runs, with `../shared` beside the
/// checkout) runs them, and they fail if the files are missing.
///
/// # Panics
///
/// When the ETT files are absent: a test that needs them was asked to run.
pub fn ett_dir() -> PathBuf {
    let dir = match std::env::var_os("ARCHZOO_DATA") {
        Some(v) if Path::new(&v).is_absolute() => PathBuf::from(v),
        Some(v) => workspace().join(v),
        None => workspace().join("../shared/datasets"),
    };
    assert!(
        dir.join("ETT-small/ETTh1.csv").exists(),
        "ETT data not found at {} (set ARCHZOO_DATA to the folder holding ETT-small/)",
        dir.display()
    );
    dir
}

/// Run the `archzoo` binary.
pub fn archzoo(args: &[&str], data_dir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_archzoo"));
    command.args(args);
    match data_dir {
        Some(dir) => command.env("ARCHZOO_DATA", dir),
        None => command.env_remove("ARCHZOO_DATA"),
    };
    command.output().expect("archzoo runs")
}

/// `archzoo train` on the synthetic series at L = 48, H = 24 into `out`, with `args` (the
/// architecture, epochs and any other flags).
pub fn train_synthetic(out: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "train",
        "--data",
        "synthetic",
        "--seq-len",
        "48",
        "--pred-len",
        "24",
        "--out",
        out.to_str().expect("UTF-8 path"),
    ];
    all.extend_from_slice(args);
    archzoo(&all, None)
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Read a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("valid JSON")
}

/// The only run directory under `out`.
pub fn single_run(out: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out exists")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "expected one run in {}: {runs:?}",
        out.display()
    );
    runs.into_iter().next().unwrap()
}

/// A fresh directory under the system temp folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Create a [`TempDir`] (std only: a dev-dependency would split burn's feature set between
/// `cargo build` and `cargo test` and rebuild it).
pub fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "archzoo-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// A run's `metrics.jsonl` without the wall-clock field, which no two runs share.
pub fn metrics_without_seconds(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            record.as_object_mut().unwrap().remove("seconds");
            record
        })
        .collect()
}
