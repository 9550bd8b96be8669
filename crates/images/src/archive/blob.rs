//! Moving blobs between archives and the content store, hashed as they stream past,
//! with progress events.

use std::io::{self, Read};

use super::error::ArchiveError;
use crate::content::{ContentError, ContentStore};
use crate::digest::{Algorithm, Digest, Verifier};
use crate::layer::{decompress, Compression};
use crate::progress::{Progress, ProgressSink, ProgressState};

/// Bytes between two progress events of one blob.
const PROGRESS_STEP: u64 = 1 << 20;
/// Copy buffer size.
const BUF: usize = 128 << 10;

/// Reports progress of one blob, at most every [`PROGRESS_STEP`] bytes.
pub(crate) struct Reporter<'a> {
    sink: &'a dyn ProgressSink,
    digest: Digest,
    total: Option<u64>,
    state: ProgressState,
    last: u64,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(
        sink: &'a dyn ProgressSink,
        digest: &Digest,
        total: Option<u64>,
    ) -> Reporter<'a> {
        Reporter {
            sink,
            digest: digest.clone(),
            total,
            state: ProgressState::Waiting,
            last: 0,
        }
    }

    /// Reports `state` with `current` bytes done now.
    pub(crate) fn state(&mut self, state: ProgressState, current: u64) {
        self.state = state;
        self.last = current;
        self.sink.report(Progress {
            digest: self.digest.clone(),
            state,
            current,
            total: self.total,
        });
    }

    /// Reports `current` bytes done in the current state, if enough moved since the
    /// last event.
    pub(crate) fn bytes(&mut self, current: u64) {
        if current.saturating_sub(self.last) >= PROGRESS_STEP {
            self.state(self.state, current);
        }
    }
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    verifier: Verifier,
}

impl<R: Read> HashingReader<R> {
    /// Hashes with sha256.
    pub(crate) fn new(inner: R) -> HashingReader<R> {
        HashingReader::with(inner, Algorithm::Sha256)
    }

    /// Hashes with `algorithm`.
    pub(crate) fn with(inner: R, algorithm: Algorithm) -> HashingReader<R> {
        HashingReader {
            inner,
            verifier: Verifier::new(algorithm),
        }
    }

    /// Reads the rest of the stream, then returns its digest and length.
    pub(crate) fn drain(mut self) -> io::Result<(Digest, u64)> {
        let mut buf = vec![0u8; BUF];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let len = self.verifier.len();
        Ok((self.verifier.finish(), len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            self.verifier.update(read);
        }
        Ok(n)
    }
}

/// What [`store_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The bytes were copied and verified.
    Written,
    /// The store had the blob already; nothing was read.
    Existed,
}

/// Copies `size` bytes from `open()` into the store as blob `expected`, verified by the
/// store before it becomes visible. Nothing is read if the store has the blob already.
/// `file` names the source for errors; a digest mismatch becomes `mismatch(actual)`.
pub(crate) fn store_blob<'r>(
    store: &dyn ContentStore,
    expected: &Digest,
    size: u64,
    open: impl FnOnce() -> Result<Box<dyn Read + Send + 'r>, ArchiveError>,
    file: &str,
    reporter: &mut Reporter<'_>,
    mismatch: impl FnOnce(Digest) -> ArchiveError,
) -> Result<Stored, ArchiveError> {
    let content = |source| ArchiveError::Content {
        file: file.to_owned(),
        source,
    };
    if store.info(expected).map_err(content)?.is_some() {
        reporter.state(ProgressState::AlreadyExists, size);
        return Ok(Stored::Existed);
    }
    let mut ingest = match store.writer(expected, Some(size)) {
        Ok(ingest) => ingest,
        Err(ContentError::AlreadyExists { .. }) => {
            reporter.state(ProgressState::AlreadyExists, size);
            return Ok(Stored::Existed);
        }
        Err(e) => return Err(content(e)),
    };
    if ingest.offset() != 0 {
        // A local archive is cheap to read again: no resume.
        ingest.reset().map_err(content)?;
    }
    reporter.state(ProgressState::Downloading, 0);
    let copied = (|| -> Result<(), ArchiveError> {
        let mut reader = open()?;
        let mut buf = vec![0u8; BUF];
        let mut done = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ArchiveError::Read {
                        file: file.to_owned(),
                        source,
                    })
                }
            };
            ingest
                .write_chunk(buf.get(..n).unwrap_or_default())
                .map_err(content)?;
            done += n as u64;
            reporter.bytes(done);
        }
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = ingest.abort();
        return Err(e);
    }
    reporter.state(ProgressState::Verifying, size);
    match ingest.commit() {
        Ok(_) => {}
        Err(ContentError::AlreadyExists { .. }) => {}
        Err(ContentError::DigestMismatch { actual, .. }) => return Err(mismatch(actual)),
        Err(ContentError::SizeMismatch {
            expected, actual, ..
        }) => {
            return Err(ArchiveError::SizeMismatch {
                file: file.to_owned(),
                expected,
                actual,
            })
        }
        Err(e) => return Err(content(e)),
    }
    reporter.state(ProgressState::Done, size);
    Ok(Stored::Written)
}

/// Hashes a compressed layer in one pass: the digest and size of the blob as it is,
/// and the digest and size of its decompressed tar stream (its diff ID), the latter
/// bounded by `max_uncompressed`.
pub(crate) fn hash_compressed(
    reader: impl Read + Send,
    compression: Compression,
    max_uncompressed: u64,
    file: &str,
    reporter: &mut Reporter<'_>,
) -> Result<LayerDigests, ArchiveError> {
    reporter.state(ProgressState::Verifying, 0);
    let mut raw = HashingReader::new(reader);
    let (diff_id, uncompressed_size) = {
        let decoder = decompress(&mut raw, compression).map_err(|e| ArchiveError::Decompress {
            file: file.to_owned(),
            source: io::Error::other(e),
        })?;
        hash_bounded(decoder, max_uncompressed, file)?
    };
    let (digest, size) = raw.drain().map_err(|source| ArchiveError::Read {
        file: file.to_owned(),
        source,
    })?;
    Ok(LayerDigests {
        digest,
        size,
        diff_id,
        uncompressed_size,
    })
}

/// The digests of a layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerDigests {
    /// Of the blob as stored.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub uncompressed_size: u64,
}

/// Reads `reader` to its end, hashing it, refusing more than `max` bytes. Decoder
/// errors become [`ArchiveError::Decompress`].
pub(crate) fn hash_bounded<R: Read>(
    mut reader: R,
    max: u64,
    file: &str,
) -> Result<(Digest, u64), ArchiveError> {
    let mut verifier = Verifier::new(Algorithm::Sha256);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ArchiveError::Decompress {
                    file: file.to_owned(),
                    source,
                })
            }
        };
        verifier.update(buf.get(..n).unwrap_or_default());
        if verifier.len() > max {
            return Err(ArchiveError::Limit {
                file: file.to_owned(),
                what: "uncompressed layer size",
                value: verifier.len(),
                max,
            });
        }
    }
    let len = verifier.len();
    Ok((verifier.finish(), len))
}
