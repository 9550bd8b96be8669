//! The engine's side of the monitor protocol (see `berth_monitor`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_errdefs::ErrorKind;
use berth_monitor::{
    ExitStatus, MonitorConfig, Reply, Request, CONFIG_FILE, EXIT_FILE, SOCKET_FILE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{EngineError, Result};

/// How long a monitor may take to create its container.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads one reply line without reading past it (the stream may go on as raw data).
async fn read_line(stream: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = stream.read(&mut b).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if b[0] == b'\n' {
            return Ok(line);
        }
        line.push(b[0]);
        if line.len() > 1 << 20 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

fn reply_error(id: &str, reply: Reply) -> EngineError {
    match reply {
        Reply::Error { kind, message } => EngineError::Runtime {
            kind: ErrorKind::from_name(&kind).unwrap_or(ErrorKind::Internal),
            message,
        },
        other => EngineError::Runtime {
            kind: ErrorKind::Internal,
            message: format!("unexpected reply from the monitor of {id}: {other:?}"),
        },
    }
}

/// Spawns the monitor on directory `dir` (holding `config.json`) and waits for its
/// report: the init's PID once the container is created.
pub(crate) async fn spawn(monitor: &Path, dir: &Path, config: &MonitorConfig) -> Result<i32> {
    let id = config.id.clone();
    let cfg_path = dir.join(CONFIG_FILE);
    let data = serde_json::to_vec(config).map_err(|e| EngineError::Spec {
        id: id.clone(),
        message: e.to_string(),
    })?;
    tokio::fs::write(&cfg_path, data)
        .await
        .map_err(|e| EngineError::io("write", &cfg_path, e))?;
    let log_path = dir.join("monitor.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| EngineError::io("create", &log_path, e))?;
    let mut child = tokio::process::Command::new(monitor)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| EngineError::SpawnMonitor {
            id: id.clone(),
            source,
        })?;
    let mut out = child.stdout.take();
    // The monitor outlives us if it must; reap it if we are still here when it ends.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let Some(mut out) = out.take() else {
        return Err(EngineError::MonitorGone { id });
    };
    let mut line = Vec::new();
    let read = tokio::time::timeout(CREATE_TIMEOUT, async {
        let mut b = [0u8; 1];
        loop {
            match out.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(_) if b[0] == b'\n' => break,
                Ok(_) => line.push(b[0]),
            }
        }
    })
    .await;
    if read.is_err() || line.is_empty() {
        let why = std::fs::read_to_string(&log_path).unwrap_or_default();
        tracing::error!(container = %id, log = %why.trim(), "monitor gave no report");
        return Err(EngineError::MonitorGone { id });
    }
    match serde_json::from_slice::<Reply>(&line) {
        Ok(Reply::Ok { pid }) => Ok(pid),
        Ok(other) => Err(reply_error(&id, other)),
        Err(_) => Err(EngineError::MonitorGone { id }),
    }
}

/// A connection to the monitor in `dir`.
pub(crate) async fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(dir.join(SOCKET_FILE)).await
}

/// Sends `request` and reads the one-line reply.
pub(crate) async fn request(
    id: &str,
    dir: &Path,
    request: &Request,
) -> Result<(Reply, UnixStream)> {
    let gone = |_| EngineError::NotRunning(id.to_owned());
    let mut s = connect(dir).await.map_err(gone)?;
    let mut line = serde_json::to_vec(request).unwrap_or_default();
    line.push(b'\n');
    s.write_all(&line).await.map_err(gone)?;
    let reply = read_line(&mut s).await.map_err(gone)?;
    let reply = serde_json::from_slice::<Reply>(&reply).map_err(|e| EngineError::Runtime {
        kind: ErrorKind::Internal,
        message: format!("bad reply from the monitor of {id}: {e}"),
    })?;
    Ok((reply, s))
}

/// Sends `request`, expecting `Ok`.
pub(crate) async fn command(id: &str, dir: &Path, req: &Request) -> Result<()> {
    match request(id, dir, req).await?.0 {
        Reply::Ok { .. } => Ok(()),
        other => Err(reply_error(id, other)),
    }
}

/// A `wait` request sent to the monitor of `dir`: its answer comes at the exit. Open
/// it before the process starts, so even an instant exit is answered on it.
pub(crate) async fn wait_request(dir: &Path) -> Option<UnixStream> {
    let mut s = connect(dir).await.ok()?;
    let mut line = serde_json::to_vec(&Request::Wait).unwrap_or_default();
    line.push(b'\n');
    s.write_all(&line).await.ok()?;
    Some(s)
}

/// Waits for the container's exit. `None` when the monitor is gone without telling
/// (then `exit.json` or nothing tells).
pub(crate) async fn wait(dir: &Path) -> Option<ExitStatus> {
    wait_on(wait_request(dir).await?).await
}

/// The answer on a [`wait_request`] connection.
pub(crate) async fn wait_on(mut s: UnixStream) -> Option<ExitStatus> {
    let reply = read_line(&mut s).await.ok()?;
    match serde_json::from_slice::<Reply>(&reply).ok()? {
        Reply::Exited(e) => Some(e),
        _ => None,
    }
}

/// Resolves once the monitor of `dir` has ended (checked every second through its PID
/// file: the PID is the monitor's as long as the file exists, since the monitor
/// directory is removed only after the monitor has ended).
pub(crate) async fn gone(dir: &Path) {
    let pid = std::fs::read_to_string(dir.join(berth_monitor::PID_FILE))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    let Some(pid) = pid else {
        // Without its PID, only the wait connection can tell.
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let alive = rustix::process::test_kill_process(pid).is_ok()
            && !std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero().get()))
                .is_ok_and(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                });
        if !alive {
            return;
        }
    }
}

/// The exit record a monitor left, if any.
pub(crate) fn exit_record(dir: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// The monitor directory of container (or exec session) `id`: the first 32 hex digits
/// of its ID, which keeps `monitor.sock` well inside `sun_path`'s 108 bytes.
pub(crate) fn dir_of(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join(id.get(..32).unwrap_or(id))
}
