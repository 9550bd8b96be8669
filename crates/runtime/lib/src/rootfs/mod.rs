//! Building the container's root filesystem, in the container's mount namespace.
//!
//! Lifecycle (all in the init process):
//! 1. [`prepare`]: make `/` private (or slave) so nothing leaks back to the host, bind the
//!    bundle's rootfs onto itself, mount every `mounts` entry through descriptors, create
//!    the default and configured devices and the `/dev` links.
//! 2. [`finish`]: sysctls, hostname, masked and read-only paths — still before pivoting,
//!    so that the host's `/dev/null` (verified to be the null device) can be cloned over
//!    masked files, and everything is addressed through the root's descriptor.
//! 3. `createContainer` hooks run (still able to see the host's paths).
//! 4. [`pivot`]: `pivot_root` into the new root and detach the old one (or `MS_MOVE` +
//!    `chroot` with `--no-pivot`).
//! 5. [`seal`]: read-only root and the requested root propagation.

pub(crate) mod cgroupfs;
pub(crate) mod devices;
pub(crate) mod mounts;
pub(crate) mod options;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_sys::MountAttr;
use oci_spec::runtime::Spec;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

use crate::error::{Error, Result};
use crate::paths::{open_in_root, try_open_in_root};
use crate::rootfs::mounts::{attach, clone_tree, fs_mount, MountContext};
use crate::rootfs::options::{MountOptions, Propagation, MS_PRIVATE, MS_SLAVE};

/// `PROC_SUPER_MAGIC`.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Inputs of the root filesystem set-up.
#[derive(Debug)]
pub(crate) struct RootfsPlan<'a> {
    pub spec: &'a Spec,
    /// Absolute path of the bundle's rootfs on the host.
    pub rootfs: PathBuf,
    /// The container has its own user namespace (bind devices instead of mknod).
    pub userns: bool,
    pub cgroups: cgroupfs::CgroupView,
    /// Per entry of `mounts`: the user namespace an `idmap` bind is mapped through.
    pub idmaps: &'a [Option<BorrowedFd<'a>>],
}

/// The propagation requested by `linux.rootfsPropagation`, if any.
fn requested_propagation(spec: &Spec) -> Result<Option<Propagation>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    {
        None => Ok(None),
        Some(p) if p.is_empty() => Ok(None),
        Some(p) => Propagation::parse(&p)
            .map(Some)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown rootfsPropagation {p:?}"))),
    }
}

/// Stage 1: returns a descriptor of the container root mount.
pub(crate) fn prepare(plan: &RootfsPlan<'_>) -> Result<OwnedFd> {
    // Cut propagation towards the host first. Slave keeps receiving host mounts when asked
    // for (r)slave; everything else starts private and gets its final type in `finish`.
    let initial = match requested_propagation(plan.spec)? {
        Some(p) if p.kind == MS_SLAVE => MountPropagationFlags::DOWNSTREAM,
        _ => MountPropagationFlags::PRIVATE,
    };
    rustix::mount::mount_change("/", initial | MountPropagationFlags::REC)
        .map_err(|e| Error::sys("make / private in the container's mount namespace", e))?;

    let rootfs_dir = rustix::fs::open(
        &plan.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open rootfs", &plan.rootfs, e.into()))?;
    let root = clone_tree(rootfs_dir.as_fd(), Path::new(""), true)?;
    attach(root.as_fd(), rootfs_dir.as_fd(), &plan.rootfs)?;

    let mount_label = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty());
    if let Some(label) = mount_label {
        crate::lsm::selinux::require_enabled("mountLabel", label)?;
    }
    let mut has_pts = false;
    let entries = plan.spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in entries.iter().enumerate() {
        let ctx = MountContext {
            root: root.as_fd(),
            idmap_userns: plan.idmaps.get(i).copied().flatten(),
            cgroups: &plan.cgroups,
            mount_label,
        };
        mounts::mount_entry(&ctx, m)?;
        if m.destination() == Path::new("/dev/pts") {
            has_pts = true;
        }
    }

    let spec_devices = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
        .iter()
        .map(devices::from_spec)
        .collect::<Result<Vec<_>>>()?;
    for d in devices::defaults() {
        if !spec_devices.iter().any(|s| s.path == d.path) {
            devices::create(root.as_fd(), &d, plan.userns)?;
        }
    }
    for d in &spec_devices {
        devices::create(root.as_fd(), d, plan.userns)?;
    }
    devices::links(root.as_fd(), has_pts)?;
    Ok(root)
}

/// Stage 3: make `root` the process's `/`. Returns a descriptor of the new `/`.
pub(crate) fn pivot(root: &OwnedFd, no_pivot: bool) -> Result<OwnedFd> {
    rustix::process::fchdir(root).map_err(|e| Error::sys("chdir into rootfs", e))?;
    if no_pivot {
        rustix::mount::mount_move(".", "/").map_err(|e| Error::sys("move rootfs to /", e))?;
        rustix::process::chroot(".").map_err(|e| Error::sys("chroot", e))?;
    } else {
        rustix::process::pivot_root(".", ".").map_err(|e| Error::sys("pivot_root", e))?;
        // The old root now sits on top of the new one; detach it without letting the
        // unmount propagate to the host.
        rustix::mount::mount_change(
            ".",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )
        .map_err(|e| Error::sys("make the old root a slave", e))?;
        rustix::mount::unmount(".", UnmountFlags::DETACH)
            .map_err(|e| Error::sys("detach the old root", e))?;
    }
    rustix::process::chdir("/").map_err(|e| Error::sys("chdir /", e))?;
    rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open new root", e))
}

/// Opens the host's `/dev/null` (before pivoting) and checks that it is the real device.
pub(crate) fn open_dev_null() -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        "/dev/null",
        OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", "/dev/null", e.into()))?;
    if !devices::is_char_device(fd.as_fd(), 1, 3) {
        return Err(Error::Unsupported(
            "/dev/null is not the null device".into(),
        ));
    }
    Ok(fd)
}

/// Check that `/proc` inside the container is a real procfs mount, not something an image
/// or a volume put there (CVE-2019-16884).
pub(crate) fn verify_procfs(fd: BorrowedFd<'_>, what: &Path) -> Result<()> {
    let st = rustix::fs::fstatfs(fd).map_err(|e| Error::io("statfs", what, e.into()))?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    if i64::from(st.f_type as i64) != PROC_SUPER_MAGIC {
        return Err(Error::Unsupported(format!(
            "{} is not on procfs",
            what.display()
        )));
    }
    Ok(())
}

/// Stage 2: sysctls, hostname, masked and read-only paths.
pub(crate) fn finish(
    spec: &Spec,
    root: BorrowedFd<'_>,
    dev_null: BorrowedFd<'_>,
    has_uts: bool,
) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    if let Some(sysctl) = linux.sysctl() {
        let mut keys: Vec<_> = sysctl.iter().collect();
        keys.sort();
        for (key, value) in keys {
            write_sysctl(root, key, value)?;
        }
    }
    if has_uts {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::sethostname(h.as_bytes()).map_err(|e| Error::sys("sethostname", e))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::setdomainname(d.as_bytes())
                .map_err(|e| Error::sys("setdomainname", e))?;
        }
    }
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        mask(root, Path::new(p), dev_null)?;
    }
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        make_readonly(root, Path::new(p))?;
    }
    Ok(())
}

/// Stage 5: read-only root and final propagation, on the new `/`.
pub(crate) fn seal(spec: &Spec, root: BorrowedFd<'_>) -> Result<()> {
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        berth_sys::mount_setattr(
            root,
            false,
            MountAttr::RDONLY,
            MountAttr::default(),
            0,
            None,
        )
        .map_err(|e| Error::Io {
            op: "make root read-only",
            path: "/".into(),
            source: e.source,
        })?;
    }
    if let Some(p) = requested_propagation(spec)? {
        if p.kind != MS_PRIVATE || !p.recursive {
            mounts::set_propagation(root, p, "set root propagation", Path::new("/"))?;
        }
    }
    Ok(())
}

fn write_sysctl(root: BorrowedFd<'_>, key: &str, value: &str) -> Result<()> {
    let proc_sys = open_in_root(
        root,
        Path::new("/proc/sys"),
        OFlags::PATH | OFlags::DIRECTORY,
    )?;
    verify_procfs(proc_sys.as_fd(), Path::new("/proc/sys"))?;
    let rel = key.replace('.', "/");
    let path = Path::new("/proc/sys").join(&rel);
    let fd = rustix::fs::openat2(
        &proc_sys,
        rel.as_str(),
        OFlags::WRONLY | OFlags::CLOEXEC | OFlags::TRUNC,
        Mode::empty(),
        rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| Error::io("open sysctl", &path, e.into()))?;
    rustix::io::write(&fd, value.as_bytes())
        .map_err(|e| Error::io("write sysctl", &path, e.into()))?;
    Ok(())
}

/// Hide `path`: a read-only empty tmpfs over a directory, `/dev/null` over anything else.
fn mask(root: BorrowedFd<'_>, path: &Path, dev_null: BorrowedFd<'_>) -> Result<()> {
    let Some(target) = try_open_in_root(root, path, OFlags::PATH)? else {
        return Ok(());
    };
    let st = rustix::fs::fstat(&target).map_err(|e| Error::io("stat", path, e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
        let opts = MountOptions {
            set: MountAttr::RDONLY
                .union(MountAttr::NOSUID)
                .union(MountAttr::NODEV)
                .union(MountAttr::NOEXEC),
            data: vec![("mode".into(), Some("755".into()))],
            ..MountOptions::default()
        };
        let mnt = fs_mount("tmpfs", "tmpfs", &opts, path)?;
        attach(mnt.as_fd(), target.as_fd(), path)
    } else {
        let tree = clone_tree(dev_null, Path::new(""), false)?;
        attach(tree.as_fd(), target.as_fd(), path)
    }
}

/// Bind `path` onto itself read-only (recursively).
fn make_readonly(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let Some(target) = try_open_in_root(root, path, OFlags::PATH)? else {
        return Ok(());
    };
    let tree = clone_tree(target.as_fd(), Path::new(""), true)?;
    berth_sys::mount_setattr(
        tree.as_fd(),
        true,
        MountAttr::RDONLY,
        MountAttr::default(),
        0,
        None,
    )
    .map_err(|e| Error::Io {
        op: "make read-only",
        path: path.to_path_buf(),
        source: e.source,
    })?;
    attach(tree.as_fd(), target.as_fd(), path)
}
