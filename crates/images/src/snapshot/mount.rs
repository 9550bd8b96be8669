//! Performing the mounts a snapshotter describes.
//!
//! # Long layer chains
//!
//! An overlay of `n` layers names `n` directories. Passed as one `mount(2)` option string
//! they must fit in one page (4096 bytes, the kernel copies one page), and through the
//! new mount API each `fsconfig` string value is limited to 256 bytes — on Linux 6.1,
//! where overlayfs still parses a single legacy option string, that limit applies to
//! the whole `lowerdir=` value. With store paths like
//! `/var/lib/berth/images/snapshots/1234/fs` (about 40 bytes) a chain of 100 layers
//! already overflows the page. So [`mount`] does this:
//!
//! 1. It opens every layer directory (`O_PATH`), so each can be named by the short,
//!    fixed-size `/proc/self/fd/<n>` (at most ~19 bytes) instead of its path. The kernel
//!    follows that magic link to exactly the directory opened.
//! 2. New mount API first (`fsopen("overlay")`): each lower layer is added with its own
//!    `lowerdir+` value (Linux ≥ 6.8), so the chain length is limited only by overlayfs'
//!    own maximum of 500 lower layers. A path shorter than 256 bytes is passed as is (it
//!    stays readable in `/proc/self/mountinfo`); a longer one as `/proc/self/fd/<n>`.
//! 3. If the kernel does not know `lowerdir+` (`EINVAL`, Linux < 6.8) or the new API at
//!    all, it falls back to one `mount(2)` call: with the plain paths if the options fit
//!    in 4095 bytes, else with `/proc/self/fd/<n>` for every directory, which fits about
//!    210 layers; beyond that the mount fails with [`MountError::OptionsTooLong`].
//!
//! So 128+ layer chains work on every supported kernel and 500 on Linux ≥ 6.8. Layer
//! directories are short numeric ids (`<root>/snapshots/<id>/fs`), never digests.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    self as rmount, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
    UnmountFlags,
};

use super::error::MountError;
use super::{Mount, MountKind};

/// Most lower layers overlayfs stacks (`OVL_MAX_STACK`).
pub const MAX_LOWER_LAYERS: usize = 500;
/// Longest option string `mount(2)` accepts (one page, with its NUL).
const MAX_LEGACY_OPTIONS: usize = 4095;
/// Longest `fsconfig` string value (256 bytes with its NUL).
const MAX_FSCONFIG_VALUE: usize = 255;

/// Performs `mounts` on `target`, in order (later ones stack on earlier ones). If one
/// fails, those already made are unmounted again.
pub fn mount(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (i, m) in mounts.iter().enumerate() {
        let result = match m.kind {
            MountKind::Bind => mount_bind(m, target),
            MountKind::Overlay => mount_overlay(m, target, false),
        };
        if let Err(e) = result {
            for _ in 0..i {
                // Best effort: the original error is what the caller needs to see.
                let _ = rmount::unmount(target, UnmountFlags::NOFOLLOW);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts the top mount on `target` (call once per mount made).
pub fn unmount(target: &Path) -> Result<(), MountError> {
    rmount::unmount(target, UnmountFlags::NOFOLLOW).map_err(|e| MountError::Unmount {
        target: target.to_path_buf(),
        source: e.into(),
    })
}

/// The directory where writes to `mounts` land: the overlay's upper directory, or the
/// source of a writable bind mount. `None` for read-only mounts. Use it to unpack a
/// layer straight into a prepared snapshot.
pub fn writable_dir(mounts: &[Mount]) -> Option<PathBuf> {
    let m = mounts.last()?;
    match m.kind {
        MountKind::Overlay => m
            .options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .map(PathBuf::from),
        MountKind::Bind => (!m.options.iter().any(|o| o == "ro")).then(|| m.source.clone()),
    }
}

fn mount_err<'a>(kind: &'static str, target: &'a Path) -> impl Fn(Errno) -> MountError + 'a {
    move |e| MountError::Mount {
        kind,
        target: target.to_path_buf(),
        source: e.into(),
    }
}

fn mount_bind(m: &Mount, target: &Path) -> Result<(), MountError> {
    let err = mount_err("bind", target);
    if m.options.iter().any(|o| o == "rbind") {
        rmount::mount_bind_recursive(&m.source, target).map_err(&err)?;
    } else {
        rmount::mount_bind(&m.source, target).map_err(&err)?;
    }
    if m.options.iter().any(|o| o == "ro") {
        if let Err(e) = rmount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "") {
            let _ = rmount::unmount(target, UnmountFlags::NOFOLLOW);
            return Err(err(e));
        }
    }
    Ok(())
}

/// An overlay mount, parsed.
struct Overlay {
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    /// Other options: `key=value` or flags (`userxattr`).
    other: Vec<(String, Option<String>)>,
    read_only: bool,
}

fn invalid(reason: &'static str) -> MountError {
    MountError::Invalid {
        kind: "overlay",
        reason,
    }
}

fn check_path(p: &str) -> Result<PathBuf, MountError> {
    if p.is_empty() || !p.starts_with('/') {
        return Err(invalid("layer directories must be absolute paths"));
    }
    if p.contains([',', ':', '\\', '\n']) {
        return Err(invalid(
            "layer directory paths must not contain ',', ':' or '\\'",
        ));
    }
    Ok(PathBuf::from(p))
}

fn parse_overlay(m: &Mount) -> Result<Overlay, MountError> {
    let mut o = Overlay {
        lowers: Vec::new(),
        upper: None,
        work: None,
        other: Vec::new(),
        read_only: false,
    };
    for opt in &m.options {
        match opt.split_once('=') {
            Some(("lowerdir", v)) => {
                o.lowers = v.split(':').map(check_path).collect::<Result<_, _>>()?;
            }
            Some(("upperdir", v)) => o.upper = Some(check_path(v)?),
            Some(("workdir", v)) => o.work = Some(check_path(v)?),
            Some((k, v)) => o.other.push((k.to_owned(), Some(v.to_owned()))),
            None if opt == "ro" => o.read_only = true,
            None if opt == "rw" => {}
            None => o.other.push((opt.clone(), None)),
        }
    }
    if o.lowers.is_empty() {
        return Err(invalid("no lowerdir"));
    }
    if o.upper.is_some() != o.work.is_some() {
        return Err(invalid("upperdir and workdir go together"));
    }
    if o.lowers.len() > MAX_LOWER_LAYERS {
        return Err(MountError::TooManyLayers {
            count: o.lowers.len(),
            max: MAX_LOWER_LAYERS,
        });
    }
    for (k, v) in &o.other {
        if k.contains([',', '\n']) || v.as_deref().is_some_and(|v| v.contains([',', '\n'])) {
            return Err(invalid("options must not contain ','"));
        }
    }
    Ok(o)
}

/// A layer directory held open while mounting.
struct Layer {
    path: PathBuf,
    fd: OwnedFd,
}

impl Layer {
    fn open(path: &Path) -> Result<Layer, MountError> {
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| MountError::OpenLayer {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Layer {
            path: path.to_path_buf(),
            fd,
        })
    }

    fn fd_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }

    /// The path if it fits `max` bytes, else the `/proc/self/fd` path.
    fn name(&self, max: usize) -> String {
        match self.path.to_str() {
            Some(p) if p.len() <= max => p.to_owned(),
            _ => self.fd_path(),
        }
    }
}

pub(crate) fn mount_overlay(m: &Mount, target: &Path, legacy_only: bool) -> Result<(), MountError> {
    let o = parse_overlay(m)?;
    let lowers = o
        .lowers
        .iter()
        .map(|p| Layer::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let upper = o.upper.as_deref().map(Layer::open).transpose()?;
    let work = o.work.as_deref().map(Layer::open).transpose()?;
    if !legacy_only {
        match mount_new_api(&o, &lowers, upper.as_ref(), work.as_ref(), target) {
            Ok(()) => return Ok(()),
            // No new mount API, or no `lowerdir+`: fall back to mount(2).
            Err(Errno::NOSYS) | Err(Errno::INVAL) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(mount_err("overlay", target)(e)),
        }
    }
    mount_legacy(&o, &lowers, upper.as_ref(), work.as_ref(), target)
}

fn mount_new_api(
    o: &Overlay,
    lowers: &[Layer],
    upper: Option<&Layer>,
    work: Option<&Layer>,
    target: &Path,
) -> rustix::io::Result<()> {
    let fs = rmount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (k, v) in &o.other {
        match v {
            Some(v) => rmount::fsconfig_set_string(fs.as_fd(), k.as_str(), v.as_str())?,
            None => rmount::fsconfig_set_flag(fs.as_fd(), k.as_str())?,
        }
    }
    for l in lowers {
        rmount::fsconfig_set_string(fs.as_fd(), "lowerdir+", l.name(MAX_FSCONFIG_VALUE))?;
    }
    if let (Some(u), Some(w)) = (upper, work) {
        rmount::fsconfig_set_string(fs.as_fd(), "upperdir", u.name(MAX_FSCONFIG_VALUE))?;
        rmount::fsconfig_set_string(fs.as_fd(), "workdir", w.name(MAX_FSCONFIG_VALUE))?;
    }
    rmount::fsconfig_create(fs.as_fd())?;
    let attrs = if o.read_only {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rmount::fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    rmount::move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

fn legacy_options(
    o: &Overlay,
    lowers: &[Layer],
    upper: Option<&Layer>,
    work: Option<&Layer>,
    use_fds: bool,
) -> String {
    let name = |l: &Layer| {
        if use_fds {
            l.fd_path()
        } else {
            l.name(usize::MAX)
        }
    };
    let mut opts: Vec<String> = o
        .other
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    if let (Some(u), Some(w)) = (upper, work) {
        opts.push(format!("upperdir={}", name(u)));
        opts.push(format!("workdir={}", name(w)));
    }
    let lowerdir: Vec<String> = lowers.iter().map(name).collect();
    opts.push(format!("lowerdir={}", lowerdir.join(":")));
    opts.join(",")
}

fn mount_legacy(
    o: &Overlay,
    lowers: &[Layer],
    upper: Option<&Layer>,
    work: Option<&Layer>,
    target: &Path,
) -> Result<(), MountError> {
    let mut data = legacy_options(o, lowers, upper, work, false);
    if data.len() > MAX_LEGACY_OPTIONS {
        data = legacy_options(o, lowers, upper, work, true);
    }
    if data.len() > MAX_LEGACY_OPTIONS {
        return Err(MountError::OptionsTooLong {
            len: data.len(),
            max: MAX_LEGACY_OPTIONS,
        });
    }
    let data = CString::new(data).map_err(|_| invalid("options contain a NUL byte"))?;
    let flags = if o.read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    rmount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(mount_err("overlay", target))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Unmounts on drop, also when the test fails.
    struct Mounted<'a>(&'a Path);

    impl Drop for Mounted<'_> {
        fn drop(&mut self) {
            let _ = unmount(self.0);
        }
    }

    fn overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Mount {
        let mut options = vec!["index=off".to_owned()];
        if let Some((u, w)) = upper {
            options.push("redirect_dir=off".to_owned());
            options.push("metacopy=off".to_owned());
            options.push(format!("upperdir={}", u.display()));
            options.push(format!("workdir={}", w.display()));
        }
        let l: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        options.push(format!("lowerdir={}", l.join(":")));
        Mount {
            kind: MountKind::Overlay,
            source: PathBuf::from("overlay"),
            options,
        }
    }

    #[test]
    fn refuses_bad_descriptions() {
        let m = |opts: &[&str]| Mount {
            kind: MountKind::Overlay,
            source: PathBuf::from("overlay"),
            options: opts.iter().map(|s| s.to_string()).collect(),
        };
        assert!(parse_overlay(&m(&["index=off"])).is_err());
        assert!(parse_overlay(&m(&["lowerdir=relative"])).is_err());
        assert!(parse_overlay(&m(&["lowerdir=/a,b"])).is_err());
        assert!(parse_overlay(&m(&["lowerdir=/a", "upperdir=/u"])).is_err());
        let many = vec!["/l"; 501].join(":");
        assert!(matches!(
            parse_overlay(&m(&[&format!("lowerdir={many}")])),
            Err(MountError::TooManyLayers { .. })
        ));
        assert!(parse_overlay(&m(&["lowerdir=/a:/b", "userxattr", "ro"])).is_ok());
    }

    #[test]
    fn writable_dir_finds_the_upper() {
        let m = overlay(
            &[PathBuf::from("/l")],
            Some((Path::new("/u"), Path::new("/w"))),
        );
        assert_eq!(writable_dir(&[m]), Some(PathBuf::from("/u")));
        let ro = Mount {
            kind: MountKind::Bind,
            source: PathBuf::from("/s"),
            options: vec!["bind".into(), "ro".into()],
        };
        assert_eq!(writable_dir(&[ro]), None);
    }

    /// The mount(2) fallback with a chain whose paths overflow one page: the
    /// `/proc/self/fd` names make it fit.
    #[test]
    fn legacy_mount_of_a_long_chain_fits_one_page() {
        let tmp = tempfile::tempdir().unwrap();
        let long = "l".repeat(40);
        let mut lowers = Vec::new();
        for i in 0..150 {
            let d = tmp.path().join(format!("{long}{i:03}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join(format!("f{i}")), b"x").unwrap();
            lowers.push(d);
        }
        let (upper, work, target) = (
            tmp.path().join("upper"),
            tmp.path().join("work"),
            tmp.path().join("merged"),
        );
        for d in [&upper, &work, &target] {
            std::fs::create_dir(d).unwrap();
        }
        let m = overlay(&lowers, Some((&upper, &work)));
        let plain: usize = m.options.iter().map(|o| o.len() + 1).sum();
        assert!(plain > 4096, "test chain must overflow one page ({plain})");
        mount_overlay(&m, &target, true).unwrap();
        let _guard = Mounted(&target);
        for i in [0, 75, 149] {
            assert!(target.join(format!("f{i}")).exists());
        }
        std::fs::write(target.join("new"), b"y").unwrap();
        assert!(upper.join("new").exists());
    }

    /// The new mount API with layer paths longer than an `fsconfig` value allows.
    #[test]
    fn new_api_mount_with_long_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("d".repeat(200)).join("e".repeat(200));
        let lowers: Vec<PathBuf> = (0..3).map(|i| deep.join(format!("l{i}"))).collect();
        for (i, l) in lowers.iter().enumerate() {
            std::fs::create_dir_all(l).unwrap();
            std::fs::write(l.join(format!("f{i}")), b"x").unwrap();
        }
        let (upper, work, target) = (deep.join("u"), deep.join("w"), tmp.path().join("m"));
        for d in [&upper, &work, &target] {
            std::fs::create_dir(d).unwrap();
        }
        let m = overlay(&lowers, Some((&upper, &work)));
        mount(&[m], &target).unwrap();
        let _guard = Mounted(&target);
        for i in 0..3 {
            assert!(target.join(format!("f{i}")).exists());
        }
    }
}
