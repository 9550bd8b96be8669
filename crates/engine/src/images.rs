//! Image operations: the engine's narrow view of `berth-images`.

use std::path::PathBuf;
use std::sync::Arc;

use berth_images::archive::LoadOptions;
use berth_images::progress::NoProgress;
use berth_images::reference::Reference;
use berth_images::service::{HistoryEntry, Image, ImageSummary, LoadSource, RemoveOutcome};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::events::Event;

fn not_found(name: &str, e: berth_images::service::ServiceError) -> EngineError {
    if berth_errdefs::HasKind::kind(&e) == berth_errdefs::ErrorKind::NotFound {
        EngineError::NoSuchImage(name.to_owned())
    } else {
        e.into()
    }
}

impl Engine {
    /// Every image.
    pub async fn list_images(&self) -> Result<Vec<ImageSummary>> {
        Ok(self.inner.images.list().await?)
    }

    /// One image by reference or ID.
    pub async fn inspect_image(&self, name: &str) -> Result<Image> {
        self.inner
            .images
            .inspect(name)
            .await
            .map_err(|e| not_found(name, e))
    }

    /// An image's history, newest first.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.inner
            .images
            .history(name)
            .await
            .map_err(|e| not_found(name, e))
    }

    /// Names image `source` `target` (`repo[:tag]`).
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let r = Reference::parse_normalized(target).map_err(|e| {
            EngineError::InvalidArgument(format!("invalid reference format: {target}: {e}"))
        })?;
        self.inner
            .images
            .tag(source, &r)
            .await
            .map_err(|e| not_found(source, e))?;
        self.emit(Event::new(
            "image",
            "tag",
            source,
            vec![("name".into(), target.to_owned())],
        ));
        Ok(())
    }

    /// Removes image `name` (`docker rmi`).
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<RemoveOutcome>> {
        let out = self
            .inner
            .images
            .remove(name, force)
            .await
            .map_err(|e| not_found(name, e))?;
        for o in &out {
            match o {
                RemoveOutcome::Untagged(n) => self.emit(Event::new("image", "untag", n, vec![])),
                RemoveOutcome::Deleted(d) => {
                    self.emit(Event::new("image", "delete", &d.to_string(), vec![]))
                }
            }
        }
        Ok(out)
    }

    /// Loads the archive at `path` (`docker load`); returns the names and IDs loaded.
    pub async fn load_images(&self, path: PathBuf) -> Result<Vec<(Vec<String>, String)>> {
        let report = self
            .inner
            .images
            .load(
                LoadSource::Path(path),
                LoadOptions::default(),
                Arc::new(NoProgress),
            )
            .await?;
        let mut out = Vec::new();
        for img in report.images {
            let id = img.config.to_string();
            self.emit(Event::new("image", "load", &id, vec![]));
            out.push((img.names, id));
        }
        Ok(out)
    }
}

impl Engine {
    /// Writes a docker-archive of `names` into a temporary file (`docker save`).
    pub async fn save_images(&self, names: Vec<String>) -> Result<std::fs::File> {
        use std::io::Seek;
        let tmp = self.inner.config.root.join("tmp");
        let f = tempfile::tempfile_in(&tmp)
            .map_err(|e| EngineError::io("create a spool file", &tmp, e))?;
        let w = f.try_clone().map_err(|e| EngineError::io("dup", &tmp, e))?;
        for n in &names {
            self.inspect_image(n).await?;
        }
        self.inner
            .images
            .save(
                &names,
                berth_images::service::SaveTarget::DockerArchive(Box::new(
                    std::io::BufWriter::new(w),
                )),
                berth_images::archive::SaveOptions::default(),
                Arc::new(NoProgress),
            )
            .await?;
        let mut f = f;
        f.rewind().map_err(|e| EngineError::io("rewind", &tmp, e))?;
        Ok(f)
    }

    /// Makes an image of a root filesystem tar (`docker import`); returns its ID.
    pub async fn import_image(
        &self,
        archive: std::fs::File,
        reference: Option<String>,
        message: Option<String>,
    ) -> Result<String> {
        let name = match reference.filter(|r| !r.is_empty()) {
            Some(r) => Some(Reference::parse_normalized(&r).map_err(|e| {
                EngineError::InvalidArgument(format!("invalid reference format: {r}: {e}"))
            })?),
            None => None,
        };
        let options = berth_images::archive::ImportOptions {
            name,
            message,
            ..berth_images::archive::ImportOptions::default()
        };
        let img = self
            .inner
            .images
            .import(
                Box::new(std::io::BufReader::new(archive)),
                options,
                Arc::new(NoProgress),
            )
            .await?;
        let id = img.id.to_string();
        self.emit(Event::new("image", "import", &id, vec![]));
        Ok(id)
    }
}
