//! Persistent container records under the runtime root, and their status.
//!
//! Layout of `<root>/<id>/`:
//! - `state.json`: the [`Record`] (written atomically: temporary file + rename);
//! - `config.json`: a copy of the bundle's configuration as it was at `create`, so that
//!   `exec`, `update` and `delete` do not depend on the bundle staying unchanged;
//! - `start.sock`: present from `create` until `start`; the container's init waits on it.
//!
//! Status is derived, never stored: the init process is alive (same PID *and* same start
//! time, so a recycled PID is not mistaken for it) → `created` while `start.sock` exists,
//! `paused` while the cgroup is frozen, `running` otherwise; dead → `stopped`.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the start socket in a container's state directory.
pub(crate) const START_SOCKET: &str = "start.sock";
/// Name of the record in a container's state directory.
const RECORD: &str = "state.json";
/// Name of the configuration copy in a container's state directory.
pub(crate) const CONFIG_COPY: &str = "config.json";
/// Upper bound on a state file we are willing to read.
const MAX_STATE_SIZE: u64 = 16 << 20;

/// The status of a container, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created (not observable from outside `create`).
    Creating,
    /// Set up, waiting for `start`.
    Created,
    /// The user process runs.
    Running,
    /// The container's processes are frozen.
    Paused,
    /// The init process has exited.
    Stopped,
}

impl Status {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What the runtime remembers about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host PID of the init process.
    pub pid: i32,
    /// Start time of the init process (field 22 of /proc/PID/stat), to detect PID reuse.
    pub pid_start_time: u64,
    /// RFC 3339 creation time.
    pub created: String,
    /// Owner (user name or UID) that created the container.
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: berth_cgroups::CgroupRecord,
    /// The container has its own PID namespace (so killing init kills everything).
    #[serde(default)]
    pub own_pid_namespace: bool,
    /// Whether the container was created with a user namespace.
    #[serde(default)]
    pub user_namespace: bool,
    /// The hooks of config.json (needed by start and delete without re-reading it).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// The OCI state of a container, as `berth-runtime state` prints it (runc's fields included).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    /// OCI runtime-spec version.
    pub oci_version: String,
    /// Container ID.
    pub id: String,
    /// Status.
    pub status: Status,
    /// Host PID of the init process (0 once stopped).
    pub pid: i32,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem directory.
    pub rootfs: PathBuf,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Who created it.
    pub owner: String,
    /// Annotations from config.json.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Checks a container ID: it names a directory, so it must be a single safe path component.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// The directory that holds one container's state.
pub(crate) fn container_dir(root: &Path, id: &str) -> Result<PathBuf> {
    validate_id(id)?;
    Ok(root.join(id))
}

impl Record {
    /// Load the record of container `id`.
    pub(crate) fn load(root: &Path, id: &str) -> Result<Record> {
        let dir = container_dir(root, id)?;
        let path = dir.join(RECORD);
        let data = match read_bounded(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()));
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        serde_json::from_slice(&data).map_err(|e| Error::State {
            path,
            message: e.to_string(),
        })
    }

    /// Write the record atomically.
    pub(crate) fn save(&self, root: &Path) -> Result<()> {
        let dir = container_dir(root, &self.id)?;
        let data = serde_json::to_vec(self).map_err(|e| Error::State {
            path: dir.join(RECORD),
            message: e.to_string(),
        })?;
        write_atomic(&dir.join(RECORD), &data)
    }

    /// The container's state directory.
    pub(crate) fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.id)
    }

    /// Whether the init process recorded here still runs.
    pub(crate) fn init_alive(&self) -> bool {
        self.pid > 0
            && process_start_time(self.pid).is_some_and(|t| t == self.pid_start_time)
            && !is_zombie(self.pid)
    }

    /// Derive the current status.
    pub(crate) fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir(root).join(START_SOCKET).exists() {
            return Status::Created;
        }
        let frozen = berth_cgroups::Manager::from_record(&self.cgroup)
            .and_then(|m| m.freezer_state())
            .is_ok_and(|s| s == berth_cgroups::FreezerState::Frozen);
        if frozen {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The state JSON handed to hooks on stdin, with the given status.
    pub(crate) fn hook_state(&self, status: Status) -> String {
        let st = ContainerState {
            oci_version: crate::OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: self.pid,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        };
        serde_json::to_string(&st).unwrap_or_default()
    }

    /// The OCI state for this record.
    pub(crate) fn oci_state(&self, root: &Path) -> ContainerState {
        let status = self.status(root);
        ContainerState {
            oci_version: crate::OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Read a file, refusing anything larger than the state bound.
pub(crate) fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(MAX_STATE_SIZE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_STATE_SIZE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "file too large",
        ));
    }
    Ok(data)
}

/// Write `data` to `path` through a temporary file and a rename, so readers never see a
/// partial file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
}

/// Field 22 (starttime) of /proc/PID/stat.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether PID is a zombie (exited, not yet reaped).
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Current time as RFC 3339 (UTC, nanoseconds), without a date crate.
pub(crate) fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id(".hidden").is_err());
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn start_time_of_self() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(process_start_time(me).is_some());
        assert!(process_start_time(-5).is_none());
    }
}
