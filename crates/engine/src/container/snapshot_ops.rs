//! `commit`, `export` and `diff`: a container's root filesystem as an image, a tar, or
//! a list of changes.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use crate::engine::{unmount_all, Engine};
use crate::error::{EngineError, Result};

/// One change of a container's filesystem (`docker diff`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path inside.
    pub path: String,
    /// 0 modified, 1 added, 2 deleted (Docker's `Kind`).
    pub kind: u8,
}

/// What `commit` needs beyond the container.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `repo[:tag]` to name the image.
    pub reference: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Container defaults replacing the container's (`--change` applied by the client).
    pub config: Option<crate::model::ContainerConfig>,
    /// Freeze the container while committing (default true).
    pub pause: bool,
}

fn to_image_config(c: &crate::model::ContainerConfig) -> berth_images::manifest::ContainerConfig {
    let v = serde_json::json!({
        "User": c.user, "Env": c.env, "Entrypoint": c.entrypoint, "Cmd": c.cmd,
        "WorkingDir": c.working_dir, "Labels": c.labels, "ExposedPorts": c.exposed_ports,
        "Volumes": c.volumes, "StopSignal": c.stop_signal,
    });
    serde_json::from_value(v).unwrap_or_default()
}

impl Engine {
    /// Makes an image of container `key`'s changes (`docker commit`).
    pub async fn commit_container(&self, key: &str, req: CommitRequest) -> Result<String> {
        let h = self.lookup(key)?;
        let rec = h.record();
        let running = rec.state.status == crate::model::Status::Running;
        let rt = berth_runtime::Runtime::new(&self.inner.runtime_root);
        let frozen = running && req.pause && rt.pause(&rec.id).is_ok();
        let reference = match req.reference.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => Some(
                berth_images::reference::Reference::parse_normalized(r).map_err(|e| {
                    EngineError::InvalidArgument(format!("invalid reference format: {r}: {e}"))
                })?,
            ),
            None => None,
        };
        let config = req.config.as_ref().unwrap_or(&rec.config);
        let mut argv = vec![rec.path.clone()];
        argv.extend(rec.args.iter().cloned());
        let opts = berth_images::service::CommitOptions {
            reference,
            author: req.author.filter(|a| !a.is_empty()),
            comment: req.comment.filter(|c| !c.is_empty()),
            created_by: Some(argv.join(" ")),
            config: Some(to_image_config(config)),
        };
        let result = self.inner.images.commit_container(&rec.id, opts).await;
        if frozen {
            let _ = rt.resume(&rec.id);
        }
        let img = result?;
        self.container_event(&rec, "commit", &[]);
        Ok(img.id.to_string())
    }

    /// Runs `f` on container `key`'s root filesystem, mounted for the time it runs if
    /// the container is stopped.
    async fn with_rootfs<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&Path, Option<PathBuf>, Vec<std::os::fd::OwnedFd>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let rec = self.lookup(key)?.record();
        let dir = self.rootfs_dir(&rec.id);
        let mounts = self.inner.images.rootfs_mounts(&rec.id).await?;
        let upper = berth_images::snapshot::writable_dir(&mounts);
        let lowers = lower_dirs(&mounts);
        let running = rec.state.status.is_running();
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || {
            if !running {
                crate::engine::mount_rootfs(&id, &mounts, &dir)?;
            }
            let r = f(&dir, upper, lowers);
            if !running {
                let _ = unmount_all(&dir);
            }
            r
        })
        .await?
    }

    /// The whole root filesystem of container `key` as a tar in a temporary file
    /// (`docker export`).
    pub async fn export_container(&self, key: &str) -> Result<std::fs::File> {
        let tmp = self.inner.config.root.join("tmp");
        self.with_rootfs(key, move |root, _, _| {
            let f = tempfile::tempfile_in(&tmp)
                .map_err(|e| EngineError::io("create a spool file", &tmp, e))?;
            let mut w = std::io::BufWriter::new(f);
            berth_images::archive::export(root, &mut w)
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
            let mut f = w
                .into_inner()
                .map_err(|e| EngineError::io("export", root, e.into_error()))?;
            f.flush().map_err(|e| EngineError::io("export", root, e))?;
            f.rewind().map_err(|e| EngineError::io("export", root, e))?;
            Ok(f)
        })
        .await
    }

    /// The changes of container `key` against its image (`docker diff`).
    pub async fn container_changes(&self, key: &str) -> Result<Vec<Change>> {
        self.with_rootfs(key, |_, upper, lowers| {
            let Some(upper) = upper else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            walk(&upper, &upper, &lowers, &mut out, 0);
            out.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(out)
        })
        .await
    }
}

/// Walks the overlay's upper directory: a whiteout (0:0 character device) is a
/// deletion; an entry some lower layer has is a modification, else an addition.
fn walk(
    upper: &Path,
    dir: &Path,
    lowers: &[std::os::fd::OwnedFd],
    out: &mut Vec<Change>,
    depth: usize,
) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if depth > 256 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(rel) = p.strip_prefix(upper) else {
            continue;
        };
        let inside = format!("/{}", rel.display());
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(Change {
                path: inside,
                kind: 2,
            });
            continue;
        }
        let kind = if lowers.iter().any(|l| exists_in(l, rel)) {
            0
        } else {
            1
        };
        out.push(Change { path: inside, kind });
        if md.is_dir() {
            walk(upper, &p, lowers, out, depth + 1);
        }
    }
}

/// Whether layer directory `root` holds `rel` (resolved inside it, never followed out).
fn exists_in(root: &std::os::fd::OwnedFd, rel: &Path) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    )
    .is_ok()
}

/// The lower layer directories of an overlay mount, opened.
pub(crate) fn lower_dirs(mounts: &[berth_images::snapshot::Mount]) -> Vec<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let mut out = Vec::new();
    for m in mounts {
        for o in &m.options {
            if let Some(list) = o.strip_prefix("lowerdir=") {
                for d in list.split(':').filter(|d| !d.is_empty()) {
                    if let Ok(fd) = rustix::fs::open(
                        d,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        out.push(fd);
                    }
                }
            }
        }
        if m.kind == berth_images::snapshot::MountKind::Bind && m.options.iter().any(|o| o == "ro")
        {
            if let Ok(fd) = rustix::fs::open(
                &m.source,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                out.push(fd);
            }
        }
    }
    out
}
