//! Small process-attribute system calls that rustix lacks or marks unsafe.

use std::ffi::CString;

use crate::{Error, Result};
use crate::clone::NamespaceFlags;

/// `unshare(2)`: move the calling process into new namespaces.
///
/// Only namespace flags are accepted (no `CLONE_FILES`/`CLONE_FS`/`CLONE_VM` style
/// flags), which is what makes this safe: it cannot detach state Rust code relies on.
pub fn unshare(flags: NamespaceFlags) -> Result<()> {
    let allowed = NamespaceFlags::MOUNT
        | NamespaceFlags::UTS
        | NamespaceFlags::IPC
        | NamespaceFlags::USER
        | NamespaceFlags::PID
        | NamespaceFlags::NET
        | NamespaceFlags::CGROUP
        | NamespaceFlags::TIME;
    if !flags.difference(allowed).is_empty() {
        return Err(Error {
            call: "unshare",
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    let bits = libc::c_int::try_from(flags.bits()).map_err(|_| Error {
        call: "unshare",
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: only namespace flags are passed (checked above); unsharing namespaces
    // does not affect memory safety of this process.
    let ret = unsafe { libc::unshare(bits) };
    if ret == 0 { Ok(()) } else { Err(Error::last("unshare")) }
}

/// Write the offsets of a time namespace created by `unshare(CLONE_NEWTIME)`; must happen
/// before any process enters it. `offsets` are (clock, seconds, nanoseconds) with clock
/// `"monotonic"` or `"boottime"`.
pub fn set_timens_offsets(offsets: &[(&str, i64, u32)]) -> Result<()> {
    let mut text = String::new();
    for (clock, secs, nanos) in offsets {
        text.push_str(&format!("{clock} {secs} {nanos}\n"));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|source| Error { call: "write /proc/self/timens_offsets", source })
}

/// Join a new, anonymous session keyring named `name`, so that the container does not
/// share the host user's keys.
pub fn join_session_keyring(name: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = CString::new(name).map_err(|_| Error {
        call: "keyctl",
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING reads one NUL-terminated string, which `name`
    // provides for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret >= 0 { Ok(()) } else { Err(Error::last("keyctl(JOIN_SESSION_KEYRING)")) }
}

/// `personality(2)`: set the execution domain (e.g. `PER_LINUX32`).
pub fn personality(persona: u32) -> Result<()> {
    // SAFETY: personality takes an integer and changes only the execution domain
    // flags, which affect future execve() calls, not this process's memory.
    let ret = unsafe { libc::personality(libc::c_ulong::from(persona)) };
    if ret == -1 { Err(Error::last("personality")) } else { Ok(()) }
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)` on the calling process.
pub fn ioprio_set(class: u32, level: u32) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let prio = libc::c_long::from((class << 13) | (level & 0x1fff));
    // SAFETY: integer-only arguments; no memory is passed to the kernel.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    if ret == 0 { Ok(()) } else { Err(Error::last("ioprio_set")) }
}

/// The scheduling attributes of `sched_setattr(2)`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    /// Size of this structure (filled in by [`sched_setattr`]).
    pub size: u32,
    /// Policy: `SCHED_OTHER` (0), `SCHED_FIFO` (1), `SCHED_RR` (2), `SCHED_BATCH` (3),
    /// `SCHED_IDLE` (5), `SCHED_DEADLINE` (6).
    pub sched_policy: u32,
    /// `SCHED_FLAG_*` bits.
    pub sched_flags: u64,
    /// Nice value for normal policies.
    pub sched_nice: i32,
    /// Priority for real-time policies.
    pub sched_priority: u32,
    /// Deadline runtime (ns).
    pub sched_runtime: u64,
    /// Deadline (ns).
    pub sched_deadline: u64,
    /// Deadline period (ns).
    pub sched_period: u64,
}

/// `sched_setattr(2)` on the calling process.
pub fn sched_setattr(attr: &SchedAttr) -> Result<()> {
    let mut attr = *attr;
    attr.size = u32::try_from(std::mem::size_of::<SchedAttr>()).unwrap_or(48);
    // SAFETY: `attr` is a valid, initialised sched_attr whose size field matches the
    // layout; the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret == 0 { Ok(()) } else { Err(Error::last("sched_setattr")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshare_refuses_non_namespace_flags() {
        let err = unshare(NamespaceFlags::PARENT).err();
        assert!(err.is_some_and(|e| e.errno() == Some(libc::EINVAL)));
    }
}
