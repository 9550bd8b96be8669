//! Snapshots: the overlay layer chain of an image plus a writable layer per container,
//! described as mounts. The model is containerd's snapshotter; the code is Berth's own.
//!
//! # Terms
//!
//! - A **snapshot** is a directory tree that is either **committed** (read-only, named:
//!   an image layer applied on its parent), **active** (writable: a layer being unpacked,
//!   or a container's root filesystem) or a **view** (a read-only look at a committed
//!   snapshot).
//! - Active snapshots and views are addressed by a **key**, committed ones by a **name**
//!   (both share one namespace). Keys and names are any non-empty strings up to 4096
//!   bytes; they are never used as paths.
//! - The **parent** of a snapshot is the committed snapshot it is based on; `None` is the
//!   empty tree (the base layer of an image, or a `scratch` container).
//!
//! # Lifecycle
//!
//! Unpacking an image of layers L1..Ln (chain ids C1..Cn):
//!
//! 1. `prepare("extract-<random> C1", None)` gives mounts; [`writable_dir`] of them is
//!    the directory to [`apply`](crate::layer::apply) L1 into;
//!    `commit("C1", "extract-<random> C1")` turns it into the committed snapshot `C1`.
//! 2. Likewise for Lk with parent `C(k-1)`.
//!
//! Running a container: `prepare("<container id>", Some("Cn"))` gives an overlay mount
//! whose lower layers are Cn..C1 and whose upper directory is the container's; the
//! caller performs it with [`mount`] (a snapshotter describes mounts, it never mounts).
//! [`crate::layer::diff`] of its writable directory gives the layer of a `commit`;
//! `remove("<container id>")` discards it. A committed snapshot with children cannot be
//! removed.
//!
//! # Mounts
//!
//! - active, no parent: a writable bind mount of its directory;
//! - active with parents: `overlay` with `index=off`, `redirect_dir=off` and
//!   `metacopy=off` (so the upper directory stays a plain changeset that
//!   [`crate::layer::diff`] reads right; rootless stores get `userxattr` instead, which
//!   implies both), `upperdir`, `workdir`, `lowerdir=<parent>:…:<base>`;
//! - view with no parent: a read-only bind mount of an empty directory; with one parent:
//!   a read-only bind mount of it; with more: a read-only overlay of `lowerdir` only.
//!
//! See [`mount`] for how chains of hundreds of layers fit the kernel's option limits.
//! Snapshot records are kept in a JSON file under the root for now (see
//! [`OverlaySnapshotter`]), behind an internal interface the metadata store can take over.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

mod error;
mod mount;
mod overlay;
mod records;

pub use crate::layer::Usage;
pub use error::{MountError, SnapshotError};
pub use mount::{mount, unmount, writable_dir, MAX_LOWER_LAYERS};
pub use overlay::{OverlayOptions, OverlaySnapshotter};

/// What a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-only, named; a parent for others.
    Committed,
    /// Writable.
    Active,
    /// Read-only view of a committed snapshot.
    View,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Committed => "committed",
            Kind::Active => "active",
            Kind::View => "a view",
        })
    }
}

/// What is known about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Its kind.
    pub kind: Kind,
    /// Its key (active, view) or name (committed).
    pub name: String,
    /// Name of the committed parent.
    pub parent: Option<String>,
    /// When it was created.
    pub created: SystemTime,
    /// When it last changed (commit).
    pub updated: SystemTime,
}

/// The type of a [`Mount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A bind mount of `source` (options: `bind` or `rbind`, `ro` or `rw`).
    Bind,
    /// An overlay mount (`source` is `overlay`; options carry the layer directories).
    Overlay,
}

impl MountKind {
    /// The filesystem type name.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Overlay => "overlay",
        }
    }
}

/// One mount to perform, as containerd describes them: type, source and options in
/// `mount(8)` syntax.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The type.
    pub kind: MountKind,
    /// The source directory (bind) or `overlay`.
    pub source: PathBuf,
    /// The options.
    pub options: Vec<String>,
}

/// A snapshotter: creates, commits and removes snapshots and describes their mounts.
/// Every method is safe to call from several threads and processes at once.
pub trait Snapshotter: Send + Sync {
    /// What is known about snapshot `key`.
    fn stat(&self, key: &str) -> Result<Info, SnapshotError>;

    /// Disk usage of snapshot `key`'s own directory (not its parents): measured now for
    /// active snapshots and views, recorded at commit for committed ones.
    fn usage(&self, key: &str) -> Result<Usage, SnapshotError>;

    /// The mounts of active snapshot or view `key`.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;

    /// Creates active snapshot `key` on committed `parent` and returns its mounts.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;

    /// Creates read-only view `key` of committed `parent` and returns its mounts.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;

    /// Turns active snapshot `key` into committed snapshot `name` (`key` is gone after).
    /// The caller has unmounted it.
    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError>;

    /// Removes snapshot `key` and its directory; a committed snapshot with children is
    /// refused. The caller has unmounted it.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;

    /// Calls `f` with every snapshot, in key order.
    fn walk(&self, f: &mut dyn FnMut(&Info)) -> Result<(), SnapshotError>;
}
