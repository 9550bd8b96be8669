//! `export`: a container's root filesystem as a tar stream (`docker export`).

use std::io::Write;
use std::path::Path;

use super::error::ArchiveError;
use crate::digest::Digest;
use crate::layer::{self, DiffOptions};

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportStats {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// sha256 of the tar stream written.
    pub digest: Digest,
}

/// Writes the tree under `rootfs` (normally a container's mounted root filesystem)
/// as a tar stream to `out`.
///
/// Entries come depth-first with names in byte order, so the same tree gives the
/// same bytes; a file linked several times is stored once and then as hard links;
/// owners, modes, modification times (whole seconds) and the extended attributes
/// that travel in layers are kept; sockets are left out. Nothing is read as overlay
/// metadata, so the stream holds no whiteouts. Symlinks are stored, never followed;
/// mounts below `rootfs` are walked into like directories (export a rootfs without
/// the container's volumes mounted in it). The tree should not change while it is
/// read (stop or pause the container first).
pub fn export(rootfs: &Path, out: impl Write) -> Result<ExportStats, ArchiveError> {
    let stats = layer::tree(rootfs, out, &DiffOptions::default()).map_err(ArchiveError::Export)?;
    Ok(ExportStats {
        entries: stats.entries,
        bytes: stats.bytes,
        digest: stats.diff_id,
    })
}
