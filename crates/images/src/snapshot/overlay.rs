//! The overlay snapshotter.
//!
//! Layout under the root (all private to the store, mode 0700 at the top):
//!
//! ```text
//! <root>/lock                  flock'ed by every operation
//! <root>/snapshots.json        the records (see `records.rs`)
//! <root>/snapshots/<id>/fs     the snapshot's files: a layer, or a container's upper dir
//! <root>/snapshots/<id>/work   overlay's work directory (active snapshots)
//! ```
//!
//! `<id>` is a decimal counter, never reused, so paths stay short (see
//! [`mount`](super::mount) for why that matters).
//!
//! Crash safety: a directory exists before its record does and is removed after its
//! record is gone. New directories are built as `snapshots/tmp-<id>` and renamed into
//! place; removed ones are renamed to `snapshots/rm-<id>` first. A crash can leave such
//! directories (or a numbered one without a record) behind, never a record without its
//! directory; [`OverlaySnapshotter::cleanup`] removes the leftovers.

use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::SnapshotError;
use super::mount::MAX_LOWER_LAYERS;
use super::records::{JsonRecords, Record, RecordStore, Records};
use super::{Info, Kind, Mount, MountKind, Snapshotter};
use crate::layer::{self, Usage};

/// Longest key or name accepted, in bytes.
const MAX_KEY_LEN: usize = 4096;

/// Options of an [`OverlaySnapshotter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayOptions {
    /// Add overlayfs' `userxattr` option to mounts (rootless stores, where overlay
    /// metadata lives in `user.overlay.*`). Default: true unless running as root of the
    /// initial user namespace.
    pub userxattr: bool,
}

impl Default for OverlayOptions {
    fn default() -> OverlayOptions {
        OverlayOptions {
            userxattr: !crate::layer::privileged(),
        }
    }
}

/// Snapshots as overlayfs layers under one root directory.
#[derive(Debug)]
pub struct OverlaySnapshotter {
    root: PathBuf,
    records: JsonRecords,
    options: OverlayOptions,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn check_key(key: &str) -> Result<(), SnapshotError> {
    let reason = if key.is_empty() {
        "empty"
    } else if key.len() > MAX_KEY_LEN {
        "longer than 4096 bytes"
    } else {
        return Ok(());
    };
    Err(SnapshotError::InvalidKey {
        key: key.chars().take(256).collect(),
        reason,
    })
}

fn create_dir(path: &Path, mode: u32) -> Result<(), SnapshotError> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(|source| SnapshotError::CreateDir {
            path: path.to_path_buf(),
            source,
        })
}

impl OverlaySnapshotter {
    /// Opens (creating if needed) a snapshotter rooted at `root`, an absolute path
    /// without `,`, `:` or `\` (they would break overlay's option syntax).
    pub fn open(root: &Path, options: OverlayOptions) -> Result<OverlaySnapshotter, SnapshotError> {
        let invalid = |reason| SnapshotError::InvalidRoot {
            path: root.to_path_buf(),
            reason,
        };
        let text = root.to_str().ok_or(invalid("not valid UTF-8"))?;
        if !root.is_absolute() {
            return Err(invalid("not an absolute path"));
        }
        if text.contains([',', ':', '\\', '\n']) {
            return Err(invalid("contains ',', ':', '\\' or a newline"));
        }
        for dir in [root.to_path_buf(), root.join("snapshots")] {
            match create_dir(&dir, 0o700) {
                Err(SnapshotError::CreateDir { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        Ok(OverlaySnapshotter {
            records: JsonRecords::open(root)?,
            root: root.to_path_buf(),
            options,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Removes snapshot directories that have no record: leftovers of a crash in the
    /// middle of `prepare`/`view` (`tmp-<id>`, or a directory whose record was never
    /// written) or of `remove` (`rm-<id>`). Runs under the snapshotter's lock.
    pub fn cleanup(&self) -> Result<(), SnapshotError> {
        let base = self.root.join("snapshots");
        self.records.read(|r| {
            let live: HashSet<String> = r.snapshots.values().map(|s| s.id.to_string()).collect();
            let list_err = |source| SnapshotError::ReadDir {
                path: base.clone(),
                source,
            };
            for entry in std::fs::read_dir(&base).map_err(list_err)? {
                let entry = entry.map_err(list_err)?;
                if live.contains(&*entry.file_name().to_string_lossy()) {
                    continue;
                }
                let path = entry.path();
                layer::fs::remove_tree(&path).map_err(|source| SnapshotError::RemoveDir {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(())
        })
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        check_key(key)?;
        if let Some(p) = parent {
            check_key(p)?;
        }
        self.records.update(|r| {
            if r.snapshots.contains_key(key) {
                return Err(SnapshotError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            if let Some(p) = parent {
                match r.snapshots.get(p) {
                    None => return Err(SnapshotError::NotFound { key: p.to_owned() }),
                    Some(rec) if rec.kind != Kind::Committed => {
                        return Err(SnapshotError::ParentNotCommitted {
                            parent: p.to_owned(),
                        })
                    }
                    Some(_) => {}
                }
                let depth = chain(r, p)?.len();
                if depth > MAX_LOWER_LAYERS {
                    return Err(SnapshotError::TooManyLayers {
                        key: key.to_owned(),
                        count: depth,
                        max: MAX_LOWER_LAYERS,
                    });
                }
            }
            let id = r.next_id;
            r.next_id = id.saturating_add(1);
            let tmp = self.root.join("snapshots").join(format!("tmp-{id}"));
            let built = create_dir(&tmp, 0o700)
                .and_then(|()| create_dir(&tmp.join("fs"), 0o755))
                .and_then(|()| match kind {
                    Kind::Active => create_dir(&tmp.join("work"), 0o700),
                    _ => Ok(()),
                })
                .and_then(|()| {
                    std::fs::rename(&tmp, self.dir(id)).map_err(|source| SnapshotError::Rename {
                        from: tmp.clone(),
                        to: self.dir(id),
                        source,
                    })
                });
            if let Err(e) = built {
                let _ = layer::fs::remove_tree(&tmp);
                return Err(e);
            }
            let t = now();
            r.snapshots.insert(
                key.to_owned(),
                Record {
                    id,
                    kind,
                    parent: parent.map(str::to_owned),
                    created: t,
                    updated: t,
                    usage: None,
                },
            );
            self.mounts_of(r, key)
        })
    }

    fn mounts_of(&self, r: &Records, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let rec = r
            .snapshots
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound {
                key: key.to_owned(),
            })?;
        let parents = match &rec.parent {
            Some(p) => chain(r, p)?,
            None => Vec::new(),
        };
        let path_string = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut options = vec!["index=off".to_owned()];
        if self.options.userxattr {
            options.push("userxattr".to_owned());
        }
        let bind = |source: PathBuf, ro: bool| {
            vec![Mount {
                kind: MountKind::Bind,
                source,
                options: vec!["bind".to_owned(), (if ro { "ro" } else { "rw" }).to_owned()],
            }]
        };
        let lowerdir = || {
            let dirs: Vec<String> = parents
                .iter()
                .map(|id| path_string(self.fs_dir(*id)))
                .collect();
            format!("lowerdir={}", dirs.join(":"))
        };
        Ok(match (rec.kind, parents.as_slice()) {
            (Kind::Committed, _) => {
                return Err(SnapshotError::WrongKind {
                    key: key.to_owned(),
                    expected: "active or a view",
                    actual: Kind::Committed,
                })
            }
            (Kind::Active, []) => bind(self.fs_dir(rec.id), false),
            (Kind::View, []) => bind(self.fs_dir(rec.id), true),
            (Kind::View, [only]) => bind(self.fs_dir(*only), true),
            (Kind::Active, _) => {
                options.push(format!(
                    "workdir={}",
                    path_string(self.dir(rec.id).join("work"))
                ));
                options.push(format!("upperdir={}", path_string(self.fs_dir(rec.id))));
                options.push(lowerdir());
                vec![Mount {
                    kind: MountKind::Overlay,
                    source: PathBuf::from("overlay"),
                    options,
                }]
            }
            (Kind::View, _) => {
                options.push(lowerdir());
                vec![Mount {
                    kind: MountKind::Overlay,
                    source: PathBuf::from("overlay"),
                    options,
                }]
            }
        })
    }

    fn info(key: &str, rec: &Record) -> Info {
        Info {
            kind: rec.kind,
            name: key.to_owned(),
            parent: rec.parent.clone(),
            created: to_time(rec.created),
            updated: to_time(rec.updated),
        }
    }
}

/// Directory ids of `name` and its ancestors, `name` first.
fn chain(r: &Records, name: &str) -> Result<Vec<u64>, SnapshotError> {
    let mut ids = Vec::new();
    let mut cur = Some(name);
    while let Some(n) = cur {
        let rec = r
            .snapshots
            .get(n)
            .ok_or_else(|| SnapshotError::CorruptRecords {
                key: n.to_owned(),
                reason: "parent missing",
            })?;
        ids.push(rec.id);
        if ids.len() > MAX_LOWER_LAYERS + 1 {
            // Longer than any chain `create` allows: a cycle.
            return Err(SnapshotError::CorruptRecords {
                key: name.to_owned(),
                reason: "parent chain too long or cyclic",
            });
        }
        cur = rec.parent.as_deref();
    }
    Ok(ids)
}

impl Snapshotter for OverlaySnapshotter {
    fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        self.records.read(|r| {
            r.snapshots
                .get(key)
                .map(|rec| Self::info(key, rec))
                .ok_or_else(|| SnapshotError::NotFound {
                    key: key.to_owned(),
                })
        })
    }

    fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let (id, stored) = self.records.read(|r| {
            r.snapshots
                .get(key)
                .map(|rec| (rec.id, rec.usage))
                .ok_or_else(|| SnapshotError::NotFound {
                    key: key.to_owned(),
                })
        })?;
        match stored {
            Some(u) => Ok(u),
            None => layer::usage(&self.fs_dir(id)).map_err(|source| SnapshotError::Usage {
                key: key.to_owned(),
                source,
            }),
        }
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        self.records.read(|r| self.mounts_of(r, key))
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(Kind::Active, key, parent)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(Kind::View, key, parent)
    }

    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        check_key(name)?;
        self.records.update(|r| {
            let rec = r
                .snapshots
                .get(key)
                .ok_or_else(|| SnapshotError::NotFound {
                    key: key.to_owned(),
                })?;
            if rec.kind != Kind::Active {
                return Err(SnapshotError::WrongKind {
                    key: key.to_owned(),
                    expected: "active",
                    actual: rec.kind,
                });
            }
            if r.snapshots.contains_key(name) {
                return Err(SnapshotError::AlreadyExists {
                    key: name.to_owned(),
                });
            }
            let usage =
                layer::usage(&self.fs_dir(rec.id)).map_err(|source| SnapshotError::Usage {
                    key: key.to_owned(),
                    source,
                })?;
            let Some(mut rec) = r.snapshots.remove(key) else {
                return Err(SnapshotError::NotFound {
                    key: key.to_owned(),
                });
            };
            rec.kind = Kind::Committed;
            rec.usage = Some(usage);
            rec.updated = now();
            r.snapshots.insert(name.to_owned(), rec);
            Ok(())
        })
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let doomed = self.records.update(|r| {
            let rec = r
                .snapshots
                .get(key)
                .ok_or_else(|| SnapshotError::NotFound {
                    key: key.to_owned(),
                })?;
            let id = rec.id;
            if r.snapshots
                .values()
                .any(|s| s.parent.as_deref() == Some(key))
            {
                return Err(SnapshotError::HasChildren {
                    key: key.to_owned(),
                });
            }
            let from = self.dir(id);
            let to = self.root.join("snapshots").join(format!("rm-{id}"));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(SnapshotError::Rename { from, to, source }),
            }
            r.snapshots.remove(key);
            Ok(to)
        })?;
        layer::fs::remove_tree(&doomed).map_err(|source| SnapshotError::RemoveDir {
            path: doomed.clone(),
            source,
        })
    }

    fn walk(&self, f: &mut dyn FnMut(&Info)) -> Result<(), SnapshotError> {
        let infos: Vec<Info> = self.records.read(|r| {
            Ok(r.snapshots
                .iter()
                .map(|(k, rec)| Self::info(k, rec))
                .collect())
        })?;
        for info in &infos {
            f(info);
        }
        Ok(())
    }
}
