//! Garbage collection and disk usage.
//!
//! `gc` is mark and sweep under the exclusive gc lock (see invariant 3 of the
//! [service docs](super)):
//!
//! 1. **Roots**: every named target, every target with users, and every lease.
//! 2. **Mark**: a root index marks its stored child manifests; a manifest marks its
//!    config and layers, and the chain IDs of its config's diff IDs; snapshots of
//!    containers and leased snapshots are kept; every kept snapshot keeps its parents.
//! 3. **Sweep**: unmarked snapshots are removed children first, unmarked blobs deleted,
//!    and partial downloads older than the configured age removed.

use std::collections::{HashMap, HashSet};

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::manifest::{parse_any, Document, ImageConfig, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::snapshot::{Info, Kind, Snapshotter};

use super::resolve::chain_ids;
use super::{
    ContainerUsage, DiskUsage, GcReport, ImageUsage, Inner, ServiceError, CONTAINER_PREFIX,
};

/// Deepest index nesting followed when marking.
const MAX_DEPTH: usize = 4;

/// What the mark phase keeps.
#[derive(Default)]
struct Marks {
    blobs: HashSet<Digest>,
    walked: HashSet<Digest>,
    snapshots: HashSet<String>,
}

impl Inner {
    fn mark(&self, digest: &Digest, marks: &mut Marks, depth: usize) {
        marks.blobs.insert(digest.clone());
        if depth > MAX_DEPTH || !marks.walked.insert(digest.clone()) {
            return;
        }
        let Ok(bytes) = self.content.read_to_vec(digest, MAX_MANIFEST_SIZE as u64) else {
            return;
        };
        match parse_any(&bytes, None) {
            Ok(Document::Index(index)) => {
                for child in &index.manifests {
                    if self.content.info(&child.digest).ok().flatten().is_some() {
                        self.mark(&child.digest, marks, depth + 1);
                    }
                }
            }
            Ok(Document::Manifest(manifest)) => {
                marks.blobs.insert(manifest.config.digest.clone());
                for layer in &manifest.layers {
                    marks.blobs.insert(layer.digest.clone());
                }
                let config = self
                    .content
                    .read_to_vec(&manifest.config.digest, MAX_CONFIG_SIZE as u64)
                    .ok()
                    .and_then(|b| ImageConfig::parse(&b).ok());
                if let Some(config) = config {
                    for chain in chain_ids(&config.rootfs.diff_ids) {
                        marks.snapshots.insert(chain.to_string());
                    }
                }
            }
            Err(_) => {}
        }
    }

    /// [`ImageService::gc`](super::ImageService::gc).
    pub(crate) fn gc(&self) -> Result<GcReport, ServiceError> {
        let _gc = self.gc_lock.blocking_write();
        let m = self.metadata.read()?;
        let mut marks = Marks::default();
        {
            let leases = self
                .leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            marks.blobs.extend(leases.digests.keys().cloned());
            marks.snapshots.extend(leases.snapshots.keys().cloned());
        }
        for root in m.gc_roots() {
            self.mark(&root, &mut marks, 0);
        }

        let mut records: Vec<Info> = Vec::new();
        self.snapshots
            .walk(&mut |info| records.push(info.clone()))?;
        let parents: HashMap<&str, Option<&str>> = records
            .iter()
            .map(|i| (i.name.as_str(), i.parent.as_deref()))
            .collect();
        let mut keep: HashSet<String> = marks.snapshots;
        keep.extend(
            records
                .iter()
                .filter(|i| i.name.starts_with(CONTAINER_PREFIX))
                .map(|i| i.name.clone()),
        );
        let mut stack: Vec<String> = keep.iter().cloned().collect();
        while let Some(key) = stack.pop() {
            if let Some(Some(parent)) = parents.get(key.as_str()) {
                if keep.insert((*parent).to_owned()) {
                    stack.push((*parent).to_owned());
                }
            }
        }
        // Children before parents: deepest first.
        let depth = |name: &str| {
            let mut d = 0usize;
            let mut cur = parents.get(name).copied().flatten();
            while let Some(p) = cur {
                d += 1;
                if d > records.len() {
                    break;
                }
                cur = parents.get(p).copied().flatten();
            }
            d
        };
        let mut doomed: Vec<(usize, &str)> = records
            .iter()
            .filter(|i| !keep.contains(&i.name))
            .map(|i| (depth(&i.name), i.name.as_str()))
            .collect();
        doomed.sort_by_key(|d| std::cmp::Reverse(d.0));

        let mut report = GcReport::default();
        for (_, key) in doomed {
            let size = self.snapshots.usage(key).map(|u| u.size).unwrap_or(0);
            match self.snapshots.remove(key) {
                Ok(()) => {
                    report.snapshots_removed += 1;
                    report.bytes_freed = report.bytes_freed.saturating_add(size);
                }
                Err(e) => tracing::warn!(key, error = %e, "gc: cannot remove snapshot"),
            }
        }

        let mut blobs = Vec::new();
        self.content.walk(&mut |info| blobs.push(info))?;
        for blob in blobs {
            if marks.blobs.contains(&blob.digest) {
                continue;
            }
            match self.content.delete(&blob.digest) {
                Ok(()) => {
                    report.blobs_removed += 1;
                    report.bytes_freed = report.bytes_freed.saturating_add(blob.size);
                }
                Err(e) => {
                    tracing::warn!(digest = %blob.digest, error = %e, "gc: cannot delete blob")
                }
            }
        }
        report.ingests_removed = self.content.clean_stale_ingests(self.stale_ingest_age)?;
        tracing::info!(?report, "garbage collected");
        Ok(report)
    }

    /// [`ImageService::disk_usage`](super::ImageService::disk_usage).
    pub(crate) fn disk_usage(&self) -> Result<DiskUsage, ServiceError> {
        let m = self.metadata.read()?;
        let catalog = self.catalog(&m);
        let mut cache = HashMap::new();
        let mut chain_refs: HashMap<&Digest, usize> = HashMap::new();
        for image in &catalog {
            for chain in &image.loaded.chain_ids {
                *chain_refs.entry(chain).or_insert(0) += 1;
            }
        }
        let mut images = Vec::with_capacity(catalog.len());
        for image in &catalog {
            let described = self.describe(&m, image, &mut cache);
            let shared_size = described
                .layers
                .iter()
                .filter(|l| chain_refs.get(&l.chain_id).copied().unwrap_or(0) > 1)
                .fold(0u64, |a, l| a.saturating_add(l.unpacked_size.unwrap_or(0)));
            images.push(ImageUsage {
                id: described.id,
                repo_tags: described.repo_tags,
                size: described.size,
                shared_size,
                containers: described.containers.len(),
            });
        }
        let mut records: Vec<Info> = Vec::new();
        self.snapshots
            .walk(&mut |info| records.push(info.clone()))?;
        let mut layers_size = 0u64;
        let mut containers = Vec::new();
        for info in &records {
            if info.kind == Kind::Committed {
                let size = self
                    .snapshots
                    .usage(&info.name)
                    .map(|u| u.size)
                    .unwrap_or(0);
                layers_size = layers_size.saturating_add(size);
            } else if let Some(id) = info.name.strip_prefix(CONTAINER_PREFIX) {
                let size = self
                    .snapshots
                    .usage(&info.name)
                    .map(|u| u.size)
                    .unwrap_or(0);
                let image = catalog
                    .iter()
                    .find(|c| c.users(&m).iter().any(|u| u == id))
                    .map(|c| c.id.clone());
                containers.push(ContainerUsage {
                    container_id: id.to_owned(),
                    image,
                    size,
                });
            }
        }
        Ok(DiskUsage {
            images,
            layers_size,
            content_size: self.content.usage()?,
            containers,
        })
    }
}
