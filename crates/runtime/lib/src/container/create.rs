//! `create` (and the shared first half of `run`): set up a container and leave its init
//! process waiting for `start`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_errdefs::HasKind;
use berth_sys::{CloneArgs, Forked, NamespaceFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::container::init::{self, InitArgs};
use crate::container::{CreateOptions, Runtime};
use crate::error::{Error, Result};
use crate::spec::{ns_flag, NamespacePlan};
use crate::state::{self, Record, Status};
use crate::sync::{self, Channel, Msg};

/// How the init will be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `create`: wait on the start socket for a later `start`.
    Create,
    /// `run`: the caller starts it straight away over the sync channel.
    Run,
}

/// A container whose init is waiting to start.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub record: Record,
    pub channel: Channel,
    /// The pty master, when `run` holds the terminal itself.
    pub console_master: Option<OwnedFd>,
}

/// Undoes a half-made container if set-up fails.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<berth_cgroups::Manager>,
    child: Option<i32>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Runtime {
    /// Create container `id` from a bundle: namespaces, cgroups, root filesystem and
    /// process set-up are done; the user process starts with [`Runtime::start`].
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<()> {
        self.spawn(id, opts, Mode::Create).map(drop)
    }

    pub(crate) fn spawn(&self, id: &str, opts: &CreateOptions, mode: Mode) -> Result<Spawned> {
        state::validate_id(id)?;
        let bundle = std::fs::canonicalize(&opts.bundle)
            .map_err(|e| Error::io("resolve bundle", &opts.bundle, e))?;
        let config_path = bundle.join("config.json");
        let raw = state::read_bounded(&config_path).map_err(|e| Error::Config {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let spec: Spec = serde_json::from_slice(&raw).map_err(|e| Error::Config {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        crate::spec::validate(&spec)?;
        let root_path = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| "rootfs".into());
        let rootfs_rel = if root_path.is_absolute() {
            root_path
        } else {
            bundle.join(root_path)
        };
        let rootfs = std::fs::canonicalize(&rootfs_rel)
            .map_err(|e| Error::io("resolve rootfs", &rootfs_rel, e))?;
        let plan = NamespacePlan::from_spec(&spec)?;
        if !plan.has(LinuxNamespaceType::Mount) {
            // Without one the root filesystem would be built on the host's mounts.
            return Err(Error::InvalidConfig(
                "the container needs a mount namespace of its own (new or joined by path)".into(),
            ));
        }
        let process = spec.process().clone().unwrap_or_default();
        crate::lsm::prepare(&process)?;
        let terminal = process.terminal().unwrap_or(false);
        if crate::exe::needs_sealed_copy(
            process.capabilities().as_ref(),
            plan.creates(LinuxNamespaceType::User)
                || plan
                    .join
                    .iter()
                    .any(|(t, _)| *t == LinuxNamespaceType::User),
        ) {
            crate::exe::ensure_sealed_copy()?;
        }

        // The console: the caller's socket, or (run in the foreground) one of our own.
        let mut console_master_sock = None;
        let console = if terminal {
            match (&opts.console_socket, mode) {
                (Some(path), _) => Some(connect_console(path)?),
                (None, Mode::Run) => {
                    let (ours, theirs) = crate::process::console::internal_socket_pair()?;
                    console_master_sock = Some(ours);
                    Some(theirs)
                }
                (None, Mode::Create) => {
                    return Err(Error::InvalidConfig(
                        "process.terminal is true: --console-socket is required".into(),
                    ))
                }
            }
        } else {
            None
        };

        create_root(&self.root)?;
        let dir = self.root.join(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(Error::io("create state directory", &dir, e)),
        }
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
            child: None,
        };
        state::write_atomic(&dir.join(state::CONFIG_COPY), &raw)?;

        let linux = spec.linux().clone().unwrap_or_default();
        let seccomp = match linux.seccomp() {
            Some(profile) => Some(berth_seccomp::compile_cached(
                profile,
                &self.seccomp_cache(),
            )?),
            None => None,
        };

        let cgroups_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let cg = berth_cgroups::Manager::new(cgroups_path.as_deref(), id, self.systemd_cgroup)?;
        let cg = match cg.create() {
            Ok(()) => cg,
            // Without root, cgroups are only needed for limits: a container that asks for
            // none runs without (as runc and crun do rootless).
            Err(e)
                if rustix::process::geteuid().as_raw() != 0
                    && e.kind() == berth_errdefs::ErrorKind::PermissionDenied
                    && !wants_limits(linux.resources().as_ref()) =>
            {
                crate::warn(&format!("running {id} without cgroups: {e}"));
                berth_cgroups::Manager::disabled()
            }
            Err(e) => return Err(e.into()),
        };
        cleanup.cgroup = Some(cg.clone());
        let mut resources = linux.resources().clone().unwrap_or_default();
        let spec_devices = linux
            .devices()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(crate::rootfs::devices::from_spec)
            .collect::<Result<Vec<_>>>()?;
        resources.set_devices(Some(crate::rootfs::devices::cgroup_rules(
            resources.devices().as_deref().unwrap_or_default(),
            &spec_devices,
        )));
        if !cg.is_disabled() {
            cg.apply(&resources)?;
        }
        let cg_fd = cg.v2_dir_fd()?;

        let start_sock = match mode {
            Mode::Create => Some(bind_start_socket(&dir)?),
            Mode::Run => None,
        };
        // User namespaces for ID-mapped binds, made here where the maps can be written.
        let idmap_fds = crate::namespaces::idmap_userns_fds(&spec)?;
        let (parent_ch, child_ch) = sync::pair()?;
        std::env::set_current_dir(&bundle).map_err(|e| Error::io("chdir", &bundle, e))?;

        let userns = plan.creates(LinuxNamespaceType::User);
        let mut flags = NamespaceFlags::empty();
        for t in &plan.create {
            if !matches!(t, LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time) {
                flags |= ns_flag(*t);
            }
        }
        let init_args = InitArgs {
            spec: &spec,
            rootfs: rootfs.clone(),
            plan: &plan,
            channel: &child_ch,
            start: start_sock.as_ref().map(|s| s.as_fd()),
            console: console.as_ref().map(|c| c.as_fd()),
            seccomp: seccomp.clone(),
            no_pivot: opts.no_pivot,
            new_keyring: (!opts.no_new_keyring).then(|| id.to_string()),
            preserve_fds: opts.preserve_fds,
            rootless: rustix::process::geteuid().as_raw() != 0,
            cgroups: crate::rootfs::cgroupfs::view(
                &cg.hierarchies(),
                plan.creates(LinuxNamespaceType::Cgroup),
            ),
            cgroup_placed: cg_fd.is_some() && cg.kind() == berth_cgroups::LayoutKind::V2,
            place_self: (!userns).then_some(&cg),
            idmaps: idmap_fds
                .iter()
                .map(|f| f.as_ref().map(|f| f.as_fd()))
                .collect(),
        };
        let intermediate = !plan.join.is_empty() || plan.creates(LinuxNamespaceType::Time);
        // Rootless, the runtime writes the child's ID maps as an ordinary user, and the
        // /proc files of a non-dumpable process belong to root: let the child start
        // dumpable (it is alone in its new namespaces until it turns that off again).
        let rootless_maps = userns && rustix::process::geteuid().as_raw() != 0;
        if rootless_maps {
            crate::set_dumpable(true)?;
        }
        let pid = if intermediate {
            let forked = berth_sys::clone3(&CloneArgs::default())?;
            match forked {
                Forked::Child => {
                    drop(parent_ch);
                    init::intermediate(init_args, flags, cg_fd.as_ref().map(|f| f.as_fd()))
                }
                Forked::Parent(c1) => {
                    let got = parent_ch.recv();
                    if let Some(p) = rustix::process::Pid::from_raw(c1) {
                        let _ = rustix::process::waitpid(
                            Some(p),
                            rustix::process::WaitOptions::empty(),
                        );
                    }
                    match got? {
                        (Msg::Pid(pid), _) => pid,
                        (Msg::Failed(why), _) => return Err(why.into_error()),
                        (other, _) => {
                            return Err(Error::Init(format!("protocol error: {other:?}")))
                        }
                    }
                }
            }
        } else {
            let forked = berth_sys::clone3(&CloneArgs {
                flags,
                cgroup: cg_fd.as_ref().map(|f| f.as_fd()),
                exit_signal: None,
            })?;
            match forked {
                Forked::Child => {
                    drop(parent_ch);
                    init::main(init_args)
                }
                Forked::Parent(pid) => pid,
            }
        };
        if rootless_maps {
            crate::set_dumpable(false)?;
        }
        cleanup.child = Some(pid);
        drop(child_ch);
        drop(cg_fd);

        if userns {
            let uid = linux.uid_mappings().clone().unwrap_or_default();
            let gid = linux.gid_mappings().clone().unwrap_or_default();
            crate::namespaces::write_id_maps(pid, &uid, &gid)?;
            parent_ch.send(&Msg::Maps, None)?;
            cg.add_process(pid)?;
        }
        let mut record = Record {
            id: id.to_string(),
            bundle: bundle.clone(),
            rootfs,
            pid,
            pid_start_time: state::process_start_time(pid).unwrap_or(0),
            created: state::now_rfc3339(),
            owner: owner(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup: cg.to_record(),
            own_pid_namespace: plan.creates(LinuxNamespaceType::Pid),
            user_namespace: userns,
            hooks: spec.hooks().clone(),
        };
        let hooks = spec.hooks().clone().unwrap_or_default();
        let state_json = record.hook_state(Status::Creating);
        parent_ch.send(&Msg::Go(state_json.clone()), None)?;
        loop {
            match parent_ch.recv()? {
                (Msg::RunHooks, _) => {
                    #[allow(deprecated)]
                    let prestart = hooks.prestart().clone().unwrap_or_default();
                    // runc and the runtime-tools suite give prestart hooks "created".
                    let created = record.hook_state(Status::Created);
                    crate::hooks::run("prestart", &prestart, created.as_bytes())?;
                    let cr = hooks.create_runtime().clone().unwrap_or_default();
                    crate::hooks::run("createRuntime", &cr, state_json.as_bytes())?;
                    parent_ch.send(&Msg::HooksDone, None)?;
                }
                (Msg::Created, _) => break,
                (Msg::Failed(why), _) => return Err(why.into_error()),
                (other, _) => {
                    return Err(Error::Init(format!("protocol error: unexpected {other:?}")))
                }
            }
        }
        record.pid_start_time = state::process_start_time(pid).unwrap_or(record.pid_start_time);
        record.save(&self.root)?;
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        let console_master = match console_master_sock {
            Some(sock) => Some(crate::process::console::recv_master(sock.as_fd())?),
            None => None,
        };
        cleanup.disarm();
        Ok(Spawned {
            record,
            channel: parent_ch,
            console_master,
        })
    }
}

/// Create the state root, private to root.
fn create_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io("create runtime root", root, e)),
    }
}

pub(crate) fn connect_console(path: &Path) -> Result<OwnedFd> {
    let sock = crate::sync::unix_socket(rustix::net::SocketType::STREAM)?;
    let addr = rustix::net::SocketAddrUnix::new(path)
        .map_err(|e| Error::io("console socket address", path, e.into()))?;
    rustix::net::connect(&sock, &addr)
        .map_err(|e| Error::io("connect to console socket", path, e.into()))?;
    Ok(sock)
}

/// The datagram socket the init waits on until `start`.
fn bind_start_socket(dir: &Path) -> Result<OwnedFd> {
    let path = dir.join(state::START_SOCKET);
    let sock = crate::sync::unix_socket(rustix::net::SocketType::DGRAM)?;
    let (addr, _keep) = crate::container::start::socket_addr(&path)?;
    rustix::net::bind(&sock, &addr).map_err(|e| Error::io("bind start socket", &path, e.into()))?;
    Ok(sock)
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(|e| Error::io("write pid file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("write pid file", path, e))
}

/// Whether the configuration asks for any resource limit (device rules aside, which
/// without cgroups the device nodes and capabilities already enforce).
fn wants_limits(r: Option<&oci_spec::runtime::LinuxResources>) -> bool {
    r.is_some_and(|r| {
        r.memory().is_some()
            || r.cpu().is_some()
            || r.pids().is_some()
            || r.block_io().is_some()
            || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            || r.network().is_some()
            || r.rdma().as_ref().is_some_and(|h| !h.is_empty())
            || r.unified().as_ref().is_some_and(|h| !h.is_empty())
    })
}

fn owner() -> String {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        "root".to_string()
    } else {
        uid.to_string()
    }
}
