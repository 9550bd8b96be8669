//! The channel between the runtime and the processes it forks.
//!
//! A `SOCK_SEQPACKET` socket pair keeps message boundaries, so each [`Msg`] is one
//! datagram (JSON, bounded), optionally carrying one file descriptor (`SCM_RIGHTS`).
//! The same framing is used on the container's `start.sock` (a bound datagram socket).
//!
//! The create protocol, runtime (R) and container init (I):
//! 1. R clones I in new namespaces (on cgroup v2 straight into its cgroup).
//! 2. With a new user namespace R writes the ID maps and sends `Maps`; I waits for it.
//! 3. Without a user namespace I moves itself into its (v1) cgroups (a thread moving
//!    itself skips the global lock whose first writer waits for an RCU grace period, ~10 ms
//!    here). With one, R places I while I already builds its root filesystem. R sends `Go`;
//!    I waits for it before running any hook or unsharing its cgroup namespace.
//! 4. If there are `prestart`/`createRuntime` hooks, I sends `RunHooks` and waits for
//!    `HooksDone`.
//! 4. I finishes the set-up and sends `Created` (or `Failed` at any step, then exits).
//! 5. `start` (or `run`) sends `Start` carrying a pipe's write end; I runs the
//!    `startContainer` hooks and `execve`s; close-on-exec closes the pipe, which tells the
//!    starter that the exec happened; an error is written into the pipe instead.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest message accepted.
const MAX_MSG: usize = 64 * 1024;

/// One message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Msg {
    /// R → I: the user namespace's ID maps are written (sent only with a new user namespace).
    Maps,
    /// R → I: the cgroups are in place; go on. Carries the state JSON for hooks.
    Go(String),
    /// I → R: namespaces exist; run prestart/createRuntime hooks now.
    RunHooks,
    /// R → I: hooks ran.
    HooksDone,
    /// I → R: set-up finished; waiting for start.
    Created,
    /// Intermediate → R: the PID of the process it cloned.
    Pid(i32),
    /// R → I: exec the user process now (carries the report pipe, and the state JSON for
    /// the startContainer hooks).
    Start(String),
    /// Either way: a step failed.
    Failed(String),
}

/// A connected SEQPACKET socket pair end.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
}

/// A new close-on-exec Unix socket of `kind` (for the start and console sockets).
pub(crate) fn unix_socket(kind: SocketType) -> Result<OwnedFd> {
    rustix::net::socket_with(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
        .map_err(|e| Error::sys("socket", e))
}

/// Create a connected pair.
pub(crate) fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socketpair", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Send a message, optionally with a descriptor.
    pub(crate) fn send(&self, msg: &Msg, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        send_on(self.fd.as_fd(), msg, fd)
    }

    /// Receive a message and the descriptor that came with it. EOF is an error: the peer died.
    pub(crate) fn recv(&self) -> Result<(Msg, Option<OwnedFd>)> {
        recv_on(self.fd.as_fd())
    }

    /// Receive, expecting exactly `want`; a `Failed` message becomes [`Error::Init`].
    pub(crate) fn expect(&self, want: &Msg) -> Result<Option<OwnedFd>> {
        match self.recv()? {
            (m, fd) if &m == want => Ok(fd),
            (Msg::Failed(why), _) => Err(Error::Init(why)),
            (other, _) => Err(Error::Init(format!(
                "protocol error: expected {want:?}, got {other:?}"
            ))),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub(crate) fn send_on(sock: BorrowedFd<'_>, msg: &Msg, fd: Option<BorrowedFd<'_>>) -> Result<()> {
    let data = serde_json::to_vec(msg).map_err(|e| Error::Init(e.to_string()))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(&data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("sendmsg on the sync socket", e)),
        }
    }
}

pub(crate) fn recv_on(sock: BorrowedFd<'_>) -> Result<(Msg, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => break r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("recvmsg on the sync socket", e)),
        }
    };
    let mut received = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                if received.is_none() {
                    received = Some(fd);
                }
            }
        }
    }
    if got.bytes == 0 {
        return Err(Error::Init(
            "the peer process exited before answering".into(),
        ));
    }
    let data = buf.get(..got.bytes).unwrap_or_default();
    let msg = serde_json::from_slice(data)
        .map_err(|e| Error::Init(format!("malformed sync message: {e}")))?;
    Ok((msg, received))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_fd() {
        let (a, b) = pair().unwrap();
        let (r, _w) = rustix::pipe::pipe().unwrap();
        a.send(&Msg::Pid(42), Some(r.as_fd())).unwrap();
        let (m, fd) = b.recv().unwrap();
        assert_eq!(m, Msg::Pid(42));
        assert!(fd.is_some());
        a.send(&Msg::Failed("boom".into()), None).unwrap();
        assert!(matches!(b.expect(&Msg::HooksDone), Err(Error::Init(s)) if s == "boom"));
        drop(a);
        assert!(b.recv().is_err());
    }
}
