//! Restart policies: `no`, `on-failure[:N]`, `always`, `unless-stopped`, with Docker's
//! back-off (100 ms doubling, at most 1 min; reset after 10 s of running).

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, Handle};
use crate::model::{ContainerRecord, Status};

/// Whether a container should be started when the daemon starts.
pub(crate) fn restart_on_daemon_start(rec: &ContainerRecord) -> bool {
    match rec.host_config.restart_policy.name.as_str() {
        "always" => !rec.state.started_at.is_empty(),
        "unless-stopped" => !rec.state.stopped_by_user && !rec.state.started_at.is_empty(),
        _ => false,
    }
}

fn should_restart(rec: &ContainerRecord) -> bool {
    if rec.state.stopped_by_user {
        return false;
    }
    let p = &rec.host_config.restart_policy;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            rec.state.exit_code != 0
                && (p.maximum_retry_count <= 0
                    || rec.restart_count < u64::try_from(p.maximum_retry_count).unwrap_or(0))
        }
        _ => false,
    }
}

fn backoff(restart_count: u64) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << restart_count.min(10));
    Duration::from_millis(ms.min(60_000))
}

/// After an exit: restart the container if its policy says so.
pub(crate) fn maybe_restart(engine: &Engine, h: Arc<Handle>, rec: &ContainerRecord) {
    if !should_restart(rec) {
        return;
    }
    let ran_long = ran_for(rec).is_some_and(|d| d >= Duration::from_secs(10));
    let count = if ran_long { 0 } else { rec.restart_count };
    let delay = backoff(count);
    let engine = engine.clone();
    // Docker's "Restarting (N) … ago" while it waits.
    let _ = h.update(&engine.inner.store, |r| r.state.status = Status::Restarting);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _op = h.op.lock().await;
        let rec = h.record();
        // Stopped or removed meanwhile: no restart.
        if rec.state.status != Status::Restarting
            || rec.state.stopped_by_user
            || h.life.borrow().removed
            || !should_restart(&rec)
        {
            if rec.state.status == Status::Restarting && !h.life.borrow().removed {
                let _ = h.update(&engine.inner.store, |r| r.state.status = Status::Exited);
            }
            return;
        }
        let _ = h.update(&engine.inner.store, |r| {
            r.restart_count = if ran_long { 1 } else { r.restart_count + 1 };
        });
        if let Err(e) = engine.start_locked(&h).await {
            tracing::warn!(container = %h.id, error = %e, "restart policy: start failed");
        }
    });
}

/// How long the last run lasted.
fn ran_for(rec: &ContainerRecord) -> Option<Duration> {
    let s = crate::time::parse_rfc3339(&rec.state.started_at)?;
    let f = crate::time::parse_rfc3339(&rec.state.finished_at)?;
    let ns = f.checked_sub(s)?;
    Some(Duration::from_nanos(u64::try_from(ns).ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
