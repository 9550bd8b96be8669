//! Safe wrappers over the Linux system calls that `rustix` does not cover (or covers only
//! as `unsafe`). This is the only Berth crate allowed to contain `unsafe`; every other crate
//! declares `#![forbid(unsafe_code)]` and reaches the kernel through `rustix` or here.
//!
//! Each raw call is wrapped once, in a small function that returns [`Result`], and each
//! `unsafe` block states the invariant that makes it sound.
#![warn(missing_docs)]

mod bpf;
mod clone;
mod fd;
mod misc;
mod mount;
mod seccomp;
mod signal;

pub use bpf::{
    attach_device_program, device_program_ids, DeviceAccess, DeviceKind, DeviceProgram, DeviceRule,
};
pub use clone::{clone3, CloneArgs, Forked, NamespaceFlags};
pub use fd::close_range_cloexec;
pub use misc::{
    ioprio_set, join_session_keyring, loopback_up, personality, sched_setattr, set_timens_offsets,
    unshare, SchedAttr,
};
pub use mount::{mount_setattr, MountAttr};
pub use seccomp::{seccomp_set_mode_filter, SockFilter};
pub use signal::{block_signals, unblock_all_signals, SignalFd};

use berth_errdefs::{ErrorKind, HasKind};

/// A failed system call: which call, and the errno it returned.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct Error {
    /// The system call (or wrapper) that failed.
    pub call: &'static str,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

impl Error {
    pub(crate) fn last(call: &'static str) -> Self {
        Error {
            call,
            source: std::io::Error::last_os_error(),
        }
    }

    /// The errno, if the OS gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::from_io(&self.source)
    }
}

/// Result of a wrapped system call.
pub type Result<T> = std::result::Result<T, Error>;

/// Number of threads of the calling process, read from `/proc/self/stat`.
///
/// Used to refuse `fork`-like calls in a multi-threaded process, where only
/// async-signal-safe code could run in the child.
pub fn thread_count() -> Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|source| Error {
        call: "read /proc/self/stat",
        source,
    })?;
    // The command name (field 2) may contain spaces and parentheses; fields after the
    // last ')' are space separated. num_threads is field 20, i.e. the 18th after ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(17)
        .and_then(|s| s.parse().ok())
        .ok_or(Error {
            call: "parse /proc/self/stat",
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })
}
