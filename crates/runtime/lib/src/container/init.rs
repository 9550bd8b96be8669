//! The container side of `create`: code that runs in the forked init process (and in the
//! intermediate process used when namespaces must be joined first). Never returns: it
//! either `execve`s the user process or reports the failure and exits.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use berth_sys::{CloneArgs, Forked, NamespaceFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::process::{self, console, FinalizeInput};
use crate::rootfs::{self, cgroupfs, RootfsPlan};
use crate::spec::NamespacePlan;
use crate::sync::{self, Channel, Msg};

/// Everything the init needs, borrowed from the parent's frame (the child has a copy of it).
#[derive(Debug)]
pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub plan: &'a NamespacePlan,
    pub channel: &'a Channel,
    /// The start socket (create); `None` means start comes over `channel` (run).
    pub start: Option<BorrowedFd<'a>>,
    /// Where to send the pty master.
    pub console: Option<BorrowedFd<'a>>,
    pub seccomp: Option<berth_seccomp::CompiledFilter>,
    pub no_pivot: bool,
    /// Name of the session keyring to join, if any.
    pub new_keyring: Option<String>,
    pub preserve_fds: u32,
    /// The runtime runs without root on the host.
    pub rootless: bool,
    /// Where the container's cgroups are, for `cgroup` mounts.
    pub cgroups: cgroupfs::CgroupView,
    /// The process was cloned straight into its (only, v2) cgroup: nothing to wait for
    /// before unsharing the cgroup namespace.
    pub cgroup_placed: bool,
    /// Per entry of `mounts`: the user namespace of an `idmap` bind.
    pub idmaps: Vec<Option<BorrowedFd<'a>>>,
    /// Move into these cgroups itself (cheaper than being moved, see
    /// `berth_cgroups::Manager::add_self`); `None` when the runtime does it (user namespaces).
    pub place_self: Option<&'a berth_cgroups::Manager>,
}

/// Join the namespaces given by path, create a time namespace if asked, then clone the init
/// as a sibling (CLONE_PARENT) so the runtime can wait for it, report its PID and exit.
pub(crate) fn intermediate(
    args: InitArgs<'_>,
    flags: NamespaceFlags,
    cgroup: Option<BorrowedFd<'_>>,
) -> ! {
    let channel = args.channel;
    let result = (|| -> Result<i32> {
        // The user namespace first: the others are owned by it.
        // The mount namespace is joined by the init itself: clone3 needs the host's /proc.
        let mut joins: Vec<_> = args
            .plan
            .join
            .iter()
            .filter(|(t, _)| *t != LinuxNamespaceType::Mount)
            .cloned()
            .collect();
        joins.sort_by_key(|(t, _)| if *t == LinuxNamespaceType::User { 0 } else { 1 });
        for (typ, path) in &joins {
            crate::namespaces::join(*typ, path)?;
        }
        if args.plan.creates(LinuxNamespaceType::Time) {
            berth_sys::unshare(NamespaceFlags::TIME)?;
            if let Some(offsets) = args
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.time_offsets().clone())
            {
                let mut list = Vec::new();
                for (clock, off) in &offsets {
                    list.push((
                        clock.as_str(),
                        off.secs().unwrap_or(0),
                        off.nanosecs().unwrap_or(0),
                    ));
                }
                berth_sys::set_timens_offsets(&list)?;
            }
        }
        match berth_sys::clone3(&CloneArgs {
            flags: flags | NamespaceFlags::PARENT,
            cgroup,
            exit_signal: None,
        })? {
            Forked::Child => main(args),
            Forked::Parent(pid) => Ok(pid),
        }
    })();
    match result {
        Ok(pid) => {
            let _ = channel.send(&Msg::Pid(pid), None);
            std::process::exit(0)
        }
        Err(e) => {
            let _ = channel.send(&Msg::Failed(crate::sync::Failure::of(&e)), None);
            std::process::exit(1)
        }
    }
}

/// The init process: set everything up, report `Created`, wait for start, exec.
pub(crate) fn main(args: InitArgs<'_>) -> ! {
    let channel = args.channel;
    match run(args) {
        Ok(never) => match never {},
        Err(Failure::BeforeStart(e)) => {
            let _ = channel.send(&Msg::Failed(crate::sync::Failure::of(&e)), None);
            std::process::exit(1)
        }
        Err(Failure::AfterStart(e, report)) => {
            if let Some(fd) = report {
                let _ = rustix::io::write(&fd, &crate::sync::Failure::of(&e).encode());
            }
            std::process::exit(127)
        }
    }
}

enum Failure {
    BeforeStart(Error),
    AfterStart(Error, Option<std::os::fd::OwnedFd>),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::BeforeStart(e)
    }
}

impl From<berth_sys::Error> for Failure {
    fn from(e: berth_sys::Error) -> Self {
        Failure::BeforeStart(e.into())
    }
}

fn run(a: InitArgs<'_>) -> std::result::Result<Infallible, Failure> {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let spec = a.spec;
    let plan = a.plan;
    let userns = plan.creates(LinuxNamespaceType::User);
    if userns {
        a.channel.expect(&Msg::Maps)?;
        crate::set_dumpable(false)?;
        // Become root of the new user namespace (ID 0 is mapped in any useful mapping).
        let _ = rustix::thread::set_thread_res_gid(
            rustix::process::Gid::ROOT,
            rustix::process::Gid::ROOT,
            rustix::process::Gid::ROOT,
        );
        let _ = rustix::thread::set_thread_res_uid(
            rustix::process::Uid::ROOT,
            rustix::process::Uid::ROOT,
            rustix::process::Uid::ROOT,
        );
    }
    // Into the cgroups first, while their paths still resolve in the host's mount namespace.
    if let Some(cg) = a.place_self {
        cg.add_self().map_err(Error::from)?;
    }
    if let Some((_, path)) = plan
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::Mount)
    {
        crate::namespaces::join(LinuxNamespaceType::Mount, path)?;
    }
    let own_cgroupns = plan.creates(LinuxNamespaceType::Cgroup);
    if own_cgroupns && (a.cgroup_placed || a.place_self.is_some()) {
        berth_sys::unshare(NamespaceFlags::CGROUP)?;
    }
    if plan.creates(LinuxNamespaceType::Network) {
        berth_sys::loopback_up()?;
    }
    let process = spec.process().clone().unwrap_or_default();
    let linux = spec.linux().clone();
    process::apply_early(&process, linux.as_ref(), a.new_keyring.as_deref())?;

    // The root filesystem is built while the runtime places this process in its cgroups.
    let root = rootfs::prepare(&RootfsPlan {
        spec,
        rootfs: a.rootfs.clone(),
        userns,
        cgroups: a.cgroups.clone(),
        idmaps: &a.idmaps,
    })?;
    let dev_null = rootfs::open_dev_null()?;
    rootfs::finish(
        spec,
        root.as_fd(),
        dev_null.as_fd(),
        plan.has(LinuxNamespaceType::Uts),
    )?;
    drop(dev_null);

    let state_json = match a.channel.recv()? {
        (Msg::Go(s), _) => s,
        (Msg::Failed(why), _) => return Err(why.into_error().into()),
        (other, _) => {
            return Err(Error::Init(format!("protocol error: unexpected {other:?}")).into())
        }
    };
    if own_cgroupns && !a.cgroup_placed && a.place_self.is_none() {
        berth_sys::unshare(NamespaceFlags::CGROUP)?;
    }
    let hooks = spec.hooks().clone().unwrap_or_default();
    #[allow(deprecated)]
    let has_runtime_hooks = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
        || hooks
            .create_runtime()
            .as_ref()
            .is_some_and(|h| !h.is_empty());
    if has_runtime_hooks {
        a.channel.send(&Msg::RunHooks, None)?;
        a.channel.expect(&Msg::HooksDone)?;
    }
    if let Some(cc) = hooks.create_container().as_ref().filter(|h| !h.is_empty()) {
        crate::hooks::run("createContainer", cc, state_json.as_bytes())?;
    }
    let root = rootfs::pivot(&root, a.no_pivot)?;

    if process.terminal().unwrap_or(false) {
        let sock = a.console.ok_or_else(|| {
            Error::InvalidConfig("terminal requested without a console socket".into())
        })?;
        let size = process.console_size().map(|b| {
            (
                u16::try_from(b.height()).unwrap_or(u16::MAX),
                u16::try_from(b.width()).unwrap_or(u16::MAX),
            )
        });
        let (master, slave) = console::open_pty(size)?;
        console::mount_console(root.as_fd(), slave.as_fd())?;
        console::send_master(sock, master.as_fd())?;
        drop(master);
        console::make_controlling(&slave)?;
    }
    rootfs::seal(spec, root.as_fd())?;

    let prepared = match spec.process() {
        Some(_) => Some(process::finalize(FinalizeInput {
            process: &process,
            root: root.as_fd(),
            seccomp: a.seccomp,
            setgroups_denied: userns && a.rootless,
            preserve_fds: a.preserve_fds,
        })?),
        None => None,
    };
    drop(root);
    let _ = rustix::process::set_parent_process_death_signal(None);
    a.channel.send(&Msg::Created, None)?;

    let (msg, report) = match a.start {
        Some(sock) => sync::recv_on(sock)?,
        None => a.channel.recv()?,
    };
    let start_state = match msg {
        Msg::Start(s) => s,
        other => {
            return Err(Failure::AfterStart(
                Error::Init(format!("protocol error: expected Start, got {other:?}")),
                report,
            ))
        }
    };
    if let Some(sc) = hooks.start_container().as_ref().filter(|h| !h.is_empty()) {
        if let Err(e) = crate::hooks::run("startContainer", sc, start_state.as_bytes()) {
            return Err(Failure::AfterStart(e, report));
        }
    }
    let err = match prepared {
        Some(prepared) => process::exec(prepared),
        None => Error::InvalidConfig("cannot start: the configuration has no process".into()),
    };
    Err(Failure::AfterStart(err, report))
}
