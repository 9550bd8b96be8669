//! The per-process scratch directory of the targets that write files (included with
//! `#[path]` by each of them: every target is its own binary).

use std::path::PathBuf;

/// `$BERTH_FUZZ_SCRATCH` (default `/dev/shm`) / `berth-fuzz-<tag>-<pid>`, emptied and
/// created fresh.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let base = std::env::var_os("BERTH_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let dir = base.join(format!("berth-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
