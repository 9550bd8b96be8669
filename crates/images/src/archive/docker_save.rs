//! Writing a docker-archive in the layout Docker 20.10 writes, which every
//! `docker load` (and `podman load`, skopeo, containerd) reads:
//!
//! ```text
//! <v1 id>/VERSION        "1.0"
//! <v1 id>/json           legacy v1 image JSON (the top layer's carries the config)
//! <v1 id>/layer.tar      the layer, uncompressed (or a symlink to an identical one)
//! <config hex>.json      the image config, byte for byte (its digest is the image ID)
//! manifest.json          [{"Config", "RepoTags", "Layers"}]
//! repositories           {"<name>": {"<tag>": "<top v1 id>"}}
//! ```
//!
//! v1 IDs are derived from the chain (parent ID and diff ID; the config too for the top
//! layer), so images sharing base layers share their directories, and one directory
//! never holds two different `json` files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::Serialize;

use super::blob::{hash_bounded, HashingReader};
use super::error::ArchiveError;
use super::stored::{image_for, StoredImage};
use super::tar_out::TarOut;
use super::{SaveImage, SaveOptions, SaveReport};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::layer::{decompress, Compression};
use crate::manifest::Descriptor;
use crate::progress::{Progress, ProgressSink, ProgressState};
use crate::reference::Reference;

/// Largest uncompressed layer written (the decompression bomb bound).
const MAX_LAYER_BYTES: u64 = 256 << 30;

#[derive(Serialize)]
struct Item {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn write_err(file: &str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let file = file.to_owned();
    move |source| ArchiveError::Write { file, source }
}

/// Writes `images` as a docker-archive to `out`. A target that is an index is saved
/// as its manifest for [`SaveOptions::platform`]. Images with the same manifest are
/// written once, with all their names.
pub fn save_docker_archive(
    store: &dyn ContentStore,
    images: &[SaveImage],
    out: impl Write,
    options: &SaveOptions,
    progress: &dyn ProgressSink,
) -> Result<SaveReport, ArchiveError> {
    if images.is_empty() {
        return Err(ArchiveError::NoImages);
    }
    // Resolve everything before writing anything.
    let mut resolved: Vec<(StoredImage, Vec<Reference>)> = Vec::new();
    for image in images {
        let stored = image_for(store, &image.target, &options.platform)?;
        match resolved
            .iter_mut()
            .find(|(s, _)| s.target.digest == stored.target.digest)
        {
            Some((_, names)) => names.extend(image.names.iter().cloned()),
            None => resolved.push((stored, image.names.clone())),
        }
    }

    let mut tar = TarOut::new(out);
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut dirs_written: BTreeSet<String> = BTreeSet::new();
    let mut layer_files: BTreeMap<Digest, String> = BTreeMap::new();
    let mut configs_written: BTreeSet<Digest> = BTreeSet::new();
    let mut report = SaveReport {
        manifests: Vec::new(),
        blobs: 0,
        bytes: 0,
    };
    for (image, names) in &resolved {
        let config_digest = &image.manifest.config.digest;
        let diff_ids = &image.config.rootfs.diff_ids;
        let mut parent: Option<String> = None;
        let mut layer_paths = Vec::new();
        for (i, (layer, diff_id)) in image.manifest.layers.iter().zip(diff_ids).enumerate() {
            let top = i + 1 == diff_ids.len();
            let mut seed = format!("{}\n{diff_id}", parent.as_deref().unwrap_or(""));
            if top {
                seed.push('\n');
                seed.push_str(&config_digest.to_string());
            }
            let id = Digest::sha256_of(seed.as_bytes()).hex().to_owned();
            let path = format!("{id}/layer.tar");
            if dirs_written.insert(id.clone()) {
                tar.dir(&id).map_err(write_err(&id))?;
                let version = format!("{id}/VERSION");
                tar.bytes(&version, b"1.0").map_err(write_err(&version))?;
                let json_path = format!("{id}/json");
                let json = v1_json(&id, parent.as_deref(), top.then_some(image))?;
                tar.bytes(&json_path, &json)
                    .map_err(write_err(&json_path))?;
                match layer_files.get(diff_id) {
                    Some(first) => {
                        tar.symlink(&path, &format!("../{first}"))
                            .map_err(write_err(&path))?;
                    }
                    None => {
                        let bytes = write_layer(&mut tar, store, layer, diff_id, &path, progress)?;
                        report.blobs += 1;
                        report.bytes += bytes;
                        layer_files.insert(diff_id.clone(), path.clone());
                    }
                }
            }
            layer_paths.push(path);
            parent = Some(id);
        }
        let config_path = format!("{}.json", config_digest.hex());
        if configs_written.insert(config_digest.clone()) {
            tar.bytes(&config_path, &image.config_bytes)
                .map_err(write_err(&config_path))?;
        }
        let mut repo_tags = Vec::new();
        for name in names {
            // Full names, as skopeo writes them: docker shortens them on load, and
            // podman would take a short `busybox` for `localhost/busybox`.
            if let Some(tag) = name.tag() {
                let full = format!("{}:{tag}", name.name());
                if !repo_tags.contains(&full) {
                    repo_tags.push(full);
                }
                if let Some(top) = &parent {
                    repositories
                        .entry(name.name())
                        .or_default()
                        .insert(tag.to_owned(), top.clone());
                }
            }
        }
        items.push(Item {
            config: config_path,
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
            layers: layer_paths,
        });
        report.manifests.push(image.target.clone());
    }
    let json_err = |file: &str| {
        let file = file.to_owned();
        move |source| ArchiveError::Json { file, source }
    };
    let manifest_json = serde_json::to_vec(&items).map_err(json_err("manifest.json"))?;
    tar.bytes("manifest.json", &manifest_json)
        .map_err(write_err("manifest.json"))?;
    if !repositories.is_empty() {
        let repos = serde_json::to_vec(&repositories).map_err(json_err("repositories"))?;
        tar.bytes("repositories", &repos)
            .map_err(write_err("repositories"))?;
    }
    tar.finish().map_err(write_err("end of archive"))?;
    Ok(report)
}

/// The legacy v1 JSON of a layer directory (ignored by current loaders, written for
/// old ones): the top layer's carries the image config.
fn v1_json(
    id: &str,
    parent: Option<&str>,
    image: Option<&StoredImage>,
) -> Result<Vec<u8>, ArchiveError> {
    let mut obj = match image {
        Some(image) => match serde_json::from_slice::<serde_json::Value>(&image.config_bytes) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        },
        None => {
            let mut map = serde_json::Map::new();
            map.insert("created".into(), "1970-01-01T00:00:00Z".into());
            map.insert(
                "container_config".into(),
                serde_json::json!({ "Cmd": null, "Env": null }),
            );
            map
        }
    };
    obj.remove("rootfs");
    obj.remove("history");
    obj.insert("id".into(), id.into());
    if let Some(p) = parent {
        obj.insert("parent".into(), p.into());
    }
    serde_json::to_vec(&obj).map_err(|source| ArchiveError::Json {
        file: format!("{id}/json"),
        source,
    })
}

/// Writes the stored layer `layer` uncompressed as `path`; checks it against
/// `diff_id`. Returns the bytes written.
fn write_layer<W: Write>(
    tar: &mut TarOut<W>,
    store: &dyn ContentStore,
    layer: &Descriptor,
    diff_id: &Digest,
    path: &str,
    progress: &dyn ProgressSink,
) -> Result<u64, ArchiveError> {
    let blob = layer.digest.to_string();
    let compression = layer
        .layer_type()
        .map_err(|source| ArchiveError::Manifest {
            file: blob.clone(),
            source,
        })?
        .compression;
    let open = || {
        store
            .open(&layer.digest)
            .map_err(|source| ArchiveError::Content {
                file: blob.clone(),
                source,
            })
    };
    let report = |state, current, total| {
        progress.report(Progress {
            digest: layer.digest.clone(),
            state,
            current,
            total: Some(total),
        })
    };
    let decompressor = |reader| {
        decompress(reader, compression).map_err(|e| ArchiveError::Decompress {
            file: blob.clone(),
            source: std::io::Error::other(e),
        })
    };
    // The tar header needs the size: a compressed layer is decompressed once to learn
    // it (and check the diff ID), then again into the archive.
    let size = match compression {
        Compression::None => layer.size,
        _ => {
            report(ProgressState::Verifying, 0, layer.size);
            let (actual, size) = hash_bounded(decompressor(open()?)?, MAX_LAYER_BYTES, &blob)?;
            if actual != *diff_id {
                return Err(ArchiveError::DiffIdMismatch {
                    file: blob.clone(),
                    expected: diff_id.clone(),
                    actual,
                });
            }
            size
        }
    };
    report(ProgressState::Uploading, 0, size);
    let mut reader = HashingReader::new(decompressor(open()?)?);
    let mut last = 0u64;
    tar.file(path, size, &mut reader as &mut dyn Read, &mut |done| {
        if done - last >= 1 << 20 || done == size {
            last = done;
            report(ProgressState::Uploading, done, size);
        }
    })
    .map_err(write_err(path))?;
    let (actual, _) = reader.drain().map_err(|source| ArchiveError::Read {
        file: blob.clone(),
        source,
    })?;
    if actual != *diff_id {
        return Err(ArchiveError::DiffIdMismatch {
            file: blob,
            expected: diff_id.clone(),
            actual,
        });
    }
    report(ProgressState::Done, size, size);
    Ok(size)
}
