//! `attach`: a stream connected to the container's monitor.

use std::sync::PoisonError;

use berth_monitor::{Reply, Request};
use tokio::net::UnixStream;

use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// Which streams to attach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Forward the client's input to the process's stdin.
    pub stdin: bool,
    /// Receive standard output.
    pub stdout: bool,
    /// Receive standard error.
    pub stderr: bool,
}

/// An attach stream: container output (Docker's multiplexed frames without a tty, raw
/// with one) one way, stdin the other.
#[derive(Debug)]
pub struct AttachStream {
    /// The connection to the monitor.
    pub stream: UnixStream,
    /// Whether the container has a tty (the output is raw).
    pub tty: bool,
}

impl Engine {
    pub(crate) async fn attach_monitor(
        &self,
        id: &str,
        opts: &AttachOptions,
    ) -> Result<UnixStream> {
        let dir = self.monitor_dir(id);
        let req = Request::Attach {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        match crate::monitor::request(id, &dir, &req).await? {
            (Reply::Ok { .. }, s) => Ok(s),
            (Reply::Error { kind, message }, _) => Err(EngineError::Runtime {
                kind: berth_errdefs::ErrorKind::from_name(&kind)
                    .unwrap_or(berth_errdefs::ErrorKind::Internal),
                message,
            }),
            (other, _) => Err(EngineError::Runtime {
                kind: berth_errdefs::ErrorKind::Internal,
                message: format!("unexpected attach reply {other:?}"),
            }),
        }
    }

    /// Attaches to container `key` (`docker attach`, and `docker run` before it
    /// starts): if it is not running yet the stream is connected when it starts, so
    /// no output is missed.
    pub async fn attach_container(&self, key: &str, opts: AttachOptions) -> Result<AttachStream> {
        let h = self.lookup(key)?;
        let rec = h.record();
        let tty = rec.config.tty;
        if rec.state.status.is_running() {
            if let Ok(stream) = self.attach_monitor(&rec.id, &opts).await {
                return Ok(AttachStream { stream, tty });
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        h.pending_attach
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((opts, tx));
        match rx.await {
            Ok(r) => r.map(|stream| AttachStream { stream, tty }),
            Err(_) => Err(EngineError::NoSuchContainer(key.to_owned())),
        }
    }

    /// Resizes container `key`'s terminal.
    pub async fn resize_container(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let h = self.lookup(key)?;
        let rec = h.record();
        if !rec.state.status.is_running() {
            return Err(EngineError::NotRunning(rec.id.clone()));
        }
        let dir = self.monitor_dir(&rec.id);
        crate::monitor::command(&rec.id, &dir, &Request::Resize { height, width }).await
    }
}
