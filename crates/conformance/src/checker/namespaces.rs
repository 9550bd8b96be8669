//! Checks of `linux.namespaces` and the user namespace id mappings.

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::read_bounded;
use crate::facts::Facts;
use crate::tap::TapLine;

/// The namespaces the checker compares, by their `/proc/self/ns` name and the
/// spec's type name.
const KINDS: [(&str, LinuxNamespaceType); 8] = [
    ("pid", LinuxNamespaceType::Pid),
    ("net", LinuxNamespaceType::Network),
    ("mnt", LinuxNamespaceType::Mount),
    ("ipc", LinuxNamespaceType::Ipc),
    ("uts", LinuxNamespaceType::Uts),
    ("user", LinuxNamespaceType::User),
    ("cgroup", LinuxNamespaceType::Cgroup),
    ("time", LinuxNamespaceType::Time),
];

pub(super) fn check(spec: &Spec, facts: &Facts, out: &mut Vec<TapLine>) {
    let Some(linux) = spec.linux() else {
        return;
    };
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for (name, typ) in KINDS {
        let entry = namespaces.iter().find(|n| n.typ() == typ);
        let actual = crate::facts::inode_of(&format!("/proc/self/ns/{name}"));
        let Some(actual) = actual else {
            if entry.is_some() {
                out.push(TapLine::skip(
                    format!("{name} namespace as configured"),
                    format!("/proc/self/ns/{name} is not available"),
                ));
            }
            continue;
        };
        let host = facts.host_namespaces.get(name).copied();
        match (entry.map(|e| e.path().clone()), host) {
            (Some(Some(path)), _) => {
                let desc = format!("{name} namespace is the one at {}", path.display());
                match facts.joined_namespaces.get(name) {
                    Some(want) => out.push(TapLine::check(
                        actual == *want,
                        desc,
                        format!("inode {actual}, want {want}"),
                    )),
                    None => out.push(TapLine::skip(desc, "the driver did not record its inode")),
                }
            }
            (Some(None), Some(host)) => out.push(TapLine::check(
                actual != host,
                format!("{name} namespace is new"),
                format!("inode {actual} is the host's"),
            )),
            (None, Some(host)) => out.push(TapLine::check(
                actual == host,
                format!("{name} namespace is shared with the runtime (not in spec)"),
                format!("inode {actual}, runtime's {host}"),
            )),
            (_, None) => out.push(TapLine::skip(
                format!("{name} namespace as configured"),
                "the driver did not record the host inode",
            )),
        }
    }
    if namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        check_mappings("uid", linux.uid_mappings().as_deref(), out);
        check_mappings("gid", linux.gid_mappings().as_deref(), out);
    }
}

fn check_mappings(kind: &str, want: Option<&[LinuxIdMapping]>, out: &mut Vec<TapLine>) {
    let desc = format!("linux.{kind}Mappings are in effect");
    let Some(want) = want else {
        return;
    };
    let text = match read_bounded(&format!("/proc/self/{kind}_map")) {
        Ok(text) => text,
        Err(e) => {
            out.push(TapLine::fail(desc, e.to_string()));
            return;
        }
    };
    let mut actual: Vec<[u32; 3]> = text
        .lines()
        .filter_map(|l| {
            let n: Vec<u32> = l
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            <[u32; 3]>::try_from(n).ok()
        })
        .collect();
    let mut wanted: Vec<[u32; 3]> = want
        .iter()
        .map(|m| [m.container_id(), m.host_id(), m.size()])
        .collect();
    actual.sort_unstable();
    wanted.sort_unstable();
    out.push(TapLine::check(
        actual == wanted,
        desc,
        format!("{kind}_map {actual:?}, want {wanted:?}"),
    ));
}
