//! `berth-monitor DIR`: the per-container monitor (see the library's docs for the
//! protocol). Single-threaded: it calls the runtime library in process, which forks.
#![forbid(unsafe_code)]

mod console;
mod io;
mod logfile;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_errdefs::{ErrorKind, HasKind};
use berth_monitor::{MonitorConfig, Reply, CONFIG_FILE};

/// A monitor failure before the container exists.
#[derive(Debug)]
struct SetupError {
    kind: ErrorKind,
    message: String,
}

impl SetupError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SetupError {
            kind,
            message: message.into(),
        }
    }

    fn io(step: &str, path: &Path, e: std::io::Error) -> Self {
        SetupError::new(
            ErrorKind::from_io(&e),
            format!("{step} {}: {e}", path.display()),
        )
    }

    fn reply(&self) -> Reply {
        Reply::Error {
            kind: self.kind.as_str().to_owned(),
            message: self.message.clone(),
        }
    }
}

impl From<berth_runtime::Error> for SetupError {
    fn from(e: berth_runtime::Error) -> Self {
        SetupError::new(e.kind(), e.to_string())
    }
}

fn main() -> ExitCode {
    let _ = berth_runtime::protect_self();
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: berth-monitor DIR (started by berthd)");
        return ExitCode::from(2);
    };
    // Our own session: a signal to the daemon's process group does not reach us.
    let _ = rustix::process::setsid();
    // The report goes to the original standard output; keep it apart from 0/1/2, which
    // the container inherits during create.
    let report = match rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth-monitor: dup stdout: {e}");
            return ExitCode::from(1);
        }
    };
    let config = match read_config(&dir) {
        Ok(c) => c,
        Err(e) => {
            send_report(&report, &e.reply());
            return ExitCode::from(1);
        }
    };
    match io::Monitor::create(&dir, config) {
        Ok(monitor) => {
            send_report(&report, &Reply::Ok { pid: monitor.pid() });
            drop(report);
            monitor.run();
            ExitCode::SUCCESS
        }
        Err(e) => {
            send_report(&report, &e.reply());
            ExitCode::from(1)
        }
    }
}

fn read_config(dir: &Path) -> Result<MonitorConfig, SetupError> {
    let path = dir.join(CONFIG_FILE);
    let data = std::fs::read(&path).map_err(|e| SetupError::io("read", &path, e))?;
    serde_json::from_slice(&data).map_err(|e| {
        SetupError::new(
            ErrorKind::InvalidArgument,
            format!("parse {}: {e}", path.display()),
        )
    })
}

fn send_report(fd: &OwnedFd, reply: &Reply) {
    let mut line = serde_json::to_vec(reply).unwrap_or_default();
    line.push(b'\n');
    let _ = io::write_all(fd.as_fd(), &line);
}
