//! Small process-attribute system calls that rustix lacks or marks unsafe.

use std::ffi::CString;

use crate::clone::NamespaceFlags;
use crate::{Error, Result};

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
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::last("unshare"))
    }
}

/// Write the offsets of a time namespace created by `unshare(CLONE_NEWTIME)`; must happen
/// before any process enters it. `offsets` are (clock, seconds, nanoseconds) with clock
/// `"monotonic"` or `"boottime"`.
pub fn set_timens_offsets(offsets: &[(&str, i64, u32)]) -> Result<()> {
    let mut text = String::new();
    for (clock, secs, nanos) in offsets {
        text.push_str(&format!("{clock} {secs} {nanos}\n"));
    }
    std::fs::write("/proc/self/timens_offsets", text).map_err(|source| Error {
        call: "write /proc/self/timens_offsets",
        source,
    })
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
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret >= 0 {
        Ok(())
    } else {
        Err(Error::last("keyctl(JOIN_SESSION_KEYRING)"))
    }
}

/// `personality(2)`: set the execution domain (e.g. `PER_LINUX32`).
pub fn personality(persona: u32) -> Result<()> {
    // SAFETY: personality takes an integer and changes only the execution domain
    // flags, which affect future execve() calls, not this process's memory.
    let ret = unsafe { libc::personality(libc::c_ulong::from(persona)) };
    if ret == -1 {
        Err(Error::last("personality"))
    } else {
        Ok(())
    }
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)` on the calling process.
pub fn ioprio_set(class: u32, level: u32) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let prio = libc::c_long::from((class << 13) | (level & 0x1fff));
    // SAFETY: integer-only arguments; no memory is passed to the kernel.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::last("ioprio_set"))
    }
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
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::last("sched_setattr"))
    }
}

/// Bring the loopback interface of the current network namespace up (as a new network
/// namespace starts with it down).
pub fn loopback_up() -> Result<()> {
    // SAFETY: plain socket creation; the descriptor is owned by `sock` below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last("socket"));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags inside `req`, which is a
    // valid, writable ifreq for the duration of the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Error::last("ioctl(SIOCGIFFLAGS lo)"));
    }
    // SAFETY: the union member ifru_flags was just filled in by the kernel.
    unsafe {
        req.ifr_ifru.ifru_flags |=
            libc::c_short::try_from(libc::IFF_UP | libc::IFF_RUNNING).unwrap_or(0x41)
    };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Error::last("ioctl(SIOCSIFFLAGS lo)"));
    }
    Ok(())
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
