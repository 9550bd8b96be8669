//! Resolving paths inside a container's root, safely.
//!
//! Every path that comes from a configuration or an image is resolved with `openat2(2)` and
//! `RESOLVE_IN_ROOT`: `..` and absolute symlinks stay inside the root, magic links
//! (`/proc/self/fd/N`) are refused. What gets mounted or created is then addressed through
//! the returned descriptor, never through the path again, so a symlink swapped in between
//! cannot redirect the operation (CVE-2021-30465, CVE-2025-31133, CVE-2025-52565).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The path relative to the root: components only, `..` kept for openat2 to clamp.
pub(crate) fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => out.push(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Open `path` inside `root` with `flags` (O_CLOEXEC is always added).
pub(crate) fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> Result<OwnedFd> {
    let rel = relative(path);
    retry(|| rustix::fs::openat2(root, &rel, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE))
        .map_err(|e| Error::io("open (in container root)", path, e.into()))
}

/// Like [`open_in_root`] but `None` when the path does not exist.
pub(crate) fn try_open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> Result<Option<OwnedFd>> {
    let rel = relative(path);
    match retry(|| rustix::fs::openat2(root, &rel, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE))
    {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("open (in container root)", path, e.into())),
    }
}

/// openat2 fails with EAGAIN when a rename raced with the lookup; retry a few times.
fn retry(mut f: impl FnMut() -> rustix::io::Result<OwnedFd>) -> rustix::io::Result<OwnedFd> {
    let mut n = 0;
    loop {
        match f() {
            Err(Errno::AGAIN) if n < 16 => n += 1,
            other => return other,
        }
    }
}

/// What to create at the end of a path that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// A directory.
    Dir,
    /// An empty regular file (mount point for a file bind mount).
    File,
}

/// Make sure `path` exists inside `root` (creating missing directories, and the leaf as
/// `leaf`), and return an `O_PATH` descriptor of it.
pub(crate) fn ensure_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    leaf: Leaf,
    mode: u32,
) -> Result<OwnedFd> {
    ensure_depth(root, path, leaf, mode, 0)
}

/// Most dangling symlinks followed while creating one path.
const MAX_LINKS: u32 = 40;

fn ensure_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    leaf: Leaf,
    mode: u32,
    depth: u32,
) -> Result<OwnedFd> {
    if depth > MAX_LINKS {
        return Err(Error::io(
            "create (too many symlinks)",
            path,
            Errno::LOOP.into(),
        ));
    }
    if let Some(fd) = try_open_in_root(root, path, OFlags::PATH)? {
        return Ok(fd);
    }
    let rel = relative(path);
    let name = rel
        .file_name()
        .ok_or_else(|| Error::InvalidConfig(format!("cannot create {}", path.display())))?
        .to_owned();
    let parent = rel
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let parent_fd = ensure_depth(root, &parent, Leaf::Dir, 0o755, depth)?;
    // The parent fd is O_PATH: reopen it as a directory to create inside it.
    let dir = rustix::fs::openat(
        &parent_fd,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", path, e.into()))?;
    let created = match leaf {
        Leaf::Dir => rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(mode)),
        Leaf::File => rustix::fs::openat(
            &dir,
            &name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(mode),
        )
        .map(drop),
    };
    match created {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(Error::io("create", path, e.into())),
    }
    // Re-resolve from the root so a symlink raced into place stays contained.
    if let Some(fd) = try_open_in_root(root, path, OFlags::PATH)? {
        return Ok(fd);
    }
    // A dangling symlink (an image's /var/run -> /run without /run): create its target,
    // resolved inside the root like the kernel would, then try again.
    let target = rustix::fs::readlinkat(&dir, &name, Vec::new())
        .map_err(|e| Error::io("readlink", path, e.into()))?;
    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
    let resolved = if target.is_absolute() {
        target
    } else {
        parent.join(target)
    };
    drop(ensure_depth(root, &resolved, leaf, mode, depth + 1)?);
    open_in_root(root, path, OFlags::PATH)
}

/// The `/proc/self/fd/N` path of a descriptor, for the few calls that need a path.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Convenience for `AsFd` values.
pub(crate) fn fd_path_of(fd: &impl AsFd) -> PathBuf {
    fd_path(fd.as_fd())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        (dir, fd)
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/a/b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
        assert_eq!(
            relative(Path::new("/a/../../b")),
            PathBuf::from("a/../../b")
        );
    }

    #[test]
    fn symlinks_stay_inside() {
        let (dir, fd) = root();
        let outside = tempfile::tempdir().unwrap();
        // An absolute symlink pointing at a host directory.
        symlink(outside.path(), dir.path().join("evil")).unwrap();
        let made = ensure_in_root(fd.as_fd(), Path::new("/evil/x"), Leaf::Dir, 0o755).unwrap();
        drop(made);
        assert!(
            !outside.path().join("x").exists(),
            "created outside the root"
        );
        // The symlink target was created inside the root instead.
        assert!(dir
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("x")
            .exists());
        // A dangling relative link is followed inside the root.
        symlink("../nowhere/deeper", dir.path().join("rel")).unwrap();
        ensure_in_root(fd.as_fd(), Path::new("/rel/z"), Leaf::Dir, 0o755).unwrap();
        assert!(dir.path().join("nowhere/deeper/z").is_dir());
        // A symlink loop is an error, not a hang.
        symlink("loop", dir.path().join("loop")).unwrap();
        assert!(ensure_in_root(fd.as_fd(), Path::new("/loop/x"), Leaf::Dir, 0o755).is_err());
        // `..` cannot climb out either.
        ensure_in_root(fd.as_fd(), Path::new("/../../y"), Leaf::File, 0o644).unwrap();
        assert!(dir.path().join("y").is_file());
    }

    #[test]
    fn missing_is_none() {
        let (_dir, fd) = root();
        assert!(
            try_open_in_root(fd.as_fd(), Path::new("/nope"), OFlags::PATH)
                .unwrap()
                .is_none()
        );
    }
}
