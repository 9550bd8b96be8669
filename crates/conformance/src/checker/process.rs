//! Checks of `process`: args, env, cwd, user, umask, rlimits, oomScoreAdj,
//! noNewPrivileges, hostname, domainname, and the open file descriptors.

use oci_spec::runtime::{PosixRlimitType, Spec};
use rustix::process::Resource;

use super::{read_bounded, ProcStatus};
use crate::facts::Facts;
use crate::tap::TapLine;

/// Open descriptor numbers with their link targets, listed first thing.
pub(super) fn open_fds() -> Result<Vec<(u32, String)>, String> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
    let mut fds = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| e.to_string())?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let target = std::fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        fds.push((fd, target));
    }
    fds.sort();
    Ok(fds)
}

/// Only 0, 1, 2 and the preserved descriptors may be open: the runtime must not
/// leak its own descriptors into the container.
pub(super) fn check_fds(
    fds: &Result<Vec<(u32, String)>, String>,
    facts: &Facts,
    out: &mut Vec<TapLine>,
) {
    let desc = "no file descriptors leaked into the container";
    match fds {
        Err(e) => out.push(TapLine::fail(desc, format!("listing /proc/self/fd: {e}"))),
        Ok(fds) => {
            let allowed = 3 + facts.preserved_fds;
            let leaked: Vec<String> = fds
                .iter()
                // The directory handle used for listing points at /proc/<pid>/fd.
                .filter(|(fd, target)| *fd >= allowed && !is_fd_dir(target))
                .map(|(fd, target)| format!("{fd} -> {target}"))
                .collect();
            out.push(TapLine::check(
                leaked.is_empty(),
                desc,
                format!("unexpected open descriptors: {}", leaked.join(", ")),
            ));
        }
    }
}

fn is_fd_dir(target: &str) -> bool {
    target.starts_with("/proc/") && target.ends_with("/fd")
}

pub(super) fn check(spec: &Spec, status: &ProcStatus, out: &mut Vec<TapLine>) {
    if let Some(process) = spec.process() {
        if let Some(args) = process.args() {
            let desc = format!("process.args are {args:?}");
            match read_bounded("/proc/self/cmdline") {
                Ok(cmdline) => {
                    let actual: Vec<&str> = cmdline
                        .strip_suffix('\0')
                        .unwrap_or(&cmdline)
                        .split('\0')
                        .collect();
                    out.push(TapLine::check(
                        actual == *args,
                        desc,
                        format!("found {actual:?}"),
                    ));
                }
                Err(e) => out.push(TapLine::fail(desc, e.to_string())),
            }
        }
        for var in process.env().iter().flatten() {
            let Some((key, value)) = var.split_once('=') else {
                out.push(TapLine::fail(
                    format!("env {var}"),
                    "malformed entry in spec",
                ));
                continue;
            };
            let actual = std::env::var_os(key);
            out.push(TapLine::check(
                actual.as_deref() == Some(std::ffi::OsStr::new(value)),
                format!("env {key}={value}"),
                format!("found {actual:?}"),
            ));
        }
        let cwd = process.cwd();
        match std::env::current_dir() {
            Ok(actual) => out.push(TapLine::check(
                actual == *cwd,
                format!("process.cwd is {}", cwd.display()),
                format!("found {}", actual.display()),
            )),
            Err(e) => out.push(TapLine::fail(
                format!("process.cwd is {}", cwd.display()),
                e.to_string(),
            )),
        }
        check_user(process.user(), status, out);
        for rlimit in process.rlimits().iter().flatten() {
            check_rlimit(rlimit.typ(), rlimit.soft(), rlimit.hard(), out);
        }
        if let Some(adj) = process.oom_score_adj() {
            let actual = read_bounded("/proc/self/oom_score_adj").map(|s| s.trim().to_string());
            out.push(TapLine::check(
                actual.as_deref().ok() == Some(adj.to_string().as_str()),
                format!("process.oomScoreAdj is {adj}"),
                format!("found {actual:?}"),
            ));
        }
        let nnp = process.no_new_privileges().unwrap_or(false);
        let actual = status.get("NoNewPrivs");
        out.push(TapLine::check(
            actual == Some(if nnp { "1" } else { "0" }),
            format!("process.noNewPrivileges is {nnp}"),
            format!("NoNewPrivs: {actual:?}"),
        ));
    }
    let uname = rustix::system::uname();
    if let Some(hostname) = spec.hostname() {
        let actual = uname.nodename().to_string_lossy();
        out.push(TapLine::check(
            actual == hostname.as_str(),
            format!("hostname is {hostname}"),
            format!("found {actual}"),
        ));
    }
    if let Some(domainname) = spec.domainname() {
        let actual = uname.domainname().to_string_lossy();
        out.push(TapLine::check(
            actual == domainname.as_str(),
            format!("domainname is {domainname}"),
            format!("found {actual}"),
        ));
    }
}

fn check_user(user: &oci_spec::runtime::User, status: &ProcStatus, out: &mut Vec<TapLine>) {
    for (key, want) in [("Uid", user.uid()), ("Gid", user.gid())] {
        let actual = status.numbers(key);
        let ok = actual
            .as_ref()
            .is_some_and(|ids| !ids.is_empty() && ids.iter().all(|id| *id == u64::from(want)));
        out.push(TapLine::check(
            ok,
            format!(
                "process.user {} is {want} (real, effective, saved, fs)",
                key.to_lowercase()
            ),
            format!("{key}: {actual:?}"),
        ));
    }
    if let Some(gids) = user.additional_gids() {
        let groups = status.numbers("Groups").unwrap_or_default();
        let missing: Vec<u32> = gids
            .iter()
            .copied()
            .filter(|g| !groups.contains(&u64::from(*g)))
            .collect();
        out.push(TapLine::check(
            missing.is_empty(),
            format!("process.user.additionalGids {gids:?} are set"),
            format!("Groups: {groups:?}, missing {missing:?}"),
        ));
    }
    if let Some(umask) = user.umask() {
        let actual = status
            .get("Umask")
            .and_then(|u| u32::from_str_radix(u, 8).ok());
        out.push(TapLine::check(
            actual == Some(umask),
            format!("process.user.umask is {umask:04o}"),
            format!("Umask: {actual:?}"),
        ));
    }
}

/// The rustix resource for a spec rlimit type.
fn resource(typ: PosixRlimitType) -> Option<Resource> {
    Some(match typ {
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
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn check_rlimit(typ: PosixRlimitType, soft: u64, hard: u64, out: &mut Vec<TapLine>) {
    let desc = format!("rlimit {typ} is soft {soft} hard {hard}");
    let Some(res) = resource(typ) else {
        out.push(TapLine::skip(desc, "unknown rlimit type"));
        return;
    };
    let limit = rustix::process::getrlimit(res);
    // `None` is RLIM_INFINITY, which the spec writes as u64::MAX.
    let cur = limit.current.unwrap_or(u64::MAX);
    let max = limit.maximum.unwrap_or(u64::MAX);
    out.push(TapLine::check(
        cur == soft && max == hard,
        desc,
        format!("found soft {cur} hard {max}"),
    ));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fd_dir_is_not_a_leak() {
        let facts = Facts::default();
        let mut out = Vec::new();
        let fds = Ok(vec![(0, "/dev/null".into()), (3, "/proc/7/fd".into())]);
        check_fds(&fds, &facts, &mut out);
        assert_eq!(out[0].status, crate::tap::Status::Pass);
        let fds = Ok(vec![(4, "pipe:[1]".into())]);
        check_fds(&fds, &facts, &mut out);
        assert_eq!(out[1].status, crate::tap::Status::Fail);
    }

    #[test]
    fn own_rlimit_matches() {
        let limit = rustix::process::getrlimit(Resource::Nofile);
        let mut out = Vec::new();
        check_rlimit(
            PosixRlimitType::RlimitNofile,
            limit.current.unwrap_or(u64::MAX),
            limit.maximum.unwrap_or(u64::MAX),
            &mut out,
        );
        assert_eq!(out[0].status, crate::tap::Status::Pass, "{:?}", out[0]);
    }
}
