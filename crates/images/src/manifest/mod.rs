//! Image formats: OCI image-spec 1.1 manifests, indexes and configs, and Docker v2
//! schema 2 manifests and manifest lists.
//!
//! Everything here parses hostile bytes: documents are bounded in size
//! ([`MAX_MANIFEST_SIZE`], [`MAX_CONFIG_SIZE`]) and counts ([`MAX_LAYERS`],
//! [`MAX_INDEX_ENTRIES`], [`MAX_HISTORY`]), digests are checked for form by
//! [`Digest`](crate::digest::Digest), duplicate JSON keys are refused, and the
//! entry points ([`parse_any`], [`ImageConfig::parse`]) never panic.
//!
//! # Pulling an image, as far as formats go
//!
//! 1. The manifest endpoint returns bytes and a `Content-Type`: [`parse_any`] tells a
//!    manifest from an index (from the `mediaType` field, the content type or the
//!    shape), refuses Docker schema 1 with a clear error, and validates descriptors.
//! 2. For an index, [`select_manifest`] picks the entry for the wanted
//!    [`Platform`] (normally [`Platform::host`]), or says which platforms exist.
//! 3. The manifest's config blob is parsed with [`ImageConfig::parse`];
//!    [`check_image`] checks there is one diff ID per layer. The image ID is the
//!    config's digest ([`image_id`], [`Manifest::image_id`]).
//! 4. Each layer's media type gives its [`Compression`] ([`Descriptor::layer_type`]).
//!
//! The types also serialise, so the same code writes manifests for push and save.

mod config;
mod document;
pub mod media_type;
mod platform;

use berth_errdefs::{ErrorKind, HasKind};

pub use config::{
    check_image, image_id, ContainerConfig, EmptyObject, HealthConfig, History, ImageConfig, RootFs,
};
pub use document::{parse_any, parse_index, parse_manifest, Descriptor, Document, Index, Manifest};
pub use media_type::{Compression, DocumentKind, Format, LayerType};
pub use platform::{select_manifest, Platform};

/// Largest manifest or index accepted (the limit distribution's registry applies).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// Largest image config accepted.
pub const MAX_CONFIG_SIZE: usize = 8 << 20;
/// Most layers in a manifest (and diff IDs in a config).
pub const MAX_LAYERS: usize = 1000;
/// Most entries in an index.
pub const MAX_INDEX_ENTRIES: usize = 1000;
/// Most history entries in a config.
pub const MAX_HISTORY: usize = 10_000;

/// Why a document was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is larger than the limit.
    #[error("{what} is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// What was being parsed.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The document is not valid JSON of the expected shape.
    #[error("invalid {what}: {source}")]
    Json {
        /// What was being parsed.
        what: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A Docker v2 schema 1 manifest.
    #[error(
        "Docker image manifest v2 schema 1 is not supported (deprecated since Docker 1.10, \
         2016, and removed from Docker); push the image again with a current client to \
         convert it to schema 2 or OCI"
    )]
    Schema1,
    /// A `schemaVersion` other than 2.
    #[error("unsupported manifest schemaVersion {0} (expected 2)")]
    SchemaVersion(u64),
    /// No `schemaVersion`.
    #[error("invalid manifest: no schemaVersion")]
    MissingSchemaVersion,
    /// A media type that is no manifest or index Berth knows.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// The content type and the document's `mediaType` disagree.
    #[error("manifest media type mismatch: served as {content_type}, document says {document}")]
    MediaTypeMismatch {
        /// What the server said.
        content_type: &'static str,
        /// What the document says.
        document: &'static str,
    },
    /// Neither manifest nor index.
    #[error("document is neither an image manifest nor an index")]
    UnknownDocument,
    /// A manifest where an index was expected, or the reverse.
    #[error("expected an {expected}, got an {found}")]
    UnexpectedKind {
        /// What was expected.
        expected: &'static str,
        /// What came.
        found: &'static str,
    },
    /// Too many layers, entries or history items.
    #[error("too many {what}: {count} (the limit is {max})")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A descriptor breaks the rules.
    #[error("invalid descriptor ({what}): {why}")]
    Descriptor {
        /// Which descriptor.
        what: String,
        /// Why.
        why: &'static str,
    },
    /// A layer media type Berth cannot unpack.
    #[error("unsupported layer media type {media_type:?}: {why}")]
    LayerMediaType {
        /// The media type.
        media_type: String,
        /// Why.
        why: &'static str,
    },
    /// A Docker manifest whose config is not a Docker image config.
    #[error("Docker manifest with config media type {found:?}")]
    ConfigMediaType {
        /// The media type found.
        found: String,
    },
    /// A manifest of something other than a container image (an OCI artifact).
    #[error("not a container image: config media type is {config_media_type:?}")]
    NotAnImage {
        /// The config media type.
        config_media_type: String,
    },
    /// A rootfs type other than `layers`.
    #[error("unsupported rootfs type {0:?} (expected \"layers\")")]
    RootFsType(String),
    /// The manifest and the config disagree on the number of layers.
    #[error("manifest has {layers} layers but the image config has {diff_ids} diff IDs")]
    LayerCountMismatch {
        /// Layers in the manifest.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// An unparsable platform string.
    #[error("invalid platform {0:?} (expected os/arch[/variant])")]
    InvalidPlatform(String),
    /// No index entry runs on the wanted platform.
    #[error("no matching manifest for {wanted} in the manifest list entries (available: {})",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms the index has.
        available: Vec<String>,
    },
}

impl HasKind for ManifestError {
    fn kind(&self) -> ErrorKind {
        match self {
            ManifestError::Schema1 => ErrorKind::NotImplemented,
            ManifestError::NoMatchingPlatform { .. } => ErrorKind::NotFound,
            ManifestError::TooLarge { .. }
            | ManifestError::Json { .. }
            | ManifestError::SchemaVersion(_)
            | ManifestError::MissingSchemaVersion
            | ManifestError::UnsupportedMediaType(_)
            | ManifestError::MediaTypeMismatch { .. }
            | ManifestError::UnknownDocument
            | ManifestError::UnexpectedKind { .. }
            | ManifestError::TooMany { .. }
            | ManifestError::Descriptor { .. }
            | ManifestError::LayerMediaType { .. }
            | ManifestError::ConfigMediaType { .. }
            | ManifestError::NotAnImage { .. }
            | ManifestError::RootFsType(_)
            | ManifestError::LayerCountMismatch { .. }
            | ManifestError::InvalidPlatform(_) => ErrorKind::InvalidArgument,
        }
    }
}

/// At most 200 characters of `s`, for error messages.
fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
