//! `rm`: remove a container, its writable layer, its files.

use crate::engine::{unmount_all, Engine};
use crate::error::{EngineError, Result};
use crate::model::Status;

impl Engine {
    /// Removes container `key` (`docker rm`); with `force` a running one is killed first.
    pub async fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let h = self.lookup(key)?;
        let _op = h.op.lock().await;
        let rec = h.record();
        if rec.state.status.is_running() {
            if !force {
                return Err(EngineError::RemoveRunning(rec.id.clone()));
            }
            if !self.kill_and_wait(&h).await {
                return Err(EngineError::Runtime {
                    kind: berth_errdefs::ErrorKind::Internal,
                    message: format!("container {} did not exit after SIGKILL", rec.id),
                });
            }
        }
        let rec = h.update(&self.inner.store, |r| r.state.status = Status::Removing)?;
        let id = rec.id.clone();
        let rootfs = self.rootfs_dir(&id);
        let mdir = self.monitor_dir(&id);
        let runtime_root = self.inner.runtime_root.clone();
        let rid = id.clone();
        tokio::task::spawn_blocking(move || {
            // Runtime state a monitor could not delete (it died first) goes too.
            let _ = berth_runtime::Runtime::new(&runtime_root).delete(&rid, true);
            let _ = unmount_all(&rootfs);
            let _ = std::fs::remove_dir_all(&mdir);
        })
        .await?;
        match self.inner.images.remove_rootfs(&id).await {
            Ok(()) => {}
            Err(e) if berth_errdefs::HasKind::kind(&e) == berth_errdefs::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = h.update(&self.inner.store, |r| r.state.status = Status::Dead);
                return Err(e.into());
            }
        }
        self.inner.store.remove(&id)?;
        {
            let mut idx = self.index();
            idx.by_id.remove(&id);
            if idx.names.get(&rec.name) == Some(&id) {
                idx.names.remove(&rec.name);
            }
        }
        self.inner.execs.forget_container(&id);
        if volumes {
            for v in rec
                .volumes
                .iter()
                .filter(|v| self.volume_inspect(&v.name).is_ok_and(|x| x.anonymous))
            {
                if let Err(e) = self.volume_remove(&v.name, true) {
                    tracing::warn!(volume = %v.name, error = %e, "removing an anonymous volume");
                }
            }
        }
        h.life.send_modify(|l| {
            l.removed = true;
            l.running = false;
        });
        self.container_event(&rec, "destroy", &[]);
        Ok(())
    }

    /// Renames container `key` to `new_name`.
    pub async fn rename_container(&self, key: &str, new_name: &str) -> Result<()> {
        let h = self.lookup(key)?;
        let _op = h.op.lock().await;
        let name = crate::names::validate(new_name)?;
        let old = h.record().name;
        {
            let mut idx = self.index();
            if let Some(other) = idx.names.get(&name) {
                return Err(EngineError::NameInUse {
                    name,
                    id: other.clone(),
                });
            }
            idx.names.insert(name.clone(), h.id.clone());
        }
        match h.update(&self.inner.store, |r| r.name = name.clone()) {
            Ok(rec) => {
                self.index().names.remove(&old);
                self.container_event(&rec, "rename", &[("oldName", old)]);
                Ok(())
            }
            Err(e) => {
                self.index().names.remove(&name);
                Err(e)
            }
        }
    }
}
