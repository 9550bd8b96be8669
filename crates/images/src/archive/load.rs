//! `load`: an archive (docker-archive, OCI layout or OCI archive) into the content
//! store, then its names into the metadata.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use super::error::ArchiveError;
use super::source::Source;
use super::{docker_legacy, docker_load, oci_load, ArchiveLimits};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::Platform;
use crate::metadata::{ImageRecord, MetadataError, MetadataStore, Target};
use crate::progress::ProgressSink;

/// The format of a loaded archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` output (`manifest.json`, or only `repositories` before Docker
    /// 1.10).
    DockerArchive,
    /// An OCI image layout, as a directory or a tar archive.
    OciLayout,
}

/// How to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The platform whose manifest is loaded from an index. Default: the host's.
    pub platform: Platform,
    /// The repository (`localhost/app`, `busybox`) that OCI reference names made of a
    /// bare tag (`latest`, as skopeo and umoci write them) are joined to. `None`:
    /// images with only a bare tag are loaded unnamed.
    pub repository: Option<String>,
    /// Bounds on the archive.
    pub limits: ArchiveLimits,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            platform: Platform::host(),
            repository: None,
            limits: ArchiveLimits::default(),
        }
    }
}

/// One image of a loaded archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The names recorded for it (full normalised references), maybe none.
    pub names: Vec<String>,
    /// Its manifest, in the content store.
    pub target: Target,
    /// Its image ID (the config's digest).
    pub config: Digest,
    /// Its layers' diff IDs, base first.
    pub diff_ids: Vec<Digest>,
}

/// What [`load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The archive's format.
    pub format: ArchiveFormat,
    /// The images, in archive order.
    pub images: Vec<LoadedImage>,
    /// The records the load's names replaced (names that pointed at other images
    /// before): their old targets may now be dangling.
    pub replaced: Vec<ImageRecord>,
}

/// Loads the archive at `path` (a tar file or a directory) into `store`, and records
/// its images' names in `metadata`. See the [module documentation](super).
pub fn load(
    store: &dyn ContentStore,
    metadata: &MetadataStore,
    path: &Path,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<LoadReport, ArchiveError> {
    let source = Source::open(path, &options.limits)?;
    load_source(store, metadata, &source, options, progress)
}

/// Like [`load`], for a tar archive already open (an upload spooled to a temporary
/// file: archives are read by offset, so a pipe must be spooled first).
pub fn load_file(
    store: &dyn ContentStore,
    metadata: &MetadataStore,
    file: File,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<LoadReport, ArchiveError> {
    let source = Source::from_file(file, &options.limits)?;
    load_source(store, metadata, &source, options, progress)
}

fn load_source(
    store: &dyn ContentStore,
    metadata: &MetadataStore,
    source: &Source,
    options: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<LoadReport, ArchiveError> {
    let (format, images) = if source.contains(docker_load::MANIFEST_JSON) {
        (
            ArchiveFormat::DockerArchive,
            docker_load::load(source, store, options, progress)?,
        )
    } else if source.contains(oci_load::INDEX_JSON) {
        (
            ArchiveFormat::OciLayout,
            oci_load::load(source, store, options, progress)?,
        )
    } else if source.contains(docker_legacy::REPOSITORIES) {
        (
            ArchiveFormat::DockerArchive,
            docker_legacy::load(source, store, options, progress)?,
        )
    } else {
        return Err(ArchiveError::UnknownFormat);
    };
    if images.is_empty() {
        return Err(ArchiveError::NoImages);
    }
    let replaced = record_names(metadata, &images)?;
    Ok(LoadReport {
        format,
        images,
        replaced,
    })
}

/// Records every name of `images` in one metadata update (all or nothing).
pub(crate) fn record_names(
    metadata: &MetadataStore,
    images: &[LoadedImage],
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let mut names: BTreeMap<&str, &Target> = BTreeMap::new();
    for image in images {
        for name in &image.names {
            let refused = crate::reference::Reference::parse_normalized(name)
                .ok()
                .and_then(|r| super::refused_name(&r));
            if let Some(reason) = refused {
                return Err(ArchiveError::RefusedName {
                    name: name.clone(),
                    file: "archive".to_owned(),
                    reason,
                });
            }
            match names.get(name.as_str()) {
                Some(t) if **t != image.target => {
                    return Err(ArchiveError::NameConflict { name: name.clone() })
                }
                _ => {
                    names.insert(name, &image.target);
                }
            }
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    metadata
        .update(|m| -> Result<Vec<ImageRecord>, MetadataError> {
            let mut replaced = Vec::new();
            for (name, target) in &names {
                if let Some(old) = m.put_image(name, (*target).clone(), BTreeMap::new())? {
                    if old.target != **target {
                        replaced.push(old);
                    }
                }
            }
            Ok(replaced)
        })
        .map_err(ArchiveError::Metadata)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn image(name: &str) -> LoadedImage {
        let digest = Digest::sha256_of(b"m");
        LoadedImage {
            names: vec![name.to_owned()],
            target: Target {
                media_type: crate::manifest::media_type::OCI_MANIFEST.to_owned(),
                digest: digest.clone(),
                size: 1,
            },
            config: digest.clone(),
            diff_ids: Vec::new(),
        }
    }

    #[test]
    fn names_that_would_lie_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = MetadataStore::open(dir.path()).unwrap();
        let pinned = format!("docker.io/library/busybox@{}", Digest::sha256_of(b"other"));
        for bad in [pinned.as_str(), "docker.io/library/sha256:latest"] {
            let err = record_names(&metadata, &[image(bad)]).unwrap_err();
            assert!(
                matches!(err, ArchiveError::RefusedName { .. }),
                "{bad}: {err}"
            );
        }
        assert!(metadata.read().unwrap().images().next().is_none());
        record_names(&metadata, &[image("docker.io/library/busybox:1")]).unwrap();
    }
}
