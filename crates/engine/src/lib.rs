//! Berth's engine: containers, their state and lifecycle, images (through
//! `berth-images`), events. No HTTP in it: `berth-api` translates the Docker Engine API
//! into the operations listed in [`Action`], one place for the whole control surface
//! (the shape of Firecracker's `VmmAction`).
//!
//! # Processes
//!
//! The engine never forks containers itself (`berth-runtime` cannot run inside a
//! multi-threaded daemon). Each running container has a **monitor**
//! (`berth-monitor`, see that crate) which creates it with the runtime library, owns its
//! stdio, writes its log and records its exit. The engine is the monitor's client: it
//! spawns it at `start`, talks to it over `<exec_root>/<id>/monitor.sock`, and re-adopts
//! it after a restart of the daemon, so containers outlive the daemon.
//!
//! # State (see [`store`](crate::store) for the layout)
//!
//! - The container record (`<root>/containers/<id>/container.json`) is authoritative
//!   and replaced atomically; names and the index are rebuilt from the records at open.
//! - `create` reserves the name in memory, prepares the writable layer, then writes the
//!   record. A directory without a record (crash between the two) is removed with its
//!   layer at the next open.
//! - A container whose record says running is re-adopted if its monitor answers;
//!   otherwise the monitor's `exit.json` (or, after a reboot, exit code 255) is
//!   recorded, its root filesystem unmounted, and its restart policy applied.
//! - `rm` marks the record `removing` before it deletes anything; an interrupted
//!   removal is finished at the next open.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod container;
mod engine;
mod error;
mod events;
mod exec;
mod images;
mod model;
mod monitor;
mod mounts;
mod names;
mod registry;
mod spec;
mod store;
mod time;
mod volume;

pub use action::{Action, Outcome};
pub use berth_runtime::Stats;
pub use container::{
    AttachOptions, AttachStream, Change, CommitRequest, CreateContainer, Created, Health, LogEntry,
    LogsOptions, PathStat, Probe, WaitCondition,
};
pub use engine::{Engine, EngineConfig};
pub use error::{EngineError, Result};
pub use events::{past as past_events, Event};
pub use exec::{ExecConfig, ExecSession};
pub use model::{
    ContainerConfig, ContainerRecord, HostConfig, LogConfig, MountSpec, RestartPolicy, State,
    Status, Ulimit,
};
pub use registry::TransferMessage;
pub use spec::ALLOW_SENSITIVE_LABEL;

/// Checks a `HostConfig` as `create` does (what it refuses, and why), without making
/// anything: for clients' dry runs and the request fuzzer.
pub fn check_host_config(hc: &HostConfig) -> Result<()> {
    spec::validate(hc, false)
}
/// One block I/O counter of [`Stats`].
pub type BlkioEntry = berth_cgroups::BlkioEntry;
pub use time::{parse_rfc3339, parse_timestamp};

/// The current time as the engine writes times (RFC 3339, UTC, nanoseconds).
pub fn now_rfc3339() -> String {
    berth_runtime::timestamp()
}
pub use volume::{Volume, VolumeMount};
