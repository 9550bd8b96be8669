//! The image service end to end, as root and offline: images pushed into Debian's
//! `docker-registry` by `skopeo` or by Berth's registry client (and served by a fake
//! registry that corrupts or stalls layers) are pulled, mounted, run through the
//! project's runtime (`berth-runtime`), and compared with what `skopeo` + `umoci raw
//! unpack` produce. A pull killed with SIGKILL (a child process re-executing this test
//! binary with `BERTH_SERVICE_CHILD_ROOT` set and `--exact child_process_role`) must
//! leave nothing corrupt and resume.
//!
//! The runtime binary is `$BERTH_RUNTIME`, else `berth-runtime` next to this test's
//! target directory (`cargo build -p berth-runtime-cli` with the same
//! `CARGO_TARGET_DIR`), else one under the workspace's `target/`; tests that need it
//! skip that step loudly when none is found.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::content::{ContentStore, LocalStore};
use berth_images::digest::Digest;
use berth_images::manifest::media_type::{
    OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use berth_images::manifest::Platform;
use berth_images::progress::{NoProgress, Progress, ProgressSink, ProgressState};
use berth_images::registry::{Anonymous, Repository};
use berth_images::service::{
    CommitOptions, Image, ImageService, RemoveOutcome, ServiceConfig, ServiceError,
};
use berth_images::snapshot::{OverlayOptions, OverlaySnapshotter, Snapshotter};
use support::image::{put_manifest, tagged, TestImage};
use support::image_registry::{BlobMode, FakeRepo, ImageRegistry};
use support::peers::{self, run_stdout};
use support::registry::Registry;
use support::tarball::{self, Tar};
use support::{anonymous_client, bytes as noise, reference, test_config, Mounted, Recorder};

const ENV_CHILD_ROOT: &str = "BERTH_SERVICE_CHILD_ROOT";
const ENV_CHILD_REF: &str = "BERTH_SERVICE_CHILD_REF";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------- helpers

/// True (after a loud skip line) unless running as root.
fn skip_unless_root() -> bool {
    support::skip_unless_root("overlay mounts, ownership")
}

/// The fixture `rel` for a test that runs as root with `docker-registry`, or `None`
/// (after a loud skip line) when anything of that is missing.
fn registry_fixture(rel: &str) -> Option<PathBuf> {
    if skip_unless_root() || Registry::missing() {
        return None;
    }
    support::fixture(rel)
}

fn tmpdir(tag: &str) -> tempfile::TempDir {
    support::tmpdir(&format!("svc-{tag}"))
}

fn service_config() -> ServiceConfig {
    ServiceConfig {
        registry: test_config(),
        credentials: Some(Arc::new(Anonymous)),
        ..ServiceConfig::default()
    }
}

fn open(store: &Path) -> ImageService {
    ImageService::open(store, service_config()).unwrap()
}

/// Pulls `name` for `platform` (`None`: the host's), without progress.
async fn pull(
    svc: &ImageService,
    name: &str,
    platform: Option<&str>,
) -> Result<Image, ServiceError> {
    let platform = platform.map_or_else(Platform::host, |p| Platform::parse(p).unwrap());
    svc.pull(&reference(name), &platform, Arc::new(NoProgress))
        .await
}

/// Pulls `name` for the host, recording progress.
async fn pull_recorded(svc: &ImageService, name: &str) -> (Image, Arc<Recorder>) {
    let progress = Recorder::new();
    let image = svc
        .pull(&reference(name), &Platform::host(), progress.clone())
        .await
        .unwrap();
    (image, progress)
}

fn skopeo_copy(from: &str, to: &str) {
    peers::skopeo_copy(
        &["--src-tls-verify=false", "--dest-tls-verify=false"],
        from,
        to,
    );
}

/// `umoci raw unpack` of `layout:tag` into `dir`.
fn umoci_unpack(layout: &Path, tag: &str, dir: &Path) {
    run_stdout(
        Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(dir),
    );
}

// ------------------------------------------------------------------ file tree compare

/// What is compared of each file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: Option<i64>,
    symlink: Option<PathBuf>,
    /// For files linked several times: the first path of the link group.
    hardlink: Option<String>,
    rdev: u64,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, Node>,
        groups: &mut HashMap<(u64, u64), String>,
    ) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let md = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "other"
            };
            let hardlink = (!ft.is_dir() && md.nlink() > 1).then(|| {
                groups
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone()
            });
            out.insert(
                rel,
                Node {
                    kind,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    size: if ft.is_file() { md.len() } else { 0 },
                    mtime: ft.is_file().then(|| md.mtime()),
                    symlink: ft.is_symlink().then(|| fs::read_link(&path).unwrap()),
                    hardlink,
                    rdev: if ft.is_char_device() || ft.is_block_device() {
                        md.rdev()
                    } else {
                        0
                    },
                },
            );
            if ft.is_dir() {
                walk(root, &path, out, groups);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut HashMap::new());
    out
}

fn assert_same_tree(ours: &Path, theirs: &Path) {
    let (a, b) = (tree(ours), tree(theirs));
    let mut diffs = Vec::new();
    for (path, node) in &a {
        match b.get(path) {
            None => diffs.push(format!("only in Berth's: {path} {node:?}")),
            Some(other) if other != node => {
                diffs.push(format!("{path}:\n  berth {node:?}\n  umoci {other:?}"))
            }
            Some(_) => {}
        }
    }
    for (path, node) in &b {
        if !a.contains_key(path) {
            diffs.push(format!("only in umoci's: {path} {node:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences between {} and {} (first 20):\n{}",
        diffs.len(),
        ours.display(),
        theirs.display(),
        diffs.into_iter().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(a.len() > 5, "suspiciously small tree: {}", a.len());
}

// ----------------------------------------------------------------------- the runtime

fn runtime_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/service-<hash>
        if let Some(profile) = exe.parent().and_then(Path::parent) {
            candidates.push(profile.join("berth-runtime"));
        }
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    for sub in ["debug", "release", "runtime"] {
        candidates.push(target.join(sub).join("berth-runtime"));
    }
    if let Ok(dirs) = fs::read_dir(&target) {
        for d in dirs.flatten() {
            candidates.push(d.path().join("debug/berth-runtime"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Deletes the container on drop.
struct Container<'a> {
    bin: &'a Path,
    state: &'a Path,
    id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.bin)
            .arg("--root")
            .arg(self.state)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .output();
    }
}

/// Runs `args` in a container whose root filesystem is `rootfs`; returns stdout, or
/// `None` (after saying so) when no runtime binary is found.
fn run_in_container(rootfs: &Path, args: &[&str]) -> Option<String> {
    let Some(bin) = runtime_binary() else {
        eprintln!(
            "SKIP (container run): no berth-runtime binary; build it with \
             `cargo build -p berth-runtime-cli` or set BERTH_RUNTIME"
        );
        return None;
    };
    let state = tempfile::Builder::new()
        .prefix("berth-test-svc-rt-")
        .tempdir_in("/run")
        .unwrap();
    let bundle = tmpdir("bundle");
    run_stdout(
        Command::new(&bin)
            .args(["spec", "--bundle"])
            .arg(bundle.path()),
    );
    let path = bundle.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
    config["root"]["path"] = rootfs.to_str().unwrap().into();
    fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let container = Container {
        bin: &bin,
        state: state.path(),
        id: format!(
            "berth-test-svc-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ),
    };
    let out = peers::run(
        Command::new(&bin)
            .arg("--root")
            .arg(state.path())
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(&container.id),
    );
    drop(container);
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ------------------------------------------------------------------- building images

/// A one-file layer tar: `path` holding `data`, after its parent directory (if any).
fn file_layer(path: &str, data: &[u8]) -> Vec<u8> {
    let mut t = Tar::new();
    if let Some((dir, _)) = path.rsplit_once('/') {
        t.dir(dir, 0o755);
    }
    t.file(path, data).bytes()
}

/// An amd64 image of gzip-compressed `layers` (uncompressed tars); `bad_diff_id` as in
/// [`TestImage::new`].
fn gzip_image(layers: Vec<Vec<u8>>, bad_diff_id: Option<usize>) -> TestImage {
    TestImage::new(
        "amd64",
        layers.into_iter().map(|t| (OCI_LAYER_GZIP, t)).collect(),
        bad_diff_id,
    )
}

/// The fake image registry serving `repos` (name, image under `tag`), every blob well
/// except those in `modes`.
async fn fake_registry(
    repos: &[(&str, &TestImage, &str)],
    modes: HashMap<Digest, BlobMode>,
) -> ImageRegistry {
    let repos = repos
        .iter()
        .map(|(name, image, tag)| ((*name).to_owned(), image.fake_repo(tag)))
        .collect();
    ImageRegistry::start(repos, modes).await
}

fn snapshot_names(store: &Path) -> Vec<String> {
    let s = OverlaySnapshotter::open(&store.join("snapshots"), OverlayOptions::default()).unwrap();
    let mut names = Vec::new();
    s.walk(&mut |i| names.push(i.name.clone())).unwrap();
    names
}

/// Every stored blob still verifies, and no download is left half done.
fn assert_store_consistent(svc: &ImageService) {
    for blob in svc.content().list().unwrap() {
        svc.content().verify(&blob.digest).unwrap();
    }
    assert!(svc.content().ingests().unwrap().is_empty());
}

// ------------------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busybox_pushed_by_skopeo_runs_and_matches_umoci() {
    let Some(layout) = registry_fixture("busybox/oci") else {
        return;
    };
    let tmp = tmpdir("busybox");
    let registry = Registry::anonymous();
    let host = registry.host();
    let name = format!("{host}/library/busybox:latest");
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{name}"),
    );
    let store = tmp.path().join("store");
    let svc = open(&store);

    let (image, progress) = pull_recorded(&svc, &name).await;
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(
        progress.states(&layer.digest),
        [
            ProgressState::Waiting,
            ProgressState::Downloading,
            ProgressState::Verifying,
            ProgressState::Extracting,
            ProgressState::Done
        ]
    );
    assert_eq!(image.repo_tags, [reference(&name).to_string()]);
    assert_eq!(
        image.repo_digests,
        [format!("{host}/library/busybox@{}", image.target.digest)]
    );
    assert_eq!(layer.chain_id, layer.diff_id);
    assert!(layer.unpacked_size.unwrap() > 1_000_000);
    assert_eq!(image.platform.architecture, "amd64");

    let list = svc.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, image.id);
    assert_eq!(list[0].size, image.size);
    assert_eq!(
        list[0].content_size,
        layer.size + image.manifest.config.size
    );
    let history = svc.history("busybox").await;
    assert_eq!(
        history.unwrap_err().kind(),
        ErrorKind::NotFound,
        "docker.io/library/busybox is not this image"
    );
    let history = svc.history(&name).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0]
        .created_by
        .as_deref()
        .unwrap()
        .contains("build-images.sh"));
    assert_eq!(history[0].size, layer.unpacked_size.unwrap());
    // By image ID, full and short.
    for id in [image.id.to_string(), image.id.hex()[..12].to_owned()] {
        assert_eq!(svc.inspect(&id).await.unwrap().id, image.id);
    }

    // A second pull finds every layer.
    let (_, again) = pull_recorded(&svc, &name).await;
    assert_eq!(
        again.states(&layer.digest),
        [ProgressState::Waiting, ProgressState::AlreadyExists]
    );
    // By digest.
    let pinned = format!("{host}/library/busybox@{}", image.target.digest);
    let by_digest = pull(&svc, &pinned, None).await.unwrap();
    assert_eq!(by_digest.id, image.id);
    assert_eq!(
        svc.inspect(&reference(&pinned).to_string())
            .await
            .unwrap()
            .id,
        image.id
    );
    assert_eq!(svc.list().await.unwrap().len(), 1);

    // The unpacked tree is what skopeo + umoci make of the same image.
    let mounts = svc.prepare_rootfs(&name, "busybox-1").await.unwrap();
    let rootfs = tmp.path().join("rootfs");
    let mounted = Mounted::new(&mounts, &rootfs);
    let oci = tmp.path().join("oci");
    skopeo_copy(
        &format!("docker://{name}"),
        &format!("oci:{}:latest", oci.display()),
    );
    let theirs = tmp.path().join("umoci");
    umoci_unpack(&oci, "latest", &theirs);
    assert_same_tree(&rootfs, &theirs);

    // And it runs.
    if let Some(out) = run_in_container(&rootfs, &["/bin/busybox", "echo", "hi"]) {
        assert_eq!(out, "hi\n");
    }
    drop(mounted);
    svc.remove_rootfs("busybox-1").await.unwrap();
    assert_store_consistent(&svc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_layer_whiteouts_platforms_and_bad_diff_ids() {
    if skip_unless_root() || Registry::missing() {
        return;
    }
    let tmp = tmpdir("layers");
    let registry = Registry::anonymous();
    let host = registry.host();
    let client = anonymous_client();
    let repo = Repository::new(&host, "test/layers").unwrap();

    let t1 = Tar::new()
        .dir("a", 0o755)
        .file("a/keep", b"keep")
        .file("a/gone", b"gone")
        .dir("a/sub", 0o750)
        .file("a/sub/x", b"x")
        .dir("c", 0o755)
        .file("c/old1", b"1")
        .file("c/old2", b"2")
        .dir("d", 0o755)
        .symlink("d/link", "../a/keep")
        .dir("h", 0o755)
        .file_with("h/orig", b"orig", 0o640, 1000, 1000)
        .hardlink("h/hard", "h/orig")
        .bytes();
    let t2 = Tar::new()
        .dir("a", 0o755)
        .file("a/.wh.gone", b"")
        .dir("a/sub", 0o750)
        .file("a/sub/.wh.x", b"")
        .dir("c", 0o755)
        .file("c/.wh..wh..opq", b"")
        .file("c/new", b"new")
        .dir("e", 0o755)
        .file("e/f", b"f")
        .bytes();
    let t3 = Tar::new()
        .dir("a", 0o755)
        .file("a/keep", b"keep2")
        .file(".wh.e", b"")
        .dir("d", 0o755)
        .symlink("d/link2", "/a/keep")
        .bytes();
    let amd64 = TestImage::new(
        "amd64",
        vec![
            (OCI_LAYER_GZIP, t1.clone()),
            (OCI_LAYER_ZSTD, t2.clone()),
            (OCI_LAYER_TAR, t3.clone()),
        ],
        None,
    );
    amd64.push(&client, &repo, None).await;
    let arm64 = TestImage::new("arm64", vec![], None);
    arm64.push(&client, &repo, None).await;
    let entry = |b: &TestImage, arch: &str| serde_json::json!({"mediaType": OCI_MANIFEST, "digest": b.digest.to_string(), "size": b.manifest.len(), "platform": {"os": "linux", "architecture": arch}});
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(&arm64, "arm64"), entry(&amd64, "amd64")],
    }))
    .unwrap();
    let index_digest = put_manifest(&client, &repo, &tagged("multi"), OCI_INDEX, &index)
        .await
        .unwrap();

    let store = tmp.path().join("store");
    let svc = open(&store);
    let name = format!("{host}/test/layers:multi");
    let image = pull(&svc, &name, Some("linux/amd64")).await.unwrap();
    assert_eq!(image.target.digest, index_digest);
    assert_eq!(image.target.media_type, OCI_INDEX);
    assert_eq!(image.manifest_digest, amd64.digest);
    assert_eq!(image.layers.len(), 3);
    // Only the amd64 manifest is stored: pushing the image pushes what the store has,
    // the platform manifest (as docker does), not an index it cannot complete.
    let copy = reference(&format!("{host}/test/layers-copy:amd64"));
    let pushed = svc
        .push(&name, Some(&copy), Default::default(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(pushed.digest, amd64.digest);
    let diff_ids: Vec<Digest> = [&t1, &t2, &t3]
        .iter()
        .map(|t| Digest::sha256_of(t))
        .collect();
    let c2 = Digest::sha256_of(format!("{} {}", diff_ids[0], diff_ids[1]).as_bytes());
    let c3 = Digest::sha256_of(format!("{c2} {}", diff_ids[2]).as_bytes());
    assert_eq!(
        image
            .layers
            .iter()
            .map(|l| l.chain_id.clone())
            .collect::<Vec<_>>(),
        [diff_ids[0].clone(), c2, c3]
    );
    let names = snapshot_names(&store);
    for l in &image.layers {
        assert!(names.contains(&l.chain_id.to_string()), "{names:?}");
    }

    let mounts = svc.prepare_rootfs(&name, "layers-1").await.unwrap();
    let root = tmp.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &root);
        assert_eq!(fs::read(root.join("a/keep")).unwrap(), b"keep2");
        assert!(!root.join("a/gone").exists());
        assert!(root.join("a/sub").is_dir());
        assert_eq!(fs::read_dir(root.join("a/sub")).unwrap().count(), 0);
        assert_eq!(
            fs::metadata(root.join("a/sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o750
        );
        let c: Vec<String> = fs::read_dir(root.join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(c, ["new"]);
        assert!(!root.join("e").exists());
        assert_eq!(
            fs::read_link(root.join("d/link")).unwrap(),
            Path::new("../a/keep")
        );
        assert_eq!(
            fs::read_link(root.join("d/link2")).unwrap(),
            Path::new("/a/keep")
        );
        let (orig, hard) = (
            fs::metadata(root.join("h/orig")).unwrap(),
            fs::metadata(root.join("h/hard")).unwrap(),
        );
        assert_eq!(orig.ino(), hard.ino());
        assert_eq!(orig.nlink(), 2);
        assert_eq!(
            (orig.uid(), orig.gid(), orig.mode() & 0o7777),
            (1000, 1000, 0o640)
        );
    }
    svc.remove_rootfs("layers-1").await.unwrap();

    // No manifest for this platform: the error says which there are.
    let err = pull(&svc, &name, Some("linux/s390x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("linux/arm64"), "{err}");

    // A config whose diff ID does not match layer 2: refused, nothing half done.
    let bad = gzip_image(
        vec![
            file_layer("one", b"1"),
            file_layer("two", &noise(100_000, 2)),
            file_layer("three", b"3"),
        ],
        Some(1),
    );
    let bad_repo = Repository::new(&host, "test/bad").unwrap();
    bad.push(&client, &bad_repo, Some("v1")).await;
    let err = pull(&svc, &format!("{host}/test/bad:v1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::DiffIdMismatch { layer, .. } if layer.index == 2),
        "{err:?}"
    );
    assert!(err.to_string().contains("layer 2/3"), "{err}");
    assert!(
        err.to_string().contains(&bad.layer_digest(1).to_string()),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(svc.list().await.unwrap().len(), 1);
    assert!(svc.content().info(&bad.layer_digest(1)).unwrap().is_none());
    let names = snapshot_names(&store);
    assert!(
        names.iter().all(|n| !n.starts_with("extract/")),
        "{names:?}"
    );
    assert_eq!(names.len(), 3, "{names:?}");
    assert_store_consistent(&svc);
    // The bad image's good blobs are garbage now.
    let gc = svc.gc().await.unwrap();
    assert_eq!(gc.blobs_removed, 2, "{gc:?}");
    assert!(svc.content().info(&bad.layer_digest(0)).unwrap().is_none());
    assert_eq!(svc.inspect(&name).await.unwrap().id, image.id);

    // The other platform (no layers) under the same name.
    let other = pull(&svc, &name, Some("linux/arm64")).await.unwrap();
    assert_eq!(other.platform.architecture, "arm64");
    assert!(other.layers.is_empty());
    assert_eq!(other.manifest_digest, arm64.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_layers_and_schema1_are_refused() {
    if skip_unless_root() {
        return;
    }
    let tmp = tmpdir("corrupt");
    let built = gzip_image(
        vec![
            file_layer("one", &noise(50_000, 1)),
            file_layer("two", &noise(300_000, 2)),
            file_layer("three", &noise(50_000, 3)),
        ],
        None,
    );
    let fake = fake_registry(
        &[("x/app", &built, "v1")],
        HashMap::from([(built.layer_digest(1), BlobMode::Corrupt)]),
    )
    .await;
    let store = tmp.path().join("store");
    let svc = open(&store);
    let err = pull(&svc, &format!("{}/x/app:v1", fake.host()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::LayerDownload { layer, .. } if layer.index == 2),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&built.layer_digest(1).to_string()), "{text}");
    assert!(text.contains("hashes to"), "{text}");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(svc.list().await.unwrap().is_empty());
    assert!(svc
        .content()
        .info(&built.layer_digest(1))
        .unwrap()
        .is_none());
    assert!(snapshot_names(&store).is_empty());
    assert_store_consistent(&svc);

    let err = pull(&svc, &format!("{}/x/app:schema1", fake.host()), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented, "{err}");
    assert!(err.to_string().contains("schema 1"), "{err}");
    assert!(svc.list().await.unwrap().is_empty());
}

/// Prints download progress for the parent of `killed_pull_leaves_nothing_corrupt_and_resumes`.
struct PrintProgress;

impl ProgressSink for PrintProgress {
    fn report(&self, event: Progress) {
        if event.state == ProgressState::Downloading {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "DOWNLOADING {} {}", event.digest, event.current);
            let _ = out.flush();
        }
    }
}

/// The child's side of the kill test; does nothing unless started by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_role() {
    let Ok(root) = std::env::var(ENV_CHILD_ROOT) else {
        return;
    };
    let name = std::env::var(ENV_CHILD_REF).unwrap();
    let svc = open(Path::new(&root));
    let result = svc
        .pull(
            &reference(&name),
            &Platform::host(),
            Arc::new(PrintProgress),
        )
        .await;
    println!("FINISHED {:?}", result.map(|i| i.id));
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_pull_leaves_nothing_corrupt_and_resumes() {
    if skip_unless_root() {
        return;
    }
    let tmp = tmpdir("kill");
    let big_file = noise(4 << 20, 7);
    let built = TestImage::new(
        "amd64",
        vec![
            (OCI_LAYER_GZIP, file_layer("data/small", b"small")),
            (OCI_LAYER_GZIP, file_layer("data/big", &big_file)),
            (OCI_LAYER_TAR, file_layer("top", b"top")),
        ],
        None,
    );
    let big = built.layer_digest(1);
    let fake = fake_registry(
        &[("kill/app", &built, "v1")],
        HashMap::from([(big.clone(), BlobMode::StallOnce)]),
    )
    .await;
    let name = format!("{}/kill/app:v1", fake.host());
    let store = tmp.path().join("store");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_CHILD_ROOT, &store)
        .env(ENV_CHILD_REF, &name)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Kill(child);
    // Wait until the big layer is half downloaded (the fake then stalls).
    let wanted = format!("DOWNLOADING {big} ");
    let seen = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix(&wanted) {
                if n.parse::<u64>().unwrap() >= 1 << 20 {
                    return true;
                }
            }
            assert!(!line.starts_with("FINISHED"), "the pull ended: {line}");
        }
        false
    });
    let seen = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .expect("the child never got halfway")
        .unwrap();
    assert!(seen, "the child exited early");
    // ...and its bytes have reached the ingest.
    let content = LocalStore::open(&store.join("content")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let offset = loop {
        let partial = content
            .ingests()
            .unwrap()
            .into_iter()
            .find(|i| i.expected == big)
            .map_or(0, |i| i.offset);
        if partial >= 1 << 20 {
            break partial;
        }
        assert!(
            Instant::now() < deadline,
            "no partial ingest ({partial} bytes)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // SIGKILL, by PID.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    drop(child);
    let before = snapshot_names(&store);
    assert!(
        before.iter().all(|n| n.starts_with("extract/")),
        "only partial snapshots before recovery: {before:?}"
    );

    // Recovery: nothing visible, the partial download kept, partial snapshots gone.
    let svc = open(&store);
    assert!(svc.list().await.unwrap().is_empty());
    assert!(snapshot_names(&store).is_empty());
    let ingests = svc.content().ingests().unwrap();
    assert_eq!(ingests.len(), 1, "{ingests:?}");
    assert_eq!(
        (ingests[0].expected.clone(), ingests[0].offset),
        (big.clone(), offset)
    );
    for blob in svc.content().list().unwrap() {
        svc.content().verify(&blob.digest).unwrap();
    }

    // The next pull resumes the download where it stopped.
    let (image, progress) = pull_recorded(&svc, &name).await;
    assert_eq!(image.layers.len(), 3);
    let requests: Vec<_> = fake
        .blob_requests()
        .into_iter()
        .filter(|r| r.digest == big.to_string())
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].range, Some(format!("bytes={offset}-")));
    assert_eq!(progress.states(&big).last(), Some(&ProgressState::Done));
    assert_store_consistent(&svc);
    let mounts = svc.prepare_rootfs(&name, "kill-1").await.unwrap();
    let root = tmp.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &root);
        assert_eq!(fs::read(root.join("data/big")).unwrap(), big_file);
        assert_eq!(fs::read(root.join("data/small")).unwrap(), b"small");
        assert_eq!(fs::read(root.join("top")).unwrap(), b"top");
    }
    svc.remove_rootfs("kill-1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containers_block_remove_and_prune_and_gc_free_space() {
    if skip_unless_root() {
        return;
    }
    let tmp = tmpdir("remove");
    let base = file_layer("base/data", &noise(200_000, 11));
    let a = gzip_image(
        vec![base.clone(), file_layer("one", &noise(100_000, 12))],
        None,
    );
    let b = gzip_image(vec![base, file_layer("two", &noise(100_000, 13))], None);
    let fake = fake_registry(
        &[("app/one", &a, "latest"), ("app/two", &b, "latest")],
        HashMap::new(),
    )
    .await;
    let (name_a, name_b) = (
        format!("{}/app/one:latest", fake.host()),
        format!("{}/app/two:latest", fake.host()),
    );
    let store = tmp.path().join("store");
    let svc = open(&store);
    let image_a = pull(&svc, &name_a, None).await.unwrap();
    let (image_b, progress) = pull_recorded(&svc, &name_b).await;
    // The shared base layer was there already.
    assert_eq!(
        progress.states(&b.layer_digest(0)),
        [ProgressState::Waiting, ProgressState::AlreadyExists]
    );
    assert_eq!(image_a.layers[0].chain_id, image_b.layers[0].chain_id);

    let _mounts = svc.prepare_rootfs(&name_a, "user-1").await.unwrap();
    assert_eq!(
        svc.prepare_rootfs(&name_a, "user-1")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(svc.inspect(&name_a).await.unwrap().containers, ["user-1"]);
    for target in [name_a.clone(), image_a.id.to_string()] {
        let err = svc.remove(&target, false).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("user-1"), "{err}");
    }
    // Another tag: removing it only untags.
    let other = reference(&format!("{}/app/one:other", fake.host()));
    svc.tag(&name_a, &other).await.unwrap();
    assert_eq!(
        svc.remove(&other.to_string(), false).await.unwrap(),
        [RemoveOutcome::Untagged(other.to_string())]
    );
    // An image ID in two repositories needs force.
    let elsewhere = reference(&format!("{}/elsewhere/b:1", fake.host()));
    svc.tag(&name_b, &elsewhere).await.unwrap();
    let err = svc
        .remove(&image_b.id.to_string(), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    svc.remove(&elsewhere.to_string(), false).await.unwrap();

    // Nothing dangling yet; prune -a removes the unused image only.
    assert!(svc.prune(false).await.unwrap().removed.is_empty());
    let usage_before = svc.disk_usage().await.unwrap();
    assert_eq!(usage_before.images.len(), 2);
    assert!(usage_before.images.iter().all(|i| i.shared_size > 0));
    let pruned = svc.prune(true).await.unwrap();
    assert!(
        pruned
            .removed
            .contains(&RemoveOutcome::Deleted(image_b.id.clone())),
        "{pruned:?}"
    );
    assert!(pruned.space_reclaimed > 100_000, "{pruned:?}");
    let names = snapshot_names(&store);
    assert!(!names.contains(&image_b.layers[1].chain_id.to_string()));
    assert!(names.contains(&image_b.layers[0].chain_id.to_string()));
    assert!(svc.content().info(&b.layer_digest(1)).unwrap().is_none());
    let usage = svc.disk_usage().await.unwrap();
    assert_eq!(usage.images.len(), 1);
    assert_eq!(usage.containers.len(), 1);
    assert_eq!(usage.containers[0].image, Some(image_a.id.clone()));
    assert!(usage.content_size < usage_before.content_size);

    // Forced: the names go, the used image stays (dangling) until its container goes.
    let removed = svc.remove(&name_a, true).await.unwrap();
    assert!(!removed
        .iter()
        .any(|r| matches!(r, RemoveOutcome::Deleted(_))));
    let list = svc.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].repo_tags.is_empty() && list[0].repo_digests.is_empty());
    assert_eq!(svc.gc().await.unwrap().snapshots_removed, 0);
    svc.remove_rootfs("user-1").await.unwrap();
    assert_eq!(
        svc.remove_rootfs("user-1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let pruned = svc.prune(false).await.unwrap();
    assert_eq!(pruned.removed, [RemoveOutcome::Deleted(image_a.id.clone())]);
    assert!(svc.list().await.unwrap().is_empty());
    assert!(svc.content().list().unwrap().is_empty());
    assert!(snapshot_names(&store).is_empty());
    let usage = svc.disk_usage().await.unwrap();
    assert_eq!((usage.layers_size, usage.content_size), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pulls_and_gc_share_layers_safely() {
    if skip_unless_root() {
        return;
    }
    let tmp = tmpdir("concurrent");
    let layer = |name: &str, seed: u64| file_layer(&format!("l/{name}"), &noise(300_000, seed));
    let shared: Vec<(&str, Vec<u8>)> = (0..3)
        .map(|i| (OCI_LAYER_GZIP, layer(&format!("shared{i}"), 20 + i)))
        .collect();
    let mut with_a = shared.clone();
    with_a.push((OCI_LAYER_GZIP, layer("a", 30)));
    let mut with_b = shared;
    with_b.push((OCI_LAYER_ZSTD, layer("b", 31)));
    let (a, b) = (
        TestImage::new("amd64", with_a, None),
        TestImage::new("amd64", with_b, None),
    );
    let fake = fake_registry(&[("c/a", &a, "1"), ("c/b", &b, "1")], HashMap::new()).await;
    let store = tmp.path().join("store");
    let svc = open(&store);
    let (ra, rb) = (
        reference(&format!("{}/c/a:1", fake.host())),
        reference(&format!("{}/c/b:1", fake.host())),
    );
    let host = Platform::host();
    let gc_loop = async {
        for _ in 0..30 {
            svc.gc().await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (one, two, three, ()) = tokio::join!(
        svc.pull(&ra, &host, Arc::new(NoProgress)),
        svc.pull(&rb, &host, Arc::new(NoProgress)),
        svc.pull(&ra, &host, Arc::new(NoProgress)),
        gc_loop
    );
    let (one, two, three) = (one.unwrap(), two.unwrap(), three.unwrap());
    assert_eq!(one.id, three.id);
    assert_eq!(svc.list().await.unwrap().len(), 2);
    assert_eq!(one.layers[..3], two.layers[..3]);
    let names = snapshot_names(&store);
    assert_eq!(names.len(), 5, "{names:?}");
    svc.gc().await.unwrap();
    assert_eq!(snapshot_names(&store).len(), 5);
    assert_eq!(svc.content().list().unwrap().len(), 2 * 2 + 5);
    assert_store_consistent(&svc);
    let mounts = svc
        .prepare_rootfs(&rb.to_string(), "concurrent-1")
        .await
        .unwrap();
    let root = tmp.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &root);
        let mut files: Vec<String> = fs::read_dir(root.join("l"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["b", "shared0", "shared1", "shared2"]);
    }
    svc.remove_rootfs("concurrent-1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_container_round_trip() {
    if skip_unless_root() {
        return;
    }
    let Some(layout) = support::fixture("busybox/oci") else {
        return;
    };
    let tmp = tmpdir("commit");
    let repos = HashMap::from([(
        "library/busybox".to_owned(),
        FakeRepo::from_oci_layout(&layout, "latest"),
    )]);
    let fake = ImageRegistry::start(repos, HashMap::new()).await;
    let name = format!("{}/library/busybox:latest", fake.host());
    let store = tmp.path().join("store");
    let svc = open(&store);
    let base = pull(&svc, &name, None).await.unwrap();

    let mounts = svc.prepare_rootfs(&name, "commit-1").await.unwrap();
    let root = tmp.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &root);
        fs::write(root.join("hello.txt"), "hello from commit\n").unwrap();
        fs::remove_file(root.join("etc/hostname")).unwrap();
        fs::create_dir(root.join("newdir")).unwrap();
        fs::set_permissions(root.join("newdir"), fs::Permissions::from_mode(0o711)).unwrap();
    }
    let committed_name = reference(&format!("{}/test/committed:v1", fake.host()));
    let image = svc
        .commit_container(
            "commit-1",
            CommitOptions {
                reference: Some(committed_name.clone()),
                author: Some("berth test".into()),
                comment: Some("round trip".into()),
                created_by: Some("/bin/sh".into()),
                config: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(image.repo_tags, [committed_name.to_string()]);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0], base.layers[0]);
    assert_eq!(image.config.rootfs.diff_ids[1], image.layers[1].diff_id);
    assert_eq!(image.config.author.as_deref(), Some("berth test"));
    assert_eq!(image.layers[1].media_type, OCI_LAYER_GZIP);
    let history = svc.history(&committed_name.to_string()).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].comment.as_deref(), Some("round trip"));
    assert_eq!(history[0].created_by.as_deref(), Some("/bin/sh"));
    // The stored blob is the layer: its gunzipped bytes hash to the diff ID.
    let blob = svc
        .content()
        .read_to_vec(&image.layers[1].digest, 64 << 20)
        .unwrap();
    assert_eq!(
        Digest::sha256_of(&tarball::gunzip(&blob)),
        image.layers[1].diff_id
    );
    assert_eq!(blob.len() as u64, image.layers[1].size);

    let mounts = svc
        .prepare_rootfs(&committed_name.to_string(), "commit-2")
        .await
        .unwrap();
    let root2 = tmp.path().join("rootfs2");
    {
        let _m = Mounted::new(&mounts, &root2);
        assert_eq!(
            fs::read_to_string(root2.join("hello.txt")).unwrap(),
            "hello from commit\n"
        );
        assert!(!root2.join("etc/hostname").exists());
        assert!(root2.join("etc/passwd").exists());
        assert_eq!(
            fs::metadata(root2.join("newdir")).unwrap().mode() & 0o7777,
            0o711
        );
        if let Some(out) = run_in_container(&root2, &["/bin/busybox", "cat", "/hello.txt"]) {
            assert_eq!(out, "hello from commit\n");
        }
    }
    svc.remove_rootfs("commit-2").await.unwrap();
    // An untagged commit is dangling: prune takes it.
    let untagged = svc
        .commit_container("commit-1", CommitOptions::default())
        .await
        .unwrap();
    assert!(untagged.repo_tags.is_empty());
    svc.remove_rootfs("commit-1").await.unwrap();
    let pruned = svc.prune(false).await.unwrap();
    assert_eq!(
        pruned.removed,
        [RemoveOutcome::Deleted(untagged.id.clone())]
    );
    assert_eq!(
        svc.remove(&committed_name.to_string(), false)
            .await
            .unwrap(),
        [
            RemoveOutcome::Untagged(committed_name.to_string()),
            RemoveOutcome::Deleted(image.id.clone())
        ]
    );
    assert_eq!(svc.list().await.unwrap().len(), 1);
    assert_eq!(
        snapshot_names(&store),
        [base.layers[0].chain_id.to_string()]
    );
    assert_store_consistent(&svc);
}

/// Splits a single-layer tar into `n` layers: directories in the first, files spread
/// over all of them (each with copies of its parent directories, as real layers
/// carry), hard links with their target. Entries are copied byte for byte, extension
/// headers included.
fn split_layer(tar: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut outs = vec![Vec::new(); n];
    let mut dirs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut written: Vec<HashSet<String>> = vec![HashSet::new(); n];
    let mut placed: HashMap<String, usize> = HashMap::new();
    let mut archive = tar::Archive::new(tar);
    let mut prev_end = 0usize;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let size = usize::try_from(entry.header().entry_size().unwrap()).unwrap();
        let data_start = usize::try_from(entry.raw_file_position()).unwrap();
        let end = data_start + size.div_ceil(512) * 512;
        let raw = tar[prev_end..end].to_vec();
        prev_end = end;
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let kind = entry.header().entry_type();
        let layer = if kind.is_dir() {
            dirs.insert(path.clone(), raw.clone());
            0
        } else if kind.is_hard_link() {
            let target = entry.link_name().unwrap().unwrap();
            placed[target.to_string_lossy().trim_end_matches('/')]
        } else {
            path.bytes().map(usize::from).sum::<usize>() % n
        };
        if !kind.is_dir() {
            placed.insert(path.clone(), layer);
            // Parent directories first, as in the original.
            let mut parent = String::new();
            for component in path.split('/').take(path.split('/').count() - 1) {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(component);
                if written[layer].insert(parent.clone()) {
                    if let Some(d) = dirs.get(&parent) {
                        outs[layer].extend_from_slice(d);
                    }
                }
            }
        } else {
            written[0].insert(path.clone());
        }
        outs[layer].extend_from_slice(&raw);
    }
    for out in &mut outs {
        out.extend_from_slice(&[0u8; 1024]);
    }
    outs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debian_split_in_layers_matches_umoci_and_runs() {
    let Some(layout) = registry_fixture("debian/oci") else {
        return;
    };
    let tmp = tmpdir("debian");
    let repo = FakeRepo::from_oci_layout(&layout, "latest");
    let layer = repo.blobs.values().max_by_key(|b| b.len()).unwrap();
    let tar = tarball::gunzip(layer);
    let layers = split_layer(&tar, 4);
    drop(tar);
    let built = TestImage::new(
        "amd64",
        layers.into_iter().map(|l| (OCI_LAYER_TAR, l)).collect(),
        None,
    );
    let registry = Registry::anonymous();
    let host = registry.host();
    let client = anonymous_client();
    built
        .push(
            &client,
            &Repository::new(&host, "library/debian").unwrap(),
            Some("split"),
        )
        .await;
    let store = tmp.path().join("store");
    let svc = open(&store);
    let name = format!("{host}/library/debian:split");
    let started = Instant::now();
    let image = pull(&svc, &name, None).await.unwrap();
    eprintln!(
        "pulled the Debian image in 4 layers ({} MB) in {:?}",
        image.content_size >> 20,
        started.elapsed()
    );
    assert_eq!(image.layers.len(), 4);
    let mounts = svc.prepare_rootfs(&name, "debian-1").await.unwrap();
    let root = tmp.path().join("rootfs");
    let mounted = Mounted::new(&mounts, &root);
    let theirs = tmp.path().join("umoci");
    umoci_unpack(&layout, "latest", &theirs);
    assert_same_tree(&root, &theirs);
    if let Some(out) = run_in_container(&root, &["/bin/sh", "-c", "cat /etc/debian_version"]) {
        assert!(out.starts_with("12"), "{out}");
    }
    drop(mounted);
    svc.remove_rootfs("debian-1").await.unwrap();
    assert_store_consistent(&svc);
}
