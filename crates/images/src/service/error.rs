//! Errors of the image service.

use std::fmt;
use std::io;
use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

use crate::archive::ArchiveError;
use crate::content::ContentError;
use crate::digest::Digest;
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::metadata::MetadataError;
use crate::push::PushError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::snapshot::SnapshotError;

/// Which layer of an image an error is about: its position (1-based, base first), the
/// number of layers, and its blob digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerId {
    /// Position in the manifest, 1 for the base layer.
    pub index: usize,
    /// Number of layers of the image.
    pub count: usize,
    /// The layer blob's digest.
    pub digest: Digest,
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {}/{} ({})", self.index, self.count, self.digest)
    }
}

/// Why an image service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Creating or preparing the store's root directory failed.
    #[error("cannot use image store root {path}: {source}")]
    Root {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process (or another service in this process) has the store open.
    #[error("image store {path} is in use by another image service")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A scratch file of the store could not be written or removed.
    #[error("image store file {path}: {source}")]
    Scratch {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The content store failed.
    #[error("content store: {0}")]
    Content(#[from] ContentError),
    /// The metadata store failed.
    #[error("image metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// The snapshotter failed.
    #[error("snapshots: {0}")]
    Snapshot(#[from] SnapshotError),
    /// An image reference could not be parsed.
    #[error("invalid reference {input:?}: {source}")]
    Reference {
        /// What was given.
        input: String,
        /// Why it was refused.
        source: ReferenceError,
    },
    /// The registry refused or failed a request for the image's manifest or config.
    #[error("{reference}: {source}")]
    Registry {
        /// The image being pulled.
        reference: String,
        /// The registry error.
        source: Box<RegistryError>,
    },
    /// A manifest, index or config of the image is invalid or unsupported (schema 1,
    /// no manifest for the platform…).
    #[error("{reference}: {source}")]
    Manifest {
        /// The image (reference or digest).
        reference: String,
        /// What is wrong with it.
        source: ManifestError,
    },
    /// The registry served a manifest or config whose size differs from its descriptor.
    #[error("{reference}: {what} {digest} is {actual} bytes, its descriptor says {expected}")]
    DescriptorSize {
        /// The image.
        reference: String,
        /// Manifest or config.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// Downloading a layer failed (including a digest mismatch of the received bytes).
    #[error("{layer}: download failed: {source}")]
    LayerDownload {
        /// The layer.
        layer: LayerId,
        /// The registry error.
        source: Box<RegistryError>,
    },
    /// Writing a layer blob to the content store failed.
    #[error("{layer}: cannot store the blob: {source}")]
    LayerStore {
        /// The layer.
        layer: LayerId,
        /// The content store error.
        source: ContentError,
    },
    /// Unpacking a layer failed (hostile or broken tar, bad compression, disk full…).
    #[error("{layer}: cannot unpack: {source}")]
    LayerUnpack {
        /// The layer.
        layer: LayerId,
        /// The layer error.
        source: LayerError,
    },
    /// The uncompressed layer does not hash to the diff ID the image config lists.
    #[error("{layer}: diff ID mismatch: the image config says {expected}, the layer is {actual}")]
    DiffIdMismatch {
        /// The layer.
        layer: LayerId,
        /// The config's diff ID.
        expected: Digest,
        /// The digest of the uncompressed layer.
        actual: Digest,
    },
    /// The download of a layer stopped without an error (the pull was interrupted);
    /// the partial blob is kept for the next pull to resume.
    #[error("{layer}: download interrupted")]
    LayerInterrupted {
        /// The layer.
        layer: LayerId,
    },
    /// A layer blob is needed but is neither in the content store nor fetchable (an
    /// image that was not pulled from a registry).
    #[error("{layer}: the blob is not in the content store")]
    LayerMissing {
        /// The layer.
        layer: LayerId,
    },
    /// A blob of the content store no longer hashes to its digest (disk corruption);
    /// it was deleted so that the next pull fetches it again.
    #[error("content {digest} is corrupt on disk (it hashes to {actual}); it was removed")]
    CorruptBlob {
        /// The digest it is stored under.
        digest: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// A stored image document (manifest, index, config) is missing or unreadable.
    #[error("image {image}: {what} {digest} is missing from the content store")]
    DocumentMissing {
        /// The image.
        image: String,
        /// What is missing.
        what: &'static str,
        /// Its digest.
        digest: Digest,
    },
    /// No image has that name or ID.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// A short image ID matches several images.
    #[error("image ID prefix {0:?} is ambiguous: it matches several images")]
    AmbiguousImageId(String),
    /// The image is used by containers (remove without force).
    #[error(
        "conflict: unable to remove {image} (must force) - image is being used by container {}",
        users.join(", ")
    )]
    ImageInUse {
        /// What was asked to be removed.
        image: String,
        /// The containers using it.
        users: Vec<String>,
    },
    /// An image ID named by several repositories (remove by ID without force).
    #[error(
        "conflict: unable to delete {image} (must be forced) - image is referenced in multiple repositories ({})",
        repositories.join(", ")
    )]
    MultipleRepositories {
        /// The image ID given.
        image: String,
        /// The repositories naming it.
        repositories: Vec<String>,
    },
    /// A new image name is not usable (a digest reference as a tag target…).
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A container ID is not usable as a snapshot key.
    #[error("invalid container ID {id:?}: {reason}")]
    InvalidContainerId {
        /// The ID (truncated).
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// The container has no root filesystem in this store.
    #[error("no root filesystem for container {0:?}")]
    ContainerNotFound(String),
    /// The container has a root filesystem already.
    #[error("container {0:?} has a root filesystem already")]
    ContainerExists(String),
    /// Computing a container's changes or building its layer failed.
    #[error("commit of container {container}: {source}")]
    CommitLayer {
        /// The container.
        container: String,
        /// The layer error.
        source: LayerError,
    },
    /// The layer written by a commit reads back differently (a bug, or the container
    /// changed its files during the commit).
    #[error(
        "commit of container {container}: the layer read back as {applied}, written as {written}"
    )]
    CommitMismatch {
        /// The container.
        container: String,
        /// diff ID of the written tar.
        written: Digest,
        /// diff ID of what was unpacked from it.
        applied: Digest,
    },
    /// Loading, saving or importing an archive failed.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// Pushing an image failed.
    #[error("push to {reference}: {source}")]
    Push {
        /// Where to.
        reference: String,
        /// What failed.
        source: Box<PushError>,
    },
    /// A background task of the service panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl HasKind for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Root { source, .. } | ServiceError::Scratch { source, .. } => {
                match ErrorKind::from_io(source) {
                    ErrorKind::NotFound => ErrorKind::Internal,
                    kind => kind,
                }
            }
            ServiceError::Locked { .. } | ServiceError::LayerInterrupted { .. } => {
                ErrorKind::Unavailable
            }
            ServiceError::Content(e) => e.kind(),
            ServiceError::Metadata(e) => e.kind(),
            ServiceError::Snapshot(e) => e.kind(),
            ServiceError::Reference { source, .. } => source.kind(),
            ServiceError::Registry { source, .. } | ServiceError::LayerDownload { source, .. } => {
                source.kind()
            }
            ServiceError::Manifest { source, .. } => source.kind(),
            ServiceError::LayerStore { source, .. } => source.kind(),
            ServiceError::LayerUnpack { source, .. } | ServiceError::CommitLayer { source, .. } => {
                source.kind()
            }
            ServiceError::DescriptorSize { .. }
            | ServiceError::DiffIdMismatch { .. }
            | ServiceError::LayerMissing { .. }
            | ServiceError::CorruptBlob { .. }
            | ServiceError::DocumentMissing { .. } => ErrorKind::FailedPrecondition,
            ServiceError::ImageNotFound(_) | ServiceError::ContainerNotFound(_) => {
                ErrorKind::NotFound
            }
            ServiceError::AmbiguousImageId(_)
            | ServiceError::InvalidName { .. }
            | ServiceError::InvalidContainerId { .. } => ErrorKind::InvalidArgument,
            ServiceError::ImageInUse { .. } | ServiceError::MultipleRepositories { .. } => {
                ErrorKind::Conflict
            }
            ServiceError::ContainerExists(_) => ErrorKind::AlreadyExists,
            ServiceError::Archive(e) => e.kind(),
            ServiceError::Push { source, .. } => source.kind(),
            ServiceError::CommitMismatch { .. } | ServiceError::Task(_) => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn layer_errors_name_the_layer() {
        let digest = Digest::sha256_of(b"layer");
        let err = ServiceError::DiffIdMismatch {
            layer: LayerId {
                index: 2,
                count: 3,
                digest: digest.clone(),
            },
            expected: Digest::sha256_of(b"a"),
            actual: Digest::sha256_of(b"b"),
        };
        let text = err.to_string();
        assert!(text.contains("layer 2/3"), "{text}");
        assert!(text.contains(&digest.to_string()), "{text}");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(
            ServiceError::ImageInUse {
                image: "x".into(),
                users: vec!["c1".into()]
            }
            .kind(),
            ErrorKind::Conflict
        );
    }
}
