//! The device allow-list: OCI `linux.resources.devices` on cgroup v1 (`devices.allow`
//! and `devices.deny`) and on cgroup v2 (an eBPF program, see `berth_sys::DeviceProgram`).
//!
//! Both versions start from **deny everything** and apply the rules in order, so that
//! the last rule matching an access decides it. Rule semantics:
//!
//! * `type`: `a` (all), `b`, `c` (`u` is a character device too); `p` (FIFO) rules are
//!   skipped, the device controller does not cover FIFOs.
//! * `major`/`minor`: a number, or absent/-1 for any.
//! * `access`: letters of `rwm`; absent or empty means `rwm`.
//!
//! v1 only understands `a` as "every device, every access": a rule of type `a` with a
//! number or a partial access is written as one `b` and one `c` line, never as `a` (the
//! kernel would read `a 1:3 r` as "all devices"). The first write resets the cgroup to
//! deny-all (`a` into `devices.deny`) unless the rules start by allowing everything.
//! The kernel refuses that reset while the cgroup has children; if such a cgroup already
//! denies by default, the rules are applied on top of the existing exceptions. When the
//! resulting list would equal the current `devices.list`, nothing is written, so that an
//! `update` never opens a window without access to the container's devices.

use std::path::Path;

use berth_sys::{DeviceAccess, DeviceKind, DeviceProgram, DeviceRule};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};
use crate::fs;

/// Parse the OCI rules; `p` rules are dropped.
pub(crate) fn rules(list: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(list.len());
    for d in list {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::P => continue,
        };
        let number = |n: Option<i64>, what: &'static str| -> Result<Option<u32>> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => crate::values::device_number(what, n).map(Some),
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => DeviceAccess::ALL,
            Some(a) => {
                if a.len() > 3 || !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                    return Err(Error::InvalidResource {
                        resource: "devices.access",
                        value: a.chars().take(16).collect(),
                        reason: "only the letters r, w and m are allowed",
                    });
                }
                DeviceAccess {
                    read: a.contains('r'),
                    write: a.contains('w'),
                    mknod: a.contains('m'),
                }
            }
        };
        out.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: number(d.major(), "devices.major")?,
            minor: number(d.minor(), "devices.minor")?,
            access,
        });
    }
    Ok(out)
}

fn is_everything(r: &DeviceRule) -> bool {
    r.kind == DeviceKind::All
        && r.major.is_none()
        && r.minor.is_none()
        && r.access == DeviceAccess::ALL
}

fn access_str(a: DeviceAccess) -> String {
    let mut s = String::with_capacity(3);
    for (on, c) in [(a.read, 'r'), (a.write, 'w'), (a.mknod, 'm')] {
        if on {
            s.push(c);
        }
    }
    s
}

/// The v1 lines for one rule (see the module docs for type `a`).
pub(crate) fn v1_lines(r: &DeviceRule) -> Vec<String> {
    if is_everything(r) {
        return vec!["a".to_owned()];
    }
    let access = access_str(r.access);
    if access.is_empty() {
        return Vec::new();
    }
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
    let kinds: &[char] = match r.kind {
        DeviceKind::All => &['b', 'c'],
        DeviceKind::Block => &['b'],
        DeviceKind::Char => &['c'],
    };
    kinds
        .iter()
        .map(|k| format!("{k} {}:{} {access}", num(r.major), num(r.minor)))
        .collect()
}

/// What `devices.list` will show after applying `rules` from deny-all, when the result
/// denies by default (the list then shows every exception); `None` when the rules end
/// up allowing by default (the list then shows just `a *:* rwm`).
fn expected_list(rules: &[DeviceRule]) -> Option<Vec<String>> {
    // (type, major, minor, access bits) in insertion order, as the kernel keeps them.
    let mut exceptions: Vec<(char, String, u8)> = Vec::new();
    for r in rules {
        if is_everything(r) {
            if r.allow {
                return None;
            }
            exceptions.clear();
            continue;
        }
        for line in v1_lines(r) {
            let mut parts = line.split(' ');
            let (Some(kind), Some(nums), Some(acc)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let kind = kind.chars().next().unwrap_or('a');
            let bits = acc.chars().fold(0u8, |b, c| b | bit(c));
            match exceptions
                .iter_mut()
                .position(|(k, n, _)| *k == kind && n == nums)
            {
                Some(i) if r.allow => {
                    if let Some(e) = exceptions.get_mut(i) {
                        e.2 |= bits;
                    }
                }
                Some(i) => {
                    if let Some(e) = exceptions.get_mut(i) {
                        e.2 &= !bits;
                        if e.2 == 0 {
                            exceptions.remove(i);
                        }
                    }
                }
                None if r.allow => exceptions.push((kind, nums.to_owned(), bits)),
                None => {}
            }
        }
    }
    Some(
        exceptions
            .into_iter()
            .map(|(k, n, b)| {
                let acc: String = ['r', 'w', 'm']
                    .iter()
                    .filter(|c| b & bit(**c) != 0)
                    .collect();
                format!("{k} {n} {acc}")
            })
            .collect(),
    )
}

fn bit(c: char) -> u8 {
    match c {
        'r' => 1,
        'w' => 2,
        'm' => 4,
        _ => 0,
    }
}

fn has_child_cgroups(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        })
        .unwrap_or(false)
}

/// Apply `list` to the v1 devices cgroup at `dir`.
pub(crate) fn apply_v1(dir: &Path, list: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = rules(list)?;
    let current = fs::read(dir, "devices.list")?;
    let current: Vec<&str> = current
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(expected) = expected_list(&rules) {
        if current == expected {
            return Ok(());
        }
    }
    let starts_with_allow_all = rules.first().is_some_and(|r| r.allow && is_everything(r));
    if !starts_with_allow_all {
        let default_allow = current.contains(&"a *:* rwm");
        if default_allow || !has_child_cgroups(dir) {
            fs::write(dir, "devices.deny", "a")?;
        }
    }
    for r in &rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        for line in v1_lines(r) {
            fs::write(dir, file, &line)?;
        }
    }
    Ok(())
}

/// Compile `list` into an eBPF program and attach it to the v2 cgroup at `dir`,
/// replacing the previous one.
pub(crate) fn apply_v2(dir: &Path, list: &[LinuxDeviceCgroup]) -> Result<()> {
    let program = DeviceProgram::new(&rules(list)?);
    let fd = crate::manager::open_dir(dir)?;
    berth_sys::attach_device_program(std::os::fd::AsFd::as_fd(&fd), &program).map_err(|source| {
        Error::DeviceFilter {
            path: dir.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn oci(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn conversion() {
        let r = rules(&[
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::U, Some(1), Some(-1), ""),
            oci(true, LinuxDeviceType::P, None, None, "rwm"),
        ])
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1],
            DeviceRule {
                allow: true,
                kind: DeviceKind::Char,
                major: Some(1),
                minor: None,
                access: DeviceAccess::ALL
            }
        );
        assert!(rules(&[oci(true, LinuxDeviceType::C, Some(1), Some(3), "rx")]).is_err());
        assert!(rules(&[oci(true, LinuxDeviceType::C, Some(-2), Some(3), "r")]).is_err());
    }

    #[test]
    fn lines() {
        let r = rules(&[
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            oci(true, LinuxDeviceType::A, Some(5), None, "r"),
            oci(true, LinuxDeviceType::A, None, None, "m"),
        ])
        .unwrap();
        let all: Vec<Vec<String>> = r.iter().map(v1_lines).collect();
        assert_eq!(all[0], ["a"]);
        assert_eq!(all[1], ["c 1:3 rwm"]);
        assert_eq!(all[2], ["b 5:* r", "c 5:* r"]);
        assert_eq!(all[3], ["b *:* m", "c *:* m"]);
    }

    #[test]
    fn expected_lists() {
        let r = rules(&[
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rw"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "m"),
            oci(true, LinuxDeviceType::C, Some(1), Some(5), "r"),
            oci(false, LinuxDeviceType::C, Some(1), Some(5), "r"),
        ])
        .unwrap();
        assert_eq!(expected_list(&r).unwrap(), ["c 1:3 rwm"]);
        let r = rules(&[oci(true, LinuxDeviceType::A, None, None, "rwm")]).unwrap();
        assert_eq!(expected_list(&r), None);
    }

    fn fake_v1(list: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("devices.list"), list).unwrap();
        std::fs::write(d.path().join("devices.allow"), "").unwrap();
        std::fs::write(d.path().join("devices.deny"), "").unwrap();
        d
    }

    #[test]
    fn v1_apply_resets_then_allows() {
        let d = fake_v1("a *:* rwm\n");
        let list = [
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        ];
        apply_v1(d.path(), &list).unwrap();
        // Files in the fake keep only the last write.
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.deny")).unwrap(),
            "a"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.allow")).unwrap(),
            "c 1:3 rwm"
        );
    }

    #[test]
    fn v1_apply_without_leading_deny_still_resets() {
        let d = fake_v1("a *:* rwm\n");
        apply_v1(
            d.path(),
            &[oci(true, LinuxDeviceType::C, Some(1), Some(3), "r")],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.deny")).unwrap(),
            "a"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.allow")).unwrap(),
            "c 1:3 r"
        );
    }

    #[test]
    fn v1_apply_allow_all() {
        let d = fake_v1("c 1:3 rwm\n");
        apply_v1(
            d.path(),
            &[oci(true, LinuxDeviceType::A, None, None, "rwm")],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.deny")).unwrap(),
            ""
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.allow")).unwrap(),
            "a"
        );
    }

    #[test]
    fn v1_apply_unchanged_writes_nothing() {
        let d = fake_v1("c 1:3 rwm\nc 1:5 rwm\n");
        let list = [
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        ];
        apply_v1(d.path(), &list).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.deny")).unwrap(),
            ""
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("devices.allow")).unwrap(),
            ""
        );
    }
}
