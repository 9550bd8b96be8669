//! `start`: tell a created container's init to exec the user process.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::net::SocketAddrUnix;

use crate::container::{wrong_state, Runtime};
use crate::error::{Error, Result};
use crate::state::{Status, START_SOCKET};
use crate::sync::{self, Msg};

/// The address of a start socket; paths too long for `sun_path` go through the directory's
/// descriptor (`/proc/self/fd/N/start.sock`), which must stay open while the address is used.
pub(crate) fn socket_addr(path: &Path) -> Result<(SocketAddrUnix, Option<OwnedFd>)> {
    if let Ok(a) = SocketAddrUnix::new(path) {
        return Ok((a, None));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("open", dir, e.into()))?;
    let short = crate::paths::fd_path_of(&fd).join(START_SOCKET);
    let a = SocketAddrUnix::new(short.as_path())
        .map_err(|e| Error::io("socket address", path, e.into()))?;
    Ok((a, Some(fd)))
}

/// Send `Start` over `send` (a closure that delivers the message with the report pipe's
/// write end), then wait until the init has exec'd (the pipe closes) or reported an error.
pub(crate) fn start_and_report(
    send: impl FnOnce(&Msg, std::os::fd::BorrowedFd<'_>) -> Result<()>,
    state_json: String,
) -> Result<()> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("pipe", e))?;
    send(&Msg::Start(state_json), w.as_fd())?;
    drop(w);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&r, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(buf.get(..n).unwrap_or_default());
                if out.len() > 64 * 1024 {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("read the start report", e)),
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(crate::sync::Failure::decode(&out))
    }
}

impl Runtime {
    /// Start a created container: run `startContainer` hooks and exec the user process,
    /// then run `poststart` hooks.
    pub fn start(&self, id: &str) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status != Status::Created {
            return Err(wrong_state(id, status, "start"));
        }
        let dir = record.dir(&self.root);
        let sock_path = dir.join(START_SOCKET);
        let sock = crate::sync::unix_socket(rustix::net::SocketType::DGRAM)?;
        let (addr, _keep) = socket_addr(&sock_path)?;
        rustix::net::connect(&sock, &addr)
            .map_err(|e| Error::io("connect to the start socket", &sock_path, e.into()))?;
        // Once the message is queued the container counts as started, whatever happens next.
        let result = start_and_report(
            |msg, fd| {
                let r = sync::send_on(sock.as_fd(), msg, Some(fd));
                let _ = std::fs::remove_file(&sock_path);
                r
            },
            record.hook_state(Status::Created),
        );
        result?;
        if let Some(ps) = record.hooks.as_ref().and_then(|h| h.poststart().clone()) {
            for e in crate::hooks::run_warn(
                "poststart",
                &ps,
                record.hook_state(Status::Running).as_bytes(),
            ) {
                crate::warn(&e.to_string());
            }
        }
        Ok(())
    }
}
