//! The container's view of `/sys/fs/cgroup` (OCI mount type `cgroup`).
//!
//! The cgroup manager tells where the container's cgroup is in each host hierarchy, so that
//! each can be bound at the container's own cgroup (independent of when the container's
//! cgroup namespace is created):
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

/// The view of the container's cgroups, from what the cgroup manager placed it in.
pub(crate) fn view(dirs: &[berth_cgroups::CgroupDir], own_namespace: bool) -> CgroupView {
    let hierarchies = dirs
        .iter()
        .filter_map(|d| {
            let rel = d.mountpoint.strip_prefix("/sys/fs/cgroup").ok()?;
            let name = rel.to_str()?.to_string();
            if name.contains('/') {
                return None;
            }
            Some(Hierarchy {
                name,
                host_dir: d.dir.clone(),
                v2: d.unified,
            })
        })
        .collect();
    CgroupView {
        hierarchies,
        own_namespace,
    }
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
    // Attach the tmpfs first: kernels before 6.15 refuse to mount onto a directory of a
    // detached mount (EINVAL), so the binds go into the tmpfs once it is in place.
    attach(tmp.as_fd(), target.as_fd(), dest)?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(mountpoint: &str, unified: bool) -> berth_cgroups::CgroupDir {
        berth_cgroups::CgroupDir {
            controllers: vec![],
            unified,
            mountpoint: mountpoint.into(),
            path: "/berth/c1".into(),
            dir: Path::new(mountpoint).join("berth/c1"),
        }
    }

    #[test]
    fn hybrid_views() {
        let v = view(
            &[
                dir("/sys/fs/cgroup/cpu", false),
                dir("/sys/fs/cgroup/unified", true),
            ],
            false,
        );
        let names: Vec<_> = v.hierarchies.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu", "unified"]);
        assert_eq!(
            v.hierarchies[0].host_dir,
            PathBuf::from("/sys/fs/cgroup/cpu/berth/c1")
        );
        assert!(v.hierarchies[1].v2);
    }

    #[test]
    fn v2_only_and_foreign_mounts() {
        let v = view(
            &[dir("/sys/fs/cgroup", true), dir("/mnt/elsewhere", false)],
            true,
        );
        assert_eq!(v.hierarchies.len(), 1);
        assert_eq!(v.hierarchies[0].name, "");
    }
}
