//! Finding the cgroup hierarchies: which are mounted where, which controllers each
//! hosts, and which cgroup the calling process belongs to in each.
//!
//! Three layouts exist in the wild:
//!
//! * **v1**: one `cgroup` mount per hierarchy, each hosting one or more controllers
//!   (listed in the mount's super options, e.g. `rw,cpu,cpuacct`), plus named
//!   hierarchies without controllers (`name=systemd`).
//! * **v2** ("unified"): one `cgroup2` mount; its root's `cgroup.controllers` lists the
//!   controllers, which each cgroup hands down through `cgroup.subtree_control`.
//! * **hybrid**: both. A controller bound to a v1 hierarchy does not appear in the v2
//!   tree, so every controller lives in exactly one place. This machine mounts each
//!   v1 controller under `/sys/fs/cgroup/<name>` and the v2 tree (hosting only `hugetlb`)
//!   at `/sys/fs/cgroup/unified`.
//!
//! The mount table (`/proc/self/mountinfo`) gives, per hierarchy, the mount point and the
//! *mount root*: the cgroup that the mount point shows (`/` unless the hierarchy was
//! mounted from inside a cgroup namespace or bind-mounted). `/proc/self/cgroup` gives the
//! caller's cgroup per hierarchy, as a path from the hierarchy root.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The v1 controllers this crate knows; other words in a cgroup mount's options are
/// mount flags (`rw`, `noprefix`, `clone_children`, `xattr`...).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Where systemd, when it runs as PID 1, creates this directory.
const SYSTEMD_MARKER: &str = "/run/systemd/system";

/// The cgroup version of one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Version {
    /// A `cgroup` mount.
    V1,
    /// The `cgroup2` mount.
    V2,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) version: Version,
    /// v1: the controllers and `name=` of the hierarchy, sorted. v2: empty (the
    /// controllers are read from `cgroup.controllers` when needed).
    pub(crate) controllers: Vec<String>,
    pub(crate) mountpoint: PathBuf,
    /// The cgroup path shown at the mount point.
    pub(crate) mount_root: String,
    /// The caller's cgroup path in this hierarchy, when `/proc/self/cgroup` lists it.
    pub(crate) caller: Option<String>,
}

impl Mount {
    /// A short name for messages: the controllers joined, or "unified".
    pub(crate) fn label(&self) -> String {
        match self.version {
            Version::V1 => self.controllers.join(","),
            Version::V2 => "unified".to_owned(),
        }
    }
}

/// Which of the three layouts a [`Layout`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// Only cgroup v1 hierarchies.
    V1,
    /// Only the cgroup v2 hierarchy.
    V2,
    /// v1 hierarchies for some controllers and the v2 hierarchy for the rest.
    Hybrid,
}

/// The cgroup hierarchies visible to the calling process.
///
/// [`Layout::detect`] reads them from `/proc/self`; [`Layout::parse`] takes the text of
/// those files, which lets tests point every mount at a fake tree in a temporary
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub(crate) mounts: Vec<Mount>,
    pub(crate) systemd_marker: PathBuf,
}

impl Layout {
    /// Read the layout of the calling process from `/proc/self/mountinfo` and
    /// `/proc/self/cgroup`.
    pub fn detect() -> Result<Layout> {
        let read = |p: &str| {
            std::fs::read_to_string(p).map_err(|source| Error::ReadLayout {
                path: PathBuf::from(p),
                source,
            })
        };
        Layout::parse(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)
    }

    /// Build the layout from the text of a `mountinfo` file and a `/proc/<pid>/cgroup`
    /// file.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Layout> {
        let mut v1: Vec<Mount> = Vec::new();
        let mut v2: Option<Mount> = None;
        let entries: Vec<_> = mountinfo.lines().filter_map(parse_mountinfo_line).collect();
        for (i, entry) in entries.iter().enumerate() {
            // A later mount on the same mount point hides this one (a tmpfs over a cgroup
            // tree, as a private mount namespace may put there): only the top one counts.
            if entries[i + 1..]
                .iter()
                .any(|later| later.mountpoint == entry.mountpoint)
            {
                continue;
            }
            let entry = entry.clone();
            match entry.fstype {
                "cgroup2" => {
                    let mount = Mount {
                        version: Version::V2,
                        controllers: Vec::new(),
                        mountpoint: entry.mountpoint,
                        mount_root: entry.root,
                        caller: None,
                    };
                    if v2.as_ref().is_none_or(|old| better(&mount, old)) {
                        v2 = Some(mount);
                    }
                }
                "cgroup" => {
                    let mut controllers: Vec<String> = entry
                        .super_options
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || is_named(o))
                        .map(str::to_owned)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    controllers.sort();
                    controllers.dedup();
                    let mount = Mount {
                        version: Version::V1,
                        controllers,
                        mountpoint: entry.mountpoint,
                        mount_root: entry.root,
                        caller: None,
                    };
                    match v1.iter_mut().find(|m| m.controllers == mount.controllers) {
                        Some(old) if better(&mount, old) => *old = mount,
                        Some(_) => {}
                        None => v1.push(mount),
                    }
                }
                _ => {}
            }
        }
        let mut mounts = v1;
        mounts.extend(v2);
        if mounts.is_empty() {
            return Err(Error::NoHierarchy);
        }
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let target = if id == "0" && ctls.is_empty() {
                mounts.iter_mut().find(|m| m.version == Version::V2)
            } else {
                let set = controller_set(ctls);
                mounts
                    .iter_mut()
                    .find(|m| m.version == Version::V1 && m.controllers == set)
            };
            if let Some(m) = target {
                m.caller = Some(path.to_owned());
            }
        }
        Ok(Layout {
            mounts,
            systemd_marker: PathBuf::from(SYSTEMD_MARKER),
        })
    }

    /// Use `marker` instead of `/run/systemd/system` to decide whether systemd runs.
    #[must_use]
    pub fn with_systemd_marker(mut self, marker: impl Into<PathBuf>) -> Layout {
        self.systemd_marker = marker.into();
        self
    }

    /// v1, v2 or hybrid. Named v1 hierarchies without controllers (`name=systemd`) do
    /// not make a v2 layout hybrid.
    pub fn kind(&self) -> LayoutKind {
        let v2 = self.mounts.iter().any(|m| m.version == Version::V2);
        let v1 = self
            .mounts
            .iter()
            .any(|m| m.version == Version::V1 && m.controllers.iter().any(|c| !is_named(c)));
        match (v1, v2) {
            (true, true) => LayoutKind::Hybrid,
            (false, true) => LayoutKind::V2,
            _ => LayoutKind::V1,
        }
    }

    /// Whether systemd runs as PID 1 here.
    pub(crate) fn systemd_running(&self) -> bool {
        self.systemd_marker.is_dir()
    }
}

/// The controllers this crate knows (and `name=` entries) in a comma-separated list,
/// sorted: how a v1 hierarchy is identified in `/proc/<pid>/cgroup`.
pub(crate) fn controller_set(list: &str) -> Vec<&str> {
    let mut set: Vec<&str> = list
        .split(',')
        .filter(|c| V1_CONTROLLERS.contains(c) || is_named(c))
        .collect();
    set.sort_unstable();
    set.dedup();
    set
}

fn is_named(option: &str) -> bool {
    option.strip_prefix("name=").is_some_and(|n| !n.is_empty())
}

/// Between two mounts of one hierarchy, prefer the one showing the whole hierarchy, then
/// the one under `/sys/fs/cgroup`.
fn better(new: &Mount, old: &Mount) -> bool {
    let score = |m: &Mount| {
        (u8::from(m.mount_root == "/") << 1) | u8::from(m.mountpoint.starts_with("/sys/fs/cgroup"))
    };
    score(new) > score(old)
}

#[derive(Clone)]
struct MountinfoEntry<'a> {
    root: String,
    mountpoint: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// Parse one `/proc/<pid>/mountinfo` line:
/// `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`.
fn parse_mountinfo_line(line: &str) -> Option<MountinfoEntry<'_>> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 {
        return None;
    }
    let root = unescape(fields.get(3)?);
    let mountpoint = PathBuf::from(unescape(fields.get(4)?));
    let fstype = fields.get(sep + 1)?;
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    Some(MountinfoEntry {
        root,
        mountpoint,
        fstype,
        super_options,
    })
}

/// Undo the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'\\' {
            if let Some(oct) = bytes.get(i + 1..i + 4) {
                if oct.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    let v = oct
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    if let Ok(v) = u8::try_from(v) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of cgroup `path` in a hierarchy mounted at `mountpoint` showing
/// `mount_root`.
pub(crate) fn dir_of(mountpoint: &Path, mount_root: &str, path: &str) -> Result<PathBuf> {
    let outside = || Error::OutsideMount {
        path: path.to_owned(),
        mount_root: mount_root.to_owned(),
        mountpoint: mountpoint.to_owned(),
    };
    let rest = if mount_root == "/" {
        path
    } else {
        let r = path
            .strip_prefix(mount_root.trim_end_matches('/'))
            .ok_or_else(outside)?;
        if !r.is_empty() && !r.starts_with('/') {
            return Err(outside());
        }
        r
    };
    let mut dir = mountpoint.to_owned();
    for c in rest.split('/').filter(|c| !c.is_empty()) {
        dir.push(c);
    }
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_over_a_cgroup_tree_hides_it() {
        let mi = "\
30 1 0:25 / / rw - ext4 /dev/vda rw
41 30 0:36 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
43 30 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
50 43 0:40 / /sys/fs/cgroup/unified rw - tmpfs tmpfs rw
";
        let l = Layout::parse(mi, "1:cpu:/\n0::/\n").unwrap();
        assert_eq!(l.kind(), LayoutKind::V1);
    }

    /// This machine's table, abridged.
    pub(crate) const HYBRID_MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "9:name=systemd:/\n4:memory:/agent/x\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid() {
        let l = Layout::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap();
        assert_eq!(l.kind(), LayoutKind::Hybrid);
        assert_eq!(l.mounts.len(), 5);
        let mem = l
            .mounts
            .iter()
            .find(|m| m.controllers == ["memory"])
            .unwrap();
        assert_eq!(mem.caller.as_deref(), Some("/agent/x"));
        assert_eq!(mem.mountpoint, Path::new("/sys/fs/cgroup/memory"));
        let v2 = l.mounts.iter().find(|m| m.version == Version::V2).unwrap();
        assert_eq!(v2.caller.as_deref(), Some("/"));
        assert_eq!(v2.label(), "unified");
    }

    #[test]
    fn v1_comounted_and_options() {
        let mi =
            "1 0 0:1 / /cg/cpu,cpuacct rw - cgroup cgroup rw,nosuid,cpuacct,cpu,clone_children\n\
                  2 0 0:2 / /cg/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";
        let l = Layout::parse(mi, "3:cpu,cpuacct:/a\n1:name=systemd:/b\n").unwrap();
        assert_eq!(l.kind(), LayoutKind::V1);
        assert_eq!(l.mounts[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l.mounts[0].caller.as_deref(), Some("/a"));
        assert_eq!(l.mounts[1].controllers, ["name=systemd"]);
    }

    #[test]
    fn v2_only_and_named_does_not_make_hybrid() {
        let mi = "1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                  2 0 0:2 / /x rw - cgroup cgroup rw,name=foo\n";
        let l = Layout::parse(mi, "0::/user.slice\n").unwrap();
        assert_eq!(l.kind(), LayoutKind::V2);
    }

    #[test]
    fn duplicate_mounts_prefer_whole_hierarchy() {
        let mi = "1 0 0:1 /sub /elsewhere rw - cgroup2 cgroup2 rw\n\
                  2 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                  3 0 0:1 / /again rw - cgroup2 cgroup2 rw\n";
        let l = Layout::parse(mi, "0::/\n").unwrap();
        assert_eq!(l.mounts.len(), 1);
        assert_eq!(l.mounts[0].mountpoint, Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn unknown_controllers_do_not_hide_the_callers_cgroup() {
        let mi = "1 0 0:1 / /cg/cpu rw - cgroup cgroup rw,cpu,debug\n";
        let l = Layout::parse(mi, "3:debug,cpu:/x\n").unwrap();
        assert_eq!(l.mounts[0].caller.as_deref(), Some("/x"));
    }

    #[test]
    fn no_cgroups() {
        let err = Layout::parse("22 1 254:0 / / rw - ext4 /dev/vda rw\n", "").unwrap_err();
        assert!(matches!(err, Error::NoHierarchy));
    }

    #[test]
    fn escapes_and_optional_fields() {
        let mi = "1 0 0:1 / /a\\040b rw shared:5 master:2 - cgroup2 cgroup2 rw\n";
        let l = Layout::parse(mi, "").unwrap();
        assert_eq!(l.mounts[0].mountpoint, Path::new("/a b"));
        assert_eq!(l.mounts[0].caller, None);
    }

    #[test]
    fn dirs() {
        let mp = Path::new("/sys/fs/cgroup/cpu");
        assert_eq!(
            dir_of(mp, "/", "/berth/x").unwrap(),
            Path::new("/sys/fs/cgroup/cpu/berth/x")
        );
        assert_eq!(
            dir_of(mp, "/ns", "/ns/a").unwrap(),
            Path::new("/sys/fs/cgroup/cpu/a")
        );
        assert_eq!(
            dir_of(mp, "/ns/", "/ns/a").unwrap(),
            Path::new("/sys/fs/cgroup/cpu/a")
        );
        assert!(dir_of(mp, "/ns", "/nsx/a").is_err());
        assert!(dir_of(mp, "/ns", "/other").is_err());
    }

    #[test]
    fn this_machine() {
        // Whatever the machine, detection must not fail when /proc is mounted.
        if Path::new("/proc/self/mountinfo").exists() {
            let l = Layout::detect().unwrap();
            assert!(!l.mounts.is_empty());
        }
    }
}
