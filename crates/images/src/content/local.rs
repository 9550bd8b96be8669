//! [`LocalStore`]: the content store on a local directory.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/sha256/<hex>           committed, verified blobs (mode 0444); nothing else is here
//! blobs/sha512/<hex>
//! ingest/<alg>-<hex>/lock      flock(2) held by the one writer of this digest
//! ingest/<alg>-<hex>/data      the bytes written so far
//! ingest/<alg>-<hex>/ref.json  {"expected": digest, "size": expected size or null}
//! ```
//!
//! A commit syncs `data`, renames it to `blobs/<alg>/<hex>` (atomic on one file
//! system), syncs `blobs/<alg>`, then removes the ingest directory. A crash between
//! the rename and the removal leaves an ingest directory without data, which the next
//! writer or [`ContentStore::clean_stale_ingests`] removes.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{flock, FlockOperation};

use super::{BlobInfo, BlobReader, ContentError, ContentStore, Ingest, IngestStatus, ALGORITHMS};
use crate::digest::{Algorithm, Digest, Verifier};

/// Default for [`LocalStore::with_max_blob_size`]: 64 GiB.
const DEFAULT_MAX_BLOB_SIZE: u64 = 64 << 30;
/// How often acquiring an ingest lock retries when the ingest directory is replaced
/// under it by a concurrent commit.
const LOCK_ATTEMPTS: usize = 8;
/// Mode of committed blobs.
const BLOB_MODE: u32 = 0o444;

/// A content store on a local directory (see the [module docs](super) for the contract).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    max_blob_size: u64,
}

impl LocalStore {
    /// Opens the store at `root`, creating its layout if needed.
    pub fn open(root: &Path) -> Result<LocalStore, ContentError> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        let mut dirs = vec![root.join("ingest")];
        dirs.extend(
            ALGORITHMS
                .iter()
                .map(|a| root.join("blobs").join(a.as_str())),
        );
        for dir in dirs {
            builder
                .create(&dir)
                .map_err(|source| ContentError::CreateLayout { path: dir, source })?;
        }
        Ok(LocalStore {
            root: root.to_path_buf(),
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
        })
    }

    /// Sets the largest blob the store accepts (default 64 GiB).
    pub fn with_max_blob_size(mut self, max: u64) -> LocalStore {
        self.max_blob_size = max;
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self, algorithm: Algorithm) -> PathBuf {
        self.root.join("blobs").join(algorithm.as_str())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest.algorithm()).join(digest.hex())
    }

    fn ingest_dir(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()))
    }

    fn exists(&self, digest: &Digest) -> Result<bool, ContentError> {
        Ok(self.info(digest)?.is_some())
    }

    /// Opens and locks the ingest directory for `digest`.
    fn lock_ingest(&self, digest: &Digest) -> Result<Option<(PathBuf, File)>, ContentError> {
        let dir = self.ingest_dir(digest);
        let lock_path = dir.join("lock");
        let open_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContentError::OpenIngest { path, source }
        };
        for _ in 0..LOCK_ATTEMPTS {
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(open_err(&dir)(e)),
            }
            let lock = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
            {
                Ok(f) => f,
                // Removed by a concurrent commit or abort between mkdir and open.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(open_err(&lock_path)(e)),
            };
            if !try_lock(&lock).map_err(open_err(&lock_path))? {
                return Ok(None);
            }
            // The lock counts only if `lock` is still the file at `lock_path`: a writer
            // that committed may have removed it (and another may have made a new one)
            // between our open and our flock.
            let held = lock.metadata().map_err(open_err(&lock_path))?;
            match fs::metadata(&lock_path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Some((dir, lock)))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(open_err(&lock_path)(e)),
            }
        }
        Ok(None)
    }
}

/// Takes the exclusive lock on `lock` if it is free within a few milliseconds (long
/// enough to ride over [`ContentStore::ingests`] probing it), without waiting for a
/// writer that holds it.
fn try_lock(lock: &File) -> io::Result<bool> {
    for attempt in 0..5 {
        match flock(lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) if attempt < 4 => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

fn remove_ingest_dir(dir: &Path) -> Result<(), ContentError> {
    // The lock file goes last so a concurrent opener never locks a half-removed ingest
    // whose lock file is still linked.
    for name in ["data", "ref.json", "ref.json.tmp", "lock"] {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ContentError::RemoveIngest {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ContentError::RemoveIngest {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IngestRef {
    expected: Digest,
    size: Option<u64>,
}

impl ContentStore for LocalStore {
    fn info(&self, digest: &Digest) -> Result<Option<BlobInfo>, ContentError> {
        match fs::symlink_metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() => Ok(Some(BlobInfo {
                digest: digest.clone(),
                size: meta.len(),
                committed_at: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ContentError::ReadBlob {
                digest: digest.clone(),
                source,
            }),
        }
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn BlobReader>, ContentError> {
        match File::open(self.blob_path(digest)) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Err(source) => Err(ContentError::ReadBlob {
                digest: digest.clone(),
                source,
            }),
        }
    }

    fn writer(
        &self,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<Box<dyn Ingest>, ContentError> {
        if let Some(size) = expected_size {
            if size > self.max_blob_size {
                return Err(ContentError::TooLarge {
                    digest: expected.clone(),
                    size,
                    max: self.max_blob_size,
                });
            }
        }
        if self.exists(expected)? {
            return Err(ContentError::AlreadyExists {
                digest: expected.clone(),
            });
        }
        let Some((dir, lock)) = self.lock_ingest(expected)? else {
            return Err(ContentError::IngestLocked {
                digest: expected.clone(),
            });
        };
        // Committed by another writer between our check and our lock.
        if self.exists(expected)? {
            remove_ingest_dir(&dir)?;
            return Err(ContentError::AlreadyExists {
                digest: expected.clone(),
            });
        }
        let data_path = dir.join("data");
        // A commit killed after making the data read-only, before its rename.
        match fs::set_permissions(&data_path, fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ContentError::OpenIngest {
                    path: data_path,
                    source,
                })
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&data_path)
            .map_err(|source| ContentError::OpenIngest {
                path: data_path.clone(),
                source,
            })?;
        let mut offset =
            file.seek(SeekFrom::End(0))
                .map_err(|source| ContentError::OpenIngest {
                    path: data_path.clone(),
                    source,
                })?;
        let limit = expected_size.unwrap_or(self.max_blob_size);
        if offset > limit {
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .map_err(|source| ContentError::OpenIngest {
                    path: data_path.clone(),
                    source,
                })?;
            offset = 0;
        }
        let record = IngestRef {
            expected: expected.clone(),
            size: expected_size,
        };
        let tmp = dir.join("ref.json.tmp");
        serde_json::to_vec(&record)
            .map_err(io::Error::other)
            .and_then(|bytes| fs::write(&tmp, bytes))
            .and_then(|()| fs::rename(&tmp, dir.join("ref.json")))
            .map_err(|source| ContentError::OpenIngest {
                path: tmp.clone(),
                source,
            })?;
        Ok(Box::new(LocalIngest {
            dir,
            data_path,
            blob_dir: self.blob_dir(expected.algorithm()),
            expected: expected.clone(),
            expected_size,
            max_size: self.max_blob_size,
            file,
            _lock: lock,
            offset,
            verifier: Verifier::new(expected.algorithm()),
            unhashed_prefix: offset,
            poisoned: false,
        }))
    }

    fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Err(source) => Err(ContentError::DeleteBlob {
                digest: digest.clone(),
                source,
            }),
        }
    }

    fn walk(&self, f: &mut dyn FnMut(BlobInfo)) -> Result<(), ContentError> {
        for algorithm in ALGORITHMS {
            let dir = self.blob_dir(algorithm);
            let list_err = |source| ContentError::List {
                path: dir.clone(),
                source,
            };
            for entry in fs::read_dir(&dir).map_err(list_err)? {
                let entry = entry.map_err(list_err)?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(digest) = Digest::parse(&format!("{}:{name}", algorithm.as_str())) else {
                    continue;
                };
                let meta = match entry.metadata() {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => continue,
                    // Deleted while we walked.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(list_err(e)),
                };
                f(BlobInfo {
                    digest,
                    size: meta.len(),
                    committed_at: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(())
    }

    fn ingests(&self) -> Result<Vec<IngestStatus>, ContentError> {
        let root = self.root.join("ingest");
        let list_err = |source| ContentError::List {
            path: root.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&root).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let Some(status) = ingest_status(&entry.path()) else {
                continue;
            };
            out.push(status);
        }
        out.sort_by(|a, b| a.expected.cmp(&b.expected));
        Ok(out)
    }

    fn abort_ingest(&self, expected: &Digest) -> Result<(), ContentError> {
        if !self.ingest_dir(expected).exists() {
            return Ok(());
        }
        match self.lock_ingest(expected)? {
            Some((dir, _lock)) => remove_ingest_dir(&dir),
            None => Err(ContentError::IngestLocked {
                digest: expected.clone(),
            }),
        }
    }

    fn clean_stale_ingests(&self, older_than: Duration) -> Result<usize, ContentError> {
        let root = self.root.join("ingest");
        let list_err = |source| ContentError::List {
            path: root.clone(),
            source,
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&root).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let path = entry.path();
            let Some(digest) = ingest_digest(&path) else {
                // Not ours (or a half-made name): leave it alone.
                continue;
            };
            let updated = last_write(&path);
            let age = now.duration_since(updated).unwrap_or(Duration::ZERO);
            if age < older_than {
                continue;
            }
            if let Some((dir, _lock)) = self.lock_ingest(&digest)? {
                remove_ingest_dir(&dir)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The digest an ingest directory name stands for.
fn ingest_digest(dir: &Path) -> Option<Digest> {
    let name = dir.file_name()?.to_str()?;
    let (alg, hex) = name.split_once('-')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// The newest modification time of an ingest's files.
fn last_write(dir: &Path) -> SystemTime {
    ["data", "ref.json", "lock", ""]
        .iter()
        .filter_map(|name| fs::metadata(dir.join(name)).ok()?.modified().ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn ingest_status(dir: &Path) -> Option<IngestStatus> {
    let expected = ingest_digest(dir)?;
    let expected_size = fs::read(dir.join("ref.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<IngestRef>(&b).ok())
        .and_then(|r| r.size);
    let offset = fs::metadata(dir.join("data")).map_or(0, |m| m.len());
    let locked = match File::open(dir.join("lock")) {
        Ok(f) => match flock(&f, FlockOperation::NonBlockingLockShared) {
            Ok(()) => false,
            Err(_) => true,
        },
        Err(_) => false,
    };
    Some(IngestStatus {
        expected,
        expected_size,
        offset,
        updated_at: last_write(dir),
        locked,
    })
}

/// The [`Ingest`] of a [`LocalStore`].
#[derive(Debug)]
struct LocalIngest {
    dir: PathBuf,
    data_path: PathBuf,
    blob_dir: PathBuf,
    expected: Digest,
    expected_size: Option<u64>,
    max_size: u64,
    file: File,
    /// Holds the flock for as long as the ingest lives.
    _lock: File,
    offset: u64,
    verifier: Verifier,
    /// Bytes at the start of `data`, left by an earlier attempt, not yet hashed.
    unhashed_prefix: u64,
    poisoned: bool,
}

impl LocalIngest {
    /// Hashes the resumed prefix from disk, once.
    fn hash_prefix(&mut self) -> Result<(), ContentError> {
        if self.unhashed_prefix == 0 {
            return Ok(());
        }
        let read_err = |source| ContentError::ReadIngest {
            path: self.data_path.clone(),
            source,
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        while pos < self.unhashed_prefix {
            let want = usize::try_from(self.unhashed_prefix - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let n = self.file.read_at(chunk, pos).map_err(read_err)?;
            if n == 0 {
                return Err(read_err(io::Error::from(io::ErrorKind::UnexpectedEof)));
            }
            self.verifier.update(chunk.get(..n).unwrap_or_default());
            pos += n as u64;
        }
        self.unhashed_prefix = 0;
        Ok(())
    }

    /// Deletes the ingest after a failed verification and returns `err`.
    fn discard(self, err: ContentError) -> ContentError {
        match remove_ingest_dir(&self.dir) {
            Ok(()) => err,
            Err(remove) => {
                tracing::warn!(error = %remove, "cannot remove failed ingest");
                err
            }
        }
    }
}

impl Ingest for LocalIngest {
    fn expected(&self) -> &Digest {
        &self.expected
    }

    fn expected_size(&self) -> Option<u64> {
        self.expected_size
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    fn write_chunk(&mut self, data: &[u8]) -> Result<(), ContentError> {
        if self.poisoned {
            return Err(ContentError::Poisoned {
                digest: self.expected.clone(),
            });
        }
        let end = self.offset.saturating_add(data.len() as u64);
        if let Some(expected) = self.expected_size {
            if end > expected {
                return Err(ContentError::PastExpectedSize {
                    digest: self.expected.clone(),
                    expected,
                });
            }
        }
        if end > self.max_size {
            return Err(ContentError::TooLarge {
                digest: self.expected.clone(),
                size: end,
                max: self.max_size,
            });
        }
        self.hash_prefix()?;
        if let Err(source) = self.file.write_all(data) {
            // Part of `data` may be on disk: cut back to what we hashed.
            let restored = self
                .file
                .set_len(self.offset)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.offset)));
            if restored.is_err() {
                self.poisoned = true;
            }
            return Err(ContentError::WriteIngest {
                path: self.data_path.clone(),
                source,
            });
        }
        self.verifier.update(data);
        self.offset = end;
        Ok(())
    }

    fn verifier(&mut self) -> Result<Verifier, ContentError> {
        self.hash_prefix()?;
        Ok(self.verifier.clone())
    }

    fn reset(&mut self) -> Result<(), ContentError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .map_err(|source| ContentError::WriteIngest {
                path: self.data_path.clone(),
                source,
            })?;
        self.offset = 0;
        self.unhashed_prefix = 0;
        self.verifier = Verifier::new(self.expected.algorithm());
        self.poisoned = false;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<BlobInfo, ContentError> {
        if self.poisoned {
            let err = ContentError::Poisoned {
                digest: self.expected.clone(),
            };
            return Err(self.discard(err));
        }
        if let Some(expected) = self.expected_size {
            if self.offset != expected {
                let err = ContentError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected,
                    actual: self.offset,
                };
                return Err(self.discard(err));
            }
        }
        if let Err(e) = self.hash_prefix() {
            return Err(self.discard(e));
        }
        let verifier =
            std::mem::replace(&mut self.verifier, Verifier::new(self.expected.algorithm()));
        let actual = verifier.finish();
        if actual != self.expected {
            let err = ContentError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            };
            return Err(self.discard(err));
        }
        let target = self.blob_dir.join(self.expected.hex());
        let commit_err = |path: &Path, source| ContentError::Commit {
            digest: self.expected.clone(),
            path: path.to_path_buf(),
            source,
        };
        let now = SystemTime::now();
        self.file
            .set_modified(now)
            .and_then(|()| {
                self.file
                    .set_permissions(fs::Permissions::from_mode(BLOB_MODE))
            })
            .and_then(|()| self.file.sync_all())
            .map_err(|e| commit_err(&self.data_path, e))?;
        fs::rename(&self.data_path, &target).map_err(|e| commit_err(&target, e))?;
        sync_dir(&self.blob_dir).map_err(|e| commit_err(&self.blob_dir, e))?;
        if let Err(e) = remove_ingest_dir(&self.dir) {
            // The blob is committed; a leftover ingest directory is cleaned later.
            tracing::warn!(error = %e, "cannot remove committed ingest");
        }
        Ok(BlobInfo {
            digest: self.expected.clone(),
            size: self.offset,
            committed_at: now,
        })
    }

    fn abort(self: Box<Self>) -> Result<(), ContentError> {
        remove_ingest_dir(&self.dir)
    }
}

impl Write for LocalIngest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf)
            .map(|()| buf.len())
            .map_err(ContentError::into_io)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Read;

    use berth_errdefs::{ErrorKind, HasKind};

    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn read_all(store: &LocalStore, d: &Digest) -> Vec<u8> {
        let mut v = Vec::new();
        store.open(d).unwrap().read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn write_commit_read() {
        let (_dir, store) = store();
        let data = b"hello content".repeat(1000);
        let d = Digest::sha256_of(&data);
        assert!(store.info(&d).unwrap().is_none());
        let mut w = store.writer(&d, Some(data.len() as u64)).unwrap();
        assert_eq!(w.offset(), 0);
        for chunk in data.chunks(777) {
            w.write_all(chunk).unwrap();
        }
        let info = w.commit().unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(read_all(&store, &d), data);
        let info = store.info(&d).unwrap().unwrap();
        assert_eq!(info.size, data.len() as u64);
        let mode = fs::metadata(store.blob_path(&d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, BLOB_MODE);
        assert!(store.ingests().unwrap().is_empty());
        assert_eq!(
            store.writer(&d, None).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        store.verify(&d).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.usage().unwrap(), data.len() as u64);
        store.delete(&d).unwrap();
        assert_eq!(store.delete(&d).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(store.open(&d).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn sha512_blobs() {
        let (_dir, store) = store();
        let d = Digest::of(Algorithm::Sha512, b"abc");
        store.put_verified(&d, b"abc").unwrap();
        assert_eq!(read_all(&store, &d), b"abc");
        assert_eq!(store.list().unwrap()[0].digest, d);
    }

    #[test]
    fn digest_mismatch_deletes_partial() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"expected");
        let mut w = store.writer(&d, None).unwrap();
        w.write_all(b"tampered").unwrap();
        let err = w.commit().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(store.info(&d).unwrap().is_none());
        assert!(store.ingests().unwrap().is_empty());
        assert!(!store.ingest_dir(&d).exists());
    }

    #[test]
    fn size_bounds() {
        let (_dir, store) = store();
        let store = store.with_max_blob_size(10);
        let d = Digest::sha256_of(b"0123456789ab");
        let err = store.writer(&d, Some(12)).unwrap_err();
        assert!(matches!(err, ContentError::TooLarge { .. }), "{err}");
        let mut w = store.writer(&d, None).unwrap();
        let err = w.write_chunk(b"0123456789ab").unwrap_err();
        assert!(matches!(err, ContentError::TooLarge { .. }), "{err}");
        w.abort().unwrap();

        let d = Digest::sha256_of(b"abc");
        let mut w = store.writer(&d, Some(3)).unwrap();
        w.write_all(b"ab").unwrap();
        let err = w.write_all(b"cd").unwrap_err();
        let err = ContentError::from_write_error(err);
        assert!(
            matches!(err, ContentError::PastExpectedSize { .. }),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        // The refused write left nothing behind: finishing correctly still works.
        w.write_all(b"c").unwrap();
        w.commit().unwrap();

        let d = Digest::sha256_of(b"abcd");
        let mut w = store.writer(&d, Some(4)).unwrap();
        w.write_all(b"abc").unwrap();
        let err = w.commit().unwrap_err();
        assert!(matches!(err, ContentError::SizeMismatch { .. }), "{err}");
        assert!(!store.ingest_dir(&d).exists());
    }

    #[test]
    fn resume_after_drop() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::sha256_of(&data);
        let size = Some(data.len() as u64);
        let mut w = store.writer(&d, size).unwrap();
        w.write_all(&data[..1_234_567]).unwrap();
        drop(w);
        assert!(store.info(&d).unwrap().is_none());
        let status = store.ingests().unwrap();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].offset, 1_234_567);
        assert_eq!(status[0].expected_size, size);
        assert!(!status[0].locked);

        let mut w = store.writer(&d, size).unwrap();
        assert_eq!(w.offset(), 1_234_567);
        assert!(store.ingests().unwrap()[0].locked);
        let offset = w.offset() as usize;
        w.write_all(&data[offset..]).unwrap();
        w.commit().unwrap();
        assert_eq!(read_all(&store, &d), data);
    }

    #[test]
    fn resume_commit_without_new_bytes() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"complete");
        let mut w = store.writer(&d, Some(8)).unwrap();
        w.write_all(b"complete").unwrap();
        drop(w);
        let w = store.writer(&d, Some(8)).unwrap();
        assert_eq!(w.offset(), 8);
        w.commit().unwrap();
        assert_eq!(read_all(&store, &d), b"complete");
    }

    #[test]
    fn resume_after_kill_inside_commit() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"abcdef");
        let mut w = store.writer(&d, Some(6)).unwrap();
        w.write_all(b"abc").unwrap();
        drop(w);
        // As a commit leaves the data just before its rename.
        let data = store.ingest_dir(&d).join("data");
        fs::set_permissions(&data, fs::Permissions::from_mode(BLOB_MODE)).unwrap();
        let mut w = store.writer(&d, Some(6)).unwrap();
        assert_eq!(w.offset(), 3);
        w.write_all(b"def").unwrap();
        w.commit().unwrap();
        assert_eq!(read_all(&store, &d), b"abcdef");
    }

    #[test]
    fn corrupt_prefix_is_caught() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"good data here");
        let mut w = store.writer(&d, None).unwrap();
        w.write_all(b"good ").unwrap();
        drop(w);
        fs::write(store.ingest_dir(&d).join("data"), b"evil ").unwrap();
        let mut w = store.writer(&d, None).unwrap();
        w.write_all(&b"good data here"[5..]).unwrap();
        assert!(matches!(
            w.commit().unwrap_err(),
            ContentError::DigestMismatch { .. }
        ));
        assert!(store.info(&d).unwrap().is_none());
    }

    #[test]
    fn reset_starts_over() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"fresh");
        let mut w = store.writer(&d, None).unwrap();
        w.write_all(b"stale bytes").unwrap();
        drop(w);
        let mut w = store.writer(&d, Some(5)).unwrap();
        // An earlier attempt wrote more than this size: it was thrown away.
        assert_eq!(w.offset(), 0);
        w.write_all(b"fre").unwrap();
        w.reset().unwrap();
        w.write_all(b"fresh").unwrap();
        w.commit().unwrap();
        assert_eq!(read_all(&store, &d), b"fresh");
    }

    #[test]
    fn one_writer_per_digest() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"x");
        let w = store.writer(&d, None).unwrap();
        let err = store.writer(&d, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(
            store.abort_ingest(&d).unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(store.clean_stale_ingests(Duration::ZERO).unwrap(), 0);
        w.abort().unwrap();
        assert!(!store.ingest_dir(&d).exists());
        let w = store.writer(&d, None).unwrap();
        drop(w);
        store.abort_ingest(&d).unwrap();
        assert!(!store.ingest_dir(&d).exists());
        store.abort_ingest(&d).unwrap();
    }

    #[test]
    fn stale_ingests_are_cleaned() {
        let (_dir, store) = store();
        let d = Digest::sha256_of(b"y");
        let mut w = store.writer(&d, None).unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        // A leftover of a crash after the rename: no data, no ref.
        let done = store.put_bytes(b"done").unwrap();
        let leftover = store.ingest_dir(&done);
        fs::create_dir(&leftover).unwrap();
        // A stranger's directory is left alone.
        fs::create_dir(store.root().join("ingest/not-an-ingest")).unwrap();
        assert_eq!(
            store
                .clean_stale_ingests(Duration::from_secs(3600))
                .unwrap(),
            0
        );
        assert_eq!(store.clean_stale_ingests(Duration::ZERO).unwrap(), 2);
        assert!(!store.ingest_dir(&d).exists());
        assert!(!leftover.exists());
        assert!(store.root().join("ingest/not-an-ingest").exists());
        store.verify(&done).unwrap();
    }

    #[test]
    fn put_bytes_is_idempotent() {
        let (_dir, store) = store();
        let a = store.put_bytes(b"same").unwrap();
        let b = store.put_bytes(b"same").unwrap();
        assert_eq!(a, b);
        assert_eq!(store.read_to_vec(&a, 4).unwrap(), b"same");
        assert!(matches!(
            store.read_to_vec(&a, 3).unwrap_err(),
            ContentError::TooLarge { .. }
        ));
        let wrong = Digest::sha256_of(b"other");
        assert_eq!(
            store.put_verified(&wrong, b"same").unwrap_err().kind(),
            ErrorKind::FailedPrecondition
        );
        assert!(store.info(&wrong).unwrap().is_none());
    }

    #[test]
    fn walk_ignores_strangers_and_verify_detects_rot() {
        let (_dir, store) = store();
        let d = store.put_bytes(b"payload").unwrap();
        fs::write(store.root().join("blobs/sha256/garbage"), b"x").unwrap();
        fs::create_dir(store.root().join("blobs/sha256").join("a".repeat(64))).unwrap();
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].digest, d);
        // Bit rot after commit is found by verify.
        let path = store.blob_path(&d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"PAYLOAD").unwrap();
        assert!(matches!(
            store.verify(&d).unwrap_err(),
            ContentError::DigestMismatch { .. }
        ));
    }

    #[test]
    fn copy_through_io() {
        let (_dir, store) = store();
        let data = vec![7u8; 200_000];
        let d = Digest::sha256_of(&data);
        let mut w = store.writer(&d, Some(data.len() as u64)).unwrap();
        std::io::copy(&mut &data[..], &mut w).unwrap();
        w.commit().unwrap();
        assert_eq!(read_all(&store, &d), data);
    }
}
