//! Pushing an image from the content store to a registry.
//!
//! [`push_image`] uploads an image manifest, or an index with all its child manifests,
//! and every blob they name, in the order a registry accepts them:
//!
//! 1. **Walk.** The manifest (or index) is read from the [`ContentStore`], re-hashed
//!    (a corrupt local copy is refused before anything is sent), parsed with
//!    [`manifest::parse_any`](crate::manifest::parse_any) and, for an index, its children
//!    likewise (nested indexes up to [`MAX_INDEX_DEPTH`] deep). The result is the list
//!    of manifests in bottom-up order (children before the index naming them) and the
//!    set of blobs: every config and layer, each once. Foreign (non-distributable)
//!    layers are not pushed, as docker does not push them. Before any network traffic
//!    every blob's size in the store is checked against its descriptor.
//! 2. **Blobs**, at most [`PushOptions::concurrency`] at a time. Each one:
//!    1. `HEAD` in the target repository: if the registry has it, nothing moves
//!       ([`ProgressState::AlreadyExists`]);
//!    2. a cross-repository mount from the first [`PushOptions::mount_from`] candidate on
//!       the same registry that has it (with several candidates each is asked with a
//!       `HEAD` first; with one the registry decides). A mounted blob reports
//!       [`ProgressState::AlreadyExists`] and [`PushOutcome::Mounted`];
//!    3. otherwise an upload, monolithic or chunked ([`PushOptions::chunked`]), streamed
//!       from the content store on a blocking thread. The registry client hashes the
//!       bytes as they leave and fails the upload *before its last byte is sent* when
//!       they do not match the digest (or the size), so a local blob corrupted on disk
//!       is refused ([`PushError::CorruptBlob`]) and never committed by the registry.
//!
//!    A blob missing from the store is fine only when the registry has it already
//!    (step 1); otherwise it is [`PushError::BlobNotFound`].
//! 3. **Manifests**, only after every blob is there, bottom-up, with their exact bytes
//!    and media type: an index's children by digest, then the top manifest under the
//!    target's tag (`latest` when it names none), or by digest only when the target
//!    reference carries a digest (which must be the manifest's).
//!
//! The first failure stops the push: transfers still running are cancelled (dropped)
//! and no manifest is put, so the registry never holds a manifest whose blobs are
//! missing or wrong. Blobs uploaded before the failure stay in the registry (harmless:
//! content-addressed and unreferenced until a later push names them).
//!
//! Progress ([`Progress`] through a [`ProgressSink`]) is reported per blob:
//! [`ProgressState::Waiting`] for every blob at the start, then
//! [`ProgressState::Uploading`] with the bytes sent and [`ProgressState::Done`], or
//! [`ProgressState::AlreadyExists`] when nothing had to move.
//!
//! Reading manifests and opening blobs use the synchronous [`ContentStore`] directly
//! (small reads: manifests are bounded by [`MAX_MANIFEST_SIZE`]); blob contents are
//! read on tokio's blocking pool. `push_image` must run inside a tokio runtime, as the
//! registry client does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use berth_errdefs::{ErrorKind, HasKind};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::content::{BlobReader, ContentError, ContentStore};
use crate::digest::Digest;
use crate::manifest::{parse_any, Descriptor, Document, ManifestError, MAX_MANIFEST_SIZE};
use crate::progress::{Progress, ProgressSink, ProgressState};
use crate::reference::Reference;
use crate::registry::{
    Client, ManifestRef, PushBlobOptions, PushOutcome, RegistryError, Repository, UploadMethod,
};

/// Deepest nesting of indexes followed (an index of indexes of manifests is depth 2).
pub const MAX_INDEX_DEPTH: usize = 4;
/// Most manifests (indexes included) one push walks.
pub const MAX_MANIFESTS: usize = 4096;
/// Default of [`PushOptions::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 3;

/// Bytes read from the store per piece of an upload.
const READ_PIECE: usize = 256 * 1024;
/// Pieces buffered between the reading thread and the upload (per blob).
const PIECES_BUFFERED: usize = 4;

/// How [`push_image`] pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    /// Most blobs moving at once (0 counts as 1). Default [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// Upload blobs in chunks of this many bytes (`PATCH` requests; the registry client
    /// clamps it to 1 KiB..256 MiB) instead of one `PUT` each.
    pub chunked: Option<usize>,
    /// Repositories on the target's registry that may hold the blobs already: blobs are
    /// mounted from them instead of uploaded. Candidates on other registries, and the
    /// target repository itself, are ignored.
    pub mount_from: Vec<Reference>,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            concurrency: DEFAULT_CONCURRENCY,
            chunked: None,
            mount_from: Vec::new(),
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedBlob {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Skipped (the registry had it), mounted or uploaded.
    pub outcome: PushOutcome,
}

/// What [`push_image`] pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// The digest of the top manifest or index (unchanged: its exact bytes were pushed).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Every config and layer blob, in the order the manifests name them.
    pub blobs: Vec<PushedBlob>,
    /// Every manifest put, in the order put (the top one last).
    pub manifests: Vec<Digest>,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The target reference names no valid repository.
    #[error("invalid push target {reference}: {source}")]
    InvalidTarget {
        /// The target, as given.
        reference: String,
        /// Why.
        source: Box<RegistryError>,
    },
    /// The target reference carries a digest other than the manifest's.
    #[error(
        "push target {reference} names digest {target}, but the manifest to push is {manifest}"
    )]
    TargetDigestMismatch {
        /// The target, as given.
        reference: String,
        /// The digest in the reference.
        target: Digest,
        /// The manifest's digest.
        manifest: Digest,
    },
    /// Reading a manifest or index from the content store failed (kind `NotFound` when it
    /// is not there).
    #[error("reading manifest {digest} from the content store: {source}")]
    ReadManifest {
        /// The manifest.
        digest: Digest,
        /// The store's error.
        source: ContentError,
    },
    /// A manifest in the content store does not hash to its digest.
    #[error("manifest {digest} in the content store is corrupt: its content hashes to {actual}")]
    CorruptManifest {
        /// The manifest.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// A child manifest's size differs from its descriptor in the index.
    #[error("manifest {digest}: the index says {expected} bytes, the content store has {actual}")]
    ManifestSizeMismatch {
        /// The child manifest.
        digest: Digest,
        /// The size in the index.
        expected: u64,
        /// The size of the stored bytes.
        actual: u64,
    },
    /// A manifest or index does not parse.
    #[error("manifest {digest}: {source}")]
    ParseManifest {
        /// The manifest.
        digest: Digest,
        /// The parse error.
        source: ManifestError,
    },
    /// Indexes nested deeper than [`MAX_INDEX_DEPTH`], or more than [`MAX_MANIFESTS`]
    /// manifests.
    #[error("index {digest}: indexes nested more than {MAX_INDEX_DEPTH} deep or more than {MAX_MANIFESTS} manifests")]
    TooManyManifests {
        /// The index where the walk stopped.
        digest: Digest,
    },
    /// Two descriptors give the same blob different sizes.
    #[error("blob {digest} is described with two sizes, {first} and {second}")]
    InconsistentSize {
        /// The blob.
        digest: Digest,
        /// The size of the first descriptor.
        first: u64,
        /// The size of the other one.
        second: u64,
    },
    /// Looking a blob up in the content store failed.
    #[error("blob {digest}: content store lookup: {source}")]
    StatBlob {
        /// The blob.
        digest: Digest,
        /// The store's error.
        source: ContentError,
    },
    /// A blob the registry lacks is not in the content store either.
    #[error("blob {digest} is neither in the content store nor in {repository}")]
    BlobNotFound {
        /// The blob.
        digest: Digest,
        /// The target repository.
        repository: String,
    },
    /// A blob in the content store has another size than its descriptor.
    #[error("blob {digest}: the manifest says {expected} bytes, the content store has {actual}")]
    BlobSizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The stored size.
        actual: u64,
    },
    /// Opening a blob in the content store failed.
    #[error("blob {digest}: opening it in the content store: {source}")]
    OpenBlob {
        /// The blob.
        digest: Digest,
        /// The store's error.
        source: ContentError,
    },
    /// The blob's bytes in the content store do not match its digest or size: the local
    /// copy is corrupt (the upload was stopped before the registry could commit it).
    #[error("blob {digest} in the content store is corrupt (remove the image and pull it again): {source}")]
    CorruptBlob {
        /// The blob.
        digest: Digest,
        /// The registry client's check that caught it.
        source: Box<RegistryError>,
    },
    /// Checking, mounting or uploading a blob failed.
    #[error("pushing blob {digest}: {source}")]
    PushBlob {
        /// The blob.
        digest: Digest,
        /// The registry's error.
        source: Box<RegistryError>,
    },
    /// Putting a manifest failed.
    #[error("putting manifest {digest} as {reference}: {source}")]
    PutManifest {
        /// The manifest.
        digest: Digest,
        /// The tag or digest it was put under.
        reference: String,
        /// The registry's error.
        source: Box<RegistryError>,
    },
}

impl HasKind for PushError {
    fn kind(&self) -> ErrorKind {
        match self {
            PushError::InvalidTarget { .. }
            | PushError::TargetDigestMismatch { .. }
            | PushError::TooManyManifests { .. }
            | PushError::InconsistentSize { .. } => ErrorKind::InvalidArgument,
            PushError::ParseManifest { source, .. } => source.kind(),
            PushError::ReadManifest { source, .. }
            | PushError::StatBlob { source, .. }
            | PushError::OpenBlob { source, .. } => source.kind(),
            PushError::CorruptManifest { .. }
            | PushError::ManifestSizeMismatch { .. }
            | PushError::BlobSizeMismatch { .. }
            | PushError::CorruptBlob { .. } => ErrorKind::FailedPrecondition,
            PushError::BlobNotFound { .. } => ErrorKind::NotFound,
            PushError::PushBlob { source, .. } | PushError::PutManifest { source, .. } => {
                source.kind()
            }
        }
    }
}

/// A manifest to put, with its exact bytes.
#[derive(Debug)]
struct PlannedManifest {
    digest: Digest,
    media_type: &'static str,
    bytes: Bytes,
}

/// A blob to push, and whether the store has it.
#[derive(Debug)]
struct PlannedBlob {
    digest: Digest,
    size: u64,
    in_store: bool,
}

/// What a push will do: manifests bottom-up and the blobs, each once.
#[derive(Debug, Default)]
struct Plan {
    manifests: Vec<PlannedManifest>,
    blobs: Vec<PlannedBlob>,
    blob_sizes: BTreeMap<Digest, u64>,
    seen: BTreeSet<Digest>,
}

impl Plan {
    fn add_blob(&mut self, descriptor: &Descriptor) -> Result<(), PushError> {
        if descriptor
            .layer_type()
            .is_ok_and(|layer_type| layer_type.foreign)
        {
            tracing::debug!(digest = %descriptor.digest, "not pushing a foreign layer");
            return Ok(());
        }
        match self.blob_sizes.get(&descriptor.digest) {
            Some(&first) if first != descriptor.size => Err(PushError::InconsistentSize {
                digest: descriptor.digest.clone(),
                first,
                second: descriptor.size,
            }),
            Some(_) => Ok(()),
            None => {
                self.blob_sizes
                    .insert(descriptor.digest.clone(), descriptor.size);
                self.blobs.push(PlannedBlob {
                    digest: descriptor.digest.clone(),
                    size: descriptor.size,
                    in_store: false,
                });
                Ok(())
            }
        }
    }

    /// Reads, verifies and parses the manifest `digest` and, for an index, its children
    /// first (post-order), adding their blobs.
    fn walk(
        &mut self,
        content: &dyn ContentStore,
        digest: &Digest,
        expected: Option<(&str, u64)>,
        depth: usize,
    ) -> Result<(), PushError> {
        if !self.seen.insert(digest.clone()) {
            return Ok(());
        }
        if depth > MAX_INDEX_DEPTH || self.seen.len() > MAX_MANIFESTS {
            return Err(PushError::TooManyManifests {
                digest: digest.clone(),
            });
        }
        let bytes = content
            .read_to_vec(digest, MAX_MANIFEST_SIZE as u64)
            .map_err(|source| PushError::ReadManifest {
                digest: digest.clone(),
                source,
            })?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(PushError::CorruptManifest {
                digest: digest.clone(),
                actual,
            });
        }
        if let Some((_, size)) = expected {
            let actual = bytes.len() as u64;
            if actual != size {
                return Err(PushError::ManifestSizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual,
                });
            }
        }
        let document =
            parse_any(&bytes, expected.map(|(media_type, _)| media_type)).map_err(|source| {
                PushError::ParseManifest {
                    digest: digest.clone(),
                    source,
                }
            })?;
        match &document {
            Document::Manifest(manifest) => {
                self.add_blob(&manifest.config)?;
                for layer in &manifest.layers {
                    self.add_blob(layer)?;
                }
            }
            Document::Index(index) => {
                for child in &index.manifests {
                    self.walk(
                        content,
                        &child.digest,
                        Some((&child.media_type, child.size)),
                        depth + 1,
                    )?;
                }
            }
        }
        self.manifests.push(PlannedManifest {
            digest: digest.clone(),
            media_type: document.media_type(),
            bytes: Bytes::from(bytes),
        });
        Ok(())
    }

    /// Checks every blob's size in the store (no network yet).
    fn check_store(&mut self, content: &dyn ContentStore) -> Result<(), PushError> {
        for blob in &mut self.blobs {
            let info = content
                .info(&blob.digest)
                .map_err(|source| PushError::StatBlob {
                    digest: blob.digest.clone(),
                    source,
                })?;
            if let Some(info) = info {
                if info.size != blob.size {
                    return Err(PushError::BlobSizeMismatch {
                        digest: blob.digest.clone(),
                        expected: blob.size,
                        actual: info.size,
                    });
                }
                blob.in_store = true;
            }
        }
        Ok(())
    }
}

/// Pushes the manifest or index `manifest_digest`, which must be in `content` with
/// everything it names, to `target` (see the module documentation for the steps).
pub async fn push_image(
    client: &Client,
    content: &dyn ContentStore,
    manifest_digest: &Digest,
    target: &Reference,
    options: PushOptions,
    progress: Arc<dyn ProgressSink>,
) -> Result<PushResult, PushError> {
    let repo = Repository::from_reference(target).map_err(|source| PushError::InvalidTarget {
        reference: target.to_string(),
        source: Box::new(source),
    })?;
    let top_ref = match target.digest() {
        Some(d) if d != manifest_digest => {
            return Err(PushError::TargetDigestMismatch {
                reference: target.to_string(),
                target: d.clone(),
                manifest: manifest_digest.clone(),
            })
        }
        Some(d) => ManifestRef::Digest(d.clone()),
        None => ManifestRef::from_reference(target),
    };

    let mut plan = Plan::default();
    plan.walk(content, manifest_digest, None, 0)?;
    plan.check_store(content)?;

    let sources = mount_sources(&repo, &options.mount_from);
    let method = match options.chunked {
        Some(chunk_size) => UploadMethod::Chunked { chunk_size },
        None => UploadMethod::Monolithic,
    };
    for blob in &plan.blobs {
        progress.report(Progress {
            digest: blob.digest.clone(),
            state: ProgressState::Waiting,
            current: 0,
            total: Some(blob.size),
        });
    }
    let job = BlobJob {
        client,
        content,
        repo: &repo,
        sources: &sources,
        method,
        progress: &progress,
    };
    let mut outcomes: Vec<Option<PushOutcome>> = vec![None; plan.blobs.len()];
    {
        // The futures are made up front (they are lazy): a closure inside the stream's
        // type would keep the whole push from being `Send` for `tokio::spawn`.
        let job = &job;
        let transfers: Vec<_> = plan
            .blobs
            .iter()
            .enumerate()
            .map(|(i, blob)| async move { (i, job.push(blob).await) })
            .collect();
        let mut transfers =
            futures_util::stream::iter(transfers).buffer_unordered(options.concurrency.max(1));
        while let Some((i, result)) = transfers.next().await {
            // An error drops `transfers`, cancelling the transfers still running.
            let outcome = result?;
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(outcome);
            }
        }
    }
    let blobs = plan
        .blobs
        .iter()
        .zip(outcomes)
        .map(|(blob, outcome)| PushedBlob {
            digest: blob.digest.clone(),
            size: blob.size,
            outcome: outcome.unwrap_or(PushOutcome::Uploaded),
        })
        .collect();

    let mut manifests = Vec::with_capacity(plan.manifests.len());
    let top_index = plan.manifests.len().saturating_sub(1);
    let mut size = 0;
    for (i, m) in plan.manifests.into_iter().enumerate() {
        let reference = if i == top_index {
            size = m.bytes.len() as u64;
            top_ref.clone()
        } else {
            ManifestRef::Digest(m.digest.clone())
        };
        tracing::debug!(digest = %m.digest, %reference, repository = %repo, "putting manifest");
        client
            .put_manifest(&repo, &reference, m.media_type, m.bytes)
            .await
            .map_err(|source| PushError::PutManifest {
                digest: m.digest.clone(),
                reference: reference.to_string(),
                source: Box::new(source),
            })?;
        manifests.push(m.digest);
    }
    Ok(PushResult {
        digest: manifest_digest.clone(),
        size,
        blobs,
        manifests,
    })
}

/// The mount candidates that can work: same registry, another repository, each once.
fn mount_sources(target: &Repository, candidates: &[Reference]) -> Vec<Repository> {
    let mut sources: Vec<Repository> = Vec::new();
    for candidate in candidates {
        match Repository::from_reference(candidate) {
            Ok(repo) if repo.host() == target.host() && repo != *target => {
                if !sources.contains(&repo) {
                    sources.push(repo);
                }
            }
            Ok(_) => {
                tracing::debug!(%candidate, "mount candidate is on another registry or the target itself")
            }
            Err(e) => tracing::debug!(%candidate, error = %e, "unusable mount candidate"),
        }
    }
    sources
}

/// What every blob transfer shares.
struct BlobJob<'a> {
    client: &'a Client,
    content: &'a dyn ContentStore,
    repo: &'a Repository,
    sources: &'a [Repository],
    method: UploadMethod,
    progress: &'a Arc<dyn ProgressSink>,
}

impl BlobJob<'_> {
    async fn push(&self, blob: &PlannedBlob) -> Result<PushOutcome, PushError> {
        let digest = &blob.digest;
        let registry_error = |source: RegistryError| PushError::PushBlob {
            digest: digest.clone(),
            source: Box::new(source),
        };
        if self
            .client
            .blob_exists(self.repo, digest)
            .await
            .map_err(registry_error)?
            .is_some()
        {
            self.progress.report(Progress {
                digest: digest.clone(),
                state: ProgressState::AlreadyExists,
                current: blob.size,
                total: Some(blob.size),
            });
            return Ok(PushOutcome::AlreadyExists);
        }
        if !blob.in_store {
            return Err(PushError::BlobNotFound {
                digest: digest.clone(),
                repository: self.repo.to_string(),
            });
        }
        let mount_from = self.mount_source(digest).await;
        let reader = self
            .content
            .open(digest)
            .map_err(|source| PushError::OpenBlob {
                digest: digest.clone(),
                source,
            })?;
        let options = PushBlobOptions {
            method: self.method,
            check_exists: false,
            mount_from,
        };
        self.client
            .push_blob(
                self.repo,
                digest,
                blob.size,
                StoreReader::new(reader),
                &options,
                self.progress.clone(),
            )
            .await
            .map_err(|source| match source {
                RegistryError::UploadDigestMismatch { .. }
                | RegistryError::UploadSizeMismatch { .. } => PushError::CorruptBlob {
                    digest: digest.clone(),
                    source: Box::new(source),
                },
                source => PushError::PushBlob {
                    digest: digest.clone(),
                    source: Box::new(source),
                },
            })
    }

    /// The repository to mount `digest` from: the only candidate (the registry decides),
    /// or the first of several that has it. Failures to ask only mean "not from there".
    async fn mount_source(&self, digest: &Digest) -> Option<Repository> {
        match self.sources {
            [] => None,
            [only] => Some(only.clone()),
            several => {
                for source in several {
                    match self.client.blob_exists(source, digest).await {
                        Ok(Some(_)) => return Some(source.clone()),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(%digest, %source, error = %e, "cannot ask mount candidate")
                        }
                    }
                }
                None
            }
        }
    }
}

/// An [`AsyncRead`] over a blob of the (synchronous) content store: the first read
/// starts a thread of tokio's blocking pool that reads pieces into a small channel.
/// Dropping the reader stops that thread at its next piece.
struct StoreReader {
    reader: Option<Box<dyn BlobReader>>,
    pieces: Option<mpsc::Receiver<std::io::Result<Bytes>>>,
    pending: Bytes,
}

impl StoreReader {
    fn new(reader: Box<dyn BlobReader>) -> StoreReader {
        StoreReader {
            reader: Some(reader),
            pieces: None,
            pending: Bytes::new(),
        }
    }
}

/// Reads `reader` to its end into `tx` (on a blocking thread).
fn pump(mut reader: Box<dyn BlobReader>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let mut buf = vec![0u8; READ_PIECE];
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

impl AsyncRead for StoreReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.pieces.is_none() {
                let Some(reader) = this.reader.take() else {
                    // End of data (or never started and nothing left).
                    return Poll::Ready(Ok(()));
                };
                let handle =
                    tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
                let (tx, rx) = mpsc::channel(PIECES_BUFFERED);
                handle.spawn_blocking(move || pump(reader, tx));
                this.pieces = Some(rx);
            }
            let Some(pieces) = this.pieces.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(pieces.poll_recv(cx)) {
                Some(Ok(piece)) => this.pending = piece,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => {
                    this.pieces = None;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::content::LocalStore;
    use crate::manifest::{media_type, Format};
    use crate::manifest::{Index, Manifest};
    use tokio::io::AsyncReadExt as _;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn put_json(store: &LocalStore, value: &impl serde::Serialize) -> (Digest, u64) {
        let bytes = serde_json::to_vec(value).unwrap();
        (store.put_bytes(&bytes).unwrap(), bytes.len() as u64)
    }

    /// An image with a config and `layers` layers; returns the manifest's descriptor.
    fn image(store: &LocalStore, seed: u8, layers: usize) -> Descriptor {
        let config = store.put_bytes(&[b'{', seed, b'}']).unwrap();
        let layers = (0..layers)
            .map(|i| {
                let data = vec![seed.wrapping_add(i as u8); 1000 + i];
                let d = store.put_bytes(&data).unwrap();
                Descriptor::new(media_type::OCI_LAYER_GZIP, d, data.len() as u64)
            })
            .collect();
        let manifest = Manifest::new(
            Format::Oci,
            Descriptor::new(media_type::OCI_CONFIG, config, 3),
            layers,
        );
        let (d, size) = put_json(store, &manifest);
        Descriptor::new(media_type::OCI_MANIFEST, d, size)
    }

    #[test]
    fn plan_walks_index_bottom_up_and_dedupes_blobs() {
        let (_dir, store) = store();
        let a = image(&store, 1, 2);
        let b = image(&store, 1, 3); // shares config and two layers with `a`
        let index = Index::new(Format::Oci, vec![a.clone(), b.clone(), a.clone()]);
        let (top, _) = put_json(&store, &index);
        let mut plan = Plan::default();
        plan.walk(&store, &top, None, 0).unwrap();
        plan.check_store(&store).unwrap();
        let order: Vec<&Digest> = plan.manifests.iter().map(|m| &m.digest).collect();
        assert_eq!(order, [&a.digest, &b.digest, &top]);
        assert_eq!(plan.manifests[2].media_type, media_type::OCI_INDEX);
        assert_eq!(plan.blobs.len(), 4, "{:?}", plan.blobs);
        assert!(plan.blobs.iter().all(|b| b.in_store));

        // A foreign layer is left out.
        let fl = Descriptor {
            urls: vec!["https://example.com/l".into()],
            ..Descriptor::new(
                media_type::DOCKER_FOREIGN_LAYER_GZIP,
                Digest::sha256_of(b"f"),
                1,
            )
        };
        let manifest = Manifest::new(
            Format::Docker,
            Descriptor::new(media_type::DOCKER_CONFIG, Digest::sha256_of(b"c"), 1),
            vec![fl],
        );
        let (d, _) = put_json(&store, &manifest);
        let mut plan = Plan::default();
        plan.walk(&store, &d, None, 0).unwrap();
        plan.check_store(&store).unwrap();
        assert_eq!(plan.blobs.len(), 1);
        assert!(!plan.blobs[0].in_store);
    }

    #[test]
    fn plan_refuses_bad_content() {
        let (_dir, store) = store();
        // Missing manifest.
        let missing = Digest::sha256_of(b"nope");
        let e = Plan::default().walk(&store, &missing, None, 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

        // Child size differs from its descriptor.
        let mut a = image(&store, 2, 1);
        a.size += 1;
        let (top, _) = put_json(&store, &Index::new(Format::Oci, vec![a.clone()]));
        let e = Plan::default().walk(&store, &top, None, 0).unwrap_err();
        assert!(matches!(e, PushError::ManifestSizeMismatch { .. }), "{e}");

        // Same blob, two sizes.
        let blob = store.put_bytes(b"layer").unwrap();
        let manifest = Manifest::new(
            Format::Oci,
            Descriptor::new(media_type::OCI_CONFIG, store.put_bytes(b"{}").unwrap(), 2),
            vec![
                Descriptor::new(media_type::OCI_LAYER_TAR, blob.clone(), 5),
                Descriptor::new(media_type::OCI_LAYER_TAR, blob.clone(), 6),
            ],
        );
        let (d, _) = put_json(&store, &manifest);
        let e = Plan::default().walk(&store, &d, None, 0).unwrap_err();
        assert!(matches!(e, PushError::InconsistentSize { .. }), "{e}");
        assert!(e.to_string().contains(&blob.to_string()), "{e}");

        // A blob whose stored size differs from the descriptor is refused before any
        // network traffic.
        let manifest = Manifest::new(
            Format::Oci,
            Descriptor::new(media_type::OCI_CONFIG, store.put_bytes(b"{}").unwrap(), 2),
            vec![Descriptor::new(media_type::OCI_LAYER_TAR, blob.clone(), 7)],
        );
        let (d, _) = put_json(&store, &manifest);
        let mut plan = Plan::default();
        plan.walk(&store, &d, None, 0).unwrap();
        let e = plan.check_store(&store).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");

        // An index naming itself through a chain deeper than allowed.
        let mut child = image(&store, 3, 1);
        for _ in 0..=MAX_INDEX_DEPTH {
            let (d, size) = put_json(&store, &Index::new(Format::Oci, vec![child]));
            child = Descriptor::new(media_type::OCI_INDEX, d, size);
        }
        let e = Plan::default()
            .walk(&store, &child.digest, None, 0)
            .unwrap_err();
        assert!(matches!(e, PushError::TooManyManifests { .. }), "{e}");
    }

    #[test]
    fn corrupt_manifest_is_refused() {
        let (dir, store) = store();
        let a = image(&store, 4, 1);
        let path = dir.path().join("blobs/sha256").join(a.digest.hex());
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] = b' ';
        std::fs::write(&path, &bytes).unwrap();
        let e = Plan::default()
            .walk(&store, &a.digest, None, 0)
            .unwrap_err();
        assert!(matches!(e, PushError::CorruptManifest { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_reader_streams_the_blob() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..(3 * READ_PIECE + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let d = store.put_bytes(&data).unwrap();
        let mut reader = StoreReader::new(store.open(&d).unwrap());
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert!(out == data);
        // Dropping a reader mid-way is fine.
        let mut reader = StoreReader::new(store.open(&d).unwrap());
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).await.unwrap();
        assert_eq!(&first[..], &data[..10]);
        drop(reader);
    }

    #[test]
    fn mount_sources_filter() {
        let target = Repository::new("127.0.0.1:5000", "a/target").unwrap();
        let refs: Vec<Reference> = [
            "127.0.0.1:5000/a/target:v1",
            "127.0.0.1:5000/a/one:v1",
            "127.0.0.1:5001/a/two:v1",
            "127.0.0.1:5000/a/one:v2",
            "127.0.0.1:5000/b/three",
        ]
        .iter()
        .map(|s| Reference::parse_normalized(s).unwrap())
        .collect();
        let names: Vec<String> = mount_sources(&target, &refs)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["127.0.0.1:5000/a/one", "127.0.0.1:5000/b/three"]);
    }

    #[test]
    fn error_kinds() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            PushError::BlobNotFound {
                digest: d.clone(),
                repository: "r".into()
            }
            .kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            PushError::InconsistentSize {
                digest: d,
                first: 1,
                second: 2
            }
            .kind(),
            ErrorKind::InvalidArgument
        );
    }
}
