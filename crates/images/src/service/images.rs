//! Image operations: list, inspect, history, tag, remove, prune.

use std::collections::HashMap;

use crate::metadata::{Metadata, MetadataError};
use crate::reference::Reference;

use super::resolve::{dangling_name, put_name, CatalogImage, DANGLING_PREFIX};
use super::{HistoryEntry, Image, ImageSummary, Inner, PruneReport, RemoveOutcome, ServiceError};

/// Removes `name` from `m` (already checked by the caller).
fn drop_name(m: &mut Metadata, name: &str) -> Result<(), MetadataError> {
    m.remove_image(name, true).map(|_| ())
}

/// After names of a used image went: keeps every target of it that has no name left
/// visible under a dangling name.
fn keep_dangling(m: &mut Metadata, image: &CatalogImage) -> Result<(), MetadataError> {
    for record in &image.records {
        if m.images_by_target(&record.target.digest).next().is_none() {
            m.put_image(
                &dangling_name(&record.target.digest),
                record.target.clone(),
                record.labels.clone(),
            )?;
        }
    }
    Ok(())
}

impl Inner {
    /// [`ImageService::list`](super::ImageService::list).
    pub(crate) fn list(&self) -> Result<Vec<ImageSummary>, ServiceError> {
        let m = self.metadata.read()?;
        let mut cache = HashMap::new();
        let mut out: Vec<ImageSummary> = self
            .catalog(&m)
            .iter()
            .map(|c| {
                let image = self.describe(&m, c, &mut cache);
                ImageSummary {
                    labels: image
                        .config
                        .config
                        .as_ref()
                        .map(|c| c.labels.clone())
                        .unwrap_or_default(),
                    created: image.config.created.clone(),
                    containers: image.containers.len(),
                    id: image.id,
                    repo_tags: image.repo_tags,
                    repo_digests: image.repo_digests,
                    size: image.size,
                    content_size: image.content_size,
                }
            })
            .collect();
        // RFC 3339 times in UTC sort as strings; newest first, as docker lists them.
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// [`ImageService::inspect`](super::ImageService::inspect).
    pub(crate) fn inspect(&self, name: &str) -> Result<Image, ServiceError> {
        let m = self.metadata.read()?;
        let image = self.select(&m, name)?;
        Ok(self.describe(&m, &image, &mut HashMap::new()))
    }

    /// [`ImageService::history`](super::ImageService::history).
    pub(crate) fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, ServiceError> {
        let m = self.metadata.read()?;
        let image = self.select(&m, name)?;
        let loaded = &image.loaded;
        let mut cache = HashMap::new();
        let mut layer = 0usize;
        let mut out: Vec<HistoryEntry> = if loaded.config.history.is_empty() {
            // No history recorded: one anonymous step per layer, as docker shows it.
            loaded
                .config
                .rootfs
                .diff_ids
                .iter()
                .zip(&loaded.chain_ids)
                .map(|(diff_id, chain)| HistoryEntry {
                    created: None,
                    created_by: None,
                    author: None,
                    comment: None,
                    empty_layer: false,
                    diff_id: Some(diff_id.clone()),
                    size: self.layer_usage(chain, &mut cache).unwrap_or(0),
                })
                .collect()
        } else {
            loaded
                .config
                .history_with_layers()
                .into_iter()
                .map(|(h, diff_id)| {
                    let size = match diff_id {
                        Some(_) => {
                            let chain = loaded.chain_ids.get(layer);
                            layer += 1;
                            chain
                                .and_then(|c| self.layer_usage(c, &mut cache))
                                .unwrap_or(0)
                        }
                        None => 0,
                    };
                    HistoryEntry {
                        created: h.created.clone(),
                        created_by: h.created_by.clone(),
                        author: h.author.clone(),
                        comment: h.comment.clone(),
                        empty_layer: h.empty_layer,
                        diff_id: diff_id.cloned(),
                        size,
                    }
                })
                .collect()
        };
        out.reverse();
        Ok(out)
    }

    /// [`ImageService::tag`](super::ImageService::tag).
    pub(crate) fn tag(&self, source: &str, new: &Reference) -> Result<(), ServiceError> {
        if new.digest().is_some() {
            return Err(ServiceError::InvalidName {
                name: new.to_string(),
                reason: "a tag cannot carry a digest",
            });
        }
        if new.familiar_name() == "sha256" {
            return Err(ServiceError::InvalidName {
                name: new.to_string(),
                reason: "a repository named like a digest algorithm is ambiguous with image IDs",
            });
        }
        let name = new.to_string();
        self.metadata.update(|m| {
            let image = self.select(m, source)?;
            let target = image.loaded.target.clone();
            let labels = image
                .records
                .iter()
                .find(|r| r.target.digest == target.digest)
                .map(|r| r.labels.clone())
                .unwrap_or_default();
            put_name(m, &name, &target, labels)?;
            Ok::<_, ServiceError>(())
        })
    }

    /// [`ImageService::remove`](super::ImageService::remove).
    pub(crate) fn remove(&self, s: &str, force: bool) -> Result<Vec<RemoveOutcome>, ServiceError> {
        let outcome = self.metadata.update(|m| self.remove_names(m, s, force))?;
        if outcome
            .iter()
            .any(|o| matches!(o, RemoveOutcome::Deleted(_)))
        {
            self.gc()?;
        }
        Ok(outcome)
    }

    fn remove_names(
        &self,
        m: &mut Metadata,
        s: &str,
        force: bool,
    ) -> Result<Vec<RemoveOutcome>, ServiceError> {
        let image = self.select(m, s)?;
        let users = image.users(m);
        let named: Vec<&str> = image
            .records
            .iter()
            .map(|r| r.name.as_str())
            .filter(|n| !n.starts_with(DANGLING_PREFIX))
            .collect();
        // Removal of one name (a tag or a digest reference) rather than of an image ID.
        let by_name = Reference::parse_normalized(s)
            .ok()
            .map(|r| r.to_string())
            .filter(|k| named.contains(&k.as_str()));
        let mut out = Vec::new();
        if let Some(name) = &by_name {
            let is_tag = Reference::parse_normalized(name).is_ok_and(|r| r.digest().is_none());
            let (tags, _) = image.repo_names();
            let other_tags = tags.iter().filter(|t| *t != name).count();
            let others = named.iter().filter(|n| **n != name).count();
            if (is_tag && other_tags > 0) || (!is_tag && others > 0) {
                drop_name(m, name)?;
                return Ok(vec![RemoveOutcome::Untagged(name.clone())]);
            }
        } else {
            let repositories = image.repositories();
            if repositories.len() > 1 && !force {
                return Err(ServiceError::MultipleRepositories {
                    image: s.to_owned(),
                    repositories,
                });
            }
        }
        // The last tag, or the image by ID: the whole image goes.
        if !users.is_empty() && !force {
            return Err(ServiceError::ImageInUse {
                image: s.to_owned(),
                users,
            });
        }
        for name in &named {
            drop_name(m, name)?;
            out.push(RemoveOutcome::Untagged((*name).to_owned()));
        }
        if users.is_empty() {
            for record in &image.records {
                if record.name.starts_with(DANGLING_PREFIX) {
                    drop_name(m, &record.name)?;
                }
            }
            out.push(RemoveOutcome::Deleted(image.id.clone()));
        } else {
            keep_dangling(m, &image)?;
        }
        Ok(out)
    }

    /// [`ImageService::prune`](super::ImageService::prune).
    pub(crate) fn prune(&self, all: bool) -> Result<PruneReport, ServiceError> {
        let removed = self.metadata.update(|m| {
            let mut out = Vec::new();
            for image in self.catalog(m) {
                if !image.users(m).is_empty() {
                    continue;
                }
                let (tags, _) = image.repo_names();
                if !all && !tags.is_empty() {
                    continue;
                }
                for record in &image.records {
                    drop_name(m, &record.name)?;
                    if !record.name.starts_with(DANGLING_PREFIX) {
                        out.push(RemoveOutcome::Untagged(record.name.clone()));
                    }
                }
                out.push(RemoveOutcome::Deleted(image.id.clone()));
            }
            Ok::<_, ServiceError>(out)
        })?;
        let gc = self.gc()?;
        Ok(PruneReport {
            removed,
            space_reclaimed: gc.bytes_freed,
        })
    }
}
