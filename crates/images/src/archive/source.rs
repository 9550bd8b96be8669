//! Where an archive is read from: a tar file (indexed, read by offset) or a directory
//! (an OCI layout, or an unpacked docker-archive) whose files are opened with
//! `openat2(RESOLVE_IN_ROOT)`, so symlinks in it cannot reach outside it.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, OFlags};

use super::error::{display_name, ArchiveError};
use super::tar_index::TarIndex;
use super::ArchiveLimits;
use crate::layer::fs as lfs;

/// An opened archive.
#[derive(Debug)]
pub(crate) enum Source {
    /// A tar archive.
    Tar(TarIndex),
    /// A directory.
    Dir {
        /// Its fd, the root of every lookup.
        root: OwnedFd,
    },
}

impl Source {
    /// Opens `path`: a directory as such, anything else as a tar archive.
    pub(crate) fn open(path: &Path, limits: &ArchiveLimits) -> Result<Source, ArchiveError> {
        let open_err = |source| ArchiveError::Open {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(open_err)?;
        if meta.is_dir() {
            let root = lfs::open_dir(path).map_err(open_err)?;
            Ok(Source::Dir { root })
        } else {
            let file = File::open(path).map_err(open_err)?;
            Source::from_file(file, limits)
        }
    }

    /// Indexes the tar archive in `file`.
    pub(crate) fn from_file(file: File, limits: &ArchiveLimits) -> Result<Source, ArchiveError> {
        Ok(Source::Tar(TarIndex::build(file, limits)?))
    }

    /// Whether member `name` exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            Source::Tar(index) => index.contains(name),
            Source::Dir { root, .. } => {
                lfs::resolve(root.as_fd(), name.as_bytes(), OFlags::PATH).is_ok()
            }
        }
    }

    /// Opens member `name` (normalised) for reading; returns the reader and its size.
    pub(crate) fn open_member(
        &self,
        name: &str,
        referenced_by: &str,
    ) -> Result<(Box<dyn Read + Send + '_>, u64), ArchiveError> {
        match self {
            Source::Tar(index) => {
                let (offset, size) = index.resolve(name, referenced_by)?;
                Ok((Box::new(index.reader(offset, size)), size))
            }
            Source::Dir { root, .. } => {
                // O_NONBLOCK: a FIFO planted in the directory must not hang the open.
                let fd = lfs::resolve(
                    root.as_fd(),
                    name.as_bytes(),
                    OFlags::RDONLY | OFlags::NONBLOCK,
                )
                .map_err(|source| {
                    if source.kind() == std::io::ErrorKind::NotFound {
                        ArchiveError::Missing {
                            file: display_name(name.as_bytes()),
                            referenced_by: referenced_by.to_owned(),
                        }
                    } else {
                        ArchiveError::Read {
                            file: display_name(name.as_bytes()),
                            source,
                        }
                    }
                })?;
                let stat = rustix::fs::fstat(&fd).map_err(|e| ArchiveError::Read {
                    file: display_name(name.as_bytes()),
                    source: e.into(),
                })?;
                if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                    return Err(ArchiveError::NotAFile {
                        file: display_name(name.as_bytes()),
                    });
                }
                let size = u64::try_from(stat.st_size).unwrap_or(0);
                Ok((Box::new(File::from(fd).take(size)), size))
            }
        }
    }

    /// Reads member `name` whole, refusing it if it is larger than `max` bytes.
    pub(crate) fn read_small(
        &self,
        name: &str,
        max: u64,
        referenced_by: &str,
    ) -> Result<Vec<u8>, ArchiveError> {
        let (reader, size) = self.open_member(name, referenced_by)?;
        if size > max {
            return Err(ArchiveError::Limit {
                file: display_name(name.as_bytes()),
                what: "size",
                value: size,
                max,
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        reader
            .take(max)
            .read_to_end(&mut data)
            .map_err(|source| ArchiveError::Read {
                file: display_name(name.as_bytes()),
                source,
            })?;
        if data.len() as u64 != size {
            return Err(ArchiveError::Read {
                file: display_name(name.as_bytes()),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "member changed size while being read",
                ),
            });
        }
        Ok(data)
    }

    /// Reads up to `n` bytes from the start of member `name` (to sniff compression).
    pub(crate) fn head(
        &self,
        name: &str,
        n: usize,
        referenced_by: &str,
    ) -> Result<Vec<u8>, ArchiveError> {
        let (reader, _) = self.open_member(name, referenced_by)?;
        let mut head = Vec::with_capacity(n);
        reader
            .take(n as u64)
            .read_to_end(&mut head)
            .map_err(|source| ArchiveError::Read {
                file: display_name(name.as_bytes()),
                source,
            })?;
        Ok(head)
    }
}
