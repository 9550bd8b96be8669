//! `start`: mount the root filesystem, write the bundle, hand the container to a new
//! monitor, connect waiting attaches, start the process.

use std::path::Path;
use std::sync::{Arc, PoisonError};

use berth_monitor::{LogConfig, LogDriver, MonitorConfig, Request};

use crate::engine::{unmount_all, Engine, Handle};
use crate::error::{EngineError, Result};
use crate::model::{ContainerRecord, Status};
use crate::spec::EtcFiles;

/// Parses Docker's size strings (`10m`, `1g`, `512k`, plain bytes).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1024u64),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn write_etc(dir: &Path, rec: &ContainerRecord) -> Result<EtcFiles> {
    let hostname = if rec.config.hostname.is_empty() {
        rec.id.get(..12).unwrap_or(&rec.id).to_owned()
    } else {
        rec.config.hostname.clone()
    };
    let files = EtcFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv: dir.join("resolv.conf"),
    };
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in rec.host_config.extra_hosts.as_deref().unwrap_or_default() {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let mut resolv = String::new();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers: Vec<String> = match rec.host_config.dns.as_deref() {
        Some(d) if !d.is_empty() => d.to_vec(),
        _ => host_resolv
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.starts_with("127.") && s != "::1")
            .collect(),
    };
    for s in servers {
        resolv.push_str(&format!("nameserver {s}\n"));
    }
    if let Some(search) = rec
        .host_config
        .dns_search
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        resolv.push_str(&format!("search {}\n", search.join(" ")));
    }
    if let Some(opts) = rec
        .host_config
        .dns_options
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        resolv.push_str(&format!("options {}\n", opts.join(" ")));
    }
    for (p, data) in [
        (&files.hostname, format!("{hostname}\n")),
        (&files.hosts, hosts),
        (&files.resolv, resolv),
    ] {
        std::fs::write(p, data).map_err(|e| EngineError::io("write", p, e))?;
    }
    Ok(files)
}

impl Engine {
    /// Starts container `key` (`docker start`).
    pub async fn start_container(&self, key: &str) -> Result<()> {
        let h = self.lookup(key)?;
        let _op = h.op.lock().await;
        let rec = h.record();
        match rec.state.status {
            Status::Running | Status::Paused => return Err(EngineError::AlreadyStarted),
            Status::Removing | Status::Dead => {
                return Err(EngineError::RemovalInProgress(rec.id.clone()))
            }
            _ => {}
        }
        let result = self.start_locked(&h).await;
        if result.is_err() && rec.host_config.auto_remove {
            // As Docker: a container meant to go away when it stops goes when it
            // cannot start (`docker run --rm` waits for that removal).
            let (engine, id) = (self.clone(), rec.id.clone());
            tokio::spawn(async move {
                if let Err(e) = engine.remove_container(&id, true, true).await {
                    tracing::warn!(container = %id, error = %e, "auto-remove after a failed start");
                }
            });
        }
        result
    }

    pub(crate) async fn start_locked(&self, h: &Arc<Handle>) -> Result<()> {
        let rec = h.record();
        let id = rec.id.clone();
        let result = self.launch(h, &rec).await;
        if let Err(e) = &result {
            let msg = e.to_string();
            let rootfs = self.rootfs_dir(&id);
            let mdir = self.monitor_dir(&id);
            let _ = tokio::task::spawn_blocking(move || {
                let _ = unmount_all(&rootfs);
                let _ = std::fs::remove_dir_all(&mdir);
            })
            .await;
            let _ = h.update(&self.inner.store, |r| {
                r.state.error = msg.clone();
                r.state.exit_code = berth_monitor::start_failure_code(&msg);
                r.state.pid = 0;
            });
            // Attaches waiting for this start get the error too.
            let pending: Vec<_> = std::mem::take(
                &mut *h
                    .pending_attach
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for (_, tx) in pending {
                let _ = tx.send(Err(EngineError::Runtime {
                    kind: berth_errdefs::HasKind::kind(e),
                    message: msg.clone(),
                }));
            }
        }
        result
    }

    async fn launch(&self, h: &Arc<Handle>, rec: &ContainerRecord) -> Result<()> {
        let id = rec.id.clone();
        let cdir = self.inner.store.dir(&id);
        let rootfs = self.rootfs_dir(&id);
        let mdir = self.monitor_dir(&id);
        // A monitor still alive here (left by a daemon that died during a start) is
        // ended first: its directory is about to be reused.
        if crate::monitor::connect(&mdir).await.is_ok() {
            self.reconcile_orphan_monitor(h).await;
            if h.record().state.status.is_running() {
                return Err(EngineError::AlreadyStarted);
            }
        }
        let mounts = self.inner.images.rootfs_mounts(&id).await?;
        {
            let (rootfs, mdir, id2) = (rootfs.clone(), mdir.clone(), id.clone());
            tokio::task::spawn_blocking(move || -> Result<()> {
                crate::engine::mount_rootfs(&id2, &mounts, &rootfs)?;
                let _ = std::fs::remove_dir_all(&mdir);
                std::fs::create_dir_all(&mdir).map_err(|e| EngineError::io("create", &mdir, e))?;
                Ok(())
            })
            .await??;
        }
        let etc = write_etc(&cdir, rec)?;
        let volumes = self.prepare_volumes(&rec.volumes, &rootfs)?;
        let spec = crate::spec::build(rec, &rootfs, &etc, &volumes)?;
        let bundle_cfg = mdir.join("config.json");
        let data = serde_json::to_vec(&spec).map_err(|e| EngineError::Spec {
            id: id.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&bundle_cfg, data).map_err(|e| EngineError::io("write", &bundle_cfg, e))?;
        let lc = &rec.host_config.log_config;
        let log = LogConfig {
            driver: if lc.kind == "none" {
                LogDriver::None
            } else {
                LogDriver::JsonFile
            },
            path: rec.log_path.clone(),
            max_size: lc
                .config
                .get("max-size")
                .and_then(|s| parse_size(s))
                .unwrap_or(self.inner.config.log_max_size),
            max_files: lc
                .config
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(self.inner.config.log_max_files),
        };
        let mc = MonitorConfig {
            id: id.clone(),
            bundle: mdir.clone(),
            runtime_root: self.inner.runtime_root.clone(),
            tty: rec.config.tty,
            open_stdin: rec.config.open_stdin,
            stdin_once: rec.config.stdin_once,
            log,
            exec: None,
        };
        let pid = crate::monitor::spawn(&self.inner.config.monitor, &mdir, &mc).await?;
        // Attaches that came before the start see the process's first byte.
        let pending: Vec<_> = std::mem::take(
            &mut *h
                .pending_attach
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (opts, tx) in pending {
            let _ = tx.send(self.attach_monitor(&id, &opts).await);
        }
        // The exit's answer is asked for before the start, so an instant exit is
        // answered on it.
        let wait = crate::monitor::wait_request(&mdir).await;
        let started = crate::monitor::command(&id, &mdir, &Request::Start).await;
        if let Err(e) = started {
            // The init exits; the watcher records it.
            self.spawn_watcher(h.clone(), wait);
            return Err(e);
        }
        let rec = h.update(&self.inner.store, |r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.started_at = berth_runtime::timestamp();
            r.state.error.clear();
            r.state.exit_code = 0;
            r.state.oom_killed = false;
            r.state.stopped_by_user = false;
        })?;
        h.life.send_modify(|l| l.running = true);
        self.spawn_watcher(h.clone(), wait);
        self.start_health(h);
        self.container_event(&rec, "start", &[]);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }
}
