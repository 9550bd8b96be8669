//! `exec`: run another process inside a running container.
//!
//! The runtime (R) forks an intermediate (C1) that joins the container's namespaces through
//! a pidfd of its init (`setns(pidfd, …)`, atomic and immune to PID reuse) — all but the
//! mount and cgroup namespaces, which C2 joins once it is in the container's cgroup — then
//! clones the new process (C2) as R's own child (`CLONE_PARENT`), straight into the
//! container's cgroup on cgroup v2. R places C2 in the v1 cgroups, C2 applies the process
//! settings and waits for `Start`, then execs — the same protocol as the init.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use berth_sys::{CloneArgs, Forked, NamespaceFlags};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use rustix::fs::{Mode, OFlags};

use crate::container::kill::init_pidfd;
use crate::container::run::wait_foreground;
use crate::container::start::start_and_report;
use crate::container::{wrong_state, Runtime};
use crate::error::{Error, Result};
use crate::process::{self, console, FinalizeInput};
use crate::spec::{ns_flag, NamespacePlan};
use crate::state::{self, Status};
use crate::sync::{self, Channel, Msg};

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run (from `--process` or built from the container's process and flags).
    pub process: Process,
    /// Return once the process runs instead of waiting for it.
    pub detach: bool,
    /// Write the process's host PID here.
    pub pid_file: Option<PathBuf>,
    /// Receives the pty master when the process has a terminal.
    pub console_socket: Option<PathBuf>,
    /// Pass descriptors 3..3+N.
    pub preserve_fds: u32,
}

impl Runtime {
    /// The process of the container's config.json (the base `exec` builds on).
    pub fn container_process(&self, id: &str) -> Result<Process> {
        Ok(self
            .container_spec(id)?
            .process()
            .clone()
            .unwrap_or_default())
    }

    fn container_spec(&self, id: &str) -> Result<Spec> {
        let dir = state::container_dir(&self.root, id)?;
        crate::spec::load(&dir.join(state::CONFIG_COPY))
    }

    /// Run a process in container `id`; returns its exit code (0 when detached).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let (record, status) = self.load_with_status(id)?;
        if !matches!(status, Status::Running | Status::Created) {
            return Err(wrong_state(id, status, "exec in it"));
        }
        let spec = self.container_spec(id)?;
        let plan = NamespacePlan::from_spec(&spec)?;
        crate::lsm::prepare(&opts.process)?;
        if crate::exe::needs_sealed_copy(
            opts.process.capabilities().as_ref(),
            plan.has(LinuxNamespaceType::User),
        ) {
            crate::exe::ensure_sealed_copy()?;
        }
        let mut flags = NamespaceFlags::empty();
        for t in [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Time,
        ] {
            if plan.has(t) {
                flags |= ns_flag(t);
            }
        }
        let pidfd =
            init_pidfd(&record).ok_or_else(|| wrong_state(id, Status::Stopped, "exec in it"))?;
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().clone()) {
            Some(p) => Some(berth_seccomp::compile_cached(&p, &self.seccomp_cache())?),
            None => None,
        };
        let cg = berth_cgroups::Manager::from_record(&record.cgroup)?;
        let cg_fd = cg.v2_dir_fd()?;
        let terminal = opts.process.terminal().unwrap_or(false);
        let mut ours = None;
        let console: Option<OwnedFd> = if terminal {
            match (&opts.console_socket, opts.detach) {
                (Some(path), _) => Some(crate::container::create::connect_console(path)?),
                (None, false) => {
                    let (a, b) = crate::process::console::internal_socket_pair()?;
                    ours = Some(a);
                    Some(b)
                }
                (None, true) => {
                    return Err(Error::InvalidConfig(
                        "a detached terminal needs --console-socket".into(),
                    ))
                }
            }
        } else {
            None
        };
        let (parent_ch, child_ch) = sync::pair()?;
        let args = ExecChild {
            process: &opts.process,
            channel: &child_ch,
            console: console.as_ref().map(|c| c.as_fd()),
            seccomp,
            preserve_fds: opts.preserve_fds,
            setgroups_denied: record.user_namespace && rustix::process::geteuid().as_raw() != 0,
            place_self: (!record.user_namespace).then_some(&cg),
        };
        let c1 = match berth_sys::clone3(&CloneArgs::default())? {
            Forked::Child => {
                drop(parent_ch);
                let r = (|| -> Result<i32> {
                    // All but the mount and cgroup namespaces here: clone3 still needs the
                    // host's /proc (to check the process is single-threaded), and
                    // CLONE_INTO_CGROUP refuses (ENOENT) to move a process whose current
                    // cgroup lies outside its cgroup namespace. C2 joins those two.
                    let late = NamespaceFlags::MOUNT | NamespaceFlags::CGROUP;
                    let join = rustix::thread::ThreadNameSpaceType::from_bits_retain(
                        u32::try_from(flags.difference(late).bits()).unwrap_or(0),
                    );
                    if !join.is_empty() {
                        rustix::thread::move_into_thread_name_spaces(pidfd.as_fd(), join)
                            .map_err(|e| Error::sys("join the container's namespaces", e))?;
                    }
                    match berth_sys::clone3(&CloneArgs {
                        flags: NamespaceFlags::PARENT,
                        cgroup: cg_fd.as_ref().map(|f| f.as_fd()),
                        exit_signal: None,
                    })? {
                        Forked::Child => {
                            // Into the cgroups first, while paths still resolve on the host.
                            if let Some(cg) = args.place_self {
                                if let Err(e) = cg.add_self() {
                                    let _ = child_ch
                                        .send(&Msg::Failed(crate::sync::Failure::of(&e)), None);
                                    std::process::exit(1)
                                }
                            }
                            let late = rustix::thread::ThreadNameSpaceType::from_bits_retain(
                                u32::try_from(flags.bits() & late.bits()).unwrap_or(0),
                            );
                            if !late.is_empty() {
                                if let Err(e) = rustix::thread::move_into_thread_name_spaces(
                                    pidfd.as_fd(),
                                    late,
                                ) {
                                    let _ = child_ch.send(
                                        &Msg::Failed(crate::sync::Failure::new(
                                            berth_errdefs::ErrorKind::from_errno(e.raw_os_error()),
                                            format!("join the container's mount and cgroup namespaces: {e}"),
                                        )),
                                        None,
                                    );
                                    std::process::exit(1)
                                }
                            }
                            exec_child(args)
                        }
                        Forked::Parent(pid) => Ok(pid),
                    }
                })();
                match r {
                    Ok(pid) => {
                        let _ = child_ch.send(&Msg::Pid(pid), None);
                        std::process::exit(0)
                    }
                    Err(e) => {
                        let _ = child_ch.send(&Msg::Failed(crate::sync::Failure::of(&e)), None);
                        std::process::exit(1)
                    }
                }
            }
            Forked::Parent(c1) => c1,
        };
        drop(child_ch);
        let got = parent_ch.recv();
        if let Some(p) = rustix::process::Pid::from_raw(c1) {
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
        }
        let pid = match got? {
            (Msg::Pid(pid), _) => pid,
            (Msg::Failed(why), _) => return Err(why.into_error()),
            (other, _) => return Err(Error::Init(format!("protocol error: {other:?}"))),
        };
        let guard = KillOnDrop(Some(pid));
        if record.user_namespace {
            cg.add_process(pid)?;
        }
        parent_ch.send(&Msg::Go(String::new()), None)?;
        parent_ch.expect(&Msg::Created)?;
        let master = match ours {
            Some(sock) => Some(console::recv_master(sock.as_fd())?),
            None => None,
        };
        start_and_report(|msg, fd| parent_ch.send(msg, Some(fd)), String::new())?;
        guard.disarm();
        if let Some(pf) = &opts.pid_file {
            crate::container::create::write_pid_file(pf, pid)?;
        }
        if opts.detach {
            return Ok(0);
        }
        wait_foreground(pid, master)
    }
}

struct KillOnDrop(Option<i32>);

impl KillOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}

struct ExecChild<'a> {
    process: &'a Process,
    channel: &'a Channel,
    console: Option<std::os::fd::BorrowedFd<'a>>,
    seccomp: Option<berth_seccomp::CompiledFilter>,
    preserve_fds: u32,
    setgroups_denied: bool,
    /// Move into the container's cgroups itself (see `berth_cgroups::Manager::add_self`).
    place_self: Option<&'a berth_cgroups::Manager>,
}

/// The exec'd process before execve. Never returns.
fn exec_child(a: ExecChild<'_>) -> ! {
    let channel = a.channel;
    let mut report = None;
    let result = (|| -> Result<std::convert::Infallible> {
        channel.expect(&Msg::Go(String::new()))?;
        process::apply_early(a.process, None, None)?;
        if a.process.terminal().unwrap_or(false) {
            let sock = a
                .console
                .ok_or_else(|| Error::InvalidConfig("terminal without console socket".into()))?;
            let size = a.process.console_size().map(|b| {
                (
                    u16::try_from(b.height()).unwrap_or(u16::MAX),
                    u16::try_from(b.width()).unwrap_or(u16::MAX),
                )
            });
            let (master, slave) = console::open_pty(size)?;
            console::send_master(sock, master.as_fd())?;
            drop(master);
            console::make_controlling(&slave)?;
        }
        let root = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open /", e))?;
        let prepared = process::finalize(FinalizeInput {
            process: a.process,
            root: root.as_fd(),
            seccomp: a.seccomp,
            setgroups_denied: a.setgroups_denied,
            preserve_fds: a.preserve_fds,
        })?;
        drop(root);
        channel.send(&Msg::Created, None)?;
        let (msg, fd) = channel.recv()?;
        report = fd;
        if !matches!(msg, Msg::Start(_)) {
            return Err(Error::Init(format!(
                "protocol error: expected Start, got {msg:?}"
            )));
        }
        Err(process::exec(prepared))
    })();
    let Err(e) = result;
    match report {
        Some(fd) => {
            let _ = rustix::io::write(&fd, &crate::sync::Failure::of(&e).encode());
            std::process::exit(127)
        }
        None => {
            let _ = channel.send(&Msg::Failed(crate::sync::Failure::of(&e)), None);
            std::process::exit(1)
        }
    }
}
