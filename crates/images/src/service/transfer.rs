//! Images in and out of the store other than by pull: push to a registry, save to and
//! load from archives, import of a root filesystem tar (the service side of
//! [`push`](crate::push) and [`archive`](crate::archive)).
//!
//! What the service adds to those modules:
//!
//! - **Names as docker gives them.** `save` and `push` take what a user types (a
//!   reference or an image ID); `load` and `import` leave nameless images with a
//!   dangling name (docker's `<none>:<none>`) and give one to images whose last name
//!   the load moved elsewhere; `push` records the pushed repository digest, as
//!   `RepoDigests` shows after a `docker push`.
//! - **Unpacked on arrival.** Loaded and imported images are unpacked into snapshots
//!   right away, like pulled ones, so that the first container start does not pay for
//!   it and a broken layer is reported by `load`, not by `run`. When an unpack fails,
//!   the names are put back as they were before the load (the new blobs are left to
//!   `gc`): a broken image never takes a name from a working one.
//! - **Names that would lie are refused**: an archive or import cannot give a name
//!   carrying a digest (it would answer for content it may not have) or a repository
//!   named `sha256` (it would shadow image IDs).
//! - **What the store has.** An image pulled through a multi-platform index keeps only
//!   its platform's manifest; push and save then send that manifest, not an index the
//!   store cannot complete (docker does the same).
//! - **Safe from `gc`.** A load or import holds the garbage collector off while it
//!   stores blobs and records names (an import spools the client's bytes to a scratch
//!   file first, so a slow upload holds nothing); push and save lease the blobs of the
//!   target they send, chosen under the gc lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::archive::{
    self, ImportOptions, LoadOptions, LoadReport, SaveImage, SaveOptions, SaveReport,
};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::{parse_any, Document, MAX_MANIFEST_SIZE};
use crate::metadata::{ImageRecord, Metadata, MetadataError, Target};
use crate::progress::ProgressSink;
use crate::push::{push_image, PushOptions, PushResult};
use crate::reference::Reference;

use super::resolve::{dangling_name, CatalogImage, Loaded, DANGLING_PREFIX};
use super::{Image, ImageService, Inner, Lease, ServiceError};

/// Where and how [`ImageService::save`] writes.
pub enum SaveTarget {
    /// A docker-archive (`docker save`), to a writer (a file, a pipe, an HTTP body).
    DockerArchive(Box<dyn Write + Send>),
    /// An OCI archive (a tar of an OCI image layout), to a writer.
    OciArchive(Box<dyn Write + Send>),
    /// An OCI image layout directory, created or added to.
    OciLayout(PathBuf),
}

impl std::fmt::Debug for SaveTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveTarget::DockerArchive(_) => f.write_str("DockerArchive(..)"),
            SaveTarget::OciArchive(_) => f.write_str("OciArchive(..)"),
            SaveTarget::OciLayout(dir) => f.debug_tuple("OciLayout").field(dir).finish(),
        }
    }
}

/// Where [`ImageService::load`] reads.
#[derive(Debug)]
pub enum LoadSource {
    /// A tar archive or an OCI layout directory, by path.
    Path(PathBuf),
    /// A tar archive already open (an upload spooled to a file: archives are read by
    /// offset, so a pipe must be spooled first).
    File(File),
}

/// Gives a dangling name to every target in `orphans` that has no name left, and
/// removes the dangling name of every target in `named` that has a real one.
fn fix_dangling(
    m: &mut Metadata,
    orphans: &[Target],
    named: &[Target],
) -> Result<(), MetadataError> {
    for target in orphans {
        if m.images_by_target(&target.digest).next().is_none() {
            m.put_image(
                &dangling_name(&target.digest),
                target.clone(),
                BTreeMap::new(),
            )?;
        }
    }
    for target in named {
        let has_real_name = m
            .images_by_target(&target.digest)
            .any(|r| !r.name.starts_with(DANGLING_PREFIX));
        let dangling = dangling_name(&target.digest);
        if !has_real_name {
            m.put_image(&dangling, target.clone(), BTreeMap::new())?;
        } else if m.image(&dangling).is_some() {
            m.remove_image(&dangling, true)?;
        }
    }
    Ok(())
}

/// The record `s` selects in `image`: the one with that name when `s` is one of its
/// names (a reference), else the image's first target (an image ID; `sha256:…` also
/// parses as a reference, to a repository named `sha256`, hence the name check).
fn chosen_record(image: &CatalogImage, s: &str) -> (Option<Reference>, ImageRecord) {
    if let Ok(reference) = Reference::parse_normalized(s) {
        let key = reference.to_string();
        if let Some(record) = image.records.iter().find(|r| r.name == key) {
            return (Some(reference), record.clone());
        }
    }
    let record = image
        .records
        .iter()
        .find(|r| r.target == image.loaded.target)
        .cloned()
        .unwrap_or_else(|| synthetic_record(&dangling_name(&image.id), &image.loaded.target));
    (None, record)
}

/// A record for reading the documents of `target` without a name lookup.
fn synthetic_record(name: &str, target: &Target) -> ImageRecord {
    ImageRecord {
        name: name.to_owned(),
        target: target.clone(),
        created: UNIX_EPOCH,
        updated: UNIX_EPOCH,
        labels: BTreeMap::new(),
    }
}

/// Names `loaded_names` must lose and `replaced` must get back after a failed unpack:
/// the store is left as it was before the load (the blobs stay for `gc`).
fn undo_names(
    m: &mut Metadata,
    loaded: &[(Vec<String>, Target)],
    replaced: &[ImageRecord],
) -> Result<(), MetadataError> {
    for (names, target) in loaded {
        for name in names {
            if m.image(name).is_some_and(|r| r.target == *target) {
                m.remove_image(name, true)?;
            }
        }
        let dangling = dangling_name(&target.digest);
        if m.image(&dangling).is_some() {
            m.remove_image(&dangling, true)?;
        }
    }
    for old in replaced {
        m.put_image(&old.name, old.target.clone(), old.labels.clone())?;
    }
    let restored: Vec<Target> = replaced.iter().map(|r| r.target.clone()).collect();
    fix_dangling(m, &[], &restored)
}

impl Inner {
    /// Unpacks the layers of `loaded` that are only in the content store.
    pub(crate) async fn ensure_unpacked(
        self: &Arc<Self>,
        loaded: &Loaded,
        lease: &Arc<Lease>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<(), ServiceError> {
        let chains: Vec<String> = loaded.chain_ids.iter().map(Digest::to_string).collect();
        lease.hold(&loaded.blobs(), &chains).await;
        let Some(top) = chains.last().cloned() else {
            return Ok(());
        };
        if self
            .run_blocking(move |inner| inner.is_committed(&top))
            .await?
        {
            return Ok(());
        }
        self.unpack_layers(
            None,
            &loaded.manifest,
            &loaded.config.rootfs.diff_ids,
            &loaded.chain_ids,
            lease,
            progress,
        )
        .await
    }

    /// The documents of `target`, leased (called with the gc lock held).
    fn load_leased(&self, lease: &Lease, target: &Target) -> Result<Loaded, ServiceError> {
        let loaded = self.load(&synthetic_record(&dangling_name(&target.digest), target))?;
        let chains: Vec<String> = loaded.chain_ids.iter().map(Digest::to_string).collect();
        lease.record(&loaded.blobs(), &chains);
        Ok(loaded)
    }

    /// Unpacks every image of `loaded`; on failure puts the names back as they were
    /// before (`names`: the names each image was given; `replaced`: the records they
    /// replaced) and returns the unpack error.
    async fn unpack_or_undo(
        self: &Arc<Self>,
        loaded: &[Loaded],
        names: Vec<(Vec<String>, Target)>,
        replaced: Vec<ImageRecord>,
        lease: &Arc<Lease>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<(), ServiceError> {
        for image in loaded {
            if let Err(e) = self.ensure_unpacked(image, lease, progress).await {
                let undone = self
                    .run_blocking(move |inner| {
                        inner
                            .metadata
                            .update(|m| undo_names(m, &names, &replaced))
                            .map_err(ServiceError::from)
                    })
                    .await;
                if let Err(undo) = undone {
                    tracing::warn!(error = %undo, "cannot restore the names after a failed unpack");
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn load_archive(
        self: Arc<Self>,
        source: LoadSource,
        options: LoadOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<LoadReport, ServiceError> {
        let lease = Arc::new(Lease::new(&self));
        let sink = progress.clone();
        let lease2 = lease.clone();
        let (report, loaded) = self
            .run_blocking(move |inner| {
                // No gc while blobs are stored but not yet named or leased.
                let _gc = inner.gc_lock.blocking_read();
                let report = match source {
                    LoadSource::Path(path) => {
                        archive::load(&inner.content, &inner.metadata, &path, &options, &*sink)?
                    }
                    LoadSource::File(file) => {
                        archive::load_file(&inner.content, &inner.metadata, file, &options, &*sink)?
                    }
                };
                let orphans: Vec<Target> =
                    report.replaced.iter().map(|r| r.target.clone()).collect();
                let targets: Vec<Target> = report.images.iter().map(|i| i.target.clone()).collect();
                inner
                    .metadata
                    .update(|m| fix_dangling(m, &orphans, &targets))?;
                let loaded = targets
                    .iter()
                    .map(|t| inner.load_leased(&lease2, t))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((report, loaded))
            })
            .await?;
        let names = report
            .images
            .iter()
            .map(|i| (i.names.clone(), i.target.clone()))
            .collect();
        self.unpack_or_undo(&loaded, names, report.replaced.clone(), &lease, &progress)
            .await?;
        for image in &report.images {
            tracing::info!(id = %image.config, names = ?image.names, "loaded");
        }
        Ok(report)
    }

    async fn import_rootfs(
        self: Arc<Self>,
        input: Box<dyn Read + Send>,
        mut options: ImportOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Image, ServiceError> {
        options.temp_dir = self.tmp_dir();
        let lease = Arc::new(Lease::new(&self));
        let sink = progress.clone();
        let lease2 = lease.clone();
        let (imported, replaced, loaded) = self
            .run_blocking(move |inner| {
                // The client's bytes first, holding nothing: a slow upload must not
                // hold `gc` (and everything queued behind it) off.
                let spooled = archive::spool(input, &options.temp_dir, options.max_bytes)?;
                let _gc = inner.gc_lock.blocking_read();
                let name = options.name.as_ref().map(ToString::to_string);
                let before = match &name {
                    Some(n) => inner.metadata.read()?.image(n).cloned(),
                    None => None,
                };
                let imported =
                    archive::import(&inner.content, &inner.metadata, spooled, &options, &*sink)?;
                let replaced: Vec<ImageRecord> = before
                    .into_iter()
                    .filter(|r| r.target != imported.target)
                    .collect();
                let orphans: Vec<Target> = replaced.iter().map(|r| r.target.clone()).collect();
                let target = std::slice::from_ref(&imported.target);
                inner
                    .metadata
                    .update(|m| fix_dangling(m, &orphans, target))?;
                let loaded = inner.load_leased(&lease2, &imported.target)?;
                Ok((imported, replaced, loaded))
            })
            .await?;
        let names = vec![(
            imported.name.clone().into_iter().collect(),
            imported.target.clone(),
        )];
        self.unpack_or_undo(&[loaded], names, replaced, &lease, &progress)
            .await?;
        let id = imported.config.to_string();
        let image = self
            .run_blocking(move |inner| {
                let m = inner.metadata.read()?;
                let image = inner.select(&m, &id)?;
                Ok(inner.describe(&m, &image, &mut std::collections::HashMap::new()))
            })
            .await?;
        tracing::info!(id = %image.id, "imported");
        Ok(image)
    }

    /// What to push or save of `loaded` (`record`'s documents): its target, unless
    /// that is an index of which the store lacks manifests (a pull keeps only its
    /// platform's): then the platform manifest that was unpacked, as docker pushes and
    /// saves what it has. Leases the index's stored manifests too.
    fn complete_target(
        &self,
        lease: &Lease,
        record: &ImageRecord,
        loaded: &Loaded,
    ) -> Result<Target, ServiceError> {
        if loaded.manifest_digest == loaded.target.digest {
            return Ok(loaded.target.clone());
        }
        let bytes = self.read_document(
            &record.name,
            "index",
            &loaded.target.digest,
            MAX_MANIFEST_SIZE,
        )?;
        let index = match parse_any(&bytes, Some(&loaded.target.media_type)) {
            Ok(Document::Index(index)) => index,
            _ => return Ok(loaded.target.clone()),
        };
        let stored: Vec<Digest> = index
            .manifests
            .iter()
            .filter(|d| self.content.info(&d.digest).ok().flatten().is_some())
            .map(|d| d.digest.clone())
            .collect();
        lease.record(&stored, &[]);
        if stored.len() == index.manifests.len() {
            return Ok(loaded.target.clone());
        }
        let platform = index
            .manifests
            .iter()
            .find(|d| d.digest == loaded.manifest_digest)
            .ok_or_else(|| ServiceError::DocumentMissing {
                image: record.name.clone(),
                what: "platform manifest",
                digest: loaded.manifest_digest.clone(),
            })?;
        Ok(Target {
            media_type: platform.media_type.clone(),
            digest: platform.digest.clone(),
            size: platform.size,
        })
    }

    async fn save_images(
        self: Arc<Self>,
        names: Vec<String>,
        target: SaveTarget,
        options: SaveOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<SaveReport, ServiceError> {
        let lease = Lease::new(&self);
        self.run_blocking(move |inner| {
            let images = {
                let _gc = inner.gc_lock.blocking_read();
                let m = inner.metadata.read()?;
                let mut images = Vec::with_capacity(names.len());
                for name in &names {
                    let image = inner.select(&m, name)?;
                    let (typed, record) = chosen_record(&image, name);
                    let loaded = inner.load(&record)?;
                    let chains: Vec<String> =
                        loaded.chain_ids.iter().map(Digest::to_string).collect();
                    lease.record(&loaded.blobs(), &chains);
                    let target = inner.complete_target(&lease, &record, &loaded)?;
                    let names = typed.filter(|r| r.digest().is_none()).into_iter().collect();
                    images.push(SaveImage { target, names });
                }
                images
            };
            let report = match target {
                SaveTarget::DockerArchive(out) => archive::save_docker_archive(
                    &inner.content,
                    &images,
                    out,
                    &options,
                    &*progress,
                )?,
                SaveTarget::OciArchive(out) => {
                    archive::save_oci_archive(&inner.content, &images, out, &options, &*progress)?
                }
                SaveTarget::OciLayout(dir) => {
                    archive::save_oci_layout(&inner.content, &images, &dir, &options, &*progress)?
                }
            };
            drop(lease);
            Ok(report)
        })
        .await
    }

    async fn push_named(
        self: Arc<Self>,
        name: String,
        target: Option<Reference>,
        mut options: PushOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<PushResult, ServiceError> {
        let lease = Arc::new(Lease::new(&self));
        let lease2 = lease.clone();
        let (image, reference, source_target) = self
            .run_blocking(move |inner| {
                let _gc = inner.gc_lock.blocking_read();
                let m = inner.metadata.read()?;
                let image = inner.select(&m, &name)?;
                let (typed, record) = chosen_record(&image, &name);
                let reference = match (target, typed) {
                    (Some(t), _) => t,
                    (None, Some(r)) => r,
                    (None, None) => {
                        return Err(ServiceError::InvalidName {
                            name,
                            reason: "an image ID has no repository to push to; give a target name",
                        })
                    }
                };
                let loaded = inner.load(&record)?;
                let chains: Vec<String> = loaded.chain_ids.iter().map(Digest::to_string).collect();
                lease2.record(&loaded.blobs(), &chains);
                let source_target = inner.complete_target(&lease2, &record, &loaded)?;
                Ok((image, reference, source_target))
            })
            .await?;
        if options.mount_from.is_empty() {
            // Other repositories of the same registry that hold this image.
            options.mount_from = image
                .records
                .iter()
                .filter_map(|r| Reference::parse_normalized(&r.name).ok())
                .filter(|r| r.domain() == reference.domain() && r.name() != reference.name())
                .collect();
        }
        let result = push_image(
            &self.client,
            &self.content,
            &source_target.digest,
            &reference,
            options,
            progress,
        )
        .await
        .map_err(|source| ServiceError::Push {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
        // Record `repo@digest`, as docker shows it in RepoDigests after a push.
        let pinned = reference.pinned(result.digest.clone()).to_string();
        let pushed = Target {
            media_type: source_target.media_type.clone(),
            digest: result.digest.clone(),
            size: result.size,
        };
        self.run_blocking(move |inner| {
            inner.metadata.update(|m| {
                if m.image(&pinned).is_none() {
                    m.put_image(&pinned, pushed, BTreeMap::new())?;
                }
                Ok::<_, MetadataError>(())
            })?;
            Ok(())
        })
        .await?;
        drop(lease);
        tracing::info!(reference = %reference, digest = %result.digest, "pushed");
        Ok(result)
    }
}

impl ImageService {
    /// Loads the images of an archive (docker-archive of any Docker version, OCI
    /// layout or OCI archive, told from its contents), names them and unpacks them
    /// (`docker load`). Nameless images get a dangling name; the report lists what was
    /// loaded and which names moved.
    pub async fn load(
        &self,
        source: LoadSource,
        options: LoadOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<LoadReport, ServiceError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.load_archive(source, options, progress).await }).await?
    }

    /// Saves the images `names` (references or image IDs, as for
    /// [`ImageService::inspect`]) into `target` (`docker save`). A reference is written
    /// with its name; an image ID without one.
    pub async fn save(
        &self,
        names: &[String],
        target: SaveTarget,
        options: SaveOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<SaveReport, ServiceError> {
        let inner = self.inner.clone();
        let names = names.to_vec();
        inner.save_images(names, target, options, progress).await
    }

    /// Makes a one-layer image of the root filesystem tar `input` (plain, gzip or
    /// zstd) and unpacks it (`docker import`). Staging uses the store's scratch
    /// directory, whatever [`ImportOptions::temp_dir`] says.
    pub async fn import(
        &self,
        input: Box<dyn Read + Send>,
        options: ImportOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Image, ServiceError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.import_rootfs(input, options, progress).await }).await?
    }

    /// Pushes the image `name` (a reference, or an image ID when `target` is given) to
    /// `target`, or to where `name` says (`docker push`). When
    /// [`PushOptions::mount_from`] is empty, the image's other repositories on the same
    /// registry are offered for cross-repository mounts. Afterwards the image is also
    /// named `repository@digest`.
    pub async fn push(
        &self,
        name: &str,
        target: Option<&Reference>,
        options: PushOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<PushResult, ServiceError> {
        let inner = self.inner.clone();
        let (name, target) = (name.to_owned(), target.cloned());
        tokio::spawn(async move { inner.push_named(name, target, options, progress).await }).await?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::metadata::MetadataStore;

    fn target(b: &[u8]) -> Target {
        Target {
            media_type: crate::manifest::media_type::OCI_MANIFEST.to_owned(),
            digest: Digest::sha256_of(b),
            size: b.len() as u64,
        }
    }

    #[test]
    fn dangling_names_follow_the_real_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let (old, new, unnamed) = (target(b"old"), target(b"new"), target(b"unnamed"));
        store
            .update(|m| {
                // `new` was dangling before a load named it; `old` lost its name to it.
                m.put_image(&dangling_name(&new.digest), new.clone(), BTreeMap::new())?;
                m.put_image("docker.io/library/a:1", new.clone(), BTreeMap::new())?;
                fix_dangling(
                    m,
                    std::slice::from_ref(&old),
                    &[new.clone(), unnamed.clone()],
                )
            })
            .unwrap();
        let m = store.read().unwrap();
        let names = |t: &Target| -> Vec<String> {
            m.images_by_target(&t.digest)
                .map(|r| r.name.clone())
                .collect()
        };
        assert_eq!(names(&old), vec![dangling_name(&old.digest)]);
        assert_eq!(names(&new), vec!["docker.io/library/a:1".to_owned()]);
        assert_eq!(names(&unnamed), vec![dangling_name(&unnamed.digest)]);
    }
}
