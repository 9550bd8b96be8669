//! Blocking signals and reading them from a `signalfd(2)`, for runtimes that forward
//! signals to a container without installing handlers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::{Error, Result};

/// A signalfd receiving the signals blocked by [`block_signals`].
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

fn sigset(signals: &[i32]) -> Result<libc::sigset_t> {
    // SAFETY: sigset_t is a plain bit array; zeroed then sigemptyset is its valid empty value.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &sig in signals {
        // SAFETY: as above; sigaddset validates `sig` and returns -1 on a bad number.
        if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
            return Err(Error::last("sigaddset"));
        }
    }
    Ok(set)
}

/// Block `signals` for the calling thread and return a signalfd that reads them.
pub fn block_signals(signals: &[i32]) -> Result<SignalFd> {
    let set = sigset(signals)?;
    // SAFETY: `set` is a valid sigset_t; the old mask is not requested.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(Error::last("sigprocmask"));
    }
    // SAFETY: `set` is valid; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last("signalfd"));
    }
    // SAFETY: signalfd returned a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(SignalFd { fd })
}

/// Unblock every signal (used in a child before `execve`, which inherits the mask).
pub fn unblock_all_signals() -> Result<()> {
    // SAFETY: as in `sigset`.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    unsafe { libc::sigfillset(&mut set) };
    // SAFETY: `set` is valid; the old mask is not requested.
    if unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(Error::last("sigprocmask"));
    }
    Ok(())
}

impl SignalFd {
    /// Read the next pending signal number; blocks until one arrives.
    pub fn read(&self) -> Result<i32> {
        // SAFETY: signalfd_siginfo is plain old data; zero is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is a writable buffer of exactly `size` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n < 0 {
                let err = Error::last("read signalfd");
                if err.errno() == Some(libc::EINTR) {
                    continue;
                }
                return Err(err);
            }
            return i32::try_from(info.ssi_signo).map_err(|_| Error {
                call: "read signalfd",
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
