//! Checks of capabilities, seccomp, AppArmor and SELinux.

use oci_spec::runtime::{Capabilities, LinuxSeccompAction, Spec};

use super::{read_bounded, ProcStatus};
use crate::caps;
use crate::facts::Facts;
use crate::tap::TapLine;

const EPERM: i32 = 1;

pub(super) fn check(spec: &Spec, facts: &Facts, status: &ProcStatus, out: &mut Vec<TapLine>) {
    if let Some(process) = spec.process() {
        if let Some(capabilities) = process.capabilities() {
            let uid = process.user().uid();
            let sets = [
                capabilities.bounding(),
                capabilities.effective(),
                capabilities.inheritable(),
                capabilities.permitted(),
                capabilities.ambient(),
            ];
            match sets.map(|s| to_mask(s.as_ref())) {
                [Ok(bnd), Ok(eff), Ok(inh), Ok(prm), Ok(amb)] => {
                    let spec_sets = CapSets {
                        bnd,
                        eff,
                        inh,
                        prm,
                        amb,
                    };
                    check_caps(&spec_sets.after_exec(uid), status, out);
                }
                _ => out.push(TapLine::fail(
                    "process.capabilities",
                    "spec names unknown capabilities",
                )),
            }
        }
        if let Some(profile) = process.apparmor_profile() {
            let desc = format!("process.apparmorProfile {profile} is applied");
            if !facts.apparmor_enabled {
                out.push(TapLine::skip(desc, "AppArmor is not enabled on this host"));
            } else {
                let current = read_bounded("/proc/self/attr/apparmor/current")
                    .or_else(|_| read_bounded("/proc/self/attr/current"))
                    .unwrap_or_default();
                out.push(TapLine::check(
                    current.trim().starts_with(profile.as_str()),
                    desc,
                    format!("current profile {:?}", current.trim()),
                ));
            }
        }
        if let Some(label) = process.selinux_label() {
            let desc = format!("process.selinuxLabel {label} is applied");
            if !facts.selinux_enabled {
                out.push(TapLine::skip(desc, "SELinux is not enabled on this host"));
            } else {
                let current = read_bounded("/proc/self/attr/current").unwrap_or_default();
                let current = current.trim_end_matches(['\0', '\n']);
                out.push(TapLine::check(
                    current == label,
                    desc,
                    format!("current label {current:?}"),
                ));
            }
        }
    }
    if let Some(label) = spec.linux().as_ref().and_then(|l| l.mount_label().clone()) {
        let desc = format!("linux.mountLabel {label} is applied");
        if !facts.selinux_enabled {
            out.push(TapLine::skip(desc, "SELinux is not enabled on this host"));
        } else {
            out.push(TapLine::skip(
                desc,
                "mount labels are not inspected by this checker",
            ));
        }
    }
    check_seccomp(spec, status, out);
}

fn to_mask(set: Option<&Capabilities>) -> Result<u64, String> {
    let mut names = Vec::new();
    for cap in set.into_iter().flatten() {
        match serde_json::to_value(cap) {
            Ok(serde_json::Value::String(name)) => names.push(name),
            _ => return Err(format!("capability {cap:?} has no name")),
        }
    }
    caps::mask(names.iter().map(String::as_str))
}

/// The five capability sets of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CapSets {
    bnd: u64,
    eff: u64,
    inh: u64,
    prm: u64,
    amb: u64,
}

impl CapSets {
    /// The sets the kernel computes when the runtime, having set `self`, execs
    /// a program without file capabilities as user `uid` (capabilities(7),
    /// "Transformation of capabilities during execve()"). For uid 0 the
    /// permitted set becomes bounding | inheritable and effective follows it;
    /// for other users permitted and effective become the ambient set. The
    /// kernel only lets a capability into the ambient set when it is both
    /// permitted and inheritable, so the rest of the ambient list cannot take effect.
    fn after_exec(self, uid: u32) -> Self {
        let amb = self.amb & self.inh & self.prm;
        if uid == 0 {
            let prm = self.bnd | self.inh | amb;
            Self {
                prm,
                eff: prm,
                amb,
                ..self
            }
        } else {
            Self {
                prm: amb,
                eff: amb,
                amb,
                ..self
            }
        }
    }
}

fn check_caps(want: &CapSets, status: &ProcStatus, out: &mut Vec<TapLine>) {
    for (key, set, expected) in [
        ("CapBnd", "bounding", want.bnd),
        ("CapEff", "effective", want.eff),
        ("CapInh", "inheritable", want.inh),
        ("CapPrm", "permitted", want.prm),
        ("CapAmb", "ambient", want.amb),
    ] {
        let desc = format!("process.capabilities.{set} in effect ({key})");
        match status.hex(key) {
            None => out.push(TapLine::fail(
                desc,
                format!("{key} missing from /proc/self/status"),
            )),
            Some(actual) => {
                let extra = caps::names(actual & !expected);
                let missing = caps::names(expected & !actual);
                out.push(TapLine::check(
                    actual == expected,
                    desc,
                    format!("extra {extra:?} missing {missing:?}"),
                ));
            }
        }
    }
}

/// A syscall the checker knows how to call harmlessly; returns the errno.
fn probe(name: &str) -> Option<Result<(), i32>> {
    let errno = |e: rustix::io::Errno| e.raw_os_error();
    Some(match name {
        "mkdirat" => {
            let path = "/berth-conformance/.seccomp-probe";
            let res = rustix::fs::mkdirat(
                rustix::fs::CWD,
                path,
                rustix::fs::Mode::from_raw_mode(0o700),
            );
            if res.is_ok() {
                let _ = std::fs::remove_dir(path);
            }
            res.map_err(errno)
        }
        "symlinkat" => {
            let path = "/berth-conformance/.seccomp-probe-link";
            let res = rustix::fs::symlinkat("target", rustix::fs::CWD, path);
            if res.is_ok() {
                let _ = std::fs::remove_file(path);
            }
            res.map_err(errno)
        }
        "getpriority" => rustix::process::getpriority_process(None)
            .map(|_| ())
            .map_err(errno),
        _ => return None,
    })
}

fn check_seccomp(spec: &Spec, status: &ProcStatus, out: &mut Vec<TapLine>) {
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().clone()) else {
        return;
    };
    let mode = status.get("Seccomp");
    out.push(TapLine::check(
        mode == Some("2"),
        "linux.seccomp filter installed (Seccomp: 2)",
        format!("Seccomp: {mode:?}"),
    ));
    for rule in seccomp.syscalls().iter().flatten() {
        if rule.action() != LinuxSeccompAction::ScmpActErrno
            || rule.args().as_ref().is_some_and(|a| !a.is_empty())
        {
            continue;
        }
        let want = rule
            .errno_ret()
            .and_then(|e| i32::try_from(e).ok())
            .unwrap_or(EPERM);
        let desc = format!("seccomp rule for {:?} returns errno {want}", rule.names());
        match rule.names().iter().find_map(|n| probe(n)) {
            None => out.push(TapLine::skip(desc, "no probe for these syscalls")),
            Some(Ok(())) => out.push(TapLine::fail(desc, "the syscall succeeded")),
            Some(Err(got)) => out.push(TapLine::check(
                got == want,
                desc,
                format!("got errno {got}"),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn root_permitted_is_bounding_or_inheritable() {
        let spec = CapSets {
            bnd: 0b1100,
            eff: 0b0100,
            inh: 0b0001,
            prm: 0b0100,
            amb: 0,
        };
        let root = spec.after_exec(0);
        assert_eq!(root.prm, 0b1101);
        assert_eq!(root.eff, 0b1101);
        assert_eq!(root.bnd, 0b1100);
        let user = CapSets {
            amb: 0b0100,
            inh: 0b0100,
            ..spec
        }
        .after_exec(1000);
        assert_eq!(user.prm, 0b0100);
        assert_eq!(user.eff, 0b0100);
        // Ambient capabilities that are not inheritable cannot be raised.
        let dropped = CapSets {
            amb: 0b1000,
            ..spec
        }
        .after_exec(0);
        assert_eq!(dropped.amb, 0);
    }

    #[test]
    fn masks_from_spec_sets() {
        let set: Capabilities = serde_json::from_str(r#"["CAP_KILL","CAP_CHOWN"]"#).unwrap();
        assert_eq!(to_mask(Some(&set)).unwrap(), 0b100001);
        assert_eq!(to_mask(None).unwrap(), 0);
    }
}
