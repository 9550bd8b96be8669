//! The container's view of `/sys/fs/cgroup` (OCI mount type `cgroup`).
//!
//! The host's cgroup hierarchies are discovered before the container's cgroup namespace is
//! created, so that each can be bound at the container's own cgroup:
//! - host with only cgroup v2 and a new cgroup namespace: a fresh `cgroup2` mount, whose root
//!   is the namespace root, i.e. the container's cgroup;
//! - otherwise (v1 or hybrid): a tmpfs at the destination and, per hierarchy, a bind of the
//!   container's cgroup directory, named as on the host (`cpu`, `memory`, `unified`, …).
//!
//! Either way the container sees its own cgroup as the root and nothing above it.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_sys::MountAttr;

use crate::error::{Error, Result};
use crate::paths::{ensure_in_root, Leaf};
use crate::rootfs::mounts::{attach, clone_tree, fs_mount, MountContext};
use crate::rootfs::options::MountOptions;

/// One host cgroup hierarchy and where the container's cgroup lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Name under /sys/fs/cgroup (`cpu`, `memory`, `unified`, or empty for a v2-only host).
    pub name: String,
    /// Host directory of the container's cgroup in this hierarchy.
    pub host_dir: PathBuf,
    /// cgroup2 (true) or v1.
    pub v2: bool,
}

/// What the cgroup mount needs, collected before the cgroup namespace is unshared.
#[derive(Debug, Clone, Default)]
pub(crate) struct CgroupView {
    pub hierarchies: Vec<Hierarchy>,
    /// The container has a cgroup namespace of its own.
    pub own_namespace: bool,
}

/// Read /proc/self/mountinfo and /proc/self/cgroup of the calling process.
pub(crate) fn discover(own_namespace: bool) -> Result<CgroupView> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
    Ok(CgroupView {
        hierarchies: parse(&mountinfo, &cgroup),
        own_namespace,
    })
}

/// The hierarchies mounted under /sys/fs/cgroup, matched with the process's cgroup paths.
pub(crate) fn parse(mountinfo: &str, cgroup: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(root), Some(mountpoint), Some(fstype)) = (pre.get(3), pre.get(4), post.first())
        else {
            continue;
        };
        let Some(rel) = mountpoint.strip_prefix("/sys/fs/cgroup") else {
            continue;
        };
        let name = rel.trim_start_matches('/');
        if name.contains('/') {
            continue;
        }
        let v2 = *fstype == "cgroup2";
        if !v2 && *fstype != "cgroup" {
            continue;
        }
        let super_opts: Vec<&str> = post
            .get(2)
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        // Find this hierarchy's line in /proc/self/cgroup: "ID:controllers:path".
        let path = cgroup.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let matches = if v2 {
                ctrls.is_empty()
            } else {
                !ctrls.is_empty() && ctrls.split(',').all(|c| super_opts.contains(&c))
            };
            matches.then(|| path.to_string())
        });
        let Some(path) = path else { continue };
        let inner = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .trim_start_matches('/');
        let host_dir = if inner.is_empty() {
            PathBuf::from(mountpoint)
        } else {
            Path::new(mountpoint).join(inner)
        };
        out.push(Hierarchy {
            name: name.to_string(),
            host_dir,
            v2,
        });
    }
    out
}

/// Mount the container's /sys/fs/cgroup at `dest`.
pub(crate) fn mount(ctx: &MountContext<'_>, dest: &Path, opts: &MountOptions) -> Result<()> {
    let view = ctx.cgroups;
    let target = ensure_in_root(ctx.root, dest, Leaf::Dir, 0o755)?;
    let only_v2 =
        view.hierarchies.len() == 1 && view.hierarchies.iter().all(|h| h.v2 && h.name.is_empty());
    if only_v2 && view.own_namespace {
        let mnt = fs_mount("cgroup2", "cgroup2", opts, dest)?;
        return attach(mnt.as_fd(), target.as_fd(), dest);
    }
    if only_v2 {
        let h = &view.hierarchies[0];
        let tree = clone_tree(rustix::fs::CWD, &h.host_dir, false)?;
        crate::rootfs::mounts::apply_attrs(tree.as_fd(), opts, dest)?;
        return attach(tree.as_fd(), target.as_fd(), dest);
    }
    // v1 or hybrid: a tmpfs holding one bind per hierarchy, made read-only afterwards if asked.
    let tmpfs_opts = MountOptions {
        set: MountAttr::NOSUID
            .union(MountAttr::NODEV)
            .union(MountAttr::NOEXEC),
        data: vec![("mode".into(), Some("755".into()))],
        ..MountOptions::default()
    };
    let tmp = fs_mount("tmpfs", "tmpfs", &tmpfs_opts, dest)?;
    for h in &view.hierarchies {
        if h.name.is_empty() {
            continue;
        }
        let sub = ensure_in_root(tmp.as_fd(), Path::new(&h.name), Leaf::Dir, 0o755)?;
        let tree = clone_tree(rustix::fs::CWD, &h.host_dir, false)?;
        let mut o = opts.clone();
        o.set = o
            .set
            .union(MountAttr::NOSUID)
            .union(MountAttr::NODEV)
            .union(MountAttr::NOEXEC);
        crate::rootfs::mounts::apply_attrs(tree.as_fd(), &o, dest)?;
        attach(tree.as_fd(), sub.as_fd(), &dest.join(&h.name))?;
    }
    if opts.set.0 & MountAttr::RDONLY.0 != 0 {
        berth_sys::mount_setattr(
            tmp.as_fd(),
            false,
            MountAttr::RDONLY,
            MountAttr::default(),
            0,
            None,
        )
        .map_err(|e| Error::Io {
            op: "mount_setattr ro",
            path: dest.to_path_buf(),
            source: e.source,
        })?;
    }
    attach(tmp.as_fd(), target.as_fd(), dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 1 0:25 / / rw - ext4 /dev/vda rw
40 30 0:35 / /sys/fs/cgroup rw - tmpfs tmpfs rw
41 40 0:36 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
42 40 0:37 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
43 40 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
44 40 0:39 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
    const CGROUP: &str = "\
9:name=systemd:/
4:memory:/berth/c1
1:cpu:/berth/c1
0::/berth/c1
";

    #[test]
    fn hybrid_views() {
        let h = parse(MOUNTINFO, CGROUP);
        let names: Vec<_> = h.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu", "memory", "unified", "systemd"]);
        assert_eq!(h[0].host_dir, PathBuf::from("/sys/fs/cgroup/cpu/berth/c1"));
        assert!(h[2].v2);
        assert_eq!(
            h[2].host_dir,
            PathBuf::from("/sys/fs/cgroup/unified/berth/c1")
        );
        assert_eq!(h[3].host_dir, PathBuf::from("/sys/fs/cgroup/systemd"));
    }

    #[test]
    fn v2_only() {
        let mi = "30 1 0:25 / / rw - ext4 /dev/vda rw\n31 30 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = parse(mi, "0::/a/b\n");
        assert_eq!(
            h,
            vec![Hierarchy {
                name: String::new(),
                host_dir: "/sys/fs/cgroup/a/b".into(),
                v2: true
            }]
        );
    }
}
