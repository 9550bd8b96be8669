//! Image archives: conversions between archive formats and the content store plus
//! metadata, in both directions.
//!
//! | Format | In | Out |
//! |---|---|---|
//! | docker-archive (`docker save` / `docker load`) | [`load`] | [`save_docker_archive`] |
//! | OCI image layout (directory) | [`load`] | [`save_oci_layout`] |
//! | OCI archive (tar of a layout) | [`load`] | [`save_oci_archive`] |
//! | plain rootfs tar (`docker import`) | [`import`] | — |
//! | a container's tree (`docker export`) | — | [`export`] |
//!
//! This module moves **blobs and names**, nothing else: it does not unpack layers
//! into snapshots. After a load or an import the caller (the image service) unpacks
//! the loaded images the way it unpacks pulled ones.
//!
//! # Loading
//!
//! [`load`] opens a tar file or a directory and tells the format from its contents:
//! `manifest.json` makes it a docker-archive (also the layout Docker 25+ writes, with
//! an OCI layout inside: its `manifest.json` points into `blobs/`), else `index.json`
//! with `oci-layout` an OCI layout, else `repositories` a docker-archive of Docker
//! before 1.10 (layer chains of `<id>/json`; the config is rebuilt from the top
//! layer's JSON, as Docker does). A tar archive is first **indexed** (headers only,
//! member contents skipped by offset), so documents may come in any order and every
//! member's bytes are then read exactly once.
//!
//! 1. The documents (`manifest.json`, `index.json`, manifests, configs) are read,
//!    bounded and validated; every name and path in them is checked before any blob
//!    is stored.
//! 2. Each layer is copied into the content store as it is (compressed or not),
//!    hashed as it streams and verified by the store before it becomes visible:
//!    - OCI: against the descriptor's digest and size;
//!    - docker-archive: layers carry no descriptor, only the config's diff IDs. An
//!      uncompressed layer (what `docker save` writes) *is* its diff ID, so the store's
//!      verification is the diff-ID check, in the same pass. A gzip or zstd layer
//!      (detected by its magic number) is read twice: once to hash it and its
//!      decompressed stream (the diff-ID check), once to store it under the digest
//!      now known (the content store's writers need the digest up front).
//!
//!    A blob the store has already is not read at all.
//! 3. Configs and manifests are stored. A docker-archive image gets a synthesized
//!    Docker v2 schema 2 manifest (config and layers as found), so it can be pushed.
//!    An OCI image keeps its manifest (the one chosen for the platform, when the
//!    layout holds an index: the name then points at that manifest, the one whose
//!    content the store has in full).
//! 4. Only when every blob of every image is stored are the names recorded, in one
//!    metadata update: a failed load names nothing (its stored blobs stay until the
//!    garbage collector takes them).
//!
//! Names: docker-archive `RepoTags` (normalised: `busybox:latest` →
//! `docker.io/library/busybox:latest`); OCI `io.containerd.image.name`, else
//! `org.opencontainers.image.ref.name` when it is a full reference, or a bare tag
//! joined to [`LoadOptions::repository`]. An image without a name is loaded but not
//! named; [`LoadReport`] gives its target so the caller can name it.
//!
//! # Saving
//!
//! The saves read the store only. A docker-archive is written in the layout Docker
//! 20.10 writes and every `docker load` and `podman load` reads: `manifest.json`,
//! `repositories`, `<config hex>.json`, and per layer `<id>/layer.tar`, `<id>/json`,
//! `<id>/VERSION`, layers **uncompressed** (a compressed stored layer is decompressed
//! twice on the fly: once to learn its size and check its diff ID, once into the
//! archive, so the output can be a pipe). OCI layouts and archives get the blobs as
//! stored and an `index.json` with `org.opencontainers.image.ref.name` (the tag, as
//! skopeo and umoci use it, or the full name, see [`RefName`]) and
//! `io.containerd.image.name` annotations. Saving to an existing layout directory
//! adds to its `index.json` (entries with the same reference name are replaced).
//!
//! # Hostile archives
//!
//! An archive is attacker-controlled. Bounds ([`ArchiveLimits`]) apply to the number
//! of members, path lengths, tar extension headers and every JSON document, each
//! checked before the work it bounds; member names and the paths documents refer to
//! must be relative without `..` (symlinks between members are followed inside the
//! archive only, a bounded number of times); duplicate members are refused; every
//! blob is verified against its digest; nothing is ever written outside the content
//! store and the metadata. Each failure is an [`ArchiveError`] naming the file.
//!
//! # Progress
//!
//! Loads report each layer (named by its blob digest; for a docker-archive, by its
//! diff ID): `Waiting`, then `Verifying` (a compressed docker-archive layer's first
//! pass), `Downloading` (bytes moving from the archive into the store), `Verifying`,
//! `Done`, or `AlreadyExists`. Saves report `Uploading` (bytes moving from the store
//! into the archive) and `Done` per layer.
//!
//! All functions are synchronous (`std::io`), like the content store: async callers
//! run them with `tokio::task::spawn_blocking`.

mod blob;
mod docker_legacy;
mod docker_load;
mod docker_save;
mod error;
mod export;
mod import;
mod load;
mod oci_load;
mod oci_save;
mod path;
mod source;
mod stored;
mod tar_index;
mod tar_out;

pub use docker_save::save_docker_archive;
pub use error::ArchiveError;
pub use export::{export, ExportStats};
pub(crate) use import::spool;
pub use import::{import, ImportOptions, ImportedImage};
pub use load::{load, load_file, ArchiveFormat, LoadOptions, LoadReport, LoadedImage};
pub use oci_save::{save_oci_archive, save_oci_layout, RefName};

/// Why `name` may not be given to an image an archive or an import brings, if it may
/// not: a name carrying a digest would claim content the image may not have (a later
/// `busybox@sha256:…` would select it), and a repository named `sha256` reads as an
/// image ID (`sha256:<hex>`), as docker also refuses.
pub(crate) fn refused_name(name: &crate::reference::Reference) -> Option<&'static str> {
    if name.digest().is_some() {
        Some("an image name from an archive or an import cannot carry a digest")
    } else if name.familiar_name() == "sha256" {
        Some("a repository named like a digest algorithm is ambiguous with image IDs")
    } else {
        None
    }
}

use crate::manifest::Platform;
use crate::metadata::Target;
use crate::reference::Reference;

/// Bounds on an archive being loaded. The defaults fit the largest real archives with
/// room to spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most members of a tar archive.
    pub max_entries: usize,
    /// Longest member name, referenced path or link target, in bytes.
    pub max_path_len: usize,
    /// Largest PAX extended header of a tar archive.
    pub max_pax_size: u64,
    /// Largest `manifest.json`, `index.json`, `repositories` or `oci-layout`
    /// (manifests and configs have the [`manifest`](crate::manifest) module's limits).
    pub max_document_size: u64,
    /// Most images in one archive.
    pub max_images: usize,
    /// Most bytes of decompressed stream hashed for one compressed layer.
    pub max_layer_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> ArchiveLimits {
        ArchiveLimits {
            max_entries: 100_000,
            max_path_len: 4096,
            max_pax_size: 1 << 20,
            max_document_size: 4 << 20,
            max_images: 1000,
            max_layer_bytes: 256 << 30,
        }
    }
}

/// An image to save: what to write, and under which names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    /// The manifest or index to save (normally an image record's target).
    pub target: Target,
    /// The names to give it in the archive (none: saved by ID only).
    pub names: Vec<Reference>,
}

/// How to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveOptions {
    /// The platform whose manifest is saved when a target is an index and the archive
    /// holds one manifest per image (docker-archive), or when the store lacks some of
    /// the index's manifests (OCI). Default: the host's.
    pub platform: Platform,
    /// What to put in `org.opencontainers.image.ref.name` (OCI outputs).
    pub ref_name: RefName,
}

impl Default for SaveOptions {
    fn default() -> SaveOptions {
        SaveOptions {
            platform: Platform::host(),
            ref_name: RefName::Tag,
        }
    }
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// Per image saved (in the order given, images with the same target merged): the
    /// manifest written for it.
    pub manifests: Vec<Target>,
    /// Blobs (or layer files) written.
    pub blobs: usize,
    /// Bytes of blob contents written.
    pub bytes: u64,
}
