//! Disk usage of a layer or snapshot directory.

use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::error::{display_name, LayerError};
use super::fs::{self as lfs, Meta, Visit, Visitor};

/// Disk usage of a directory tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Bytes allocated on disk (`st_blocks` × 512), the directory itself included.
    pub size: u64,
    /// Inodes used, the directory itself included.
    pub inodes: u64,
}

/// Measures the tree under `dir` without following symlinks; an inode linked several
/// times is counted once.
pub fn usage(dir: &Path) -> Result<Usage, LayerError> {
    let root = lfs::open_dir(dir).map_err(|source| LayerError::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let meta = lfs::stat_fd(root.as_fd()).map_err(|source| LayerError::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut counter = Counter {
        usage: Usage {
            size: meta.blocks.saturating_mul(512),
            inodes: 1,
        },
        seen: HashSet::new(),
    };
    lfs::walk(root, false, &mut counter)?;
    Ok(counter.usage)
}

struct Counter {
    usage: Usage,
    seen: HashSet<(u64, u64)>,
}

impl Visitor for Counter {
    type Error = LayerError;

    fn entry(
        &mut self,
        _dir: BorrowedFd<'_>,
        _path: &[u8],
        _name: &CStr,
        meta: &Meta,
    ) -> Result<Visit, LayerError> {
        if meta.is_dir() {
            self.count(meta);
            return Ok(Visit::Descend);
        }
        if meta.nlink <= 1 || self.seen.insert((meta.dev, meta.ino)) {
            self.count(meta);
        }
        Ok(Visit::Skip)
    }

    fn walk_error(&mut self, path: &[u8], source: io::Error) -> LayerError {
        LayerError::Walk {
            path: display_name(path),
            source,
        }
    }
}

impl Counter {
    fn count(&mut self, meta: &Meta) {
        self.usage.size = self
            .usage
            .size
            .saturating_add(meta.blocks.saturating_mul(512));
        self.usage.inodes = self.usage.inodes.saturating_add(1);
    }
}
