//! The container's terminal: a pty from the container's own devpts instance, whose master
//! goes to the caller through the console socket (`SCM_RIGHTS`), and whose slave becomes
//! the process's controlling terminal, stdio and `/dev/console`.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::pty::OpenptFlags;

use crate::error::{Error, Result};
use crate::paths::{ensure_in_root, Leaf};
use crate::rootfs::mounts::{attach, clone_tree};

/// A connected datagram socket pair over which the container sends its pty master to a
/// runtime that holds the terminal itself (`run`/`exec` in the foreground).
pub(crate) fn internal_socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socketpair for the console", e))
}

/// Create the pty; returns (master, slave).
pub(crate) fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    rustix::pty::unlockpt(&master).map_err(|e| Error::sys("unlockpt", e))?;
    // Open the peer straight from the master: no path lookup an attacker could redirect.
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .map_err(|e| Error::sys("open the pty peer (TIOCGPTPEER)", e))?;
    if let Some((rows, cols)) = size {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws)
            .map_err(|e| Error::sys("set the console size", e))?;
    }
    Ok((master, slave))
}

/// Send the master to the console socket, as runc does (the pty name as data).
pub(crate) fn send_master(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<()> {
    let name = rustix::pty::ptsname(master, Vec::new())
        .map(|c| c.into_bytes())
        .unwrap_or_else(|_| b"/dev/ptmx".to_vec());
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&name)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| Error::sys("send the pty master to the console socket", e))?;
    Ok(())
}

/// Bind the slave over `/dev/console` inside `root`.
pub(crate) fn mount_console(root: BorrowedFd<'_>, slave: BorrowedFd<'_>) -> Result<()> {
    let target = ensure_in_root(root, Path::new("/dev/console"), Leaf::File, 0o600)?;
    let tree = clone_tree(slave, Path::new(""), false)?;
    attach(tree.as_fd(), target.as_fd(), Path::new("/dev/console"))
}

/// Make `slave` the controlling terminal and stdio of the calling process.
pub(crate) fn make_controlling(slave: &OwnedFd) -> Result<()> {
    rustix::process::setsid().map_err(|e| Error::sys("setsid", e))?;
    rustix::process::ioctl_tiocsctty(slave).map_err(|e| Error::sys("TIOCSCTTY", e))?;
    rustix::stdio::dup2_stdin(slave).map_err(|e| Error::sys("dup2 stdin", e))?;
    rustix::stdio::dup2_stdout(slave).map_err(|e| Error::sys("dup2 stdout", e))?;
    rustix::stdio::dup2_stderr(slave).map_err(|e| Error::sys("dup2 stderr", e))?;
    Ok(())
}

/// Receive a pty master sent with [`send_master`].
pub(crate) fn recv_master(socket: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        socket,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receive the pty master", e))?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(Error::Init("the container sent no pty master".into()))
}
