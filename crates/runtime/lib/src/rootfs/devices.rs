//! Device nodes and the standard links of the container's `/dev`.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use rustix::fs::{FileType, Mode, OFlags};

use crate::error::{Error, Result};
use crate::paths::{ensure_in_root, relative, Leaf};
use crate::rootfs::mounts::{attach, clone_tree};

/// A device to create: path, type, numbers, mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    pub path: PathBuf,
    pub typ: FileType,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (runtime-spec "Default Devices").
pub(crate) fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        typ: FileType::CharacterDevice,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Convert an OCI device entry.
pub(crate) fn from_spec(d: &LinuxDevice) -> Result<Device> {
    let typ = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        LinuxDeviceType::A => {
            return Err(Error::InvalidConfig(format!(
                "device {}: type 'a' is only valid in cgroup rules",
                d.path().display()
            )))
        }
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::InvalidConfig(format!(
            "device {} must be under /dev",
            d.path().display()
        )));
    }
    let num = |v: i64, what: &str| {
        u32::try_from(v).map_err(|_| {
            Error::InvalidConfig(format!(
                "device {}: bad {what} number {v}",
                d.path().display()
            ))
        })
    };
    Ok(Device {
        path: d.path().clone(),
        typ,
        major: num(d.major(), "major")?,
        minor: num(d.minor(), "minor")?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Create `dev` inside `root`: `mknod` normally, a bind of the host's node when the
/// container has a user namespace (where mknod is not permitted).
pub(crate) fn create(root: BorrowedFd<'_>, dev: &Device, bind: bool) -> Result<()> {
    let rel = relative(&dev.path);
    let parent = rel.parent().unwrap_or(Path::new("."));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::InvalidConfig(format!("bad device path {}", dev.path.display())))?;
    let parent_fd = ensure_in_root(root, parent, Leaf::Dir, 0o755)?;
    let dir = rustix::fs::openat(
        &parent_fd,
        ".",
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", parent, e.into()))?;
    if bind {
        let target = ensure_in_root(root, &dev.path, Leaf::File, 0o644)?;
        let tree = clone_tree(rustix::fs::CWD, &dev.path, false)?;
        return attach(tree.as_fd(), target.as_fd(), &dev.path);
    }
    let devno = rustix::fs::makedev(dev.major, dev.minor);
    let mode = Mode::from_raw_mode(dev.mode);
    match rustix::fs::mknodat(&dir, name, dev.typ, mode, devno) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {
            // An image may ship a placeholder; replace anything that is not a directory.
            rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty())
                .map_err(|e| Error::io("replace existing", &dev.path, e.into()))?;
            rustix::fs::mknodat(&dir, name, dev.typ, mode, devno)
                .map_err(|e| Error::io("mknod", &dev.path, e.into()))?;
        }
        Err(e) => return Err(Error::io("mknod", &dev.path, e.into())),
    }
    // mknod applies the umask; set the exact mode and owner without following links.
    rustix::fs::chmodat(&dir, name, mode, rustix::fs::AtFlags::empty())
        .map_err(|e| Error::io("chmod", &dev.path, e.into()))?;
    rustix::fs::chownat(
        &dir,
        name,
        Some(rustix::fs::Uid::from_raw(dev.uid)),
        Some(rustix::fs::Gid::from_raw(dev.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io("chown", &dev.path, e.into()))
}

/// `/dev/fd`, `/dev/stdin`, `/dev/stdout`, `/dev/stderr` and, when `/dev/pts` is mounted,
/// `/dev/ptmx`.
pub(crate) fn links(root: BorrowedFd<'_>, with_ptmx: bool) -> Result<()> {
    let dev = ensure_in_root(root, Path::new("/dev"), Leaf::Dir, 0o755)?;
    let dir = rustix::fs::openat(
        &dev,
        ".",
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", "/dev", e.into()))?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if with_ptmx {
        // Replace whatever is there (a device node from the image) with the link.
        let _ = rustix::fs::unlinkat(&dir, "ptmx", rustix::fs::AtFlags::empty());
        links.push(("ptmx", "pts/ptmx"));
    }
    for (name, target) in links {
        match rustix::fs::symlinkat(target, &dir, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::io("symlink", Path::new("/dev").join(name), e.into())),
        }
    }
    Ok(())
}

/// Verify an opened file is the character device `major:minor` (used before binding
/// `/dev/null` over masked paths).
pub(crate) fn is_char_device(fd: BorrowedFd<'_>, major: u32, minor: u32) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
            && rustix::fs::major(st.st_rdev) == major
            && rustix::fs::minor(st.st_rdev) == minor
    })
}

/// The device-cgroup rules a container gets on top of its configured ones: `mknod` of
/// any node (CAP_MKNOD still decides), the default devices, the pty devices, and every
/// device listed in `linux.devices`. Everything else stays denied.
pub(crate) fn cgroup_rules(
    configured: &[LinuxDeviceCgroup],
    devices: &[Device],
) -> Vec<LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let mut rules = configured.to_vec();
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        rules.push(rule(LinuxDeviceType::C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    for d in devices {
        let typ = match d.typ {
            FileType::BlockDevice => LinuxDeviceType::B,
            FileType::CharacterDevice => LinuxDeviceType::C,
            _ => continue,
        };
        rules.push(rule(
            typ,
            Some(i64::from(d.major)),
            Some(i64::from(d.minor)),
            "rwm",
        ));
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_devices() {
        let d = defaults();
        assert_eq!(d.len(), 6);
        assert!(d
            .iter()
            .any(|d| d.path == Path::new("/dev/null") && d.major == 1 && d.minor == 3));
        assert!(d.iter().all(|d| d.mode == 0o666));
    }

    #[test]
    fn cgroup_rules_keep_configured_first() {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".into()));
        let extra = Device {
            path: "/dev/fuse".into(),
            typ: FileType::CharacterDevice,
            major: 10,
            minor: 229,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let rules = cgroup_rules(std::slice::from_ref(&deny), &[extra]);
        assert!(!rules[0].allow());
        assert!(rules
            .iter()
            .any(|r| r.major() == Some(1) && r.minor() == Some(3) && r.allow()));
        let last = rules.last().map(|r| (r.major(), r.minor()));
        assert_eq!(last, Some((Some(10), Some(229))));
    }
}
