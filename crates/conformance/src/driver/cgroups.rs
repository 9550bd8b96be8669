//! Host-side view of the container's cgroups: where a controller's files are
//! for a `cgroupsPath`, and removal of what a test left behind.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::mountinfo::{self, MountInfo};

/// The cgroup hierarchies mounted on the host.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hierarchies {
    /// (mount point, controllers) for cgroup v1 mounts.
    v1: Vec<(PathBuf, Vec<String>)>,
    /// (mount point, enabled controllers) for cgroup2 mounts.
    v2: Vec<(PathBuf, Vec<String>)>,
}

impl Hierarchies {
    /// Reads the host's cgroup mounts from `/proc/self/mountinfo`.
    pub(crate) fn detect() -> Self {
        let mounts = mountinfo::read_self().unwrap_or_default();
        Self::from_mounts(&mounts, |p| {
            std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default()
        })
    }

    fn from_mounts(mounts: &[MountInfo], controllers_of: impl Fn(&Path) -> String) -> Self {
        let mut h = Self::default();
        for m in mounts {
            let point = PathBuf::from(&m.mount_point);
            match m.fstype.as_str() {
                "cgroup" => {
                    let ctrls = m
                        .super_options
                        .iter()
                        .filter(|o| {
                            !matches!(o.as_str(), "rw" | "ro") && !o.starts_with("release_agent")
                        })
                        .map(|o| {
                            o.strip_prefix("name=")
                                .map_or_else(|| o.clone(), |n| format!("name={n}"))
                        })
                        .collect();
                    h.v1.push((point, ctrls));
                }
                "cgroup2" => {
                    let ctrls = controllers_of(&point)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    h.v2.push((point, ctrls));
                }
                _ => {}
            }
        }
        h
    }

    /// Where `controller` lives: the mount point and whether it is cgroup v2.
    pub(crate) fn controller(&self, controller: &str) -> Option<(PathBuf, bool)> {
        if let Some((p, _)) = self
            .v1
            .iter()
            .find(|(_, c)| c.iter().any(|x| x == controller))
        {
            return Some((p.clone(), false));
        }
        self.v2
            .iter()
            .find(|(_, c)| c.iter().any(|x| x == controller))
            .map(|(p, _)| (p.clone(), true))
    }

    /// The value of `file` of `controller` for `cgroups_path`.
    pub(crate) fn read(&self, controller: &str, cgroups_path: &str, file: &str) -> Result<String> {
        let Some((mount, _)) = self.controller(controller) else {
            bail!("controller {controller} is not mounted on this host");
        };
        let path = mount.join(relative(cgroups_path)?).join(file);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        Ok(text.trim().to_string())
    }

    /// In a hybrid layout (v1 hierarchies plus a cgroup2 mount that has
    /// controllers), the cgroup2 mount point.
    pub(crate) fn hybrid_cgroup2(&self) -> Option<PathBuf> {
        if self.v1.is_empty() {
            return None;
        }
        self.v2
            .iter()
            .find(|(_, c)| !c.is_empty())
            .map(|(p, _)| p.clone())
    }

    /// Whether `controller` is a cgroup v2 controller here.
    pub(crate) fn is_v2(&self, controller: &str) -> bool {
        self.controller(controller).is_some_and(|(_, v2)| v2)
    }

    /// Whether the host runs cgroup v2 only (no v1 controller hierarchy; a named
    /// hierarchy such as `name=systemd` does not count).
    pub(crate) fn v2_only(&self) -> bool {
        !self.v2.is_empty()
            && self
                .v1
                .iter()
                .all(|(_, c)| c.iter().all(|x| x.starts_with("name=")))
    }

    /// Whether any hierarchy still has a directory for `cgroups_path`.
    pub(crate) fn exists_anywhere(&self, cgroups_path: &str) -> bool {
        let Ok(rel) = relative(cgroups_path) else {
            return false;
        };
        self.all_mounts().any(|m| m.join(&rel).exists())
    }

    fn all_mounts(&self) -> impl Iterator<Item = &PathBuf> {
        self.v1.iter().chain(self.v2.iter()).map(|(p, _)| p)
    }

    /// Removes the directories for `cgroups_path` (and below) in every
    /// hierarchy. Only paths naming a `berth-test-` cgroup are touched.
    pub(crate) fn remove(&self, cgroups_path: &str) {
        if !cgroups_path.contains("berth-test-") {
            return;
        }
        let Ok(rel) = relative(cgroups_path) else {
            return;
        };
        for mount in self.all_mounts() {
            let dir = mount.join(&rel);
            if dir.exists() {
                remove_cgroup_dir(&dir);
            }
        }
    }
}

/// `cgroups_path` as a relative path without `..` components.
fn relative(cgroups_path: &str) -> Result<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        bail!("cgroupsPath {cgroups_path} contains ..");
    }
    Ok(PathBuf::from(rel))
}

/// rmdir the cgroup and its child cgroups, deepest first, retrying briefly
/// while the kernel finishes removing exited tasks.
fn remove_cgroup_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dir(&entry.path());
            }
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_controllers_in_a_hybrid_layout() {
        let text = "\
30 25 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 25 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 25 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
33 25 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let mounts = mountinfo::parse(text);
        let h = Hierarchies::from_mounts(&mounts, |_| "hugetlb\n".into());
        assert_eq!(
            h.controller("memory"),
            Some((PathBuf::from("/sys/fs/cgroup/memory"), false))
        );
        assert_eq!(
            h.controller("hugetlb"),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), true))
        );
        assert!(h.is_v2("hugetlb"));
        assert_eq!(h.controller("name=systemd").map(|c| c.1), Some(false));
        assert_eq!(h.controller("blkio"), None);
        assert_eq!(
            h.hybrid_cgroup2(),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert!(relative("/a/../b").is_err());
        assert_eq!(
            relative("/berth-test-x").unwrap(),
            PathBuf::from("berth-test-x")
        );
    }
}
