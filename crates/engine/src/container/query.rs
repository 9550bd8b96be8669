//! `top` and `stats`: what runs in a container and what it uses.

use crate::engine::Engine;
use crate::error::{EngineError, Result};

fn runtime_err(e: berth_runtime::Error) -> EngineError {
    EngineError::Runtime {
        kind: berth_errdefs::HasKind::kind(&e),
        message: e.to_string(),
    }
}

impl Engine {
    /// Host PIDs of the processes of running container `key`.
    pub async fn container_pids(&self, key: &str) -> Result<Vec<i32>> {
        let rec = self.lookup(key)?.record();
        if !rec.state.status.is_running() {
            return Err(EngineError::NotRunning(rec.id.clone()));
        }
        let rt = berth_runtime::Runtime::new(&self.inner.runtime_root);
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || rt.ps(&id))
            .await?
            .map_err(runtime_err)
    }

    /// Resource usage of running container `key`; `None` when it is not running.
    pub async fn container_stats(
        &self,
        key: &str,
    ) -> Result<(crate::ContainerRecord, Option<berth_runtime::Stats>)> {
        let rec = self.lookup(key)?.record();
        if !rec.state.status.is_running() {
            return Ok((rec, None));
        }
        let rt = berth_runtime::Runtime::new(&self.inner.runtime_root);
        let id = rec.id.clone();
        let stats = tokio::task::spawn_blocking(move || rt.stats(&id))
            .await?
            .map_err(runtime_err)?;
        Ok((rec, Some(stats)))
    }

    /// Removes every stopped container (`docker container prune`) whose labels match;
    /// returns their IDs.
    pub async fn prune_containers(&self, labels: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.list_containers() {
            if c.state.status.is_running() {
                continue;
            }
            let l = c.config.labels.clone().unwrap_or_default();
            let ok = labels.iter().all(|f| {
                let (neg, f) = f
                    .strip_prefix('!')
                    .map_or((false, f.as_str()), |x| (true, x));
                let m = match f.split_once('=') {
                    Some((k, v)) => l.get(k).is_some_and(|x| x == v),
                    None => l.contains_key(f),
                };
                m != neg
            });
            if ok && self.remove_container(&c.id, false, false).await.is_ok() {
                out.push(c.id);
            }
        }
        out
    }
}
