//! Receiving the pty master the runtime's init sends to the console socket.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix};

use crate::SetupError;
use berth_errdefs::ErrorKind;

/// A bound, listening console socket at `path`.
pub(crate) fn listen(path: &Path) -> Result<OwnedFd, SetupError> {
    let _ = std::fs::remove_file(path);
    let fd = crate::io::unix_socket()?;
    let addr = SocketAddrUnix::new(path)
        .map_err(|e| SetupError::io("console socket address", path, e.into()))?;
    rustix::net::bind(&fd, &addr).map_err(|e| SetupError::io("bind", path, e.into()))?;
    rustix::net::listen(&fd, 1).map_err(|e| SetupError::io("listen", path, e.into()))?;
    Ok(fd)
}

/// Accepts the runtime's connection on `listener` and takes the pty master it carries.
pub(crate) fn receive_master(listener: &OwnedFd) -> Result<OwnedFd, SetupError> {
    let conn =
        rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC).map_err(|e| {
            SetupError::new(
                ErrorKind::from_errno(e.raw_os_error()),
                format!("accept on the console socket: {e}"),
            )
        })?;
    let mut buf = [0u8; 256];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    loop {
        match rustix::net::recvmsg(
            &conn,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(SetupError::new(
                    ErrorKind::Internal,
                    format!("receive the pty master: {e}"),
                ))
            }
        }
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(SetupError::new(
        ErrorKind::Internal,
        "the container sent no pty master",
    ))
}
