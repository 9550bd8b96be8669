//! Layer application, diff and usage on real directories (run as root: ownership,
//! device nodes and `trusted.*` attributes need it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_images::digest::Digest;
use berth_images::layer::{
    self, apply, decompress, diff, ApplyOptions, Compression, DeviceNodes, DiffOptions, LayerError,
    LimitKind, Limits,
};
use support::tarball::{self, header, Tar};
use tar::EntryType;

// ---------------------------------------------------------------------------------------
// A layer directory with a sentinel directory beside it: nothing may ever appear there.

struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    sentinel: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = support::tmpdir("layer");
        let root = tmp.path().join("root");
        let sentinel = tmp.path().join("sentinel");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&sentinel).unwrap();
        Sandbox {
            _tmp: tmp,
            root,
            sentinel,
        }
    }

    fn apply(&self, tar: &[u8]) -> Result<layer::ApplyStats, LayerError> {
        apply(&self.root, tar, &ApplyOptions::default())
    }

    fn apply_with(
        &self,
        tar: impl Read,
        options: &ApplyOptions,
    ) -> Result<layer::ApplyStats, LayerError> {
        apply(&self.root, tar, options)
    }

    /// Nothing next to the root, nothing in its parent but root and sentinel.
    fn assert_contained(&self) {
        assert_eq!(
            fs::read_dir(&self.sentinel).unwrap().count(),
            0,
            "sentinel touched"
        );
        let mut around: Vec<String> = fs::read_dir(self.root.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        around.sort();
        assert_eq!(around, ["root", "sentinel"]);
    }
}

fn lstat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn is_whiteout(p: &Path) -> bool {
    let m = lstat(p);
    m.file_type().is_char_device() && m.rdev() == 0
}

// ---------------------------------------------------------------------------------------

#[test]
fn applies_every_entry_type_with_metadata() {
    let s = Sandbox::new();
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(200));
    let pax_name = format!("{}p", "p/".repeat(999));
    let cap = [
        1u8, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let tar = Tar::new()
        .dir("./", 0o755)
        .dir("bin", 0o755)
        .file_with("bin/su", b"#!", 0o4755, 0, 0)
        .file_with("bin/owned", b"data", 0o640, 1234, 5678)
        .dir("tmp", 0o1777)
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/su2", "bin/su")
        .device("dev/null", EntryType::Char, 1, 3)
        .device("dev/sda", EntryType::Block, 8, 0)
        .raw(header(EntryType::Fifo, 0o600, 0), b"run/fifo", None, b"")
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.security.selinux", b"system_u:object_r:bin_t"),
        ])
        .file("bin/ping", b"elf")
        .file(&long_name, b"long")
        .pax(&[("path", pax_name.as_bytes()), ("mtime", b"1234567890.5")])
        .file("ignored-name", b"pax")
        .bytes();
    let stats = s.apply(&tar).unwrap();
    s.assert_contained();
    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
    assert_eq!(stats.input_bytes, tar.len() as u64);
    assert_eq!(stats.entries, 13);
    assert_eq!(stats.xattrs_skipped, 2);

    let r = &s.root;
    assert_eq!(lstat(&r.join("bin/su")).mode() & 0o7777, 0o4755);
    assert_eq!(lstat(&r.join("tmp")).mode() & 0o7777, 0o1777);
    let owned = lstat(&r.join("bin/owned"));
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1234, 5678, 0o640)
    );
    assert_eq!(
        fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        lstat(&r.join("bin/su2")).ino(),
        lstat(&r.join("bin/su")).ino()
    );
    let null = lstat(&r.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(lstat(&r.join("dev/sda")).file_type().is_block_device());
    assert!(lstat(&r.join("run/fifo")).file_type().is_fifo());
    let ping = r.join("bin/ping");
    assert_eq!(xattr(&ping, "user.comment").unwrap(), b"hello");
    assert_eq!(xattr(&ping, "security.capability").unwrap(), cap);
    assert!(xattr(&ping, "trusted.overlay.redirect").is_none());
    assert_eq!(fs::read(r.join(&long_name)).unwrap(), b"long");
    let pax_path = r.join(&pax_name);
    assert_eq!(fs::read(&pax_path).unwrap(), b"pax");
    assert_eq!(lstat(&pax_path).mtime(), 1_234_567_890);
    assert_eq!(lstat(&pax_path).mtime_nsec(), 500_000_000);
    // Directory times are set after their contents were written.
    assert_eq!(lstat(&r.join("bin")).mtime(), 1_600_000_000);
    assert_eq!(lstat(r).mtime(), 1_600_000_000);
    // Parents the tar implies are created.
    assert!(lstat(&r.join("dev")).is_dir());
}

#[test]
fn whiteouts_and_opaque_directories_become_overlay_metadata() {
    let s = Sandbox::new();
    let tar = Tar::new()
        .dir("etc", 0o755)
        .file("etc/.wh.passwd", b"")
        .dir("var/cache", 0o755)
        .file("var/cache/.wh..wh..opq", b"")
        .file("var/cache/kept", b"k")
        .file(".wh..wh.plnk", b"")
        .file("gone-dir/x", b"x")
        .file(".wh.gone-dir", b"")
        .bytes();
    s.apply(&tar).unwrap();
    s.assert_contained();
    assert!(is_whiteout(&s.root.join("etc/passwd")));
    assert!(is_whiteout(&s.root.join("gone-dir")));
    assert_eq!(
        xattr(&s.root.join("var/cache"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    assert!(s.root.join("var/cache/kept").exists());
    assert!(!s.root.join(".wh..wh.plnk").exists());
    assert!(!s.root.join("var/cache/.wh..wh..opq").exists());
}

#[test]
fn refuses_dotdot_and_keeps_absolute_names_inside() {
    let s = Sandbox::new();
    for name in [&b"../sentinel/evil"[..], b"a/../../sentinel/evil", b"./.."] {
        let tar = Tar::new()
            .raw(header(EntryType::Regular, 0o644, 1), name, None, b"x")
            .bytes();
        let err = s.apply(&tar).unwrap_err();
        assert!(matches!(err, LayerError::UnsafePath { .. }), "{err}");
        assert_eq!(
            berth_errdefs::HasKind::kind(&err),
            berth_errdefs::ErrorKind::InvalidArgument
        );
    }
    let abs = format!("{}/evil", s.sentinel.display());
    let tar = Tar::new()
        .raw(
            header(EntryType::Regular, 0o644, 1),
            abs.as_bytes(),
            None,
            b"x",
        )
        .bytes();
    s.apply(&tar).unwrap();
    assert!(s.root.join(abs.trim_start_matches('/')).exists());
    s.assert_contained();
}

#[test]
fn never_writes_through_symlinks_out_of_the_root() {
    let s = Sandbox::new();
    let out = s.sentinel.display().to_string();
    // `a -> <sentinel>`: a later `a/evil` must not land in the sentinel.
    let tar = Tar::new().symlink("a", &out).file("a/evil", b"x").bytes();
    let err = s.apply(&tar).unwrap_err();
    assert!(err.to_string().contains("a/evil"), "{err}");
    s.assert_contained();

    // Symlinks to `/` and `..` chains resolve to the layer root.
    let tar = Tar::new()
        .symlink("b", "/")
        .file("b/evil-b", b"x")
        .dir("d", 0o755)
        .symlink("d/up", "../../../../../../..")
        .file("d/up/evil-up", b"x")
        .symlink("c", "d/up/../..")
        .file("c/evil-c", b"x")
        .bytes();
    s.apply(&tar).unwrap();
    for f in ["evil-b", "evil-up", "evil-c"] {
        assert!(s.root.join(f).exists(), "{f}");
    }
    s.assert_contained();

    // The final component is replaced, never followed.
    let target = s.sentinel.join("target");
    let tar = Tar::new()
        .symlink("l", &target.display().to_string())
        .file("l", b"replaced")
        .symlink("ld", &out)
        .dir("ld", 0o755)
        .bytes();
    s.apply(&tar).unwrap();
    assert!(lstat(&s.root.join("l")).is_file());
    assert!(lstat(&s.root.join("ld")).is_dir());
    s.assert_contained();
}

#[test]
fn hard_links_stay_inside_the_layer() {
    let passwd_before = fs::read("/etc/passwd").unwrap();
    let nlink_before = lstat(Path::new("/etc/passwd")).nlink();
    let s = Sandbox::new();
    for target in [
        &b"/etc/passwd"[..],
        b"../../../../etc/passwd",
        b"./",
        b"missing",
    ] {
        let tar = Tar::new()
            .raw(header(EntryType::Link, 0o644, 0), b"h", Some(target), b"")
            .bytes();
        let err = s.apply(&tar).unwrap_err();
        assert!(
            matches!(err, LayerError::UnsafeLink { .. }),
            "{target:?}: {err}"
        );
    }
    // A hard link to a directory.
    let tar = Tar::new().dir("dir", 0o755).hardlink("h", "dir").bytes();
    let err = s.apply(&tar).unwrap_err();
    assert!(matches!(err, LayerError::UnsafeLink { .. }), "{err}");

    // A hard link to a symlink pointing out links the symlink itself; writing the link
    // name afterwards replaces it.
    let tar = Tar::new()
        .symlink("s", "/etc/passwd")
        .hardlink("h2", "s")
        .bytes();
    s.apply(&tar).unwrap();
    let h2 = lstat(&s.root.join("h2"));
    assert!(h2.file_type().is_symlink());
    assert_eq!(h2.ino(), lstat(&s.root.join("s")).ino());
    let tar = Tar::new().file("h2", b"pwned").bytes();
    s.apply(&tar).unwrap();
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd_before);
    assert_eq!(lstat(Path::new("/etc/passwd")).nlink(), nlink_before);
    s.assert_contained();
}

#[test]
fn device_nodes_follow_the_policy() {
    let s = Sandbox::new();
    let tar = Tar::new()
        .device("dev/mem", EntryType::Char, 1, 1)
        .raw(header(EntryType::Fifo, 0o600, 0), b"fifo", None, b"")
        .file(".wh.x", b"")
        .bytes();
    let refuse = ApplyOptions {
        devices: DeviceNodes::Refuse,
        ..ApplyOptions::default()
    };
    let err = s.apply_with(&tar[..], &refuse).unwrap_err();
    assert!(matches!(err, LayerError::DeviceNotAllowed { .. }), "{err}");
    assert!(!s.root.join("dev/mem").exists());
    let skip = ApplyOptions {
        devices: DeviceNodes::Skip,
        ..ApplyOptions::default()
    };
    let stats = s.apply_with(&tar[..], &skip).unwrap();
    assert_eq!(stats.devices_skipped, 1);
    assert!(fs::symlink_metadata(s.root.join("dev/mem")).is_err());
    // FIFOs and whiteouts are not devices.
    assert!(lstat(&s.root.join("fifo")).file_type().is_fifo());
    assert!(is_whiteout(&s.root.join("x")));
    s.assert_contained();
}

#[test]
fn bounds_sizes_entries_and_input() {
    let s = Sandbox::new();
    // Applies `tar` (or `stream`) with `limits`: refused at the limit `kind`.
    let refused = |tar: &[u8], limits: Limits, kind: LimitKind| {
        let options = ApplyOptions {
            limits,
            ..ApplyOptions::default()
        };
        let err = s.apply_with(tar, &options).unwrap_err();
        assert!(
            matches!(err, LayerError::Limit { limit, .. } if limit == kind),
            "{kind:?}: {err}"
        );
    };
    let endless = |entry_size: u64, limits: Limits| {
        let options = ApplyOptions {
            limits,
            ..ApplyOptions::default()
        };
        s.apply_with(Endless::new(entry_size), &options)
            .unwrap_err()
    };

    // A declared size far beyond the limit, with no data behind it: refused up front.
    let mut h = header(EntryType::Regular, 0o644, 0);
    h.set_size(1 << 40);
    let tar = Tar::new().raw(h, b"huge", None, b"").bytes();
    let max_bytes = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    refused(&tar, max_bytes, LimitKind::Bytes);

    // An endless stream of tiny entries stops at the entry limit…
    let few = Limits {
        max_entries: 1000,
        ..Limits::default()
    };
    let err = endless(0, few);
    assert!(
        matches!(
            err,
            LayerError::Limit {
                limit: LimitKind::Entries,
                value: 1001,
                ..
            }
        ),
        "{err}"
    );
    // … and an endless file at the input limit.
    let tight = Limits {
        max_input_bytes: 4 << 20,
        ..Limits::default()
    };
    let err = endless(1 << 30, tight);
    assert!(
        matches!(
            err,
            LayerError::Limit {
                limit: LimitKind::InputBytes,
                ..
            }
        ),
        "{err}"
    );
    // A huge PAX header and a huge GNU long name are refused before being read.
    for (kind, name, limit) in [
        (EntryType::XHeader, &b"pax"[..], LimitKind::PaxHeaderSize),
        (
            EntryType::GNULongName,
            b"././@LongLink",
            LimitKind::PathLength,
        ),
    ] {
        let mut h = header(kind, 0o644, 0);
        h.set_size(1 << 30);
        let tar = Tar::new().raw(h, name, None, b"").bytes();
        refused(&tar, Limits::default(), limit);
    }
    // Too many xattrs on one entry.
    let many: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("SCHILY.xattr.user.k{i}"), b"v".to_vec()))
        .collect();
    let records: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let tar = Tar::new().pax(&records).file("f", b"").bytes();
    refused(&tar, Limits::default(), LimitKind::XattrCount);
    s.assert_contained();
}

/// An endless tar stream: entry after entry, each with `size` bytes of zeros.
struct Endless {
    size: u64,
    buf: Vec<u8>,
    pos: usize,
    n: u64,
    /// Bytes of contents still to produce for the current entry.
    data_left: u64,
}

impl Endless {
    fn new(size: u64) -> Endless {
        Endless {
            size,
            buf: Vec::new(),
            pos: 0,
            n: 0,
            data_left: 0,
        }
    }
}

impl Read for Endless {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.data_left > 0 {
                let n = self.data_left.min(out.len() as u64) as usize;
                out[..n].fill(0);
                self.data_left -= n as u64;
                return Ok(n);
            }
            let mut h = header(EntryType::Regular, 0o644, self.size);
            h.set_path(format!("f{}", self.n)).unwrap();
            h.set_cksum();
            self.n += 1;
            self.buf = h.as_bytes().to_vec();
            self.pos = 0;
            self.data_left = self.size.div_ceil(512) * 512;
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn later_entries_win() {
    let s = Sandbox::new();
    let tar = Tar::new()
        .file("f", b"first")
        .file("f", b"second")
        .dir("d", 0o700)
        .file("d/a", b"a")
        .dir("d", 0o755)
        .file("d/b", b"b")
        .dir("x", 0o755)
        .file("x/inner", b"i")
        .file("x", b"file over dir")
        .file("y", b"file")
        .dir("y", 0o711)
        .file("y/z", b"z")
        .bytes();
    s.apply(&tar).unwrap();
    let r = &s.root;
    assert_eq!(fs::read(r.join("f")).unwrap(), b"second");
    assert!(r.join("d/a").exists() && r.join("d/b").exists());
    assert_eq!(lstat(&r.join("d")).mode() & 0o777, 0o755);
    assert_eq!(fs::read(r.join("x")).unwrap(), b"file over dir");
    assert_eq!(lstat(&r.join("y")).mode() & 0o777, 0o711);
    assert!(r.join("y/z").exists());
    // A layer that replaces the layer root with a file is refused.
    let tar = Tar::new()
        .raw(header(EntryType::Regular, 0o644, 0), b"./", None, b"")
        .bytes();
    let err = s.apply(&tar).unwrap_err();
    assert!(matches!(err, LayerError::UnsafePath { .. }), "{err}");
    s.assert_contained();
}

#[test]
fn truncated_and_garbage_streams_are_errors() {
    let s = Sandbox::new();
    let tar = Tar::new().file("f", &[7u8; 4000]).bytes();
    for cut in [100, 512, 1000, 3000] {
        let err = s.apply(&tar[..cut]).unwrap_err();
        assert!(matches!(err, LayerError::Truncated { .. }), "{cut}: {err}");
    }
    let mut bad = tar.clone();
    bad[0] ^= 0xff;
    let err = s.apply(&bad).unwrap_err();
    assert!(matches!(err, LayerError::Header { .. }), "{err}");
    s.assert_contained();
}

#[test]
fn applies_compressed_layers() {
    let s = Sandbox::new();
    let tar = Tar::new().file("hello", b"world").bytes();
    let gz = tarball::gzip(&tar);
    let reader = decompress(&gz[..], Compression::detect(&gz)).unwrap();
    let stats = apply(&s.root, reader, &ApplyOptions::default()).unwrap();
    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
    assert_eq!(fs::read(s.root.join("hello")).unwrap(), b"world");
}

// ---------------------------------------------------------------------------------------
// diff

/// Everything about a tree that a layer carries, for comparison.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let p = root.join(&rel);
            let m = lstat(&p);
            let ft = m.file_type();
            let what = if ft.is_dir() {
                stack.push(rel.clone());
                "dir".to_owned()
            } else if ft.is_symlink() {
                format!("symlink {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let first = inodes
                    .entry(m.ino())
                    .or_insert_with(|| rel.display().to_string());
                format!("file {:?} link-group {first}", fs::read(&p).unwrap())
            } else if ft.is_char_device() {
                format!("char {}", m.rdev())
            } else if ft.is_block_device() {
                format!("block {}", m.rdev())
            } else {
                "fifo".to_owned()
            };
            let mut attrs = Vec::new();
            for name in ["user.a", "security.capability", "trusted.overlay.opaque"] {
                if let Some(v) = xattr(&p, name) {
                    attrs.push(format!("{name}={v:?}"));
                }
            }
            out.insert(
                rel.display().to_string(),
                format!(
                    "{what} mode {:o} owner {}:{} mtime {} {}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    if ft.is_symlink() { 0 } else { m.mtime() },
                    attrs.join(",")
                ),
            );
        }
    }
    out
}

/// Builds by hand what overlayfs leaves in a container's upper directory.
fn make_upper(upper: &Path) {
    use std::os::unix::fs::{chown, symlink};
    fs::create_dir_all(upper.join("etc/sub")).unwrap();
    fs::write(upper.join("etc/hosts"), b"127.0.0.1 x").unwrap();
    chown(upper.join("etc/hosts"), Some(1000), Some(2000)).unwrap();
    fs::set_permissions(upper.join("etc/hosts"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::hard_link(upper.join("etc/hosts"), upper.join("etc/sub/hosts-link")).unwrap();
    symlink("../hosts", upper.join("etc/sub/up")).unwrap();
    let dir = rustix::fs::open(upper, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty()).unwrap();
    rustix::fs::mknodat(
        &dir,
        "etc/deleted",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        &dir,
        "fifo",
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        &dir,
        "tty",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o620),
        rustix::fs::makedev(5, 0),
    )
    .unwrap();
    fs::create_dir(upper.join("opaque")).unwrap();
    fs::write(upper.join("opaque/new"), b"n").unwrap();
    rustix::fs::setxattr(
        upper.join("opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        upper.join("etc/hosts"),
        "user.a",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let long = upper.join("l".repeat(200));
    fs::write(&long, b"long").unwrap();
    // Times last, children before parents.
    for p in [
        "etc/hosts",
        "etc/sub/up",
        "etc/deleted",
        "fifo",
        "tty",
        "opaque/new",
        &"l".repeat(200),
        "etc/sub",
        "etc",
        "opaque",
    ] {
        let t = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_500_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_500_000_000,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(&dir, p, &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
}

#[test]
fn diff_round_trips_through_apply() {
    let tmp = support::tmpdir("diff");
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).unwrap();
    make_upper(&upper);

    let mut tar = Vec::new();
    let stats = diff(&upper, &mut tar, &DiffOptions::default()).unwrap();
    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
    // Deterministic.
    let mut again = Vec::new();
    diff(&upper, &mut again, &DiffOptions::default()).unwrap();
    assert_eq!(tar, again);

    // The whiteout and opaque marker are in the tar as Docker writes them.
    let names = tarball::entries(&tar);
    assert!(names.contains(&("etc/.wh.deleted".to_owned(), EntryType::Regular)));
    assert!(names.contains(&("opaque/.wh..wh..opq".to_owned(), EntryType::Regular)));
    assert!(names.contains(&("etc/sub/hosts-link".to_owned(), EntryType::Link)));
    let opaque_at = names.iter().position(|n| n.0 == "opaque/").unwrap();
    assert_eq!(names[opaque_at + 1].0, "opaque/.wh..wh..opq");

    let copy = tmp.path().join("copy");
    fs::create_dir(&copy).unwrap();
    let applied = apply(&copy, &tar[..], &ApplyOptions::default()).unwrap();
    assert_eq!(applied.diff_id, stats.diff_id);
    assert_eq!(describe(&upper), describe(&copy));
}

#[test]
fn usage_counts_hard_links_once() {
    let tmp = support::tmpdir("usage");
    let d = tmp.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("a"), vec![1u8; 100_000]).unwrap();
    let one = layer::usage(&d).unwrap();
    fs::hard_link(d.join("a"), d.join("b")).unwrap();
    let linked = layer::usage(&d).unwrap();
    assert_eq!(one, linked);
    assert_eq!(one.inodes, 2);
    assert!(one.size >= 100_000);
    fs::write(d.join("c"), b"c").unwrap();
    assert_eq!(layer::usage(&d).unwrap().inodes, 3);
}
