//! What a result records about where it was produced: memory high-water mark, machine, commit.

/// Peak resident set size of this process in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// CPU model and logical core count, e.g. `AMD EPYC 9R14 (2 threads)`.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The CPU backends size their rayon pool from RAYON_NUM_THREADS when it is set.
    match std::env::var("RAYON_NUM_THREADS") {
        Ok(pool) => format!("{cpu} ({threads} threads, RAYON_NUM_THREADS={pool})"),
        Err(_) => format!("{cpu} ({threads} threads)"),
    }
}

/// Git commit the binary was built from (`-dirty` when the tree had changes), or `unknown`.
pub fn git_commit() -> &'static str {
    env!("ARCHZOO_GIT_COMMIT")
}
