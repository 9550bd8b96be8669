//! A container's record turned into the runtime's OCI configuration, starting from
//! Berth's secure default (`berth_runtime::defaults`) and never weaker unless the
//! request says so explicitly (`--privileged`, `--cap-add`, `seccomp=unconfined`…).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxPids, LinuxResources, Mount, PosixRlimit, PosixRlimitType, Spec,
};

use crate::error::{EngineError, Result};
use crate::model::{ContainerRecord, HostConfig};

/// Paths on the host that are refused as bind sources unless the request allows them.
const SENSITIVE: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/berth",
    "/var/lib/berth",
    "/run/containerd",
    "/var/lib/docker",
];

/// The label that allows binding a sensitive host path.
pub const ALLOW_SENSITIVE_LABEL: &str = "berth.allow-sensitive-bind";

/// Files the engine writes for a container and binds into it.
#[derive(Debug, Clone)]
pub(crate) struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv: PathBuf,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// One bind mount from `Binds` (`src:dst[:opts]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub propagation: Option<String>,
}

/// Parses Docker's `-v` short syntax.
pub(crate) fn parse_bind(s: &str) -> Result<Bind> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => return Err(invalid(format!("invalid volume specification: '{s}'"))),
    };
    if source.is_empty() || !target.starts_with('/') {
        return Err(invalid(format!("invalid volume specification: '{s}'")));
    }
    let mut b = Bind {
        source: source.to_owned(),
        target: target.to_owned(),
        read_only: false,
        propagation: None,
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => b.read_only = true,
            "rw" => b.read_only = false,
            "z" | "Z" => {} // relabelling: only meaningful with SELinux on the host
            "nocopy" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                b.propagation = Some(o.to_owned())
            }
            other => return Err(invalid(format!("invalid mode: {other}"))),
        }
    }
    Ok(b)
}

fn is_sensitive(path: &Path) -> bool {
    SENSITIVE.iter().any(|s| path == Path::new(s))
}

fn capability(name: &str) -> Result<Capability> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n).to_owned();
    n.parse::<Capability>()
        .map_err(|_| invalid(format!("unknown capability: \"{name}\"")))
}

fn all_capabilities() -> Vec<Capability> {
    (0..=63)
        .filter_map(|i| {
            let c = caps_name(i)?;
            c.strip_prefix("CAP_")?.parse::<Capability>().ok()
        })
        .collect()
}

fn caps_name(i: u32) -> Option<&'static str> {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES.get(usize::try_from(i).ok()?).copied()
}

/// The capability set after `--privileged`, `--cap-add` and `--cap-drop`.
fn capabilities(hc: &HostConfig) -> Result<Vec<Capability>> {
    if hc.privileged {
        return Ok(all_capabilities());
    }
    let mut set: Vec<Capability> = berth_runtime::defaults::capabilities();
    let drops = hc.cap_drop.as_deref().unwrap_or_default();
    let adds = hc.cap_add.as_deref().unwrap_or_default();
    if drops.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        set.clear();
    } else {
        for d in drops {
            let c = capability(d)?;
            set.retain(|x| *x != c);
        }
    }
    if adds.iter().any(|a| a.eq_ignore_ascii_case("ALL")) {
        return Ok(all_capabilities());
    }
    for a in adds {
        let c = capability(a)?;
        if !set.contains(&c) {
            set.push(c);
        }
    }
    Ok(set)
}

fn rlimit_type(name: &str) -> Result<PosixRlimitType> {
    Ok(match name {
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        "as" => PosixRlimitType::RlimitAs,
        other => return Err(invalid(format!("invalid ulimit type: {other}"))),
    })
}

/// Namespaced sysctls a container may set (as Docker's validation allows them).
fn sysctl_allowed(key: &str, own_net: bool) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    IPC.contains(&key) || key.starts_with("fs.mqueue.") || (own_net && key.starts_with("net."))
}

/// Checks what create accepts: fields Berth does not implement are refused, never
/// silently dropped.
pub(crate) fn validate(hc: &HostConfig, labels_allow_sensitive: bool) -> Result<()> {
    for (k, v) in &hc.other {
        // MemorySwappiness: -1 is "not set" (what the docker CLI sends).
        let unset = crate::model::is_default_value(v)
            || (k == "MemorySwappiness" && v.as_i64() == Some(-1));
        if !unset && !IGNORED.contains(&k.as_str()) && k != "Mounts" {
            return Err(EngineError::Unsupported(
                format!("HostConfig.{k}"),
                "remove the option or leave it at its default",
            ));
        }
    }
    match hc.network_mode.as_str() {
        "" | "default" | "none" | "host" => {}
        "bridge" => {
            return Err(EngineError::Unsupported(
                "network mode \"bridge\"".into(),
                "until bridge networking lands, containers run with --network none (the default) or --network host",
            ))
        }
        other => {
            return Err(EngineError::Unsupported(
                format!("network mode \"{other}\""),
                "use --network none or --network host",
            ))
        }
    }
    if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || hc.publish_all_ports {
        return Err(EngineError::Unsupported(
            "publishing ports".into(),
            "port publishing needs bridge networking, which is not available yet",
        ));
    }
    for (mode, what) in [
        (&hc.ipc_mode, "IpcMode"),
        (&hc.pid_mode, "PidMode"),
        (&hc.uts_mode, "UTSMode"),
        (&hc.cgroupns_mode, "CgroupnsMode"),
    ] {
        if !matches!(mode.as_str(), "" | "private" | "shareable" | "host") {
            return Err(EngineError::Unsupported(
                format!("{what} \"{mode}\""),
                "use private (the default) or host",
            ));
        }
    }
    if hc.init == Some(true) {
        return Err(EngineError::Unsupported(
            "--init".into(),
            "Berth's own init arrives with a later release",
        ));
    }
    for opt in hc.security_opt.as_deref().unwrap_or_default() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match (k, v) {
            ("no-new-privileges", "" | "true" | "false") => {}
            ("seccomp", "unconfined") | ("apparmor", _) | ("label", "disable") => {}
            ("seccomp", _) => {
                return Err(EngineError::Unsupported(
                    "a custom seccomp profile".into(),
                    "use the default profile or seccomp=unconfined",
                ))
            }
            _ => return Err(invalid(format!("invalid --security-opt: {opt:?}"))),
        }
    }
    let own_net = hc.network_mode != "host";
    for k in hc
        .sysctls
        .as_ref()
        .map(|s| s.keys().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !sysctl_allowed(k, own_net) {
            return Err(invalid(format!(
                "sysctl {k:?} is not allowed: only namespaced sysctls (net.* with the container's own network, kernel.msg*/sem/shm*, fs.mqueue.*)"
            )));
        }
    }
    for b in hc.binds.as_deref().unwrap_or_default() {
        let bind = parse_bind(b)?;
        if bind.source.starts_with('/') {
            check_sensitive(&bind.source, labels_allow_sensitive)?;
        }
    }
    capabilities(hc)?;
    for u in hc.ulimits.as_deref().unwrap_or_default() {
        rlimit_type(&u.name)?;
        if u.soft > u.hard {
            return Err(invalid(format!(
                "ulimit {}: soft limit {} is above the hard limit {}",
                u.name, u.soft, u.hard
            )));
        }
    }
    match hc.log_config.kind.as_str() {
        "" | "json-file" | "none" => {}
        other => {
            return Err(EngineError::Unsupported(
                format!("log driver \"{other}\""),
                "use json-file (the default) or none",
            ))
        }
    }
    Ok(())
}

/// HostConfig fields that have no meaning on Linux or are informational: accepted and
/// ignored whatever their value.
const IGNORED: &[&str] = &[
    "ConsoleSize",
    "Isolation",
    "ContainerIDFile",
    "Annotations",
    "VolumeDriver",
    "KernelMemory",
    "KernelMemoryTCP",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "MaskedPaths",
    "ReadonlyPaths",
    "Runtime",
];

/// Refuses a sensitive host path as a bind source unless allowed.
pub(crate) fn check_sensitive(source: &str, allow: bool) -> Result<()> {
    if !allow && is_sensitive(&clean(source)) {
        return Err(invalid(format!(
            "refusing to bind the sensitive host path {source} into a container: it would give the container control over the host; set the label {ALLOW_SENSITIVE_LABEL}=true to do it anyway"
        )));
    }
    Ok(())
}

/// Lexically cleaned absolute path (for the sensitive-path check).
fn clean(p: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn bind_mount(source: &Path, target: &str, read_only: bool, propagation: Option<&str>) -> Mount {
    let mut opts = vec!["rbind".to_owned(), "nosuid".to_owned(), "nodev".to_owned()];
    opts.push(if read_only { "ro" } else { "rw" }.to_owned());
    if let Some(p) = propagation {
        opts.push(p.to_owned());
    }
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(target));
    m.set_typ(Some("bind".to_owned()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(opts));
    m
}

/// Numeric uid/gid (and extra groups) for `user` (`name|uid[:group|gid]`), resolved in
/// the container's root filesystem without following links out of it.
fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd");
    let group = read_in_root(rootfs, "etc/group");
    let (uid, mut gid) = if u.is_empty() {
        (0, 0)
    } else if let Ok(n) = u.parse::<u32>() {
        let gid = lookup(&passwd, |f| f.get(2) == Some(&u)).and_then(|f| f.get(3)?.parse().ok());
        (n, gid.unwrap_or(0))
    } else {
        let f = lookup(&passwd, |f| f.first() == Some(&u)).ok_or_else(|| {
            invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        let uid = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let gid = f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
        (uid, gid)
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&group, |f| f.first() == Some(&g))
                .and_then(|f| f.get(2)?.parse().ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // Supplementary groups the user is listed in.
    let name = lookup(&passwd, |f| {
        f.get(2).and_then(|s| s.parse::<u32>().ok()) == Some(uid)
    })
    .and_then(|f| f.first().map(|s| (*s).to_owned()));
    let mut extra = Vec::new();
    if let Some(name) = name {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)) {
                if let Some(g) = f.get(2).and_then(|s| s.parse::<u32>().ok()) {
                    if g != gid {
                        extra.push(g);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

fn lookup<'a>(file: &'a str, pred: impl Fn(&[&'a str]) -> bool) -> Option<Vec<&'a str>> {
    file.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| pred(f))
}

/// A small file of the container's root filesystem (empty if absent or unreadable),
/// opened with `RESOLVE_IN_ROOT` so an image's symlinks cannot point it at the host.
pub(crate) fn read_in_root(rootfs: &Path, rel: &str) -> String {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Ok(root) = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return String::new();
    };
    let Ok(fd) = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    ) else {
        return String::new();
    };
    let mut f = std::fs::File::from(fd);
    let mut s = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(&mut f, 1 << 20), &mut s);
    s
}

/// The runtime configuration of `record`, whose root filesystem is mounted at `rootfs`.
pub(crate) fn build(
    record: &ContainerRecord,
    rootfs: &Path,
    etc: &EtcFiles,
    volumes: &[(PathBuf, crate::volume::VolumeMount)],
) -> Result<Spec> {
    let id = record.id.as_str();
    let hc = &record.host_config;
    let cfg = &record.config;
    let mut spec = berth_runtime::defaults::spec(false);

    // Root.
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(hc.readonly_rootfs));
    spec.set_root(Some(root));
    let hostname = if cfg.hostname.is_empty() {
        id.get(..12).unwrap_or(id).to_owned()
    } else {
        cfg.hostname.clone()
    };
    spec.set_hostname(Some(hostname.clone()));
    if !cfg.domainname.is_empty() {
        spec.set_domainname(Some(cfg.domainname.clone()));
    }

    // Process.
    let mut process = spec.process().clone().unwrap_or_default();
    let mut argv = vec![record.path.clone()];
    argv.extend(record.args.iter().cloned());
    process.set_args(Some(argv));
    process.set_terminal(Some(cfg.tty));
    if cfg.tty {
        // The client's terminal size at create (`ConsoleSize`, API >= 1.42), so the
        // first thing the process sees is the right size, before any resize request.
        let size = hc
            .other
            .get("ConsoleSize")
            .and_then(|v| v.as_array())
            .and_then(|a| {
                let h = a.first()?.as_u64()?;
                let w = a.get(1)?.as_u64()?;
                (h > 0 && w > 0).then_some((h, w))
            });
        if let Some((h, w)) = size {
            if let Ok(b) = oci_spec::runtime::BoxBuilder::default()
                .height(h)
                .width(w)
                .build()
            {
                process.set_console_size(Some(b));
            }
        }
    }
    process.set_cwd(PathBuf::from(if cfg.working_dir.is_empty() {
        "/"
    } else {
        &cfg.working_dir
    }));
    let mut env: Vec<String> = Vec::new();
    let mut put = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_owned();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    put(berth_runtime::defaults::PATH_ENV.to_owned());
    put(format!("HOSTNAME={hostname}"));
    if cfg.tty {
        put("TERM=xterm".to_owned());
    }
    for kv in cfg.env.as_deref().unwrap_or_default() {
        if kv.contains('=') {
            put(kv.clone());
        }
    }
    process.set_env(Some(env));
    let (uid, gid, mut extra) = resolve_user(rootfs, &cfg.user)?;
    for g in hc.group_add.as_deref().unwrap_or_default() {
        let gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&read_in_root(rootfs, "etc/group"), |f| {
                f.first() == Some(&g.as_str())
            })
            .and_then(|f| f.get(2)?.parse().ok())
            .ok_or_else(|| invalid(format!("unable to find group {g}")))?,
        };
        extra.push(gid);
    }
    let mut user = process.user().clone();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids(if extra.is_empty() { None } else { Some(extra) });
    process.set_user(user);
    let caps: HashSet<Capability> = capabilities(hc)?.into_iter().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(caps.clone()));
    c.set_effective(Some(caps.clone()));
    c.set_permitted(Some(caps));
    c.set_inheritable(None);
    c.set_ambient(None);
    process.set_capabilities(Some(c));
    let mut nnp = true;
    let mut seccomp_off = hc.privileged;
    let mut apparmor: Option<Option<String>> = hc.privileged.then_some(None);
    for opt in hc.security_opt.as_deref().unwrap_or_default() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match (k, v) {
            ("no-new-privileges", "false") => nnp = false,
            ("seccomp", "unconfined") => seccomp_off = true,
            ("apparmor", "unconfined") => apparmor = Some(None),
            ("apparmor", name) => apparmor = Some(Some(name.to_owned())),
            _ => {}
        }
    }
    process.set_no_new_privileges(Some(nnp));
    if let Some(profile) = apparmor {
        if profile.is_some() || process.apparmor_profile().is_some() {
            process.set_apparmor_profile(profile);
        }
    }
    if hc.oom_score_adj != 0 {
        process.set_oom_score_adj(Some(
            i32::try_from(hc.oom_score_adj).map_err(|_| invalid("OomScoreAdj out of range"))?,
        ));
    }
    if let Some(ulimits) = &hc.ulimits {
        let mut rl: Vec<PosixRlimit> = process.rlimits().clone().unwrap_or_default();
        for u in ulimits {
            let t = rlimit_type(&u.name)?;
            rl.retain(|r| r.typ() != t);
            let r = oci_spec::runtime::PosixRlimitBuilder::default()
                .typ(t)
                .soft(u64::try_from(u.soft).unwrap_or(u64::MAX))
                .hard(u64::try_from(u.hard).unwrap_or(u64::MAX))
                .build()
                .map_err(|e| invalid(format!("ulimit {}: {e}", u.name)))?;
            rl.push(r);
        }
        process.set_rlimits(Some(rl));
    }
    spec.set_process(Some(process));

    // Mounts.
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    if hc.shm_size > 0 {
        for m in &mut mounts {
            if m.destination() == Path::new("/dev/shm") {
                let mut o: Vec<String> = m.options().clone().unwrap_or_default();
                o.retain(|x| !x.starts_with("size="));
                o.push(format!("size={}", hc.shm_size));
                m.set_options(Some(o));
            }
        }
    }
    if hc.privileged {
        for m in &mut mounts {
            if m.destination() == Path::new("/sys") {
                let mut o: Vec<String> = m.options().clone().unwrap_or_default();
                o.retain(|x| x != "ro");
                o.push("rw".to_owned());
                m.set_options(Some(o));
            }
        }
    }
    mounts.push(bind_mount(&etc.hostname, "/etc/hostname", false, None));
    mounts.push(bind_mount(&etc.hosts, "/etc/hosts", false, None));
    mounts.push(bind_mount(&etc.resolv, "/etc/resolv.conf", false, None));
    for b in hc.binds.as_deref().unwrap_or_default() {
        let bind = parse_bind(b)?;
        if !bind.source.starts_with('/') {
            continue; // a named volume: below
        }
        let src = PathBuf::from(&bind.source);
        if !src.exists() {
            // `-v /host/dir:/x` creates a missing source directory, as Docker does.
            std::fs::create_dir_all(&src)
                .map_err(|e| EngineError::io("create bind source", &src, e))?;
        }
        mounts.retain(|m| m.destination() != Path::new(&bind.target));
        mounts.push(bind_mount(
            &src,
            &bind.target,
            bind.read_only,
            bind.propagation.as_deref(),
        ));
    }
    for (src, v) in volumes {
        mounts.retain(|m| m.destination() != Path::new(&v.destination));
        mounts.push(bind_mount(src, &v.destination, v.read_only, None));
    }
    for m in &record.mounts {
        mounts.retain(|x| x.destination() != Path::new(&m.target));
        if m.kind == "bind" {
            mounts.push(bind_mount(
                Path::new(&m.source),
                &m.target,
                m.read_only,
                m.options.first().map(String::as_str),
            ));
        } else {
            let mut o = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
            if m.read_only {
                o.push("ro".to_owned());
            }
            o.extend(m.options.iter().cloned());
            let mut t = Mount::default();
            t.set_destination(PathBuf::from(&m.target));
            t.set_typ(Some("tmpfs".to_owned()));
            t.set_source(Some(PathBuf::from("tmpfs")));
            t.set_options(Some(o));
            mounts.push(t);
        }
    }
    for (target, opts) in hc.tmpfs.clone().unwrap_or_default() {
        if !target.starts_with('/') {
            return Err(invalid(format!(
                "invalid tmpfs mount point {target:?}: must be absolute"
            )));
        }
        let mut o = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
        o.extend(opts.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(&target));
        m.set_typ(Some("tmpfs".to_owned()));
        m.set_source(Some(PathBuf::from("tmpfs")));
        m.set_options(Some(o));
        mounts.retain(|x| x.destination() != Path::new(&target));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));

    // Linux: namespaces, resources, confinement.
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<LinuxNamespace> = linux.namespaces().clone().unwrap_or_default();
    let host = |mode: &str| mode == "host";
    namespaces.retain(|ns| match ns.typ() {
        LinuxNamespaceType::Network => !host(&hc.network_mode),
        LinuxNamespaceType::Ipc => !host(&hc.ipc_mode),
        LinuxNamespaceType::Pid => !host(&hc.pid_mode),
        LinuxNamespaceType::Uts => !host(&hc.uts_mode),
        LinuxNamespaceType::Cgroup => !host(&hc.cgroupns_mode),
        _ => true,
    });
    linux.set_namespaces(Some(namespaces));
    if host(&hc.uts_mode) {
        spec.set_hostname(None);
    }
    linux.set_cgroups_path(Some(PathBuf::from(format!("/berth-{id}"))));
    let mut res: LinuxResources = linux.resources().clone().unwrap_or_default();
    if hc.memory > 0 || hc.memory_reservation > 0 || hc.memory_swap != 0 {
        let mut m = LinuxMemory::default();
        if hc.memory > 0 {
            m.set_limit(Some(hc.memory));
            if hc.memory_swap == 0 {
                m.set_swap(Some(hc.memory * 2));
            }
        }
        if hc.memory_swap != 0 {
            m.set_swap(Some(hc.memory_swap));
        }
        if hc.memory_reservation > 0 {
            m.set_reservation(Some(hc.memory_reservation));
        }
        res.set_memory(Some(m));
    }
    if hc.nano_cpus > 0 && (hc.cpu_quota > 0 || hc.cpu_period > 0) {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
        ));
    }
    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if hc.nano_cpus > 0 {
        let period: u64 = 100_000;
        cpu.set_period(Some(period));
        cpu.set_quota(Some(hc.nano_cpus.saturating_mul(100_000) / 1_000_000_000));
        cpu_set = true;
    }
    if hc.cpu_quota > 0 {
        cpu.set_quota(Some(hc.cpu_quota));
        cpu_set = true;
    }
    if hc.cpu_period > 0 {
        cpu.set_period(Some(u64::try_from(hc.cpu_period).unwrap_or(100_000)));
        cpu_set = true;
    }
    if hc.cpu_shares > 0 {
        cpu.set_shares(Some(u64::try_from(hc.cpu_shares).unwrap_or(1024)));
        cpu_set = true;
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(hc.cpuset_cpus.clone()));
        cpu_set = true;
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.set_mems(Some(hc.cpuset_mems.clone()));
        cpu_set = true;
    }
    if cpu_set {
        res.set_cpu(Some(cpu));
    }
    match hc.pids_limit {
        Some(n) if n < 0 => {
            res.set_pids(None);
        }
        Some(n) if n > 0 => {
            let mut p = LinuxPids::default();
            p.set_limit(n);
            res.set_pids(Some(p));
        }
        _ => {}
    }
    linux.set_resources(Some(res));
    if seccomp_off {
        linux.set_seccomp(None);
    } else if let Some(process) = spec.process() {
        // The profile follows the capabilities granted (as Docker's does).
        let caps: Vec<Capability> = process
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().clone())
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        linux.set_seccomp(Some(berth_runtime::defaults::seccomp_profile_for(&caps)));
    }
    if hc.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    let mut sysctl = linux.sysctl().clone().unwrap_or_default();
    if host(&hc.network_mode) {
        sysctl.retain(|k, _| !k.starts_with("net."));
    }
    for (k, v) in hc.sysctls.clone().unwrap_or_default() {
        sysctl.insert(k, v);
    }
    linux.set_sysctl(if sysctl.is_empty() {
        None
    } else {
        Some(sysctl)
    });
    spec.set_linux(Some(linux));
    if hc.privileged {
        tracing::warn!(
            container = id,
            "starting a PRIVILEGED container: all capabilities, no seccomp, no LSM confinement"
        );
    }
    Ok(spec)
}

/// The process of an exec session: the container's process with the session's
/// command, environment, working directory, user and terminal.
pub(crate) fn exec_process(
    spec: &Spec,
    rec: &ContainerRecord,
    rootfs: &Path,
    cfg: &crate::exec::ExecConfig,
) -> Result<oci_spec::runtime::Process> {
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(cfg.cmd.clone()));
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    for kv in cfg.env.as_deref().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_owned());
    }
    p.set_env(Some(env));
    if !cfg.working_dir.is_empty() {
        p.set_cwd(PathBuf::from(&cfg.working_dir));
    }
    if !cfg.user.is_empty() {
        let (uid, gid, extra) = resolve_user(rootfs, &cfg.user)?;
        let mut u = p.user().clone();
        u.set_uid(uid);
        u.set_gid(gid);
        u.set_additional_gids(if extra.is_empty() { None } else { Some(extra) });
        p.set_user(u);
    }
    p.set_terminal(Some(cfg.tty));
    p.set_console_size(None);
    if let Some([h, w]) = cfg
        .console_size
        .as_deref()
        .and_then(|v| <[u16; 2]>::try_from(v).ok())
    {
        if h > 0 && w > 0 {
            if let Ok(b) = oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(h))
                .width(u64::from(w))
                .build()
            {
                p.set_console_size(Some(b));
            }
        }
    }
    if cfg.privileged {
        let hc = HostConfig {
            privileged: true,
            ..rec.host_config.clone()
        };
        let caps: HashSet<Capability> = capabilities(&hc)?.into_iter().collect();
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(caps.clone()));
        c.set_effective(Some(caps.clone()));
        c.set_permitted(Some(caps));
        p.set_capabilities(Some(c));
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        assert_eq!(
            parse_bind("/a:/b:ro").unwrap(),
            Bind {
                source: "/a".into(),
                target: "/b".into(),
                read_only: true,
                propagation: None
            }
        );
        assert!(parse_bind("/a").is_err());
        assert!(parse_bind("/a:rel").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
    }

    #[test]
    fn refusals() {
        let mut hc = HostConfig {
            binds: Some(vec!["/etc:/x".into()]),
            ..HostConfig::default()
        };
        assert!(validate(&hc, false)
            .unwrap_err()
            .to_string()
            .contains("sensitive"));
        assert!(validate(&hc, true).is_ok());
        hc.binds = Some(vec!["/tmp/../:/x".into()]);
        assert!(validate(&hc, false).is_err());
        let mut hc = HostConfig::default();
        hc.other
            .insert("OomKillDisable".into(), serde_json::json!(true));
        assert!(validate(&hc, false)
            .unwrap_err()
            .to_string()
            .contains("HostConfig.OomKillDisable"));
        let hc = HostConfig {
            network_mode: "bridge".into(),
            ..HostConfig::default()
        };
        assert!(validate(&hc, false).is_err());
        let hc = HostConfig {
            sysctls: Some([("kernel.panic".to_owned(), "1".to_owned())].into()),
            ..HostConfig::default()
        };
        assert!(validate(&hc, false).is_err());
    }

    #[test]
    fn capability_sets() {
        let mut hc = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["net_raw".into()]),
            ..HostConfig::default()
        };
        assert_eq!(capabilities(&hc).unwrap(), vec![Capability::NetRaw]);
        hc.cap_add = Some(vec!["bogus".into()]);
        assert!(capabilities(&hc).is_err());
        let hc = HostConfig {
            privileged: true,
            ..HostConfig::default()
        };
        let all = capabilities(&hc).unwrap();
        assert!(all.contains(&Capability::SysAdmin));
        assert_eq!(all.len(), 41);
    }

    #[test]
    fn users_resolve_in_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:www\nwww:x:34:\n",
        )
        .unwrap();
        assert_eq!(resolve_user(d.path(), "").unwrap(), (0, 0, vec![]));
        assert_eq!(resolve_user(d.path(), "www").unwrap(), (33, 34, vec![50]));
        assert_eq!(
            resolve_user(d.path(), "1000:50").unwrap(),
            (1000, 50, vec![])
        );
        assert!(resolve_user(d.path(), "nobody").is_err());
        // A symlink out of the root is resolved inside it.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        assert!(read_in_root(d.path(), "etc/passwd").is_empty());
    }
}
