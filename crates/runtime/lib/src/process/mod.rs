//! Turning the calling (forked) process into the container's process: attributes,
//! security labels, identity, capabilities, seccomp, and finally `execve`.
//!
//! Order matters and follows what the kernel allows:
//! 1. [`apply_early`] (host `/proc` still visible): OOM score, personality, I/O priority,
//!    scheduler, CPU affinity, session keyring.
//! 2. [`finalize`]: LSM labels (after checking `/proc` is procfs), bounding set,
//!    groups/gid/uid with capabilities kept as permitted, the working directory (opened
//!    inside the root, then `fchdir` as the user) and the executable resolved on the
//!    container's `PATH` — all before any seccomp filter, which might not allow the
//!    syscalls path resolution uses; then seccomp when `noNewPrivileges` is false (with
//!    CAP_SYS_ADMIN raised from the permitted set for the moment), the final capability
//!    sets, `no_new_privs`, rlimits, umask.
//! 3. [`exec`]: mark every descriptor close-on-exec, load seccomp when `noNewPrivileges`
//!    is true (as late as possible, so the filter constrains as little runtime code as
//!    possible), `execve`.

pub(crate) mod caps;
pub(crate) mod console;

use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Linux, PosixRlimitType, Process};
use rustix::fs::{Mode, OFlags};
use rustix::process::{Resource, Rlimit};

use crate::error::{Error, Result};
use crate::paths::{ensure_in_root, open_in_root, Leaf};

/// Default PATH when the process environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Step 1.
pub(crate) fn apply_early(
    p: &Process,
    linux: Option<&Linux>,
    new_keyring: Option<&str>,
) -> Result<()> {
    if let Some(adj) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("write", "/proc/self/oom_score_adj", e))?;
    }
    if let Some(pers) = linux.and_then(|l| l.personality().as_ref()) {
        let domain = match pers.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 8,
        };
        berth_sys::personality(domain)?;
    }
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            oci_spec::runtime::IOPriorityClass::IoprioClassRt => 1,
            oci_spec::runtime::IOPriorityClass::IoprioClassBe => 2,
            oci_spec::runtime::IOPriorityClass::IoprioClassIdle => 3,
        };
        let level = u32::try_from(io.priority()).map_err(|_| {
            Error::InvalidConfig(format!(
                "ioPriority.priority {} out of range",
                io.priority()
            ))
        })?;
        berth_sys::ioprio_set(class, level)?;
    }
    if let Some(s) = p.scheduler() {
        apply_scheduler(s)?;
    }
    if let Some(aff) = p.exec_cpu_affinity() {
        if let Some(cpus) = aff
            .cpu_affinity_final()
            .as_deref()
            .or(aff.initial().as_deref())
        {
            set_affinity(cpus)?;
        }
    }
    if let Some(name) = new_keyring {
        crate::lsm::label_keyrings(p)?;
        // EPERM/ENOSYS happen under some seccomp profiles or kernels without keys; a
        // container without its own keyring still works, as with runc.
        match berth_sys::join_session_keyring(name) {
            Ok(()) => {}
            Err(e) if matches!(e.errno(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn apply_scheduler(s: &oci_spec::runtime::Scheduler) -> Result<()> {
    use oci_spec::runtime::LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let attr = berth_sys::SchedAttr {
        sched_policy: policy,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: u32::try_from(s.priority().unwrap_or(0)).unwrap_or(0),
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    };
    berth_sys::sched_setattr(&attr).map_err(Into::into)
}

/// Parse a CPU list such as `0-3,7`.
pub(crate) fn parse_cpu_list(s: &str) -> Result<Vec<usize>> {
    let bad = || Error::InvalidConfig(format!("bad CPU list {s:?}"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= rustix::thread::CpuSet::MAX_CPU {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

fn set_affinity(list: &str) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in parse_cpu_list(list)? {
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| Error::sys("sched_setaffinity", e))
}

/// What [`finalize`] leaves for [`exec`].
#[derive(Debug)]
pub(crate) struct Prepared {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(OsString, OsString)>,
    seccomp_late: Option<berth_seccomp::CompiledFilter>,
    preserve_fds: u32,
}

/// Inputs of [`finalize`].
#[derive(Debug)]
pub(crate) struct FinalizeInput<'a> {
    pub process: &'a Process,
    /// The container root as the process sees it (after pivot or setns).
    pub root: BorrowedFd<'a>,
    pub seccomp: Option<berth_seccomp::CompiledFilter>,
    /// In a new user namespace whose setgroups is denied.
    pub setgroups_denied: bool,
    pub preserve_fds: u32,
}

/// Step 2.
pub(crate) fn finalize(input: FinalizeInput<'_>) -> Result<Prepared> {
    let p = input.process;
    crate::lsm::apply_on_exec(p)?;
    // Create the working directory as root, before switching user, like runc.
    let cwd = p.cwd();
    drop(ensure_in_root(input.root, cwd, Leaf::Dir, 0o755)?);

    let sets = caps::Sets::from_spec(p.capabilities().as_ref());
    caps::apply_bounding(&sets, caps::last_cap())?;
    rustix::thread::set_keep_capabilities(true).map_err(|e| Error::sys("PR_SET_KEEPCAPS", e))?;
    let user = p.user();
    let gids: Vec<rustix::process::Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    if !(input.setgroups_denied && gids.is_empty()) {
        rustix::thread::set_thread_groups(&gids).map_err(|e| Error::sys("setgroups", e))?;
    }
    let gid = rustix::process::Gid::from_raw(user.gid());
    let uid = rustix::process::Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| Error::sys(format!("setresgid({})", user.gid()), e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| Error::sys(format!("setresuid({})", user.uid()), e))?;
    rustix::thread::set_keep_capabilities(false).map_err(|e| Error::sys("PR_SET_KEEPCAPS", e))?;

    // Now the container user, still holding its old capabilities as permitted ones: do what
    // needs path resolution before any seccomp filter is loaded (a profile may not allow
    // openat2 or statx). Resolve the working directory inside the root (no magic links, so
    // a leaked descriptor's /proc/self/fd/N path cannot be used, CVE-2024-21626) and enter
    // it with the user's permissions; find the executable the same way.
    let dir = open_in_root(input.root, cwd, OFlags::PATH | OFlags::DIRECTORY)?;
    rustix::process::fchdir(&dir).map_err(|e| Error::io("chdir", cwd, e.into()))?;
    drop(dir);
    let here =
        rustix::process::getcwd(Vec::new()).map_err(|e| Error::io("getcwd", cwd, e.into()))?;
    if !here.to_bytes().starts_with(b"/") {
        return Err(Error::InvalidConfig(format!(
            "cwd {} is outside the container",
            cwd.display()
        )));
    }
    let (program, args, env) = command(p, user.uid())?;

    // Nothing the runtime holds may reach the container (CVE-2024-21626); marked now,
    // before a filter could refuse close_range. Later descriptors are close-on-exec.
    berth_sys::close_range_cloexec(3 + input.preserve_fds)?;

    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN in effect: raise the
    // permitted set for that moment, load, then set the final sets. With no_new_privs the
    // filter waits until just before execve.
    let nnp = p.no_new_privileges().unwrap_or(false);
    let mut late = None;
    if let Some(filter) = input.seccomp {
        if nnp {
            late = Some(filter);
        } else {
            caps::raise_permitted()?;
            filter.load()?;
        }
    }
    caps::apply_sets(&sets)?;
    if nnp {
        rustix::thread::set_no_new_privs(true).map_err(|e| Error::sys("PR_SET_NO_NEW_PRIVS", e))?;
    }
    apply_rlimits(p)?;
    rustix::process::umask(Mode::from_raw_mode(user.umask().unwrap_or(0o022) & 0o777));
    Ok(Prepared {
        program,
        args,
        env,
        seccomp_late: late,
        preserve_fds: input.preserve_fds,
    })
}

/// The program to execute (found on the container's PATH), its arguments and environment.
#[allow(clippy::type_complexity)]
fn command(p: &Process, uid: u32) -> Result<(PathBuf, Vec<String>, Vec<(OsString, OsString)>)> {
    let args = p.args().clone().unwrap_or_default();
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for kv in p.env().as_deref().unwrap_or_default() {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if k.is_empty() {
            continue;
        }
        env.retain(|(ek, _)| ek != k);
        env.push((k.into(), v.into()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        let home = home_of(uid).unwrap_or_else(|| "/".into());
        env.push(("HOME".into(), home));
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let first = args.first().cloned().unwrap_or_default();
    let program = resolve_executable(&first, &path_var)?;
    Ok((program, args, env))
}

fn rlimit_resource(t: PosixRlimitType) -> Option<Resource> {
    Some(match t {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
    })
}

fn apply_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().as_deref().unwrap_or_default() {
        let Some(res) = rlimit_resource(r.typ()) else {
            continue;
        };
        let want = Rlimit {
            current: Some(r.soft()),
            maximum: Some(r.hard()),
        };
        let want = Rlimit {
            current: want.current.filter(|v| *v != u64::MAX),
            maximum: want.maximum.filter(|v| *v != u64::MAX),
        };
        if let Err(e) = rustix::process::setrlimit(res, want) {
            let cur = rustix::process::getrlimit(res);
            let hard = cur
                .maximum
                .map_or("unlimited".to_string(), |v| v.to_string());
            return Err(Error::sys(
                format!(
                    "setrlimit {:?} soft {} hard {} (current hard limit {hard}; raising it needs CAP_SYS_RESOURCE)",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
                e,
            ));
        }
    }
    Ok(())
}

/// HOME of `uid` from the container's /etc/passwd (bounded read), if listed.
fn home_of(uid: u32) -> Option<OsString> {
    let data = crate::state::read_bounded(Path::new("/etc/passwd")).ok()?;
    for line in data.split(|b| *b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|b| *b == b':').collect();
        if fields.len() >= 7 && fields[2] == uid.to_string().as_bytes() && !fields[5].is_empty() {
            return Some(OsString::from_vec(fields[5].to_vec()));
        }
    }
    None
}

/// Find `name` on `path` as execve would, checking it is an executable regular file.
pub(crate) fn resolve_executable(name: &str, path: &str) -> Result<PathBuf> {
    let not_found = || {
        Error::InvalidConfig(format!(
            "exec: {name:?}: executable file not found in $PATH"
        ))
    };
    if name.is_empty() {
        return Err(not_found());
    }
    let is_exec = |p: &Path| {
        rustix::fs::stat(p).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        }) && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        if is_exec(&p) {
            return Ok(p);
        }
        // The words Docker clients look for: "no such file or directory" (exit 127),
        // "permission denied" (exit 126).
        return Err(match rustix::fs::stat(&p) {
            Err(e) => Error::InvalidConfig(format!("exec: {name:?}: stat {name}: {}", io_text(e))),
            Ok(_) => Error::InvalidConfig(format!("exec: {name:?}: permission denied")),
        });
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if is_exec(&candidate) {
            return Ok(candidate);
        }
    }
    Err(not_found())
}

/// An errno as the C library words it, lower-case ("no such file or directory").
fn io_text(e: rustix::io::Errno) -> String {
    let s = std::io::Error::from(e).to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_owned();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// Step 3: never returns on success.
pub(crate) fn exec(prepared: Prepared) -> Error {
    // Once more for anything opened since `finalize` (all close-on-exec by construction);
    // a seccomp filter loaded meanwhile may refuse close_range, which is then harmless.
    if let Err(e) = berth_sys::close_range_cloexec(3 + prepared.preserve_fds) {
        if e.errno() != Some(libc::EPERM) {
            return e.into();
        }
    }
    if let Some(filter) = &prepared.seccomp_late {
        if let Err(e) = filter.load() {
            return e.into();
        }
    }
    let mut cmd = std::process::Command::new(&prepared.program);
    if let Some(first) = prepared.args.first() {
        cmd.arg0(first);
    }
    cmd.args(prepared.args.iter().skip(1))
        .env_clear()
        .envs(prepared.env.iter().map(|(k, v)| (k, v)));
    let err = cmd.exec();
    Error::io("execve", prepared.program, err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn executable_lookup() {
        assert_eq!(
            resolve_executable("sh", "/nonexistent:/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
        let e = resolve_executable("no-such-binary-xyz", "/bin").unwrap_err();
        assert!(e.to_string().contains("executable file not found"));
        assert!(resolve_executable("/etc/passwd", "").is_err());
    }
}
