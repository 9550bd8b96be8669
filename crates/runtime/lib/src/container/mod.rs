//! Container operations, one file each, on a [`Runtime`] (a state root plus global
//! options).

mod create;
mod delete;
mod exec;
mod init;
pub(crate) mod kill;
mod query;
mod run;
mod start;

use std::path::{Path, PathBuf};

pub use exec::ExecOptions;
pub use query::Stats;

use crate::error::{Error, Result};
use crate::state::{ContainerState, Record, Status};

/// Where the runtime keeps state, and its global options.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    systemd_cgroup: bool,
}

/// Options of `create` and `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The bundle directory (holds config.json).
    pub bundle: PathBuf,
    /// Write the init's host PID here.
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    /// Pass descriptors 3..3+N to the container process.
    pub preserve_fds: u32,
    /// Use MS_MOVE + chroot instead of pivot_root (for a rootfs on ramfs).
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    pub no_new_keyring: bool,
}

impl Runtime {
    /// A runtime keeping state under `root` (runc's `--root`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: root.into(),
            systemd_cgroup: false,
        }
    }

    /// Use systemd to manage cgroups (`--systemd-cgroup`).
    pub fn with_systemd_cgroup(mut self, on: bool) -> Self {
        self.systemd_cgroup = on;
        self
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        Ok(Record::load(&self.root, id)?.oci_state(&self.root))
    }

    /// Every container under the root.
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let mut out = Vec::new();
        let dir = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read", &self.root, e)),
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str() else { continue };
            if crate::state::validate_id(id).is_err() {
                continue;
            }
            if let Ok(r) = Record::load(&self.root, id) {
                out.push(r.oci_state(&self.root));
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub(crate) fn load_with_status(&self, id: &str) -> Result<(Record, Status)> {
        let r = Record::load(&self.root, id)?;
        let s = r.status(&self.root);
        Ok((r, s))
    }

    /// Directory for cached seccomp programs (not a valid container ID, so no clash).
    pub(crate) fn seccomp_cache(&self) -> PathBuf {
        self.root.join(".seccomp-cache")
    }
}

pub(crate) fn wrong_state(id: &str, status: Status, op: &'static str) -> Error {
    Error::WrongState {
        id: id.to_string(),
        status: status.as_str(),
        op,
    }
}
