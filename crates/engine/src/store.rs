//! The container store: one directory per container, its record written atomically.
//!
//! ```text
//! <root>/containers/<id>/container.json   the record (authoritative)
//! <root>/containers/<id>/<id>-json.log    its log (json-file), rotated as .1, .2, …
//! <root>/containers/<id>/rootfs/          where its root filesystem is mounted
//! <root>/containers/<id>/{hostname,hosts,resolv.conf}
//! ```
//!
//! A record is written to `container.json.tmp`, synced, renamed over `container.json` and
//! the directory synced: after a crash at any point the file holds either the old or the
//! new record, whole. A container directory without a record (a create that crashed
//! before its record was written) belongs to nobody and is removed at start-up, with
//! its writable layer.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::model::ContainerRecord;

const RECORD: &str = "container.json";

/// Writes `data` to `path` atomically (temporary file, sync, rename, sync directory).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| EngineError::io("write", path, e))
}

/// The directory of container records.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(crate) fn open(root: &Path) -> Result<Store> {
        let dir = root.join("containers");
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        Ok(Store { dir })
    }

    /// The directory of container `id`.
    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Writes `record` atomically.
    pub(crate) fn save(&self, record: &ContainerRecord) -> Result<()> {
        let dir = self.dir(&record.id);
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        let path = dir.join(RECORD);
        let tmp = dir.join("container.json.tmp");
        let data = serde_json::to_vec(record).map_err(|source| EngineError::Record {
            path: path.clone(),
            source,
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| EngineError::io("write", &path, e))
    }

    /// Every record, and the directories without one.
    pub(crate) fn load_all(&self) -> Result<(Vec<ContainerRecord>, Vec<String>)> {
        let mut records = Vec::new();
        let mut orphans = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(|e| EngineError::io("read", &self.dir, e))?;
        for entry in rd.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !crate::names::is_full_id(&id) {
                continue;
            }
            let path = entry.path().join(RECORD);
            match std::fs::read(&path) {
                Ok(data) => match serde_json::from_slice::<ContainerRecord>(&data) {
                    Ok(r) if r.id == id => records.push(r),
                    Ok(_) => {
                        tracing::warn!(path = %path.display(), "record names another ID; ignored")
                    }
                    Err(source) => {
                        tracing::error!(error = %EngineError::Record { path, source }, "ignored")
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => orphans.push(id),
                Err(e) => tracing::error!(error = %e, path = %path.display(), "unreadable record"),
            }
        }
        Ok((records, orphans))
    }

    /// Removes container `id`'s directory (its root filesystem must be unmounted).
    pub(crate) fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::io("remove", &dir, e)),
        }
    }
}
