//! File-descriptor based filesystem helpers shared by apply, diff, usage and the
//! snapshotter.
//!
//! Nothing here takes a path string from the host root except [`open_dir`], whose path
//! the caller (the store) chose. Entries are reached as `(directory fd, single name)`
//! pairs, and multi-component paths are resolved with `openat2` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV` relative to the layer
//! directory's fd, so `..` and symlinks (absolute or relative) resolve as if the layer
//! directory were `/` and can never leave it. Attributes of entries that cannot be
//! opened (symlinks, devices, FIFOs) are reached through `/proc/self/fd/<dir>/<name>`:
//! the kernel follows the directory's magic link to the exact directory we hold, and
//! the final name is not followed (`l*xattr`).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps,
    XattrFlags,
};
use rustix::io::Errno;

/// The fields of `struct stat` Berth uses, in portable integer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub file_type: FileType,
    /// Permission and special bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
}

impl Meta {
    pub(crate) fn of(st: &Stat) -> Meta {
        #[allow(clippy::useless_conversion)]
        Meta {
            file_type: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            nlink: u64::from(st.st_nlink),
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            rdev: u64::from(st.st_rdev),
            mtime: i64::from(st.st_mtime),
            mtime_nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }

    pub(crate) fn same_inode(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    Ok(Meta::of(&rfs::fstat(fd)?))
}

pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Meta> {
    Ok(Meta::of(&rfs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// Opens a directory the caller trusts (the store's own path).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Resolves normalised relative `path` inside `root` (the empty path is the root).
/// `flags` are added to `O_CLOEXEC`.
pub(crate) fn resolve(root: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    Ok(rfs::openat2(
        root,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    )?)
}

/// Opens the directory `name` of `dir` for reading, never following a symlink.
pub(crate) fn open_child_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `/proc/self/fd/<dir>/<name>`: reaches `name` in exactly the directory `dir` holds.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(OsStr::from_bytes(name));
    p
}

/// Whether `e` is the errno `errno`.
pub(crate) fn is_errno(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

pub(crate) fn timestamps(secs: i64, nanos: u32) -> Timestamps {
    let ts = Timespec {
        tv_sec: secs,
        tv_nsec: nanos.min(999_999_999).into(),
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// Removes whatever is at `name` in `dir` (a directory with all its contents). A
/// missing entry is not an error.
pub(crate) fn remove_existing(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let meta = match stat_at(dir, name) {
        Ok(m) => m,
        Err(e) if is_errno(&e, Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(rfs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let child = open_child_dir(dir, name)?;
    let mut remover = Remover;
    walk(child, false, &mut remover)?;
    Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Removes a directory tree given by a trusted path (the store's own directories).
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let parent = match open_dir(parent) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_existing(parent.as_fd(), name.as_bytes())
}

struct Remover;

impl Visitor for Remover {
    type Error = io::Error;

    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        _path: &[u8],
        name: &CStr,
        meta: &Meta,
    ) -> io::Result<Visit> {
        if meta.is_dir() {
            return Ok(Visit::Descend);
        }
        match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(Visit::Skip),
            Err(e) => Err(e.into()),
        }
    }

    fn leave(&mut self, parent: BorrowedFd<'_>, _path: &[u8], name: &CStr) -> io::Result<()> {
        match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn walk_error(&mut self, _path: &[u8], err: io::Error) -> io::Error {
        err
    }
}

/// What a [`Visitor`] wants done with a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Do not look inside.
    Skip,
    /// Visit its entries (directories only).
    Descend,
}

/// Receives the entries of a [`walk`].
pub(crate) trait Visitor {
    type Error;

    /// Entry `name` of directory `dir`; `path` is its path relative to the walk's root.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &[u8],
        name: &CStr,
        meta: &Meta,
    ) -> Result<Visit, Self::Error>;

    /// Called when all entries of directory `name` (at `path`) in `parent` were visited.
    fn leave(
        &mut self,
        _parent: BorrowedFd<'_>,
        _path: &[u8],
        _name: &CStr,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Wraps an error of the walk itself (reading a directory, opening one).
    fn walk_error(&mut self, path: &[u8], err: io::Error) -> Self::Error;
}

struct Frame {
    names: Vec<CString>,
    next: usize,
    dev: u64,
    ino: u64,
    /// Length of this directory's path in the walk's path buffer.
    path_len: usize,
}

fn read_names(dir: BorrowedFd<'_>, sorted: bool) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        names.push(name.to_owned());
    }
    if sorted {
        names.sort_by(|a, b| a.to_bytes().cmp(b.to_bytes()));
    }
    Ok(names)
}

/// Walks the tree under `root` depth-first (pre-order, `leave` after a directory's
/// entries), never following symlinks. It holds one directory fd at a time: going back
/// up opens `..` and checks it is the directory it came from (device and inode), so a
/// tree of any depth is walked with bounded descriptors and a moved directory is an
/// error rather than an escape. With `sorted`, names are visited in byte order.
pub(crate) fn walk<V: Visitor>(root: OwnedFd, sorted: bool, v: &mut V) -> Result<(), V::Error> {
    let root_meta = stat_fd(root.as_fd()).map_err(|e| v.walk_error(b"", e))?;
    let names = read_names(root.as_fd(), sorted).map_err(|e| v.walk_error(b"", e))?;
    let mut frames = vec![Frame {
        names,
        next: 0,
        dev: root_meta.dev,
        ino: root_meta.ino,
        path_len: 0,
    }];
    let mut cur = root;
    let mut path: Vec<u8> = Vec::new();
    loop {
        let Some(frame) = frames.last_mut() else {
            return Ok(());
        };
        if let Some(name) = frame.names.get(frame.next).cloned() {
            frame.next += 1;
            path.truncate(frame.path_len);
            if frame.path_len > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(name.to_bytes());
            let meta = match stat_at(cur.as_fd(), name.to_bytes()) {
                Ok(m) => m,
                // Gone since the directory was read.
                Err(e) if is_errno(&e, Errno::NOENT) => continue,
                Err(e) => return Err(v.walk_error(&path, e)),
            };
            if v.entry(cur.as_fd(), &path, &name, &meta)? == Visit::Descend && meta.is_dir() {
                let child = open_child_dir(cur.as_fd(), name.to_bytes())
                    .map_err(|e| v.walk_error(&path, e))?;
                let child_meta = stat_fd(child.as_fd()).map_err(|e| v.walk_error(&path, e))?;
                if !child_meta.same_inode(&meta) {
                    return Err(v.walk_error(&path, changed()));
                }
                let names =
                    read_names(child.as_fd(), sorted).map_err(|e| v.walk_error(&path, e))?;
                frames.push(Frame {
                    names,
                    next: 0,
                    dev: child_meta.dev,
                    ino: child_meta.ino,
                    path_len: path.len(),
                });
                cur = child;
            }
        } else {
            let Some(done) = frames.pop() else {
                return Ok(());
            };
            let Some(parent) = frames.last() else {
                return Ok(());
            };
            path.truncate(done.path_len);
            let up = rfs::openat(
                cur.as_fd(),
                c"..",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| v.walk_error(&path, e.into()))?;
            let up_meta = stat_fd(up.as_fd()).map_err(|e| v.walk_error(&path, e))?;
            if up_meta.dev != parent.dev || up_meta.ino != parent.ino {
                return Err(v.walk_error(&path, changed()));
            }
            let name = parent
                .next
                .checked_sub(1)
                .and_then(|i| parent.names.get(i))
                .cloned()
                .ok_or_else(changed)
                .map_err(|e| v.walk_error(&path, e))?;
            v.leave(up.as_fd(), &path, &name)?;
            cur = up;
        }
    }
}

fn changed() -> io::Error {
    io::Error::other("directory moved while being walked")
}

/// Where an extended attribute lives: an open file or directory, or a
/// `/proc/self/fd/<dir>/<name>` path whose final component is not followed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a Path),
}

const XATTR_LIST_MAX: usize = 64 << 10;

pub(crate) fn set_xattr(t: XattrTarget<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    match t {
        XattrTarget::Fd(fd) => rfs::fsetxattr(fd, name, value, XattrFlags::empty())?,
        XattrTarget::Path(p) => rfs::lsetxattr(p, name, value, XattrFlags::empty())?,
    }
    Ok(())
}

/// Names of the extended attributes (empty when the filesystem has none).
pub(crate) fn list_xattrs(t: XattrTarget<'_>) -> io::Result<Vec<Vec<u8>>> {
    for _ in 0..4 {
        let size = match t {
            XattrTarget::Fd(fd) => rfs::flistxattr_query(fd),
            XattrTarget::Path(p) => rfs::llistxattr_query(p),
        };
        let size = match size {
            Ok(s) => s,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size.min(XATTR_LIST_MAX)];
        let got = match t {
            XattrTarget::Fd(fd) => rfs::flistxattr(fd, &mut buf[..]),
            XattrTarget::Path(p) => rfs::llistxattr(p, &mut buf[..]),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|b| *b == 0)
                    .filter(|n| !n.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::RANGE.into())
}

/// The value of an extended attribute; `None` if it does not exist.
pub(crate) fn get_xattr(t: XattrTarget<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..4 {
        let size = match t {
            XattrTarget::Fd(fd) => rfs::fgetxattr_query(fd, name),
            XattrTarget::Path(p) => rfs::lgetxattr_query(p, name),
        };
        let size = match size {
            Ok(s) => s,
            Err(Errno::NODATA) | Err(Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size.min(XATTR_LIST_MAX)];
        let got = match t {
            XattrTarget::Fd(fd) => rfs::fgetxattr(fd, name, &mut buf[..]),
            XattrTarget::Path(p) => rfs::lgetxattr(p, name, &mut buf[..]),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::RANGE.into())
}

/// Whether an extended attribute may travel in a layer tar (both directions): `user.*`
/// (not overlayfs' own `user.overlay.*`), file capabilities (as Docker allows) and POSIX
/// ACLs. Everything else — `trusted.*` (including `trusted.overlay.*`, which would let a
/// layer forge overlay metadata), `security.selinux`, IMA/EVM — is left out.
pub(crate) fn xattr_travels(name: &[u8], file_type: FileType) -> bool {
    let regular_or_dir = matches!(file_type, FileType::RegularFile | FileType::Directory);
    if name.starts_with(b"user.") {
        return !name.starts_with(b"user.overlay.") && regular_or_dir;
    }
    match name {
        b"security.capability" => file_type == FileType::RegularFile,
        b"system.posix_acl_access" => file_type != FileType::Symlink,
        b"system.posix_acl_default" => file_type == FileType::Directory,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("d/up")).unwrap();
        let fd = open_dir(&root).unwrap();
        let a = resolve(fd.as_fd(), b"abs", OFlags::PATH).unwrap();
        let b = resolve(fd.as_fd(), b"d/up", OFlags::PATH).unwrap();
        let r = stat_fd(fd.as_fd()).unwrap();
        assert!(stat_fd(a.as_fd()).unwrap().same_inode(&r));
        assert!(stat_fd(b.as_fd()).unwrap().same_inode(&r));
    }

    #[test]
    fn walks_deep_trees_and_removes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        std::fs::create_dir(&top).unwrap();
        // Deeper than PATH_MAX allows as one path, and than the fd limit.
        let mut dir = open_dir(&top).unwrap();
        for _ in 0..1500 {
            rfs::mkdirat(dir.as_fd(), "dddd", Mode::from_raw_mode(0o755)).unwrap();
            rfs::openat(
                dir.as_fd(),
                "f",
                OFlags::CREATE | OFlags::WRONLY,
                Mode::from_raw_mode(0o644),
            )
            .unwrap();
            dir = open_child_dir(dir.as_fd(), b"dddd").unwrap();
        }
        drop(dir);
        struct Count(u64);
        impl Visitor for Count {
            type Error = io::Error;
            fn entry(
                &mut self,
                _: BorrowedFd<'_>,
                _: &[u8],
                _: &CStr,
                m: &Meta,
            ) -> io::Result<Visit> {
                self.0 += 1;
                Ok(if m.is_dir() {
                    Visit::Descend
                } else {
                    Visit::Skip
                })
            }
            fn walk_error(&mut self, _: &[u8], e: io::Error) -> io::Error {
                e
            }
        }
        let mut c = Count(0);
        walk(open_dir(&top).unwrap(), true, &mut c).unwrap();
        assert_eq!(c.0, 3000);
        remove_tree(&top).unwrap();
        assert!(!top.exists());
    }
}
