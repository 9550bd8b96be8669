//! Mounting one OCI mount entry inside the container root, through descriptors.
//!
//! Binds use `open_tree(OPEN_TREE_CLONE)` + `mount_setattr` + `move_mount`; other
//! filesystems use `fsopen`/`fsconfig`/`fsmount` + `move_mount`. The destination is always a
//! descriptor obtained with `RESOLVE_IN_ROOT`, never a path string, and attributes such as
//! read-only are applied to the detached mount *before* it becomes visible.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_sys::MountAttr;
use oci_spec::runtime::Mount;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use crate::error::{Error, Result};
use crate::paths::{ensure_in_root, Leaf};
use crate::rootfs::options::{self, MountOptions, Propagation};

/// Attach the detached mount `tree` onto the directory or file `target`.
pub(crate) fn attach(tree: BorrowedFd<'_>, target: BorrowedFd<'_>, dest: &Path) -> Result<()> {
    rustix::mount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| Error::io("move_mount onto", dest, e.into()))
}

/// Clone the mount tree at `source` (recursively if asked) as a detached mount.
pub(crate) fn clone_tree(dirfd: BorrowedFd<'_>, source: &Path, recursive: bool) -> Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if source.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    rustix::mount::open_tree(dirfd, source, flags)
        .map_err(|e| Error::io("open_tree (bind source)", source, e.into()))
}

/// mount_setattr changes the access-time mode only as a whole: setting `noatime` or
/// `strictatime` requires clearing the whole `MOUNT_ATTR__ATIME` field.
fn atime_clear(set: MountAttr, clear: MountAttr) -> MountAttr {
    if set.0 & MountAttr::ATIME_MASK.0 != 0 {
        clear.union(MountAttr::ATIME_MASK)
    } else {
        clear
    }
}

/// Apply per-mount and recursive attributes and propagation to a mount descriptor.
pub(crate) fn apply_attrs(mnt: BorrowedFd<'_>, o: &MountOptions, dest: &Path) -> Result<()> {
    let wrap = |e: berth_sys::Error| Error::Io {
        op: "mount_setattr",
        path: dest.to_path_buf(),
        source: e.source,
    };
    if !o.set.is_empty() || !o.clear.is_empty() {
        berth_sys::mount_setattr(mnt, false, o.set, atime_clear(o.set, o.clear), 0, None)
            .map_err(wrap)?;
    }
    if !o.rset.is_empty() || !o.rclear.is_empty() {
        berth_sys::mount_setattr(mnt, true, o.rset, atime_clear(o.rset, o.rclear), 0, None)
            .map_err(wrap)?;
    }
    Ok(())
}

/// Change the propagation type of the mount (tree) `mnt` refers to.
pub(crate) fn set_propagation(
    mnt: BorrowedFd<'_>,
    p: Propagation,
    op: &'static str,
    dest: &Path,
) -> Result<()> {
    berth_sys::mount_setattr(
        mnt,
        p.recursive,
        MountAttr::default(),
        MountAttr::default(),
        p.kind,
        None,
    )
    .map_err(|e| Error::Io {
        op,
        path: dest.to_path_buf(),
        source: e.source,
    })
}

/// Apply propagation changes to an attached mount.
pub(crate) fn apply_propagation(mnt: BorrowedFd<'_>, o: &MountOptions, dest: &Path) -> Result<()> {
    for p in &o.propagation {
        set_propagation(mnt, *p, "set mount propagation", dest)?;
    }
    Ok(())
}

/// Context for mounting entries.
#[derive(Debug)]
pub(crate) struct MountContext<'a> {
    /// The container root (the bind of the bundle's rootfs).
    pub root: BorrowedFd<'a>,
    /// User namespace to ID-map `idmap` binds with.
    pub idmap_userns: Option<BorrowedFd<'a>>,
    /// Host cgroup hierarchies, for `cgroup` mounts.
    pub cgroups: &'a crate::rootfs::cgroupfs::CgroupView,
    /// SELinux `context=` for the file systems the runtime creates (`linux.mountLabel`).
    pub mount_label: Option<&'a str>,
}

/// Mount one entry of `mounts`.
pub(crate) fn mount_entry(ctx: &MountContext<'_>, m: &Mount) -> Result<()> {
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if opts.bind || typ == "bind" {
        bind(ctx, m, &opts)
    } else if typ == "cgroup" || typ == "cgroup2" {
        crate::rootfs::cgroupfs::mount(ctx, dest, &opts)
    } else if typ.is_empty() || typ == "none" {
        Err(Error::InvalidConfig(format!(
            "mount {}: no type and not a bind",
            dest.display()
        )))
    } else {
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned());
        let mut opts = opts;
        if let Some(label) = ctx
            .mount_label
            .filter(|_| crate::lsm::selinux::labels_fs(typ))
        {
            opts.data.push(("context".into(), Some(label.into())));
        }
        let target = ensure_in_root(ctx.root, dest, Leaf::Dir, 0o755)?;
        let mnt = fs_mount(typ, source.as_deref().unwrap_or(typ), &opts, dest)?;
        attach(mnt.as_fd(), target.as_fd(), dest)?;
        apply_propagation(mnt.as_fd(), &opts, dest)
    }
}

/// A bind mount of a host path (relative to the bundle, which is the current directory).
fn bind(ctx: &MountContext<'_>, m: &Mount, opts: &MountOptions) -> Result<()> {
    let dest = m.destination();
    let source = m.source().as_deref().ok_or_else(|| {
        Error::InvalidConfig(format!("bind mount {} has no source", dest.display()))
    })?;
    let meta = std::fs::metadata(source).map_err(|e| Error::io("stat bind source", source, e))?;
    let leaf = if meta.is_dir() { Leaf::Dir } else { Leaf::File };
    let target = ensure_in_root(
        ctx.root,
        dest,
        leaf,
        if meta.is_dir() { 0o755 } else { 0o644 },
    )?;
    let cwd = rustix::fs::CWD;
    let tree = clone_tree(cwd, source, opts.recursive_bind)?;
    if opts.idmap {
        let userns = ctx.idmap_userns.ok_or_else(|| {
            Error::InvalidConfig(format!(
                "idmap mount {} without ID mappings",
                dest.display()
            ))
        })?;
        berth_sys::mount_setattr(
            tree.as_fd(),
            opts.recursive_bind,
            MountAttr::IDMAP,
            MountAttr::default(),
            0,
            Some(userns),
        )
        .map_err(|e| {
            if e.source.raw_os_error() == Some(libc::EINVAL) {
                // The file system of the source lacks FS_ALLOW_IDMAP on this kernel
                // (tmpfs gained it in 6.3, for instance).
                Error::Unsupported(format!(
                    "idmap mount {}: the file system of {} does not support ID-mapped mounts on this kernel",
                    dest.display(),
                    source.display()
                ))
            } else {
                Error::Io {
                    op: "idmap mount",
                    path: dest.to_path_buf(),
                    source: e.source,
                }
            }
        })?;
    }
    apply_attrs(tree.as_fd(), opts, dest)?;
    attach(tree.as_fd(), target.as_fd(), dest)?;
    apply_propagation(tree.as_fd(), opts, dest)
}

/// Create a new filesystem instance and return it as a detached mount.
pub(crate) fn fs_mount(
    typ: &str,
    source: &str,
    opts: &MountOptions,
    dest: &Path,
) -> Result<OwnedFd> {
    let fs = rustix::mount::fsopen(typ, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| Error::sys(format!("fsopen({typ}) for {}", dest.display()), e))?;
    let cfg = |what: &str, r: rustix::io::Result<()>| {
        r.map_err(|e| {
            Error::sys(
                format!("mount {} ({typ}): option {what}", dest.display()),
                e,
            )
        })
    };
    // Not every filesystem takes a source parameter (proc, sysfs ignore it); only fail on
    // errors other than "unknown parameter".
    match rustix::mount::fsconfig_set_string(&fs, "source", source) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => {}
        Err(e) => cfg("source", Err(e))?,
    }
    for (k, v) in &opts.data {
        match v {
            Some(v) => cfg(
                k,
                rustix::mount::fsconfig_set_string(&fs, k.as_str(), v.as_str()),
            )?,
            None => cfg(k, rustix::mount::fsconfig_set_flag(&fs, k.as_str()))?,
        }
    }
    cfg("(create)", rustix::mount::fsconfig_create(&fs))?;
    let attrs = MountAttrFlags::from_bits_retain(
        u32::try_from(opts.set.0).unwrap_or(0) & !MountAttrFlags::MOUNT_ATTR_IDMAP.bits(),
    );
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| Error::sys(format!("fsmount {} ({typ})", dest.display()), e))?;
    if !opts.rset.is_empty() || !opts.rclear.is_empty() {
        berth_sys::mount_setattr(
            mnt.as_fd(),
            true,
            opts.rset,
            atime_clear(opts.rset, opts.rclear),
            0,
            None,
        )
        .map_err(|e| Error::Io {
            op: "mount_setattr",
            path: dest.to_path_buf(),
            source: e.source,
        })?;
    }
    Ok(mnt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atime_modes_clear_the_whole_field() {
        let c = atime_clear(
            MountAttr::STRICTATIME.union(MountAttr::NOSUID),
            MountAttr::default(),
        );
        assert_eq!(c, MountAttr::ATIME_MASK);
        assert_eq!(
            atime_clear(MountAttr::NOSUID, MountAttr::RDONLY),
            MountAttr::RDONLY
        );
    }
}
