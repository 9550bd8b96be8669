//! Reading a docker-archive without `manifest.json`: the format of Docker before 1.10
//! (2016), still accepted by `docker load`.
//!
//! `repositories` (`{"<name>": {"<tag>": "<top layer id>"}}`) names the images. Each
//! layer is a directory `<id>/` with `json` (the v1 image JSON: `parent`, and for the
//! top layer the image's settings) and `layer.tar`. The image config is rebuilt from
//! the top layer's JSON the way Docker does it: the v1-only keys dropped, `rootfs`
//! with the diff IDs of the chain and `history` from each layer's JSON added. No
//! digest is given up front, so each layer is read twice: once to hash it (and its
//! decompressed stream), once to store it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::blob::{hash_bounded, hash_compressed, store_blob, LayerDigests, Reporter};
use super::error::{display_name, ArchiveError};
use super::load::{LoadOptions, LoadedImage};
use super::source::Source;
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::layer::Compression;
use crate::manifest::media_type::{DOCKER_CONFIG, DOCKER_MANIFEST};
use crate::manifest::{Descriptor, Format, ImageConfig, Manifest, MAX_CONFIG_SIZE, MAX_LAYERS};
use crate::metadata::Target;
use crate::progress::{ProgressSink, ProgressState};
use crate::reference::Reference;

/// The name index of a legacy docker-archive.
pub(crate) const REPOSITORIES: &str = "repositories";
/// Keys of a v1 image JSON that are not part of an image config.
const V1_ONLY_KEYS: [&str; 6] = ["id", "parent", "Size", "parent_id", "layer_id", "throwaway"];

/// Whether `id` is a v1 layer ID (64 lower-case hex characters): safe as a path.
fn is_layer_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn bad_id(file: &str, id: &str) -> ArchiveError {
    ArchiveError::UnsafePath {
        file: file.to_owned(),
        path: display_name(id.as_bytes()),
        reason: "not a layer ID (64 hex characters)",
    }
}

/// Loads the images of the legacy docker-archive in `source` into `store`.
pub(crate) fn load(
    source: &Source,
    store: &dyn ContentStore,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let bytes = source.read_small(REPOSITORIES, options.limits.max_document_size, "archive")?;
    let repos: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(&bytes)
        .map_err(|source| ArchiveError::Json {
            file: REPOSITORIES.to_owned(),
            source,
        })?;
    // Top layer ID → names, checked before anything is stored.
    let mut tops: Vec<(String, Vec<String>)> = Vec::new();
    for (repo, tags) in &repos {
        for (tag, id) in tags {
            if !is_layer_id(id) {
                return Err(bad_id(REPOSITORIES, id));
            }
            let raw = format!("{repo}:{tag}");
            let name = Reference::parse_normalized(&raw)
                .map_err(|source| ArchiveError::InvalidName {
                    name: display_name(raw.as_bytes()),
                    file: REPOSITORIES.to_owned(),
                    source,
                })?
                .to_string();
            match tops.iter_mut().find(|(top, _)| top == id) {
                Some((_, names)) => names.push(name),
                None => tops.push((id.clone(), vec![name])),
            }
            if tops.len() > options.limits.max_images {
                return Err(ArchiveError::Limit {
                    file: REPOSITORIES.to_owned(),
                    what: "images",
                    value: tops.len() as u64,
                    max: options.limits.max_images as u64,
                });
            }
        }
    }
    tops.into_iter()
        .map(|(top, names)| load_image(source, store, &top, names, options, progress))
        .collect()
}

/// Reads `<id>/json` as a JSON object.
fn layer_json(
    source: &Source,
    id: &str,
    referenced_by: &str,
) -> Result<Map<String, Value>, ArchiveError> {
    let file = format!("{id}/json");
    let bytes = source.read_small(&file, MAX_CONFIG_SIZE as u64, referenced_by)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ArchiveError::Json {
            file,
            source: serde::de::Error::custom("expected a JSON object"),
        }),
        Err(source) => Err(ArchiveError::Json { file, source }),
    }
}

fn load_image(
    source: &Source,
    store: &dyn ContentStore,
    top: &str,
    names: Vec<String>,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<LoadedImage, ArchiveError> {
    // The chain, top first.
    let mut chain: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut next = Some(top.to_owned());
    let mut referenced_by = REPOSITORIES.to_owned();
    while let Some(id) = next {
        if chain.len() >= MAX_LAYERS {
            return Err(ArchiveError::Limit {
                file: format!("{id}/json"),
                what: "layers of one image",
                value: chain.len() as u64 + 1,
                max: MAX_LAYERS as u64,
            });
        }
        if chain.iter().any(|(seen, _)| *seen == id) {
            return Err(ArchiveError::UnsafePath {
                file: referenced_by,
                path: id,
                reason: "the layer chain loops",
            });
        }
        let json = layer_json(source, &id, &referenced_by)?;
        next = match json.get("parent") {
            Some(Value::String(p)) if !p.is_empty() => {
                if !is_layer_id(p) {
                    return Err(bad_id(&format!("{id}/json"), p));
                }
                Some(p.clone())
            }
            _ => None,
        };
        referenced_by = format!("{id}/json");
        chain.push((id, json));
    }
    chain.reverse();

    let mut descriptors = Vec::with_capacity(chain.len());
    let mut diff_ids = Vec::with_capacity(chain.len());
    let mut history = Vec::with_capacity(chain.len());
    for (id, json) in &chain {
        let file = format!("{id}/layer.tar");
        let (desc, diff_id) = load_layer(source, store, &file, options, progress)?;
        descriptors.push(desc);
        diff_ids.push(diff_id);
        history.push(history_of(json));
    }

    // The config: the top layer's JSON without the v1-only keys, plus rootfs and
    // history.
    let mut config = chain.last().map(|(_, j)| j.clone()).unwrap_or_default();
    for key in V1_ONLY_KEYS {
        config.remove(key);
    }
    config.insert(
        "rootfs".into(),
        serde_json::json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    config.insert("history".into(), Value::Array(history));
    let config_file = format!("{top}/json");
    let config_bytes = serde_json::to_vec(&config).map_err(|source| ArchiveError::Json {
        file: config_file.clone(),
        source,
    })?;
    ImageConfig::parse(&config_bytes).map_err(|source| ArchiveError::Manifest {
        file: config_file.clone(),
        source,
    })?;
    let content = |file: String| move |source| ArchiveError::Content { file, source };
    let config_digest = store
        .put_bytes(&config_bytes)
        .map_err(content(config_file.clone()))?;
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
            file: config_file.clone(),
            source,
        })?;
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| ArchiveError::Json {
        file: config_file.clone(),
        source,
    })?;
    let digest = store
        .put_bytes(&manifest_bytes)
        .map_err(content(config_file))?;
    Ok(LoadedImage {
        names,
        target: Target {
            media_type: DOCKER_MANIFEST.to_owned(),
            digest,
            size: manifest_bytes.len() as u64,
        },
        config: config_digest,
        diff_ids,
    })
}

/// The history entry of a layer's v1 JSON, as Docker derives it.
fn history_of(json: &Map<String, Value>) -> Value {
    let mut h = Map::new();
    for key in ["created", "author", "comment"] {
        if let Some(Value::String(s)) = json.get(key) {
            h.insert(key.into(), Value::String(s.clone()));
        }
    }
    if let Some(Value::Array(cmd)) = json.get("container_config").and_then(|c| c.get("Cmd")) {
        let parts: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
        if !parts.is_empty() {
            h.insert("created_by".into(), Value::String(parts.join(" ")));
        }
    }
    if json.get("throwaway") == Some(&Value::Bool(true)) {
        h.insert("empty_layer".into(), Value::Bool(true));
    }
    Value::Object(h)
}

/// Hashes, then stores, one layer; returns its descriptor and diff ID.
fn load_layer(
    source: &Source,
    store: &dyn ContentStore,
    file: &str,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<(Descriptor, Digest), ArchiveError> {
    let head = source.head(file, 8, REPOSITORIES)?;
    let open = || source.open_member(file, REPOSITORIES).map(|(r, _)| r);
    let compression = Compression::detect(&head);
    let (_, size) = source.open_member(file, REPOSITORIES)?;
    // Progress is named by the blob digest, known after the first pass.
    let digests = match compression {
        Compression::None => {
            let (digest, len) = hash_bounded(open()?, options.limits.max_layer_bytes, file)?;
            LayerDigests {
                diff_id: digest.clone(),
                uncompressed_size: len,
                digest,
                size: len,
            }
        }
        c => {
            let mut quiet =
                Reporter::new(&crate::progress::NoProgress, &Digest::sha256_of(b""), None);
            hash_compressed(open()?, c, options.limits.max_layer_bytes, file, &mut quiet)?
        }
    };
    if digests.size != size {
        return Err(ArchiveError::SizeMismatch {
            file: file.to_owned(),
            expected: size,
            actual: digests.size,
        });
    }
    let mut reporter = Reporter::new(progress, &digests.digest, Some(size));
    reporter.state(ProgressState::Waiting, 0);
    let expected = digests.digest.clone();
    store_blob(
        store,
        &digests.digest,
        size,
        open,
        file,
        &mut reporter,
        |actual| ArchiveError::DigestMismatch {
            file: file.to_owned(),
            expected,
            actual,
        },
    )?;
    Ok((
        Descriptor::new(
            compression.layer_media_type(Format::Docker),
            digests.digest,
            digests.size,
        ),
        digests.diff_id,
    ))
}
