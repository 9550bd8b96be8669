//! Exec sessions (`docker exec`): a process run in a running container under its own
//! monitor (`berth-monitor` in exec mode), attached like a container.
//!
//! Sessions live in memory while their container lives (Docker keeps them only while
//! the daemon runs too); their monitors record the exit code in their directory, where
//! `inspect` reads it even if the daemon restarted meanwhile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use berth_monitor::{LogConfig, LogDriver, MonitorConfig, Request};
use serde::{Deserialize, Serialize};

use crate::container::AttachStream;
use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// What `docker exec` asks for (Docker's `ExecConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    /// Attach stdin.
    pub attach_stdin: bool,
    /// Attach stdout.
    pub attach_stdout: bool,
    /// Attach stderr.
    pub attach_stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
    /// Initial terminal size `[height, width]`.
    pub console_size: Option<Vec<u16>>,
    /// Detach keys.
    pub detach_keys: String,
    /// `KEY=value` additions.
    pub env: Option<Vec<String>>,
    /// The command.
    pub cmd: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// `user[:group]`.
    pub user: String,
    /// All capabilities, no confinement.
    pub privileged: bool,
}

/// One exec session.
#[derive(Debug, Clone)]
pub struct ExecSession {
    /// Its ID.
    pub id: String,
    /// The container's ID.
    pub container: String,
    /// What was asked.
    pub config: ExecConfig,
    /// Its process's host PID once started.
    pub pid: i32,
    /// Started and not yet exited.
    pub running: bool,
    /// Started once.
    pub started: bool,
    /// The exit code once exited.
    pub exit_code: Option<i32>,
    dir: PathBuf,
}

#[derive(Debug, Default)]
pub(crate) struct ExecTable {
    sessions: Mutex<HashMap<String, ExecSession>>,
}

impl ExecTable {
    fn get(&self, id: &str) -> Option<ExecSession> {
        let map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).cloned().or_else(|| {
            let mut it = map.values().filter(|s| s.id.starts_with(id));
            match (it.next(), it.next()) {
                (Some(s), None) if !id.is_empty() => Some(s.clone()),
                _ => None,
            }
        })
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ExecSession)) {
        if let Some(s) = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(id)
        {
            f(s);
        }
    }

    /// Forgets one session.
    pub(crate) fn forget(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Forgets the sessions of a removed container.
    pub(crate) fn forget_container(&self, container: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.container != container);
    }
}

fn no_such_exec(id: &str) -> EngineError {
    EngineError::NoSuchExec(id.to_owned())
}

impl Engine {
    /// Creates an exec session in running container `key`.
    pub fn exec_create(&self, key: &str, config: ExecConfig) -> Result<String> {
        let h = self.lookup(key)?;
        let rec = h.record();
        if !rec.state.status.is_running() {
            return Err(EngineError::NotRunning(rec.id.clone()));
        }
        if rec.state.status == crate::model::Status::Paused {
            return Err(EngineError::Paused(rec.id.clone()));
        }
        if config.cmd.is_empty() {
            return Err(EngineError::InvalidArgument(
                "No exec command specified".into(),
            ));
        }
        let id = crate::names::new_id()?;
        let dir = self.monitor_dir(&id);
        let session = ExecSession {
            id: id.clone(),
            container: rec.id.clone(),
            config,
            pid: 0,
            running: false,
            started: false,
            exit_code: None,
            dir,
        };
        self.inner
            .execs
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), session);
        self.container_event(&rec, "exec_create", &[]);
        Ok(id)
    }

    /// The session `id`, its exit code read from its monitor's record if it ended.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecSession> {
        let mut s = self.inner.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        // Started and no exit seen yet: the monitor's record may already have it (a
        // client inspects as soon as the stream ends, maybe before the start reply
        // was processed here).
        if s.started && s.exit_code.is_none() {
            if let Some(exit) = crate::monitor::exit_record(&s.dir) {
                s.running = false;
                s.exit_code = Some(exit.code);
                let code = exit.code;
                self.inner.execs.update(&s.id, |x| {
                    x.running = false;
                    x.exit_code = Some(code);
                });
            }
        }
        Ok(s)
    }

    /// Starts exec session `id`; attached (`detach == false`) it returns the stream.
    pub async fn exec_start(&self, id: &str, detach: bool) -> Result<Option<AttachStream>> {
        let s = self.inner.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        if s.started {
            return Err(EngineError::ExecStarted(s.id.clone()));
        }
        self.inner.execs.update(&s.id, |x| x.started = true);
        let h = self.lookup(&s.container)?;
        let rec = h.record();
        if !rec.state.status.is_running() {
            return Err(EngineError::NotRunning(rec.id.clone()));
        }
        let cdir = self.monitor_dir(&rec.id);
        let spec_path = cdir.join("config.json");
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(
            &std::fs::read(&spec_path).map_err(|e| EngineError::io("read", &spec_path, e))?,
        )
        .map_err(|source| EngineError::Record {
            path: spec_path.clone(),
            source,
        })?;
        let process = crate::spec::exec_process(&spec, &rec, &self.rootfs_dir(&rec.id), &s.config)?;
        let _ = std::fs::remove_dir_all(&s.dir);
        std::fs::create_dir_all(&s.dir).map_err(|e| EngineError::io("create", &s.dir, e))?;
        let mc = MonitorConfig {
            id: rec.id.clone(),
            bundle: cdir,
            runtime_root: self.inner.runtime_root.clone(),
            tty: s.config.tty,
            open_stdin: s.config.attach_stdin,
            stdin_once: true,
            log: LogConfig {
                driver: LogDriver::None,
                path: s.dir.join("none.log"),
                max_size: 0,
                max_files: 1,
            },
            exec: Some(process),
        };
        crate::monitor::spawn(&self.inner.config.monitor, &s.dir, &mc).await?;
        let stream = if detach {
            None
        } else {
            let req = Request::Attach {
                stdin: s.config.attach_stdin,
                stdout: s.config.attach_stdout || !s.config.attach_stdin,
                stderr: s.config.attach_stderr || !s.config.attach_stdin,
            };
            match crate::monitor::request(&s.id, &s.dir, &req).await? {
                (berth_monitor::Reply::Ok { .. }, stream) => Some(AttachStream {
                    stream,
                    tty: s.config.tty,
                }),
                (other, _) => {
                    return Err(EngineError::Runtime {
                        kind: berth_errdefs::ErrorKind::Internal,
                        message: format!("unexpected attach reply {other:?}"),
                    })
                }
            }
        };
        let wait = crate::monitor::wait_request(&s.dir).await;
        match crate::monitor::request(&s.id, &s.dir, &Request::Start)
            .await?
            .0
        {
            berth_monitor::Reply::Ok { pid } => {
                self.inner.execs.update(&s.id, |x| {
                    x.pid = pid;
                    x.running = true;
                });
            }
            berth_monitor::Reply::Error { kind, message } => {
                self.inner.execs.update(&s.id, |x| {
                    x.exit_code = Some(berth_monitor::start_failure_code(&message));
                });
                return Err(EngineError::Runtime {
                    kind: berth_errdefs::ErrorKind::from_name(&kind)
                        .unwrap_or(berth_errdefs::ErrorKind::Internal),
                    message,
                });
            }
            other => {
                return Err(EngineError::Runtime {
                    kind: berth_errdefs::ErrorKind::Internal,
                    message: format!("unexpected start reply {other:?}"),
                })
            }
        }
        self.container_event(&rec, "exec_start", &[("execID", s.id.clone())]);
        // Record the exit when it comes.
        let engine = self.clone();
        let (eid, edir) = (s.id.clone(), s.dir.clone());
        tokio::spawn(async move {
            let answered = match wait {
                Some(c) => crate::monitor::wait_on(c).await,
                None => crate::monitor::wait(&edir).await,
            };
            let exit = match answered {
                Some(e) => Some(e),
                None => crate::monitor::exit_record(&edir),
            };
            let code = exit.map_or(255, |e| e.code);
            engine.inner.execs.update(&eid, |x| {
                x.running = false;
                x.exit_code = Some(code);
            });
            if let Ok(rec) = engine.inspect_container(&rec.id) {
                engine.container_event(
                    &rec,
                    "exec_die",
                    &[("execID", eid.clone()), ("exitCode", code.to_string())],
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let _ = std::fs::remove_dir_all(&edir);
        });
        Ok(stream)
    }

    /// Kills exec session `id`'s process.
    pub(crate) async fn exec_kill(&self, id: &str) -> Result<()> {
        let s = self.inner.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        crate::monitor::command(
            &s.id,
            &s.dir,
            &Request::Kill {
                signal: 9,
                all: false,
            },
        )
        .await
    }

    /// Resizes exec session `id`'s terminal.
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let s = self.inner.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        crate::monitor::command(&s.id, &s.dir, &Request::Resize { height, width }).await
    }
}
