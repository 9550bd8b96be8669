//! Checks of the default devices, the `/dev` symlinks and `linux.devices`.

use oci_spec::runtime::{LinuxDeviceType, Spec};
use rustix::fs::FileType;

use crate::tap::TapLine;

/// The devices every Linux container gets (runtime-spec config-linux.md).
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The symlinks every Linux container gets.
const DEFAULT_LINKS: [(&str, &str); 4] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

pub(super) fn check(spec: &Spec, out: &mut Vec<TapLine>) {
    for (path, major, minor) in DEFAULT_DEVICES {
        let desc = format!("default device {path} is char {major}:{minor} mode rw-rw-rw-");
        match rustix::fs::stat(path) {
            Ok(st) => {
                let ty = FileType::from_raw_mode(st.st_mode);
                let (maj, min) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                let perms = st.st_mode & 0o777;
                out.push(TapLine::check(
                    ty == FileType::CharacterDevice
                        && maj == major
                        && min == minor
                        && perms & 0o666 == 0o666,
                    desc,
                    format!("found {ty:?} {maj}:{min} mode {perms:o}"),
                ));
            }
            Err(e) => out.push(TapLine::fail(desc, e.to_string())),
        }
    }
    for (path, target) in DEFAULT_LINKS {
        let actual = std::fs::read_link(path);
        out.push(TapLine::check(
            actual.as_ref().is_ok_and(|t| t.as_os_str() == target),
            format!("{path} is a symlink to {target}"),
            format!("found {actual:?}"),
        ));
    }
    check_ptmx(out);
    if let Some(linux) = spec.linux() {
        for dev in linux.devices().iter().flatten() {
            let path = dev.path().to_string_lossy().into_owned();
            out.push(check_device(
                &path,
                dev.typ(),
                dev.major(),
                dev.minor(),
                dev.file_mode(),
                dev.uid(),
                dev.gid(),
            ));
        }
    }
}

fn check_ptmx(out: &mut Vec<TapLine>) {
    let desc = "/dev/ptmx is the container's /dev/pts/ptmx";
    if let Ok(target) = std::fs::read_link("/dev/ptmx") {
        let ok = target.as_os_str() == "pts/ptmx" || target.as_os_str() == "/dev/pts/ptmx";
        out.push(TapLine::check(
            ok,
            desc,
            format!("symlink to {}", target.display()),
        ));
        return;
    }
    // A bind mount of /dev/pts/ptmx is also allowed.
    let a = rustix::fs::stat("/dev/ptmx");
    let b = rustix::fs::stat("/dev/pts/ptmx");
    let same = match (&a, &b) {
        (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
        _ => false,
    };
    out.push(TapLine::check(
        same,
        desc,
        "neither a symlink nor the same inode",
    ));
}

fn check_device(
    path: &str,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> TapLine {
    let desc = format!("linux.devices {path} is {} {major}:{minor}", typ.as_str());
    let st = match rustix::fs::lstat(path) {
        Ok(st) => st,
        Err(e) => return TapLine::fail(desc, e.to_string()),
    };
    let ty = FileType::from_raw_mode(st.st_mode);
    let want_ty = match typ {
        LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        LinuxDeviceType::A => return TapLine::fail(desc, "type a is not valid for a device node"),
    };
    let mut problems = Vec::new();
    if ty != want_ty {
        problems.push(format!("type {ty:?}"));
    }
    if want_ty != FileType::Fifo {
        let (maj, min) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
        if i64::from(maj) != major || i64::from(min) != minor {
            problems.push(format!("number {maj}:{min}"));
        }
    }
    if let Some(mode) = mode {
        if st.st_mode & 0o7777 != mode & 0o7777 {
            problems.push(format!(
                "mode {:o} want {:o}",
                st.st_mode & 0o7777,
                mode & 0o7777
            ));
        }
    }
    if let Some(uid) = uid {
        if st.st_uid != uid {
            problems.push(format!("uid {} want {uid}", st.st_uid));
        }
    }
    if let Some(gid) = gid {
        if st.st_gid != gid {
            problems.push(format!("gid {} want {gid}", st.st_gid));
        }
    }
    TapLine::check(problems.is_empty(), desc, problems.join(", "))
}
