//! Keeping the runtime binary out of a container's reach (CVE-2019-5736).
//!
//! Every invocation makes itself non-dumpable ([`crate::protect_self`]): a process in the
//! container can then not open the runtime's `/proc/PID/exe` — unless it holds
//! `CAP_SYS_PTRACE` over the runtime's user namespace, which a container without a user
//! namespace of its own has when the capability is granted (`--cap-add SYS_PTRACE`).
//! Only for those containers the runtime re-executes itself from a sealed, anonymous copy
//! of its binary (a memfd that can no longer be written), so that what such a process
//! could reach is that copy, not the file on disk. Everything else pays nothing.

use std::io::Write;
use std::os::unix::process::CommandExt;

use oci_spec::runtime::{Capability, LinuxCapabilities};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

use crate::error::{Error, Result};

/// Whether a process with these capabilities, in a container without its own user
/// namespace, needs the sealed copy.
pub(crate) fn needs_sealed_copy(caps: Option<&LinuxCapabilities>, own_userns: bool) -> bool {
    if own_userns {
        return false;
    }
    let has = |set: &Option<std::collections::HashSet<Capability>>| {
        set.as_ref()
            .is_some_and(|s| s.contains(&Capability::SysPtrace))
    };
    caps.is_some_and(|c| {
        has(c.bounding()) || has(c.permitted()) || has(c.effective()) || has(c.ambient())
    })
}

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Re-execute the current command from a sealed memfd copy of `/proc/self/exe`, unless
/// already running from one. Returns only if already sealed, or with an error.
pub(crate) fn ensure_sealed_copy() -> Result<()> {
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", "/proc/self/exe", e.into()))?;
    if rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS)) {
        return Ok(());
    }
    let memfd = rustix::fs::memfd_create(
        "berth-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| Error::sys("memfd_create", e))?;
    let mut src = std::fs::File::from(exe);
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("copy", "/proc/self/exe", e))?;
    dst.flush()
        .map_err(|e| Error::io("copy", "/proc/self/exe", e))?;
    rustix::fs::fcntl_add_seals(&dst, SEALS).map_err(|e| Error::sys("seal the runtime copy", e))?;
    let path = crate::paths::fd_path_of(&dst);
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "berth-runtime".into());
    // The kernel opens the file before closing close-on-exec descriptors, so a
    // close-on-exec memfd can be executed through its /proc/self/fd path.
    let err = std::process::Command::new(&path)
        .arg0(argv0)
        .args(args)
        .exec();
    Err(Error::io("re-execute from a sealed copy", path, err))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_ptrace_without_userns() {
        let mut c = LinuxCapabilities::default();
        assert!(!needs_sealed_copy(Some(&c), false));
        c.set_bounding(Some([Capability::SysPtrace].into_iter().collect()));
        assert!(needs_sealed_copy(Some(&c), false));
        assert!(!needs_sealed_copy(Some(&c), true));
        assert!(!needs_sealed_copy(None, false));
    }
}
