//! The content store: content-addressed blobs (layers, configs, manifests), each
//! verified against its digest before it becomes visible.
//!
//! [`ContentStore`] is the interface; [`LocalStore`] implements it on a local directory.
//! The interface is synchronous (`std::io`): async callers run it through
//! `tokio::task::spawn_blocking`.
//!
//! # Writing a blob
//!
//! 1. [`ContentStore::writer`] opens an [`Ingest`] for an *expected* digest (and size,
//!    when the descriptor gives one). At most one ingest per digest is open at a time,
//!    across processes; a second one fails with [`ContentError::IngestLocked`]
//!    (kind `Unavailable`: retry later). A blob that is already committed fails with
//!    [`ContentError::AlreadyExists`].
//! 2. [`Ingest::offset`] tells how many bytes an earlier, interrupted attempt left
//!    behind (a killed process, a broken download). The caller resumes from there
//!    (e.g. with an HTTP `Range` request) or calls [`Ingest::reset`] to start over.
//! 3. The caller streams bytes in through [`std::io::Write`] (or
//!    [`Ingest::write_chunk`]), so a decompressor or tee can write straight into it.
//!    The bytes are hashed as they pass. Writing past the expected size fails.
//! 4. [`Ingest::commit`] checks size and digest (hashing the resumed prefix once if there
//!    was one), syncs the data to disk and renames it atomically into the visible store.
//!    On a mismatch the partial data is deleted and the error has kind
//!    `FailedPrecondition`. [`Ingest::abort`] deletes the partial data; dropping an
//!    ingest keeps it for a later resume.
//!
//! # Crash safety
//!
//! Only committed, verified, synced blobs are ever visible. A process killed at any
//! point leaves at worst a partial ingest, which the next writer of the same digest
//! resumes (or resets), and which [`ContentStore::clean_stale_ingests`] removes once
//! it is old enough. A resumed prefix is re-hashed from disk at commit, so a prefix
//! damaged by a power loss shows up as a digest mismatch (the caller then redoes the
//! download from zero) rather than as a corrupt blob.

mod local;

use std::fmt;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use berth_errdefs::{ErrorKind, HasKind};

use crate::digest::{Algorithm, Digest, Verifier};

pub use local::LocalStore;

/// What the store knows about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was committed.
    pub committed_at: SystemTime,
}

/// The state of an unfinished write, as [`ContentStore::ingests`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    /// The digest the written bytes are expected to have.
    pub expected: Digest,
    /// The expected size, when the writer gave one.
    pub expected_size: Option<u64>,
    /// Bytes written so far.
    pub offset: u64,
    /// When the partial data was last written.
    pub updated_at: SystemTime,
    /// Whether a writer holds it right now.
    pub locked: bool,
}

/// A reader of a committed blob.
pub trait BlobReader: Read + Seek + Send + fmt::Debug {}

impl<T: Read + Seek + Send + fmt::Debug> BlobReader for T {}

/// A resumable write session for one blob. See the module documentation for the
/// lifecycle. Dropping it without [`Ingest::commit`] or [`Ingest::abort`] keeps the
/// partial data for a later resume.
pub trait Ingest: Write + Send + fmt::Debug {
    /// The digest the data must have.
    fn expected(&self) -> &Digest;

    /// The expected size, if known.
    fn expected_size(&self) -> Option<u64>;

    /// Bytes already written (including what an interrupted earlier attempt left).
    fn offset(&self) -> u64;

    /// Appends `data`. Fails if that would go past the expected size or the store's
    /// maximum blob size.
    fn write_chunk(&mut self, data: &[u8]) -> Result<(), ContentError>;

    /// Throws away everything written so far and starts again at offset 0.
    fn reset(&mut self) -> Result<(), ContentError>;

    /// A verifier fed with the bytes written so far (a resumed prefix is hashed from
    /// disk, once), so a download can continue from [`Ingest::offset`] with its digest
    /// check covering the whole blob
    /// ([`Client::fetch_blob_resume`](crate::registry::Client::fetch_blob_resume)).
    fn verifier(&mut self) -> Result<Verifier, ContentError>;

    /// Verifies size and digest and makes the blob visible. On a mismatch the partial
    /// data is deleted.
    fn commit(self: Box<Self>) -> Result<BlobInfo, ContentError>;

    /// Deletes the partial data.
    fn abort(self: Box<Self>) -> Result<(), ContentError>;
}

/// A content-addressed blob store.
pub trait ContentStore: Send + Sync + fmt::Debug {
    /// The committed blob with `digest`, if there is one.
    fn info(&self, digest: &Digest) -> Result<Option<BlobInfo>, ContentError>;

    /// A reader of the committed blob with `digest` ([`ContentError::NotFound`] if absent).
    fn open(&self, digest: &Digest) -> Result<Box<dyn BlobReader>, ContentError>;

    /// Opens (or resumes) the write session for the blob `expected`.
    fn writer(
        &self,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<Box<dyn Ingest>, ContentError>;

    /// Deletes a committed blob ([`ContentError::NotFound`] if absent).
    fn delete(&self, digest: &Digest) -> Result<(), ContentError>;

    /// Calls `f` for every committed blob, in no particular order.
    fn walk(&self, f: &mut dyn FnMut(BlobInfo)) -> Result<(), ContentError>;

    /// The unfinished writes.
    fn ingests(&self) -> Result<Vec<IngestStatus>, ContentError>;

    /// Deletes the partial data of the unfinished write for `expected`, unless a writer
    /// holds it ([`ContentError::IngestLocked`]). Nothing to delete is not an error.
    fn abort_ingest(&self, expected: &Digest) -> Result<(), ContentError>;

    /// Deletes unfinished writes nobody holds that were last written more than
    /// `older_than` ago. Returns how many were deleted.
    fn clean_stale_ingests(&self, older_than: Duration) -> Result<usize, ContentError>;

    /// Every committed blob, sorted by digest.
    fn list(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let mut all = Vec::new();
        self.walk(&mut |info| all.push(info))?;
        all.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(all)
    }

    /// Total bytes of committed blobs.
    fn usage(&self) -> Result<u64, ContentError> {
        let mut total = 0u64;
        self.walk(&mut |info| total = total.saturating_add(info.size))?;
        Ok(total)
    }

    /// Stores `data` under its sha256 digest (no-op if it is there already).
    fn put_bytes(&self, data: &[u8]) -> Result<Digest, ContentError> {
        let digest = Digest::sha256_of(data);
        self.put_verified(&digest, data)?;
        Ok(digest)
    }

    /// Stores `data`, which must hash to `expected` (no-op if it is there already).
    fn put_verified(&self, expected: &Digest, data: &[u8]) -> Result<(), ContentError> {
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let mut ingest = match self.writer(expected, Some(size)) {
            Ok(ingest) => ingest,
            Err(ContentError::AlreadyExists { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if ingest.offset() != 0 {
            ingest.reset()?;
        }
        ingest.write_chunk(data)?;
        ingest.commit().map(|_| ())
    }

    /// Reads the whole blob `digest`, refusing blobs larger than `max` bytes (for
    /// manifests and configs, which are parsed in memory).
    fn read_to_vec(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, ContentError> {
        let reader = self.open(digest)?;
        let mut data = Vec::new();
        reader
            .take(max.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|source| ContentError::ReadBlob {
                digest: digest.clone(),
                source,
            })?;
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if len > max {
            return Err(ContentError::TooLarge {
                digest: digest.clone(),
                size: len,
                max,
            });
        }
        Ok(data)
    }

    /// Re-hashes the committed blob `digest` and checks it still matches (fsck).
    fn verify(&self, digest: &Digest) -> Result<(), ContentError> {
        let mut reader = self.open(digest)?;
        let mut verifier = Verifier::new(digest.algorithm());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|source| ContentError::ReadBlob {
                    digest: digest.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            verifier.update(buf.get(..n).unwrap_or_default());
        }
        let actual = verifier.finish();
        if actual == *digest {
            Ok(())
        } else {
            Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
            })
        }
    }
}

/// Every algorithm the store keeps blobs for.
pub(crate) const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// Why a content store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// Creating the store's directories failed.
    #[error("cannot create content store directory {path}: {source}")]
    CreateLayout {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No committed blob has that digest.
    #[error("content {digest} not found")]
    NotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// The blob is committed already.
    #[error("content {digest} already exists")]
    AlreadyExists {
        /// The digest.
        digest: Digest,
    },
    /// Another writer (of this or another process) holds the ingest for this digest.
    #[error("content {digest} is being written by another writer; retry later")]
    IngestLocked {
        /// The digest.
        digest: Digest,
    },
    /// The blob is larger than the store accepts.
    #[error("content {digest} is {size} bytes, more than the maximum of {max}")]
    TooLarge {
        /// The digest.
        digest: Digest,
        /// The size given or reached.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// More bytes were written than the expected size.
    #[error("content {digest}: write goes past the expected size of {expected} bytes")]
    PastExpectedSize {
        /// The digest.
        digest: Digest,
        /// The expected size.
        expected: u64,
    },
    /// The committed size differs from the expected size.
    #[error("content {digest}: got {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The digest.
        digest: Digest,
        /// The expected size.
        expected: u64,
        /// The bytes actually written.
        actual: u64,
    },
    /// The written bytes do not hash to the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest expected.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// An earlier failed write left the ingest in an unknown state.
    #[error("content {digest}: an earlier write failed; reset or abort the ingest")]
    Poisoned {
        /// The digest.
        digest: Digest,
    },
    /// Opening, locking or preparing an ingest failed.
    #[error("cannot open ingest {path}: {source}")]
    OpenIngest {
        /// The ingest file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing to an ingest failed.
    #[error("cannot write ingest {path}: {source}")]
    WriteIngest {
        /// The ingest data file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Reading back the resumed prefix of an ingest failed.
    #[error("cannot read ingest {path}: {source}")]
    ReadIngest {
        /// The ingest data file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Syncing or renaming a verified blob into place failed.
    #[error("cannot commit {digest} to {path}: {source}")]
    Commit {
        /// The digest.
        digest: Digest,
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Removing an ingest failed.
    #[error("cannot remove ingest {path}: {source}")]
    RemoveIngest {
        /// The ingest directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Opening or reading a committed blob failed.
    #[error("cannot read content {digest}: {source}")]
    ReadBlob {
        /// The digest.
        digest: Digest,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Deleting a committed blob failed.
    #[error("cannot delete content {digest}: {source}")]
    DeleteBlob {
        /// The digest.
        digest: Digest,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Listing a store directory failed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A copy into an ingest failed on the reading side (an `std::io::Error` that
    /// does not wrap a [`ContentError`]; see [`ContentError::from_write_error`]).
    #[error("copy into content store failed: {source}")]
    Copy {
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ContentError {
    /// Recovers the [`ContentError`] that an [`Ingest`]'s [`std::io::Write`]
    /// implementation wrapped into an `std::io::Error` (e.g. after `std::io::copy`);
    /// any other I/O error (from the reading side) becomes [`ContentError::Copy`].
    pub fn from_write_error(err: std::io::Error) -> ContentError {
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<ContentError>())
        {
            if let Some(inner) = err.into_inner() {
                return match inner.downcast::<ContentError>() {
                    Ok(content) => *content,
                    Err(other) => ContentError::Copy {
                        source: std::io::Error::other(other),
                    },
                };
            }
            return ContentError::Copy {
                source: std::io::Error::other("content store write failed"),
            };
        }
        ContentError::Copy { source: err }
    }

    pub(crate) fn into_io(self) -> std::io::Error {
        let kind = match self.kind() {
            ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition => {
                std::io::ErrorKind::InvalidInput
            }
            ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}

impl HasKind for ContentError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound { .. } => ErrorKind::NotFound,
            ContentError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            ContentError::IngestLocked { .. } => ErrorKind::Unavailable,
            ContentError::TooLarge { .. } => ErrorKind::InvalidArgument,
            ContentError::PastExpectedSize { .. }
            | ContentError::SizeMismatch { .. }
            | ContentError::DigestMismatch { .. }
            | ContentError::Poisoned { .. } => ErrorKind::FailedPrecondition,
            ContentError::CreateLayout { source, .. }
            | ContentError::OpenIngest { source, .. }
            | ContentError::WriteIngest { source, .. }
            | ContentError::ReadIngest { source, .. }
            | ContentError::Commit { source, .. }
            | ContentError::RemoveIngest { source, .. }
            | ContentError::ReadBlob { source, .. }
            | ContentError::DeleteBlob { source, .. }
            | ContentError::List { source, .. }
            | ContentError::Copy { source } => match ErrorKind::from_io(source) {
                // A missing file inside the store is a broken store, not a missing object.
                ErrorKind::NotFound => ErrorKind::Internal,
                kind => kind,
            },
        }
    }
}
