//! Checks of `root.readonly`, `mounts`, `linux.rootfsPropagation`,
//! `linux.maskedPaths`, `linux.readonlyPaths` and `linux.sysctl`.

use std::io::Read;

use oci_spec::runtime::Spec;

use super::read_bounded;
use crate::facts::Facts;
use crate::mountinfo::{self, MountInfo, Propagation};
use crate::tap::TapLine;

const EROFS: i32 = 30;

pub(super) fn check(spec: &Spec, facts: &Facts, out: &mut Vec<TapLine>) {
    let mounts = match mountinfo::read_self() {
        Ok(m) => m,
        Err(e) => {
            out.push(TapLine::fail("read /proc/self/mountinfo", e.to_string()));
            return;
        }
    };
    check_root(spec, &mounts, out);
    let id_maps = IdMaps::of(spec);
    for mount in spec.mounts().iter().flatten() {
        let dest = mount.destination().to_string_lossy().into_owned();
        let typ = mount.typ().clone().unwrap_or_default();
        let options = mount.options().clone().unwrap_or_default();
        check_mount(&mounts, &dest, &typ, &options, &id_maps, out);
    }
    let Some(linux) = spec.linux() else {
        return;
    };
    if let Some(prop) = linux.rootfs_propagation() {
        let mut want = propagation_of(prop);
        if want == Some(Propagation::Slave) && !facts.host_root_shared {
            // MS_SLAVE on a mount without peers leaves it private (mount(2)).
            want = Some(Propagation::Private);
        }
        let actual = mountinfo::find(&mounts, "/").map(MountInfo::propagation);
        match want {
            Some(want) => out.push(TapLine::check(
                actual == Some(want),
                format!("linux.rootfsPropagation {prop} applied to /"),
                format!("/ is {actual:?}"),
            )),
            None => out.push(TapLine::skip(
                format!("linux.rootfsPropagation {prop}"),
                "unknown value",
            )),
        }
    }
    for path in linux.masked_paths().iter().flatten() {
        out.push(check_masked(path));
    }
    for path in linux.readonly_paths().iter().flatten() {
        out.push(check_readonly(&mounts, path));
    }
    let mut sysctls: Vec<_> = linux.sysctl().iter().flatten().collect();
    sysctls.sort();
    for (key, want) in sysctls {
        let desc = format!("linux.sysctl {key} = {want}");
        if key.contains("..") || key.contains('/') {
            out.push(TapLine::fail(desc, "invalid key"));
            continue;
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        match read_bounded(&path) {
            Ok(actual) => {
                let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                out.push(TapLine::check(
                    norm(&actual) == norm(want),
                    desc,
                    format!("found {:?}", actual.trim()),
                ));
            }
            Err(e) => out.push(TapLine::fail(desc, format!("{path}: {e}"))),
        }
    }
}

fn check_root(spec: &Spec, mounts: &[MountInfo], out: &mut Vec<TapLine>) {
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let root = mountinfo::find(mounts, "/");
    let is_ro = root.is_some_and(|m| m.has_mount_option("ro"));
    out.push(TapLine::check(
        is_ro == readonly,
        format!(
            "root.readonly {readonly}: / is mounted {}",
            if readonly { "ro" } else { "rw" }
        ),
        format!("options {:?}", root.map(|m| m.mount_options.clone())),
    ));
    let uid = spec.process().as_ref().map_or(0, |p| p.user().uid());
    let userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    if uid != 0 || userns {
        return;
    }
    // Host root may write anywhere on a writable fs, so a write probe is meaningful.
    let probe = "/.berth-conformance-ro-probe";
    let res = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(probe);
    let desc = format!(
        "root.readonly {readonly}: creating a file in / {}",
        if readonly {
            "fails with EROFS"
        } else {
            "works"
        }
    );
    match res {
        Ok(_) => {
            let _ = std::fs::remove_file(probe);
            out.push(TapLine::check(!readonly, desc, "the file was created"));
        }
        Err(e) => {
            let errno = e.raw_os_error();
            out.push(TapLine::check(
                readonly && errno == Some(EROFS),
                desc,
                e.to_string(),
            ));
        }
    }
}

fn propagation_of(option: &str) -> Option<Propagation> {
    Some(match option {
        "private" | "rprivate" => Propagation::Private,
        "shared" | "rshared" => Propagation::Shared,
        "slave" | "rslave" => Propagation::Slave,
        "unbindable" | "runbindable" => Propagation::Unbindable,
        _ => return None,
    })
}

/// The spec's uid/gid mappings, to translate `uid=`/`gid=` mount options: the
/// kernel prints them as ids of the initial user namespace.
#[derive(Debug, Default)]
pub(crate) struct IdMaps {
    uid: Vec<(u32, u32, u32)>,
    gid: Vec<(u32, u32, u32)>,
}

impl IdMaps {
    fn of(spec: &Spec) -> Self {
        let Some(linux) = spec.linux() else {
            return Self::default();
        };
        let userns =
            linux.namespaces().iter().flatten().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none()
            });
        if !userns {
            return Self::default();
        }
        let conv = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            m.iter()
                .flatten()
                .map(|m| (m.container_id(), m.host_id(), m.size()))
                .collect()
        };
        Self {
            uid: conv(linux.uid_mappings()),
            gid: conv(linux.gid_mappings()),
        }
    }

    /// `key=value` with the id mapped to the host, when `key` is uid or gid
    /// and a mapping covers it.
    fn host_form(&self, option: &str) -> Option<String> {
        let (key, value) = option.split_once('=')?;
        let maps = match key {
            "uid" => &self.uid,
            "gid" => &self.gid,
            _ => return None,
        };
        let id: u32 = value.parse().ok()?;
        maps.iter()
            .find(|(c, _, size)| id >= *c && id - c < *size)
            .map(|(c, h, _)| format!("{key}={}", h + (id - c)))
    }
}

/// Strips leading zeros from octal-looking values so `mode=0620` matches the
/// kernel's `mode=620`.
fn normalize_data(option: &str) -> String {
    match option.split_once('=') {
        Some((key, value)) if matches!(key, "mode" | "ptmxmode") => {
            let trimmed = value.trim_start_matches('0');
            format!("{key}={}", if trimmed.is_empty() { "0" } else { trimmed })
        }
        _ => option.to_string(),
    }
}

fn check_mount(
    mounts: &[MountInfo],
    dest: &str,
    typ: &str,
    options: &[String],
    id_maps: &IdMaps,
    out: &mut Vec<TapLine>,
) {
    let Some(found) = mountinfo::find(mounts, dest) else {
        out.push(TapLine::fail(
            format!("mount {dest} exists"),
            "nothing is mounted there",
        ));
        return;
    };
    let is_bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    let is_cgroup = typ == "cgroup" || typ == "cgroup2";
    let type_ok = if is_bind || typ.is_empty() || typ == "none" {
        true
    } else if is_cgroup {
        // cgroup v1 is a tmpfs with one mount per hierarchy below it.
        matches!(found.fstype.as_str(), "cgroup" | "cgroup2" | "tmpfs")
    } else {
        found.fstype == typ
    };
    out.push(TapLine::check(
        type_ok,
        format!(
            "mount {dest} exists with type {}",
            if is_bind { "bind" } else { typ }
        ),
        format!("found type {}", found.fstype),
    ));
    // For cgroup v1 the flags apply to the hierarchy mounts below the tmpfs.
    let prefix = format!("{}/", mountinfo::normalize(dest));
    let targets: Vec<&MountInfo> = if is_cgroup && found.fstype == "tmpfs" {
        let children: Vec<&MountInfo> = mounts
            .iter()
            .filter(|m| m.mount_point.starts_with(&prefix))
            .collect();
        if children.is_empty() {
            vec![found]
        } else {
            children
        }
    } else {
        vec![found]
    };
    for option in options {
        let desc = format!("mount {dest} has option {option}");
        let flag = |name: &str| targets.iter().all(|m| m.has_mount_option(name));
        let no_flag = |name: &str| targets.iter().all(|m| !m.has_mount_option(name));
        let result = match option.as_str() {
            "ro" | "rw" | "nosuid" | "nodev" | "noexec" | "noatime" | "nodiratime" | "relatime" => {
                Some(flag(option))
            }
            "suid" => Some(no_flag("nosuid")),
            "dev" => Some(no_flag("nodev")),
            "exec" => Some(no_flag("noexec")),
            "strictatime" => Some(no_flag("noatime") && no_flag("relatime")),
            o => match propagation_of(o) {
                Some(want) => Some(found.propagation() == want),
                None if o.contains('=') && !is_cgroup => {
                    let key = o.split('=').next().unwrap_or("");
                    if matches!(
                        key,
                        "mode" | "ptmxmode" | "gid" | "uid" | "size" | "nr_inodes"
                    ) {
                        let want = normalize_data(o);
                        let present = found
                            .super_options
                            .iter()
                            .any(|s| s.starts_with(&format!("{key}=")));
                        // tmpfs does not print its default mode.
                        let default = !present && want == "mode=1777" && found.fstype == "tmpfs";
                        let host = id_maps.host_form(&want);
                        Some(
                            default
                                || found.super_options.iter().any(|s| {
                                    normalize_data(s) == want || Some(normalize_data(s)) == host
                                }),
                        )
                    } else {
                        None
                    }
                }
                None => None,
            },
        };
        // bind, rbind, newinstance and the like leave nothing to compare.
        if let Some(ok) = result {
            out.push(TapLine::check(
                ok,
                desc,
                format!(
                    "options {:?} super {:?}",
                    found.mount_options, found.super_options
                ),
            ));
        }
    }
}

fn check_masked(path: &str) -> TapLine {
    let desc = format!("linux.maskedPaths {path} is masked");
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return TapLine::pass(format!("{desc} (absent)"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return TapLine::pass(desc),
        Err(e) => return TapLine::fail(desc, e.to_string()),
    };
    if meta.is_dir() {
        match std::fs::read_dir(path) {
            Ok(mut entries) => {
                let first = entries.next().map(|e| e.map(|e| e.file_name()));
                TapLine::check(
                    first.is_none(),
                    desc,
                    format!("directory is not empty: {first:?}"),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => TapLine::pass(desc),
            Err(e) => TapLine::fail(desc, e.to_string()),
        }
    } else {
        let mut buf = [0u8; 16];
        match std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) {
            Ok(n) => TapLine::check(n == 0, desc, format!("read {n} bytes")),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => TapLine::pass(desc),
            Err(e) => TapLine::fail(desc, e.to_string()),
        }
    }
}

fn check_readonly(mounts: &[MountInfo], path: &str) -> TapLine {
    let desc = format!("linux.readonlyPaths {path} is read-only");
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return TapLine::pass(format!("{desc} (absent)"))
        }
        Err(e) => return TapLine::fail(desc, e.to_string()),
    };
    let Some(found) = mountinfo::find(mounts, path) else {
        return TapLine::fail(desc, "no mount at the path");
    };
    if !found.has_mount_option("ro") {
        return TapLine::fail(desc, format!("mounted with {:?}", found.mount_options));
    }
    if meta.is_file() {
        // Opening for writing on a read-only mount fails before anything is written.
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
            if e.raw_os_error() != Some(EROFS) && e.kind() != std::io::ErrorKind::PermissionDenied {
                return TapLine::fail(desc, format!("open for writing: {e}"));
            }
        } else {
            return TapLine::fail(desc, "opened for writing");
        }
    }
    TapLine::pass(desc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::tap::Status;

    const SAMPLE: &str = "\
65 43 254:0 /b/rootfs / ro,relatime - ext4 /dev/vda rw
67 65 0:41 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
68 67 0:42 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
72 65 0:45 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
73 72 0:29 /x /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
";

    fn run(dest: &str, typ: &str, options: &[&str]) -> Vec<TapLine> {
        let mounts = mountinfo::parse(SAMPLE);
        let options: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        check_mount(&mounts, dest, typ, &options, &IdMaps::default(), &mut out);
        out
    }

    #[test]
    fn matching_mounts_pass() {
        let out = run(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        );
        assert!(out.iter().all(|l| l.status == Status::Pass), "{out:?}");
        let out = run(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        );
        assert!(out.iter().all(|l| l.status == Status::Pass), "{out:?}");
        let out = run("/sys/fs/cgroup", "cgroup", &["nosuid", "ro", "relatime"]);
        assert!(out.iter().all(|l| l.status == Status::Pass), "{out:?}");
    }

    #[test]
    fn ids_are_mapped_to_the_host() {
        let maps = IdMaps {
            uid: vec![],
            gid: vec![(0, 200000, 65536)],
        };
        assert_eq!(maps.host_form("gid=5").as_deref(), Some("gid=200005"));
        assert_eq!(maps.host_form("uid=5"), None);
        assert_eq!(maps.host_form("mode=5"), None);
    }

    #[test]
    fn mismatches_fail() {
        let out = run("/dev", "proc", &["noexec", "mode=700"]);
        assert_eq!(
            out.iter().filter(|l| l.status == Status::Fail).count(),
            3,
            "{out:?}"
        );
        let out = run("/missing", "tmpfs", &[]);
        assert_eq!(out[0].status, Status::Fail);
    }
}
