//! `delete`: remove a stopped (or, forced, a running) container and everything it owned.

use std::time::Duration;

use crate::container::kill::{init_pidfd, wait_exit};
use crate::container::{wrong_state, Runtime};
use crate::error::{Error, Result};
use crate::state::{Record, Status};

impl Runtime {
    /// Delete container `id`. A created container is killed first, as runc does; a running
    /// or paused one only with `force`.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let (record, status) = match self.load_with_status(id) {
            Ok(v) => v,
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let cg = berth_cgroups::Manager::from_record(&record.cgroup);
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_and_wait(&record)?,
            Status::Running | Status::Paused | Status::Creating => {
                if !force {
                    return Err(wrong_state(id, status, "delete it without --force"));
                }
                self.kill_and_wait(&record)?;
            }
        }
        if let Ok(cg) = &cg {
            // Processes outside the init's PID namespace may remain: kill them too.
            if !record.own_pid_namespace {
                let _ = cg.kill_all(libc::SIGKILL);
            }
            cg.destroy()?;
        }
        if let Some(ps) = record.hooks.as_ref().and_then(|h| h.poststop().clone()) {
            for e in crate::hooks::run_warn(
                "poststop",
                &ps,
                record.hook_state(Status::Stopped).as_bytes(),
            ) {
                crate::warn(&e.to_string());
            }
        }
        let dir = record.dir(&self.root);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove state directory", &dir, e))
    }

    fn kill_and_wait(&self, record: &Record) -> Result<()> {
        let cg = berth_cgroups::Manager::from_record(&record.cgroup)?;
        // SIGKILL everything (thaws a frozen cgroup so the kill is delivered).
        let _ = cg.kill_all(libc::SIGKILL);
        if let Some(fd) = init_pidfd(record) {
            let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
            if !wait_exit(&fd, Duration::from_secs(10)) {
                return Err(Error::WrongState {
                    id: record.id.clone(),
                    status: "running",
                    op: "delete it: the init did not die within 10s of SIGKILL",
                });
            }
        }
        Ok(())
    }
}
