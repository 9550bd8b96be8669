//! Bundles: a directory with `config.json` and a rootfs holding the checker.
//!
//! The suite copies the fixture rootfs and the checker once into a template
//! (`<work>/template`), then gives every test case its own rootfs by cloning the
//! template with hard links, which is cheap and keeps cases apart (a case only
//! ever creates new files in its rootfs, it never rewrites template files).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::facts::{Facts, CHECKER_DIR};

/// Directories every case rootfs has, whatever the fixture holds.
const REQUIRED_DIRS: [&str; 7] = [
    "proc",
    "sys",
    "dev",
    "tmp",
    "etc",
    "mnt",
    "berth-conformance",
];

/// Builds the template rootfs at `dest` from `fixture` and the checker binary.
pub(crate) fn make_template(fixture: &Path, checker: &Path, dest: &Path) -> Result<()> {
    copy_tree(fixture, dest)
        .with_context(|| format!("copy rootfs {} to {}", fixture.display(), dest.display()))?;
    for dir in REQUIRED_DIRS {
        let path = dest.join(dir);
        if fs::symlink_metadata(&path).is_err() {
            fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        }
    }
    fs::set_permissions(dest.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    let checker_dir = dest.join(CHECKER_DIR.trim_start_matches('/'));
    fs::set_permissions(&checker_dir, fs::Permissions::from_mode(0o755))?;
    let target = checker_dir.join("berth-checker");
    fs::copy(checker, &target).with_context(|| format!("copy checker {}", checker.display()))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Builds a minimal rootfs from a statically linked busybox: the binary and
/// one symlink per applet. Used when no fixture rootfs exists.
pub(crate) fn make_busybox_rootfs(busybox: &Path, dest: &Path) -> Result<()> {
    if !super::elf::is_static(busybox)? {
        bail!(
            "{} is not statically linked (install busybox-static)",
            busybox.display()
        );
    }
    let bin = dest.join("bin");
    fs::create_dir_all(&bin)?;
    fs::copy(busybox, bin.join("busybox")).context("copy busybox")?;
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet.contains('/') || applet == "busybox" {
            continue;
        }
        let link = bin.join(applet);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    let etc = dest.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(etc.join("group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// Copies a directory tree: directories, regular files and symlinks (device
/// nodes and sockets are skipped; a rootfs fixture should not need them).
fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    let meta = fs::metadata(src)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&from, &to)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ty.is_file() {
            fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
        }
    }
    Ok(())
}

/// Clones `src` into `dest` with hard links for files.
fn link_tree(src: &Path, dest: &Path) -> Result<()> {
    fs::create_dir(dest).with_context(|| format!("create {}", dest.display()))?;
    let meta = fs::metadata(src)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            link_tree(&from, &to)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else {
            fs::hard_link(&from, &to).with_context(|| format!("link {}", from.display()))?;
        }
    }
    Ok(())
}

/// A bundle directory for one container.
#[derive(Debug)]
pub(crate) struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Creates `dir` with a rootfs cloned from `template`.
    pub(crate) fn new(template: &Path, dir: PathBuf) -> Result<Self> {
        fs::create_dir_all(&dir).with_context(|| format!("create bundle {}", dir.display()))?;
        let rootfs = dir.join("rootfs");
        link_tree(template, &rootfs)?;
        Ok(Self { dir, rootfs })
    }

    /// Writes `config.json` for the runtime and the checker's copies of it and
    /// of `facts`.
    pub(crate) fn write_spec(&self, spec: &Value, facts: &Facts) -> Result<()> {
        let text = serde_json::to_string_pretty(spec)?;
        fs::write(self.dir.join("config.json"), &text)?;
        let inner = self.rootfs.join(CHECKER_DIR.trim_start_matches('/'));
        let write = |name: &str, text: &str| -> Result<()> {
            let path = inner.join(name);
            // The template's files are shared hard links; never write through them.
            let _ = fs::remove_file(&path);
            fs::write(&path, text)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
            Ok(())
        };
        write("config.json", &text)?;
        write("facts.json", &serde_json::to_string_pretty(facts)?)?;
        Ok(())
    }

    /// A path inside the rootfs (`inner` is absolute in the container).
    pub(crate) fn rootfs_path(&self, inner: &str) -> PathBuf {
        self.rootfs.join(inner.trim_start_matches('/'))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn clone_links_files_and_keeps_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/busybox"), b"x").unwrap();
        std::os::unix::fs::symlink("busybox", src.join("bin/sh")).unwrap();
        let bundle = Bundle::new(&src, tmp.path().join("b")).unwrap();
        let a = fs::metadata(src.join("bin/busybox")).unwrap();
        let b = fs::metadata(bundle.rootfs.join("bin/busybox")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(
            fs::read_link(bundle.rootfs.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(bundle.rootfs_path("/bin/sh"), bundle.rootfs.join("bin/sh"));
    }
}
