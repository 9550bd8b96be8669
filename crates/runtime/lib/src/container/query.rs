//! Read-mostly operations: `ps`, `pause`, `resume`, `events --stats`, `update`.

use oci_spec::runtime::LinuxResources;

use crate::container::{wrong_state, Runtime};
use crate::error::Result;
use crate::state::Status;

/// Resource statistics of a container, as `events --stats` reports them.
pub type Stats = berth_cgroups::Stats;

impl Runtime {
    /// Host PIDs of every process in the container.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let (record, _) = self.load_with_status(id)?;
        let cg = berth_cgroups::Manager::from_record(&record.cgroup)?;
        Ok(cg.pids()?)
    }

    /// Freeze every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status != Status::Running {
            return Err(wrong_state(id, status, "pause it"));
        }
        berth_cgroups::Manager::from_record(&record.cgroup)?.freeze()?;
        Ok(())
    }

    /// Thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status != Status::Paused {
            return Err(wrong_state(id, status, "resume it"));
        }
        berth_cgroups::Manager::from_record(&record.cgroup)?.thaw()?;
        Ok(())
    }

    /// Current resource usage.
    pub fn stats(&self, id: &str) -> Result<Stats> {
        let (record, status) = self.load_with_status(id)?;
        if status == Status::Stopped {
            return Err(wrong_state(id, status, "read its stats"));
        }
        Ok(berth_cgroups::Manager::from_record(&record.cgroup)?.stats()?)
    }

    /// Number of OOM kills in the container's cgroup so far.
    pub fn oom_kills(&self, id: &str) -> Result<u64> {
        let (record, _) = self.load_with_status(id)?;
        Ok(berth_cgroups::Manager::from_record(&record.cgroup)?.oom_kill_count()?)
    }

    /// Change the resource limits of a live container.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status == Status::Stopped {
            return Err(wrong_state(id, status, "update it"));
        }
        berth_cgroups::Manager::from_record(&record.cgroup)?.apply(resources)?;
        Ok(())
    }
}
