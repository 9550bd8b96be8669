//! Errors of applying, diffing and measuring layers.

use std::fmt;
use std::io;
use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

/// The bound of [`Limits`](super::Limits) an input exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// [`Limits::max_entries`](super::Limits::max_entries).
    Entries,
    /// [`Limits::max_bytes`](super::Limits::max_bytes).
    Bytes,
    /// [`Limits::max_input_bytes`](super::Limits::max_input_bytes).
    InputBytes,
    /// [`Limits::max_path_len`](super::Limits::max_path_len).
    PathLength,
    /// [`Limits::max_pax_size`](super::Limits::max_pax_size).
    PaxHeaderSize,
    /// [`Limits::max_xattr_size`](super::Limits::max_xattr_size).
    XattrSize,
    /// [`Limits::max_xattrs`](super::Limits::max_xattrs).
    XattrCount,
    /// Extension headers (PAX, GNU long name) in a row before one entry (at most 16).
    ExtensionHeaders,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Entries => "entry count",
            LimitKind::Bytes => "bytes of file contents",
            LimitKind::InputBytes => "bytes of tar stream",
            LimitKind::PathLength => "path length",
            LimitKind::PaxHeaderSize => "PAX header size",
            LimitKind::XattrSize => "extended attribute size",
            LimitKind::XattrCount => "extended attribute count",
            LimitKind::ExtensionHeaders => "extension headers in a row",
        })
    }
}

/// The filesystem step that failed while applying an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsStep {
    /// Resolving the entry's parent directory inside the layer.
    ResolveParent,
    /// Creating a missing parent directory.
    CreateParent,
    /// Removing what was at the entry's path before.
    Remove,
    /// Creating a regular file.
    CreateFile,
    /// Writing a regular file's contents.
    WriteFile,
    /// Creating a directory.
    CreateDir,
    /// Opening a directory to set its attributes.
    OpenDir,
    /// Creating a symbolic link.
    Symlink,
    /// Creating a hard link.
    HardLink,
    /// Creating a device node or FIFO.
    Mknod,
    /// Creating an overlay whiteout.
    Whiteout,
    /// Marking a directory opaque.
    Opaque,
    /// Setting the owner.
    Chown,
    /// Setting the mode.
    Chmod,
    /// Setting an extended attribute.
    SetXattr,
    /// Setting the modification time.
    SetTimes,
}

impl fmt::Display for FsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsStep::ResolveParent => "resolve parent directory",
            FsStep::CreateParent => "create parent directory",
            FsStep::Remove => "remove existing file",
            FsStep::CreateFile => "create file",
            FsStep::WriteFile => "write file",
            FsStep::CreateDir => "create directory",
            FsStep::OpenDir => "open directory",
            FsStep::Symlink => "create symlink",
            FsStep::HardLink => "create hard link",
            FsStep::Mknod => "create device node",
            FsStep::Whiteout => "create whiteout",
            FsStep::Opaque => "mark directory opaque",
            FsStep::Chown => "set owner",
            FsStep::Chmod => "set mode",
            FsStep::SetXattr => "set extended attribute",
            FsStep::SetTimes => "set times",
        })
    }
}

/// Why a layer could not be applied, diffed or measured. Entry names are shown lossily
/// decoded and truncated to 256 characters.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The layer directory (or upper directory) could not be opened.
    #[error("open layer directory {path}: {source}")]
    OpenDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading the tar stream failed (also: a decompression error).
    #[error("read layer stream at byte {offset} (entry {entry:?}): {source}")]
    Read {
        /// The entry being read, or the last one read.
        entry: String,
        /// Bytes of tar stream consumed so far.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
    /// The stream ended inside a header or an entry's contents.
    #[error("layer stream truncated at byte {offset} (entry {entry:?})")]
    Truncated {
        /// The entry being read, or the last one read.
        entry: String,
        /// Bytes of tar stream consumed.
        offset: u64,
    },
    /// A tar header is malformed.
    #[error("malformed tar header at byte {offset} (after entry {entry:?}): {reason}")]
    Header {
        /// The last entry read before the bad header.
        entry: String,
        /// Offset of the header in the stream.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The layer exceeds one of the [`Limits`](super::Limits).
    #[error("entry {entry:?}: {limit} {value} exceeds the limit of {max}")]
    Limit {
        /// The entry at which the bound was crossed.
        entry: String,
        /// Which bound.
        limit: LimitKind,
        /// The value reached (at least).
        value: u64,
        /// The bound.
        max: u64,
    },
    /// The entry's name would leave the layer directory or is otherwise unusable.
    #[error("entry {entry:?}: unsafe path: {reason}")]
    UnsafePath {
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hard link's target is outside the layer, the layer root, or unusable.
    #[error("entry {entry:?}: hard link target {target:?}: {reason}")]
    UnsafeLink {
        /// The entry.
        entry: String,
        /// The link target as written in the tar.
        target: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A character or block device in a layer applied with [`DeviceNodes::Refuse`](super::DeviceNodes).
    #[error("entry {entry:?}: device nodes are not allowed in this layer")]
    DeviceNotAllowed {
        /// The entry.
        entry: String,
    },
    /// An entry type Berth does not apply (GNU sparse files, volume labels…).
    #[error("entry {entry:?}: unsupported tar entry type {kind:?}")]
    UnsupportedEntry {
        /// The entry.
        entry: String,
        /// The tar type flag.
        kind: char,
    },
    /// An owner id that cannot be used: outside the store's id map, or not a valid id.
    #[error("entry {entry:?}: owner id {id} is not valid in this store")]
    UnmappedId {
        /// The entry.
        entry: String,
        /// The id.
        id: u64,
    },
    /// A filesystem operation for an entry failed.
    #[error("entry {entry:?}: {step}: {source}")]
    Apply {
        /// The entry.
        entry: String,
        /// What was being done.
        step: FsStep,
        /// The cause.
        source: io::Error,
    },
    /// Reading a directory tree (diff, usage) failed.
    #[error("read {path:?}: {source}")]
    Walk {
        /// Path relative to the walked directory.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Writing the diff tar stream failed.
    #[error("write layer tar at {path:?}: {source}")]
    WriteTar {
        /// The entry being written.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Setting up decompression failed.
    #[error("start layer decompression: {source}")]
    Decompress {
        /// The cause.
        source: io::Error,
    },
}

impl HasKind for LayerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayerError::OpenDir { source, .. } | LayerError::Walk { source, .. } => {
                ErrorKind::from_io(source)
            }
            LayerError::Read { source, .. } => match source.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::from_io(source),
            },
            LayerError::Truncated { .. }
            | LayerError::Header { .. }
            | LayerError::Limit { .. }
            | LayerError::UnsafePath { .. }
            | LayerError::UnsafeLink { .. }
            | LayerError::UnmappedId { .. } => ErrorKind::InvalidArgument,
            LayerError::DeviceNotAllowed { .. } => ErrorKind::PermissionDenied,
            LayerError::UnsupportedEntry { .. } => ErrorKind::NotImplemented,
            LayerError::Apply { source, .. } => match source.raw_os_error() {
                // A hostile layer's path games (a parent that is a file, a loop of
                // symlinks, a dangling symlink parent) are the layer's fault.
                Some(e)
                    if e == rustix::io::Errno::NOTDIR.raw_os_error()
                        || e == rustix::io::Errno::LOOP.raw_os_error()
                        || e == rustix::io::Errno::XDEV.raw_os_error()
                        || e == rustix::io::Errno::NAMETOOLONG.raw_os_error() =>
                {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::from_io(source),
            },
            LayerError::WriteTar { source, .. } | LayerError::Decompress { source } => {
                ErrorKind::from_io(source)
            }
        }
    }
}

/// An entry name for error messages: lossily decoded, at most 256 characters.
pub(crate) fn display_name(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    if s.chars().count() > 256 {
        let mut t: String = s.chars().take(256).collect();
        t.push('…');
        t
    } else {
        s.into_owned()
    }
}
