//! Berth's OCI runtime library: turns an OCI bundle (`config.json` + root filesystem) into
//! an isolated process, and manages it through its lifecycle (create, start, state, kill,
//! delete, exec, pause, resume, update).
//!
//! The [`Runtime`] type is the entry point; `berth-runtime` (a runc-compatible command line)
//! is a thin layer over it. [`defaults`] holds Berth's secure default configuration, the one
//! place the engine takes its defaults from too.
//!
//! The runtime is single-threaded on purpose: it forks with `clone3` and runs ordinary Rust
//! code in the children, which is only sound without other threads.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod container;
pub mod defaults;
mod error;
mod exe;
mod hooks;
pub mod lsm;
mod namespaces;
mod paths;
mod process;
mod rootfs;
mod spec;
mod state;
mod sync;

use std::sync::OnceLock;

pub use container::kill::parse_signal;
pub use container::{CreateOptions, ExecOptions, Runtime, Stats};
pub use error::{Error, Result};
pub use state::{ContainerState, Status};

/// The current time as RFC 3339 in UTC with nanoseconds, as runc's logs and state use it.
pub fn timestamp() -> String {
    state::now_rfc3339()
}

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

static WARN: OnceLock<fn(&str)> = OnceLock::new();

/// Install the function that receives warnings (failed poststart/poststop hooks...).
/// The default drops them.
pub fn set_warning_sink(f: fn(&str)) {
    let _ = WARN.set(f);
}

pub(crate) fn warn(msg: &str) {
    if let Some(f) = WARN.get() {
        f(msg);
    }
}

pub(crate) fn set_dumpable(on: bool) -> Result<()> {
    let b = if on {
        rustix::process::DumpableBehavior::Dumpable
    } else {
        rustix::process::DumpableBehavior::NotDumpable
    };
    rustix::process::set_dumpable_behavior(b).map_err(|e| Error::sys("PR_SET_DUMPABLE", e))
}

/// Make the calling process non-dumpable, so no process inside a container can open its
/// `/proc/PID/exe` (and through it the runtime binary) while it works there
/// (CVE-2019-5736). Call first thing in `main`.
pub fn protect_self() -> Result<()> {
    set_dumpable(false)
}
