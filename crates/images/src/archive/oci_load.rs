//! Reading an OCI image layout (directory or tar): `oci-layout`, `index.json`, then
//! per image its manifest (chosen for the platform through nested indexes), config
//! and layers, each verified against its descriptor.

use serde::Deserialize;

use super::blob::{store_blob, Reporter};
use super::error::{display_name, ArchiveError};
use super::load::{LoadOptions, LoadedImage};
use super::source::Source;
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::media_type::essence;
use crate::manifest::{
    parse_index, parse_manifest, select_manifest, Descriptor, DocumentKind, Format, ImageConfig,
    Index, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::metadata::Target;
use crate::progress::{ProgressSink, ProgressState};
use crate::reference::Reference;

/// The index of an OCI layout.
pub(crate) const INDEX_JSON: &str = "index.json";
/// The marker file of an OCI layout.
pub(crate) const OCI_LAYOUT: &str = "oci-layout";
/// The annotation naming an image in a layout (a tag, or a full reference).
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd (and Docker 25+) put the full image name in.
pub(crate) const IMAGE_NAME: &str = "io.containerd.image.name";
/// Largest `oci-layout` file.
const MAX_LAYOUT_FILE: u64 = 64 << 10;
/// Deepest nesting of indexes followed.
const MAX_DEPTH: usize = 4;

#[derive(Deserialize)]
struct LayoutFile {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

/// The member path of a blob.
pub(crate) fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// Loads the images of the OCI layout in `source` into `store`.
pub(crate) fn load(
    source: &Source,
    store: &dyn ContentStore,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let layout = source.read_small(OCI_LAYOUT, MAX_LAYOUT_FILE, "archive")?;
    let layout: LayoutFile =
        serde_json::from_slice(&layout).map_err(|source| ArchiveError::Json {
            file: OCI_LAYOUT.to_owned(),
            source,
        })?;
    if !layout.version.starts_with("1.") {
        return Err(ArchiveError::LayoutVersion {
            version: display_name(layout.version.as_bytes()),
        });
    }
    let max = options
        .limits
        .max_document_size
        .min(MAX_MANIFEST_SIZE as u64);
    let bytes = source.read_small(INDEX_JSON, max, "archive")?;
    let index = parse_index(&bytes, None).map_err(|source| ArchiveError::Manifest {
        file: INDEX_JSON.to_owned(),
        source,
    })?;
    if index.manifests.len() > options.limits.max_images {
        return Err(ArchiveError::Limit {
            file: INDEX_JSON.to_owned(),
            what: "images",
            value: index.manifests.len() as u64,
            max: options.limits.max_images as u64,
        });
    }

    // Entries with the same names are one image for several platforms.
    let mut groups: Vec<(Vec<String>, Vec<Descriptor>)> = Vec::new();
    for desc in &index.manifests {
        let names = names_of(desc, options)?;
        match groups
            .iter_mut()
            .find(|(n, _)| !names.is_empty() && *n == names)
        {
            Some((_, descs)) => descs.push(desc.clone()),
            None => groups.push((names, vec![desc.clone()])),
        }
    }
    let loader = Loader {
        source,
        store,
        options,
        progress,
    };
    let mut images = Vec::new();
    for (names, descs) in groups {
        let chosen = match descs.as_slice() {
            [one] => one.clone(),
            many => {
                let index = Index::new(Format::Oci, many.to_vec());
                select_manifest(&index, &options.platform)
                    .map_err(|source| ArchiveError::Manifest {
                        file: INDEX_JSON.to_owned(),
                        source,
                    })?
                    .clone()
            }
        };
        if let Some(mut image) = loader.resolve(&chosen, INDEX_JSON, 0)? {
            image.names = names;
            images.push(image);
        }
    }
    Ok(images)
}

/// The names an `index.json` entry gives its image.
fn names_of(desc: &Descriptor, options: &LoadOptions) -> Result<Vec<String>, ArchiveError> {
    let parse = |s: &str| {
        Reference::parse_normalized(s)
            .map(|r| vec![r.to_string()])
            .map_err(|source| ArchiveError::InvalidName {
                name: display_name(s.as_bytes()),
                file: INDEX_JSON.to_owned(),
                source,
            })
    };
    if let Some(name) = desc.annotations.get(IMAGE_NAME) {
        return parse(name);
    }
    let Some(ref_name) = desc.annotations.get(REF_NAME) else {
        return Ok(Vec::new());
    };
    if ref_name.contains(['/', ':', '@']) {
        return parse(ref_name);
    }
    match &options.repository {
        Some(repo) => parse(&format!("{repo}:{ref_name}")),
        None => Ok(Vec::new()),
    }
}

struct Loader<'a> {
    source: &'a Source,
    store: &'a dyn ContentStore,
    options: &'a LoadOptions,
    progress: &'a dyn ProgressSink,
}

impl Loader<'_> {
    /// Reads the blob of `desc` whole (at most `max` bytes) and checks its size and
    /// digest.
    fn read_doc(
        &self,
        desc: &Descriptor,
        max: usize,
        referenced_by: &str,
    ) -> Result<Vec<u8>, ArchiveError> {
        let path = blob_path(&desc.digest);
        if desc.size > max as u64 {
            return Err(ArchiveError::Limit {
                file: path,
                what: "size",
                value: desc.size,
                max: max as u64,
            });
        }
        let bytes = self.source.read_small(&path, max as u64, referenced_by)?;
        if bytes.len() as u64 != desc.size {
            return Err(ArchiveError::SizeMismatch {
                file: path,
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = Digest::of(desc.digest.algorithm(), &bytes);
        if actual != desc.digest {
            return Err(ArchiveError::DigestMismatch {
                file: path,
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Loads the image `desc` points to: a manifest, or an index to choose from.
    /// Entries that are neither (artifacts) are skipped.
    fn resolve(
        &self,
        desc: &Descriptor,
        referenced_by: &str,
        depth: usize,
    ) -> Result<Option<LoadedImage>, ArchiveError> {
        let Some(kind) = DocumentKind::from_media_type(&desc.media_type) else {
            tracing::debug!(media_type = %desc.media_type, digest = %desc.digest, "skipping non-image entry of an OCI layout");
            return Ok(None);
        };
        if !kind.is_index() {
            return self.load_image(desc, referenced_by).map(Some);
        }
        if depth >= MAX_DEPTH {
            return Err(ArchiveError::Limit {
                file: blob_path(&desc.digest),
                what: "index nesting depth",
                value: depth as u64 + 1,
                max: MAX_DEPTH as u64,
            });
        }
        let path = blob_path(&desc.digest);
        let bytes = self.read_doc(desc, MAX_MANIFEST_SIZE, referenced_by)?;
        let index = parse_index(&bytes, Some(&desc.media_type)).map_err(|source| {
            ArchiveError::Manifest {
                file: path.clone(),
                source,
            }
        })?;
        let chosen = select_manifest(&index, &self.options.platform).map_err(|source| {
            ArchiveError::Manifest {
                file: path.clone(),
                source,
            }
        })?;
        self.resolve(chosen, &path, depth + 1)
    }

    fn load_image(
        &self,
        desc: &Descriptor,
        referenced_by: &str,
    ) -> Result<LoadedImage, ArchiveError> {
        let path = blob_path(&desc.digest);
        let manifest_bytes = self.read_doc(desc, MAX_MANIFEST_SIZE, referenced_by)?;
        let manifest =
            parse_manifest(&manifest_bytes, Some(&desc.media_type)).map_err(|source| {
                ArchiveError::Manifest {
                    file: path.clone(),
                    source,
                }
            })?;
        manifest
            .validate_image()
            .map_err(|source| ArchiveError::Manifest {
                file: path.clone(),
                source,
            })?;
        let config_path = blob_path(&manifest.config.digest);
        let config_bytes = self.read_doc(&manifest.config, MAX_CONFIG_SIZE, &path)?;
        let config =
            ImageConfig::parse(&config_bytes).map_err(|source| ArchiveError::Manifest {
                file: config_path.clone(),
                source,
            })?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ArchiveError::LayerCount {
                file: path,
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        for layer in &manifest.layers {
            Reporter::new(self.progress, &layer.digest, Some(layer.size))
                .state(ProgressState::Waiting, 0);
        }
        for layer in &manifest.layers {
            let file = blob_path(&layer.digest);
            let mut reporter = Reporter::new(self.progress, &layer.digest, Some(layer.size));
            let open = || {
                let (reader, size) = self.source.open_member(&file, &path)?;
                if size != layer.size {
                    return Err(ArchiveError::SizeMismatch {
                        file: file.clone(),
                        expected: layer.size,
                        actual: size,
                    });
                }
                Ok(reader)
            };
            store_blob(
                self.store,
                &layer.digest,
                layer.size,
                open,
                &file,
                &mut reporter,
                |actual| ArchiveError::DigestMismatch {
                    file: file.clone(),
                    expected: layer.digest.clone(),
                    actual,
                },
            )?;
        }
        let content = |file: String| move |source| ArchiveError::Content { file, source };
        self.store
            .put_verified(&manifest.config.digest, &config_bytes)
            .map_err(content(config_path))?;
        self.store
            .put_verified(&desc.digest, &manifest_bytes)
            .map_err(content(path))?;
        Ok(LoadedImage {
            names: Vec::new(),
            target: Target {
                media_type: essence(&desc.media_type),
                digest: desc.digest.clone(),
                size: desc.size,
            },
            config: manifest.config.digest.clone(),
            diff_ids: config.rootfs.diff_ids,
        })
    }
}
