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
    /// Either way: a step failed (its class and message).
    Failed(Failure),
}

/// A failure reported by a process the runtime forked: its error class crosses the
/// process boundary with the message, so the caller (and the engine above it) can tell a
/// missing executable (invalid argument) from a permission problem or a bug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// [`berth_errdefs::ErrorKind::as_str`] of the error.
    pub kind: String,
    /// Its message.
    pub message: String,
}

impl Failure {
    /// The report of `err`.
    pub(crate) fn of(err: &(impl std::fmt::Display + berth_errdefs::HasKind)) -> Failure {
        Failure {
            kind: err.kind().as_str().to_owned(),
            message: err.to_string(),
        }
    }

    /// A failure of class `kind` with `message`.
    pub(crate) fn new(kind: berth_errdefs::ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// The error the receiving side returns.
    pub(crate) fn into_error(self) -> Error {
        Error::Reported {
            kind: berth_errdefs::ErrorKind::from_name(&self.kind)
                .unwrap_or(berth_errdefs::ErrorKind::Internal),
            message: self.message,
        }
    }

    /// Decode what a start report pipe carried: the JSON form, or plain text (class
    /// unknown, reported as a failed precondition).
    pub(crate) fn decode(bytes: &[u8]) -> Error {
        match serde_json::from_slice::<Failure>(bytes) {
            Ok(f) => f.into_error(),
            Err(_) => Error::Init(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// The JSON form written into a start report pipe.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| self.message.clone().into_bytes())
    }
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
            (Msg::Failed(why), _) => Err(why.into_error()),
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
        let boom = Failure::new(berth_errdefs::ErrorKind::InvalidArgument, "boom");
        a.send(&Msg::Failed(boom.clone()), None).unwrap();
        let e = b.expect(&Msg::HooksDone).unwrap_err();
        assert_eq!(e.to_string(), "boom");
        assert_eq!(
            berth_errdefs::HasKind::kind(&e),
            berth_errdefs::ErrorKind::InvalidArgument
        );
        assert_eq!(Failure::decode(&boom.encode()).to_string(), "boom");
        assert!(matches!(Failure::decode(b"plain"), Error::Init(s) if s == "plain"));
        drop(a);
        assert!(b.recv().is_err());
    }
}
