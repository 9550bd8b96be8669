//! `stop`, `kill` and `restart`.

use std::sync::Arc;
use std::time::Duration;

use berth_monitor::Request;

use crate::engine::{Engine, Handle};
use crate::error::{EngineError, Result};
use crate::model::Status;

/// Signal number of `sig` (`TERM`, `SIGKILL`, `9`).
pub(crate) fn signal_number(sig: &str) -> Result<i32> {
    berth_runtime::parse_signal(sig)
        .map_err(|_| EngineError::InvalidArgument(format!("Invalid signal: {sig}")))
}

impl Engine {
    /// Waits until the container's `exits` count passes `seen`, at most `timeout`.
    pub(crate) async fn wait_exit(h: &Arc<Handle>, seen: u64, timeout: Option<Duration>) -> bool {
        let mut rx = h.life.subscribe();
        let fut = rx.wait_for(|l| l.exits > seen || l.removed);
        match timeout {
            Some(t) => matches!(tokio::time::timeout(t, fut).await, Ok(Ok(_))),
            None => fut.await.is_ok(),
        }
    }

    /// Stops container `key` (`docker stop`): its stop signal, then `SIGKILL` after
    /// `timeout` seconds (default: its `StopTimeout`, else 10; -1 waits forever).
    pub async fn stop_container(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<()> {
        let h = self.lookup(key)?;
        let _op = h.op.lock().await;
        self.stop_locked(&h, timeout, signal).await
    }

    pub(crate) async fn stop_locked(
        &self,
        h: &Arc<Handle>,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<()> {
        let rec = h.record();
        if rec.state.status == Status::Restarting {
            // Waiting for its restart: stopping it cancels the restart.
            h.update(&self.inner.store, |r| {
                r.state.stopped_by_user = true;
                r.state.status = Status::Exited;
            })?;
            return Ok(());
        }
        if !rec.state.status.is_running() {
            return Err(EngineError::AlreadyStopped);
        }
        h.update(&self.inner.store, |r| r.state.stopped_by_user = true)?;
        let sig = signal
            .filter(|s| !s.is_empty())
            .or_else(|| rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".to_owned());
        let sig = signal_number(&sig)?;
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let seen = h.life.borrow().exits;
        let dir = self.monitor_dir(&rec.id);
        if rec.state.status == Status::Paused {
            let _ = self.unpause_container(&rec.id).await;
        }
        let _ = crate::monitor::command(
            &rec.id,
            &dir,
            &Request::Kill {
                signal: sig,
                all: false,
            },
        )
        .await;
        let limit =
            (timeout >= 0).then(|| Duration::from_secs(u64::try_from(timeout).unwrap_or(0)));
        if Engine::wait_exit(h, seen, limit).await {
            return Ok(());
        }
        tracing::info!(container = %rec.id, timeout, "did not stop in time: killing it");
        let _ = crate::monitor::command(
            &rec.id,
            &dir,
            &Request::Kill {
                signal: 9,
                all: true,
            },
        )
        .await;
        Engine::wait_exit(h, seen, Some(Duration::from_secs(30))).await;
        Ok(())
    }

    /// Sends `signal` (default `SIGKILL`) to container `key` (`docker kill`).
    pub async fn kill_container(&self, key: &str, signal: Option<String>) -> Result<()> {
        let h = self.lookup(key)?;
        let rec = h.record();
        if !rec.state.status.is_running() {
            return Err(EngineError::NotRunning(rec.id.clone()));
        }
        let sig = signal_number(
            signal
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("SIGKILL"),
        )?;
        if sig == 9 || sig == 15 {
            h.update(&self.inner.store, |r| r.state.stopped_by_user = true)?;
        }
        let dir = self.monitor_dir(&rec.id);
        crate::monitor::command(
            &rec.id,
            &dir,
            &Request::Kill {
                signal: sig,
                all: false,
            },
        )
        .await?;
        self.container_event(&rec, "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    /// Restarts container `key` (`docker restart`): stop if running, then start.
    pub async fn restart_container(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<()> {
        let h = self.lookup(key)?;
        let _op = h.op.lock().await;
        match self.stop_locked(&h, timeout, signal).await {
            Ok(()) | Err(EngineError::AlreadyStopped) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&h).await?;
        let rec = h.record();
        self.container_event(&rec, "restart", &[]);
        Ok(())
    }

    /// Freezes (`true`) or thaws container `id`'s processes through the runtime.
    pub(crate) async fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let rt = berth_runtime::Runtime::new(&self.inner.runtime_root);
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            if frozen {
                rt.pause(&id)
            } else {
                rt.resume(&id)
            }
        })
        .await?
        .map_err(|e| EngineError::Runtime {
            kind: berth_errdefs::HasKind::kind(&e),
            message: e.to_string(),
        })
    }

    /// Kills every process of running container `h` (thawing it first) and waits for
    /// the exit to be recorded (at most 30 s); `false` if it was not.
    pub(crate) async fn kill_and_wait(&self, h: &Arc<Handle>) -> bool {
        let rec = h.record();
        let seen = h.life.borrow().exits;
        if rec.state.status == Status::Paused {
            let _ = self.freeze(&rec.id, false).await;
        }
        let dir = self.monitor_dir(&rec.id);
        let _ = crate::monitor::command(
            &rec.id,
            &dir,
            &Request::Kill {
                signal: 9,
                all: true,
            },
        )
        .await;
        Engine::wait_exit(h, seen, Some(Duration::from_secs(30))).await
    }

    /// Freezes container `key`.
    pub async fn pause_container(&self, key: &str) -> Result<()> {
        let h = self.lookup(key)?;
        let _op = h.op.lock().await;
        let rec = h.record();
        match rec.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(EngineError::InvalidArgument(format!(
                    "Container {} is already paused",
                    rec.id
                )))
            }
            _ => return Err(EngineError::NotRunning(rec.id.clone())),
        }
        self.freeze(&rec.id, true).await?;
        let rec = h.update(&self.inner.store, |r| r.state.status = Status::Paused)?;
        self.container_event(&rec, "pause", &[]);
        Ok(())
    }

    /// Thaws container `key`.
    pub async fn unpause_container(&self, key: &str) -> Result<()> {
        let h = self.lookup(key)?;
        let rec = h.record();
        if rec.state.status != Status::Paused {
            return Err(EngineError::InvalidArgument(format!(
                "Container {} is not paused",
                rec.id
            )));
        }
        self.freeze(&rec.id, false).await?;
        let rec = h.update(&self.inner.store, |r| r.state.status = Status::Running)?;
        self.container_event(&rec, "unpause", &[]);
        Ok(())
    }
}
