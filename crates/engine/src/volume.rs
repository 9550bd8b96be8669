//! Named local volumes (`docker volume`), anonymous volumes for an image's `VOLUME`s,
//! and the copy of the image's content into a new volume at first use.
//!
//! ```text
//! <root>/volumes/<name>/volume.json   its record (written atomically)
//! <root>/volumes/<name>/_data/        its content (or the mount point of its device)
//! ```
//!
//! A volume's users are the containers whose records name it; it cannot be removed
//! while one exists. The local driver's `type`/`device`/`o` options mount a device (or,
//! with `o=bind`, a host directory) on `_data` when a container starts.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::events::Event;

/// A volume's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Its content directory.
    pub mountpoint: PathBuf,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
    /// Made for an image `VOLUME` (removed with the container by `rm -v`).
    #[serde(default)]
    pub anonymous: bool,
}

/// A mount of a volume into a container, as the container's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume.
    pub name: String,
    /// Where, inside.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
    /// Do not copy the image's content into a new volume.
    #[serde(default)]
    pub no_copy: bool,
}

fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
        && name.len() <= 255
}

impl Engine {
    fn volumes_dir(&self) -> PathBuf {
        self.inner.config.root.join("volumes")
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    /// Creates volume `name` (a random name when empty); an existing one is returned
    /// as it is, as Docker does.
    pub fn volume_create(
        &self,
        name: Option<String>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => crate::names::new_id()?,
        };
        if !valid_name(&name) {
            return Err(EngineError::InvalidArgument(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        for k in options.keys() {
            if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid option key: {k:?}"
                )));
            }
        }
        if let Ok(v) = self.volume_inspect(&name) {
            return Ok(v);
        }
        let dir = self.volume_dir(&name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(|e| EngineError::io("create", &data, e))?;
        let v = Volume {
            name: name.clone(),
            driver: "local".into(),
            mountpoint: data,
            created_at: berth_runtime::timestamp(),
            labels,
            options,
            anonymous,
        };
        let bytes = serde_json::to_vec(&v).map_err(|source| EngineError::Record {
            path: dir.clone(),
            source,
        })?;
        crate::store::write_atomic(&dir.join("volume.json"), &bytes)?;
        self.emit(Event::new(
            "volume",
            "create",
            &name,
            vec![("driver".into(), "local".into())],
        ));
        Ok(v)
    }

    /// Volume `name`.
    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(EngineError::NoSuchVolume(name.to_owned()));
        }
        let p = self.volume_dir(name).join("volume.json");
        let data = std::fs::read(&p).map_err(|_| EngineError::NoSuchVolume(name.to_owned()))?;
        serde_json::from_slice(&data).map_err(|source| EngineError::Record { path: p, source })
    }

    /// Every volume.
    pub fn volume_list(&self) -> Vec<Volume> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.volumes_dir()) else {
            return out;
        };
        for e in rd.flatten() {
            if let Some(n) = e.file_name().to_str() {
                if let Ok(v) = self.volume_inspect(n) {
                    out.push(v);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Containers using volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.list_containers()
            .into_iter()
            .filter(|c| c.volumes.iter().any(|m| m.name == name))
            .map(|c| c.id)
            .collect()
    }

    /// Removes volume `name` (`force`: a missing one is no error).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let v = match self.volume_inspect(name) {
            Ok(v) => v,
            Err(_) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(EngineError::VolumeInUse(name.to_owned(), users));
        }
        let dir = self.volume_dir(&v.name);
        let _ = crate::engine::unmount_all(&v.mountpoint);
        std::fs::remove_dir_all(&dir).map_err(|e| EngineError::io("remove", &dir, e))?;
        self.emit(Event::new(
            "volume",
            "destroy",
            name,
            vec![("driver".into(), "local".into())],
        ));
        Ok(())
    }

    /// Removes unused volumes (anonymous ones only, unless `all`); returns the names
    /// removed and the bytes freed.
    pub fn volume_prune(&self, all: bool, labels: &[String]) -> (Vec<String>, u64) {
        let mut removed = Vec::new();
        let mut freed = 0;
        for v in self.volume_list() {
            if !all && !v.anonymous {
                continue;
            }
            if !labels.iter().all(|l| match l.split_once('=') {
                Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                None => v.labels.contains_key(l),
            }) {
                continue;
            }
            let size = dir_size(&v.mountpoint);
            if self.volume_remove(&v.name, false).is_ok() {
                removed.push(v.name);
                freed += size;
            }
        }
        (removed, freed)
    }

    /// Prepares container volumes before start: mounts devices of volumes with driver
    /// options and copies the image's content at the mount point into new empty volumes.
    pub(crate) fn prepare_volumes(
        &self,
        mounts: &[VolumeMount],
        rootfs: &Path,
    ) -> Result<Vec<(PathBuf, VolumeMount)>> {
        let mut out = Vec::new();
        for m in mounts {
            let v = match self.volume_inspect(&m.name) {
                Ok(v) => v,
                Err(_) => self.volume_create(
                    Some(m.name.clone()),
                    BTreeMap::new(),
                    BTreeMap::new(),
                    false,
                )?,
            };
            if !v.options.is_empty() {
                mount_device(&v)?;
            }
            let marker = self.volume_dir(&v.name).join(".copied");
            if !m.no_copy && v.options.is_empty() && !marker.exists() && is_empty_dir(&v.mountpoint)
            {
                if let Err(e) = copy_from_root(rootfs, &m.destination, &v.mountpoint) {
                    tracing::warn!(volume = %v.name, error = %e, "copying the image's content into the volume");
                }
            }
            let _ = std::fs::write(&marker, b"");
            out.push((v.mountpoint.clone(), m.clone()));
        }
        Ok(out)
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

fn mount_device(v: &Volume) -> Result<()> {
    let typ = v.options.get("type").cloned().unwrap_or_default();
    let device = v.options.get("device").cloned().unwrap_or_default();
    let o = v.options.get("o").cloned().unwrap_or_default();
    let is_bind = o.split(',').any(|x| x == "bind");
    // Already mounted by an earlier container?
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mp = v.mountpoint.to_string_lossy();
    if mi.lines().any(|l| l.split(' ').nth(4) == Some(mp.as_ref())) {
        return Ok(());
    }
    let err = |e: rustix::io::Errno| EngineError::io("mount volume", &v.mountpoint, e.into());
    if is_bind {
        rustix::mount::mount_bind(device.as_str(), &v.mountpoint).map_err(err)
    } else {
        let data: String = o
            .split(',')
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        let data = std::ffi::CString::new(data)
            .map_err(|_| EngineError::InvalidArgument("volume option o holds a NUL byte".into()))?;
        let source = if device.is_empty() {
            typ.clone()
        } else {
            device
        };
        rustix::mount::mount(
            source.as_str(),
            &v.mountpoint,
            typ.as_str(),
            rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
            Some(data.as_c_str()),
        )
        .map_err(err)
    }
}

/// Copies `rel` of the (hostile) root filesystem `root` into `dest`: every lookup stays
/// inside the root (`RESOLVE_IN_ROOT`), symlinks are copied as links, never followed.
fn copy_from_root(root: &Path, rel: &str, dest: &Path) -> std::io::Result<()> {
    let rootfd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let src = match rustix::fs::openat2(
        &rootfd,
        rel.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&src)?;
    rustix::fs::chmod(dest, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    rustix::fs::chown(
        dest,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    let destfd = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    copy_dir(&src, &destfd, 0)
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> std::io::Result<()> {
    if depth > 256 {
        return Err(std::io::Error::other("directory tree too deep"));
    }
    let mut dir = rustix::fs::Dir::read_from(src)?;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        let st = rustix::fs::statat(src, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(st.st_uid),
            rustix::fs::Gid::from_raw(st.st_gid),
        );
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name.as_c_str(), mode)?;
                let s = rustix::fs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                copy_dir(&s, &d, depth + 1)?;
                rustix::fs::fchmod(&d, mode)?;
                rustix::fs::fchown(&d, Some(uid), Some(gid))?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )?;
                let mut sf = std::fs::File::from(s);
                let mut df = std::fs::File::from(d);
                std::io::copy(&mut sf, &mut df)?;
                rustix::fs::fchmod(df.as_fd(), mode)?;
                rustix::fs::fchown(df.as_fd(), Some(uid), Some(gid))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name.as_c_str(), Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name.as_c_str())?;
                let _ = rustix::fs::chownat(
                    dst,
                    name.as_c_str(),
                    Some(uid),
                    Some(gid),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            // Devices, fifos and sockets are not copied into volumes.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn copy_stays_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), data.join("link")).unwrap();
        // A symlinked mount point resolves inside the root, not on the host.
        std::os::unix::fs::symlink(outside.path(), root.path().join("evil")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        copy_from_root(root.path(), "/data", dest.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("sub/f")).unwrap(),
            "x"
        );
        assert!(std::fs::symlink_metadata(dest.path().join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        let dest2 = tempfile::tempdir().unwrap();
        copy_from_root(root.path(), "/evil", dest2.path()).unwrap();
        assert!(!dest2.path().join("secret").exists());
        assert!(valid_name("data_1.x-y"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("/abs"));
    }
}
