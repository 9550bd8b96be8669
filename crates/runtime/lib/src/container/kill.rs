//! `kill`: send a signal to the container's init, or to all of its processes.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::container::{wrong_state, Runtime};
use crate::error::{Error, Result};
use crate::state::{Record, Status};

/// Parse a signal given as a number, `KILL` or `SIGKILL` (case-insensitive).
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || Error::InvalidConfig(format!("unknown signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: [(&str, i32); 31] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
    ];
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    if name == "SYS" {
        return Ok(31);
    }
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+').parse().map_err(|_| bad())?
        };
        return Ok(34 + off).and_then(|n| if n <= 64 { Ok(n) } else { Err(bad()) });
    }
    Err(bad())
}

/// A pidfd for the record's init, if it still is the same process.
pub(crate) fn init_pidfd(r: &Record) -> Option<OwnedFd> {
    let pid = Pid::from_raw(r.pid)?;
    let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok()?;
    // Check after opening: a pidfd pins the process, so a match now cannot be a recycled PID.
    r.init_alive().then_some(fd)
}

/// Wait until the process behind `pidfd` has exited, up to `timeout`.
pub(crate) fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = rustix::time::Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

fn to_signal(sig: i32) -> Result<Signal> {
    Signal::from_named_raw(sig).ok_or_else(|| {
        Error::Unsupported(format!("sending real-time signal {sig} is not supported"))
    })
}

impl Runtime {
    /// Send `signal` to the init (or, with `all`, to every process in the container's cgroup).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status == Status::Stopped && !all {
            return Err(wrong_state(id, status, "signal it: container not running"));
        }
        if all {
            let cg = berth_cgroups::Manager::from_record(&record.cgroup)?;
            return cg.kill_all(signal).map_err(Into::into);
        }
        let fd =
            init_pidfd(&record).ok_or_else(|| wrong_state(id, Status::Stopped, "signal it"))?;
        let sig = to_signal(signal)?;
        rustix::process::pidfd_send_signal(&fd, sig)
            .map_err(|e| Error::sys(format!("send signal {signal} to {id}"), e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGRTMIN+2").unwrap(), 36);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
    }
}
