//! Pulling an image from a registry (see the module docs of [`service`](super)).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::{
    check_image, parse_any, select_manifest, Descriptor, Document, ImageConfig, ManifestError,
    Platform, MAX_CONFIG_SIZE,
};
use crate::metadata::Target;
use crate::progress::{NoProgress, ProgressSink};
use crate::reference::Reference;
use crate::registry::{ManifestRef, Repository};

use super::resolve::{chain_ids, put_name, LABEL_MANIFEST};
use super::{Image, Inner, Lease, ServiceError};

/// The names a pull of `reference` records for `target`: the tag and the repo digest,
/// or only the digest reference when pulled by digest (as docker does).
fn names_for(reference: &Reference, target: &Digest) -> Vec<String> {
    match reference.digest() {
        Some(_) => vec![reference.pinned(target.clone()).to_string()],
        None => vec![
            reference.to_string(),
            reference.pinned(target.clone()).to_string(),
        ],
    }
}

impl Inner {
    /// The config blob: from the store if there, else from the registry (verified).
    async fn fetch_config(
        self: &Arc<Self>,
        repo: &Repository,
        desc: &Descriptor,
        shown: &str,
    ) -> Result<Bytes, ServiceError> {
        let digest = desc.digest.clone();
        let stored = self
            .run_blocking(move |inner| {
                if inner.has_blob(&digest)? {
                    Ok(Some(
                        inner.content.read_to_vec(&digest, MAX_CONFIG_SIZE as u64)?,
                    ))
                } else {
                    Ok(None)
                }
            })
            .await?;
        if let Some(bytes) = stored {
            return Ok(Bytes::from(bytes));
        }
        if desc.size > MAX_CONFIG_SIZE as u64 {
            return Err(ServiceError::Manifest {
                reference: shown.to_owned(),
                source: ManifestError::TooLarge {
                    what: "image config",
                    size: desc.size,
                    max: MAX_CONFIG_SIZE as u64,
                },
            });
        }
        let registry_err = |source| ServiceError::Registry {
            reference: shown.to_owned(),
            source: Box::new(source),
        };
        let bytes = self
            .client
            .fetch_blob(repo, &desc.digest, desc.size, Arc::new(NoProgress))
            .await
            .map_err(registry_err)?
            .collect()
            .await
            .map_err(registry_err)?;
        if bytes.len() as u64 != desc.size {
            return Err(ServiceError::DescriptorSize {
                reference: shown.to_owned(),
                what: "config",
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// [`ImageService::pull`](super::ImageService::pull).
    pub(crate) async fn pull(
        self: Arc<Self>,
        reference: Reference,
        platform: Platform,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Image, ServiceError> {
        let shown = reference.to_string();
        let registry_err = |source| ServiceError::Registry {
            reference: shown.clone(),
            source: Box::new(source),
        };
        let manifest_err = |source| ServiceError::Manifest {
            reference: shown.clone(),
            source,
        };
        let repo = Repository::from_reference(&reference).map_err(registry_err)?;
        let lease = Arc::new(Lease::new(&self));
        // Snapshots of pulls interrupted earlier in this process.
        self.run_blocking(|inner| inner.clean_unleased_extracts())
            .await?;

        // 1. The manifest, narrowed to the platform.
        let top = self
            .client
            .get_manifest(&repo, &ManifestRef::from_reference(&reference))
            .await
            .map_err(registry_err)?;
        lease.hold(std::slice::from_ref(&top.digest), &[]).await;
        let document = parse_any(&top.bytes, top.media_type.as_deref()).map_err(manifest_err)?;
        let target = Target {
            media_type: document.media_type().to_owned(),
            digest: top.digest.clone(),
            size: top.bytes.len() as u64,
        };
        let mut documents: Vec<(Digest, Bytes)> = vec![(top.digest.clone(), top.bytes.clone())];
        let (manifest_digest, manifest) = match document {
            Document::Manifest(m) => (top.digest.clone(), *m),
            Document::Index(index) => {
                let desc = select_manifest(&index, &platform)
                    .map_err(manifest_err)?
                    .clone();
                lease.hold(std::slice::from_ref(&desc.digest), &[]).await;
                let child = self
                    .client
                    .get_manifest(&repo, &ManifestRef::Digest(desc.digest.clone()))
                    .await
                    .map_err(registry_err)?;
                if child.bytes.len() as u64 != desc.size {
                    return Err(ServiceError::DescriptorSize {
                        reference: shown.clone(),
                        what: "manifest",
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: child.bytes.len() as u64,
                    });
                }
                let content_type = child.media_type.as_deref().or(Some(&desc.media_type));
                let m = match parse_any(&child.bytes, content_type).map_err(manifest_err)? {
                    Document::Manifest(m) => *m,
                    Document::Index(_) => {
                        return Err(manifest_err(ManifestError::UnexpectedKind {
                            expected: "image manifest",
                            found: "index",
                        }))
                    }
                };
                documents.push((desc.digest.clone(), child.bytes));
                (desc.digest, m)
            }
        };
        manifest.validate_image().map_err(manifest_err)?;

        // 2. The config.
        lease
            .hold(std::slice::from_ref(&manifest.config.digest), &[])
            .await;
        let config_bytes = self.fetch_config(&repo, &manifest.config, &shown).await?;
        let config = ImageConfig::parse(&config_bytes).map_err(manifest_err)?;
        check_image(&manifest, &config).map_err(manifest_err)?;
        documents.push((manifest.config.digest.clone(), config_bytes));
        let chains = chain_ids(&config.rootfs.diff_ids);

        // 3–4. The layers.
        self.unpack_layers(
            Some(&repo),
            &manifest,
            &config.rootfs.diff_ids,
            &chains,
            &lease,
            &progress,
        )
        .await?;

        // 5. Documents, then names: only now does the image become visible.
        let names = names_for(&reference, &target.digest);
        let mut labels = BTreeMap::new();
        if manifest_digest != target.digest {
            labels.insert(LABEL_MANIFEST.to_owned(), manifest_digest.to_string());
        }
        let image = self
            .run_blocking(move |inner| {
                for (digest, bytes) in &documents {
                    inner.content.put_verified(digest, bytes)?;
                }
                inner.metadata.update(|m| {
                    for name in &names {
                        put_name(m, name, &target, labels.clone())?;
                    }
                    Ok::<_, ServiceError>(())
                })?;
                let m = inner.metadata.read()?;
                let first = names.first().map(String::as_str).unwrap_or_default();
                let image = inner.select(&m, first)?;
                Ok(inner.describe(&m, &image, &mut HashMap::new()))
            })
            .await?;
        drop(lease);
        tracing::info!(reference = %shown, id = %image.id, "pulled");
        Ok(image)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pulls_record_tag_and_repo_digest() {
        let d = Digest::sha256_of(b"m");
        let r = Reference::parse_normalized("localhost:5000/a/b:1").unwrap();
        assert_eq!(
            names_for(&r, &d),
            vec![
                "localhost:5000/a/b:1".to_owned(),
                format!("localhost:5000/a/b@{d}")
            ]
        );
        let r = Reference::parse_normalized(&format!("busybox@{d}")).unwrap();
        assert_eq!(
            names_for(&r, &d),
            vec![format!("docker.io/library/busybox@{d}")]
        );
    }
}
