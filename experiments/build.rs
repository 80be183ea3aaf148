//! Records the git commit the binary is built from, so every result names its code.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=ARCHZOO_GIT_COMMIT={commit}{suffix}");
    for path in [
        "../.git/HEAD",
        "../.git/index",
        "../architectures/src",
        "../datasets/src",
        "src",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
