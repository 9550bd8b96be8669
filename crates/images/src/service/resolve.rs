//! Finding images: names and image IDs to the documents in the content store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::content::{ContentError, ContentStore};
use crate::digest::{Algorithm, Digest};
use crate::manifest::{
    check_image, parse_any, select_manifest, Document, ImageConfig, Index, Manifest, Platform,
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::metadata::{ImageRecord, Metadata, MetadataError, Target};
use crate::reference::Reference;
use crate::snapshot::Snapshotter;

use super::{Image, Inner, LayerInfo, ServiceError};

/// Prefix of the names that keep nameless images visible (docker's `<none>:<none>`).
pub(crate) const DANGLING_PREFIX: &str = "<none>@";
/// Label on names whose target is an index: the platform manifest that was unpacked.
pub(crate) const LABEL_MANIFEST: &str = "io.berth.image.manifest";

/// The chain IDs of layers with `diff_ids` (image-spec: `ChainID(L1) = DiffID(L1)`,
/// `ChainID(L1..Ln) = sha256(ChainID(L1..Ln-1) + " " + DiffID(Ln))`).
pub(crate) fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::sha256_of(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The name that keeps the nameless target `digest` visible.
pub(crate) fn dangling_name(digest: &Digest) -> String {
    format!("{DANGLING_PREFIX}{digest}")
}

/// Points `name` at `target`. If that moves the name away from another target left
/// without any name, that target keeps a dangling name (as docker's `<none>` images);
/// a dangling name of `target` itself goes, since it is named now.
pub(crate) fn put_name(
    m: &mut Metadata,
    name: &str,
    target: &Target,
    labels: BTreeMap<String, String>,
) -> Result<(), MetadataError> {
    if let Some(old) = m.put_image(name, target.clone(), labels)? {
        if old.target.digest != target.digest
            && m.images_by_target(&old.target.digest).next().is_none()
        {
            m.put_image(&dangling_name(&old.target.digest), old.target, old.labels)?;
        }
    }
    let dangling = dangling_name(&target.digest);
    if name != dangling && m.image(&dangling).is_some() {
        m.remove_image(&dangling, true)?;
    }
    Ok(())
}

/// An image's documents, read from the content store.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// What the name points to.
    pub target: Target,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The platform manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
    /// One chain ID per layer.
    pub chain_ids: Vec<Digest>,
}

impl Loaded {
    /// The image ID.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }

    /// The digests of every blob this image needs: target, manifest, config, layers.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut out = vec![
            self.target.digest.clone(),
            self.manifest_digest.clone(),
            self.manifest.config.digest.clone(),
        ];
        out.extend(self.manifest.layers.iter().map(|l| l.digest.clone()));
        out
    }
}

/// All names of one image ID, with its documents.
#[derive(Debug, Clone)]
pub(crate) struct CatalogImage {
    /// The image ID.
    pub id: Digest,
    /// Every name (dangling ones included) of every target with this image ID.
    pub records: Vec<ImageRecord>,
    /// The documents (of the first target).
    pub loaded: Loaded,
    /// Every target digest naming this image.
    pub targets: BTreeSet<Digest>,
}

impl CatalogImage {
    /// (tags, digest references), sorted.
    pub fn repo_names(&self) -> (Vec<String>, Vec<String>) {
        let mut tags = Vec::new();
        let mut digests = Vec::new();
        for rec in &self.records {
            if rec.name.starts_with(DANGLING_PREFIX) {
                continue;
            }
            match Reference::parse_normalized(&rec.name) {
                Ok(r) => match r.digest() {
                    Some(d) => digests.push(format!("{}@{d}", r.name())),
                    None => tags.push(r.to_string()),
                },
                Err(_) => tags.push(rec.name.clone()),
            }
        }
        tags.sort();
        tags.dedup();
        digests.sort();
        digests.dedup();
        (tags, digests)
    }

    /// The distinct repositories of its tags and digest references.
    pub fn repositories(&self) -> Vec<String> {
        let mut repos: Vec<String> = self
            .records
            .iter()
            .filter(|r| !r.name.starts_with(DANGLING_PREFIX))
            .filter_map(|r| Reference::parse_normalized(&r.name).ok())
            .map(|r| r.name())
            .collect();
        repos.sort();
        repos.dedup();
        repos
    }

    /// The containers using this image, sorted.
    pub fn users(&self, m: &Metadata) -> Vec<String> {
        let mut users: Vec<String> = self.targets.iter().flat_map(|t| m.image_users(t)).collect();
        users.sort();
        users.dedup();
        users
    }
}

/// Whether `s` can be (a prefix of) the hex of an image ID.
fn id_prefix(s: &str) -> Option<&str> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    let ok = !hex.is_empty()
        && hex.len() <= Algorithm::Sha256.hex_len()
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

impl Inner {
    /// Reads a document blob of `image`, bounded by `max`.
    pub(crate) fn read_document(
        &self,
        image: &str,
        what: &'static str,
        digest: &Digest,
        max: usize,
    ) -> Result<Vec<u8>, ServiceError> {
        match self.content.read_to_vec(digest, max as u64) {
            Ok(bytes) => Ok(bytes),
            Err(ContentError::NotFound { .. }) => Err(ServiceError::DocumentMissing {
                image: image.to_owned(),
                what,
                digest: digest.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The manifest of `index` to use: the one named by the `hint` label if stored,
    /// else the best stored one for this host, else the first stored one.
    fn pick_from_index(&self, index: &Index, hint: Option<&str>) -> Option<Digest> {
        let stored: Vec<_> = index
            .manifests
            .iter()
            .filter(|d| self.content.info(&d.digest).ok().flatten().is_some())
            .cloned()
            .collect();
        if let Some(hint) = hint.and_then(|h| Digest::parse(h).ok()) {
            if stored.iter().any(|d| d.digest == hint) {
                return Some(hint);
            }
        }
        let narrowed = Index {
            manifests: stored.clone(),
            ..index.clone()
        };
        match select_manifest(&narrowed, &Platform::host()) {
            Ok(d) => Some(d.digest.clone()),
            Err(_) => stored.first().map(|d| d.digest.clone()),
        }
    }

    /// Reads the documents of the image `record` names.
    pub(crate) fn load(&self, record: &ImageRecord) -> Result<Loaded, ServiceError> {
        let name = record.name.as_str();
        let target = &record.target;
        let manifest_error = |source| ServiceError::Manifest {
            reference: name.to_owned(),
            source,
        };
        let bytes = self.read_document(name, "manifest", &target.digest, MAX_MANIFEST_SIZE)?;
        let (manifest_digest, manifest) =
            match parse_any(&bytes, Some(&target.media_type)).map_err(manifest_error)? {
                Document::Manifest(m) => (target.digest.clone(), *m),
                Document::Index(index) => {
                    let hint = record.labels.get(LABEL_MANIFEST).map(String::as_str);
                    let digest = self.pick_from_index(&index, hint).ok_or_else(|| {
                        ServiceError::DocumentMissing {
                            image: name.to_owned(),
                            what: "platform manifest",
                            digest: target.digest.clone(),
                        }
                    })?;
                    let bytes = self.read_document(name, "manifest", &digest, MAX_MANIFEST_SIZE)?;
                    let m = match parse_any(&bytes, None).map_err(manifest_error)? {
                        Document::Manifest(m) => *m,
                        Document::Index(_) => {
                            return Err(manifest_error(
                                crate::manifest::ManifestError::UnexpectedKind {
                                    expected: "image manifest",
                                    found: "index",
                                },
                            ))
                        }
                    };
                    (digest, m)
                }
            };
        manifest.validate_image().map_err(manifest_error)?;
        let config_bytes =
            self.read_document(name, "config", &manifest.config.digest, MAX_CONFIG_SIZE)?;
        let config = ImageConfig::parse(&config_bytes).map_err(manifest_error)?;
        check_image(&manifest, &config).map_err(manifest_error)?;
        let chain_ids = chain_ids(&config.rootfs.diff_ids);
        Ok(Loaded {
            target: target.clone(),
            manifest_digest,
            manifest,
            config,
            chain_ids,
        })
    }

    /// Every named image, grouped by image ID. Images whose documents cannot be read
    /// are left out (and logged): one broken image does not hide the others.
    pub(crate) fn catalog(&self, m: &Metadata) -> Vec<CatalogImage> {
        let mut by_target: HashMap<Digest, Option<Loaded>> = HashMap::new();
        let mut by_id: BTreeMap<Digest, CatalogImage> = BTreeMap::new();
        for record in m.images() {
            let loaded = by_target
                .entry(record.target.digest.clone())
                .or_insert_with(|| match self.load(record) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        tracing::warn!(name = %record.name, error = %e, "unreadable image");
                        None
                    }
                });
            let Some(loaded) = loaded else { continue };
            let entry = by_id
                .entry(loaded.id().clone())
                .or_insert_with(|| CatalogImage {
                    id: loaded.id().clone(),
                    records: Vec::new(),
                    loaded: loaded.clone(),
                    targets: BTreeSet::new(),
                });
            entry.records.push(record.clone());
            entry.targets.insert(record.target.digest.clone());
        }
        by_id.into_values().collect()
    }

    /// The image `s` names: a reference (`busybox`, `busybox@sha256:…`), or an image ID
    /// (`sha256:<hex>`, `<hex>`, or a unique prefix of the hex).
    pub(crate) fn select(&self, m: &Metadata, s: &str) -> Result<CatalogImage, ServiceError> {
        let catalog = self.catalog(m);
        if let Ok(reference) = Reference::parse_normalized(s) {
            let key = reference.to_string();
            let by_name = catalog.iter().find(|c| {
                c.records.iter().any(|r| {
                    r.name == key
                        || reference.digest().is_some_and(|d| {
                            r.target.digest == *d
                                && Reference::parse_normalized(&r.name)
                                    .is_ok_and(|other| other.name() == reference.name())
                        })
                })
            });
            if let Some(found) = by_name {
                return Ok(found.clone());
            }
        }
        if let Some(hex) = id_prefix(s) {
            let mut found = catalog
                .into_iter()
                .filter(|c| c.id.algorithm() == Algorithm::Sha256 && c.id.hex().starts_with(hex));
            return match (found.next(), found.next()) {
                (Some(one), None) => Ok(one),
                (Some(_), Some(_)) => Err(ServiceError::AmbiguousImageId(s.to_owned())),
                (None, _) => Err(ServiceError::ImageNotFound(s.to_owned())),
            };
        }
        Err(ServiceError::ImageNotFound(s.to_owned()))
    }

    /// The unpacked size of each chain ID's own layer, cached in `cache`.
    pub(crate) fn layer_usage(
        &self,
        chain_id: &Digest,
        cache: &mut HashMap<Digest, Option<u64>>,
    ) -> Option<u64> {
        *cache.entry(chain_id.clone()).or_insert_with(|| {
            match self.snapshots.usage(&chain_id.to_string()) {
                Ok(u) => Some(u.size),
                Err(_) => None,
            }
        })
    }

    /// The [`Image`] of a catalog entry.
    pub(crate) fn describe(
        &self,
        m: &Metadata,
        image: &CatalogImage,
        cache: &mut HashMap<Digest, Option<u64>>,
    ) -> Image {
        let loaded = &image.loaded;
        let (repo_tags, repo_digests) = image.repo_names();
        let layers: Vec<LayerInfo> = loaded
            .manifest
            .layers
            .iter()
            .zip(&loaded.config.rootfs.diff_ids)
            .zip(&loaded.chain_ids)
            .map(|((desc, diff_id), chain_id)| LayerInfo {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
                unpacked_size: self.layer_usage(chain_id, cache),
            })
            .collect();
        let size = layers
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.unpacked_size.unwrap_or(0)));
        let content_size = loaded
            .manifest
            .layers_size()
            .saturating_add(loaded.manifest.config.size);
        let config = &loaded.config;
        Image {
            id: image.id.clone(),
            repo_tags,
            repo_digests,
            target: loaded.target.clone(),
            manifest_digest: loaded.manifest_digest.clone(),
            manifest: loaded.manifest.clone(),
            config: config.clone(),
            platform: Platform::new(&config.os, &config.architecture, config.variant.as_deref()),
            layers,
            size,
            content_size,
            containers: image.users(m),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = Digest::sha256_of(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = Digest::sha256_of(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], Digest::sha256_of(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn id_prefixes() {
        assert_eq!(id_prefix("sha256:abc"), Some("abc"));
        assert_eq!(id_prefix("abc123"), Some("abc123"));
        assert_eq!(id_prefix("busybox"), None);
        assert_eq!(id_prefix("ABC"), None);
        assert_eq!(id_prefix(""), None);
        assert_eq!(id_prefix(&"a".repeat(65)), None);
    }

    #[test]
    fn moving_the_last_name_leaves_a_dangling_name() {
        let t = |s: &[u8]| Target {
            media_type: crate::manifest::media_type::OCI_MANIFEST.into(),
            digest: Digest::sha256_of(s),
            size: 1,
        };
        let mut m = Metadata::default();
        put_name(&mut m, "r:1", &t(b"old"), BTreeMap::new()).unwrap();
        put_name(&mut m, "r:1", &t(b"new"), BTreeMap::new()).unwrap();
        let dangling = dangling_name(&t(b"old").digest);
        assert!(m.image(&dangling).is_some());
        // Naming the old target again removes its dangling name.
        put_name(&mut m, "r:2", &t(b"old"), BTreeMap::new()).unwrap();
        assert!(m.image(&dangling).is_none());
        assert_eq!(m.images().count(), 2);
    }
}
