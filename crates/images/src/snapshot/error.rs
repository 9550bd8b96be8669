//! Errors of the snapshotter and of mounting its mounts.

use std::io;
use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

use super::Kind;
use crate::layer::LayerError;

/// Why a snapshotter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshotter root cannot be used.
    #[error("snapshotter root {path}: {reason}")]
    InvalidRoot {
        /// The root.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key or name is empty or too long.
    #[error("invalid snapshot key {key:?}: {reason}")]
    InvalidKey {
        /// The key (truncated to 256 characters).
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No snapshot has this key or name.
    #[error("snapshot {key:?} not found")]
    NotFound {
        /// The key or name.
        key: String,
    },
    /// A snapshot with this key or name exists already.
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The key or name.
        key: String,
    },
    /// The parent of a new snapshot is not a committed snapshot.
    #[error("parent {parent:?} is not a committed snapshot")]
    ParentNotCommitted {
        /// The parent's key.
        parent: String,
    },
    /// The operation does not apply to this kind of snapshot (commit of a view, mounts
    /// of a committed snapshot…).
    #[error("snapshot {key:?} is {actual}, expected {expected}")]
    WrongKind {
        /// The key.
        key: String,
        /// What the operation needs.
        expected: &'static str,
        /// What the snapshot is.
        actual: Kind,
    },
    /// A committed snapshot that others are based on cannot be removed.
    #[error("snapshot {key:?} has children")]
    HasChildren {
        /// The name.
        key: String,
    },
    /// The parent chain is longer than overlayfs stacks (500 lower layers).
    #[error("snapshot {key:?}: {count} layers exceed overlayfs' limit of {max}")]
    TooManyLayers {
        /// The new snapshot's key.
        key: String,
        /// Its number of lower layers.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The records are inconsistent (a missing parent, a cycle).
    #[error("snapshot records are corrupt: {reason} ({key:?})")]
    CorruptRecords {
        /// The snapshot where it was noticed.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Creating a snapshot directory failed.
    #[error("create snapshot directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Moving a snapshot directory into place (or aside for removal) failed.
    #[error("rename {from} to {to}: {source}")]
    Rename {
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Removing a snapshot directory failed (the snapshot is gone from the records;
    /// [`OverlaySnapshotter::cleanup`](super::OverlaySnapshotter::cleanup) retries).
    #[error("remove snapshot directory {path}: {source}")]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Listing the snapshot directories failed.
    #[error("list snapshot directories in {path}: {source}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading the records file failed.
    #[error("read snapshot records {path}: {source}")]
    ReadRecords {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The records file is not valid JSON of the expected shape.
    #[error("parse snapshot records {path}: {source}")]
    ParseRecords {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Writing the records file (temporary file, fsync, rename) failed.
    #[error("write snapshot records {path}: {source}")]
    WriteRecords {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Taking the snapshotter's lock failed.
    #[error("lock snapshotter {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Measuring a snapshot's disk usage failed.
    #[error("disk usage of snapshot {key:?}: {source}")]
    Usage {
        /// The key.
        key: String,
        /// The cause.
        source: LayerError,
    },
}

impl HasKind for SnapshotError {
    fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::InvalidRoot { .. } | SnapshotError::InvalidKey { .. } => {
                ErrorKind::InvalidArgument
            }
            SnapshotError::NotFound { .. } => ErrorKind::NotFound,
            SnapshotError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            SnapshotError::ParentNotCommitted { .. }
            | SnapshotError::WrongKind { .. }
            | SnapshotError::HasChildren { .. }
            | SnapshotError::TooManyLayers { .. } => ErrorKind::FailedPrecondition,
            SnapshotError::CorruptRecords { .. } | SnapshotError::ParseRecords { .. } => {
                ErrorKind::Internal
            }
            SnapshotError::CreateDir { source, .. }
            | SnapshotError::Rename { source, .. }
            | SnapshotError::RemoveDir { source, .. }
            | SnapshotError::ReadDir { source, .. }
            | SnapshotError::ReadRecords { source, .. }
            | SnapshotError::WriteRecords { source, .. }
            | SnapshotError::Lock { source, .. } => ErrorKind::from_io(source),
            SnapshotError::Usage { source, .. } => source.kind(),
        }
    }
}

/// Why [`mount`](super::mount) or [`unmount`](super::unmount) failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount description is unusable.
    #[error("invalid {kind} mount: {reason}")]
    Invalid {
        /// The mount type.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A layer directory could not be opened.
    #[error("open layer directory {path}: {source}")]
    OpenLayer {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// More lower layers than overlayfs stacks.
    #[error("{count} lower layers exceed overlayfs' limit of {max}")]
    TooManyLayers {
        /// Lower layers asked for.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The overlay options do not fit the one page `mount(2)` accepts, even with
    /// `/proc/self/fd` paths, and the kernel has no `lowerdir+` (Linux < 6.8).
    #[error("overlay options of {len} bytes exceed the {max}-byte mount(2) limit")]
    OptionsTooLong {
        /// Length needed.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The mount system call failed.
    #[error("mount {kind} on {target}: {source}")]
    Mount {
        /// The mount type.
        kind: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The unmount system call failed.
    #[error("unmount {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

impl HasKind for MountError {
    fn kind(&self) -> ErrorKind {
        match self {
            MountError::Invalid { .. } => ErrorKind::InvalidArgument,
            MountError::TooManyLayers { .. } | MountError::OptionsTooLong { .. } => {
                ErrorKind::FailedPrecondition
            }
            MountError::OpenLayer { source, .. }
            | MountError::Mount { source, .. }
            | MountError::Unmount { source, .. } => ErrorKind::from_io(source),
        }
    }
}
