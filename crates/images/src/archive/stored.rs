//! Reading the images to save from the content store.

use super::error::ArchiveError;
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::{
    parse_index, parse_manifest, select_manifest, DocumentKind, ImageConfig, Index, Manifest,
    Platform, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::metadata::Target;

/// Deepest nesting of indexes followed.
const MAX_DEPTH: usize = 4;

/// Reads blob `digest` whole (at most `max` bytes), checking it still hashes right.
pub(crate) fn read_doc(
    store: &dyn ContentStore,
    digest: &Digest,
    max: usize,
) -> Result<Vec<u8>, ArchiveError> {
    let bytes = store
        .read_to_vec(digest, max as u64)
        .map_err(|source| ArchiveError::Content {
            file: digest.to_string(),
            source,
        })?;
    let actual = Digest::of(digest.algorithm(), &bytes);
    if actual != *digest {
        return Err(ArchiveError::DigestMismatch {
            file: digest.to_string(),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// A stored image manifest with its config.
#[derive(Debug, Clone)]
pub(crate) struct StoredImage {
    /// The manifest's descriptor.
    pub target: Target,
    /// The manifest.
    pub manifest: Manifest,
    /// The config blob.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
}

fn manifest_err(digest: &Digest) -> impl FnOnce(crate::manifest::ManifestError) -> ArchiveError {
    let file = digest.to_string();
    move |source| ArchiveError::Manifest { file, source }
}

/// Reads the stored index `target`.
pub(crate) fn read_index(store: &dyn ContentStore, target: &Target) -> Result<Index, ArchiveError> {
    let bytes = read_doc(store, &target.digest, MAX_MANIFEST_SIZE)?;
    parse_index(&bytes, Some(&target.media_type)).map_err(manifest_err(&target.digest))
}

/// The image manifest `target` names: itself, or for an index the manifest chosen for
/// `platform` (through nested indexes).
pub(crate) fn image_for(
    store: &dyn ContentStore,
    target: &Target,
    platform: &Platform,
) -> Result<StoredImage, ArchiveError> {
    let mut target = target.clone();
    for _ in 0..MAX_DEPTH {
        let is_index =
            DocumentKind::from_media_type(&target.media_type).is_some_and(DocumentKind::is_index);
        if !is_index {
            return read_image(store, &target);
        }
        let index = read_index(store, &target)?;
        let chosen = select_manifest(&index, platform).map_err(manifest_err(&target.digest))?;
        target = Target {
            media_type: chosen.media_type.clone(),
            digest: chosen.digest.clone(),
            size: chosen.size,
        };
    }
    Err(ArchiveError::Limit {
        file: target.digest.to_string(),
        what: "index nesting depth",
        value: MAX_DEPTH as u64 + 1,
        max: MAX_DEPTH as u64,
    })
}

/// Reads the stored image manifest `target` and its config.
pub(crate) fn read_image(
    store: &dyn ContentStore,
    target: &Target,
) -> Result<StoredImage, ArchiveError> {
    let bytes = read_doc(store, &target.digest, MAX_MANIFEST_SIZE)?;
    let manifest =
        parse_manifest(&bytes, Some(&target.media_type)).map_err(manifest_err(&target.digest))?;
    manifest
        .validate_image()
        .map_err(manifest_err(&target.digest))?;
    let config_bytes = read_doc(store, &manifest.config.digest, MAX_CONFIG_SIZE)?;
    let config =
        ImageConfig::parse(&config_bytes).map_err(manifest_err(&manifest.config.digest))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ArchiveError::LayerCount {
            file: target.digest.to_string(),
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    Ok(StoredImage {
        target: Target {
            media_type: crate::manifest::media_type::essence(&target.media_type),
            digest: target.digest.clone(),
            size: bytes.len() as u64,
        },
        manifest,
        config_bytes,
        config,
    })
}
