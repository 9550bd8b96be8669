//! Applying a layer tar stream to a layer directory, overlayfs-style.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::error::{display_name, FsStep, LayerError, LimitKind};
use super::fs::{
    self as lfs, is_errno, proc_path, remove_existing, resolve, set_xattr, stat_at, stat_fd,
    timestamps, xattr_travels, Meta, XattrTarget,
};
use super::options::{ApplyOptions, DeviceNodes};
use super::path::{normalize, split};
use super::tar::{Entry, Kind, TarReader};
use crate::digest::Digest;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries in the stream (whiteouts and skipped entries included).
    pub entries: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Bytes of tar stream consumed (the whole stream, trailing padding included).
    pub input_bytes: u64,
    /// sha256 of the whole (uncompressed) tar stream: compare with the image config's
    /// `rootfs.diff_ids` entry for this layer.
    pub diff_id: Digest,
    /// Extended attributes not applied: not allowed in layers (see the module docs) or
    /// not supported by the filesystem.
    pub xattrs_skipped: u64,
    /// Device nodes left out under [`DeviceNodes::Skip`].
    pub devices_skipped: u64,
}

/// Applies the (uncompressed) layer tar stream `layer` to the layer directory `dir`,
/// which may be empty or hold earlier contents (later entries replace earlier ones).
///
/// The stream is read to its end (trailing bytes after the end-of-archive marker
/// included) so that [`ApplyStats::diff_id`] is the digest of all of it. On error the
/// directory holds a partial layer: the caller discards it. Nothing outside `dir` is
/// ever created, changed or removed, whatever the stream holds.
pub fn apply(
    dir: &Path,
    layer: impl Read,
    options: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let root = lfs::open_dir(dir).map_err(|source| LayerError::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut reader = TarReader::new(layer, options.limits);
    let mut applier = Applier {
        root,
        options,
        cache: None,
        pending: Vec::new(),
        pending_bytes: 0,
        buf: vec![0u8; 128 << 10],
        entries: 0,
        bytes: 0,
        xattrs_skipped: 0,
        devices_skipped: 0,
    };
    while let Some(entry) = reader.next()? {
        applier.entries = applier.entries.saturating_add(1);
        if applier.entries > options.limits.max_entries {
            return Err(LayerError::Limit {
                entry: display_name(&entry.name),
                limit: LimitKind::Entries,
                value: applier.entries,
                max: options.limits.max_entries,
            });
        }
        applier.entry(&mut reader, &entry)?;
    }
    applier.flush_pending()?;
    let input_bytes = reader.consumed();
    Ok(ApplyStats {
        entries: applier.entries,
        bytes: applier.bytes,
        input_bytes,
        diff_id: reader.finish(),
        xattrs_skipped: applier.xattrs_skipped,
        devices_skipped: applier.devices_skipped,
    })
}

/// Memory the list of directories waiting for their mode and times may take. A layer
/// with more directories than fit (hundreds of thousands) gets them set early, which can
/// only leave some directory times off.
const MAX_PENDING_BYTES: usize = 64 << 20;

/// A directory whose mode and times are set once its contents are written.
struct PendingDir {
    path: Vec<u8>,
    dev: u64,
    ino: u64,
    mode: u32,
    mtime: (i64, u32),
}

struct Applier<'o> {
    root: OwnedFd,
    options: &'o ApplyOptions,
    /// The last resolved parent directory, reused by the next entry in the same
    /// directory. Dropped by anything that could change how paths resolve.
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directories whose mode and times are set at the end, in stream order.
    pending: Vec<PendingDir>,
    /// Memory held by `pending` (bounded by [`MAX_PENDING_BYTES`]).
    pending_bytes: usize,
    buf: Vec<u8>,
    entries: u64,
    bytes: u64,
    xattrs_skipped: u64,
    devices_skipped: u64,
}

/// Builds the `LayerError::Apply` of an entry.
fn fail(e: &Entry, step: FsStep) -> impl Fn(std::io::Error) -> LayerError + '_ {
    move |source| LayerError::Apply {
        entry: display_name(&e.name),
        step,
        source,
    }
}

fn io_err(e: Errno) -> std::io::Error {
    e.into()
}

impl Applier<'_> {
    fn entry<R: Read>(&mut self, reader: &mut TarReader<R>, e: &Entry) -> Result<(), LayerError> {
        let path = normalize(&e.name).map_err(|reason| LayerError::UnsafePath {
            entry: display_name(&e.name),
            reason,
        })?;
        if path.is_empty() {
            return match e.kind {
                Kind::Dir => self.root_dir(e),
                _ => Err(LayerError::UnsafePath {
                    entry: display_name(&e.name),
                    reason: "entry would replace the layer root",
                }),
            };
        }
        let (parent, base) = split(&path);

        if let Some(target) = base.strip_prefix(b".wh.") {
            self.cache = None;
            if target == b".wh..opq" {
                return self.opaque(parent, e);
            }
            if target.starts_with(b".wh.") {
                // Other `.wh..wh.*` names are overlay/aufs metadata: ignored.
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(LayerError::UnsafePath {
                    entry: display_name(&e.name),
                    reason: "whiteout of an invalid name",
                });
            }
            let pfd = self.parent(parent, e)?;
            return self.whiteout(pfd.as_fd(), target, e);
        }

        let pfd = match self.cache.take() {
            Some((p, fd)) if p == parent => fd,
            _ => self.parent(parent, e)?,
        };
        // Whether resolution of other paths may have changed: then no caching.
        let keep = match e.kind {
            Kind::Regular => self.regular(reader, pfd.as_fd(), base, e)?,
            Kind::Dir => {
                self.dir(pfd.as_fd(), base, &path, e)?;
                false
            }
            Kind::Symlink => {
                self.symlink(pfd.as_fd(), base, e)?;
                false
            }
            Kind::HardLink => self.hard_link(pfd.as_fd(), base, e)?,
            Kind::Char | Kind::Block | Kind::Fifo => self.special(pfd.as_fd(), base, e)?,
        };
        if keep {
            self.cache = Some((parent.to_vec(), pfd));
        }
        Ok(())
    }

    /// Opens the entry's parent directory (`O_PATH`), creating missing ones.
    fn parent(&mut self, parent: &[u8], e: &Entry) -> Result<OwnedFd, LayerError> {
        match resolve(self.root.as_fd(), parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => Ok(fd),
            Err(err) if is_errno(&err, Errno::NOENT) => self.create_parents(parent, e),
            Err(err) => Err(fail(e, FsStep::ResolveParent)(err)),
        }
    }

    /// Creates the missing directories of `parent` one by one (mode 0755, owned by the
    /// store's root), each inside the resolved directory before it.
    fn create_parents(&mut self, parent: &[u8], e: &Entry) -> Result<OwnedFd, LayerError> {
        let mut dir = resolve(self.root.as_fd(), b"", OFlags::PATH | OFlags::DIRECTORY)
            .map_err(fail(e, FsStep::ResolveParent))?;
        let mut end = 0;
        for comp in parent.split(|b| *b == b'/') {
            end += comp.len();
            let prefix = parent.get(..end).unwrap_or_default();
            end += 1;
            match resolve(self.root.as_fd(), prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(err) if is_errno(&err, Errno::NOENT) => {}
                Err(err) => return Err(fail(e, FsStep::ResolveParent)(err)),
            }
            match rfs::mkdirat(dir.as_fd(), comp, Mode::from_raw_mode(0o755)) {
                Ok(()) => {
                    if let Some((uid, gid)) = self.implicit_owner(e)? {
                        rfs::chownat(
                            dir.as_fd(),
                            comp,
                            Some(uid),
                            Some(gid),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                        .map_err(|x| fail(e, FsStep::Chown)(io_err(x)))?;
                    }
                }
                Err(Errno::EXIST) => {}
                Err(x) => return Err(fail(e, FsStep::CreateParent)(io_err(x))),
            }
            dir = match resolve(self.root.as_fd(), prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(err) if is_errno(&err, Errno::NOENT) => {
                    return Err(LayerError::UnsafePath {
                        entry: display_name(&e.name),
                        reason:
                            "a parent directory is a symlink that leads nowhere inside the layer",
                    })
                }
                Err(err) => return Err(fail(e, FsStep::CreateParent)(err)),
            };
        }
        Ok(dir)
    }

    /// Owner of directories the stream implies but does not list: the store's root.
    fn implicit_owner(&self, e: &Entry) -> Result<Option<(rfs::Uid, rfs::Gid)>, LayerError> {
        match (&self.options.id_map, self.options.chown) {
            (Some(_), true) => self.owner(&Entry {
                uid: 0,
                gid: 0,
                ..e.clone()
            }),
            _ => Ok(None),
        }
    }

    /// The owner to set for an entry, mapped; `None` when ownership is not applied.
    fn owner(&self, e: &Entry) -> Result<Option<(rfs::Uid, rfs::Gid)>, LayerError> {
        if !self.options.chown {
            return Ok(None);
        }
        let bad = |id: u64| LayerError::UnmappedId {
            entry: display_name(&e.name),
            id,
        };
        // u32::MAX is "-1", "no change" to chown: never a valid id.
        let uid = u32::try_from(e.uid)
            .ok()
            .filter(|u| *u != u32::MAX)
            .ok_or(bad(e.uid))?;
        let gid = u32::try_from(e.gid)
            .ok()
            .filter(|g| *g != u32::MAX)
            .ok_or(bad(e.gid))?;
        let (uid, gid) = match &self.options.id_map {
            Some(map) => (
                map.uid_to_host(uid)
                    .filter(|u| *u != u32::MAX)
                    .ok_or(bad(e.uid))?,
                map.gid_to_host(gid)
                    .filter(|g| *g != u32::MAX)
                    .ok_or(bad(e.gid))?,
            ),
            None => (uid, gid),
        };
        Ok(Some((rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid))))
    }

    fn chown_at(&self, dir: BorrowedFd<'_>, name: &[u8], e: &Entry) -> Result<(), LayerError> {
        if let Some((uid, gid)) = self.owner(e)? {
            rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|x| fail(e, FsStep::Chown)(io_err(x)))?;
        }
        Ok(())
    }

    fn xattrs(
        &mut self,
        target: XattrTarget<'_>,
        file_type: FileType,
        e: &Entry,
    ) -> Result<(), LayerError> {
        for (name, value) in &e.xattrs {
            if !xattr_travels(name, file_type) {
                self.xattrs_skipped += 1;
                continue;
            }
            match set_xattr(target, name, value) {
                Ok(()) => {}
                Err(err) if is_errno(&err, Errno::NOTSUP) => self.xattrs_skipped += 1,
                Err(err) => return Err(fail(e, FsStep::SetXattr)(err)),
            }
        }
        Ok(())
    }

    /// Runs `create`; if something is in the way, removes it (a directory with its
    /// contents) and runs `create` once more.
    fn create_replacing(
        dir: BorrowedFd<'_>,
        name: &[u8],
        e: &Entry,
        step: FsStep,
        mut create: impl FnMut() -> rustix::io::Result<()>,
    ) -> Result<bool, LayerError> {
        match create() {
            Ok(()) => Ok(false),
            Err(Errno::EXIST) => {
                remove_existing(dir, name).map_err(fail(e, FsStep::Remove))?;
                create().map_err(|x| fail(e, step)(io_err(x)))?;
                Ok(true)
            }
            Err(x) => Err(fail(e, step)(io_err(x))),
        }
    }

    /// Returns whether the parent fd may be reused.
    fn regular<R: Read>(
        &mut self,
        reader: &mut TarReader<R>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        e: &Entry,
    ) -> Result<bool, LayerError> {
        let max = self.options.limits.max_bytes;
        let total = self.bytes.saturating_add(e.size);
        if total > max {
            return Err(LayerError::Limit {
                entry: display_name(&e.name),
                limit: LimitKind::Bytes,
                value: total,
                max,
            });
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut fd = None;
        let replaced = Self::create_replacing(dir, name, e, FsStep::CreateFile, || {
            fd = Some(rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?);
            Ok(())
        })?;
        let Some(fd) = fd else {
            return Err(fail(e, FsStep::CreateFile)(io_err(Errno::NOENT)));
        };
        let mut file = File::from(fd);
        loop {
            let n = reader.read_data(&mut self.buf)?;
            if n == 0 {
                break;
            }
            file.write_all(self.buf.get(..n).unwrap_or_default())
                .map_err(fail(e, FsStep::WriteFile))?;
        }
        self.bytes = total;
        if let Some((uid, gid)) = self.owner(e)? {
            rfs::fchown(&file, Some(uid), Some(gid))
                .map_err(|x| fail(e, FsStep::Chown)(io_err(x)))?;
        }
        // After chown, which clears set-id bits and file capabilities.
        rfs::fchmod(&file, Mode::from_raw_mode(e.mode))
            .map_err(|x| fail(e, FsStep::Chmod)(io_err(x)))?;
        self.xattrs(XattrTarget::Fd(file.as_fd()), FileType::RegularFile, e)?;
        rfs::futimens(&file, &timestamps(e.mtime.0, e.mtime.1))
            .map_err(|x| fail(e, FsStep::SetTimes)(io_err(x)))?;
        Ok(!replaced)
    }

    fn root_dir(&mut self, e: &Entry) -> Result<(), LayerError> {
        let root = self.root.try_clone().map_err(fail(e, FsStep::OpenDir))?;
        if let Some((uid, gid)) = self.owner(e)? {
            rfs::fchown(&root, Some(uid), Some(gid))
                .map_err(|x| fail(e, FsStep::Chown)(io_err(x)))?;
        }
        self.xattrs(XattrTarget::Fd(root.as_fd()), FileType::Directory, e)?;
        let meta = stat_fd(root.as_fd()).map_err(fail(e, FsStep::OpenDir))?;
        self.push_pending(Vec::new(), &meta, e)
    }

    fn dir(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        e: &Entry,
    ) -> Result<(), LayerError> {
        // Created private; the mode is set when the directory is left.
        match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let existing = stat_at(dir, name).map_err(fail(e, FsStep::CreateDir))?;
                if !existing.is_dir() {
                    // Never follow a symlink (or anything) in the way: replace it.
                    remove_existing(dir, name).map_err(fail(e, FsStep::Remove))?;
                    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|x| fail(e, FsStep::CreateDir)(io_err(x)))?;
                }
            }
            Err(x) => return Err(fail(e, FsStep::CreateDir)(io_err(x))),
        }
        let fd = lfs::open_child_dir(dir, name).map_err(fail(e, FsStep::OpenDir))?;
        if let Some((uid, gid)) = self.owner(e)? {
            rfs::fchown(&fd, Some(uid), Some(gid))
                .map_err(|x| fail(e, FsStep::Chown)(io_err(x)))?;
        }
        self.xattrs(XattrTarget::Fd(fd.as_fd()), FileType::Directory, e)?;
        let meta = stat_fd(fd.as_fd()).map_err(fail(e, FsStep::OpenDir))?;
        self.push_pending(path.to_vec(), &meta, e)
    }

    fn push_pending(&mut self, path: Vec<u8>, meta: &Meta, e: &Entry) -> Result<(), LayerError> {
        self.pending_bytes = self
            .pending_bytes
            .saturating_add(path.len() + std::mem::size_of::<PendingDir>());
        self.pending.push(PendingDir {
            path,
            dev: meta.dev,
            ino: meta.ino,
            mode: e.mode,
            mtime: e.mtime,
        });
        if self.pending_bytes > MAX_PENDING_BYTES {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Sets mode and times of the pending directories, in stream order (so a later entry
    /// for the same directory wins). Run at the end, after everything inside them was
    /// written; a directory is found again by path and must still be the same inode
    /// (else it was replaced or removed by a later entry and is skipped).
    fn flush_pending(&mut self) -> Result<(), LayerError> {
        self.pending_bytes = 0;
        for d in std::mem::take(&mut self.pending) {
            let fd = if d.path.is_empty() {
                self.root.try_clone()
            } else {
                resolve(
                    self.root.as_fd(),
                    &d.path,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                )
            };
            let Ok(fd) = fd else { continue };
            match stat_fd(fd.as_fd()) {
                Ok(m) if m.dev == d.dev && m.ino == d.ino => {}
                _ => continue,
            }
            let err = |step| {
                let entry = display_name(&d.path);
                move |x: Errno| LayerError::Apply {
                    entry,
                    step,
                    source: x.into(),
                }
            };
            rfs::fchmod(&fd, Mode::from_raw_mode(d.mode)).map_err(err(FsStep::Chmod))?;
            rfs::futimens(&fd, &timestamps(d.mtime.0, d.mtime.1)).map_err(err(FsStep::SetTimes))?;
        }
        Ok(())
    }

    fn symlink(&mut self, dir: BorrowedFd<'_>, name: &[u8], e: &Entry) -> Result<(), LayerError> {
        if e.link.is_empty() || e.link.contains(&0) {
            return Err(LayerError::UnsafePath {
                entry: display_name(&e.name),
                reason: "symlink with an empty or NUL-containing target",
            });
        }
        // The target is only a string: it may point anywhere, since every later path
        // is resolved inside the layer.
        Self::create_replacing(dir, name, e, FsStep::Symlink, || {
            rfs::symlinkat(e.link.as_slice(), dir, name)
        })?;
        self.chown_at(dir, name, e)?;
        let p = proc_path(dir, name);
        self.xattrs(XattrTarget::Path(&p), FileType::Symlink, e)?;
        rfs::utimensat(
            dir,
            name,
            &timestamps(e.mtime.0, e.mtime.1),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|x| fail(e, FsStep::SetTimes)(io_err(x)))?;
        Ok(())
    }

    fn hard_link(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        e: &Entry,
    ) -> Result<bool, LayerError> {
        let unsafe_link = |reason| LayerError::UnsafeLink {
            entry: display_name(&e.name),
            target: display_name(&e.link),
            reason,
        };
        let target = normalize(&e.link).map_err(unsafe_link)?;
        if target.is_empty() {
            return Err(unsafe_link("points at the layer root"));
        }
        let (tparent, tname) = split(&target);
        let tdir = match resolve(self.root.as_fd(), tparent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(err) if is_errno(&err, Errno::NOENT) || is_errno(&err, Errno::NOTDIR) => {
                return Err(unsafe_link("target does not exist in this layer"))
            }
            Err(err) => return Err(fail(e, FsStep::HardLink)(err)),
        };
        let tmeta = match stat_at(tdir.as_fd(), tname) {
            Ok(m) => m,
            Err(err) if is_errno(&err, Errno::NOENT) => {
                return Err(unsafe_link("target does not exist in this layer"))
            }
            Err(err) => return Err(fail(e, FsStep::HardLink)(err)),
        };
        if tmeta.is_dir() {
            return Err(unsafe_link("target is a directory"));
        }
        if let Ok(existing) = stat_at(dir, name) {
            if existing.same_inode(&tmeta) {
                return Ok(true);
            }
        }
        // Flags 0: a symlink target is linked itself, never followed.
        let replaced = Self::create_replacing(dir, name, e, FsStep::HardLink, || {
            rfs::linkat(tdir.as_fd(), tname, dir, name, AtFlags::empty())
        })?;
        Ok(!replaced)
    }

    fn special(&mut self, dir: BorrowedFd<'_>, name: &[u8], e: &Entry) -> Result<bool, LayerError> {
        let file_type = match e.kind {
            Kind::Char => FileType::CharacterDevice,
            Kind::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if file_type != FileType::Fifo {
            match self.options.devices {
                DeviceNodes::Create => {}
                DeviceNodes::Skip => {
                    self.devices_skipped += 1;
                    return Ok(true);
                }
                DeviceNodes::Refuse => {
                    return Err(LayerError::DeviceNotAllowed {
                        entry: display_name(&e.name),
                    })
                }
            }
        }
        let dev = rfs::makedev(e.dev_major, e.dev_minor);
        let replaced = Self::create_replacing(dir, name, e, FsStep::Mknod, || {
            rfs::mknodat(dir, name, file_type, Mode::from_raw_mode(0o600), dev)
        })?;
        self.chown_at(dir, name, e)?;
        // The node was just created by us and is not a symlink: chmodat cannot follow.
        rfs::chmodat(dir, name, Mode::from_raw_mode(e.mode), AtFlags::empty())
            .map_err(|x| fail(e, FsStep::Chmod)(io_err(x)))?;
        let p = proc_path(dir, name);
        self.xattrs(XattrTarget::Path(&p), file_type, e)?;
        rfs::utimensat(
            dir,
            name,
            &timestamps(e.mtime.0, e.mtime.1),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|x| fail(e, FsStep::SetTimes)(io_err(x)))?;
        Ok(!replaced)
    }

    /// `.wh.<name>`: an overlay whiteout, a 0:0 character device named `<name>`.
    fn whiteout(&mut self, dir: BorrowedFd<'_>, name: &[u8], e: &Entry) -> Result<(), LayerError> {
        remove_existing(dir, name).map_err(fail(e, FsStep::Remove))?;
        rfs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(|x| fail(e, FsStep::Whiteout)(io_err(x)))?;
        self.chown_at(dir, name, e)?;
        rfs::utimensat(
            dir,
            name,
            &timestamps(e.mtime.0, e.mtime.1),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|x| fail(e, FsStep::SetTimes)(io_err(x)))?;
        Ok(())
    }

    /// `.wh..wh..opq`: marks the directory opaque (it hides the lower layers' contents).
    fn opaque(&mut self, parent: &[u8], e: &Entry) -> Result<(), LayerError> {
        let fd = if parent.is_empty() {
            self.root.try_clone().map_err(fail(e, FsStep::Opaque))?
        } else {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY;
            match resolve(self.root.as_fd(), parent, flags) {
                Ok(fd) => fd,
                Err(err) if is_errno(&err, Errno::NOENT) => {
                    self.create_parents(parent, e)?;
                    resolve(self.root.as_fd(), parent, flags).map_err(fail(e, FsStep::Opaque))?
                }
                Err(err) => return Err(fail(e, FsStep::Opaque)(err)),
            }
        };
        let name: &[u8] = if self.options.userxattr {
            b"user.overlay.opaque"
        } else {
            b"trusted.overlay.opaque"
        };
        set_xattr(XattrTarget::Fd(fd.as_fd()), name, b"y").map_err(fail(e, FsStep::Opaque))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = ApplyOptions::default();
        let mut seed: u64 = 0x1234_5678;
        for len in [0usize, 1, 511, 512, 513, 1024, 4096] {
            let mut data = vec![0u8; len];
            for b in &mut data {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (seed >> 33) as u8;
            }
            let _ = apply(tmp.path(), &data[..], &opts);
        }
    }
}
