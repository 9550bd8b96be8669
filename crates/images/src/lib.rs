//! Berth's image layer: what the seeds call images — read-only layers combined by a
//! union filesystem, with a writable layer per container.
//!
//! This crate owns, and only owns:
//! - the **content store** ([`content`]): content-addressed blobs, verified against
//!   their digest before they become visible;
//! - **metadata** ([`metadata`]): image names and tags, and which containers use which
//!   image (one atomic JSON file; the snapshotter keeps its own records the same way);
//! - **formats** ([`manifest`], [`mod@reference`], [`digest`]): OCI image-spec 1.1 and
//!   Docker v2 schema 2 documents, image references as docker normalises them;
//! - **layers** ([`layer`]): applying a (hostile) layer tar to a snapshot directory and
//!   computing a container's changes back into a layer tar;
//! - **snapshots** ([`snapshot`]): the overlay layer chain of an image plus a writable
//!   layer per container, described as mounts (the caller mounts them);
//! - the **registry client** ([`registry`]): OCI distribution-spec 1.1 pull and push,
//!   and [`push`] of stored images;
//! - **archives** ([`archive`]): docker-archive, OCI layout and OCI archive in and out,
//!   `import` of a root filesystem tar, `export`;
//! - the **image service** ([`service`]): the one façade the engine uses, tying the
//!   above together (pull, push, load, save, import, list, inspect, tag, remove, prune,
//!   gc, container root filesystems, commit), safe against concurrent `gc` and crashes.
//!
//! It knows nothing of HTTP servers, CLIs or containers' processes: the engine drives it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod content;
pub mod digest;
pub mod layer;
pub mod manifest;
pub mod metadata;
pub mod progress;
pub mod push;
pub mod reference;
pub mod registry;
pub mod service;
pub mod snapshot;
