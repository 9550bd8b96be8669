//! Container root filesystems: prepare, mounts, remove, and commit into a new image.
//!
//! # Commit, in one pass
//!
//! [`layer::diff`] walks the container's writable directory once and writes the layer
//! tar into a tee that (a) gzips it into a scratch file under `<root>/tmp` while hashing
//! the compressed bytes (the blob digest) and (b) pipes it to a thread that
//! [applies](layer::apply) it into a fresh snapshot, whose diff ID must equal the one
//! `diff` computed. The snapshot is then committed under the new chain ID like a pulled
//! layer (no re-extraction from the blob), and the blob copied into the content store
//! (which needs the digest before the first byte, hence the scratch file). The
//! container's own writable directory cannot become the new layer: the container keeps
//! using it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::content::{ContentError, ContentStore};
use crate::digest::{Digest, Verifier};
use crate::layer::{self, ApplyStats, Compression, DiffOptions, LayerError};
use crate::manifest::media_type::{DOCKER_CONFIG, OCI_CONFIG};
use crate::manifest::{Descriptor, Format, History, Manifest, ManifestError};
use crate::metadata::{MetadataError, Target};
use crate::progress::{NoProgress, ProgressSink};
use crate::snapshot::{writable_dir, Kind, Mount, SnapshotError, Snapshotter};

use super::resolve::{dangling_name, put_name};
use super::{CommitOptions, Image, Inner, Lease, ServiceError, CONTAINER_PREFIX};

/// Bytes of layer tar sent to the applying thread at a time.
const PIPE_CHUNK: usize = 256 * 1024;
/// Chunks buffered between the diff and the applying thread.
const PIPE_DEPTH: usize = 8;

fn container_key(id: &str) -> String {
    format!("{CONTAINER_PREFIX}{id}")
}

/// Container IDs are 1–128 characters of `[A-Za-z0-9_.-]`, not starting with `.` or
/// `-` (docker's are 64 hex digits).
fn check_container_id(id: &str) -> Result<(), ServiceError> {
    let reason = if id.is_empty() {
        "empty"
    } else if id.len() > 128 {
        "longer than 128 characters"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        "only letters, digits, '_', '.' and '-' are allowed"
    } else if id.starts_with(['.', '-']) {
        "must start with a letter, digit or '_'"
    } else {
        return Ok(());
    };
    Err(ServiceError::InvalidContainerId {
        id: id.chars().take(128).collect(),
        reason,
    })
}

/// `t` as RFC 3339 in UTC, whole seconds (what image configs hold).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, for days >= 0).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes into a file and hashes what it writes.
struct HashingFile {
    file: BufWriter<File>,
    verifier: Verifier,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.verifier.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The tee of a commit: gzip into the scratch file, and chunks to the applier.
struct Tee {
    gz: flate2::write::GzEncoder<HashingFile>,
    pipe: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Tee {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_CHUNK));
        match &self.pipe {
            Some(pipe) => pipe
                .send(chunk)
                .map_err(|_| io::Error::other("the layer applier stopped")),
            None => Ok(()),
        }
    }
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.gz.write_all(data)?;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIPE_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()?;
        self.gz.flush()
    }
}

/// The applier's end of the pipe; ends when the sender is dropped.
struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let rest = self.chunk.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

/// What a commit wrote.
struct Written {
    diff_id: Digest,
    blob: Digest,
    size: u64,
}

impl Inner {
    /// [`ImageService::prepare_rootfs`](super::ImageService::prepare_rootfs).
    pub(crate) async fn prepare_rootfs(
        self: &Arc<Self>,
        image: &str,
        id: &str,
    ) -> Result<Vec<Mount>, ServiceError> {
        check_container_id(id)?;
        let key = container_key(id);
        let lease = Arc::new(Lease::new(self));
        let (image, key2) = (image.to_owned(), key.clone());
        let (selected, exists) = self
            .run_blocking(move |inner| {
                let m = inner.metadata.read()?;
                let selected = inner.select(&m, &image)?;
                let exists = match inner.snapshots.stat(&key2) {
                    Ok(_) => true,
                    Err(SnapshotError::NotFound { .. }) => false,
                    Err(e) => return Err(e.into()),
                };
                Ok((selected, exists))
            })
            .await?;
        if exists {
            return Err(ServiceError::ContainerExists(id.to_owned()));
        }
        let loaded = selected.loaded;
        let chains: Vec<String> = loaded.chain_ids.iter().map(Digest::to_string).collect();
        lease.hold(&loaded.blobs(), &chains).await;
        let top = loaded.chain_ids.last().cloned();
        if let Some(top) = &top {
            let name = top.to_string();
            let committed = self
                .run_blocking(move |inner| inner.is_committed(&name))
                .await?;
            if !committed {
                // Layers only in the content store (an image loaded from an archive).
                let progress: Arc<dyn ProgressSink> = Arc::new(NoProgress);
                self.unpack_layers(
                    None,
                    &loaded.manifest,
                    &loaded.config.rootfs.diff_ids,
                    &loaded.chain_ids,
                    &lease,
                    &progress,
                )
                .await?;
            }
        }
        let (target, user) = (loaded.target.digest.clone(), id.to_owned());
        self.run_blocking(move |inner| {
            inner
                .metadata
                .update(|m| m.add_image_user(&target, &user))?;
            let parent = top.map(|t| t.to_string());
            match inner.snapshots.prepare(&key, parent.as_deref()) {
                Ok(mounts) => Ok(mounts),
                Err(e) => {
                    inner.metadata.update(|m| {
                        m.remove_image_user(&target, &user);
                        Ok::<_, MetadataError>(())
                    })?;
                    Err(match e {
                        SnapshotError::AlreadyExists { .. } => ServiceError::ContainerExists(user),
                        e => e.into(),
                    })
                }
            }
        })
        .await
    }

    /// [`ImageService::rootfs_mounts`](super::ImageService::rootfs_mounts).
    pub(crate) fn rootfs_mounts(&self, id: &str) -> Result<Vec<Mount>, ServiceError> {
        check_container_id(id)?;
        match self.snapshots.mounts(&container_key(id)) {
            Err(SnapshotError::NotFound { .. }) => {
                Err(ServiceError::ContainerNotFound(id.to_owned()))
            }
            other => Ok(other?),
        }
    }

    /// [`ImageService::remove_rootfs`](super::ImageService::remove_rootfs).
    pub(crate) fn remove_rootfs(&self, id: &str) -> Result<(), ServiceError> {
        check_container_id(id)?;
        let had_snapshot = match self.snapshots.remove(&container_key(id)) {
            Ok(()) => true,
            Err(SnapshotError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        let had_user = self
            .metadata
            .update(|m| Ok::<_, MetadataError>(m.remove_user(id) > 0))?;
        if had_snapshot || had_user {
            Ok(())
        } else {
            Err(ServiceError::ContainerNotFound(id.to_owned()))
        }
    }

    /// Diffs `upper` into a gzip'd layer at `scratch` and, in the same pass, applies it
    /// into `staged` (see the module docs).
    fn write_commit_layer(
        &self,
        container: &str,
        upper: &Path,
        scratch: &Path,
        staged: &Path,
    ) -> Result<Written, ServiceError> {
        let scratch_err = |source| ServiceError::Scratch {
            path: scratch.to_path_buf(),
            source,
        };
        let commit_err = |source| ServiceError::CommitLayer {
            container: container.to_owned(),
            source,
        };
        let file = File::create(scratch).map_err(scratch_err)?;
        let hashing = HashingFile {
            file: BufWriter::with_capacity(1 << 20, file),
            verifier: Verifier::new(crate::digest::Algorithm::Sha256),
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(PIPE_DEPTH);
        let (diffed, applied, gz) = std::thread::scope(|scope| {
            let applier = scope.spawn(move || {
                let reader = ChunkReader {
                    rx,
                    chunk: Vec::new(),
                    pos: 0,
                };
                layer::apply(staged, reader, &self.apply)
            });
            let mut tee = Tee {
                gz: flate2::write::GzEncoder::new(hashing, flate2::Compression::default()),
                pipe: Some(tx),
                buf: Vec::with_capacity(PIPE_CHUNK),
            };
            let diffed = layer::diff(upper, &mut tee, &DiffOptions::default());
            let flushed = tee.send();
            // Closing the pipe ends the applier's stream.
            tee.pipe = None;
            let applied: Result<ApplyStats, LayerError> = match applier.join() {
                Ok(r) => r,
                Err(_) => Err(LayerError::Read {
                    entry: String::new(),
                    offset: 0,
                    source: io::Error::other("the layer applier thread panicked"),
                }),
            };
            let diffed = diffed.and_then(|stats| {
                flushed
                    .map(|()| stats)
                    .map_err(|source| LayerError::WriteTar {
                        path: String::new(),
                        source,
                    })
            });
            (diffed, applied, tee.gz)
        });
        let applied = applied.map_err(commit_err)?;
        let diffed = diffed.map_err(commit_err)?;
        if applied.diff_id != diffed.diff_id {
            return Err(ServiceError::CommitMismatch {
                container: container.to_owned(),
                written: diffed.diff_id,
                applied: applied.diff_id,
            });
        }
        let mut hashing = gz.finish().map_err(scratch_err)?;
        hashing.file.flush().map_err(scratch_err)?;
        let size = hashing.verifier.len();
        Ok(Written {
            diff_id: diffed.diff_id,
            blob: hashing.verifier.finish(),
            size,
        })
    }

    /// Copies the scratch blob into the content store.
    fn store_scratch_blob(&self, scratch: &Path, written: &Written) -> Result<(), ServiceError> {
        let mut ingest = match self.content.writer(&written.blob, Some(written.size)) {
            Ok(ingest) => ingest,
            Err(ContentError::AlreadyExists { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if ingest.offset() != 0 {
            ingest.reset()?;
        }
        let mut file = File::open(scratch).map_err(|source| ServiceError::Scratch {
            path: scratch.to_path_buf(),
            source,
        })?;
        io::copy(&mut file, &mut ingest).map_err(ContentError::from_write_error)?;
        ingest.commit()?;
        Ok(())
    }

    /// [`ImageService::commit_container`](super::ImageService::commit_container).
    pub(crate) fn commit_container(
        self: &Arc<Self>,
        id: &str,
        options: &CommitOptions,
    ) -> Result<Image, ServiceError> {
        check_container_id(id)?;
        if let Some(r) = &options.reference {
            if r.digest().is_some() {
                return Err(ServiceError::InvalidName {
                    name: r.to_string(),
                    reason: "a commit cannot be named by digest",
                });
            }
        }
        let m = self.metadata.read()?;
        let base = self
            .catalog(&m)
            .into_iter()
            .find(|c| c.users(&m).iter().any(|u| u == id))
            .ok_or_else(|| ServiceError::ContainerNotFound(id.to_owned()))?;
        let mounts = match self.snapshots.mounts(&container_key(id)) {
            Err(SnapshotError::NotFound { .. }) => {
                return Err(ServiceError::ContainerNotFound(id.to_owned()))
            }
            other => other?,
        };
        let upper = writable_dir(&mounts).ok_or_else(|| SnapshotError::WrongKind {
            key: container_key(id),
            expected: "writable",
            actual: Kind::View,
        })?;
        let lease = Lease::new(self);
        let chains: Vec<String> = base
            .loaded
            .chain_ids
            .iter()
            .map(Digest::to_string)
            .collect();
        lease.hold_blocking(&base.loaded.blobs(), &chains);

        let staged = self.stage(&lease, "commit")?;
        let scratch = self
            .tmp_dir()
            .join(format!("commit-{}.tar.gz", self.next_nonce()));
        let written = self
            .write_commit_layer(id, &upper, &scratch, &staged.dir)
            .and_then(|w| {
                lease.hold_blocking(std::slice::from_ref(&w.blob), &[]);
                self.store_scratch_blob(&scratch, &w).map(|()| w)
            });
        if let Err(e) = std::fs::remove_file(&scratch) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %scratch.display(), error = %e, "cannot remove scratch file");
            }
        }
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                self.remove_snapshot_quietly(&staged.key);
                return Err(e);
            }
        };
        let parent = base.loaded.chain_ids.last();
        let chain = match parent {
            None => written.diff_id.clone(),
            Some(p) => Digest::sha256_of(format!("{p} {}", written.diff_id).as_bytes()),
        };
        lease.hold_blocking(&[], &[chain.to_string()]);
        self.commit_chain(&lease, &staged, &chain, parent)?;
        self.build_committed_image(&lease, &base.loaded, &written, options)
    }

    /// Config, manifest and name of a committed container layer.
    fn build_committed_image(
        &self,
        lease: &Lease,
        base: &super::resolve::Loaded,
        written: &Written,
        options: &CommitOptions,
    ) -> Result<Image, ServiceError> {
        let json_err = |source| ServiceError::Manifest {
            reference: "commit".to_owned(),
            source: ManifestError::Json {
                what: "image config",
                source,
            },
        };
        let now = rfc3339(SystemTime::now());
        let mut config = base.config.clone();
        config.created = Some(now.clone());
        if let Some(author) = &options.author {
            config.author = Some(author.clone());
        }
        if let Some(c) = &options.config {
            config.config = Some(c.clone());
        }
        config.rootfs.diff_ids.push(written.diff_id.clone());
        config.history.push(History {
            created: Some(now),
            created_by: options.created_by.clone(),
            author: options.author.clone(),
            comment: options.comment.clone(),
            empty_layer: false,
        });
        let config_bytes = serde_json::to_vec(&config).map_err(json_err)?;
        let config_digest = Digest::sha256_of(&config_bytes);
        lease.hold_blocking(std::slice::from_ref(&config_digest), &[]);
        self.content.put_verified(&config_digest, &config_bytes)?;

        let format = base.manifest.format();
        let config_media_type = match format {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        };
        let mut layers = base.manifest.layers.clone();
        layers.push(Descriptor::new(
            Compression::Gzip.layer_media_type(format),
            written.blob.clone(),
            written.size,
        ));
        let manifest = Manifest::new(
            format,
            Descriptor::new(
                config_media_type,
                config_digest.clone(),
                config_bytes.len() as u64,
            ),
            layers,
        );
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(json_err)?;
        let manifest_digest = Digest::sha256_of(&manifest_bytes);
        lease.hold_blocking(std::slice::from_ref(&manifest_digest), &[]);
        self.content
            .put_verified(&manifest_digest, &manifest_bytes)?;
        let target = Target {
            media_type: manifest.media_type.clone().unwrap_or_default(),
            digest: manifest_digest.clone(),
            size: manifest_bytes.len() as u64,
        };
        let name = match &options.reference {
            Some(r) => r.to_string(),
            None => dangling_name(&manifest_digest),
        };
        self.metadata
            .update(|m| put_name(m, &name, &target, BTreeMap::new()))?;
        let m = self.metadata.read()?;
        let image = self.select(&m, &config_digest.to_string())?;
        Ok(self.describe(&m, &image, &mut std::collections::HashMap::new()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59Z"
        );
    }

    #[test]
    fn container_ids() {
        check_container_id("abc_1.2-3").unwrap();
        check_container_id(&"a".repeat(64)).unwrap();
        for bad in ["", ".x", "-x", "a/b", "a b", &"a".repeat(129)] {
            assert!(check_container_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunk_reader_reassembles() {
        let (tx, rx) = sync_channel(4);
        tx.send(b"hello ".to_vec()).unwrap();
        tx.send(Vec::new()).unwrap();
        tx.send(b"world".to_vec()).unwrap();
        drop(tx);
        let mut r = ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
    }
}
