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
    /// Access-time mask (`MOUNT_ATTR__ATIME`); relatime is 0 inside it.
    pub const ATIME_MASK: Self = Self(0x70);
    /// No access-time updates.
    pub const NOATIME: Self = Self(0x10);
    /// Always update access times.
    pub const STRICTATIME: Self = Self(0x20);
    /// No directory access-time updates.
    pub const NODIRATIME: Self = Self(0x80);
    /// ID-mapped through a user namespace.
    pub const IDMAP: Self = Self(0x0010_0000);
    /// No symlink following on this mount.
    pub const NOSYMFOLLOW: Self = Self(0x0020_0000);

    /// Both sets of bits.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[repr(C)]
struct RawMountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Change the attributes of the mount (tree) `mount` refers to: `mount_setattr(2)` on the
/// descriptor itself (`AT_EMPTY_PATH`), recursively when `recursive`.
///
/// `set`/`clear` are `MOUNT_ATTR_*` bits; `propagation` is one of `MS_PRIVATE`, `MS_SHARED`,
/// `MS_SLAVE`, `MS_UNBINDABLE` or 0; `userns` is required with [`MountAttr::IDMAP`].
pub fn mount_setattr(
    mount: BorrowedFd<'_>,
    recursive: bool,
    set: MountAttr,
    clear: MountAttr,
    propagation: u64,
    userns: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let attr = RawMountAttr {
        attr_set: set.0,
        attr_clr: clear.0,
        propagation,
        userns_fd: userns.map_or(0, |fd| u64::try_from(fd.as_raw_fd()).unwrap_or(0)),
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is an empty NUL-terminated string, `attr` is a valid mount_attr
    // of the size passed, and the descriptors are borrowed for the call's duration.
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
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::last("mount_setattr"))
    }
}
