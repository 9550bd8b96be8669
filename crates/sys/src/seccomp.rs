//! Loading a compiled seccomp BPF program.

use std::os::fd::{FromRawFd, OwnedFd};

use crate::{Error, Result};

/// One classic-BPF instruction (`struct sock_filter`), as libseccomp exports them.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Generic field.
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;

/// Install `program` with `seccomp(SECCOMP_SET_MODE_FILTER, flags, …)`.
///
/// Returns the user-notification listener when `flags` has `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
/// The caller must have set `no_new_privs` or hold `CAP_SYS_ADMIN`.
pub fn seccomp_set_mode_filter(program: &[SockFilter], flags: u32) -> Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
    let len = libc::c_ushort::try_from(program.len()).map_err(|_| Error {
        call: "seccomp",
        source: std::io::Error::from_raw_os_error(libc::E2BIG),
    })?;
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: `prog` points at `len` valid sock_filter structs borrowed for the call;
    // the kernel copies the program before returning.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &prog as *const SockFprog,
        )
    };
    if ret < 0 {
        return Err(Error::last("seccomp(SECCOMP_SET_MODE_FILTER)"));
    }
    if flags & FLAG_NEW_LISTENER != 0 && ret > 0 {
        let fd = i32::try_from(ret).map_err(|_| Error {
            call: "seccomp",
            source: std::io::Error::from_raw_os_error(libc::EBADF),
        })?;
        // SAFETY: with NEW_LISTENER the kernel returns a fresh descriptor that nothing
        // else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    Ok(None)
}
