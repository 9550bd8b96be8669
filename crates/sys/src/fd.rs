//! File-descriptor table helpers.

use crate::{Error, Result};

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Mark every descriptor from `first` upward close-on-exec, so that nothing the runtime
/// opened (or inherited) leaks into the container's process (CVE-2024-21626).
///
/// Uses `close_range(2)` with `CLOSE_RANGE_CLOEXEC` (Linux 5.11); on older kernels walks
/// `/proc/self/fd`.
pub fn close_range_cloexec(first: u32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only sets the
    // close-on-exec flag, which cannot invalidate any descriptor Rust code owns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = Error::last("close_range");
    if err.errno() != Some(libc::ENOSYS) && err.errno() != Some(libc::EINVAL) {
        return Err(err);
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|source| Error {
        call: "read /proc/self/fd",
        source,
    })?;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(fd).is_ok_and(|f| f >= first) {
            // SAFETY: F_SETFD only changes the descriptor's close-on-exec flag; a stale
            // number (the read_dir handle itself, closed meanwhile) just yields EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}
