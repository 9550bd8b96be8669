//! `run`: create, start and (unless detached) wait for a container, forwarding signals
//! and, when the runtime holds the terminal itself, the pty; then delete it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Signal, WaitOptions};

use crate::container::create::Mode;
use crate::container::start::start_and_report;
use crate::container::{CreateOptions, Runtime};
use crate::error::{Error, Result};
use crate::state::Status;

/// Signals forwarded to the container's init while `run` waits.
const FORWARDED: [i32; 11] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

impl Runtime {
    /// Create and start container `id`. With `detach`, return once it runs (exit code 0);
    /// otherwise wait for it, delete it and return its exit code (128+N for signal N).
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
        let spawned = self.spawn(id, opts, Mode::Run)?;
        let pid = spawned.record.pid;
        let started = start_and_report(
            |msg, fd| spawned.channel.send(msg, Some(fd)),
            spawned.record.hook_state(Status::Created),
        );
        if let Err(e) = started {
            let _ = self.delete(id, true);
            return Err(e);
        }
        if let Some(ps) = spawned
            .record
            .hooks
            .as_ref()
            .and_then(|h| h.poststart().clone())
        {
            for e in crate::hooks::run_warn(
                "poststart",
                &ps,
                spawned.record.hook_state(Status::Running).as_bytes(),
            ) {
                crate::warn(&e.to_string());
            }
        }
        if detach {
            return Ok(0);
        }
        let code = wait_foreground(pid, spawned.console_master);
        let deleted = self.delete(id, true);
        let code = code?;
        deleted?;
        Ok(code)
    }
}

/// Wait for the child `pid`, forwarding signals and copying the terminal.
pub(crate) fn wait_foreground(pid: i32, master: Option<OwnedFd>) -> Result<i32> {
    let sigfd = berth_sys::block_signals(&FORWARDED)?;
    let child = Pid::from_raw(pid).ok_or_else(|| Error::Init(format!("bad pid {pid}")))?;
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let _raw = match &master {
        Some(m) if rustix::termios::isatty(stdin) => {
            if let Ok(ws) = rustix::termios::tcgetwinsize(stdin) {
                let _ = rustix::termios::tcsetwinsize(m, ws);
            }
            RawMode::enter(stdin)
        }
        _ => None,
    };
    let mut stdin_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if let Some(code) = try_reap(child)? {
            if let Some(m) = &master {
                drain(m.as_fd(), stdout, &mut buf);
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(&sigfd, PollFlags::IN)];
        if let Some(m) = &master {
            fds.push(PollFd::new(m, PollFlags::IN));
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::sys("poll", e)),
        }
        let sig_ready = fds.first().is_some_and(|f| !f.revents().is_empty());
        let master_ready = fds.get(1).map(|f| f.revents());
        let stdin_ready = fds.get(2).map(|f| f.revents());
        drop(fds);
        if sig_ready {
            let sig = sigfd.read()?;
            if sig == libc::SIGWINCH {
                if let Some(m) = &master {
                    if let Ok(ws) = rustix::termios::tcgetwinsize(stdin) {
                        let _ = rustix::termios::tcsetwinsize(m, ws);
                    }
                }
            } else if sig != libc::SIGCHLD {
                if let Some(s) = Signal::from_named_raw(sig) {
                    let _ = rustix::process::kill_process(child, s);
                }
            }
        }
        if let (Some(m), Some(ev)) = (&master, master_ready) {
            if !ev.is_empty() && !copy(m.as_fd(), stdout, &mut buf) {
                // The pty closed: every holder of the slave exited; reap below.
            }
        }
        if let (Some(m), Some(ev)) = (&master, stdin_ready) {
            if !ev.is_empty() && !copy(stdin, m.as_fd(), &mut buf) {
                stdin_open = false;
            }
        }
    }
}

fn try_reap(child: Pid) -> Result<Option<i32>> {
    match rustix::process::waitpid(Some(child), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => {
            if let Some(code) = status.exit_status() {
                Ok(Some(code))
            } else if let Some(sig) = status.terminating_signal() {
                Ok(Some(128 + sig))
            } else {
                Ok(None)
            }
        }
        Ok(None) => Ok(None),
        Err(rustix::io::Errno::CHILD) => Ok(Some(0)),
        Err(e) => Err(Error::sys("waitpid", e)),
    }
}

/// Copy what is available from `from` to `to`; false on EOF or error.
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
    match rustix::io::read(from, &mut *buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => write_all(to, buf.get(..n).unwrap_or_default()),
    }
}

fn write_all(to: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(to, data) {
            Ok(0) => return false,
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Copy what remains in the pty after the process exited.
fn drain(master: BorrowedFd<'_>, to: BorrowedFd<'_>, buf: &mut [u8]) {
    loop {
        let mut fds = [PollFd::new(&master, PollFlags::IN)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if !matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0) {
            return;
        }
        if !copy(master, to, buf) {
            return;
        }
    }
}

/// The caller's terminal in raw mode, restored on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: rustix::termios::Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ =
            rustix::termios::tcsetattr(self.fd, rustix::termios::OptionalActions::Now, &self.saved);
    }
}
