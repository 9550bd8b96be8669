//! Berth's secure default container configuration, in one place.
//!
//! `berth-runtime spec [--rootless]` writes [`spec`] as `config.json`; the engine starts
//! from the same functions when it turns an image into a bundle, so the CLI and the
//! engine cannot drift apart. Every choice below is compared with Docker (moby 28) and
//! Podman (containers/common), the two defaults people know.
//!
//! # Process
//!
//! - `terminal: true`, `args: ["sh"]`, user 0:0, `cwd: /`, `PATH` and `TERM=xterm`: what
//!   `runc spec` writes, so that `berth-runtime run` on a fresh bundle gives a shell.
//! - **Capabilities** ([`capabilities`]): Podman's 11 — `CHOWN DAC_OVERRIDE FOWNER FSETID
//!   KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT` — in the bounding,
//!   effective and permitted sets; inheritable and ambient are empty. Docker adds
//!   `NET_RAW` (raw sockets: ARP/ICMP spoofing on the bridge, the one attack the
//!   security papers found working against Docker), `MKNOD` and `AUDIT_WRITE`; we drop
//!   all three. Ping still works through ICMP datagram sockets (see the sysctl below).
//! - **rlimits**: `RLIMIT_NOFILE` 1024/1024 like runc and Podman, clamped to the hard
//!   limit of the process generating the spec: raising a hard limit needs
//!   `CAP_SYS_RESOURCE`, which the runtime may not have, and a bundle the runtime cannot
//!   start is no default. (A bundle generated on one host and run on another keeps the
//!   first host's clamp.)
//! - `noNewPrivileges: true`: setuid binaries cannot gain privileges. Docker and Podman
//!   leave it off by default; runc's spec sets it. It also lets the seccomp filter be
//!   installed without `CAP_SYS_ADMIN`.
//!
//! # Filesystem
//!
//! - `root: rootfs`, read-only, as `runc spec` writes it (the engine replaces both with
//!   its overlay snapshot and makes it writable when asked).
//! - **Mounts**: `/proc` (`nosuid,noexec,nodev` like Docker; runc's spec sets none),
//!   `/dev` tmpfs (`nosuid,strictatime,mode=755,size=65536k`), `/dev/pts` devpts
//!   (`newinstance,ptmxmode=0666,mode=0620,gid=5`), `/dev/shm` tmpfs 64 MiB
//!   (`nosuid,noexec,nodev,mode=1777`), `/dev/mqueue`, `/sys` sysfs read-only and
//!   `/sys/fs/cgroup` read-only — the same set and options as runc, Docker and Podman.
//! - **Masked paths** ([`masked_paths`]): Docker's list — `/proc/asound /proc/acpi
//!   /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list /proc/timer_stats
//!   /proc/sched_debug /proc/scsi /sys/firmware /sys/devices/virtual/powercap` — plus
//!   `/proc/interrupts`. Per-CPU interrupt counters of the host are a known side channel
//!   (keystroke and network timing); nothing a container legitimately runs needs them.
//!   (Recent Docker releases mask `/proc/interrupts` too.) `powercap` exposes RAPL
//!   energy counters (PLATYPUS, CVE-2020-8694).
//! - **Read-only paths** ([`readonly_paths`]): `/proc/bus /proc/fs /proc/irq /proc/sys
//!   /proc/sysrq-trigger`, as in Docker, Podman and runc.
//!
//! # Namespaces and resources
//!
//! - Namespaces: pid, network, ipc, uts, mount, cgroup (Docker and Podman also unshare
//!   cgroup on cgroup v2 hosts; on this project's hybrid hosts it keeps `/proc/self/cgroup`
//!   from naming host paths). No time namespace: nothing needs it by default.
//! - `resources.devices`: deny everything (`a *:* rwm`); the runtime adds its default
//!   devices (`/dev/null`, `/dev/zero`, …) on top, as runc does.
//! - `resources.pids.limit`: [`PIDS_LIMIT`] = 4096. Docker sets no limit, Podman 2048.
//!   A fork bomb must not take the host down (threat model), and 4096 leaves room for
//!   thread-heavy servers (JVMs, Go programs) that 2048 occasionally starves.
//! - Sysctl `net.ipv4.ping_group_range = "0 2147483647"`: every group may open ICMP
//!   datagram sockets, so `ping` works without `CAP_NET_RAW` (Docker does the same
//!   since 20.10; Podman too). The sysctl is per network namespace.
//! - Hostname `berth`.
//!
//! # Seccomp
//!
//! [`seccomp_profile`] is an allow-list, deny by default, at least as tight as Docker's
//! default profile. Where it differs:
//!
//! - **Default errno `ENOSYS`** (Docker: `EPERM`; Podman: `ENOSYS`). Syscalls newer than
//!   the profile then look "not implemented", which is what libcs test for before
//!   falling back to older calls. With `EPERM`, glibc 2.33's `faccessat2` broke under
//!   Docker until its profile was updated. Syscalls that are denied *on purpose* are
//!   listed with `EPERM`, the answer a program gets without the needed capability.
//! - **`clone`** with any of `CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP`
//!   fails with `EPERM` (as in Docker). **`clone3`** fails with `ENOSYS`, because its
//!   flags live in memory seccomp cannot read; glibc then falls back to `clone`.
//! - **`socket`**: only `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK` (plus
//!   `AF_PACKET` when `CAP_NET_RAW` is granted); other families get `ENOSYS`. Docker
//!   allows every family but `AF_VSOCK`; rarely used families (`AF_ALG`, `AF_VSOCK`,
//!   `AF_TIPC`, `AF_RDS`, `AF_KCM`…) are where socket CVEs cluster. The family is
//!   compared on its low 32 bits, as the kernel reads it. On 32-bit x86 the
//!   `socketcall(2)` multiplexer passes arguments in memory, so libseccomp can only
//!   allow `socketcall(SYS_SOCKET)` as a whole: the family list does not bind 32-bit
//!   x86 programs that use it (the same gap as Docker's `AF_VSOCK` rule).
//! - **`ioctl(TIOCSTI)`** is refused (`EPERM`): faking terminal input is the classic
//!   escape into a shell that shares its terminal with the container. Docker and Podman
//!   rely on `setsid` alone.
//! - **`ptrace`, `process_vm_readv/writev`, `kcmp`, `pidfd_getfd`, `process_madvise`,
//!   `userfaultfd`** need `CAP_SYS_PTRACE`. Docker allows `ptrace` and
//!   `process_vm_*` unconditionally on kernels ≥ 4.8 (where ptrace can no longer bypass
//!   seccomp); we keep them off because they are the tools to attack another process of
//!   the same container, and `--cap-add SYS_PTRACE` (which debuggers already ask for)
//!   turns them on.
//! - **`name_to_handle_at`** joins `open_by_handle_at` behind `CAP_DAC_READ_SEARCH` (the
//!   "shocker" pair); Docker allows the first unconditionally.
//! - **`modify_ldt`** (Docker allows it on x86) and **`vmsplice`** (Docker allows it;
//!   Podman denies it) are refused: old-code-only interfaces with a history of kernel
//!   exploits.
//! - Always refused, whatever the capabilities (as in Docker): `io_uring_*`, `keyctl`,
//!   `add_key`, `request_key`, `kexec_*`, `swapon`, `swapoff`, `nfsservctl`, `uselib`,
//!   `ustat`, `sysfs`, `_sysctl`, `bdflush`, `vm86*`, `create_module`,
//!   `get_kernel_syms`, `query_module`, and personalities other than Linux, Linux32
//!   and their `UNAME26` variants.
//!
//! [`seccomp_profile_for`] widens the profile for granted capabilities the way Docker
//! does: `SYS_ADMIN` (mount API, `unshare`, `setns`, namespace flags of `clone`,
//! `clone3`, `bpf`, `perf_event_open`, `quotactl`, `sethostname`, …), `SYS_PTRACE`,
//! `SYS_TIME`, `SYS_MODULE`, `SYS_BOOT`, `SYS_PACCT`, `SYS_RAWIO`, `SYS_TTY_CONFIG`,
//! `SYS_NICE` (NUMA memory policy calls), `SYSLOG`, `SYS_CHROOT`, `DAC_READ_SEARCH`,
//! `BPF`, `PERFMON`, `NET_RAW`. [`seccomp_profile`] is that function applied to
//! [`capabilities`], so `chroot` is allowed by default (`SYS_CHROOT` is granted).
//!
//! Architectures: the native one and its compat ABIs (x86_64: x86 and x32; aarch64: arm).
//! Multiplexed 32-bit x86 calls (`socketcall`, `ipc`) are derived by libseccomp from the
//! direct calls listed here, so only their allowed sub-calls pass. The `clone` rule
//! assumes the flags are argument 0, true on every architecture above (not on s390).
//! The profile does not depend on the kernel version: syscalls a kernel lacks simply
//! return `ENOSYS` there. With the kernel's seccomp action cache (5.11+), syscalls
//! allowed unconditionally skip the filter entirely, so its length costs little.
//!
//! # AppArmor
//!
//! On a kernel with AppArmor enabled, `process.apparmorProfile` is `berth-default`
//! (see [`crate::lsm::apparmor`]); the runtime loads that profile the first time a
//! container asks for it. Elsewhere (and rootless, where loading profiles is not
//! allowed) the field is left out: a spec naming a profile the kernel cannot enforce
//! is refused at create.
//!
//! # Rootless ([`spec`]`(true)`)
//!
//! Like `runc spec --rootless`: a user namespace mapping the caller's effective uid and
//! gid to 0 (size 1), no `gid=5` on `/dev/pts` (gid 5 is not mapped), `/sys` as a
//! read-only recursive bind of the host's `/sys` (a fresh sysfs needs privileges over
//! the network namespace's owner and a fully visible sysfs), no `/sys/fs/cgroup` mount
//! and no `resources` (an unprivileged user cannot manage cgroup v1 here).
//! Unlike runc, which drops the network namespace, we keep it: the container gets a
//! private loopback instead of the host's network (Podman's rootless mode does the
//! same with pasta/slirp4netns attached by the engine). `ping_group_range` is then
//! `"0 0"`, since only gid 0 exists in the user namespace (the kernel refuses a range
//! naming unmapped groups). The seccomp profile is the same as the rootful one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace,
    LinuxNamespaceType, LinuxPids, LinuxResources, LinuxSeccomp, LinuxSeccompAction,
    LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use LinuxSeccompOperator::{ScmpCmpGt as Gt, ScmpCmpLt as Lt};

/// The runtime-spec version Berth's default bundles declare.
pub const OCI_VERSION: &str = "1.2.0";

/// Hostname of a default container.
pub const HOSTNAME: &str = "berth";

/// Default `resources.pids.limit` (Docker: unlimited, Podman: 2048).
pub const PIDS_LIMIT: i64 = 4096;

/// Default `RLIMIT_NOFILE` soft and hard limit, before clamping to the caller's hard limit.
pub const NOFILE_LIMIT: u64 = 1024;

/// Default `PATH` of the container process.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Size of the `/dev` and `/dev/shm` tmpfs mounts (64 MiB, as everyone else).
const TMPFS_SIZE: &str = "size=65536k";

/// The default OCI configuration: what `berth-runtime spec [--rootless]` writes.
///
/// See the module documentation for every choice.
pub fn spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_owned());
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let mut process = process();
    if !rootless && crate::lsm::apparmor::enabled() {
        process.set_apparmor_profile(Some(crate::lsm::apparmor::DEFAULT_PROFILE.to_owned()));
    }
    spec.set_process(Some(process));
    spec.set_hostname(Some(HOSTNAME.to_owned()));
    spec.set_domainname(None);
    spec.set_annotations(None);
    spec.set_hooks(None);
    spec.set_mounts(Some(mounts(rootless)));
    spec.set_linux(Some(linux(rootless)));
    spec
}

/// The default capability set (bounding, effective and permitted): Podman's 11.
///
/// Docker's default also has `NET_RAW`, `MKNOD` and `AUDIT_WRITE`.
pub fn capabilities() -> Vec<Capability> {
    vec![
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fowner,
        Capability::Fsetid,
        Capability::Kill,
        Capability::NetBindService,
        Capability::Setfcap,
        Capability::Setgid,
        Capability::Setpcap,
        Capability::Setuid,
        Capability::SysChroot,
    ]
}

/// Paths masked inside the container (a read-only empty tmpfs over directories,
/// `/dev/null` over files): Docker's list plus `/proc/interrupts`.
pub fn masked_paths() -> Vec<String> {
    [
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .map(String::from)
    .to_vec()
}

/// Paths remounted read-only inside the container.
pub fn readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .map(String::from)
    .to_vec()
}

/// The default seccomp profile: [`seccomp_profile_for`] the default [`capabilities`].
pub fn seccomp_profile() -> LinuxSeccomp {
    seccomp_profile_for(&capabilities())
}

/// The default seccomp profile, widened for the capabilities in `caps` as Docker does
/// (a syscall whose only purpose needs a capability is allowed when it is granted).
pub fn seccomp_profile_for(caps: &[Capability]) -> LinuxSeccomp {
    let granted: HashSet<Capability> = caps.iter().copied().collect();
    let widened: BTreeSet<&str> = CAPABILITY_SYSCALLS
        .iter()
        .filter(|(cap, _)| granted.contains(cap))
        .flat_map(|(_, group)| group.split_whitespace())
        .collect();
    let sys_admin = granted.contains(&Capability::SysAdmin);

    let mut allowed: BTreeSet<&str> = names(ALLOWED).collect();
    allowed.extend(widened.iter().copied());
    let denied: Vec<&str> = names(DENIED)
        .filter(|name| !widened.contains(name))
        .collect();

    let mut rules = vec![
        rule(
            &allowed.into_iter().collect::<Vec<_>>(),
            LinuxSeccompAction::ScmpActAllow,
            None,
            &[],
        ),
        rule(&denied, LinuxSeccompAction::ScmpActErrno, Some(EPERM), &[]),
    ];
    if !sys_admin {
        // clone: allowed unless a namespace flag is set; each flag gets its own EPERM rule
        // so that no flag combination falls through to the default ENOSYS. The allow rule
        // and the refusals are disjoint, so losing a refusal (see `cmp`) only changes
        // that flag's errno to ENOSYS.
        rules.push(rule(
            &["clone"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            &[masked_eq(0, CLONE_NAMESPACE_FLAGS, 0)],
        ));
        for bit in CLONE_NAMESPACE_BITS {
            rules.push(rule(
                &["clone"],
                LinuxSeccompAction::ScmpActErrno,
                Some(EPERM),
                &[masked_eq(0, bit, bit)],
            ));
        }
        // clone3 passes its flags in memory: answer "not implemented" so libcs fall back
        // to clone. Equal to the default action today, and kept explicit on purpose.
        rules.push(rule(
            &["clone3"],
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            &[],
        ));
    }
    for persona in PERSONALITIES {
        rules.push(rule(
            &["personality"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            &[masked_eq(0, LOW_32_BITS, persona)],
        ));
    }
    let mut families = SOCKET_FAMILIES.to_vec();
    if granted.contains(&Capability::NetRaw) {
        families.push(AF_PACKET);
    }
    for family in families {
        rules.push(rule(
            &["socket"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            &[masked_eq(0, LOW_32_BITS, family)],
        ));
    }
    // ioctl: everything but TIOCSTI. The kernel reads the request as 32 bits, so the
    // refusal compares the low half; the two allow ranges compare all 64 bits, and
    // libseccomp checks the refusal first where they overlap (high bits set). The
    // three rules only make sense together: all or none.
    let ioctl = [
        rule(
            &["ioctl"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            &[cmp(1, Lt, TIOCSTI, None)],
        ),
        rule(
            &["ioctl"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            &[cmp(1, Gt, TIOCSTI, None)],
        ),
        rule(
            &["ioctl"],
            LinuxSeccompAction::ScmpActErrno,
            Some(EPERM),
            &[masked_eq(1, LOW_32_BITS, TIOCSTI)],
        ),
    ];
    if let Some(ioctl) = ioctl.into_iter().collect::<Option<Vec<_>>>() {
        rules.extend(ioctl.into_iter().map(Some));
    }

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(ENOSYS));
    profile.set_architectures(Some(architectures()));
    profile.set_flags(None);
    profile.set_listener_path(None);
    profile.set_listener_metadata(None);
    profile.set_syscalls(Some(rules.into_iter().flatten().collect()));
    profile
}

fn process() -> Process {
    let mut user = User::default();
    user.set_uid(0);
    user.set_gid(0);

    let set: HashSet<Capability> = capabilities().into_iter().collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(Some(HashSet::new()));
    caps.set_ambient(Some(HashSet::new()));

    // oci-spec offers only a builder for rlimits; its `build` cannot fail with every
    // field set. Should it, the process inherits the runtime's limits, which are within
    // the hard limit too, so the bundle still starts.
    let hard = NOFILE_LIMIT.min(current_nofile_hard_limit());
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(hard)
        .soft(hard)
        .build()
        .ok();

    let mut process = Process::default();
    process.set_terminal(Some(true));
    process.set_console_size(None);
    process.set_user(user);
    process.set_args(Some(vec!["sh".to_owned()]));
    process.set_command_line(None);
    process.set_env(Some(vec![PATH_ENV.to_owned(), "TERM=xterm".to_owned()]));
    process.set_cwd(PathBuf::from("/"));
    process.set_capabilities(Some(caps));
    process.set_rlimits(nofile.map(|n| vec![n]));
    process.set_no_new_privileges(Some(true));
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    process.set_oom_score_adj(None);
    process.set_io_priority(None);
    process.set_scheduler(None);
    process.set_exec_cpu_affinity(None);
    process
}

/// The hard `RLIMIT_NOFILE` of this process (`u64::MAX` for unlimited).
fn current_nofile_hard_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX)
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

fn mounts(rootless: bool) -> Vec<Mount> {
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
        devpts.push("gid=5");
    }
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", TMPFS_SIZE],
        ),
        mount("/dev/pts", "devpts", "devpts", &devpts),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", TMPFS_SIZE],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    if rootless {
        mounts.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ));
        mounts.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ));
    }
    mounts
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(None);
    ns
}

fn linux(rootless: bool) -> oci_spec::runtime::Linux {
    let mut namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .map(namespace)
    .to_vec();

    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_net_devices(None);
    linux.set_cgroups_path(None);
    linux.set_devices(None);
    linux.set_rootfs_propagation(None);
    linux.set_mount_label(None);
    linux.set_intel_rdt(None);
    linux.set_memory_policy(None);
    linux.set_personality(None);
    linux.set_time_offsets(None);
    linux.set_masked_paths(Some(masked_paths()));
    linux.set_readonly_paths(Some(readonly_paths()));
    linux.set_seccomp(Some(seccomp_profile()));

    let ping_range = if rootless {
        namespaces.push(namespace(LinuxNamespaceType::User));
        // oci-spec's rootless constructor maps exactly host uid/gid → 0, size 1.
        let ids = oci_spec::runtime::Linux::rootless(
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        linux.set_uid_mappings(ids.uid_mappings().clone());
        linux.set_gid_mappings(ids.gid_mappings().clone());
        linux.set_resources(None);
        "0 0"
    } else {
        linux.set_uid_mappings(None);
        linux.set_gid_mappings(None);
        linux.set_resources(Some(resources()));
        "0 2147483647"
    };
    linux.set_namespaces(Some(namespaces));
    linux.set_sysctl(Some(HashMap::from([(
        "net.ipv4.ping_group_range".to_owned(),
        ping_range.to_owned(),
    )])));
    linux
}

fn resources() -> LinuxResources {
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_typ(Some(LinuxDeviceType::A));
    deny_all.set_major(None);
    deny_all.set_minor(None);
    deny_all.set_access(Some("rwm".to_owned()));
    let mut pids = LinuxPids::default();
    pids.set_limit(PIDS_LIMIT);
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![deny_all]));
    resources.set_pids(Some(pids));
    resources
}

// ---------------------------------------------------------------------------------------
// Seccomp tables.

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const LOW_32_BITS: u64 = 0xffff_ffff;
const TIOCSTI: u64 = 0x5412;
const AF_PACKET: u64 = 17;
/// `AF_UNIX`, `AF_INET`, `AF_INET6`, `AF_NETLINK`.
const SOCKET_FAMILIES: [u64; 4] = [1, 2, 10, 16];
/// `PER_LINUX`, `PER_LINUX32`, `UNAME26`, `UNAME26|PER_LINUX32`, and the query value.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// `CLONE_NEWNS`, `NEWCGROUP`, `NEWUTS`, `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`.
const CLONE_NAMESPACE_BITS: [u64; 7] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];
const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// One rule; `None` when an argument could not be built (see [`cmp`]).
fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: &[Option<LinuxSeccompArg>],
) -> Option<LinuxSyscall> {
    let args: Option<Vec<LinuxSeccompArg>> = args.iter().copied().collect();
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    rule.set_action(action);
    rule.set_errno_ret(errno);
    rule.set_args(Some(args?).filter(|a| !a.is_empty()));
    Some(rule)
}

/// A comparison of argument `index`. oci-spec offers only a builder for it, whose
/// `build` cannot fail here (every field is set or has a default); should it ever,
/// the rule using it is left out, and the profile is built so that every rule left out
/// only narrows it (fail closed).
fn cmp(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> Option<LinuxSeccompArg> {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    let builder = match value_two {
        Some(v) => builder.value_two(v),
        None => builder,
    };
    builder.build().ok()
}

/// `(arg & mask) == value`; OCI puts the mask in `value` and the result in `valueTwo`.
fn masked_eq(index: usize, mask: u64, value: u64) -> Option<LinuxSeccompArg> {
    cmp(
        index,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
        mask,
        Some(value),
    )
}

fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "x86") {
        vec![Arch::ScmpArchX86]
    } else if cfg!(target_arch = "arm") {
        vec![Arch::ScmpArchArm]
    } else {
        // Only the native architecture, which every filter includes.
        Vec::new()
    }
}

/// Allowed unconditionally, in groups of whitespace-separated names. Names libseccomp
/// does not know (newer syscalls, other architectures) are skipped when compiling.
/// Conditional rules (`clone`, `socket`, `personality`, `ioctl`) are built in
/// [`seccomp_profile_for`].
const ALLOWED: &[&str] = &[
    // Descriptors and file I/O.
    "\
        read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek \
        _llseek open openat openat2 creat close close_range dup dup2 dup3 pipe pipe2 fcntl \
        fcntl64 flock fsync fdatasync sync syncfs sync_file_range sync_file_range2 \
        arm_sync_file_range fallocate ftruncate ftruncate64 truncate truncate64 sendfile \
        sendfile64 splice tee copy_file_range readahead fadvise64 fadvise64_64 \
        arm_fadvise64_64",
    // File system metadata.
    "\
        stat stat64 lstat lstat64 fstat fstat64 newfstatat fstatat64 statx statfs statfs64 \
        fstatfs fstatfs64 access faccessat faccessat2 readlink readlinkat getcwd chdir fchdir \
        getdents getdents64 mkdir mkdirat rmdir rename renameat renameat2 link linkat symlink \
        symlinkat unlink unlinkat chmod fchmod fchmodat fchmodat2 chown chown32 fchown \
        fchown32 fchownat lchown lchown32 umask utime utimes utimensat utimensat_time64 \
        futimesat mknod mknodat readdir",
    // Extended attributes.
    "\
        getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat \
        listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr \
        removexattrat",
    // Memory.
    "\
        brk mmap mmap2 munmap mremap mprotect madvise mincore mlock mlock2 munlock mlockall \
        munlockall msync remap_file_pages membarrier memfd_create memfd_secret pkey_alloc \
        pkey_free pkey_mprotect map_shadow_stack mseal cachestat",
    // Processes and threads.
    "\
        fork vfork execve execveat exit exit_group wait4 waitid waitpid kill tkill tgkill \
        rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_send_signal process_mrelease \
        getpid getppid gettid getpgid setpgid getpgrp getsid setsid set_tid_address \
        set_robust_list get_robust_list rseq restart_syscall futex futex_time64 futex_waitv \
        futex_wake futex_wait futex_requeue arch_prctl get_thread_area set_thread_area \
        set_tls cacheflush breakpoint prctl seccomp capget capset uname sysinfo getcpu \
        getrandom landlock_create_ruleset landlock_add_rule landlock_restrict_self",
    // Credentials.
    "\
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid \
        getresuid32 getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid \
        setgid32 setreuid setreuid32 setregid setregid32 setresuid setresuid32 setresgid \
        setresgid32 setfsuid setfsuid32 setfsgid setfsgid32 setgroups setgroups32",
    // Scheduling and limits.
    "\
        sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_setparam \
        sched_getscheduler sched_setscheduler sched_getattr sched_setattr \
        sched_get_priority_max sched_get_priority_min sched_rr_get_interval \
        sched_rr_get_interval_time64 getpriority setpriority ioprio_get ioprio_set getrlimit \
        setrlimit ugetrlimit prlimit64 getrusage times",
    // Signals (sigaction, signal, sigpending, sigsuspend: the pre-rt 32-bit x86 calls).
    "\
        rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending rt_sigtimedwait \
        rt_sigtimedwait_time64 sigaltstack sigreturn sigprocmask sigaction signal sigpending \
        sigsuspend pause alarm signalfd signalfd4",
    // Time (adjtimex/clock_adjtime only read without CAP_SYS_TIME).
    "\
        nanosleep clock_nanosleep clock_nanosleep_time64 clock_gettime clock_gettime64 \
        clock_getres clock_getres_time64 gettimeofday time getitimer setitimer timer_create \
        timer_delete timer_settime timer_settime64 timer_gettime timer_gettime64 \
        timer_getoverrun timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime \
        timerfd_gettime64 adjtimex clock_adjtime clock_adjtime64",
    // Polling and events.
    "\
        poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 epoll_create \
        epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait \
        epoll_pwait2 eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch \
        inotify_rm_watch fanotify_mark",
    // Asynchronous I/O (not io_uring).
    "\
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents \
        io_pgetevents_time64",
    // System V and POSIX IPC (namespaced).
    "\
        shmget shmat shmdt shmctl semget semop semtimedop semtimedop_time64 semctl msgget \
        msgsnd msgrcv msgctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 \
        mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr",
    // Sockets (socket itself is conditional).
    "\
        socketpair bind connect listen accept accept4 getsockname getpeername getsockopt \
        setsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg recvmmsg_time64 shutdown \
        send recv",
];

/// Refused with `EPERM` unless a granted capability widens them
/// ([`CAPABILITY_SYSCALLS`]). Everything not listed anywhere gets `ENOSYS`.
const DENIED: &[&str] = &[
    // Mounts and namespaces (CAP_SYS_ADMIN).
    "\
        mount umount umount2 pivot_root unshare setns fsopen fsconfig fsmount fspick \
        move_mount open_tree open_tree_attr mount_setattr chroot",
    // Kernel-wide state.
    "\
        bpf perf_event_open fanotify_init lookup_dcookie quotactl quotactl_fd syslog \
        sethostname setdomainname vhangup acct reboot settimeofday stime clock_settime \
        clock_settime64 iopl ioperm get_mempolicy set_mempolicy set_mempolicy_home_node mbind \
        migrate_pages move_pages",
    // Modules and kexec.
    "\
        init_module finit_module delete_module create_module query_module get_kernel_syms \
        kexec_load kexec_file_load",
    // Other processes' memory and descriptors.
    "\
        ptrace process_vm_readv process_vm_writev process_madvise kcmp pidfd_getfd \
        userfaultfd",
    // Not namespaced, or too much attack surface.
    "\
        keyctl add_key request_key io_uring_setup io_uring_enter io_uring_register \
        open_by_handle_at name_to_handle_at swapon swapoff nfsservctl uselib ustat sysfs \
        _sysctl bdflush vm86 vm86old modify_ldt vmsplice",
];

/// Syscalls a capability makes legitimate; allowed when that capability is granted.
const CAPABILITY_SYSCALLS: &[(Capability, &str)] = &[
    (
        Capability::SysAdmin,
        "\
            mount umount umount2 pivot_root unshare setns fsopen fsconfig fsmount fspick \
            move_mount open_tree open_tree_attr mount_setattr clone clone3 bpf perf_event_open \
            fanotify_init lookup_dcookie quotactl quotactl_fd syslog sethostname setdomainname",
    ),
    (
        Capability::SysChroot,
        "\
            chroot",
    ),
    (
        Capability::SysPtrace,
        "\
            ptrace process_vm_readv process_vm_writev process_madvise kcmp pidfd_getfd \
            userfaultfd",
    ),
    (
        Capability::SysTime,
        "\
            settimeofday stime clock_settime clock_settime64",
    ),
    (
        Capability::SysModule,
        "\
            init_module finit_module delete_module",
    ),
    (
        Capability::SysBoot,
        "\
            reboot",
    ),
    (
        Capability::SysPacct,
        "\
            acct",
    ),
    (
        Capability::SysRawio,
        "\
            iopl ioperm",
    ),
    (
        Capability::SysTtyConfig,
        "\
            vhangup",
    ),
    (
        Capability::SysNice,
        "\
            get_mempolicy set_mempolicy set_mempolicy_home_node mbind migrate_pages move_pages",
    ),
    (
        Capability::Syslog,
        "\
            syslog",
    ),
    (
        Capability::DacReadSearch,
        "\
            open_by_handle_at name_to_handle_at",
    ),
    (
        Capability::Bpf,
        "\
            bpf",
    ),
    (
        Capability::Perfmon,
        "\
            perf_event_open",
    ),
];

/// Every name in a table of whitespace-separated groups.
fn names<'a>(groups: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    groups.iter().flat_map(|group| group.split_whitespace())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use berth_seccomp::{CompiledFilter, Verdict};

    const ALLOW: Verdict = Verdict::Allow;
    const DENY_EPERM: Verdict = Verdict::Errno(1);
    const DENY_ENOSYS: Verdict = Verdict::Errno(38);

    fn compiled(caps: &[Capability]) -> CompiledFilter {
        berth_seccomp::compile(&seccomp_profile_for(caps)).unwrap()
    }

    fn arches() -> Vec<Arch> {
        architectures()
    }

    /// The verdict for `name` on every architecture that has it.
    fn verdicts(f: &CompiledFilter, name: &str, args: [u64; 6]) -> Vec<(Arch, Verdict)> {
        arches()
            .into_iter()
            .filter_map(|arch| f.evaluate(arch, name, args).ok().map(|v| (arch, v)))
            .collect()
    }

    fn assert_verdict(f: &CompiledFilter, name: &str, args: [u64; 6], want: Verdict) {
        let got = verdicts(f, name, args);
        assert!(!got.is_empty(), "{name} exists on no architecture");
        for (arch, verdict) in got {
            assert_eq!(verdict, want, "{name}({args:x?}) on {arch}");
        }
    }

    /// Forbidden in the default profile, with the errno they must get.
    const FORBIDDEN: &[&str] = &[
        "mount",
        "umount2",
        "pivot_root",
        "unshare",
        "setns",
        "bpf",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "perf_event_open",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "open_by_handle_at",
        "name_to_handle_at",
        "ptrace",
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "settimeofday",
        "clock_settime",
        "quotactl",
        "syslog",
        "vhangup",
        "lookup_dcookie",
        "nfsservctl",
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "kcmp",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_getfd",
        "sethostname",
        "setdomainname",
        "iopl",
        "ioperm",
        "modify_ldt",
        "vmsplice",
        "mbind",
        "set_mempolicy",
    ];

    #[test]
    fn forbidden_syscalls_are_not_allowed_unconditionally() {
        let profile = seccomp_profile();
        for rule in profile.syscalls().as_ref().unwrap() {
            if rule.action() == LinuxSeccompAction::ScmpActAllow && rule.args().is_none() {
                for name in FORBIDDEN
                    .iter()
                    .chain(["clone", "clone3", "socket", "ioctl"].iter())
                {
                    assert!(!rule.names().iter().any(|n| n == name), "{name} allowed");
                }
            }
        }
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn forbidden_syscalls_are_refused_by_the_compiled_filter() {
        let f = compiled(&capabilities());
        for name in FORBIDDEN {
            assert_verdict(&f, name, [0; 6], DENY_EPERM);
        }
        assert_verdict(&f, "clone3", [0; 6], DENY_ENOSYS);
        // Unknown to the profile: not implemented.
        assert_verdict(&f, "afs_syscall", [0; 6], DENY_ENOSYS);
        assert_verdict(&f, "tuxcall", [0; 6], DENY_ENOSYS);
    }

    #[test]
    fn everyday_syscalls_are_allowed() {
        let f = compiled(&capabilities());
        for name in [
            "read",
            "write",
            "openat",
            "close",
            "execve",
            "exit_group",
            "getpid",
            "futex",
            "mmap",
            "rt_sigaction",
            "epoll_wait",
            "accept4",
            "chroot",
            "fchown",
            "setuid",
            "statx",
            "wait4",
            "faccessat2",
        ] {
            assert_verdict(&f, name, [0; 6], ALLOW);
        }
    }

    #[test]
    fn clone_namespace_flags_are_refused() {
        let f = compiled(&capabilities());
        // fork(): SIGCHLD | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID.
        assert_verdict(&f, "clone", [0x0120_0011, 0, 0, 0, 0, 0], ALLOW);
        // pthread_create().
        assert_verdict(&f, "clone", [0x003d_0f00, 0, 0, 0, 0, 0], ALLOW);
        for bit in CLONE_NAMESPACE_BITS {
            assert_verdict(&f, "clone", [bit | 0x11, 0, 0, 0, 0, 0], DENY_EPERM);
        }
        assert_verdict(
            &f,
            "clone",
            [CLONE_NAMESPACE_FLAGS, 0, 0, 0, 0, 0],
            DENY_EPERM,
        );

        let admin = compiled(&[Capability::SysAdmin]);
        assert_verdict(&admin, "clone", [0x1000_0011, 0, 0, 0, 0, 0], ALLOW);
        assert_verdict(&admin, "clone3", [0; 6], ALLOW);
        for name in [
            "mount",
            "unshare",
            "setns",
            "umount2",
            "sethostname",
            "fsopen",
        ] {
            assert_verdict(&admin, name, [0; 6], ALLOW);
        }
        // Never widened.
        for name in ["keyctl", "io_uring_setup", "kexec_load", "swapon", "chroot"] {
            assert_verdict(&admin, name, [0; 6], DENY_EPERM);
        }
    }

    #[test]
    fn capabilities_widen_like_docker() {
        let ptrace = compiled(&[Capability::SysPtrace]);
        for name in ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"] {
            assert_verdict(&ptrace, name, [0; 6], ALLOW);
        }
        let time = compiled(&[Capability::SysTime]);
        assert_verdict(&time, "clock_settime", [0; 6], ALLOW);
        assert_verdict(&time, "settimeofday", [0; 6], ALLOW);
        let module = compiled(&[Capability::SysModule]);
        assert_verdict(&module, "finit_module", [0; 6], ALLOW);
        let none = compiled(&[]);
        assert_verdict(&none, "chroot", [0; 6], DENY_EPERM);
    }

    #[test]
    fn socket_families() {
        let f = compiled(&capabilities());
        for family in [1u64, 2, 10, 16, 0x1_0000_0002] {
            // Only the direct syscall: 32-bit x86 socketcall is out of reach (documented).
            assert_verdict(&f, "socket", [family, 1, 0, 0, 0, 0], ALLOW);
        }
        for family in [0u64, 17, 38, 40, 30, 21, 41, 44] {
            assert_verdict(&f, "socket", [family, 1, 0, 0, 0, 0], DENY_ENOSYS);
        }
        let raw = compiled(&[Capability::NetRaw]);
        assert_verdict(&raw, "socket", [17, 3, 0, 0, 0, 0], ALLOW);
    }

    #[test]
    fn personality_and_ioctl() {
        let f = compiled(&capabilities());
        for persona in PERSONALITIES {
            assert_verdict(&f, "personality", [persona, 0, 0, 0, 0, 0], ALLOW);
        }
        // READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE.
        assert_verdict(&f, "personality", [0x0040_0000, 0, 0, 0, 0, 0], DENY_ENOSYS);
        assert_verdict(&f, "personality", [0x0004_0000, 0, 0, 0, 0, 0], DENY_ENOSYS);

        for request in [0x5401u64, 0x5413, 0x541b, 0x8000_0000_0000_0001, 0] {
            assert_verdict(&f, "ioctl", [1, request, 0, 0, 0, 0], ALLOW);
        }
        for request in [TIOCSTI, 0x1_0000_5412, 0xffff_ffff_0000_5412] {
            assert_verdict(&f, "ioctl", [0, request, 0, 0, 0, 0], DENY_EPERM);
        }
    }

    /// Names added after libseccomp 2.5.4, the version Debian 12 ships; a newer
    /// libseccomp knows them, an older one skips them (they then get ENOSYS).
    const NEWER_THAN_LIBSECCOMP: &[&str] = &[
        "fchmodat2",
        "map_shadow_stack",
        "mseal",
        "cachestat",
        "futex_wake",
        "futex_wait",
        "futex_requeue",
        "getxattrat",
        "setxattrat",
        "listxattrat",
        "removexattrat",
        "open_tree_attr",
        "set_mempolicy_home_node",
        "memfd_secret",
    ];

    #[test]
    fn every_name_is_a_real_syscall() {
        // Guards against typos, which libseccomp would skip silently.
        let f = compiled(&capabilities());
        let all_arches = [
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
            Arch::ScmpArchAarch64,
            Arch::ScmpArchArm,
            Arch::ScmpArchPpc64le,
            Arch::ScmpArchS390x,
            Arch::ScmpArchRiscv64,
        ];
        let all = names(ALLOWED).chain(names(DENIED)).chain(
            CAPABILITY_SYSCALLS
                .iter()
                .flat_map(|(_, group)| group.split_whitespace()),
        );
        for name in all {
            if NEWER_THAN_LIBSECCOMP.contains(&name) {
                continue;
            }
            let known = all_arches
                .iter()
                .any(|arch| f.evaluate(*arch, name, [0; 6]).is_ok());
            assert!(
                known,
                "{name} is not a syscall on any supported architecture"
            );
        }
    }

    #[test]
    fn allowed_and_denied_lists_are_disjoint() {
        let allowed: Vec<&str> = names(ALLOWED).collect();
        for name in names(DENIED) {
            assert!(
                !allowed.contains(&name),
                "{name} is both allowed and denied"
            );
        }
        let denied: Vec<&str> = names(DENIED).collect();
        for (cap, group) in CAPABILITY_SYSCALLS {
            for name in group.split_whitespace() {
                assert!(
                    !allowed.contains(&name),
                    "{name} widened but always allowed"
                );
                let special = ["clone", "clone3"].contains(&name);
                assert!(
                    special || denied.contains(&name),
                    "{name} ({cap}) is not denied first"
                );
            }
        }
    }

    #[test]
    fn capabilities_are_podmans_eleven() {
        let caps = capabilities();
        assert_eq!(caps.len(), 11);
        for cap in [
            Capability::NetRaw,
            Capability::Mknod,
            Capability::AuditWrite,
            Capability::SysAdmin,
            Capability::SysPtrace,
            Capability::NetAdmin,
        ] {
            assert!(!caps.contains(&cap), "{cap} must not be a default");
        }
    }

    #[test]
    fn masked_and_readonly_paths_cover_dockers() {
        let masked = masked_paths();
        for p in [
            "/proc/asound",
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
            "/proc/interrupts",
        ] {
            assert!(masked.iter().any(|m| m == p), "{p} not masked");
        }
        let ro = readonly_paths();
        for p in [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ] {
            assert!(ro.iter().any(|r| r == p), "{p} not read-only");
        }
    }

    #[test]
    fn spec_round_trips_through_json() {
        for rootless in [false, true] {
            let spec = spec(rootless);
            let json = serde_json::to_string_pretty(&spec).unwrap();
            let back: Spec = serde_json::from_str(&json).unwrap();
            assert_eq!(back, spec);
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["ociVersion"], "1.2.0");
            assert_eq!(value["process"]["terminal"], true);
            assert_eq!(value["process"]["noNewPrivileges"], true);
            assert_eq!(value["root"]["readonly"], true);
            assert_eq!(value["hostname"], "berth");
            assert_eq!(value["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
            assert!(value.get("annotations").is_none());
        }
    }

    #[test]
    fn rootful_spec_contents() {
        let spec = spec(false);
        let process = spec.process().as_ref().unwrap();
        let rlimit = process.rlimits().as_ref().unwrap()[0];
        assert_eq!(rlimit.typ(), PosixRlimitType::RlimitNofile);
        assert!(rlimit.hard() <= NOFILE_LIMIT && rlimit.hard() <= current_nofile_hard_limit());
        assert_eq!(rlimit.soft(), rlimit.hard());
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 11);
        assert!(caps.ambient().as_ref().unwrap().is_empty());

        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(!ns.contains(&LinuxNamespaceType::User));
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(linux.uid_mappings().is_none());
        let resources = linux.resources().as_ref().unwrap();
        assert_eq!(resources.pids().unwrap().limit(), PIDS_LIMIT);
        let dev = &resources.devices().as_ref().unwrap()[0];
        assert!(!dev.allow());
        assert_eq!(dev.access().as_deref(), Some("rwm"));
        assert_eq!(
            linux.sysctl().as_ref().unwrap()["net.ipv4.ping_group_range"],
            "0 2147483647"
        );
        let mounts = spec.mounts().as_ref().unwrap();
        let devpts = mounts
            .iter()
            .find(|m| m.destination() == &PathBuf::from("/dev/pts"))
            .unwrap();
        assert!(devpts
            .options()
            .as_ref()
            .unwrap()
            .iter()
            .any(|o| o == "gid=5"));
        assert!(mounts
            .iter()
            .any(|m| m.destination() == &PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn rootless_spec_contents() {
        let spec = spec(true);
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::User));
        assert!(ns.contains(&LinuxNamespaceType::Network));
        let uid = linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!((uid.container_id(), uid.size()), (0, 1));
        assert_eq!(uid.host_id(), rustix::process::geteuid().as_raw());
        assert!(linux.resources().is_none());
        assert_eq!(
            linux.sysctl().as_ref().unwrap()["net.ipv4.ping_group_range"],
            "0 0"
        );
        let mounts = spec.mounts().as_ref().unwrap();
        assert!(!mounts
            .iter()
            .any(|m| m.destination() == &PathBuf::from("/sys/fs/cgroup")));
        let sys = mounts
            .iter()
            .find(|m| m.destination() == &PathBuf::from("/sys"))
            .unwrap();
        assert!(sys.options().as_ref().unwrap().iter().any(|o| o == "rbind"));
        for m in mounts {
            for o in m.options().iter().flatten() {
                assert!(
                    !o.starts_with("gid=") && !o.starts_with("uid="),
                    "{o} in rootless"
                );
            }
        }
    }

    const CHILD_ENV: &str = "BERTH_TEST_DEFAULT_SECCOMP_CHILD";

    /// Loads the default profile in a child process (this test binary, re-executed to
    /// run only [`seccomp_child`]) and checks the kernel enforces it.
    #[test]
    fn default_profile_enforced_in_child() {
        let module = module_path!().split_once("::").map(|(_, m)| m).unwrap();
        let test = format!("{module}::seccomp_child");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("seccomp-child-ok"),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The child side of [`default_profile_enforced_in_child`]; does nothing otherwise.
    #[test]
    fn seccomp_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let filter = compiled(&capabilities());
        rustix::thread::set_no_new_privs(true).unwrap();
        assert!(filter.load().unwrap().is_none());

        let errno = |e: rustix::io::Errno| e.raw_os_error();
        // Still works.
        assert!(rustix::process::getpid().as_raw_nonzero().get() > 0);
        rustix::fs::stat("/").unwrap();
        // Refused with EPERM.
        let unshare = berth_sys::unshare(berth_sys::NamespaceFlags::USER).unwrap_err();
        assert_eq!(unshare.errno(), Some(1));
        let mount = rustix::mount::mount(
            "none",
            "/",
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap_err();
        assert_eq!(errno(mount), 1);
        let keyring = berth_sys::join_session_keyring("berth-test").unwrap_err();
        assert_eq!(keyring.errno(), Some(1));
        // A socket family outside the allow-list.
        let vsock = rustix::net::socket(
            rustix::net::AddressFamily::from_raw(40),
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap_err();
        assert_eq!(errno(vsock), 38);
        let unix = rustix::net::socket(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            None,
        );
        assert!(unix.is_ok());
        println!("seccomp-child-ok");
    }
}
