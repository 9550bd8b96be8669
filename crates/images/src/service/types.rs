//! What the image service returns.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::manifest::{ContainerConfig, ImageConfig, Manifest, Platform};
use crate::metadata::Target;
use crate::reference::Reference;

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer blob's digest (compressed, as in the manifest).
    pub digest: Digest,
    /// The layer blob's media type.
    pub media_type: String,
    /// The layer blob's size in bytes (compressed).
    pub size: u64,
    /// The digest of the uncompressed layer tar (from the image config).
    pub diff_id: Digest,
    /// The chain ID: the name of this layer's committed snapshot.
    pub chain_id: Digest,
    /// Disk usage of this layer's unpacked snapshot (its own files only), `None` when
    /// it is not unpacked.
    pub unpacked_size: Option<u64>,
}

/// An image as `inspect` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image ID: the digest of its config.
    pub id: Digest,
    /// Its tags (full normalised references, `docker.io/library/busybox:latest`; show
    /// them with [`Reference::familiar`]).
    pub repo_tags: Vec<String>,
    /// Its digest references (`docker.io/library/busybox@sha256:…`).
    pub repo_digests: Vec<String>,
    /// What its names point to: the manifest, or the index it was pulled through.
    pub target: Target,
    /// The digest of the platform manifest.
    pub manifest_digest: Digest,
    /// The platform manifest.
    pub manifest: Manifest,
    /// The image config.
    pub config: ImageConfig,
    /// The platform, from the config.
    pub platform: Platform,
    /// The layers, base first.
    pub layers: Vec<LayerInfo>,
    /// Unpacked size: the sum of the layers' snapshot disk usage (what docker's
    /// `SIZE` column reports; see the [module docs](super)).
    pub size: u64,
    /// Compressed size: config plus layer blobs, as stored and pushed.
    pub content_size: u64,
    /// Containers using the image.
    pub containers: Vec<String>,
}

impl Image {
    /// The chain ID of the top layer (`None` for an image without layers): the parent
    /// of its containers' root filesystems.
    pub fn top_chain_id(&self) -> Option<&Digest> {
        self.layers.last().map(|l| &l.chain_id)
    }
}

/// One line of `docker images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The image ID (config digest).
    pub id: Digest,
    /// Tags (full normalised references).
    pub repo_tags: Vec<String>,
    /// Digest references.
    pub repo_digests: Vec<String>,
    /// When the image was created (RFC 3339, from the config).
    pub created: Option<String>,
    /// Unpacked size (sum of the layers' snapshot disk usage), as docker's `SIZE`.
    pub size: u64,
    /// Compressed size (config plus layer blobs).
    pub content_size: u64,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    /// Number of containers using the image.
    pub containers: usize,
}

/// One step of `docker history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When (RFC 3339).
    pub created: Option<String>,
    /// The command.
    pub created_by: Option<String>,
    /// Who.
    pub author: Option<String>,
    /// A comment.
    pub comment: Option<String>,
    /// Whether the step made no layer.
    pub empty_layer: bool,
    /// The diff ID of the layer it made.
    pub diff_id: Option<Digest>,
    /// Unpacked size of that layer (0 for empty-layer steps).
    pub size: u64,
}

/// What `remove` (and `prune`) did, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// A name was removed.
    Untagged(String),
    /// An image (by ID) has no name left and nobody uses it: its content is collected.
    Deleted(Digest),
}

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Names removed and images deleted.
    pub removed: Vec<RemoveOutcome>,
    /// Bytes freed by the garbage collection that followed.
    pub space_reclaimed: u64,
}

/// What `gc` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted from the content store.
    pub blobs_removed: usize,
    /// Snapshots removed.
    pub snapshots_removed: usize,
    /// Stale partial downloads removed.
    pub ingests_removed: usize,
    /// Bytes freed: blob sizes plus snapshot disk usage.
    pub bytes_freed: u64,
}

/// Disk usage of one image, for `system df -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// The image ID.
    pub id: Digest,
    /// Its tags.
    pub repo_tags: Vec<String>,
    /// Unpacked size of all its layers.
    pub size: u64,
    /// The part of `size` in layers other images share.
    pub shared_size: u64,
    /// Containers using it.
    pub containers: usize,
}

/// Disk usage of one container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// The container.
    pub container_id: String,
    /// The image it was created from, if known.
    pub image: Option<Digest>,
    /// Disk usage of its writable layer.
    pub size: u64,
}

/// Disk usage of the store, for `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Per image.
    pub images: Vec<ImageUsage>,
    /// All committed (image layer) snapshots, each counted once.
    pub layers_size: u64,
    /// All blobs of the content store (compressed layers, configs, manifests).
    pub content_size: u64,
    /// Per container writable layer.
    pub containers: Vec<ContainerUsage>,
}

/// How [`commit_container`](super::ImageService::commit_container) builds the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// The name to give the new image (`None`: an untagged image, as `docker commit`
    /// without a repository).
    pub reference: Option<Reference>,
    /// The image's author.
    pub author: Option<String>,
    /// The history comment (`docker commit -m`).
    pub comment: Option<String>,
    /// The history command (docker puts the container's command here).
    pub created_by: Option<String>,
    /// Replaces the container defaults of the base image (`docker commit --change`).
    pub config: Option<ContainerConfig>,
}
