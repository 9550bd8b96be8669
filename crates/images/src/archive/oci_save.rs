//! Writing an OCI image layout (a directory) or an OCI archive (a tar of one):
//! `oci-layout`, `blobs/<alg>/<hex>` as stored, and `index.json` naming each image.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::blob::HashingReader;
use super::error::ArchiveError;
use super::oci_load::{blob_path, IMAGE_NAME, INDEX_JSON, OCI_LAYOUT, REF_NAME};
use super::stored::{image_for, read_doc, read_image};
use super::tar_out::TarOut;
use super::{SaveImage, SaveOptions, SaveReport};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::media_type::{
    essence, DOCKER_CONFIG, DOCKER_FOREIGN_LAYER_GZIP, DOCKER_FOREIGN_LAYER_TAR, DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR, DOCKER_LAYER_ZSTD, OCI_CONFIG, OCI_FOREIGN_LAYER_GZIP, OCI_FOREIGN_LAYER_TAR,
    OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use crate::manifest::{
    parse_index, parse_manifest, Descriptor, DocumentKind, Format, Index, Platform,
    MAX_MANIFEST_SIZE,
};
use crate::metadata::Target;
use crate::progress::{Progress, ProgressSink, ProgressState};

/// Deepest nesting of indexes saved whole.
const MAX_DEPTH: usize = 4;
/// The `oci-layout` file Berth writes.
const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What an OCI output puts in each image's `org.opencontainers.image.ref.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefName {
    /// The tag (`latest`), as skopeo (`oci:dir:latest`) and umoci (`dir:latest`)
    /// address images. The full name goes in `io.containerd.image.name`.
    Tag,
    /// The full name (`docker.io/library/busybox:latest`), as containerd and
    /// BuildKit write it when several repositories share a layout.
    FullName,
}

/// A blob to write: from the store, or made here (a manifest or index converted to
/// OCI media types).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Blob {
    digest: Digest,
    size: u64,
    /// Layers get progress events.
    layer: bool,
    /// The contents, when not in the store.
    data: Option<Vec<u8>>,
}

/// Everything an OCI output holds.
#[derive(Debug, Default)]
struct Plan {
    /// In write order (children before parents), without duplicates.
    blobs: Vec<Blob>,
    seen: BTreeSet<Digest>,
    /// The `index.json` entries.
    entries: Vec<Descriptor>,
    /// Per image, its top-level target.
    manifests: Vec<Target>,
}

impl Plan {
    fn add(&mut self, digest: &Digest, size: u64, layer: bool) {
        if self.seen.insert(digest.clone()) {
            self.blobs.push(Blob {
                digest: digest.clone(),
                size,
                layer,
                data: None,
            });
        }
    }

    /// Adds a document made here; returns its digest and size.
    fn add_bytes(&mut self, data: Vec<u8>) -> (Digest, u64) {
        let digest = Digest::sha256_of(&data);
        let size = data.len() as u64;
        if self.seen.insert(digest.clone()) {
            self.blobs.push(Blob {
                digest: digest.clone(),
                size,
                layer: false,
                data: Some(data),
            });
        }
        (digest, size)
    }
}

fn has(store: &dyn ContentStore, d: &Digest) -> Result<bool, ArchiveError> {
    Ok(store
        .info(d)
        .map_err(|source| ArchiveError::Content {
            file: d.to_string(),
            source,
        })?
        .is_some())
}

/// Whether the store has everything `desc` (a manifest or index) refers to.
fn complete(
    store: &dyn ContentStore,
    desc: &Descriptor,
    depth: usize,
) -> Result<bool, ArchiveError> {
    if !has(store, &desc.digest)? {
        return Ok(false);
    }
    match DocumentKind::from_media_type(&desc.media_type) {
        Some(kind) if kind.is_index() => {
            if depth >= MAX_DEPTH {
                return Ok(false);
            }
            let bytes = read_doc(store, &desc.digest, MAX_MANIFEST_SIZE)?;
            let Ok(index) = parse_index(&bytes, Some(&desc.media_type)) else {
                return Ok(false);
            };
            for child in &index.manifests {
                if !complete(store, child, depth + 1)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Some(_) => {
            let bytes = read_doc(store, &desc.digest, MAX_MANIFEST_SIZE)?;
            let Ok(manifest) = parse_manifest(&bytes, Some(&desc.media_type)) else {
                return Ok(false);
            };
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if !has(store, &d.digest)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        // Some other artifact: saved as one blob.
        None => Ok(true),
    }
}

/// The OCI media type of a Docker config or layer media type (others unchanged).
fn oci_media_type(media_type: &str) -> String {
    let oci = match essence(media_type).as_str() {
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER_TAR => OCI_LAYER_TAR,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_ZSTD => OCI_LAYER_ZSTD,
        DOCKER_FOREIGN_LAYER_TAR => OCI_FOREIGN_LAYER_TAR,
        DOCKER_FOREIGN_LAYER_GZIP => OCI_FOREIGN_LAYER_GZIP,
        _ => return media_type.to_owned(),
    };
    oci.to_owned()
}

/// A descriptor like `old` (platform, annotations) for a new document.
fn redescribe(old: &Descriptor, media_type: &str, digest: Digest, size: u64) -> Descriptor {
    let mut d = Descriptor::new(media_type, digest, size);
    d.platform = old.platform.clone();
    d.annotations = old.annotations.clone();
    d.artifact_type = old.artifact_type.clone();
    d
}

/// Adds the complete (see [`complete`]) manifest or index `desc` and everything below
/// it, converting Docker manifests and manifest lists to OCI ones (same configs and
/// layers, OCI media types), since OCI layout readers such as skopeo only see OCI
/// documents. Returns the descriptor of what was added.
fn add_tree(
    store: &dyn ContentStore,
    plan: &mut Plan,
    desc: &Descriptor,
    depth: usize,
) -> Result<Descriptor, ArchiveError> {
    let manifest_err = |source| ArchiveError::Manifest {
        file: desc.digest.to_string(),
        source,
    };
    let json_err = |source| ArchiveError::Json {
        file: desc.digest.to_string(),
        source,
    };
    match DocumentKind::from_media_type(&desc.media_type) {
        Some(kind) if kind.is_index() => {
            if depth >= MAX_DEPTH {
                return Err(ArchiveError::Limit {
                    file: desc.digest.to_string(),
                    what: "index nesting depth",
                    value: depth as u64 + 1,
                    max: MAX_DEPTH as u64,
                });
            }
            let bytes = read_doc(store, &desc.digest, MAX_MANIFEST_SIZE)?;
            let index = parse_index(&bytes, Some(&desc.media_type)).map_err(manifest_err)?;
            let mut children = Vec::with_capacity(index.manifests.len());
            for child in &index.manifests {
                children.push(add_tree(store, plan, child, depth + 1)?);
            }
            if kind == DocumentKind::OciIndex && children == index.manifests {
                plan.add(&desc.digest, desc.size, false);
                return Ok(desc.clone());
            }
            let mut converted = Index::new(Format::Oci, children);
            converted.annotations = index.annotations.clone();
            converted.subject = index.subject.clone();
            let (digest, size) = plan.add_bytes(serde_json::to_vec(&converted).map_err(json_err)?);
            Ok(redescribe(desc, OCI_INDEX, digest, size))
        }
        Some(kind) => {
            let bytes = read_doc(store, &desc.digest, MAX_MANIFEST_SIZE)?;
            let manifest = parse_manifest(&bytes, Some(&desc.media_type)).map_err(manifest_err)?;
            for layer in &manifest.layers {
                plan.add(&layer.digest, layer.size, true);
            }
            plan.add(&manifest.config.digest, manifest.config.size, false);
            if kind == DocumentKind::OciManifest {
                plan.add(&desc.digest, desc.size, false);
                return Ok(desc.clone());
            }
            let mut converted = manifest.clone();
            converted.media_type = Some(OCI_MANIFEST.to_owned());
            converted.config.media_type = oci_media_type(&manifest.config.media_type);
            for layer in &mut converted.layers {
                layer.media_type = oci_media_type(&layer.media_type);
            }
            let (digest, size) = plan.add_bytes(serde_json::to_vec(&converted).map_err(json_err)?);
            Ok(redescribe(desc, OCI_MANIFEST, digest, size))
        }
        None => {
            if has(store, &desc.digest)? {
                plan.add(&desc.digest, desc.size, false);
            }
            Ok(desc.clone())
        }
    }
}

fn plan(
    store: &dyn ContentStore,
    images: &[SaveImage],
    options: &SaveOptions,
) -> Result<Plan, ArchiveError> {
    if images.is_empty() {
        return Err(ArchiveError::NoImages);
    }
    let mut plan = Plan::default();
    let mut ref_names: BTreeMap<String, Digest> = BTreeMap::new();
    let mut done: BTreeSet<(Digest, String)> = BTreeSet::new();
    for image in images {
        let desc = Descriptor::new(
            &image.target.media_type,
            image.target.digest.clone(),
            image.target.size,
        );
        let is_index =
            DocumentKind::from_media_type(&desc.media_type).is_some_and(DocumentKind::is_index);
        let mut entry = if is_index && complete(store, &desc, 0)? {
            add_tree(store, &mut plan, &desc, 0)?
        } else {
            // A manifest, or an index the store has only part of: its manifest for the
            // platform.
            let stored = if is_index {
                image_for(store, &image.target, &options.platform)?
            } else {
                read_image(store, &image.target)?
            };
            let mut d = Descriptor::new(
                &stored.target.media_type,
                stored.target.digest.clone(),
                stored.target.size,
            );
            let c = &stored.config;
            if !c.os.is_empty() && !c.architecture.is_empty() {
                let mut p = Platform::new(&c.os, &c.architecture, c.variant.as_deref());
                p.os_version = c.os_version.clone();
                d.platform = Some(p);
            }
            add_tree(store, &mut plan, &d, 0)?
        };
        let target = Target {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: entry.size,
        };
        if !plan.manifests.contains(&target) {
            plan.manifests.push(target);
        }
        if image.names.is_empty() {
            if done.insert((entry.digest.clone(), String::new())) {
                plan.entries.push(entry);
            }
            continue;
        }
        for name in &image.names {
            let ref_name = match (options.ref_name, name.tag()) {
                (RefName::Tag, Some(tag)) => tag.to_owned(),
                _ => name.to_string(),
            };
            match ref_names.get(&ref_name) {
                Some(d) if *d != entry.digest => {
                    return Err(ArchiveError::RefNameConflict { ref_name })
                }
                Some(_) => continue,
                None => {
                    ref_names.insert(ref_name.clone(), entry.digest.clone());
                }
            }
            entry.annotations.clear();
            entry
                .annotations
                .insert(IMAGE_NAME.to_owned(), name.to_string());
            entry.annotations.insert(REF_NAME.to_owned(), ref_name);
            done.insert((entry.digest.clone(), name.to_string()));
            plan.entries.push(entry.clone());
        }
    }
    Ok(plan)
}

fn index_json(entries: Vec<Descriptor>) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(&Index::new(Format::Oci, entries)).map_err(|source| ArchiveError::Json {
        file: INDEX_JSON.to_owned(),
        source,
    })
}

/// Copies blob `blob` from the store into `write`, checking its digest on the way.
fn copy_blob(
    store: &dyn ContentStore,
    blob: &Blob,
    progress: &dyn ProgressSink,
    write: impl FnOnce(&mut dyn Read, &mut dyn FnMut(u64)) -> io::Result<()>,
    file: &str,
) -> Result<(), ArchiveError> {
    let report = |state, current| {
        if blob.layer {
            progress.report(Progress {
                digest: blob.digest.clone(),
                state,
                current,
                total: Some(blob.size),
            });
        }
    };
    let reader: Box<dyn Read + '_> = match &blob.data {
        Some(data) => Box::new(&data[..]),
        None => Box::new(
            store
                .open(&blob.digest)
                .map_err(|source| ArchiveError::Content {
                    file: blob.digest.to_string(),
                    source,
                })?,
        ),
    };
    let mut reader = HashingReader::with(reader, blob.digest.algorithm());
    report(ProgressState::Uploading, 0);
    let mut last = 0u64;
    write(&mut reader, &mut |done| {
        if done - last >= 1 << 20 {
            last = done;
            report(ProgressState::Uploading, done);
        }
    })
    .map_err(|source| ArchiveError::Write {
        file: file.to_owned(),
        source,
    })?;
    let (actual, _) = reader.drain().map_err(|source| ArchiveError::Read {
        file: blob.digest.to_string(),
        source,
    })?;
    if actual != blob.digest {
        return Err(ArchiveError::DigestMismatch {
            file: blob.digest.to_string(),
            expected: blob.digest.clone(),
            actual,
        });
    }
    report(ProgressState::Done, blob.size);
    Ok(())
}

/// Writes `images` as an OCI archive (a tar of an OCI image layout) to `out`.
/// Index targets the store has whole are written whole; others as their manifest
/// for [`SaveOptions::platform`].
pub fn save_oci_archive(
    store: &dyn ContentStore,
    images: &[SaveImage],
    out: impl Write,
    options: &SaveOptions,
    progress: &dyn ProgressSink,
) -> Result<SaveReport, ArchiveError> {
    let plan = plan(store, images, options)?;
    let mut tar = TarOut::new(out);
    let werr = |file: &str| {
        let file = file.to_owned();
        move |source| ArchiveError::Write { file, source }
    };
    tar.bytes(OCI_LAYOUT, LAYOUT_FILE)
        .map_err(werr(OCI_LAYOUT))?;
    tar.dir("blobs").map_err(werr("blobs"))?;
    let algorithms: BTreeSet<&str> = plan
        .blobs
        .iter()
        .map(|b| b.digest.algorithm().as_str())
        .collect();
    for alg in algorithms {
        let dir = format!("blobs/{alg}");
        tar.dir(&dir).map_err(werr(&dir))?;
    }
    let mut bytes = 0u64;
    for blob in &plan.blobs {
        let path = blob_path(&blob.digest);
        copy_blob(
            store,
            blob,
            progress,
            |r, p| tar.file(&path, blob.size, r, p),
            &path,
        )?;
        bytes += blob.size;
    }
    let index = index_json(plan.entries)?;
    tar.bytes(INDEX_JSON, &index).map_err(werr(INDEX_JSON))?;
    tar.finish().map_err(werr("end of archive"))?;
    Ok(SaveReport {
        manifests: plan.manifests,
        blobs: plan.blobs.len(),
        bytes,
    })
}

/// Writes `images` into the OCI image layout directory `dir`, creating it if needed.
/// An existing layout is added to: blobs it has are kept, and its `index.json`
/// entries are kept unless an image saved now takes their reference name.
/// Blobs and `index.json` are written to temporary names and renamed into place.
pub fn save_oci_layout(
    store: &dyn ContentStore,
    images: &[SaveImage],
    dir: &Path,
    options: &SaveOptions,
    progress: &dyn ProgressSink,
) -> Result<SaveReport, ArchiveError> {
    let plan = plan(store, images, options)?;
    let werr = |path: &Path| {
        let file = path.display().to_string();
        move |source| ArchiveError::Write { file, source }
    };
    fs::create_dir_all(dir).map_err(werr(dir))?;
    let layout = dir.join(OCI_LAYOUT);
    let mut entries = Vec::new();
    if layout.exists() {
        let index_path = dir.join(INDEX_JSON);
        if index_path.exists() {
            let existing = read_limited(&index_path, MAX_MANIFEST_SIZE as u64)?;
            let index = parse_index(&existing, None).map_err(|source| ArchiveError::Manifest {
                file: index_path.display().to_string(),
                source,
            })?;
            let taken: BTreeSet<&String> = plan
                .entries
                .iter()
                .filter_map(|e| e.annotations.get(REF_NAME))
                .collect();
            entries.extend(index.manifests.into_iter().filter(|e| {
                e.annotations
                    .get(REF_NAME)
                    .is_none_or(|n| !taken.contains(n))
                    && !plan.entries.contains(e)
            }));
        }
    } else if fs::read_dir(dir).map_err(werr(dir))?.next().is_some() {
        return Err(ArchiveError::NotALayout {
            path: dir.to_path_buf(),
        });
    } else {
        write_atomic(&layout, LAYOUT_FILE)?;
    }
    let mut bytes = 0u64;
    for blob in &plan.blobs {
        let alg_dir = dir.join("blobs").join(blob.digest.algorithm().as_str());
        fs::create_dir_all(&alg_dir).map_err(werr(&alg_dir))?;
        let path = alg_dir.join(blob.digest.hex());
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == blob.size) {
            continue;
        }
        let tmp = alg_dir.join(format!(".{}.tmp-{}", blob.digest.hex(), std::process::id()));
        let mut file = create_new(&tmp)?;
        let copied = copy_blob(
            store,
            blob,
            progress,
            |r, p| {
                let mut done = 0u64;
                let mut buf = vec![0u8; 128 << 10];
                loop {
                    let n = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    file.write_all(buf.get(..n).unwrap_or_default())?;
                    done += n as u64;
                    p(done);
                }
                file.sync_all()
            },
            &path.display().to_string(),
        )
        .and_then(|()| fs::rename(&tmp, &path).map_err(werr(&path)));
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        bytes += blob.size;
    }
    entries.extend(plan.entries);
    let index = index_json(entries)?;
    write_atomic(&dir.join(INDEX_JSON), &index)?;
    Ok(SaveReport {
        manifests: plan.manifests,
        blobs: plan.blobs.len(),
        bytes,
    })
}

fn create_new(path: &Path) -> Result<File, ArchiveError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|source| ArchiveError::Write {
            file: path.display().to_string(),
            source,
        })
}

/// Writes `data` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ArchiveError> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let werr = |source| ArchiveError::Write {
        file: path.display().to_string(),
        source,
    };
    let result = (|| {
        let mut f = create_new(&tmp)?;
        f.write_all(data).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        fs::rename(&tmp, path).map_err(werr)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a file of the output layout, bounded.
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, ArchiveError> {
    let file = path.display().to_string();
    let f = File::open(path).map_err(|source| ArchiveError::Read {
        file: file.clone(),
        source,
    })?;
    let mut data = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|source| ArchiveError::Read {
            file: file.clone(),
            source,
        })?;
    if data.len() as u64 > max {
        return Err(ArchiveError::Limit {
            file,
            what: "size",
            value: data.len() as u64,
            max,
        });
    }
    Ok(data)
}
