//! Container operations, one file each, on the [`Engine`](crate::Engine).

mod archive;
mod attach;
mod create;
mod health;
mod logs;
mod query;
mod remove;
mod restart;
mod snapshot_ops;
mod start;
mod stop;
mod wait;

pub use archive::PathStat;
pub use attach::{AttachOptions, AttachStream};
pub use create::{CreateContainer, Created};
pub use health::{Health, Probe};
pub use logs::{LogEntry, LogsOptions};
pub(crate) use restart::{maybe_restart, restart_on_daemon_start};
pub use snapshot_ops::{Change, CommitRequest};
pub use wait::WaitCondition;

use crate::engine::Engine;
use crate::error::Result;
use crate::model::ContainerRecord;

impl Engine {
    /// The record of container `key` (ID, name or ID prefix).
    pub fn inspect_container(&self, key: &str) -> Result<ContainerRecord> {
        Ok(self.lookup(key)?.record())
    }

    /// Every container's record, newest first.
    pub fn list_containers(&self) -> Vec<ContainerRecord> {
        let handles: Vec<_> = self.index().by_id.values().cloned().collect();
        let mut out: Vec<ContainerRecord> = handles.iter().map(|h| h.record()).collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        out
    }
}
