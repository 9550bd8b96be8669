//! Linux security modules: AppArmor profiles and SELinux labels.
//!
//! The parent (still on the host, before any namespace) makes sure a profile the spec
//! names is loaded ([`prepare`]); the container's init asks the kernel to switch to the
//! profile or label on `execve` ([`apply_on_exec`]), after every file it needed from the
//! host was opened, so the runtime's own work is never confined by the container's
//! profile. Asking for a label on a kernel without that LSM is an error, not a silent
//! downgrade: a spec that asks for a protection it will not get must not start.

pub mod apparmor;
pub mod selinux;

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::Process;
use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};

/// Host-side preparation for `process`: loads Berth's default AppArmor profile if the
/// process asks for it and the kernel does not have it yet.
///
/// It also refuses, while the host's `/sys` is still in view, a profile or label the
/// kernel cannot enforce (inside the container `/sys` is the container's own, without
/// selinuxfs).
pub(crate) fn prepare(process: &Process) -> Result<()> {
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        if !apparmor::enabled() {
            return Err(Error::Unsupported(format!(
                "apparmorProfile {profile:?} is set but AppArmor is not enabled in this kernel"
            )));
        }
        apparmor::ensure_loaded(profile)?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        selinux::require_enabled("selinuxLabel", label)?;
    }
    Ok(())
}

/// Labels keyrings this thread creates from now on with the process's SELinux label, so
/// the container's session keyring carries its label (as runc and crun do).
pub(crate) fn label_keyrings(p: &Process) -> Result<()> {
    match p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        Some(label) => write_attr(&["/proc/thread-self/attr/keycreate"], label),
        None => Ok(()),
    }
}

/// Asks the kernel to put the next `execve` of this thread under the process's AppArmor
/// profile and SELinux label.
pub(crate) fn apply_on_exec(p: &Process) -> Result<()> {
    // prepare() checked on the host that the kernel has these LSMs.
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        if profile != "unconfined" {
            write_attr(
                &[
                    "/proc/thread-self/attr/apparmor/exec",
                    "/proc/thread-self/attr/exec",
                ],
                &format!("exec {profile}"),
            )?;
        }
    }
    if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        write_attr(&["/proc/thread-self/attr/exec"], label)?;
    }
    Ok(())
}

/// Writes an LSM attribute, after checking that the file really is on procfs.
fn write_attr(candidates: &[&str], value: &str) -> Result<()> {
    for path in candidates {
        let fd = match rustix::fs::open(
            *path,
            OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(Error::io("open", *path, e.into())),
        };
        crate::rootfs::verify_procfs(fd.as_fd(), Path::new(path))?;
        rustix::io::write(&fd, value.as_bytes()).map_err(|e| {
            Error::Lsm(format!(
                "setting {value:?} through {path}: {} (is the profile or label loaded?)",
                std::io::Error::from(e)
            ))
        })?;
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "no LSM attribute file among {candidates:?}"
    )))
}
