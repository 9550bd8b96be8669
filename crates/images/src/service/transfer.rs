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
//!   it and a broken layer is reported by `load`, not by `run`.
//! - **Safe from `gc`.** A load or import holds the garbage collector off while it
//!   stores blobs and records names (blobs are unnamed until the very end); push and
//!   save lease the blobs they read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::archive::{
    self, ImportOptions, LoadOptions, LoadReport, SaveImage, SaveOptions, SaveReport,
};
use crate::digest::Digest;
use crate::metadata::{Metadata, MetadataError, Target};
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

/// The target and archive names of `s` in `image`: a reference names the record with
/// that name (and is written into the archive unless it is a digest reference); an
/// image ID names the image's first target, saved without a name.
fn save_entry(image: &CatalogImage, s: &str) -> SaveImage {
    if let Ok(reference) = Reference::parse_normalized(s) {
        let key = reference.to_string();
        if let Some(record) = image.records.iter().find(|r| r.name == key) {
            let names = if reference.digest().is_none() {
                vec![reference]
            } else {
                Vec::new()
            };
            return SaveImage {
                target: record.target.clone(),
                names,
            };
        }
    }
    SaveImage {
        target: image.loaded.target.clone(),
        names: Vec::new(),
    }
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

    /// Unpacks the images stored under `targets` (just loaded or imported) and
    /// returns their documents.
    async fn unpack_targets(
        self: &Arc<Self>,
        targets: Vec<(String, Target)>,
        lease: &Arc<Lease>,
        progress: &Arc<dyn ProgressSink>,
    ) -> Result<Vec<Loaded>, ServiceError> {
        let mut out = Vec::with_capacity(targets.len());
        for (name, target) in targets {
            let loaded = self
                .run_blocking(move |inner| {
                    let m = inner.metadata.read()?;
                    match m.image(&name) {
                        Some(record) if record.target == target => inner.load(record),
                        _ => Err(ServiceError::ImageNotFound(name)),
                    }
                })
                .await?;
            self.ensure_unpacked(&loaded, lease, progress).await?;
            out.push(loaded);
        }
        Ok(out)
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
        let report = self
            .run_blocking(move |inner| {
                // No gc while blobs are stored but not yet named.
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
                let loaded: Vec<Target> = report.images.iter().map(|i| i.target.clone()).collect();
                inner
                    .metadata
                    .update(|m| fix_dangling(m, &orphans, &loaded))?;
                lease2.record(
                    &loaded.iter().map(|t| t.digest.clone()).collect::<Vec<_>>(),
                    &[],
                );
                Ok(report)
            })
            .await?;
        let targets = report
            .images
            .iter()
            .map(|i| {
                let name = i
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| dangling_name(&i.target.digest));
                (name, i.target.clone())
            })
            .collect();
        self.unpack_targets(targets, &lease, &progress).await?;
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
        let imported = self
            .run_blocking(move |inner| {
                let _gc = inner.gc_lock.blocking_read();
                let imported =
                    archive::import(&inner.content, &inner.metadata, input, &options, &*sink)?;
                let target = std::slice::from_ref(&imported.target);
                inner.metadata.update(|m| fix_dangling(m, &[], target))?;
                lease2.record(std::slice::from_ref(&imported.target.digest), &[]);
                Ok(imported)
            })
            .await?;
        let name = imported
            .name
            .clone()
            .unwrap_or_else(|| dangling_name(&imported.target.digest));
        self.unpack_targets(vec![(name, imported.target)], &lease, &progress)
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
                    lease.record(&image.loaded.blobs(), &[]);
                    images.push(save_entry(&image, name));
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
        let lease = Lease::new(&self);
        let name2 = name.clone();
        let (image, reference, source_target) = self
            .run_blocking(move |inner| {
                let m = inner.metadata.read()?;
                let image = inner.select(&m, &name2)?;
                // What was typed, if it is one of the image's names (`sha256:…` also
                // parses as a reference, to a repository named `sha256`).
                let typed = Reference::parse_normalized(&name2).ok().filter(|r| {
                    let key = r.to_string();
                    image.records.iter().any(|rec| rec.name == key)
                });
                let reference = match (target, &typed) {
                    (Some(t), _) => t,
                    (None, Some(r)) => r.clone(),
                    (None, None) => {
                        return Err(ServiceError::InvalidName {
                            name: name2,
                            reason: "an image ID has no repository to push to; give a target name",
                        })
                    }
                };
                // The typed name's own target, else the image's first one.
                let key = typed.map(|r| r.to_string());
                let source_target = image
                    .records
                    .iter()
                    .find(|r| Some(&r.name) == key.as_ref())
                    .map(|r| r.target.clone())
                    .unwrap_or_else(|| image.loaded.target.clone());
                Ok((image, reference, source_target))
            })
            .await?;
        lease.hold(&image.loaded.blobs(), &[]).await;
        lease
            .hold(std::slice::from_ref(&source_target.digest), &[])
            .await;
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
