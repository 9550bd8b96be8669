//! The monitor's one loop: container output to the log and attached clients, client
//! requests, the init's exit.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_errdefs::{ErrorKind, HasKind};
use berth_monitor::{
    frame_header, stream, ExitStatus, MonitorConfig, Reply, Request, CONSOLE_SOCKET_FILE,
    EXIT_FILE, PID_FILE, SOCKET_FILE,
};
use berth_runtime::{CreateOptions, Runtime};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::logfile::Log;
use crate::SetupError;

/// Most bytes of one request line.
const MAX_REQUEST: usize = 64 * 1024;
/// Most output bytes queued for one attached client before it is dropped.
const MAX_CLIENT_BACKLOG: usize = 4 * 1024 * 1024;
/// Most stdin bytes queued for the container before clients are not read.
const MAX_STDIN_BACKLOG: usize = 256 * 1024;

/// A new close-on-exec Unix stream socket.
pub(crate) fn unix_socket() -> Result<OwnedFd, SetupError> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SetupError::new(ErrorKind::Internal, format!("socket: {e}")))
}

/// Writes all of `data` (blocking).
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                let mut p = [PollFd::new(&fd, PollFlags::OUT)];
                let _ = rustix::event::poll(&mut p, None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Debug)]
enum ClientState {
    /// Reading its request line.
    Request,
    /// An attach stream.
    Attached {
        stdin: bool,
        stdout: bool,
        stderr: bool,
        /// The client closed its side (no more stdin).
        read_closed: bool,
    },
    /// Waiting for the exit.
    Waiting,
    /// Sending its last reply, then closing.
    Closing,
}

#[derive(Debug)]
struct Client {
    fd: OwnedFd,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    state: ClientState,
    dead: bool,
}

impl Client {
    fn queue(&mut self, data: &[u8]) {
        if self.out.len() + data.len() > MAX_CLIENT_BACKLOG {
            // Too slow: drop it rather than block the container (its output is logged).
            self.dead = true;
            return;
        }
        self.out.extend(data);
    }

    fn queue_reply(&mut self, reply: &Reply) {
        let mut line = serde_json::to_vec(reply).unwrap_or_default();
        line.push(b'\n');
        self.queue(&line);
    }

    fn flush(&mut self) {
        while !self.out.is_empty() {
            let (a, _) = self.out.as_slices();
            match rustix::io::write(&self.fd, a) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if matches!(self.state, ClientState::Closing) {
            self.dead = true;
        }
    }
}

/// The container's ends of its stdio, held until the process is launched.
#[derive(Debug)]
struct Pending {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    console_listener: Option<OwnedFd>,
}

/// A created container (or exec process) and everything the monitor holds for it.
#[derive(Debug)]
pub(crate) struct Monitor {
    dir: PathBuf,
    config: MonitorConfig,
    runtime: Runtime,
    pid: i32,
    /// The process's pidfd, once it exists.
    pidfd: Option<OwnedFd>,
    listener: OwnedFd,
    /// Standard output (or the pty master).
    out: Option<OwnedFd>,
    /// Standard error (none with a pty).
    err: Option<OwnedFd>,
    /// Where stdin goes: the pipe's write end or the pty master.
    stdin: Option<OwnedFd>,
    stdin_backlog: VecDeque<u8>,
    stdin_closed_once: bool,
    master: Option<OwnedFd>,
    pending: Option<Pending>,
    log: Log,
    clients: Vec<Client>,
    started_at: Option<String>,
    /// An exec process that could not be started: the exit code to record before the
    /// monitor ends (nothing else will ever happen here).
    abandoned: Option<i32>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SetupError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SetupError::new(ErrorKind::Internal, format!("pipe: {e}")))
}

fn nonblocking(fd: &OwnedFd) {
    let _ = rustix::io::ioctl_fionbio(fd, true);
}

fn dev_null() -> Result<OwnedFd, SetupError> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| SetupError::io("open", Path::new("/dev/null"), e.into()))
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn internal(what: &str, e: impl std::fmt::Display) -> SetupError {
    SetupError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

fn pidfd_of(pid: i32) -> Result<OwnedFd, SetupError> {
    let p = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| internal("pid", format!("bad pid {pid}")))?;
    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| internal(&format!("pidfd_open {pid}"), e))
}

impl Monitor {
    /// Sets up stdio and the control socket; a container is created at once, an exec
    /// process waits for `Start` (so its attach is connected before its first byte).
    pub(crate) fn create(dir: &Path, config: MonitorConfig) -> Result<Monitor, SetupError> {
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
        let log =
            Log::open(&config.log).map_err(|e| SetupError::io("open log", &config.log.path, e))?;
        let runtime = Runtime::new(&config.runtime_root);
        let (mut out, mut err, mut stdin) = (None, None, None);
        let pending = if config.tty {
            let null = dev_null()?;
            let console_path = dir.join(CONSOLE_SOCKET_FILE);
            Pending {
                stdin: rustix::io::fcntl_dupfd_cloexec(&null, 3).map_err(|e| internal("dup", e))?,
                stdout: rustix::io::fcntl_dupfd_cloexec(&null, 3)
                    .map_err(|e| internal("dup", e))?,
                stderr: null,
                console_listener: Some(crate::console::listen(&console_path)?),
            }
        } else {
            let (or, ow) = pipe()?;
            let (er, ew) = pipe()?;
            let ir = if config.open_stdin {
                let (ir, iw) = pipe()?;
                stdin = Some(iw);
                ir
            } else {
                dev_null()?
            };
            out = Some(or);
            err = Some(er);
            Pending {
                stdin: ir,
                stdout: ow,
                stderr: ew,
                console_listener: None,
            }
        };
        let listener = bind_control(dir)?;
        let mut m = Monitor {
            dir: dir.to_path_buf(),
            config,
            runtime,
            pid: 0,
            pidfd: None,
            listener,
            out,
            err,
            stdin,
            stdin_backlog: VecDeque::new(),
            stdin_closed_once: false,
            master: None,
            pending: Some(pending),
            log,
            clients: Vec::new(),
            started_at: None,
            abandoned: None,
        };
        if m.config.exec.is_none() {
            m.launch()?;
        }
        let _ = std::fs::write(
            dir.join(PID_FILE),
            rustix::process::getpid().as_raw_nonzero().to_string(),
        );
        Ok(m)
    }

    /// Creates the container, or starts the exec process, on the pending stdio.
    fn launch(&mut self) -> Result<(), SetupError> {
        let Some(p) = self.pending.take() else {
            return Err(SetupError::new(ErrorKind::Conflict, "already started"));
        };
        let console_path = self.dir.join(CONSOLE_SOCKET_FILE);
        let saved = [
            rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 3)
                .map_err(|e| internal("dup", e))?,
            rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3)
                .map_err(|e| internal("dup", e))?,
            rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3)
                .map_err(|e| internal("dup", e))?,
        ];
        // The process inherits fds 0-2 from us.
        rustix::stdio::dup2_stdin(&p.stdin)
            .and_then(|()| rustix::stdio::dup2_stdout(&p.stdout))
            .and_then(|()| rustix::stdio::dup2_stderr(&p.stderr))
            .map_err(|e| internal("dup2", e))?;
        let console = p.console_listener.as_ref().map(|_| console_path.clone());
        let result: Result<i32, SetupError> = match &self.config.exec {
            None => {
                let opts = CreateOptions {
                    bundle: self.config.bundle.clone(),
                    console_socket: console,
                    ..CreateOptions::default()
                };
                self.runtime
                    .create(&self.config.id, &opts)
                    .and_then(|()| self.runtime.state(&self.config.id))
                    .map(|s| s.pid)
                    .map_err(SetupError::from)
            }
            Some(process) => {
                let pid_file = self.dir.join("exec.pid");
                let opts = berth_runtime::ExecOptions {
                    process: process.clone(),
                    detach: true,
                    pid_file: Some(pid_file.clone()),
                    console_socket: console,
                    preserve_fds: 0,
                };
                self.runtime
                    .exec(&self.config.id, &opts)
                    .map_err(SetupError::from)
                    .and_then(|_| {
                        std::fs::read_to_string(&pid_file)
                            .map_err(|e| SetupError::io("read", &pid_file, e))?
                            .trim()
                            .parse::<i32>()
                            .map_err(|e| internal("exec pid", e))
                    })
            }
        };
        // Our own stdio back: nothing of the process's stays on 0-2.
        let _ = rustix::stdio::dup2_stdin(&saved[0]);
        let _ = rustix::stdio::dup2_stdout(&saved[1]);
        let _ = rustix::stdio::dup2_stderr(&saved[2]);
        drop(p.stdin);
        drop(p.stdout);
        drop(p.stderr);
        let undo = |rt: &Runtime, id: &str, exec: bool| {
            if !exec {
                let _ = rt.delete(id, true);
            }
        };
        let is_exec = self.config.exec.is_some();
        let pid = result?;
        if let Some(l) = p.console_listener {
            let m = crate::console::receive_master(&l);
            let _ = std::fs::remove_file(&console_path);
            let m = m.inspect_err(|_| undo(&self.runtime, &self.config.id, is_exec))?;
            if self.config.open_stdin {
                self.stdin =
                    Some(rustix::io::fcntl_dupfd_cloexec(&m, 3).map_err(|e| internal("dup", e))?);
            }
            self.out =
                Some(rustix::io::fcntl_dupfd_cloexec(&m, 3).map_err(|e| internal("dup", e))?);
            self.master = Some(m);
        }
        let pidfd = pidfd_of(pid).inspect_err(|_| undo(&self.runtime, &self.config.id, is_exec))?;
        for fd in self
            .out
            .iter()
            .chain(self.err.iter())
            .chain(self.stdin.iter())
        {
            nonblocking(fd);
        }
        self.pid = pid;
        self.pidfd = Some(pidfd);
        Ok(())
    }

    /// The init's host PID.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Serves until the container has exited and the exit is recorded.
    pub(crate) fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n_clients = self.clients.len();
            let (revents, exited) = {
                let mut fds = Vec::with_capacity(6 + n_clients);
                fds.push(match &self.pidfd {
                    Some(f) => PollFd::new(f, PollFlags::IN),
                    None => PollFd::new(&self.listener, PollFlags::empty()),
                });
                fds.push(PollFd::new(&self.listener, PollFlags::IN));
                let none = PollFlags::empty();
                fds.push(match &self.out {
                    Some(f) => PollFd::new(f, PollFlags::IN),
                    None => PollFd::new(&self.listener, none),
                });
                fds.push(match &self.err {
                    Some(f) => PollFd::new(f, PollFlags::IN),
                    None => PollFd::new(&self.listener, none),
                });
                fds.push(match &self.stdin {
                    Some(f) if !self.stdin_backlog.is_empty() => PollFd::new(f, PollFlags::OUT),
                    _ => PollFd::new(&self.listener, none),
                });
                let stdin_full = self.stdin_backlog.len() >= MAX_STDIN_BACKLOG;
                for c in &self.clients {
                    let mut want = PollFlags::empty();
                    let reads = match c.state {
                        ClientState::Request => true,
                        ClientState::Attached { read_closed, .. } => !read_closed && !stdin_full,
                        ClientState::Waiting => true,
                        ClientState::Closing => false,
                    };
                    if reads {
                        want |= PollFlags::IN;
                    }
                    if !c.out.is_empty() {
                        want |= PollFlags::OUT;
                    }
                    fds.push(PollFd::new(&c.fd, want));
                }
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => {
                        eprintln!("berth-monitor: poll: {e}");
                    }
                }
                let r: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
                let exited = !r[0].is_empty();
                (r, exited)
            };
            if !revents[1].is_empty() {
                self.accept();
            }
            if !revents[2].is_empty() {
                self.read_output(stream::STDOUT, &mut buf);
            }
            if !revents[3].is_empty() {
                self.read_output(stream::STDERR, &mut buf);
            }
            if !revents[4].is_empty() {
                self.flush_stdin();
            }
            for (i, ev) in revents.iter().skip(5).enumerate().take(n_clients) {
                if ev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                    self.read_client(i, &mut buf);
                }
                if let Some(c) = self.clients.get_mut(i) {
                    if ev.contains(PollFlags::OUT) {
                        c.flush();
                    }
                }
            }
            self.clients.retain(|c| !c.dead);
            if exited {
                self.finish(&mut buf);
                return;
            }
            if let Some(code) = self.abandoned {
                self.abandon(code);
                return;
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match rustix::net::accept_with(
                &self.listener,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            ) {
                Ok(fd) => self.clients.push(Client {
                    fd,
                    inbuf: Vec::new(),
                    out: VecDeque::new(),
                    state: ClientState::Request,
                    dead: false,
                }),
                Err(Errno::INTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Reads what the container wrote on `which`; logs it and sends it to clients.
    fn read_output(&mut self, which: u8, buf: &mut [u8]) {
        let fd = if which == stream::STDOUT {
            &self.out
        } else {
            &self.err
        };
        let Some(fd) = fd else { return };
        let n = match rustix::io::read(fd, &mut *buf) {
            Ok(0) | Err(Errno::IO) => {
                // EOF (EIO: the pty's other side is gone).
                if which == stream::STDOUT {
                    self.out = None;
                } else {
                    self.err = None;
                }
                return;
            }
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return,
            Err(e) => {
                eprintln!("berth-monitor: read container output: {e}");
                if which == stream::STDOUT {
                    self.out = None;
                } else {
                    self.err = None;
                }
                return;
            }
        };
        let data = buf.get(..n).unwrap_or_default();
        self.log.write(which, data);
        self.broadcast(which, data);
    }

    fn broadcast(&mut self, which: u8, data: &[u8]) {
        let tty = self.config.tty;
        for c in &mut self.clients {
            if let ClientState::Attached { stdout, stderr, .. } = c.state {
                let wanted = if which == stream::STDOUT {
                    stdout
                } else {
                    stderr
                };
                if !wanted {
                    continue;
                }
                if !tty {
                    c.queue(&frame_header(which, data.len()));
                }
                c.queue(data);
                c.flush();
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_backlog.clear();
            return;
        };
        while !self.stdin_backlog.is_empty() {
            let (a, _) = self.stdin_backlog.as_slices();
            match rustix::io::write(fd, a) {
                Ok(n) => {
                    self.stdin_backlog.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    // The container closed its stdin.
                    self.stdin_backlog.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
    }

    fn read_client(&mut self, i: usize, buf: &mut [u8]) {
        enum Then {
            Nothing,
            Handle(Request, Vec<u8>),
            CloseStdin,
            Stdin(Vec<u8>),
        }
        let (stdin_once, closed_once) = (self.config.stdin_once, self.stdin_closed_once);
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        let n = match rustix::io::read(&c.fd, &mut *buf) {
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return,
            Err(_) => 0,
        };
        let data = buf.get(..n).unwrap_or_default();
        let then = match &mut c.state {
            ClientState::Request => {
                if n == 0 {
                    c.dead = true;
                    return;
                }
                c.inbuf.extend_from_slice(data);
                let Some(pos) = c.inbuf.iter().position(|b| *b == b'\n') else {
                    if c.inbuf.len() > MAX_REQUEST {
                        c.dead = true;
                    }
                    return;
                };
                let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
                let rest = std::mem::take(&mut c.inbuf);
                match serde_json::from_slice::<Request>(&line) {
                    Ok(r) => Then::Handle(r, rest),
                    Err(e) => {
                        c.queue_reply(&Reply::Error {
                            kind: ErrorKind::InvalidArgument.as_str().to_owned(),
                            message: format!("bad request: {e}"),
                        });
                        c.state = ClientState::Closing;
                        c.flush();
                        Then::Nothing
                    }
                }
            }
            ClientState::Attached {
                stdin, read_closed, ..
            } => {
                if n == 0 {
                    *read_closed = true;
                    let close = *stdin && stdin_once && !closed_once;
                    if close {
                        Then::CloseStdin
                    } else {
                        Then::Nothing
                    }
                } else if *stdin {
                    Then::Stdin(data.to_vec())
                } else {
                    Then::Nothing
                }
            }
            ClientState::Waiting | ClientState::Closing => {
                if n == 0 {
                    c.dead = true;
                }
                Then::Nothing
            }
        };
        match then {
            Then::Nothing => {}
            Then::Handle(r, rest) => self.handle(i, r, rest),
            Then::CloseStdin => {
                self.stdin_closed_once = true;
                self.close_stdin();
            }
            Then::Stdin(d) => {
                self.stdin_backlog.extend(&d);
                self.flush_stdin();
            }
        }
    }

    fn close_stdin(&mut self) {
        if self.config.tty {
            // A pty has no half-close: send EOF (^D) as a terminal user would.
            self.flush_stdin();
            if let Some(fd) = &self.stdin {
                let _ = rustix::io::write(fd, b"\x04");
            }
        } else {
            self.flush_stdin();
            self.stdin = None;
        }
    }

    fn handle(&mut self, i: usize, request: Request, rest: Vec<u8>) {
        let reply = match request {
            Request::Start => {
                let started = if self.config.exec.is_some() {
                    self.launch().map_err(|e| e.reply())
                } else {
                    self.runtime
                        .start(&self.config.id)
                        .map_err(|e| Reply::error(&e))
                };
                match started {
                    Ok(()) => {
                        self.started_at = Some(berth_runtime::timestamp());
                        Some(Reply::Ok { pid: self.pid })
                    }
                    Err(reply) => {
                        if self.config.exec.is_some() {
                            let code = match &reply {
                                Reply::Error { message, .. } => {
                                    berth_monitor::start_failure_code(message)
                                }
                                _ => 126,
                            };
                            self.abandoned = Some(code);
                        }
                        Some(reply)
                    }
                }
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                let stdin = stdin && self.stdin.is_some();
                if let Some(c) = self.clients.get_mut(i) {
                    c.queue_reply(&Reply::Ok { pid: self.pid });
                    c.state = ClientState::Attached {
                        stdin,
                        stdout,
                        stderr,
                        read_closed: false,
                    };
                    c.flush();
                }
                if stdin && !rest.is_empty() {
                    self.stdin_backlog.extend(&rest);
                    self.flush_stdin();
                }
                None
            }
            Request::Resize { height, width } => match &self.master {
                Some(m) => {
                    let ws = rustix::termios::Winsize {
                        ws_row: height,
                        ws_col: width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    match rustix::termios::tcsetwinsize(m, ws) {
                        Ok(()) => Some(Reply::Ok { pid: self.pid }),
                        Err(e) => Some(Reply::Error {
                            kind: ErrorKind::Internal.as_str().to_owned(),
                            message: format!("resize the terminal: {e}"),
                        }),
                    }
                }
                None => Some(Reply::Error {
                    kind: ErrorKind::Conflict.as_str().to_owned(),
                    message: "the container has no terminal".to_owned(),
                }),
            },
            Request::Kill { signal, all } => {
                let r = match (&self.config.exec, &self.pidfd) {
                    // An exec process: signal it through its pidfd (no PID reuse race).
                    (Some(_), Some(fd)) => rustix::process::Signal::from_named_raw(signal)
                        .ok_or(Errno::INVAL)
                        .and_then(|sig| rustix::process::pidfd_send_signal(fd, sig))
                        .map_err(|e| Reply::Error {
                            kind: ErrorKind::from_errno(e.raw_os_error()).as_str().to_owned(),
                            message: format!("signal the exec process: {e}"),
                        }),
                    (Some(_), None) => Err(Reply::Error {
                        kind: ErrorKind::Conflict.as_str().to_owned(),
                        message: "the exec process has not started".to_owned(),
                    }),
                    (None, _) => self
                        .runtime
                        .kill(&self.config.id, signal, all)
                        .map_err(|e| Reply::error(&e)),
                };
                Some(r.map_or_else(|e| e, |()| Reply::Ok { pid: self.pid }))
            }
            Request::Wait => {
                if let Some(c) = self.clients.get_mut(i) {
                    c.state = ClientState::Waiting;
                }
                None
            }
            Request::State => Some(Reply::State {
                pid: self.pid,
                status: if self.started_at.is_some() {
                    "running"
                } else {
                    "created"
                }
                .to_owned(),
                started_at: self.started_at.clone(),
            }),
        };
        if let (Some(reply), Some(c)) = (reply, self.clients.get_mut(i)) {
            c.queue_reply(&reply);
            c.state = ClientState::Closing;
            c.flush();
        }
    }

    /// An exec process that never started: record its exit code, answer, and end.
    fn abandon(mut self, code: i32) {
        let exit = ExitStatus {
            code,
            oom_killed: false,
            finished_at: berth_runtime::timestamp(),
            started_at: None,
        };
        if let Ok(data) = serde_json::to_vec(&exit) {
            let _ = write_atomic(&self.dir.join(EXIT_FILE), &data);
        }
        let _ = std::fs::remove_file(self.dir.join(SOCKET_FILE));
        let reply = Reply::Exited(exit);
        for c in &mut self.clients {
            let _ = rustix::io::ioctl_fionbio(&c.fd, false);
            if matches!(c.state, ClientState::Waiting) {
                c.queue_reply(&reply);
            }
            while !c.out.is_empty() && !c.dead {
                let (a, _) = c.out.as_slices();
                match rustix::io::write(&c.fd, a) {
                    Ok(n) if n > 0 => {
                        c.out.drain(..n);
                    }
                    Err(Errno::INTR) => {}
                    _ => c.dead = true,
                }
            }
        }
    }

    /// The init exited: collect the status, drain output, record the exit, tell waiters.
    fn finish(mut self, buf: &mut [u8]) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        let code = match rustix::process::waitid(
            rustix::process::WaitId::PidFd(pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        ) {
            Ok(Some(st)) => {
                if let Some(sig) = st.terminating_signal() {
                    128 + sig
                } else {
                    st.exit_status().unwrap_or(255)
                }
            }
            Ok(None) | Err(_) => 255,
        };
        let finished_at = berth_runtime::timestamp();
        // Whatever is still in the pipes (processes of the container are gone with its
        // PID namespace, so the pipes reach EOF); bounded in time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while (self.out.is_some() || self.err.is_some()) && std::time::Instant::now() < deadline {
            let r = {
                let mut fds = Vec::new();
                for f in self.out.iter().chain(self.err.iter()) {
                    fds.push(PollFd::new(f, PollFlags::IN));
                }
                let t = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 200_000_000,
                };
                match rustix::event::poll(&mut fds, Some(&t)) {
                    Ok(0) => break,
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(_) => break,
                }
                fds.iter().map(|f| f.revents()).collect::<Vec<_>>()
            };
            let mut k = 0;
            if self.out.is_some() {
                if !r[k].is_empty() {
                    self.read_output(stream::STDOUT, buf);
                }
                k += 1;
            }
            if self.err.is_some() && r.get(k).is_some_and(|f| !f.is_empty()) {
                self.read_output(stream::STDERR, buf);
            }
        }
        self.log.flush();
        let is_exec = self.config.exec.is_some();
        let oom_killed = !is_exec && self.runtime.oom_kills(&self.config.id).is_ok_and(|n| n > 0);
        let exit = ExitStatus {
            code,
            oom_killed,
            finished_at,
            started_at: self.started_at.clone(),
        };
        if let Ok(data) = serde_json::to_vec(&exit) {
            if let Err(e) = write_atomic(&self.dir.join(EXIT_FILE), &data) {
                eprintln!("berth-monitor: writing the exit record: {e}");
            }
        }
        let deleted = if is_exec {
            Ok(())
        } else {
            self.runtime.delete(&self.config.id, true)
        };
        if let Err(e) = deleted {
            if e.kind() != ErrorKind::NotFound {
                eprintln!("berth-monitor: deleting the runtime state: {e}");
            }
        }
        let _ = std::fs::remove_file(self.dir.join(SOCKET_FILE));
        // Waiters get the exit; attached clients their remaining output, then EOF.
        let reply = Reply::Exited(exit);
        for c in &mut self.clients {
            match c.state {
                ClientState::Waiting => {
                    c.queue_reply(&reply);
                    c.state = ClientState::Closing;
                }
                ClientState::Attached { .. } | ClientState::Request => {
                    c.state = ClientState::Closing
                }
                ClientState::Closing => {}
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for c in &mut self.clients {
            let _ = rustix::io::ioctl_fionbio(&c.fd, false);
            while !c.out.is_empty() && !c.dead && std::time::Instant::now() < deadline {
                let (a, _) = c.out.as_slices();
                match rustix::io::write(&c.fd, a) {
                    Ok(n) if n > 0 => {
                        c.out.drain(..n);
                    }
                    Err(Errno::INTR) => {}
                    _ => c.dead = true,
                }
            }
        }
    }
}

fn bind_control(dir: &Path) -> Result<OwnedFd, SetupError> {
    let path = dir.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&path);
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| SetupError::new(ErrorKind::Internal, format!("socket: {e}")))?;
    let addr = SocketAddrUnix::new(path.as_path())
        .map_err(|e| SetupError::io("control socket address", &path, e.into()))?;
    rustix::net::bind(&fd, &addr).map_err(|e| SetupError::io("bind", &path, e.into()))?;
    rustix::fs::chmod(&path, rustix::fs::Mode::from_raw_mode(0o600))
        .map_err(|e| SetupError::io("chmod", &path, e.into()))?;
    rustix::net::listen(&fd, 64).map_err(|e| SetupError::io("listen", &path, e.into()))?;
    Ok(fd)
}
