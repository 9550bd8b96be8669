//! `clone3(2)` used like `fork(2)`, with namespace flags and `CLONE_INTO_CGROUP`.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::{Error, Result};

/// Namespace and process flags accepted by [`clone3`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceFlags(u64);

impl NamespaceFlags {
    /// New mount namespace.
    pub const MOUNT: Self = Self(libc::CLONE_NEWNS as u64);
    /// New UTS namespace.
    pub const UTS: Self = Self(libc::CLONE_NEWUTS as u64);
    /// New IPC namespace.
    pub const IPC: Self = Self(libc::CLONE_NEWIPC as u64);
    /// New user namespace.
    pub const USER: Self = Self(libc::CLONE_NEWUSER as u64);
    /// New PID namespace.
    pub const PID: Self = Self(libc::CLONE_NEWPID as u64);
    /// New network namespace.
    pub const NET: Self = Self(libc::CLONE_NEWNET as u64);
    /// New cgroup namespace.
    pub const CGROUP: Self = Self(libc::CLONE_NEWCGROUP as u64);
    /// New time namespace (clone3 only).
    pub const TIME: Self = Self(0x80);
    /// The child's parent is the caller's parent.
    pub const PARENT: Self = Self(libc::CLONE_PARENT as u64);

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }
    /// The raw bits, as `unshare(2)` and `clone3(2)` take them.
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Whether all of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// This set without `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl std::ops::BitOr for NamespaceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for NamespaceFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

/// What to create the child with.
#[derive(Debug, Default)]
pub struct CloneArgs<'a> {
    /// Namespaces to create (and `PARENT`).
    pub flags: NamespaceFlags,
    /// Place the child straight into this cgroup v2 directory (`CLONE_INTO_CGROUP`).
    pub cgroup: Option<BorrowedFd<'a>>,
    /// Signal sent to the parent when the child exits; `SIGCHLD` when `None`.
    pub exit_signal: Option<i32>,
}

/// Which side of the clone the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the child.
    Child,
    /// In the parent; the child's PID as the caller's PID namespace sees it.
    Parent(i32),
}

#[repr(C)]
#[derive(Default)]
struct RawCloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Create a child process like `fork(2)` does, optionally in new namespaces and straight
/// into a cgroup v2 directory.
///
/// Refuses to run in a multi-threaded process: the child of a multi-threaded fork may only
/// call async-signal-safe functions, and Berth's children run ordinary Rust code.
pub fn clone3(args: &CloneArgs<'_>) -> Result<Forked> {
    if crate::thread_count()? != 1 {
        return Err(Error {
            call: "clone3",
            source: std::io::Error::other("refusing to fork a multi-threaded process"),
        });
    }
    let mut raw = RawCloneArgs {
        flags: args.flags.bits(),
        exit_signal: u64::try_from(args.exit_signal.unwrap_or(libc::SIGCHLD)).unwrap_or(17),
        ..RawCloneArgs::default()
    };
    if args.flags.contains(NamespaceFlags::PARENT) {
        // The kernel takes the exit signal from the caller then, and refuses another one.
        raw.exit_signal = 0;
    }
    if let Some(cg) = args.cgroup {
        raw.flags |= CLONE_INTO_CGROUP;
        raw.cgroup = u64::try_from(cg.as_raw_fd()).unwrap_or(0);
    }
    // SAFETY: `raw` is a fully initialised clone_args of the size we pass. Without
    // CLONE_VM the child gets a copy of the address space, exactly as with fork(2); we
    // checked above that the process has a single thread, so no lock can be held by a
    // thread that does not exist in the child and the child may run arbitrary code.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut raw as *mut RawCloneArgs,
            std::mem::size_of::<RawCloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Error::last("clone3")),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(i32::try_from(pid).unwrap_or(-1))),
    }
}
