//! The overlay snapshotter with real overlay mounts (run as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::layer::{self, ApplyOptions, DiffOptions};
use berth_images::snapshot::{
    self, Kind, MountKind, OverlayOptions, OverlaySnapshotter, SnapshotError, Snapshotter,
};
use support::tarball::{self, Tar};
use support::Mounted;

fn store() -> (tempfile::TempDir, OverlaySnapshotter) {
    let tmp = support::tmpdir("snap");
    let s = OverlaySnapshotter::open(&tmp.path().join("store"), OverlayOptions::default()).unwrap();
    (tmp, s)
}

/// Unpacks `tar` as committed snapshot `name` on `parent`, as a pull does.
fn unpack(s: &OverlaySnapshotter, name: &str, parent: Option<&str>, tar: &[u8]) {
    let key = format!("extract {name}");
    let mounts = s.prepare(&key, parent).unwrap();
    let dir = snapshot::writable_dir(&mounts).unwrap();
    let stats = layer::apply(&dir, tar, &ApplyOptions::default()).unwrap();
    assert_eq!(stats.diff_id, berth_images::digest::Digest::sha256_of(tar));
    s.commit(name, &key).unwrap();
}

#[test]
fn container_on_three_layers_sees_whiteouts_and_opaque_dirs() {
    let (tmp, s) = store();
    unpack(
        &s,
        "L1",
        None,
        &Tar::new()
            .dir("etc", 0o755)
            .file("etc/hosts", b"l1")
            .file("etc/gone", b"x")
            .dir("opq", 0o755)
            .file("opq/lower1", b"1")
            .dir("data", 0o755)
            .file("data/f1", b"f1")
            .bytes(),
    );
    unpack(
        &s,
        "L2",
        Some("L1"),
        &Tar::new()
            .file("etc/.wh.gone", b"")
            .dir("opq", 0o755)
            .file("opq/.wh..wh..opq", b"")
            .file("opq/upper2", b"2")
            .file("data/f2", b"f2")
            .bytes(),
    );
    unpack(
        &s,
        "L3",
        Some("L2"),
        &Tar::new().file("etc/hosts", b"l3").bytes(),
    );

    let mounts = s.prepare("c1", Some("L3")).unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].kind, MountKind::Overlay);
    assert!(mounts[0].options.iter().any(|o| o == "index=off"));
    assert_eq!(s.mounts("c1").unwrap(), mounts);
    let upper = snapshot::writable_dir(&mounts).unwrap();
    let rootfs = tmp.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &rootfs);
        assert_eq!(fs::read(rootfs.join("etc/hosts")).unwrap(), b"l3");
        assert!(!rootfs.join("etc/gone").exists());
        assert!(!rootfs.join("opq/lower1").exists());
        assert_eq!(fs::read(rootfs.join("opq/upper2")).unwrap(), b"2");
        assert!(rootfs.join("data/f1").exists() && rootfs.join("data/f2").exists());

        // The container writes and deletes.
        fs::write(rootfs.join("etc/new"), b"new").unwrap();
        fs::remove_file(rootfs.join("data/f1")).unwrap();
        fs::write(rootfs.join("etc/hosts"), b"changed").unwrap();
        fs::remove_dir_all(rootfs.join("opq")).unwrap();
        fs::create_dir(rootfs.join("opq")).unwrap();
        fs::write(rootfs.join("opq/fresh"), b"fresh").unwrap();
    }
    // Unmounted: the upper directory holds the changes.
    assert!(fs::read_dir(&rootfs).unwrap().next().is_none());
    let f1 = fs::symlink_metadata(upper.join("data/f1")).unwrap();
    assert!(f1.file_type().is_char_device() && f1.rdev() == 0);

    // Commit path: diff the upper directory, apply it as a new layer on L3.
    let mut tar = Vec::new();
    layer::diff(&upper, &mut tar, &DiffOptions::default()).unwrap();
    let names: Vec<String> = tarball::entries(&tar).into_iter().map(|e| e.0).collect();
    for want in [
        "etc/new",
        "etc/hosts",
        "data/.wh.f1",
        "opq/",
        "opq/.wh..wh..opq",
        "opq/fresh",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    unpack(&s, "L4", Some("L3"), &tar);
    let view = s.view("v", Some("L4")).unwrap();
    let vroot = tmp.path().join("view");
    {
        let _m = Mounted::new(&view, &vroot);
        assert_eq!(fs::read(vroot.join("etc/hosts")).unwrap(), b"changed");
        assert_eq!(fs::read(vroot.join("etc/new")).unwrap(), b"new");
        assert!(!vroot.join("data/f1").exists());
        assert!(!vroot.join("opq/upper2").exists());
        assert!(vroot.join("opq/fresh").exists());
        let err = fs::write(vroot.join("x"), b"x").unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error())
        );
    }

    // Bookkeeping.
    let info = s.stat("L4").unwrap();
    assert_eq!(
        (info.kind, info.parent.as_deref()),
        (Kind::Committed, Some("L3"))
    );
    assert_eq!(s.stat("c1").unwrap().kind, Kind::Active);
    assert!(s.usage("L1").unwrap().inodes >= 7);
    assert!(s.usage("c1").unwrap().inodes >= 5);
    let mut seen = Vec::new();
    s.walk(&mut |i| seen.push(i.name.clone())).unwrap();
    assert_eq!(seen, ["L1", "L2", "L3", "L4", "c1", "v"]);

    let err = s.remove("L3").unwrap_err();
    assert!(matches!(err, SnapshotError::HasChildren { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(matches!(
        s.commit("x", "v"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        s.commit("x", "L4"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        s.mounts("L4"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        s.prepare("c1", None),
        Err(SnapshotError::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.prepare("c2", Some("c1")),
        Err(SnapshotError::ParentNotCommitted { .. })
    ));
    assert!(matches!(
        s.prepare("c2", Some("nope")),
        Err(SnapshotError::NotFound { .. })
    ));
    assert_eq!(s.stat("nope").unwrap_err().kind(), ErrorKind::NotFound);

    for key in ["v", "c1", "L4", "L3", "L2", "L1"] {
        s.remove(key).unwrap();
    }
    let left: Vec<_> = fs::read_dir(s.root().join("snapshots")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn scratch_and_single_layer_snapshots_use_bind_mounts() {
    let (tmp, s) = store();
    // A scratch container: nothing below, a writable bind mount.
    let mounts = s.prepare("scratch", None).unwrap();
    assert_eq!(mounts[0].kind, MountKind::Bind);
    let target = tmp.path().join("scratch");
    {
        let _m = Mounted::new(&mounts, &target);
        fs::write(target.join("f"), b"x").unwrap();
    }
    assert!(snapshot::writable_dir(&mounts).unwrap().join("f").exists());

    unpack(&s, "base", None, &Tar::new().file("only", b"1").bytes());
    // A view of one layer: a read-only bind mount of it.
    let view = s.view("v1", Some("base")).unwrap();
    assert_eq!(view[0].kind, MountKind::Bind);
    assert_eq!(snapshot::writable_dir(&view), None);
    let vt = tmp.path().join("v1");
    {
        let _m = Mounted::new(&view, &vt);
        assert!(vt.join("only").exists());
        assert!(fs::write(vt.join("x"), b"x").is_err());
    }
    // A container on one layer: an overlay with one lower directory.
    let one = s.prepare("c", Some("base")).unwrap();
    assert_eq!(one[0].kind, MountKind::Overlay);
    let ct = tmp.path().join("c");
    {
        let _m = Mounted::new(&one, &ct);
        assert!(ct.join("only").exists());
        fs::write(ct.join("mine"), b"m").unwrap();
    }
    // An empty view.
    let empty = s.view("empty", None).unwrap();
    let et = tmp.path().join("empty");
    {
        let _m = Mounted::new(&empty, &et);
        assert!(fs::read_dir(&et).unwrap().next().is_none());
    }
}

#[test]
fn a_chain_of_150_layers_mounts() {
    let (tmp, s) = store();
    let mut parent: Option<String> = None;
    for i in 0..150 {
        let name = format!("sha256:{i:064x}");
        let tar = Tar::new().file(&format!("layer{i}"), b"x").bytes();
        unpack(&s, &name, parent.as_deref(), &tar);
        parent = Some(name);
    }
    let mounts = s.prepare("tall", parent.as_deref()).unwrap();
    let lowerdir = mounts[0]
        .options
        .iter()
        .find(|o| o.starts_with("lowerdir="))
        .unwrap();
    assert_eq!(lowerdir.split(':').count(), 150);
    assert!(
        lowerdir.len() > 4096,
        "the plain option string must not fit one page"
    );
    let target = tmp.path().join("tall");
    {
        let _m = Mounted::new(&mounts, &target);
        for i in [0, 1, 77, 149] {
            assert!(target.join(format!("layer{i}")).exists(), "layer{i}");
        }
        fs::write(target.join("top"), b"t").unwrap();
    }
    let view = s.view("tall-view", parent.as_deref()).unwrap();
    let vt = tmp.path().join("tall-view");
    {
        let _m = Mounted::new(&view, &vt);
        assert_eq!(fs::read_dir(&vt).unwrap().count(), 150);
    }
}

#[test]
fn cleanup_removes_crash_leftovers() {
    let (_tmp, s) = store();
    s.prepare("kept", None).unwrap();
    let base = s.root().join("snapshots");
    for leftover in ["tmp-77", "rm-3", "99"] {
        fs::create_dir_all(base.join(leftover).join("fs/deep")).unwrap();
    }
    s.cleanup().unwrap();
    let mut left: Vec<String> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["1"]);
    // Records survive reopening.
    let again = OverlaySnapshotter::open(s.root(), OverlayOptions::default()).unwrap();
    assert_eq!(again.stat("kept").unwrap().kind, Kind::Active);
}

#[test]
fn refuses_unusable_roots_and_keys() {
    for bad in ["relative", "/tmp/a:b", "/tmp/a,b"] {
        let err = OverlaySnapshotter::open(Path::new(bad), OverlayOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    let (_tmp, s) = store();
    assert!(matches!(
        s.prepare("", None),
        Err(SnapshotError::InvalidKey { .. })
    ));
    let long = "k".repeat(5000);
    assert!(matches!(
        s.prepare(&long, None),
        Err(SnapshotError::InvalidKey { .. })
    ));
}
