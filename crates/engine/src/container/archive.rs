//! `docker cp`: reading and writing paths of a container's root filesystem as tar
//! archives (`GET`/`HEAD`/`PUT /containers/{id}/archive`).
//!
//! Every path is resolved inside the container's root (`openat2` with
//! `RESOLVE_IN_ROOT`), and the root is reached through that descriptor
//! (`/proc/self/fd/N`), so a symlink in the container cannot lead outside it. A running
//! container is frozen while its files are read or written, so none of its processes
//! can swap a directory for a symlink half-way (CVE-2018-15664). Archives written into
//! it go through the image layer applier, with its defences against hostile tars
//! (`..`, absolute names, links out of the root, size bounds); device nodes are skipped.
//! A stopped container's root filesystem is mounted for the time of the operation.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use crate::engine::{unmount_all, Engine};
use crate::error::{EngineError, Result};

/// What `HEAD /archive` reports about a path (Docker's `PathStat`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathStat {
    /// Base name.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits (type bits and permissions).
    pub mode: u32,
    /// Modification time (RFC 3339).
    pub mtime: String,
    /// The target of a symlink (resolved inside the container), else empty.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` for a `st_mode`.
fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    if st_mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if st_mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if st_mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m | match FileType::from_raw_mode(st_mode) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        _ => 0,
    }
}

fn rfc3339(secs: i64, nanos: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn not_found(path: &str) -> EngineError {
    EngineError::PathNotFound(path.to_owned())
}

/// The root filesystem of a container, available for the duration of an operation.
struct Root<'a> {
    engine: &'a Engine,
    id: String,
    dir: PathBuf,
    mounted_here: bool,
    frozen: bool,
    fd: OwnedFd,
}

impl Drop for Root<'_> {
    fn drop(&mut self) {
        if self.frozen {
            let rt = berth_runtime::Runtime::new(&self.engine.inner.runtime_root);
            let _ = rt.resume(&self.id);
        }
        if self.mounted_here {
            let _ = unmount_all(&self.dir);
        }
    }
}

impl Root<'_> {
    fn resolve(&self, path: &str, flags: OFlags) -> Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => not_found(path),
            e => EngineError::io("resolve in the container", path, e.into()),
        })
    }

    fn stat(&self, path: &str) -> Result<PathStat> {
        let fd = self.resolve(path, OFlags::PATH | OFlags::NOFOLLOW)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| EngineError::io("stat", path, e.into()))?;
        let mut link_target = String::new();
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            // Where it leads, inside the container.
            if let Ok(t) = self.resolve(path, OFlags::PATH) {
                link_target = std::fs::read_link(fd_path(&t))
                    .map(|p| self.inside(&p))
                    .unwrap_or_default();
            }
        }
        let name = Path::new(path.trim_end_matches('/'))
            .file_name()
            .map_or_else(|| "/".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(PathStat {
            name,
            size: st.st_size,
            mode: go_mode(st.st_mode),
            mtime: rfc3339(st.st_mtime, i64::try_from(st.st_mtime_nsec).unwrap_or(0)),
            link_target,
        })
    }

    /// A host path under the root, as the container sees it.
    fn inside(&self, host: &Path) -> String {
        let root = std::fs::read_link(fd_path(&self.fd)).unwrap_or_else(|_| self.dir.clone());
        match host.strip_prefix(&root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => host.display().to_string(),
        }
    }
}

/// The name `docker cp` shows for `path` (`/` for the root).
fn base_name(path: &str) -> String {
    Path::new(&clean(path))
        .file_name()
        .map_or_else(|| "/".to_owned(), |n| n.to_string_lossy().into_owned())
}

fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
    ))
}

/// `path` made absolute and lexically clean (`.`/`..` resolved as strings).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where `path` of the container really is when a mount covers it: the mount's host
/// source (a directory, or the directory of a file source) and the path below it.
fn mounted_source(
    engine: &Engine,
    rec: &crate::model::ContainerRecord,
    path: &str,
) -> Result<Option<(PathBuf, String)>> {
    let p = clean(path);
    let cdir = engine.inner.store.dir(&rec.id);
    let mut cands: Vec<(String, PathBuf)> = vec![
        ("/etc/hostname".into(), cdir.join("hostname")),
        ("/etc/hosts".into(), cdir.join("hosts")),
        ("/etc/resolv.conf".into(), cdir.join("resolv.conf")),
    ];
    for b in rec.host_config.binds.as_deref().unwrap_or_default() {
        if let Ok(bind) = crate::spec::parse_bind(b) {
            if bind.source.starts_with('/') {
                cands.push((clean(&bind.target), PathBuf::from(bind.source)));
            }
        }
    }
    for v in &rec.volumes {
        cands.push((
            clean(&v.destination),
            engine
                .inner
                .config
                .root
                .join("volumes")
                .join(&v.name)
                .join("_data"),
        ));
    }
    for m in &rec.mounts {
        if m.kind == "bind" {
            cands.push((clean(&m.target), PathBuf::from(&m.source)));
        } else if p == clean(&m.target) || p.starts_with(&format!("{}/", clean(&m.target))) {
            return Err(EngineError::Unsupported(
                format!("docker cp in the tmpfs {}", m.target),
                "copy through a container path outside it",
            ));
        }
    }
    cands.sort_by_key(|(d, _)| std::cmp::Reverse(d.len()));
    for (dest, src) in cands {
        if p == dest {
            if src.is_dir() {
                return Ok(Some((src, "/".into())));
            }
            let parent = src
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(Some((parent, format!("/{name}"))));
        }
        if let Some(rest) = p.strip_prefix(&format!("{dest}/")) {
            if src.is_dir() {
                return Ok(Some((src, format!("/{rest}"))));
            }
        }
    }
    Ok(None)
}

impl Engine {
    /// The root to resolve `path` in (the container's root filesystem, or the source of
    /// a mount that covers `path`) and the path inside that root.
    async fn open_root_for(&self, key: &str, path: &str) -> Result<(Root<'_>, String)> {
        let rec = self.lookup(key)?.record();
        if let Some((dir, rel)) = mounted_source(self, &rec, path)? {
            let fd = rustix::fs::open(
                &dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| EngineError::io("open", &dir, e.into()))?;
            let mut root = Root {
                engine: self,
                id: rec.id.clone(),
                dir,
                mounted_here: false,
                frozen: false,
                fd,
            };
            if rec.state.status == crate::model::Status::Running {
                let rt = berth_runtime::Runtime::new(&self.inner.runtime_root);
                root.frozen = rt.pause(&rec.id).is_ok();
            }
            return Ok((root, rel));
        }
        Ok((self.open_root(key).await?, path.to_owned()))
    }

    async fn open_root(&self, key: &str) -> Result<Root<'_>> {
        let rec = self.lookup(key)?.record();
        let dir = self.rootfs_dir(&rec.id);
        let running = rec.state.status.is_running();
        let mut mounted_here = false;
        if !running {
            let mounts = self.inner.images.rootfs_mounts(&rec.id).await?;
            let (d, id) = (dir.clone(), rec.id.clone());
            tokio::task::spawn_blocking(move || crate::engine::mount_rootfs(&id, &mounts, &d))
                .await??;
            mounted_here = true;
        }
        let fd = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| EngineError::io("open", &dir, e.into()))?;
        let mut root = Root {
            engine: self,
            id: rec.id.clone(),
            dir,
            mounted_here,
            frozen: false,
            fd,
        };
        if rec.state.status == crate::model::Status::Running {
            let rt = berth_runtime::Runtime::new(&self.inner.runtime_root);
            root.frozen = rt.pause(&rec.id).is_ok();
        }
        Ok(root)
    }

    /// Stats `path` in container `key`.
    pub async fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let (root, rel) = self.open_root_for(key, path).await?;
        let mut st = root.stat(&rel)?;
        st.name = base_name(path);
        Ok(st)
    }

    /// A tar of `path` in container `key` (in a temporary file), with its stat.
    pub async fn archive_get(&self, key: &str, path: &str) -> Result<(PathStat, std::fs::File)> {
        let (root, rel) = self.open_root_for(key, path).await?;
        let mut stat = root.stat(&rel)?;
        stat.name = base_name(path);
        let fd = root.resolve(&rel, OFlags::PATH)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| EngineError::io("stat", path, e.into()))?;
        // The kernel's name of what was resolved (no symlinks left in it); nothing in
        // the container can change the tree meanwhile (frozen or stopped).
        let src =
            std::fs::read_link(fd_path(&fd)).map_err(|e| EngineError::io("resolve", path, e))?;
        let root_real = std::fs::read_link(fd_path(&root.fd)).unwrap_or_else(|_| root.dir.clone());
        if !src.starts_with(&root_real) {
            return Err(not_found(path));
        }
        let name = if stat.name == "/" {
            ".".to_owned()
        } else {
            stat.name.clone()
        };
        let spool = tempfile::tempfile_in(self.inner.config.root.join("tmp"))
            .or_else(|_| tempfile::tempfile())
            .map_err(|e| EngineError::io("create a spool file", "tmp", e))?;
        let mut b = tar::Builder::new(spool);
        b.follow_symlinks(false);
        let r = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            b.append_dir_all(&name, &src)
        } else {
            b.append_path_with_name(&src, &name)
        };
        r.map_err(|e| EngineError::io("archive", path, e))?;
        let mut f = b
            .into_inner()
            .map_err(|e| EngineError::io("archive", path, e))?;
        f.flush().map_err(|e| EngineError::io("archive", path, e))?;
        f.rewind()
            .map_err(|e| EngineError::io("archive", path, e))?;
        drop(root);
        Ok((stat, f))
    }

    /// Extracts the tar `archive` into directory `path` of container `key`.
    pub async fn archive_put(&self, key: &str, path: &str, archive: impl Read) -> Result<()> {
        let rec = self.lookup(key)?.record();
        if rec.host_config.readonly_rootfs {
            return Err(EngineError::PermissionDenied(
                "container rootfs is marked read-only".into(),
            ));
        }
        let (root, rel) = self.open_root_for(key, path).await?;
        let fd = root.resolve(&rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let options = berth_images::layer::ApplyOptions {
            devices: berth_images::layer::DeviceNodes::Skip,
            ..berth_images::layer::ApplyOptions::default()
        };
        berth_images::layer::apply(&fd_path(&fd), archive, &options).map_err(|e| {
            EngineError::InvalidArgument(format!("extracting the archive into {path}: {e}"))
        })?;
        drop(root);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_go_has_them() {
        assert_eq!(go_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_mode(0o100644), 0o644);
        assert_eq!(go_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(rfc3339(0, 5), "1970-01-01T00:00:00.000000005Z");
        assert_eq!(clean("/a/./b/../c/"), "/a/c");
        assert_eq!(clean("../../etc"), "/etc");
        assert_eq!(base_name("/etc/hostname"), "hostname");
        assert_eq!(base_name("/"), "/");
    }
}
