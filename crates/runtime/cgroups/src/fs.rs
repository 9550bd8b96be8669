//! Reading and writing cgroup control files.
//!
//! Every write opens the file with `O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW` (never
//! `O_CREAT`:
//! a control file that does not exist means the kernel lacks the feature, and creating a
//! regular file in its place would hide that), issues exactly one `write(2)` (the kernel
//! parses each write separately) and checks that the whole value was taken. Errors carry
//! the file path and the value.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};

/// Upper bound for reading one control file (`memory.stat` is a few KiB; `cgroup.procs`
/// of a cgroup with a hundred thousand processes is under 1 MiB).
const MAX_READ: u64 = 16 << 20;

/// Whether `name` is a plain file name (no separator, not `.`/`..`, no control bytes).
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.bytes().any(|b| b.is_ascii_control())
}

/// Write `value` to the control file `name` in `dir`.
pub(crate) fn write(dir: &Path, name: &str, value: &str) -> Result<()> {
    let path = dir.join(name);
    if !is_plain_name(name) {
        return Err(Error::WriteFile {
            path,
            value: value.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    // O_TRUNC means nothing to cgroupfs (like `echo v > file`); it makes fake trees of
    // regular files keep exactly the last value.
    let flags = OFlags::WRONLY | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::open(&path, flags, Mode::empty()).map_err(|e| Error::WriteFile {
        path: path.clone(),
        value: value.to_owned(),
        source: e.into(),
    })?;
    let written = rustix::io::write(&fd, value.as_bytes()).map_err(|e| Error::WriteFile {
        path: path.clone(),
        value: value.to_owned(),
        source: e.into(),
    })?;
    if written != value.len() {
        return Err(Error::ShortWrite {
            path,
            value: value.to_owned(),
            written,
        });
    }
    Ok(())
}

/// Read the control file `name` in `dir`.
pub(crate) fn read(dir: &Path, name: &str) -> Result<String> {
    read_path(&dir.join(name))
}

/// Read a whole file (bounded).
pub(crate) fn read_path(path: &Path) -> Result<String> {
    use std::io::Read;
    let err = |source| Error::ReadFile {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_READ)
        .read_to_string(&mut text)
        .map_err(err)?;
    Ok(text)
}

/// Read a control file, `None` when it does not exist.
pub(crate) fn read_optional(dir: &Path, name: &str) -> Result<Option<String>> {
    match read(dir, name) {
        Ok(text) => Ok(Some(text)),
        Err(Error::ReadFile { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether the control file `name` exists in `dir`.
pub(crate) fn exists(dir: &Path, name: &str) -> bool {
    is_plain_name(name) && dir.join(name).symlink_metadata().is_ok()
}

/// Parse a file holding one unsigned number (or "max", read as `u64::MAX`).
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| parse_error(path, text))
}

/// Read a file holding one number, `None` when the file does not exist.
pub(crate) fn read_u64(dir: &Path, name: &str) -> Result<Option<u64>> {
    match read_optional(dir, name)? {
        Some(text) => parse_u64(&dir.join(name), &text).map(Some),
        None => Ok(None),
    }
}

/// A [`Error::ParseFile`] for `text` read from `path`.
pub(crate) fn parse_error(path: &Path, text: &str) -> Error {
    Error::ParseFile {
        path: path.to_owned(),
        content: text.chars().take(200).collect(),
    }
}

/// Iterate the `key value` lines of a flat-keyed file (`memory.stat`, `cpu.stat`...),
/// skipping lines whose value is not a number.
pub(crate) fn flat_keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let mut parts = line.split_whitespace();
        let key = parts.next()?;
        let value = parts.next()?.parse().ok()?;
        Some((key, value))
    })
}

/// The value of `key` in a flat-keyed file.
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    flat_keyed(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Create `dir` and its missing parents. Returns the directories created, top first.
pub(crate) fn mkdir_all(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.symlink_metadata().is_ok() {
            break;
        }
        missing.push(d.to_owned());
        cur = d.parent();
    }
    missing.reverse();
    for d in &missing {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::CreateDir {
                    path: d.clone(),
                    source,
                })
            }
        }
    }
    match dir.symlink_metadata() {
        Ok(meta) if meta.is_dir() => Ok(missing),
        Ok(_) => Err(Error::CreateDir {
            path: dir.to_owned(),
            source: std::io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
        }),
        Err(source) => Err(Error::CreateDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Call `check` until it returns `Some`, sleeping a little longer between attempts, for
/// at most `limit`. Returns `None` on timeout.
pub(crate) fn poll<T>(
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if start.elapsed() >= limit {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Write `value` to `file` if the kernel has it, else report the feature as missing.
pub(crate) fn optional_write(
    dir: &Path,
    file: &str,
    resource: &'static str,
    value: &str,
) -> Result<()> {
    if !exists(dir, file) {
        return Err(Error::FileUnavailable {
            resource,
            file: file.to_owned(),
        });
    }
    write(dir, file, value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn write_needs_existing_file_and_plain_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), "pids.max", "5").unwrap_err();
        assert!(matches!(err, Error::WriteFile { .. }));
        assert!(err.to_string().contains("pids.max"));
        std::fs::write(dir.path().join("pids.max"), "").unwrap();
        write(dir.path(), "pids.max", "5").unwrap();
        assert_eq!(read(dir.path(), "pids.max").unwrap(), "5");
        assert!(write(dir.path(), "../pids.max", "5").is_err());
        assert!(write(dir.path(), "..", "5").is_err());
    }

    #[test]
    fn write_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("target"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link")).unwrap();
        assert!(write(dir.path(), "link", "1").is_err());
        assert_eq!(read(dir.path(), "target").unwrap(), "");
    }

    #[test]
    fn keyed_files() {
        let text = "usage_usec 100\nuser_usec 60\nbogus\nnr x\n";
        assert_eq!(keyed_value(text, "user_usec"), Some(60));
        assert_eq!(keyed_value(text, "nr"), None);
        assert_eq!(flat_keyed(text).count(), 2);
        assert_eq!(parse_u64(Path::new("x"), "max\n").unwrap(), u64::MAX);
        assert!(parse_u64(Path::new("x"), "-3").is_err());
    }

    #[test]
    fn mkdir_all_reports_created() {
        let dir = tempfile::tempdir().unwrap();
        let made = mkdir_all(&dir.path().join("a/b")).unwrap();
        assert_eq!(made, vec![dir.path().join("a"), dir.path().join("a/b")]);
        assert!(mkdir_all(&dir.path().join("a/b")).unwrap().is_empty());
    }
}
