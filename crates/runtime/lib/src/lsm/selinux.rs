//! SELinux: process labels (`process.selinuxLabel`) and mount labels
//! (`linux.mountLabel`).
//!
//! The process label is set for the next `execve` (see [`super::apply_on_exec`]). The
//! mount label becomes the `context=` option of every file system the runtime creates
//! for the container (tmpfs, devpts), so the container can use its own `/dev` and `/dev/shm`
//! under a policy that confines it to its label. Labelling
//! the root file system and volumes (`:z`/`:Z`) is the engine's job: it owns those files.

use crate::error::{Error, Result};

const ENFORCE: &str = "/sys/fs/selinux/enforce";

/// Whether SELinux is enabled (its file system is mounted).
pub fn enabled() -> bool {
    std::path::Path::new(ENFORCE).exists()
}

/// Fails clearly when a spec asks for an SELinux label on a kernel without SELinux.
pub(crate) fn require_enabled(what: &str, label: &str) -> Result<()> {
    if enabled() {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "{what} {label:?} is set but SELinux is not enabled in this kernel"
        )))
    }
}

/// Whether mounts of file system `typ` take the container's mount label (mqueue refuses
/// `context=`: its files take the policy's label for it, as with runc).
pub(crate) fn labels_fs(typ: &str) -> bool {
    matches!(typ, "tmpfs" | "devpts" | "shm")
}
