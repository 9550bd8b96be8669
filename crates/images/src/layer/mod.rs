//! Layers: applying a layer tar to a layer directory, and computing a container's changes
//! back into a layer tar.
//!
//! # Terms
//!
//! - A **layer** is a tar stream of changes to a filesystem tree (OCI image-spec
//!   "layer changeset"). Deletions are **whiteouts**: an empty `.wh.<name>` entry deletes
//!   `<name>` of the layers below, and `<dir>/.wh..wh..opq` makes `<dir>` **opaque**
//!   (everything below it in lower layers is hidden).
//! - A **layer directory** holds one layer unpacked overlayfs-style: the lower layers
//!   are other directories, combined by an overlay mount (see
//!   [`snapshot`](crate::snapshot)). A whiteout is stored as overlayfs stores one, a 0:0
//!   character device `<name>`, and an opaque directory carries the extended attribute
//!   `trusted.overlay.opaque=y` (`user.overlay.opaque=y` for `userxattr` stores).
//! - The **diff_id** of a layer is the sha256 of its uncompressed tar stream; image
//!   configs list them. [`apply`] computes it while unpacking (no second pass).
//!
//! # Lifecycle
//!
//! 1. Pull: blob bytes → [`decompress`] → [`apply`] into the directory of a fresh
//!    snapshot → compare [`ApplyStats::diff_id`] with the config → commit the snapshot.
//! 2. Commit of a container: [`diff`] of its upper directory → a new layer tar.
//! 3. `system df`: [`usage`] of each layer and snapshot directory.
//!
//! # A layer tar is hostile
//!
//! - **Names.** A leading `/` is dropped (absolute names are relative to the layer),
//!   empty and `.` components are dropped, and any `..` component is refused, even
//!   `a/../b` (real layers never hold one; Docker refuses only breakouts, Berth keeps
//!   the simpler rule). NUL bytes and components over 255 bytes are refused too.
//! - **Resolution.** The parent of every entry is opened with `openat2(RESOLVE_IN_ROOT
//!   | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` relative to an fd of the layer
//!   directory, and the entry is created with `*at` calls relative to that parent fd.
//!   Symlinks the layer creates (even `a -> /`, `b -> ../../..`) therefore resolve inside
//!   the layer directory as if it were `/`: a later `a/evil` lands inside, never outside.
//!   Symlink targets themselves are only strings and may point anywhere.
//! - **Replacement.** The final component is never followed: whatever is in the way is
//!   replaced (a later entry wins; a directory over a directory merges; anything else
//!   replaces it, a directory with all its contents).
//! - **Hard links** must name an existing non-directory of the same layer, not the root;
//!   a symlink target is linked itself, never followed.
//! - **Devices** follow [`DeviceNodes`]; FIFOs and whiteouts are always created.
//! - **Extended attributes** from the tar are applied only for `user.*` (not
//!   `user.overlay.*`), `security.capability` (as Docker allows) and POSIX ACLs;
//!   `trusted.*` (including forged `trusted.overlay.*`), `security.selinux` and the rest
//!   are skipped and counted ([`ApplyStats::xattrs_skipped`]).
//! - **Sizes** are bounded by [`Limits`], each checked before the work it bounds.
//! - **Directories** are created private (0700) and get their mode and times at the end,
//!   after everything inside them was written, so read-only directories and directory
//!   times come out right whatever the entry order.
//!
//! Every failure is a [`LayerError`] naming the entry. Nothing outside the layer
//! directory is created, changed or removed, and no input makes these functions panic
//! (so `apply` can be fuzzed on arbitrary bytes into a temporary directory).

mod apply;
mod compression;
mod diff;
mod error;
pub(crate) mod fs;
mod options;
mod path;
mod tar;
mod usage;

pub use apply::{apply, ApplyStats};
pub use compression::{decompress, Compression};
pub(crate) use diff::tree;
pub use diff::{diff, DiffStats};
pub use error::{FsStep, LayerError, LimitKind};
pub(crate) use options::privileged;
pub use options::{ApplyOptions, DeviceNodes, DiffOptions, IdMap, IdRange, Limits};
pub use usage::{usage, Usage};
