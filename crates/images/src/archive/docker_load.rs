//! Reading a docker-archive: `manifest.json` → configs and layers into the content
//! store, one synthesized Docker v2 schema 2 manifest per image.
//!
//! `manifest.json` is an array of `{"Config": path, "RepoTags": [name…], "Layers":
//! [path…]}`. The paths are members of the archive: `<hex>.json` and
//! `<id>/layer.tar` in the layout Docker wrote up to version 24 (the per-layer
//! `json` and `VERSION` files beside `layer.tar` are not needed: the config has
//! everything), `blobs/sha256/<hex>` in the layout of Docker 25+. Other fields
//! (`Parent`, `LayerSources`) are ignored.

use serde::{Deserialize, Deserializer};

use super::blob::{hash_compressed, store_blob, Reporter};
use super::error::{display_name, ArchiveError};
use super::load::{LoadOptions, LoadedImage};
use super::path;
use super::source::Source;
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::layer::Compression;
use crate::manifest::media_type::{DOCKER_CONFIG, DOCKER_MANIFEST};
use crate::manifest::{Descriptor, Format, ImageConfig, Manifest, MAX_CONFIG_SIZE, MAX_LAYERS};
use crate::metadata::Target;
use crate::progress::{ProgressSink, ProgressState};
use crate::reference::Reference;

/// The name of the index of a docker-archive.
pub(crate) const MANIFEST_JSON: &str = "manifest.json";
/// Most names one image may carry.
const MAX_NAMES: usize = 1000;

/// Treats JSON `null` as the type's default (Docker writes `"RepoTags": null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default, deserialize_with = "null_default")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers", default, deserialize_with = "null_default")]
    layers: Vec<String>,
}

/// An entry of `manifest.json` with its paths and names checked.
struct Checked {
    config: String,
    layers: Vec<String>,
    names: Vec<String>,
}

fn unsafe_path(path: &str, reason: &'static str) -> ArchiveError {
    ArchiveError::UnsafePath {
        file: MANIFEST_JSON.to_owned(),
        path: display_name(path.as_bytes()),
        reason,
    }
}

fn check(item: Item, options: &LoadOptions) -> Result<Checked, ArchiveError> {
    let max = options.limits.max_path_len;
    let config = path::reference(&item.config, max).map_err(|r| unsafe_path(&item.config, r))?;
    if item.layers.len() > MAX_LAYERS {
        return Err(ArchiveError::Limit {
            file: MANIFEST_JSON.to_owned(),
            what: "layers of one image",
            value: item.layers.len() as u64,
            max: MAX_LAYERS as u64,
        });
    }
    if item.repo_tags.len() > MAX_NAMES {
        return Err(ArchiveError::Limit {
            file: MANIFEST_JSON.to_owned(),
            what: "names of one image",
            value: item.repo_tags.len() as u64,
            max: MAX_NAMES as u64,
        });
    }
    let layers = item
        .layers
        .iter()
        .map(|l| path::reference(l, max).map_err(|r| unsafe_path(l, r)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = Vec::new();
    for tag in &item.repo_tags {
        let name = Reference::parse_normalized(tag)
            .map_err(|source| ArchiveError::InvalidName {
                name: display_name(tag.as_bytes()),
                file: MANIFEST_JSON.to_owned(),
                source,
            })?
            .to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(Checked {
        config,
        layers,
        names,
    })
}

/// Loads every image of the docker-archive in `source` into `store`.
pub(crate) fn load(
    source: &Source,
    store: &dyn ContentStore,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let bytes = source.read_small(MANIFEST_JSON, options.limits.max_document_size, "archive")?;
    let items: Vec<Item> = serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
        file: MANIFEST_JSON.to_owned(),
        source,
    })?;
    if items.is_empty() {
        return Err(ArchiveError::NoImages);
    }
    if items.len() > options.limits.max_images {
        return Err(ArchiveError::Limit {
            file: MANIFEST_JSON.to_owned(),
            what: "images",
            value: items.len() as u64,
            max: options.limits.max_images as u64,
        });
    }
    // Every path and name is checked before anything is stored.
    let checked = items
        .into_iter()
        .map(|item| check(item, options))
        .collect::<Result<Vec<_>, _>>()?;
    checked
        .into_iter()
        .map(|image| load_image(source, store, image, options, progress))
        .collect()
}

fn load_image(
    source: &Source,
    store: &dyn ContentStore,
    image: Checked,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<LoadedImage, ArchiveError> {
    let config_bytes = source.read_small(&image.config, MAX_CONFIG_SIZE as u64, MANIFEST_JSON)?;
    let config_digest = Digest::sha256_of(&config_bytes);
    // In the Docker 25+ layout the file name is the digest: hold it to it.
    if let Some(hex) = image.config.strip_prefix("blobs/sha256/") {
        if hex != config_digest.hex() {
            return Err(ArchiveError::DigestMismatch {
                file: image.config.clone(),
                expected: Digest::parse(&format!("sha256:{hex}"))
                    .map_err(|_| unsafe_path(&image.config, "not a sha256 blob path"))?,
                actual: config_digest,
            });
        }
    }
    let config = ImageConfig::parse(&config_bytes).map_err(|source| ArchiveError::Manifest {
        file: image.config.clone(),
        source,
    })?;
    let diff_ids = config.rootfs.diff_ids.clone();
    if diff_ids.len() != image.layers.len() {
        return Err(ArchiveError::LayerCount {
            file: MANIFEST_JSON.to_owned(),
            layers: image.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
        let (_, size) = source.open_member(layer, MANIFEST_JSON)?;
        Reporter::new(progress, diff_id, Some(size)).state(ProgressState::Waiting, 0);
    }
    let mut descriptors = Vec::with_capacity(image.layers.len());
    for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
        descriptors.push(load_layer(
            source, store, layer, diff_id, options, progress,
        )?);
    }
    let content = |file: &str| {
        let file = file.to_owned();
        move |source| ArchiveError::Content { file, source }
    };
    store
        .put_verified(&config_digest, &config_bytes)
        .map_err(content(&image.config))?;
    let manifest = Manifest::new(
        Format::Docker,
        Descriptor::new(
            DOCKER_CONFIG,
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        descriptors,
    );
    manifest
        .validate_image()
        .map_err(|source| ArchiveError::Manifest {
            file: MANIFEST_JSON.to_owned(),
            source,
        })?;
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| ArchiveError::Json {
        file: MANIFEST_JSON.to_owned(),
        source,
    })?;
    let digest = store
        .put_bytes(&manifest_bytes)
        .map_err(content(MANIFEST_JSON))?;
    Ok(LoadedImage {
        names: image.names,
        target: Target {
            media_type: DOCKER_MANIFEST.to_owned(),
            digest,
            size: manifest_bytes.len() as u64,
        },
        config: config_digest,
        diff_ids,
    })
}

/// Stores one layer as it is and returns its descriptor, checking it against
/// `diff_id`.
fn load_layer(
    source: &Source,
    store: &dyn ContentStore,
    layer: &str,
    diff_id: &Digest,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<Descriptor, ArchiveError> {
    let head = source.head(layer, 8, MANIFEST_JSON)?;
    let (_, size) = source.open_member(layer, MANIFEST_JSON)?;
    let mut reporter = Reporter::new(progress, diff_id, Some(size));
    let open = || {
        source
            .open_member(layer, MANIFEST_JSON)
            .map(|(reader, _)| reader)
    };
    match Compression::detect(&head) {
        Compression::None => {
            // The layer is its own diff ID: the store's check is the diff-ID check.
            store_blob(store, diff_id, size, open, layer, &mut reporter, |actual| {
                ArchiveError::DiffIdMismatch {
                    file: layer.to_owned(),
                    expected: diff_id.clone(),
                    actual,
                }
            })?;
            Ok(Descriptor::new(
                Compression::None.layer_media_type(Format::Docker),
                diff_id.clone(),
                size,
            ))
        }
        compression => {
            let digests = hash_compressed(
                open()?,
                compression,
                options.limits.max_layer_bytes,
                layer,
                &mut reporter,
            )?;
            if digests.diff_id != *diff_id {
                return Err(ArchiveError::DiffIdMismatch {
                    file: layer.to_owned(),
                    expected: diff_id.clone(),
                    actual: digests.diff_id,
                });
            }
            let expected = digests.digest.clone();
            store_blob(
                store,
                &digests.digest,
                digests.size,
                open,
                layer,
                &mut reporter,
                |actual| ArchiveError::DigestMismatch {
                    file: layer.to_owned(),
                    expected,
                    actual,
                },
            )?;
            Ok(Descriptor::new(
                compression.layer_media_type(Format::Docker),
                digests.digest,
                digests.size,
            ))
        }
    }
}
