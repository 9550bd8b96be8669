//! Snapshot records, kept in one JSON file under the snapshotter root.
//!
//! This is a stop-gap until the crate's metadata store holds snapshot records: the
//! snapshotter only talks to [`RecordStore`], so the storage can move without touching
//! the snapshotter. The file is replaced atomically (temporary file, fsync, rename,
//! fsync of the directory) under an exclusive `flock` on `<root>/lock` plus an
//! in-process mutex, so a crash leaves either the old or the new records.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::FlockOperation;

use super::error::SnapshotError;
use super::Kind;
use crate::layer::Usage;

/// Largest records file read (a sanity bound against a corrupt file).
const MAX_RECORDS_SIZE: u64 = 256 << 20;

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// Directory id: `<root>/snapshots/<id>`.
    pub id: u64,
    pub kind: Kind,
    /// Name of the committed parent.
    pub parent: Option<String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub updated: u64,
    /// Measured at commit (committed snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// All snapshots, by key (active and views) or name (committed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Records {
    pub version: u32,
    /// Next directory id to hand out (ids are never reused).
    pub next_id: u64,
    pub snapshots: BTreeMap<String, Record>,
}

impl Default for Records {
    fn default() -> Records {
        Records {
            version: 1,
            next_id: 1,
            snapshots: BTreeMap::new(),
        }
    }
}

/// Where snapshot records live. `update` runs its closure under an exclusive lock and
/// persists the records only if the closure succeeds; `read` runs under the same lock
/// without writing.
pub(crate) trait RecordStore: Send + Sync {
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Records) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError>;

    fn read<T>(
        &self,
        f: impl FnOnce(&Records) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError>;
}

/// Records in `<root>/snapshots.json`.
#[derive(Debug)]
pub(crate) struct JsonRecords {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    lock_path: PathBuf,
    lock: Mutex<File>,
}

impl JsonRecords {
    pub(crate) fn open(root: &Path) -> Result<JsonRecords, SnapshotError> {
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| SnapshotError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        Ok(JsonRecords {
            path: root.join("snapshots.json"),
            tmp: root.join("snapshots.json.tmp"),
            dir: root.to_path_buf(),
            lock_path,
            lock: Mutex::new(lock),
        })
    }

    fn locked<T>(&self, f: impl FnOnce() -> Result<T, SnapshotError>) -> Result<T, SnapshotError> {
        let file = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_err = |e: rustix::io::Errno| SnapshotError::Lock {
            path: self.lock_path.clone(),
            source: e.into(),
        };
        rustix::fs::flock(file.as_fd(), FlockOperation::LockExclusive).map_err(lock_err)?;
        let result = f();
        let unlocked = rustix::fs::flock(file.as_fd(), FlockOperation::Unlock).map_err(lock_err);
        let value = result?;
        unlocked?;
        Ok(value)
    }

    fn load(&self) -> Result<Records, SnapshotError> {
        let read_err = |source| SnapshotError::ReadRecords {
            path: self.path.clone(),
            source,
        };
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::default()),
            Err(e) => return Err(read_err(e)),
        };
        let mut data = Vec::new();
        file.take(MAX_RECORDS_SIZE)
            .read_to_end(&mut data)
            .map_err(read_err)?;
        serde_json::from_slice(&data).map_err(|source| SnapshotError::ParseRecords {
            path: self.path.clone(),
            source,
        })
    }

    fn store(&self, records: &Records) -> Result<(), SnapshotError> {
        let write_err = |source| SnapshotError::WriteRecords {
            path: self.path.clone(),
            source,
        };
        let data = serde_json::to_vec_pretty(records).map_err(|e| write_err(e.into()))?;
        let mut tmp = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&self.tmp)
            .map_err(write_err)?;
        tmp.write_all(&data).map_err(write_err)?;
        tmp.sync_all().map_err(write_err)?;
        drop(tmp);
        std::fs::rename(&self.tmp, &self.path).map_err(write_err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)
    }
}

impl RecordStore for JsonRecords {
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Records) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        self.locked(|| {
            let mut records = self.load()?;
            let value = f(&mut records)?;
            self.store(&records)?;
            Ok(value)
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Records) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        self.locked(|| f(&self.load()?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn persists_only_successful_updates() {
        let tmp = tempfile::tempdir().unwrap();
        let store = JsonRecords::open(tmp.path()).unwrap();
        store
            .update(|r| {
                r.next_id = 7;
                Ok(())
            })
            .unwrap();
        let failed: Result<(), _> = store.update(|r| {
            r.next_id = 99;
            Err(SnapshotError::NotFound { key: "x".into() })
        });
        assert!(failed.is_err());
        let reopened = JsonRecords::open(tmp.path()).unwrap();
        assert_eq!(reopened.read(|r| Ok(r.next_id)).unwrap(), 7);
        assert!(!tmp.path().join("snapshots.json.tmp").exists());
    }
}
