//! The on-disk cache of compiled filters.
//!
//! Compiling a Docker-sized profile with libseccomp takes milliseconds; every container
//! of an engine usually has the same profile. The cache stores each compiled program
//! under a key that changes whenever the result could:
//!
//! ```text
//! key = sha256( "berth-seccomp-cache/1" ,
//!               crate version, libseccomp version, native architecture,
//!               kernel release (libseccomp probes the kernel for supported actions),
//!               canonical JSON of the profile )          each part length-prefixed
//! file = <cache_dir>/<hex key>.bpf                      0600, in a 0700 directory
//! ```
//!
//! Writes go to a temporary file in the same directory, then `rename(2)`, so readers see
//! either nothing or a whole file. Reads are bounded (header + 4096 instructions) and the
//! program is validated ([`CompiledFilter::from_bytes`]); anything wrong makes the entry
//! a miss, and the fresh compilation replaces it. No cache failure ever fails the
//! caller: the worst case is compiling as if there were no cache.
//!
//! The directory must be writable only by the runtime's user: whoever can write it can
//! choose the filter of every container. It is created 0700 when missing.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::filter::{CompiledFilter, INSTRUCTION_SIZE, MAX_INSTRUCTIONS};

/// Where a filter returned by [`compile_cached_with_outcome`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Read from a valid cache entry.
    Hit,
    /// Compiled; the cache entry was written.
    Stored,
    /// Compiled; the cache could not be used (no key, or the write failed).
    Uncached,
}

/// Compile `profile`, reusing and refreshing the cache in `cache_dir`.
pub(crate) fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter> {
    compile_cached_with_outcome(profile, cache_dir).map(|(filter, _)| filter)
}

pub(crate) fn compile_cached_with_outcome(
    profile: &LinuxSeccomp,
    cache_dir: &Path,
) -> Result<(CompiledFilter, Outcome)> {
    let Some(key) = cache_key(profile) else {
        return crate::compile::compile(profile).map(|f| (f, Outcome::Uncached));
    };
    let path = cache_dir.join(format!("{key}.bpf"));
    if let Some(filter) = read_entry(&path) {
        return Ok((filter, Outcome::Hit));
    }
    let filter = crate::compile::compile(profile)?;
    let outcome = match write_entry(cache_dir, &path, &filter.to_bytes()) {
        Ok(()) => Outcome::Stored,
        Err(_) => Outcome::Uncached,
    };
    Ok((filter, outcome))
}

/// The hex cache key of `profile`, or `None` when an input is unavailable.
pub(crate) fn cache_key(profile: &LinuxSeccomp) -> Option<String> {
    let json = serde_json::to_vec(profile).ok()?;
    let lib = libseccomp::ScmpVersion::current().ok()?;
    let lib = format!("{}.{}.{}", lib.major, lib.minor, lib.micro);
    let kernel = rustix::system::uname();
    let parts: [&[u8]; 6] = [
        b"berth-seccomp-cache/1",
        env!("CARGO_PKG_VERSION").as_bytes(),
        lib.as_bytes(),
        std::env::consts::ARCH.as_bytes(),
        kernel.release().to_bytes(),
        &json,
    ];
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
        hasher.update(part);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// A valid entry at `path`, or `None` (missing, not a regular file, too big, corrupt).
fn read_entry(path: &Path) -> Option<CompiledFilter> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let limit = INSTRUCTION_SIZE * (MAX_INSTRUCTIONS + 1);
    if !meta.is_file() || meta.len() > u64::try_from(limit).ok()? {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).ok()? + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    CompiledFilter::from_bytes(&bytes).ok()
}

/// `O_NOFOLLOW`: a symlink planted in the cache directory is not followed.
fn libc_o_nofollow() -> i32 {
    // rustix's OFlags bits are the kernel's; the cast is lossless on every Linux target.
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

/// Write `bytes` to `path` atomically (tmp file in the same directory + rename).
fn write_entry(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = temp_path(dir);
    let result = (|| {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_o_nofollow())
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A name no other writer (thread or process) uses at the same time.
fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(".tmp-{}-{n}-{nanos}.bpf", std::process::id()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSyscall};

    fn profile(name: &str) -> LinuxSeccomp {
        let mut rule = LinuxSyscall::default();
        rule.set_names(vec![name.to_owned()]);
        rule.set_action(LinuxSeccompAction::ScmpActErrno);
        let mut p = LinuxSeccomp::default();
        p.set_default_action(LinuxSeccompAction::ScmpActAllow);
        p.set_syscalls(Some(vec![rule]));
        p
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn key_depends_on_profile() {
        let a = cache_key(&profile("mount")).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(a, cache_key(&profile("mount")).unwrap());
        assert_ne!(a, cache_key(&profile("umount2")).unwrap());
    }

    #[test]
    fn miss_then_hit_returns_same_program() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let p = profile("mount");
        let (first, outcome) = compile_cached_with_outcome(&p, &dir).unwrap();
        assert_eq!(outcome, Outcome::Stored);
        let files = entries(&dir);
        assert_eq!(files.len(), 1, "no temporary file is left behind");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let (second, outcome) = compile_cached_with_outcome(&p, &dir).unwrap();
        assert_eq!(outcome, Outcome::Hit);
        assert_eq!(first, second);
        assert_eq!(first, crate::compile::compile(&p).unwrap());
    }

    #[test]
    fn corrupt_entries_are_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let p = profile("mount");
        let good = compile_cached(&p, dir).unwrap();
        let path = entries(dir).remove(0);
        let valid = fs::read(&path).unwrap();

        let corruptions: Vec<Vec<u8>> = vec![
            Vec::new(),
            valid[..valid.len() - 3].to_vec(),
            {
                let mut v = valid.clone();
                // Turn the last return into a load: the program no longer ends in a return.
                let at = v.len() - 8;
                v[at..at + 2].copy_from_slice(&0x20u16.to_ne_bytes());
                v
            },
            vec![0u8; INSTRUCTION_SIZE * (MAX_INSTRUCTIONS + 8)],
        ];
        for bad in corruptions {
            fs::write(&path, &bad).unwrap();
            let (filter, outcome) = compile_cached_with_outcome(&p, dir).unwrap();
            assert_eq!(outcome, Outcome::Stored);
            assert_eq!(filter, good);
            assert_eq!(fs::read(&path).unwrap(), valid);
        }

        // A symlink is not followed, and is replaced by a regular file.
        fs::remove_file(&path).unwrap();
        let target = tmp.path().join("elsewhere");
        fs::write(&target, &valid).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let (_, outcome) = compile_cached_with_outcome(&p, dir).unwrap();
        assert_eq!(outcome, Outcome::Stored);
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn unwritable_cache_still_compiles() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let (filter, outcome) = compile_cached_with_outcome(&profile("mount"), &file).unwrap();
        assert_eq!(outcome, Outcome::Uncached);
        assert!(!filter.program().is_empty());
    }
}
