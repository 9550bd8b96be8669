//! What a container is made of: Docker's `Config` and `HostConfig` (the shapes clients
//! send, kept as the engine's own record, as dockerd keeps them), its state, and the
//! record the store persists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Accepts a string (one element), an array of strings, or null (Docker's `StrSlice`).
fn strslice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

/// A container's configuration (Docker's `ContainerConfig`), after the image's defaults
/// are merged in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// Host name inside.
    pub hostname: String,
    /// Domain name inside.
    pub domainname: String,
    /// `user[:group]` the process runs as.
    pub user: String,
    /// Attach stdin (informational).
    pub attach_stdin: bool,
    /// Attach stdout (informational).
    pub attach_stdout: bool,
    /// Attach stderr (informational).
    pub attach_stderr: bool,
    /// Ports the image exposes (`"80/tcp": {}`).
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open for attached clients.
    pub open_stdin: bool,
    /// Close stdin after the first attached client detaches.
    pub stdin_once: bool,
    /// `KEY=value` environment.
    pub env: Option<Vec<String>>,
    /// Command.
    #[serde(deserialize_with = "strslice")]
    pub cmd: Option<Vec<String>>,
    /// Health check (kept as given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    /// Windows only; kept for round trips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// The image as the client named it.
    pub image: String,
    /// Volumes (`"/data": {}`).
    pub volumes: Option<BTreeMap<String, Value>>,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    #[serde(deserialize_with = "strslice")]
    pub entrypoint: Option<Vec<String>>,
    /// Disable networking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    /// ONBUILD triggers (ignored when running).
    pub on_build: Option<Vec<String>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal that stops the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds to wait before killing on stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Shell for the shell form (build only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// Docker's restart policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `""`/`no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// Most restarts for `on-failure` (0: no limit).
    pub maximum_retry_count: i64,
}

/// A log driver and its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// `json-file` (default), `none`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Driver options (`max-size`, `max-file`).
    pub config: BTreeMap<String, String>,
}

/// One resource limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// Name (`nofile`, `nproc`, …).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// The host side of a container's configuration (Docker's `HostConfig`). Fields Berth
/// does not implement yet are kept in `other`; any of them set to a non-default value
/// makes create fail with a clear error rather than be dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `host:container[:opts]` bind mounts and named volumes.
    pub binds: Option<Vec<String>>,
    /// `default`/`none`/`host` (bridge networks come with the networking issue).
    pub network_mode: String,
    /// Published ports (needs bridge networking).
    pub port_bindings: Option<BTreeMap<String, Value>>,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// Extra privileges (all capabilities, devices, no seccomp or LSM confinement).
    pub privileged: bool,
    /// Publish every exposed port.
    pub publish_all_ports: bool,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Capabilities to add.
    pub cap_add: Option<Vec<String>>,
    /// Capabilities to drop.
    pub cap_drop: Option<Vec<String>>,
    /// Memory limit in bytes.
    pub memory: i64,
    /// Memory + swap limit in bytes (-1: unlimited swap).
    pub memory_swap: i64,
    /// Memory soft limit in bytes.
    pub memory_reservation: i64,
    /// CPU quota in units of 1e-9 CPUs.
    pub nano_cpus: i64,
    /// Relative CPU weight.
    pub cpu_shares: i64,
    /// CFS quota (µs per period).
    pub cpu_quota: i64,
    /// CFS period (µs).
    pub cpu_period: i64,
    /// CPUs allowed.
    pub cpuset_cpus: String,
    /// Memory nodes allowed.
    pub cpuset_mems: String,
    /// Most processes (0 or unset: Berth's default; -1: unlimited).
    pub pids_limit: Option<i64>,
    /// Run an init as PID 1.
    pub init: Option<bool>,
    /// Log driver.
    pub log_config: LogConfig,
    /// tmpfs mounts: path → options.
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// Resource limits.
    pub ulimits: Option<Vec<Ulimit>>,
    /// Security options.
    pub security_opt: Option<Vec<String>>,
    /// Size of /dev/shm in bytes.
    pub shm_size: i64,
    /// OOM score adjustment.
    pub oom_score_adj: i64,
    /// Namespaced sysctls.
    pub sysctls: Option<BTreeMap<String, String>>,
    /// Supplementary groups.
    pub group_add: Option<Vec<String>>,
    /// `host:ip` lines for /etc/hosts.
    pub extra_hosts: Option<Vec<String>>,
    /// DNS servers.
    pub dns: Option<Vec<String>>,
    /// DNS options.
    pub dns_options: Option<Vec<String>>,
    /// DNS search domains.
    pub dns_search: Option<Vec<String>>,
    /// IPC namespace mode.
    pub ipc_mode: String,
    /// PID namespace mode.
    pub pid_mode: String,
    /// UTS namespace mode.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// cgroup namespace mode.
    pub cgroupns_mode: String,
    /// Everything else the client sent.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A container's status, as Docker names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started (or start failed).
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// Waiting to be restarted by its policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its process has exited.
    Exited,
    /// Removal failed half-way.
    Dead,
}

impl Status {
    /// Docker's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a process of the container is alive.
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// A container's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Status.
    pub status: Status,
    /// The init's host PID while running, else 0.
    pub pid: i32,
    /// The last exit code.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// When it last started (RFC 3339), empty if never.
    pub started_at: String,
    /// When it last exited (RFC 3339), empty if never.
    pub finished_at: String,
    /// Whether the OOM killer struck during the last run.
    pub oom_killed: bool,
    /// Stopped by a user (restart policies other than `always` then do not restart it).
    pub stopped_by_user: bool,
    /// The healthcheck's state, when the container has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::container::Health>,
}

/// The record of one container, as the store persists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Its name, with Docker's leading `/`.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// The image ID (`sha256:…`).
    pub image_id: String,
    /// The configuration, image defaults merged in.
    pub config: ContainerConfig,
    /// The host configuration.
    pub host_config: HostConfig,
    /// The program run (entrypoint + cmd, first element).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// State.
    pub state: State,
    /// Restarts done by the restart policy.
    pub restart_count: u64,
    /// The json-file log.
    pub log_path: PathBuf,
    /// Volumes mounted into it (named, and anonymous ones for image `VOLUME`s).
    #[serde(default)]
    pub volumes: Vec<crate::volume::VolumeMount>,
    /// Host bind mounts and tmpfs mounts from `HostConfig.Mounts`, resolved.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
}

/// A bind or tmpfs mount from `HostConfig.Mounts` (the `--mount` syntax).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// `bind` or `tmpfs`.
    pub kind: String,
    /// Host path (bind).
    pub source: String,
    /// Path inside.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// Options (propagation for binds; size/mode for tmpfs).
    pub options: Vec<String>,
}

impl ContainerRecord {
    /// The name without the leading `/`.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix('/').unwrap_or(&self.name)
    }
}

/// Whether `v` is what a client sends for "not set": null, false, 0, "", [], {} (or
/// arrays and objects of those).
pub(crate) fn is_default_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_default_value),
        Value::Object(o) => o.values().all(is_default_value),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_shapes() {
        let c: ContainerConfig = serde_json::from_str(
            r#"{"Image":"busybox","Cmd":"echo hi","Env":null,"Entrypoint":["sh","-c"],"Tty":true}"#,
        )
        .unwrap();
        assert_eq!(c.cmd, Some(vec!["echo hi".to_owned()]));
        assert_eq!(c.entrypoint.as_deref().unwrap().len(), 2);
        assert!(c.tty);
        let h: HostConfig = serde_json::from_str(
            r#"{"NetworkMode":"default","UTSMode":"","RestartPolicy":{"Name":"always","MaximumRetryCount":0},"LogConfig":{"Type":"json-file","Config":{}},"BlkioWeight":0,"OomKillDisable":true}"#,
        )
        .unwrap();
        assert_eq!(h.restart_policy.name, "always");
        assert_eq!(h.log_config.kind, "json-file");
        assert!(is_default_value(&h.other["BlkioWeight"]));
        assert!(!is_default_value(&h.other["OomKillDisable"]));
        let back = serde_json::to_value(&h).unwrap();
        assert_eq!(back["UTSMode"], "");
        assert_eq!(back["OomKillDisable"], true);
    }
}
