//! `mount_setattr(2)`, which rustix does not wrap.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::{Error, Result};

/// Mount attributes for [`mount_setattr_idmap`] (`MOUNT_ATTR_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr(pub u64);

impl MountAttr {
    /// Read-only.
    pub const RDONLY: Self = Self(0x1);
    /// No set-user-ID.
    pub const NOSUID: Self = Self(0x2);
    /// No device files.
    pub const NODEV: Self = Self(0x4);
    /// No execution.
    pub const NOEXEC: Self = Self(0x8);
    /// ID-mapped through a user namespace.
    pub const IDMAP: Self = Self(0x0010_0000);
}

#[repr(C)]
struct RawMountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Make the detached mount tree `mount` (from `open_tree(OPEN_TREE_CLONE)`) ID-mapped
/// through the user namespace `userns`, recursively if `recursive`.
pub fn mount_setattr_idmap(
    mount: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<()> {
    let attr = RawMountAttr {
        attr_set: MountAttr::IDMAP.0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns.as_raw_fd()).unwrap_or(0),
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is an empty NUL-terminated string, `attr` is a valid mount_attr
    // of the size passed, and both descriptors are borrowed for the call's duration.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const RawMountAttr,
            std::mem::size_of::<RawMountAttr>(),
        )
    };
    if ret == 0 { Ok(()) } else { Err(Error::last("mount_setattr(MOUNT_ATTR_IDMAP)")) }
}
