//! A container's changes, from its overlay upper directory, as a layer tar stream.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, OFlags};

use super::error::{display_name, LayerError};
use super::fs::{
    self as lfs, get_xattr, list_xattrs, proc_path, xattr_travels, Meta, Visit, Visitor,
    XattrTarget,
};
use super::options::DiffOptions;
use super::tar::{Kind, TarWriter, WriteEntry};
use crate::digest::Digest;

/// What [`diff`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// Entries written (whiteouts and opaque markers included).
    pub entries: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// sha256 of the tar stream written: the new layer's diff_id.
    pub diff_id: Digest,
}

/// Writes the changes recorded in overlay upper directory `upper` as a layer tar to
/// `out`, the format [`apply`](super::apply) reads:
///
/// - a 0:0 character device (overlay whiteout) becomes an empty `.wh.<name>` file;
/// - a directory with `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) is
///   followed by an empty `<dir>/.wh..wh..opq` entry;
/// - files linked more than once inside `upper` are stored once, then as hard links to
///   the first path;
/// - owners (mapped back through [`DiffOptions::id_map`]), modes, modification times
///   (whole seconds, as Docker writes them) and the extended attributes that travel in
///   layers (see [`apply`](super::apply)) are kept; sockets are left out.
///
/// Entries come in a deterministic order (depth-first, names in byte order), so the same
/// tree always gives the same bytes and digest. The directory should not change while
/// it is read (stop or freeze the container first).
pub fn diff(upper: &Path, out: impl Write, options: &DiffOptions) -> Result<DiffStats, LayerError> {
    write_tar(upper, out, options, true)
}

/// Writes the whole tree under `root` (a container's mounted root filesystem) as a
/// plain tar to `out`, the way [`diff`] writes a layer but with nothing read as
/// overlay metadata: a 0:0 character device stays a device and opaque-directory
/// attributes are ignored, so the stream holds no whiteouts (`docker export`).
pub(crate) fn tree(
    root: &Path,
    out: impl Write,
    options: &DiffOptions,
) -> Result<DiffStats, LayerError> {
    write_tar(root, out, options, false)
}

fn write_tar(
    dir: &Path,
    out: impl Write,
    options: &DiffOptions,
    whiteouts: bool,
) -> Result<DiffStats, LayerError> {
    let root = lfs::open_dir(dir).map_err(|source| LayerError::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut v = Differ {
        w: TarWriter::new(out),
        options,
        whiteouts,
        links: HashMap::new(),
        entries: 0,
        bytes: 0,
    };
    lfs::walk(root, true, &mut v)?;
    let (entries, bytes) = (v.entries, v.bytes);
    let (_, diff_id) = v.w.finish().map_err(|source| LayerError::WriteTar {
        path: String::new(),
        source,
    })?;
    Ok(DiffStats {
        entries,
        bytes,
        diff_id,
    })
}

/// An extended attribute: name, value.
type Xattr = (Vec<u8>, Vec<u8>);

struct Differ<'o, W> {
    w: TarWriter<W>,
    options: &'o DiffOptions,
    /// Read overlay whiteouts and opaque markers (a diff), or not (an export).
    whiteouts: bool,
    /// (device, inode) of files with several links → the path written first.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
    bytes: u64,
}

fn walk_err(path: &[u8], source: io::Error) -> LayerError {
    LayerError::Walk {
        path: display_name(path),
        source,
    }
}

impl<W: Write> Differ<'_, W> {
    fn ids(&self, path: &[u8], meta: &Meta) -> Result<(u32, u32), LayerError> {
        let Some(map) = &self.options.id_map else {
            return Ok((meta.uid, meta.gid));
        };
        let bad = |id: u32| LayerError::UnmappedId {
            entry: display_name(path),
            id: u64::from(id),
        };
        Ok((
            map.uid_to_container(meta.uid).ok_or(bad(meta.uid))?,
            map.gid_to_container(meta.gid).ok_or(bad(meta.gid))?,
        ))
    }

    fn xattrs(
        &self,
        path: &[u8],
        target: XattrTarget<'_>,
        file_type: FileType,
    ) -> Result<Vec<Xattr>, LayerError> {
        let mut out = Vec::new();
        for name in list_xattrs(target).map_err(|e| walk_err(path, e))? {
            if !xattr_travels(&name, file_type) {
                continue;
            }
            if let Some(value) = get_xattr(target, &name).map_err(|e| walk_err(path, e))? {
                out.push((name, value));
            }
        }
        out.sort();
        Ok(out)
    }

    fn write(&mut self, e: &WriteEntry<'_>, data: Option<&mut File>) -> Result<(), LayerError> {
        let werr = |source| LayerError::WriteTar {
            path: display_name(e.name),
            source,
        };
        self.w.write_header(e).map_err(werr)?;
        if let Some(f) = data {
            self.w.write_data(f, e.size).map_err(werr)?;
            self.bytes = self.bytes.saturating_add(e.size);
        }
        self.entries += 1;
        Ok(())
    }
}

impl<W: Write> Visitor for Differ<'_, W> {
    type Error = LayerError;

    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &[u8],
        name: &CStr,
        meta: &Meta,
    ) -> Result<Visit, LayerError> {
        let (uid, gid) = self.ids(path, meta)?;
        let name_bytes = name.to_bytes();
        let mut e = WriteEntry {
            name: path,
            kind: Kind::Regular,
            mode: meta.mode,
            uid,
            gid,
            mtime: meta.mtime,
            size: 0,
            link: b"",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        };
        match meta.file_type {
            FileType::Directory => {
                let fd = lfs::open_child_dir(dir, name_bytes).map_err(|x| walk_err(path, x))?;
                let target = XattrTarget::Fd(fd.as_fd());
                let xattrs = self.xattrs(path, target, FileType::Directory)?;
                let mut opaque = false;
                let markers: &[&[u8]] = if self.whiteouts {
                    &[b"trusted.overlay.opaque", b"user.overlay.opaque"]
                } else {
                    &[]
                };
                for key in markers.iter().copied() {
                    if get_xattr(target, key)
                        .map_err(|x| walk_err(path, x))?
                        .as_deref()
                        == Some(b"y")
                    {
                        opaque = true;
                    }
                }
                e.kind = Kind::Dir;
                e.xattrs = &xattrs;
                self.write(&e, None)?;
                if opaque {
                    let mut marker = path.to_vec();
                    marker.extend_from_slice(b"/.wh..wh..opq");
                    e.name = &marker;
                    e.kind = Kind::Regular;
                    e.xattrs = &[];
                    self.write(&e, None)?;
                }
                Ok(Visit::Descend)
            }
            FileType::RegularFile => {
                if meta.nlink > 1 {
                    if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                        let first = first.clone();
                        e.kind = Kind::HardLink;
                        e.link = &first;
                        self.write(&e, None)?;
                        return Ok(Visit::Skip);
                    }
                    self.links.insert((meta.dev, meta.ino), path.to_vec());
                }
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    rfs::Mode::empty(),
                )
                .map_err(|x| walk_err(path, x.into()))?;
                let xattrs =
                    self.xattrs(path, XattrTarget::Fd(fd.as_fd()), FileType::RegularFile)?;
                let mut file = File::from(fd);
                e.size = meta.size;
                e.xattrs = &xattrs;
                self.write(&e, Some(&mut file))?;
                Ok(Visit::Skip)
            }
            FileType::Symlink => {
                let target =
                    rfs::readlinkat(dir, name, Vec::new()).map_err(|x| walk_err(path, x.into()))?;
                e.kind = Kind::Symlink;
                e.link = target.to_bytes();
                self.write(&e, None)?;
                Ok(Visit::Skip)
            }
            FileType::CharacterDevice if meta.rdev == 0 && self.whiteouts => {
                // An overlay whiteout.
                let (parent, _) = super::path::split(path);
                let mut wh = parent.to_vec();
                if !wh.is_empty() {
                    wh.push(b'/');
                }
                wh.extend_from_slice(b".wh.");
                wh.extend_from_slice(name_bytes);
                e.name = &wh;
                self.write(&e, None)?;
                Ok(Visit::Skip)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let p = proc_path(dir, name_bytes);
                let xattrs = self.xattrs(path, XattrTarget::Path(&p), meta.file_type)?;
                e.kind = match meta.file_type {
                    FileType::CharacterDevice => Kind::Char,
                    FileType::BlockDevice => Kind::Block,
                    _ => Kind::Fifo,
                };
                e.dev_major = rfs::major(meta.rdev);
                e.dev_minor = rfs::minor(meta.rdev);
                e.xattrs = &xattrs;
                self.write(&e, None)?;
                Ok(Visit::Skip)
            }
            // Sockets (and anything unknown) cannot be carried in a tar.
            _ => Ok(Visit::Skip),
        }
    }

    fn walk_error(&mut self, path: &[u8], err: io::Error) -> LayerError {
        walk_err(path, err)
    }
}
