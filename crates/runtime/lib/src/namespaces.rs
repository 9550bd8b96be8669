//! Joining namespaces and writing user-namespace ID maps.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use crate::error::{Error, Result};

fn link_type(typ: LinuxNamespaceType) -> LinkNameSpaceType {
    match typ {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

/// Join the namespace at `path`, checking it is of type `typ`.
pub(crate) fn join(typ: LinuxNamespaceType, path: &Path) -> Result<()> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open namespace", path, e.into()))?;
    rustix::thread::move_into_link_name_space(fd.as_fd(), Some(link_type(typ)))
        .map_err(|e| Error::io("setns", path, e.into()))
}

/// Render ID mappings as /proc/PID/uid_map content.
pub(crate) fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write the uid and gid maps of `pid`'s user namespace. As root, directly; otherwise
/// (rootless) through `newuidmap`/`newgidmap` when the maps are more than the caller's own
/// ID, after denying setgroups as the kernel requires for unprivileged gid maps.
pub(crate) fn write_id_maps(
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
) -> Result<()> {
    let euid = rustix::process::geteuid().as_raw();
    let own_only = |maps: &[LinuxIdMapping], id: u32| {
        maps.len() == 1 && maps.iter().all(|m| m.host_id() == id && m.size() == 1)
    };
    if euid != 0 {
        let egid = rustix::process::getegid().as_raw();
        if own_only(uid, euid) && own_only(gid, egid) {
            let setgroups = format!("/proc/{pid}/setgroups");
            std::fs::write(&setgroups, "deny").map_err(|e| Error::io("write", setgroups, e))?;
        } else {
            helper("newuidmap", pid, uid)?;
            helper("newgidmap", pid, gid)?;
            return Ok(());
        }
    }
    let path = format!("/proc/{pid}/uid_map");
    std::fs::write(&path, map_text(uid)).map_err(|e| Error::io("write", path, e))?;
    let path = format!("/proc/{pid}/gid_map");
    std::fs::write(&path, map_text(gid)).map_err(|e| Error::io("write", path, e))?;
    Ok(())
}

fn helper(name: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(name);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.arg(m.container_id().to_string())
            .arg(m.host_id().to_string())
            .arg(m.size().to_string());
    }
    let out = cmd.output().map_err(|e| Error::io("run", name, e))?;
    if !out.status.success() {
        return Err(Error::InvalidConfig(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A user namespace with the given ID maps, as a descriptor (for ID-mapped mounts). A
/// short-lived child creates it and waits while its maps are written and it is opened.
pub(crate) fn userns_with_maps(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("pipe", e))?;
    let args = berth_sys::CloneArgs {
        flags: berth_sys::NamespaceFlags::USER,
        ..Default::default()
    };
    match berth_sys::clone3(&args)? {
        berth_sys::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = rustix::io::read(&r, &mut b);
            std::process::exit(0)
        }
        berth_sys::Forked::Parent(pid) => {
            drop(r);
            let result = (|| {
                let uid_map = format!("/proc/{pid}/uid_map");
                std::fs::write(&uid_map, map_text(uid))
                    .map_err(|e| Error::io("write", uid_map, e))?;
                let gid_map = format!("/proc/{pid}/gid_map");
                std::fs::write(&gid_map, map_text(gid))
                    .map_err(|e| Error::io("write", gid_map, e))?;
                let ns = format!("/proc/{pid}/ns/user");
                rustix::fs::open(ns.as_str(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| Error::io("open", ns, e.into()))
            })();
            drop(w);
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
            result
        }
    }
}

/// For each entry of `mounts`: a user namespace when the entry is an `idmap`/`ridmap` bind
/// (with the entry's own mappings, else the container's), `None` otherwise.
pub(crate) fn idmap_userns_fds(spec: &Spec) -> Result<Vec<Option<OwnedFd>>> {
    let linux = spec.linux().clone().unwrap_or_default();
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let idmap = m
            .options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "idmap" || o == "ridmap");
        if !idmap {
            out.push(None);
            continue;
        }
        let uid = m
            .uid_mappings()
            .clone()
            .or_else(|| linux.uid_mappings().clone())
            .unwrap_or_default();
        let gid = m
            .gid_mappings()
            .clone()
            .or_else(|| linux.gid_mappings().clone())
            .unwrap_or_default();
        if uid.is_empty() || gid.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "idmap mount {} needs uidMappings and gidMappings",
                m.destination().display()
            )));
        }
        out.push(Some(userns_with_maps(&uid, &gid)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_rendering() {
        let m: LinuxIdMapping =
            serde_json::from_str(r#"{"containerID": 0, "hostID": 100000, "size": 65536}"#)
                .unwrap_or_default();
        assert_eq!(map_text(&[m]), "0 100000 65536\n");
    }
}
