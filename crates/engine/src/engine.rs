//! The engine: the container index, the image service, events; start-up recovery.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use berth_images::service::{ImageService, ServiceConfig};
use berth_monitor::ExitStatus;
use tokio::sync::{broadcast, watch};

use crate::error::{EngineError, Result};
use crate::events::Event;
use crate::model::{ContainerRecord, Status};
use crate::store::Store;

/// Where and how the engine keeps its state.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state (`/var/lib/berth`): images, container records and logs.
    pub root: PathBuf,
    /// Runtime state on a tmpfs (`/run/berth`): monitors' directories, runtime state.
    pub exec_root: PathBuf,
    /// The `berth-monitor` binary.
    pub monitor: PathBuf,
    /// Default json-file rotation: bytes per file.
    pub log_max_size: u64,
    /// Default json-file rotation: files kept.
    pub log_max_files: u32,
}

impl EngineConfig {
    /// The defaults under `root` and `exec_root`.
    pub fn new(
        root: impl Into<PathBuf>,
        exec_root: impl Into<PathBuf>,
        monitor: impl Into<PathBuf>,
    ) -> Self {
        EngineConfig {
            root: root.into(),
            exec_root: exec_root.into(),
            monitor: monitor.into(),
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 3,
        }
    }
}

/// What waiters of a container watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Life {
    /// Exits seen since the engine started.
    pub exits: u64,
    /// The last exit code.
    pub exit_code: i32,
    /// Whether it runs.
    pub running: bool,
    /// Removed: the last state.
    pub removed: bool,
}

/// An attach that waits for the container to start.
pub(crate) type PendingAttach = (
    crate::container::AttachOptions,
    tokio::sync::oneshot::Sender<Result<tokio::net::UnixStream>>,
);

/// One container in the index.
#[derive(Debug)]
pub(crate) struct Handle {
    pub id: String,
    /// Serialises user operations (start, stop, remove, rename…).
    pub op: tokio::sync::Mutex<()>,
    /// The current record (what inspect sees); every change is saved under this lock.
    view: Mutex<ContainerRecord>,
    pub life: watch::Sender<Life>,
    pub pending_attach: Mutex<Vec<PendingAttach>>,
}

impl Handle {
    pub(crate) fn new(record: ContainerRecord) -> Arc<Handle> {
        let running = record.state.status.is_running();
        let life = Life {
            running,
            exit_code: record.state.exit_code,
            ..Life::default()
        };
        Arc::new(Handle {
            id: record.id.clone(),
            op: tokio::sync::Mutex::new(()),
            view: Mutex::new(record),
            life: watch::channel(life).0,
            pending_attach: Mutex::new(Vec::new()),
        })
    }

    /// A copy of the record.
    pub(crate) fn record(&self) -> ContainerRecord {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the record and saves it.
    pub(crate) fn update(
        &self,
        store: &Store,
        f: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord> {
        let mut v = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = v.clone();
        f(&mut next);
        store.save(&next)?;
        *v = next.clone();
        Ok(next)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub by_id: HashMap<String, Arc<Handle>>,
    /// Name (with `/`) → ID.
    pub names: HashMap<String, String>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub config: EngineConfig,
    pub images: ImageService,
    pub store: Store,
    pub index: Mutex<Index>,
    pub events: broadcast::Sender<Event>,
    pub runtime_root: PathBuf,
    pub execs: crate::exec::ExecTable,
    pub credentials: Arc<crate::registry::ClientCredentials>,
}

/// The engine. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl Inner {
    pub(crate) fn execs_forget(&self, id: &str) {
        self.execs.forget(id);
    }
}

impl Engine {
    /// Opens the engine's state: the image store, the container records, and re-adopts
    /// containers whose monitors still run (see the crate docs). Call from a tokio
    /// runtime.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        for d in [&config.root, &config.exec_root, &config.root.join("tmp")] {
            std::fs::create_dir_all(d).map_err(|e| EngineError::io("create", d, e))?;
        }
        let images_root = config.root.join("images");
        let credentials = Arc::new(crate::registry::ClientCredentials::default());
        let service_config = ServiceConfig {
            credentials: Some(credentials.clone()),
            ..ServiceConfig::default()
        };
        let images =
            tokio::task::spawn_blocking(move || ImageService::open(&images_root, service_config))
                .await??;
        let store = Store::open(&config.root)?;
        let runtime_root = config.exec_root.join("runtime");
        std::fs::create_dir_all(&runtime_root)
            .map_err(|e| EngineError::io("create", &runtime_root, e))?;
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                images,
                store,
                index: Mutex::new(Index::default()),
                events: broadcast::channel(1024).0,
                runtime_root,
                execs: crate::exec::ExecTable::default(),
                credentials,
            }),
        };
        engine.recover().await?;
        Ok(engine)
    }

    /// The image service.
    pub fn images(&self) -> &ImageService {
        &self.inner.images
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn monitor_dir(&self, id: &str) -> PathBuf {
        crate::monitor::dir_of(&self.inner.config.exec_root, id)
    }

    pub(crate) fn rootfs_dir(&self, id: &str) -> PathBuf {
        self.inner.store.dir(id).join("rootfs")
    }

    /// The container named by `key`: full ID, name (with or without `/`), or a unique
    /// ID prefix — in Docker's order.
    pub(crate) fn lookup(&self, key: &str) -> Result<Arc<Handle>> {
        let idx = self.index();
        if let Some(h) = idx.by_id.get(key) {
            return Ok(h.clone());
        }
        let name = if key.starts_with('/') {
            key.to_owned()
        } else {
            format!("/{key}")
        };
        if let Some(h) = idx.names.get(&name).and_then(|id| idx.by_id.get(id)) {
            return Ok(h.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = idx.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, h)) = found.next() {
                if found.next().is_some() {
                    return Err(EngineError::Ambiguous(key.to_owned()));
                }
                return Ok(h.clone());
            }
        }
        Err(EngineError::NoSuchContainer(key.to_owned()))
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, event: Event) {
        crate::events::record(event.clone());
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn container_event(
        &self,
        rec: &ContainerRecord,
        action: &str,
        extra: &[(&str, String)],
    ) {
        let mut attrs = vec![
            ("image".to_owned(), rec.config.image.clone()),
            ("name".to_owned(), rec.short_name().to_owned()),
        ];
        for (k, v) in rec.config.labels.clone().unwrap_or_default() {
            attrs.push((k, v));
        }
        for (k, v) in extra {
            attrs.push(((*k).to_owned(), v.clone()));
        }
        self.emit(Event::new("container", action, &rec.id, attrs));
    }

    /// Start-up recovery: remove half-made containers, record exits that happened while
    /// we were away, re-adopt running containers, apply restart policies.
    async fn recover(&self) -> Result<()> {
        let store = self.inner.store.clone();
        let (records, orphans) = tokio::task::spawn_blocking(move || store.load_all()).await??;
        for id in orphans {
            tracing::info!(container = %id, "removing a container whose create did not finish");
            let _ = unmount_all(&self.rootfs_dir(&id));
            let _ = self.inner.images.remove_rootfs(&id).await;
            let _ = self.inner.store.remove(&id);
        }
        let mut to_restart = Vec::new();
        for rec in records {
            let id = rec.id.clone();
            let status = rec.state.status;
            let h = Handle::new(rec.clone());
            {
                let mut idx = self.index();
                idx.names.insert(rec.name.clone(), id.clone());
                idx.by_id.insert(id.clone(), h.clone());
            }
            match status {
                Status::Restarting => {
                    // It had exited and was waiting for its policy's restart.
                    let _ = h.update(&self.inner.store, |r| r.state.status = Status::Exited);
                    if crate::container::restart_on_daemon_start(&h.record()) {
                        to_restart.push(id.clone());
                    }
                }
                Status::Running | Status::Paused => {
                    let dir = self.monitor_dir(&id);
                    if crate::monitor::connect(&dir).await.is_ok() {
                        tracing::info!(container = %id, "re-adopted a running container");
                        self.spawn_watcher(h.clone(), None);
                        self.start_health(&h);
                    } else {
                        let exit =
                            crate::monitor::exit_record(&dir).unwrap_or_else(|| ExitStatus {
                                code: 255,
                                oom_killed: false,
                                finished_at: berth_runtime::timestamp(),
                                started_at: None,
                            });
                        self.on_exit(h.clone(), exit, false).await;
                        let rec = h.record();
                        if crate::container::restart_on_daemon_start(&rec) {
                            to_restart.push(id.clone());
                        }
                    }
                }
                Status::Removing | Status::Dead => {
                    let _ = self.remove_container(&id, true, false).await;
                }
                Status::Created | Status::Exited => {
                    // A daemon killed during `start` leaves a monitor the record does
                    // not know of: adopt its container if it runs, else end it.
                    self.reconcile_orphan_monitor(&h).await;
                    let rec = h.record();
                    if crate::container::restart_on_daemon_start(&rec) {
                        to_restart.push(id.clone());
                    }
                }
            }
        }
        for id in to_restart {
            let e = self.clone();
            tokio::spawn(async move {
                if let Err(err) = e.start_container(&id).await {
                    tracing::warn!(container = %id, error = %err, "restart policy: start failed");
                }
            });
        }
        Ok(())
    }

    /// A monitor alive for a container whose record says it does not run (berthd died
    /// between spawning it and recording the start): adopt a running container, end a
    /// created one (its init still waits for `start`), and let the exit be recorded.
    pub(crate) async fn reconcile_orphan_monitor(&self, h: &Arc<Handle>) {
        let dir = self.monitor_dir(&h.id);
        let state = match crate::monitor::request(&h.id, &dir, &berth_monitor::Request::State).await
        {
            Ok((
                berth_monitor::Reply::State {
                    pid,
                    status,
                    started_at,
                },
                _,
            )) => (pid, status, started_at),
            _ => return,
        };
        if state.1 == "running" {
            tracing::info!(container = %h.id, "adopting a container started by a daemon that died before recording it");
            let started = state.2.unwrap_or_else(berth_runtime::timestamp);
            let _ = h.update(&self.inner.store, |r| {
                r.state.status = Status::Running;
                r.state.pid = state.0;
                r.state.started_at = started;
            });
            h.life.send_modify(|l| l.running = true);
            self.spawn_watcher(h.clone(), None);
        } else {
            tracing::info!(container = %h.id, "ending a container created by a daemon that died before starting it");
            let wait = crate::monitor::wait_request(&dir).await;
            let _ = crate::monitor::command(
                &h.id,
                &dir,
                &berth_monitor::Request::Kill {
                    signal: 9,
                    all: true,
                },
            )
            .await;
            if let Some(c) = wait {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    crate::monitor::wait_on(c),
                )
                .await;
            }
            let (rootfs, mdir) = (self.rootfs_dir(&h.id), dir);
            let _ = tokio::task::spawn_blocking(move || {
                let _ = unmount_all(&rootfs);
                let _ = std::fs::remove_dir_all(&mdir);
            })
            .await;
        }
    }

    /// Watches a running container's monitor and records its exit.
    pub(crate) fn spawn_watcher(&self, h: Arc<Handle>, conn: Option<tokio::net::UnixStream>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let dir = engine.monitor_dir(&h.id);
            // The answer to `wait`, or the monitor's end noticed another way (a wait
            // connection that would never be answered must not hide an exit).
            let waited = tokio::select! {
                w = async {
                    match conn {
                        Some(c) => crate::monitor::wait_on(c).await,
                        None => crate::monitor::wait(&dir).await,
                    }
                } => w,
                () = crate::monitor::gone(&dir) => None,
            };
            let exit = match waited {
                Some(e) => e,
                None => {
                    // The monitor is gone without answering: it writes its record
                    // before it closes its connections, so the record tells (a moment
                    // later at most, if it was still writing it).
                    let mut record = crate::monitor::exit_record(&dir);
                    if record.is_none() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        record = crate::monitor::exit_record(&dir);
                    }
                    record.unwrap_or_else(|| ExitStatus {
                        code: 255,
                        oom_killed: false,
                        finished_at: berth_runtime::timestamp(),
                        started_at: None,
                    })
                }
            };
            engine.on_exit(h, exit, true).await;
        });
    }

    /// A container's process has exited: unmount, record, notify, apply its policy.
    pub(crate) async fn on_exit(&self, h: Arc<Handle>, exit: ExitStatus, apply_policy: bool) {
        let id = h.id.clone();
        let rootfs = self.rootfs_dir(&id);
        let mdir = self.monitor_dir(&id);
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = unmount_all(&rootfs) {
                tracing::error!(path = %rootfs.display(), error = %e, "unmounting the root filesystem");
            }
            let _ = std::fs::remove_dir_all(&mdir);
        })
        .await;
        let rec = h.update(&self.inner.store, |r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = exit.code;
            r.state.finished_at = exit.finished_at.clone();
            r.state.oom_killed = exit.oom_killed;
        });
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(container = %id, error = %e, "recording the exit");
                h.record()
            }
        };
        h.life.send_modify(|l| {
            l.exits += 1;
            l.exit_code = exit.code;
            l.running = false;
        });
        if exit.oom_killed {
            self.container_event(&rec, "oom", &[]);
        }
        self.container_event(&rec, "die", &[("exitCode", exit.code.to_string())]);
        if !apply_policy {
            return;
        }
        if rec.host_config.auto_remove {
            let e = self.clone();
            tokio::spawn(async move {
                if let Err(err) = e.remove_container(&id, true, true).await {
                    tracing::warn!(container = %id, error = %err, "auto-remove");
                }
            });
            return;
        }
        crate::container::maybe_restart(self, h, &rec);
    }
}

/// Mounts a container's root filesystem (`mounts`, from the image service) on `dir`,
/// replacing whatever a crash left mounted there. Blocking.
pub(crate) fn mount_rootfs(
    id: &str,
    mounts: &[berth_images::snapshot::Mount],
    dir: &Path,
) -> Result<()> {
    let _ = unmount_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io("create", dir, e))?;
    berth_images::snapshot::mount(mounts, dir).map_err(|source| EngineError::Mount {
        id: id.to_owned(),
        source,
    })
}

/// Unmounts everything mounted on `target` (stacked mounts included).
pub(crate) fn unmount_all(target: &Path) -> std::io::Result<()> {
    for _ in 0..16 {
        match rustix::mount::unmount(target, rustix::mount::UnmountFlags::NOFOLLOW) {
            Ok(()) => continue,
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => {
                rustix::mount::unmount(
                    target,
                    rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::NOFOLLOW,
                )?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
