//! Crash-safe metadata: image names and who uses which image.
//!
//! # Choice: one atomic JSON file
//!
//! The whole metadata state is one JSON document, `metadata.json`, replaced atomically
//! on every change (write `metadata.json.tmp`, fsync it, rename it over
//! `metadata.json`, fsync the directory). A reader opens `metadata.json` and always gets
//! one complete state, old or new, never half of a change; a crash at any point leaves
//! the old state or the new one. Writers take an exclusive `flock(2)` on
//! `metadata.lock` for the whole read–modify–write, so changes from several threads
//! or processes serialise. The state is small (a few hundred bytes per image
//! name), so rewriting it whole is cheap at the scale of one host, and the file
//! can be read and repaired by hand. An embedded database (redb) would scale further
//! but allows only one process to open it; revisit past ~10,000 records.
//!
//! # Schema (version 1)
//!
//! ```text
//! {
//!   "version": 1,
//!   "images": {                          name → image record
//!     "<name>": {                        normally a full normalised reference
//!       "name": "<name>",                (docker.io/library/busybox:latest)
//!       "target": { "mediaType", "digest", "size" },   manifest or index pulled
//!       "created", "updated": time,
//!       "labels": { string: string }
//!     }
//!   },
//!   "image_users": {                     target digest → users (container IDs)
//!     "sha256:…": [ "<container id>", … ]
//!   }
//! }
//! ```
//!
//! Invariant kept by [`Metadata`]'s methods: an image whose target has users cannot be
//! removed unless forced or unless another name keeps the target.
//!
//! Snapshot records (key, parent, kind) are not kept here: the
//! [snapshotter](crate::snapshot) owns them, in its own `snapshots.json` written the
//! same atomic way, next to the directories they describe.
//!
//! # Use
//!
//! [`MetadataStore::read`] returns a consistent copy of the state;
//! [`MetadataStore::update`] runs a closure on the state under the write lock and
//! saves the result only if the closure succeeds:
//!
//! ```
//! # use berth_images::metadata::*;
//! # use berth_images::digest::Digest;
//! # let dir = tempfile::tempdir().unwrap();
//! let store = MetadataStore::open(dir.path()).unwrap();
//! let target = Target {
//!     media_type: "application/vnd.oci.image.manifest.v1+json".into(),
//!     digest: Digest::sha256_of(b"manifest"),
//!     size: 8,
//! };
//! store
//!     .update(|m| m.put_image("docker.io/library/busybox:latest", target, Default::default()))
//!     .unwrap();
//! assert!(store.read().unwrap().image("docker.io/library/busybox:latest").is_some());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_errdefs::{ErrorKind, HasKind};
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest metadata file accepted when reading.
const MAX_FILE_SIZE: u64 = 256 << 20;
/// Longest image name or user ID.
const MAX_NAME_LEN: usize = 1024;
/// Most labels on one record.
const MAX_LABELS: usize = 256;
/// Longest label key plus value.
const MAX_LABEL_LEN: usize = 4096;

const STATE_FILE: &str = "metadata.json";
const TEMP_FILE: &str = "metadata.json.tmp";
const LOCK_FILE: &str = "metadata.lock";

/// Why a metadata operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Creating the metadata directory failed.
    #[error("cannot create metadata directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Taking the write lock failed.
    #[error("cannot lock metadata {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Reading the state file failed.
    #[error("cannot read metadata {path}: {source}")]
    Read {
        /// The state file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error("corrupt metadata {path}: {source}")]
    Decode {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The state file is larger than any sane state.
    #[error("metadata {path} is larger than {MAX_FILE_SIZE} bytes")]
    TooLarge {
        /// The state file.
        path: PathBuf,
    },
    /// The state file was written by a newer (or unknown) schema.
    #[error(
        "metadata {path} has schema version {found}; this Berth reads version {SCHEMA_VERSION}"
    )]
    UnsupportedVersion {
        /// The state file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// Writing the new state failed.
    #[error("cannot write metadata {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Serialising the state failed.
    #[error("cannot encode metadata: {0}")]
    Encode(serde_json::Error),
    /// No image has that name.
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    /// The image is used and removal was not forced.
    #[error("image {name:?} is in use by {}", users.join(", "))]
    ImageInUse {
        /// The image name.
        name: String,
        /// Who uses it.
        users: Vec<String>,
    },
    /// A name, key, user or label breaks the bounds.
    #[error("invalid {what}: {why}")]
    InvalidRecord {
        /// What was checked.
        what: &'static str,
        /// Why it was refused.
        why: &'static str,
    },
}

impl HasKind for MetadataError {
    fn kind(&self) -> ErrorKind {
        match self {
            MetadataError::CreateDir { source, .. }
            | MetadataError::Lock { source, .. }
            | MetadataError::Read { source, .. }
            | MetadataError::Write { source, .. } => match ErrorKind::from_io(source) {
                ErrorKind::NotFound => ErrorKind::Internal,
                kind => kind,
            },
            MetadataError::Decode { .. }
            | MetadataError::TooLarge { .. }
            | MetadataError::Encode(_) => ErrorKind::Internal,
            MetadataError::UnsupportedVersion { .. } => ErrorKind::FailedPrecondition,
            MetadataError::ImageNotFound(_) => ErrorKind::NotFound,
            MetadataError::ImageInUse { .. } => ErrorKind::Conflict,
            MetadataError::InvalidRecord { .. } => ErrorKind::InvalidArgument,
        }
    }
}

/// The content an image name points to: a manifest or an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Media type of the manifest or index.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The name (normally a full normalised reference).
    pub name: String,
    /// What the name points to.
    pub target: Target,
    /// When the name was first created.
    pub created: SystemTime,
    /// When the name last changed target or labels.
    pub updated: SystemTime,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// What [`Metadata::remove_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRemoval {
    /// The name was removed; its target is still named elsewhere or still used.
    Untagged {
        /// The removed name.
        name: String,
    },
    /// The last name of an unused target was removed: its content may be collected.
    Deleted {
        /// The removed name.
        name: String,
        /// The target no name refers to any more.
        target: Target,
    },
}

/// The whole metadata state. Get a copy with [`MetadataStore::read`]; change it inside
/// [`MetadataStore::update`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    version: u32,
    #[serde(default)]
    images: BTreeMap<String, ImageRecord>,
    #[serde(default)]
    image_users: BTreeMap<Digest, BTreeSet<String>>,
}

impl Default for Metadata {
    fn default() -> Metadata {
        Metadata {
            version: SCHEMA_VERSION,
            images: BTreeMap::new(),
            image_users: BTreeMap::new(),
        }
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), MetadataError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "too long"
    } else if name.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(MetadataError::InvalidRecord { what, why })
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    if labels.len() > MAX_LABELS {
        return Err(MetadataError::InvalidRecord {
            what: "labels",
            why: "too many",
        });
    }
    if labels
        .iter()
        .any(|(k, v)| k.len() + v.len() > MAX_LABEL_LEN)
    {
        return Err(MetadataError::InvalidRecord {
            what: "label",
            why: "too long",
        });
    }
    Ok(())
}

impl Metadata {
    /// The image named `name`.
    pub fn image(&self, name: &str) -> Option<&ImageRecord> {
        self.images.get(name)
    }

    /// Every image, by name.
    pub fn images(&self) -> impl Iterator<Item = &ImageRecord> {
        self.images.values()
    }

    /// The images whose target is `digest`.
    pub fn images_by_target<'a>(
        &'a self,
        digest: &'a Digest,
    ) -> impl Iterator<Item = &'a ImageRecord> + 'a {
        self.images
            .values()
            .filter(move |i| i.target.digest == *digest)
    }

    /// Points `name` at `target` (creating or replacing it). Returns the previous record.
    pub fn put_image(
        &mut self,
        name: &str,
        target: Target,
        labels: BTreeMap<String, String>,
    ) -> Result<Option<ImageRecord>, MetadataError> {
        check_name("image name", name)?;
        check_labels(&labels)?;
        let now = SystemTime::now();
        let created = self.images.get(name).map_or(now, |old| old.created);
        let record = ImageRecord {
            name: name.to_owned(),
            target,
            created,
            updated: now,
            labels,
        };
        Ok(self.images.insert(name.to_owned(), record))
    }

    /// Gives the target of `source` the additional name `name` (docker tag).
    pub fn tag_image(&mut self, source: &str, name: &str) -> Result<&ImageRecord, MetadataError> {
        let record = self
            .images
            .get(source)
            .ok_or_else(|| MetadataError::ImageNotFound(source.to_owned()))?;
        let (target, labels) = (record.target.clone(), record.labels.clone());
        self.put_image(name, target, labels)?;
        self.images
            .get(name)
            .ok_or_else(|| MetadataError::ImageNotFound(name.to_owned()))
    }

    /// Removes the name `name`. Refused with [`MetadataError::ImageInUse`] when it is
    /// the last name of a target that has users, unless `force`.
    pub fn remove_image(&mut self, name: &str, force: bool) -> Result<ImageRemoval, MetadataError> {
        let record = self
            .images
            .get(name)
            .ok_or_else(|| MetadataError::ImageNotFound(name.to_owned()))?;
        let digest = record.target.digest.clone();
        let other_names = self.images_by_target(&digest).count() > 1;
        let users = self.image_users(&digest);
        if !other_names && !users.is_empty() && !force {
            return Err(MetadataError::ImageInUse {
                name: name.to_owned(),
                users,
            });
        }
        let removed = self
            .images
            .remove(name)
            .ok_or_else(|| MetadataError::ImageNotFound(name.to_owned()))?;
        if other_names || !users.is_empty() {
            Ok(ImageRemoval::Untagged {
                name: name.to_owned(),
            })
        } else {
            Ok(ImageRemoval::Deleted {
                name: name.to_owned(),
                target: removed.target,
            })
        }
    }

    /// Records that `user` (a container ID) uses the image whose target is `target`.
    pub fn add_image_user(&mut self, target: &Digest, user: &str) -> Result<(), MetadataError> {
        check_name("image user", user)?;
        self.image_users
            .entry(target.clone())
            .or_default()
            .insert(user.to_owned());
        Ok(())
    }

    /// Forgets that `user` uses `target`. Returns whether it did.
    pub fn remove_image_user(&mut self, target: &Digest, user: &str) -> bool {
        let Some(users) = self.image_users.get_mut(target) else {
            return false;
        };
        let removed = users.remove(user);
        if users.is_empty() {
            self.image_users.remove(target);
        }
        removed
    }

    /// Forgets `user` everywhere (a removed container). Returns how many uses went.
    pub fn remove_user(&mut self, user: &str) -> usize {
        let mut removed = 0;
        self.image_users.retain(|_, users| {
            if users.remove(user) {
                removed += 1;
            }
            !users.is_empty()
        });
        removed
    }

    /// Who uses the image whose target is `target`, sorted.
    pub fn image_users(&self, target: &Digest) -> Vec<String> {
        self.image_users
            .get(target)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The digests garbage collection must keep (with everything they reference):
    /// every named target and every used target.
    pub fn gc_roots(&self) -> BTreeSet<Digest> {
        self.images
            .values()
            .map(|i| i.target.digest.clone())
            .chain(self.image_users.keys().cloned())
            .collect()
    }
}

/// The metadata of one store, kept in a directory (see the module documentation).
#[derive(Debug, Clone)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    /// Opens the metadata in `dir`, creating the directory if needed.
    pub fn open(dir: &Path) -> Result<MetadataStore, MetadataError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| MetadataError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let store = MetadataStore {
            dir: dir.to_path_buf(),
        };
        // Fail early on a corrupt or future-version file.
        store.read()?;
        Ok(store)
    }

    /// A consistent copy of the current state.
    pub fn read(&self) -> Result<Metadata, MetadataError> {
        self.load().map(|(m, _)| m)
    }

    /// Runs `f` on the current state under the write lock and saves the changed state
    /// atomically if `f` succeeds. If `f` fails, nothing is saved.
    pub fn update<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Metadata) -> Result<T, E>,
        E: From<MetadataError>,
    {
        let _lock = self.lock()?;
        let (mut state, raw) = self.load()?;
        let out = f(&mut state)?;
        let bytes = serde_json::to_vec(&state).map_err(MetadataError::Encode)?;
        if raw.as_deref() != Some(bytes.as_slice()) {
            self.save(&bytes)?;
        }
        Ok(out)
    }

    fn lock(&self) -> Result<File, MetadataError> {
        let path = self.dir.join(LOCK_FILE);
        let lock_err = |source| MetadataError::Lock {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| lock_err(e.into()))?;
        Ok(file)
    }

    /// The state and the exact bytes it came from (`None`: no file yet).
    fn load(&self) -> Result<(Metadata, Option<Vec<u8>>), MetadataError> {
        let path = self.dir.join(STATE_FILE);
        let read_err = |source| MetadataError::Read {
            path: path.clone(),
            source,
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Metadata::default(), None))
            }
            Err(e) => return Err(read_err(e)),
        };
        let mut raw = Vec::new();
        file.take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut raw)
            .map_err(read_err)?;
        if raw.len() as u64 > MAX_FILE_SIZE {
            return Err(MetadataError::TooLarge { path });
        }
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let version: Version =
            serde_json::from_slice(&raw).map_err(|source| MetadataError::Decode {
                path: path.clone(),
                source,
            })?;
        if version.version != SCHEMA_VERSION {
            return Err(MetadataError::UnsupportedVersion {
                path,
                found: version.version,
            });
        }
        let state = serde_json::from_slice(&raw).map_err(|source| MetadataError::Decode {
            path: path.clone(),
            source,
        })?;
        Ok((state, Some(raw)))
    }

    fn save(&self, bytes: &[u8]) -> Result<(), MetadataError> {
        let tmp = self.dir.join(TEMP_FILE);
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MetadataError::Write { path, source }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write_err(&tmp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(write_err(&tmp))?;
        drop(file);
        let target = self.dir.join(STATE_FILE);
        fs::rename(&tmp, &target).map_err(write_err(&target))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err(&self.dir))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn target(s: &[u8]) -> Target {
        Target {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::sha256_of(s),
            size: s.len() as u64,
        }
    }

    const BUSYBOX: &str = "docker.io/library/busybox:latest";

    #[test]
    fn images_tags_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        assert!(store.read().unwrap().images().next().is_none());
        let t = target(b"m1");
        store
            .update(|m| m.put_image(BUSYBOX, t.clone(), BTreeMap::new()))
            .unwrap();
        store
            .update(|m| m.tag_image(BUSYBOX, "localhost/mine:1").map(|_| ()))
            .unwrap();
        store.update(|m| m.add_image_user(&t.digest, "c1")).unwrap();

        let m = store.read().unwrap();
        assert_eq!(m.images_by_target(&t.digest).count(), 2);
        assert_eq!(m.image_users(&t.digest), vec!["c1".to_owned()]);
        assert!(m.gc_roots().contains(&t.digest));

        // One of two names: untagged even while used.
        let r = store
            .update(|m| m.remove_image("localhost/mine:1", false))
            .unwrap();
        assert_eq!(
            r,
            ImageRemoval::Untagged {
                name: "localhost/mine:1".into()
            }
        );
        // The last name of a used image: refused, then forced.
        let err = store
            .update(|m| m.remove_image(BUSYBOX, false))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains("c1"), "{err}");
        assert!(store.read().unwrap().image(BUSYBOX).is_some());
        let r = store.update(|m| m.remove_image(BUSYBOX, true)).unwrap();
        assert!(matches!(r, ImageRemoval::Untagged { .. }));
        // The used target stays a GC root without any name.
        assert!(store.read().unwrap().gc_roots().contains(&t.digest));
        assert_eq!(
            store
                .update(|m| Ok::<_, MetadataError>(m.remove_user("c1")))
                .unwrap(),
            1
        );
        assert!(store.read().unwrap().gc_roots().is_empty());

        store
            .update(|m| m.put_image(BUSYBOX, t.clone(), BTreeMap::new()))
            .unwrap();
        let r = store.update(|m| m.remove_image(BUSYBOX, false)).unwrap();
        assert_eq!(
            r,
            ImageRemoval::Deleted {
                name: BUSYBOX.into(),
                target: t
            }
        );
        let err = store
            .update(|m| m.remove_image(BUSYBOX, false))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn retag_keeps_created() {
        let mut m = Metadata::default();
        m.put_image("a", target(b"1"), BTreeMap::new()).unwrap();
        let created = m.image("a").unwrap().created;
        let old = m
            .put_image("a", target(b"2"), BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(old.target, target(b"1"));
        assert_eq!(m.image("a").unwrap().created, created);
        assert_eq!(m.image("a").unwrap().target, target(b"2"));
    }

    #[test]
    fn failed_update_saves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let err = store
            .update(|m| {
                m.put_image(BUSYBOX, target(b"x"), BTreeMap::new())?;
                m.remove_image("missing", false)
            })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(store.read().unwrap().image(BUSYBOX).is_none());
    }

    #[test]
    fn bounds() {
        let mut m = Metadata::default();
        for bad in ["", "a\nb", &"x".repeat(2000)] {
            assert_eq!(
                m.put_image(bad, target(b"x"), BTreeMap::new())
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidArgument
            );
        }
        let many: BTreeMap<_, _> = (0..300).map(|i| (i.to_string(), String::new())).collect();
        assert!(m.put_image("a", target(b"x"), many).is_err());
        let long: BTreeMap<_, _> = [("k".to_owned(), "v".repeat(5000))].into();
        assert!(m.put_image("b", target(b"x"), long).is_err());
    }

    #[test]
    fn persists_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        store
            .update(|m| m.put_image(BUSYBOX, target(b"x"), BTreeMap::new()))
            .unwrap();
        let again = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(again.read().unwrap(), store.read().unwrap());
        // A crash left a half-written temp file: ignored.
        fs::write(dir.path().join(TEMP_FILE), b"{\"version\":1,\"ima").unwrap();
        assert!(again.read().unwrap().image(BUSYBOX).is_some());

        fs::write(dir.path().join(STATE_FILE), b"{\"version\":7}").unwrap();
        let err = MetadataStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, MetadataError::UnsupportedVersion { found: 7, .. }),
            "{err}"
        );
        fs::write(dir.path().join(STATE_FILE), b"{\"version\":1,").unwrap();
        let err = MetadataStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, MetadataError::Decode { .. }), "{err}");
    }

    #[test]
    fn concurrent_updates_serialise() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        store
                            .update(|m| {
                                m.put_image(&format!("img-{t}-{i}"), target(b"x"), BTreeMap::new())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.read().unwrap().images().count(), 80);
    }
}
