//! Layers into snapshots: the one-pass download-and-unpack pipeline, unpacking from the
//! content store, resuming partial downloads, and the chain commit (see the module
//! docs of [`service`](super) for the design).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use berth_errdefs::{ErrorKind, HasKind};
use bytes::{Buf, Bytes};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::content::{ContentError, ContentStore, Ingest};
use crate::digest::{Digest, Verifier};
use crate::layer::{self, ApplyStats, Compression};
use crate::manifest::{Descriptor, Manifest};
use crate::progress::{Progress, ProgressSink, ProgressState};
use crate::registry::{BlobStream, RegistryError, Repository};
use crate::snapshot::{writable_dir, Kind, SnapshotError, Snapshotter};

use super::{Inner, LayerId, Lease, ServiceError, EXTRACT_PREFIX};

/// Chunks buffered between the download and the unpacking thread (each one is what the
/// HTTP client yields, typically 8–64 KiB).
const PIPE_DEPTH: usize = 16;
/// `Extracting` progress is reported every this many compressed bytes.
const REPORT_EVERY: u64 = 1 << 20;

/// One layer to unpack.
#[derive(Debug, Clone)]
pub(crate) struct LayerJob {
    pub id: LayerId,
    pub desc: Descriptor,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

/// A layer unpacked and verified into an active snapshot without parent, waiting for
/// its chain commit.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub key: String,
    pub dir: PathBuf,
}

/// How one layer ended.
#[derive(Debug)]
pub(crate) enum LayerOutcome {
    /// Snapshot and blob were there already.
    Present,
    /// The snapshot was there; the blob was downloaded.
    Fetched,
    /// Unpacked, to be committed.
    Staged(Staged),
}

pub(crate) fn report(
    progress: &dyn ProgressSink,
    digest: &Digest,
    state: ProgressState,
    current: u64,
    total: u64,
) {
    progress.report(Progress {
        digest: digest.clone(),
        state,
        current,
        total: Some(total),
    });
}

/// What travels from the download to the unpacking thread.
enum Piece {
    Data(Bytes),
    End,
    Failed(RegistryError),
}

enum PipeFailure {
    Download(RegistryError),
    Store(ContentError),
}

/// The blocking end of the pipe: a [`Read`] of the blob's bytes that writes every chunk
/// into the content store's ingest before handing it on (the tee).
struct PipeReader {
    rx: mpsc::Receiver<Piece>,
    chunk: Bytes,
    ingest: Box<dyn Ingest>,
    failure: Option<PipeFailure>,
    /// The download said it is complete.
    ended: bool,
    /// The download side went away without saying so (interrupted).
    closed: bool,
}

impl PipeReader {
    fn new(rx: mpsc::Receiver<Piece>, ingest: Box<dyn Ingest>) -> PipeReader {
        PipeReader {
            rx,
            chunk: Bytes::new(),
            ingest,
            failure: None,
            ended: false,
            closed: false,
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            if self.failure.is_some() {
                return Err(io::Error::other("layer download failed"));
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(bytes)) => {
                    if let Err(e) = self.ingest.write_chunk(&bytes) {
                        self.failure = Some(PipeFailure::Store(e));
                    } else {
                        self.chunk = bytes;
                    }
                }
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(e)) => self.failure = Some(PipeFailure::Download(e)),
                None => {
                    self.closed = true;
                    return Err(io::Error::other("layer download interrupted"));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.chunk.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.chunk.advance(n);
        Ok(n)
    }
}

/// Forwards the stream into the pipe until it ends, fails, or the reader is gone.
async fn pump(mut stream: BlobStream, tx: mpsc::Sender<Piece>) {
    loop {
        let piece = match stream.next().await {
            Some(Ok(bytes)) => Piece::Data(bytes),
            Some(Err(e)) => Piece::Failed(e),
            None => Piece::End,
        };
        let last = !matches!(piece, Piece::Data(_));
        if tx.send(piece).await.is_err() || last {
            return;
        }
    }
}

/// Reads a stored blob, hashing it (to catch on-disk corruption) and reporting
/// `Extracting` progress.
struct StoredReader<R> {
    inner: R,
    verifier: Verifier,
    reported: u64,
    digest: Digest,
    total: u64,
    progress: Arc<dyn ProgressSink>,
}

impl<R: Read> Read for StoredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.verifier.update(buf.get(..n).unwrap_or_default());
        let done = self.verifier.len();
        if done - self.reported >= REPORT_EVERY {
            self.reported = done;
            report(
                &*self.progress,
                &self.digest,
                ProgressState::Extracting,
                done,
                self.total,
            );
        }
        Ok(n)
    }
}

/// Whether the partial blob of a failed download is worth keeping for a resume.
fn resumable(e: &ServiceError) -> bool {
    match e {
        ServiceError::LayerInterrupted { .. } => true,
        ServiceError::LayerDownload { source, .. } => source.kind() == ErrorKind::Unavailable,
        _ => false,
    }
}

fn compression(job: &LayerJob) -> Result<Compression, ServiceError> {
    job.desc
        .layer_type()
        .map(|t| t.compression)
        .map_err(|source| ServiceError::Manifest {
            reference: job.id.to_string(),
            source,
        })
}

/// Decompresses and applies `blob` to `dir`; whatever the applier leaves unread (past
/// the tar's end) is read too, so the caller's hash covers the whole blob.
fn apply_blob<R: Read + Send>(
    inner: &Inner,
    job: &LayerJob,
    dir: &std::path::Path,
    blob: &mut R,
    compression: Compression,
) -> Result<ApplyStats, layer::LayerError> {
    let stats = {
        let decoded = layer::decompress(&mut *blob, compression)?;
        layer::apply(dir, decoded, &inner.apply)?
    };
    io::copy(blob, &mut io::sink()).map_err(|source| layer::LayerError::Decompress { source })?;
    tracing::debug!(layer = %job.id, entries = stats.entries, bytes = stats.bytes, "layer unpacked");
    Ok(stats)
}

impl Inner {
    /// Runs `f` on a blocking thread.
    pub(crate) async fn run_blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&Arc<Inner>) -> Result<T, ServiceError> + Send + 'static,
    {
        let inner = self.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }

    /// Removes the `extract/` snapshots no operation in flight holds (left by an
    /// interrupted pull). The snapshot list is read before the leases: a key leased
    /// after that was prepared after it too, so it is not in the list.
    pub(crate) fn clean_unleased_extracts(&self) -> Result<(), ServiceError> {
        let mut keys = Vec::new();
        self.snapshots.walk(&mut |info| {
            if info.name.starts_with(EXTRACT_PREFIX) {
                keys.push(info.name.clone());
            }
        })?;
        let leased: Vec<String> = {
            let leases = self
                .leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.iter()
                .filter(|k| leases.snapshots.contains_key(*k))
                .cloned()
                .collect()
        };
        for key in keys.iter().filter(|k| !leased.contains(k)) {
            self.remove_snapshot_quietly(key);
        }
        Ok(())
    }

    /// A fresh active snapshot without parent to unpack a layer into, under an
    /// `extract/<nonce>/<label>` key.
    pub(crate) fn stage(&self, lease: &Lease, label: &str) -> Result<Staged, ServiceError> {
        let key = format!("{EXTRACT_PREFIX}{}/{label}", self.next_nonce());
        lease.hold_blocking(&[], std::slice::from_ref(&key));
        let mounts = self.snapshots.prepare(&key, None)?;
        match writable_dir(&mounts) {
            Some(dir) => Ok(Staged { key, dir }),
            None => {
                self.remove_snapshot_quietly(&key);
                Err(SnapshotError::WrongKind {
                    key,
                    expected: "writable",
                    actual: Kind::View,
                }
                .into())
            }
        }
    }

    /// Unpacks `job` from its blob in the content store (no download).
    pub(crate) fn unpack_stored(
        &self,
        lease: &Lease,
        job: &LayerJob,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<Staged, ServiceError> {
        let compression = compression(job)?;
        let staged = self.stage(lease, &job.chain_id.to_string())?;
        let digest = &job.desc.digest;
        let result = (|| {
            let blob = self
                .content
                .open(digest)
                .map_err(|source| ServiceError::LayerStore {
                    layer: job.id.clone(),
                    source,
                })?;
            report(
                &**progress,
                digest,
                ProgressState::Extracting,
                0,
                job.desc.size,
            );
            let mut reader = StoredReader {
                inner: blob,
                verifier: Verifier::new(digest.algorithm()),
                reported: 0,
                digest: digest.clone(),
                total: job.desc.size,
                progress: progress.clone(),
            };
            let applied = apply_blob(self, job, &staged.dir, &mut reader, compression);
            if applied.is_err() {
                // Corrupt bytes on disk would explain the error: hash the rest.
                let _ = io::copy(&mut reader, &mut io::sink());
            }
            let actual = reader.verifier.finish();
            if actual != *digest {
                if let Err(e) = self.content.delete(digest) {
                    tracing::warn!(%digest, error = %e, "cannot delete corrupt blob");
                }
                return Err(ServiceError::CorruptBlob {
                    digest: digest.clone(),
                    actual,
                });
            }
            let stats = applied.map_err(|source| ServiceError::LayerUnpack {
                layer: job.id.clone(),
                source,
            })?;
            if stats.diff_id != job.diff_id {
                return Err(ServiceError::DiffIdMismatch {
                    layer: job.id.clone(),
                    expected: job.diff_id.clone(),
                    actual: stats.diff_id,
                });
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(staged),
            Err(e) => {
                self.remove_snapshot_quietly(&staged.key);
                Err(e)
            }
        }
    }

    /// The one-pass pipeline: download → ingest (tee) → decompress → apply.
    async fn stream_unpack(
        self: &Arc<Self>,
        repo: &Repository,
        job: &LayerJob,
        ingest: Box<dyn Ingest>,
        lease: &Arc<Lease>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<Staged, ServiceError> {
        let compression = compression(job)?;
        let stream = self
            .client
            .fetch_blob(repo, &job.desc.digest, job.desc.size, progress.clone())
            .await
            .map_err(|source| ServiceError::LayerDownload {
                layer: job.id.clone(),
                source: Box::new(source),
            })?;
        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        let (job2, lease2, progress2) = (job.clone(), lease.clone(), progress.clone());
        let unpack = self.run_blocking(move |inner| {
            let job = job2;
            let staged = inner.stage(&lease2, &job.chain_id.to_string())?;
            let mut pipe = PipeReader::new(rx, ingest);
            let applied = apply_blob(inner, &job, &staged.dir, &mut pipe, compression);
            if applied.is_err() && pipe.failure.is_none() && !pipe.closed {
                // A tar or decompression error may come from corrupt bytes: let the
                // download finish, so its digest check names the real cause.
                let _ = io::copy(&mut pipe, &mut io::sink());
            }
            let PipeReader {
                ingest,
                failure,
                ended,
                closed,
                ..
            } = pipe;
            let layer = || job.id.clone();
            let verdict = match (failure, applied) {
                (Some(PipeFailure::Download(source)), _) => Err(ServiceError::LayerDownload {
                    layer: layer(),
                    source: Box::new(source),
                }),
                (Some(PipeFailure::Store(source)), _) => Err(ServiceError::LayerStore {
                    layer: layer(),
                    source,
                }),
                (None, Err(_)) if closed => Err(ServiceError::LayerInterrupted { layer: layer() }),
                (None, Err(source)) => Err(ServiceError::LayerUnpack {
                    layer: layer(),
                    source,
                }),
                (None, Ok(_)) if !ended => Err(ServiceError::LayerInterrupted { layer: layer() }),
                (None, Ok(stats)) if stats.diff_id != job.diff_id => {
                    Err(ServiceError::DiffIdMismatch {
                        layer: layer(),
                        expected: job.diff_id.clone(),
                        actual: stats.diff_id,
                    })
                }
                (None, Ok(_)) => Ok(()),
            };
            let result = match verdict {
                Ok(()) => {
                    report(
                        &*progress2,
                        &job.desc.digest,
                        ProgressState::Verifying,
                        job.desc.size,
                        job.desc.size,
                    );
                    match ingest.commit() {
                        Ok(_) => {
                            report(
                                &*progress2,
                                &job.desc.digest,
                                ProgressState::Extracting,
                                job.desc.size,
                                job.desc.size,
                            );
                            Ok(())
                        }
                        Err(source) => Err(ServiceError::LayerStore {
                            layer: layer(),
                            source,
                        }),
                    }
                }
                Err(e) => {
                    if resumable(&e) {
                        drop(ingest);
                    } else if let Err(abort) = ingest.abort() {
                        tracing::warn!(layer = %job.id, error = %abort, "cannot remove partial blob");
                    }
                    Err(e)
                }
            };
            match result {
                Ok(()) => Ok(staged),
                Err(e) => {
                    inner.remove_snapshot_quietly(&staged.key);
                    Err(e)
                }
            }
        });
        let (unpacked, ()) = tokio::join!(unpack, pump(stream, tx));
        unpacked
    }

    /// Downloads `job`'s blob into the content store only (resuming a partial
    /// download when there is one), and commits it.
    async fn download_to_store(
        self: &Arc<Self>,
        repo: &Repository,
        job: &LayerJob,
        ingest: Option<Box<dyn Ingest>>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<(), ServiceError> {
        let layer = || job.id.clone();
        let store_err = |source| ServiceError::LayerStore {
            layer: job.id.clone(),
            source,
        };
        let digest = job.desc.digest.clone();
        let size = job.desc.size;
        let mut ingest = match ingest {
            Some(ingest) => ingest,
            None => {
                let d = digest.clone();
                match self
                    .run_blocking(move |inner| Ok(inner.content.writer(&d, Some(size))))
                    .await?
                {
                    Ok(ingest) => ingest,
                    Err(ContentError::AlreadyExists { .. }) => return Ok(()),
                    Err(e) => return Err(store_err(e)),
                }
            }
        };
        // The prefix an earlier attempt left, hashed from disk (a damaged one shows up
        // as a digest mismatch at the end, and the blob is fetched again from zero).
        let (verifier, ingest_back) = self
            .run_blocking(move |_| {
                let v = if ingest.offset() == 0 {
                    Ok(Verifier::new(ingest.expected().algorithm()))
                } else {
                    ingest.verifier()
                };
                Ok((v, ingest))
            })
            .await?;
        ingest = ingest_back;
        let (verifier, resumed) = match verifier {
            Ok(v) => {
                let resumed = !v.is_empty();
                (v, resumed)
            }
            Err(e) => {
                tracing::warn!(layer = %job.id, error = %e, "cannot resume partial blob; starting over");
                ingest.reset().map_err(store_err)?;
                (Verifier::new(digest.algorithm()), false)
            }
        };
        if resumed {
            tracing::info!(layer = %job.id, offset = verifier.len(), "resuming download");
        }
        let stream = if verifier.len() == size {
            None
        } else {
            Some(
                self.client
                    .fetch_blob_resume(repo, &digest, size, verifier, progress.clone())
                    .await
                    .map_err(|source| ServiceError::LayerDownload {
                        layer: layer(),
                        source: Box::new(source),
                    })?,
            )
        };
        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        let (job2, progress2) = (job.clone(), progress.clone());
        let store = self.run_blocking(move |_| {
            let job = job2;
            let layer = || job.id.clone();
            let mut pipe = PipeReader::new(rx, ingest);
            let copied = io::copy(&mut pipe, &mut io::sink());
            let PipeReader {
                ingest,
                failure,
                ended,
                ..
            } = pipe;
            let verdict = match (failure, copied) {
                (Some(PipeFailure::Download(source)), _) => Err(ServiceError::LayerDownload {
                    layer: layer(),
                    source: Box::new(source),
                }),
                (Some(PipeFailure::Store(source)), _) => Err(ServiceError::LayerStore {
                    layer: layer(),
                    source,
                }),
                (None, _) if !ended => Err(ServiceError::LayerInterrupted { layer: layer() }),
                (None, _) => Ok(()),
            };
            match verdict {
                Ok(()) => {
                    report(
                        &*progress2,
                        &job.desc.digest,
                        ProgressState::Verifying,
                        job.desc.size,
                        job.desc.size,
                    );
                    ingest
                        .commit()
                        .map(|_| ())
                        .map_err(|source| ServiceError::LayerStore {
                            layer: layer(),
                            source,
                        })
                }
                Err(e) => {
                    if resumable(&e) {
                        drop(ingest);
                    } else if let Err(abort) = ingest.abort() {
                        tracing::warn!(layer = %job.id, error = %abort, "cannot remove partial blob");
                    }
                    Err(e)
                }
            }
        });
        let pumped = async move {
            match stream {
                Some(stream) => pump(stream, tx).await,
                None => {
                    let _ = tx.send(Piece::End).await;
                }
            }
        };
        let (stored, ()) = tokio::join!(store, pumped);
        // A damaged resumed prefix: the partial blob is gone, fetch it again whole.
        let damaged = match &stored {
            Err(ServiceError::LayerDownload { source, .. }) => {
                matches!(**source, RegistryError::BlobDigestMismatch { .. })
            }
            Err(ServiceError::LayerStore { source, .. }) => matches!(
                source,
                ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. }
            ),
            _ => false,
        };
        if resumed && damaged {
            tracing::warn!(layer = %job.id, "resumed blob did not verify; downloading it again");
            return Box::pin(self.download_to_store(repo, job, None, progress)).await;
        }
        stored
    }

    /// One layer of a pull or unpack (see the module docs for the cases).
    async fn layer(
        self: &Arc<Self>,
        source: Option<&Repository>,
        job: &LayerJob,
        lease: &Arc<Lease>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<LayerOutcome, ServiceError> {
        let _layer = self.layer_lock(&job.desc.digest).await;
        let _permit = self.downloads.clone().acquire_owned().await.ok();
        let (chain, digest) = (job.chain_id.to_string(), job.desc.digest.clone());
        let (committed, stored) = self
            .run_blocking(move |inner| Ok((inner.is_committed(&chain)?, inner.has_blob(&digest)?)))
            .await?;
        let missing = || ServiceError::LayerMissing {
            layer: job.id.clone(),
        };
        if committed && stored {
            report(
                &**progress,
                &job.desc.digest,
                ProgressState::AlreadyExists,
                job.desc.size,
                job.desc.size,
            );
            return Ok(LayerOutcome::Present);
        }
        if committed {
            let repo = source.ok_or_else(missing)?;
            self.download_to_store(repo, job, None, progress).await?;
            return Ok(LayerOutcome::Fetched);
        }
        let from_store = |inner: Arc<Inner>| {
            let (job, lease, progress) = (job.clone(), lease.clone(), progress.clone());
            async move {
                inner
                    .run_blocking(move |inner| inner.unpack_stored(&lease, &job, &progress))
                    .await
                    .map(LayerOutcome::Staged)
            }
        };
        if stored {
            return from_store(self.clone()).await;
        }
        let repo = source.ok_or_else(missing)?;
        let (d, size) = (job.desc.digest.clone(), job.desc.size);
        let ingest = match self
            .run_blocking(move |inner| Ok(inner.content.writer(&d, Some(size))))
            .await?
        {
            Ok(ingest) => ingest,
            Err(ContentError::AlreadyExists { .. }) => return from_store(self.clone()).await,
            Err(source) => {
                return Err(ServiceError::LayerStore {
                    layer: job.id.clone(),
                    source,
                })
            }
        };
        if ingest.offset() > 0 {
            // A partial download survived a crash: finish it, then unpack from the store.
            self.download_to_store(repo, job, Some(ingest), progress)
                .await?;
            return from_store(self.clone()).await;
        }
        self.stream_unpack(repo, job, ingest, lease, progress)
            .await
            .map(LayerOutcome::Staged)
    }

    /// Commits a staged layer as chain ID `chain`, on `parent` (see the module docs:
    /// the unpacked directory is renamed into a snapshot prepared on the parent).
    pub(crate) fn commit_chain(
        &self,
        lease: &Lease,
        staged: &Staged,
        chain: &Digest,
        parent: Option<&Digest>,
    ) -> Result<(), ServiceError> {
        let name = chain.to_string();
        let commit = |key: &str| match self.snapshots.commit(&name, key) {
            Ok(()) | Err(SnapshotError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(ServiceError::from(e)),
        };
        let result = (|| {
            if self.is_committed(&name)? {
                return Ok(());
            }
            let Some(parent) = parent else {
                return commit(&staged.key);
            };
            let key = format!("{}/commit", staged.key);
            lease.hold_blocking(&[], std::slice::from_ref(&key));
            let mounts = self.snapshots.prepare(&key, Some(&parent.to_string()))?;
            let moved = (|| {
                let upper = writable_dir(&mounts).ok_or_else(|| SnapshotError::WrongKind {
                    key: key.clone(),
                    expected: "writable",
                    actual: Kind::View,
                })?;
                // The upper directory is empty: rename(2) replaces it atomically.
                std::fs::rename(&staged.dir, &upper).map_err(|source| ServiceError::Scratch {
                    path: staged.dir.clone(),
                    source,
                })?;
                commit(&key)
            })();
            // Gone after a commit; removed otherwise.
            self.remove_snapshot_quietly(&key);
            moved
        })();
        self.remove_snapshot_quietly(&staged.key);
        result
    }

    /// Unpacks (downloading from `source` what the content store lacks) every layer of
    /// `manifest` in parallel, then commits them in chain order. On failure nothing new
    /// is committed and every partial snapshot is removed.
    pub(crate) async fn unpack_layers(
        self: &Arc<Self>,
        source: Option<&Repository>,
        manifest: &Manifest,
        diff_ids: &[Digest],
        chains: &[Digest],
        lease: &Arc<Lease>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<(), ServiceError> {
        let count = manifest.layers.len();
        let jobs: Vec<LayerJob> = manifest
            .layers
            .iter()
            .zip(diff_ids)
            .zip(chains)
            .enumerate()
            .map(|(i, ((desc, diff_id), chain_id))| LayerJob {
                id: LayerId {
                    index: i + 1,
                    count,
                    digest: desc.digest.clone(),
                },
                desc: desc.clone(),
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
            })
            .collect();
        let digests: Vec<Digest> = jobs.iter().map(|j| j.desc.digest.clone()).collect();
        let names: Vec<String> = chains.iter().map(Digest::to_string).collect();
        lease.hold(&digests, &names).await;
        for job in &jobs {
            report(
                &**progress,
                &job.desc.digest,
                ProgressState::Waiting,
                0,
                job.desc.size,
            );
        }
        let results = futures_util::future::join_all(
            jobs.iter()
                .map(|job| self.layer(source, job, lease, progress)),
        )
        .await;
        let mut outcomes = Vec::with_capacity(count);
        let mut first_error = None;
        for result in results {
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let lease = lease.clone();
        let progress = progress.clone();
        self.run_blocking(move |inner| {
            if let Some(e) = first_error {
                for outcome in &outcomes {
                    if let LayerOutcome::Staged(s) = outcome {
                        inner.remove_snapshot_quietly(&s.key);
                    }
                }
                return Err(e);
            }
            let mut failed = None;
            for (i, (outcome, job)) in outcomes.iter().zip(&jobs).enumerate() {
                match outcome {
                    LayerOutcome::Staged(staged) if failed.is_some() => {
                        inner.remove_snapshot_quietly(&staged.key);
                    }
                    LayerOutcome::Staged(staged) => {
                        let parent = i.checked_sub(1).and_then(|p| jobs.get(p));
                        match inner.commit_chain(
                            &lease,
                            staged,
                            &job.chain_id,
                            parent.map(|p| &p.chain_id),
                        ) {
                            Ok(()) => report(
                                &*progress,
                                &job.desc.digest,
                                ProgressState::Done,
                                job.desc.size,
                                job.desc.size,
                            ),
                            Err(e) => failed = Some(e),
                        }
                    }
                    LayerOutcome::Fetched => report(
                        &*progress,
                        &job.desc.digest,
                        ProgressState::Done,
                        job.desc.size,
                        job.desc.size,
                    ),
                    LayerOutcome::Present => {}
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
        .await
    }
}
