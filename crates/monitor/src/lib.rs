//! The protocol between the engine and a container's **monitor**.
//!
//! Each running container has one monitor process (`berth-monitor`, in the manner of
//! Podman's conmon). The engine writes a [`MonitorConfig`] into the container's *monitor
//! directory* and spawns the monitor on it; the monitor then lives on its own (its own
//! session, reparented to init if the daemon dies), so containers keep running, logging
//! and answering attach while the daemon is stopped, upgraded or killed.
//!
//! # Life of a monitor
//!
//! 1. It reads `<dir>/monitor.json`, becomes a child subreaper, opens the log file and
//!    creates the container with the runtime library (in process: no second exec), its
//!    stdio connected to pipes (or a pty) the monitor holds.
//! 2. It binds `<dir>/monitor.sock` and writes one [`Reply`] line to its standard
//!    output, which the spawning engine reads: `Ok` with the init's PID, or `Error`
//!    with the failure's [`ErrorKind`](berth_errdefs::ErrorKind) name and message. Its
//!    standard output is then closed.
//! 3. It serves [`Request`]s, one per connection, each a JSON line answered by a JSON
//!    line: `Start` starts the container; `Attach` turns the connection into a stream
//!    (container output to the client in Docker's framing — 8-byte headers without a
//!    tty, raw with one — and client bytes to the container's stdin); `Wait` is answered
//!    when the container has exited; `Resize`, `Kill` and `State` act at once.
//! 4. When the init exits it drains the output, writes `<dir>/exit.json` (an
//!    [`ExitStatus`], atomically), answers the waiters, deletes the runtime's state and
//!    exits. The engine reads `exit.json` if it was not connected at that moment.
//!
//! Output is always read, whether or not a client is attached, so a container never
//! blocks on a full pipe; a client that does not keep up is disconnected (its data is in
//! the log).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The monitor's configuration file in its directory.
pub const CONFIG_FILE: &str = "monitor.json";
/// The monitor's control socket in its directory.
pub const SOCKET_FILE: &str = "monitor.sock";
/// The exit record the monitor writes when the container has exited.
pub const EXIT_FILE: &str = "exit.json";
/// The monitor's PID.
pub const PID_FILE: &str = "monitor.pid";
/// The pty master handed over by the runtime (a socket path, used during create).
pub const CONSOLE_SOCKET_FILE: &str = "console.sock";

/// Docker's stream numbers in the 8-byte frame header of a multiplexed stream.
pub mod stream {
    /// Standard input (written by clients, never framed by the monitor).
    pub const STDIN: u8 = 0;
    /// Standard output.
    pub const STDOUT: u8 = 1;
    /// Standard error.
    pub const STDERR: u8 = 2;
}

/// What the engine asks of a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// The container's ID (also its ID in the runtime).
    pub id: String,
    /// The bundle (holds `config.json`; the root filesystem is mounted by the engine).
    pub bundle: PathBuf,
    /// The runtime's state root.
    pub runtime_root: PathBuf,
    /// Whether the process has a terminal.
    pub tty: bool,
    /// Whether the process's stdin stays open for attached clients (`OpenStdin`).
    pub open_stdin: bool,
    /// Close the process's stdin when the first attached client closes its stdin.
    pub stdin_once: bool,
    /// Where output goes.
    pub log: LogConfig,
    /// Run this process in the (running) container `id` instead of creating it: an
    /// exec session. It is started by the `Start` request; nothing is logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<oci_spec::runtime::Process>,
}

/// A log driver's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// The driver.
    pub driver: LogDriver,
    /// The current log file (rotated files are `<path>.1`, `<path>.2`, …).
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes (0: never).
    pub max_size: u64,
    /// Keep at most this many files, the current one included (at least 1).
    pub max_files: u32,
}

/// The log drivers the monitor writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    /// Docker's `json-file` format: one JSON object per line.
    JsonFile,
    /// No log at all (`docker logs` then fails, as with Docker's `none`).
    None,
}

/// One request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Start the created container.
    Start,
    /// Turn this connection into an attach stream.
    Attach {
        /// Forward the client's bytes to the process's stdin.
        stdin: bool,
        /// Send standard output.
        stdout: bool,
        /// Send standard error.
        stderr: bool,
    },
    /// Set the terminal's size.
    Resize {
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// Send a signal to the init (or, with `all`, every process of the container).
    Kill {
        /// Signal number.
        signal: i32,
        /// Signal every process.
        all: bool,
    },
    /// Answer once the container has exited.
    Wait,
    /// The container's current state.
    State,
}

/// One reply on the control socket (and the start-up report on standard output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// Done.
    Ok {
        /// The init's host PID, where known.
        #[serde(default)]
        pid: i32,
    },
    /// The request failed.
    Error {
        /// The [`ErrorKind`](berth_errdefs::ErrorKind) name.
        kind: String,
        /// The message.
        message: String,
    },
    /// The container has exited.
    Exited(ExitStatus),
    /// The container's state.
    State {
        /// The init's host PID.
        pid: i32,
        /// `created`, `running` or `exited`.
        status: String,
        /// When it was started (RFC 3339), if it was.
        started_at: Option<String>,
    },
}

impl Reply {
    /// The error reply for `err`.
    pub fn error(err: &(impl std::fmt::Display + berth_errdefs::HasKind)) -> Reply {
        Reply::Error {
            kind: err.kind().as_str().to_owned(),
            message: err.to_string(),
        }
    }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code (128+N when killed by signal N).
    pub code: i32,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When the init exited (RFC 3339, UTC, nanoseconds).
    pub finished_at: String,
    /// When it had been started (RFC 3339), if it was.
    pub started_at: Option<String>,
}

/// Docker's exit code for a process that could not be started, from the failure's
/// message (the words Docker clients look for): 127 when the program does not exist,
/// 126 when it cannot be executed, 128 otherwise.
pub fn start_failure_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}

/// The path of `file` in monitor directory `dir`.
pub fn path(dir: &Path, file: &str) -> PathBuf {
    dir.join(file)
}

/// Docker's 8-byte frame header for `len` bytes of stream `stream`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let r: Request = serde_json::from_str(r#"{"op":"resize","height":24,"width":80}"#).unwrap();
        assert_eq!(
            r,
            Request::Resize {
                height: 24,
                width: 80
            }
        );
        let s = serde_json::to_string(&Reply::Ok { pid: 7 }).unwrap();
        assert_eq!(s, r#"{"reply":"ok","pid":7}"#);
        assert_eq!(frame_header(stream::STDERR, 258), [2, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            start_failure_code("exec: \"x\": executable file not found in $PATH"),
            127
        );
        assert_eq!(
            start_failure_code("exec: \"/x\": stat /x: no such file or directory"),
            127
        );
        assert_eq!(start_failure_code("exec: \"/etc\": permission denied"), 126);
    }
}
