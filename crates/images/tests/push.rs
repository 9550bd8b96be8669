//! `push_image` against Debian's `docker-registry` on loopback (anonymous and behind the
//! token server), with the busybox OCI fixture loaded into a `LocalStore`, checked by
//! pulling the pushed images back with `skopeo` and `podman` (private storage in a
//! temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::content::{ContentStore, LocalStore};
use berth_images::digest::Digest;
use berth_images::manifest::{media_type, Descriptor, Format, Index, Manifest, Platform};
use berth_images::progress::{NoProgress, ProgressState};
use berth_images::push::{push_image, PushError, PushOptions, PushResult};
use berth_images::reference::Reference;
use berth_images::registry::{
    Anonymous, Client, Credentials, ManifestRef, PushOutcome, Repository, StaticCredentials,
};
use support::registry::{Auth, Options, Registry};
use support::token::TokenServer;
use support::{test_config, Recorder};

macro_rules! require_registry {
    () => {
        if !Registry::available() {
            eprintln!("skipping: {} is not installed", support::registry::BINARY);
            return;
        }
    };
}

macro_rules! require_fixture {
    () => {
        match fixture_layout() {
            Some(layout) => layout,
            None => return,
        }
    };
}

/// The busybox OCI layout fixture, or `None` (with a loud message) when it is missing.
fn fixture_layout() -> Option<PathBuf> {
    let fixtures =
        std::env::var("BERTH_FIXTURES").unwrap_or_else(|_| "/var/cache/berth-fixtures".into());
    let layout = Path::new(&fixtures).join("busybox/oci");
    if layout.join("index.json").exists() {
        Some(layout)
    } else {
        eprintln!(
            "SKIPPING: fixture {} is missing (build it with tests/fixtures/build-images.sh)",
            layout.display()
        );
        None
    }
}

/// A content store in a temporary directory with the fixture's blobs loaded; returns
/// the digest of the image manifest the layout's index names.
struct Loaded {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: LocalStore,
    manifest: Digest,
    config: Digest,
    layer: Digest,
}

/// A tiny OCI-layout loader: every blob of `layout` goes into a fresh store (verified
/// against its file name by the store), and the manifest is the index's first entry.
fn load(layout: &Path) -> Loaded {
    let dir = tempfile::Builder::new()
        .prefix("berth-test-push-store-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("content");
    let store = LocalStore::open(&root).unwrap();
    for alg in ["sha256", "sha512"] {
        let Ok(entries) = std::fs::read_dir(layout.join("blobs").join(alg)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let digest = Digest::parse(&format!("{alg}:{name}")).unwrap();
            store
                .put_verified(&digest, &std::fs::read(entry.path()).unwrap())
                .unwrap();
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = Digest::parse(index["manifests"][0]["digest"].as_str().unwrap()).unwrap();
    let m: Manifest =
        serde_json::from_slice(&store.read_to_vec(&manifest, 1 << 20).unwrap()).unwrap();
    Loaded {
        _dir: dir,
        root,
        store,
        manifest,
        config: m.config.digest.clone(),
        layer: m.layers[0].digest.clone(),
    }
}

fn anonymous_client() -> Client {
    Client::new(test_config(), Arc::new(Anonymous))
}

fn client_with(host: &str, credentials: Credentials) -> Client {
    Client::new(
        test_config(),
        Arc::new(StaticCredentials::new().with(host, credentials)),
    )
}

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).unwrap()
}

fn outcomes(result: &PushResult) -> Vec<PushOutcome> {
    result.blobs.iter().map(|b| b.outcome).collect()
}

/// The state sequence each blob went through.
fn states(recorder: &Recorder, digest: &Digest) -> Vec<ProgressState> {
    let mut states: Vec<ProgressState> = recorder
        .events()
        .into_iter()
        .filter(|e| e.digest == *digest)
        .map(|e| e.state)
        .collect();
    states.dedup();
    states
}

fn tool_available(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The blob file of a `LocalStore` (blobs are 0444; root may still write them).
fn store_blob_path(loaded: &Loaded, digest: &Digest) -> PathBuf {
    loaded
        .root
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Flips one byte in the middle of a stored blob (same size, wrong digest).
fn corrupt(loaded: &Loaded, digest: &Digest) {
    let path = store_blob_path(loaded, digest);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(&path, &data).unwrap();
}

async fn assert_no_manifest(client: &Client, repo: &Repository, tag: &str) {
    assert!(
        client
            .head_manifest(repo, &ManifestRef::tag(tag).unwrap())
            .await
            .unwrap()
            .is_none(),
        "a manifest was put in {repo} although the push failed"
    );
}

/// Pulls `image` back with skopeo (into an OCI layout) and checks its manifest digest;
/// `skopeo inspect` must report the same digest.
fn skopeo_pull_and_inspect(image: &str, expected: &Digest, scratch: &Path, all: bool) {
    let out = scratch.join(format!("skopeo-{}", expected.hex()));
    let mut copy = Command::new("skopeo");
    copy.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
    ]);
    if all {
        copy.arg("--all");
    }
    run(copy
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:pulled", out.display()))
        .env("TMPDIR", scratch));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str().unwrap(),
        expected.to_string()
    );
    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{image}"))
        .env("TMPDIR", scratch));
    assert_eq!(Digest::sha256_of(inspect.as_bytes()), *expected);
    if !all {
        let inspect = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{image}"))
            .env("TMPDIR", scratch));
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["Digest"].as_str().unwrap(), expected.to_string());
    }
}

/// Pulls `image` with podman into private storage under `scratch` and checks the digest
/// podman records. Skips loudly when podman is missing.
fn podman_pull(image: &str, expected: &Digest, scratch: &Path) {
    if !tool_available("podman") {
        eprintln!("SKIPPING the podman check: podman is not installed");
        return;
    }
    let base = scratch.join("podman");
    for d in ["root", "runroot", "tmp"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(base.join("root"))
            .arg("--runroot")
            .arg(base.join("runroot"))
            .arg("--tmpdir")
            .arg(base.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
                "--cgroup-manager",
                "cgroupfs",
            ])
            .env("TMPDIR", base.join("tmp"));
        c
    };
    run(podman().args(["pull", "--quiet", "--tls-verify=false", image]));
    let digest = run(podman().args(["image", "inspect", "--format", "{{.Digest}}", image]));
    assert_eq!(digest.trim(), expected.to_string());
    // Unmounts nothing (vfs) but releases podman's locks and state before the directory goes.
    let _ = podman().args(["rmi", "--all", "--force"]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_busybox_pull_back_with_peers_mount_and_repush() {
    require_registry!();
    let layout = require_fixture!();
    let loaded = load(&layout);
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let client = anonymous_client();
    let scratch = tempfile::Builder::new()
        .prefix("berth-test-push-")
        .tempdir()
        .unwrap();

    // First push: everything is uploaded; each blob goes Waiting → Uploading → Done.
    let image = format!("{host}/berth/busybox:v1");
    let recorder = Recorder::new();
    let result = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&image),
        PushOptions::default(),
        recorder.clone(),
    )
    .await
    .unwrap();
    assert_eq!(result.digest, loaded.manifest);
    assert_eq!(
        result.size,
        loaded.store.info(&loaded.manifest).unwrap().unwrap().size
    );
    assert_eq!(result.manifests, std::slice::from_ref(&loaded.manifest));
    let blobs: Vec<&Digest> = result.blobs.iter().map(|b| &b.digest).collect();
    assert_eq!(blobs, [&loaded.config, &loaded.layer]);
    assert_eq!(outcomes(&result), [PushOutcome::Uploaded; 2]);
    for blob in &result.blobs {
        assert_eq!(
            states(&recorder, &blob.digest),
            [
                ProgressState::Waiting,
                ProgressState::Uploading,
                ProgressState::Done
            ]
        );
        let last_upload = recorder
            .events()
            .into_iter()
            .rfind(|e| e.digest == blob.digest && e.state == ProgressState::Uploading)
            .unwrap();
        assert_eq!(last_upload.current, blob.size);
        assert_eq!(last_upload.total, Some(blob.size));
    }

    // Peers pull it back and agree on the digest.
    if tool_available("skopeo") {
        skopeo_pull_and_inspect(&image, &loaded.manifest, scratch.path(), false);
    } else {
        eprintln!("SKIPPING the skopeo checks: skopeo is not installed");
    }
    podman_pull(&image, &loaded.manifest, scratch.path());

    // Second push of the same image: nothing moves.
    let recorder = Recorder::new();
    let again = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/berth/busybox:v2")),
        PushOptions::default(),
        recorder.clone(),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&again), [PushOutcome::AlreadyExists; 2]);
    for blob in &again.blobs {
        assert_eq!(
            states(&recorder, &blob.digest),
            [ProgressState::Waiting, ProgressState::AlreadyExists]
        );
    }

    // Cross-repository mount into a new repository.
    let recorder = Recorder::new();
    let mounted = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/berth/mounted:v1")),
        PushOptions {
            mount_from: vec![reference(&image)],
            ..PushOptions::default()
        },
        recorder.clone(),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&mounted), [PushOutcome::Mounted; 2]);
    for blob in &mounted.blobs {
        assert_eq!(
            states(&recorder, &blob.digest),
            [ProgressState::Waiting, ProgressState::AlreadyExists]
        );
    }
    // Several candidates (one on another registry, one without the blobs): the one that
    // has them is found.
    let picky = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/berth/mounted2:v1")),
        PushOptions {
            mount_from: vec![
                reference("127.0.0.2:1/berth/busybox:v1"),
                reference(&format!("{host}/berth/empty:v1")),
                reference(&format!("{host}/berth/mounted:v1")),
            ],
            ..PushOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&picky), [PushOutcome::Mounted; 2]);
    // A candidate that lacks the blobs: the registry declines and the bytes are uploaded.
    let declined = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/berth/uploaded:v1")),
        PushOptions {
            mount_from: vec![reference(&format!("{host}/berth/empty:v1"))],
            ..PushOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&declined), [PushOutcome::Uploaded; 2]);

    // Chunked upload (64 KiB chunks: the 1 MiB layer takes 16), then pull it back.
    let chunked_image = format!("{host}/berth/chunked:v1");
    let chunked = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&chunked_image),
        PushOptions {
            chunked: Some(64 * 1024),
            concurrency: 1,
            ..PushOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&chunked), [PushOutcome::Uploaded; 2]);
    let repo = Repository::new(&host, "berth/chunked").unwrap();
    let pulled = client
        .get_manifest(&repo, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.digest, loaded.manifest);
    for blob in &chunked.blobs {
        let data = client
            .fetch_blob(&repo, &blob.digest, blob.size, Arc::new(NoProgress))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert!(data.as_ref() == std::fs::read(store_blob_path(&loaded, &blob.digest)).unwrap());
    }
    if tool_available("skopeo") {
        skopeo_pull_and_inspect(&chunked_image, &loaded.manifest, scratch.path(), false);
    }

    // By digest only: the manifest is there under its digest, no tag is made.
    let by_digest = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/berth/bydigest@{}", loaded.manifest)),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(by_digest.digest, loaded.manifest);
    let repo = Repository::new(&host, "berth/bydigest").unwrap();
    assert!(client
        .head_manifest(&repo, &ManifestRef::Digest(loaded.manifest.clone()))
        .await
        .unwrap()
        .is_some());
    assert!(client
        .list_tags(&repo, None)
        .await
        .map(|tags| tags.is_empty())
        .unwrap_or(true));
    // A target digest that is not the manifest's is refused before anything moves.
    let other = Digest::sha256_of(b"other");
    let e = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/berth/wrong@{other}")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PushError::TargetDigestMismatch { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    drop(registry);
}

/// Builds an OCI index of the fixture's manifest (linux/amd64) and a small second image
/// (linux/arm64) in the store; returns the index digest and the child digests.
fn add_index(loaded: &Loaded) -> (Digest, Vec<Digest>) {
    let store = &loaded.store;
    let layer = support::bytes(300 * 1024 + 5, 99);
    let layer_digest = store.put_bytes(&layer).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let config_digest = store.put_bytes(&config).unwrap();
    let arm = Manifest::new(
        Format::Oci,
        Descriptor::new(media_type::OCI_CONFIG, config_digest, config.len() as u64),
        vec![Descriptor::new(
            media_type::OCI_LAYER_TAR,
            layer_digest,
            layer.len() as u64,
        )],
    );
    let arm_bytes = serde_json::to_vec(&arm).unwrap();
    let arm_digest = store.put_bytes(&arm_bytes).unwrap();
    let amd_size = store.info(&loaded.manifest).unwrap().unwrap().size;
    let entry = |digest: &Digest, size: u64, platform: &str| Descriptor {
        platform: Some(Platform::parse(platform).unwrap()),
        ..Descriptor::new(media_type::OCI_MANIFEST, digest.clone(), size)
    };
    let index = Index::new(
        Format::Oci,
        vec![
            entry(&loaded.manifest, amd_size, "linux/amd64"),
            entry(&arm_digest, arm_bytes.len() as u64, "linux/arm64"),
        ],
    );
    let index_digest = store
        .put_bytes(&serde_json::to_vec(&index).unwrap())
        .unwrap();
    (index_digest, vec![loaded.manifest.clone(), arm_digest])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_index_children_first() {
    require_registry!();
    let layout = require_fixture!();
    let loaded = load(&layout);
    let (index, children) = add_index(&loaded);
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let client = anonymous_client();
    let image = format!("{host}/berth/multi:v1");
    let result = push_image(
        &client,
        &loaded.store,
        &index,
        &reference(&image),
        PushOptions {
            concurrency: 4,
            ..PushOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(result.digest, index);
    assert_eq!(
        result.manifests,
        [children[0].clone(), children[1].clone(), index.clone()]
    );
    assert_eq!(outcomes(&result), [PushOutcome::Uploaded; 4]);
    let repo = Repository::new(&host, "berth/multi").unwrap();
    let top = client
        .get_manifest(&repo, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(top.digest, index);
    assert_eq!(top.media_type.as_deref(), Some(media_type::OCI_INDEX));
    for child in &children {
        let m = client
            .get_manifest(&repo, &ManifestRef::Digest(child.clone()))
            .await
            .unwrap();
        assert_eq!(m.media_type.as_deref(), Some(media_type::OCI_MANIFEST));
    }
    if tool_available("skopeo") {
        let scratch = tempfile::Builder::new()
            .prefix("berth-test-push-")
            .tempdir()
            .unwrap();
        skopeo_pull_and_inspect(&image, &index, scratch.path(), true);
    }
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_bearer_tokens() {
    require_registry!();
    let layout = require_fixture!();
    let loaded = load(&layout);
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path()).await;
    let registry = Registry::start(Options {
        auth: Auth::Token {
            realm: tokens.realm.clone(),
            cert: tokens.cert_path.clone(),
        },
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let alice = client_with(
        &host,
        Credentials::Basic {
            username: "alice".into(),
            password: "alice-pw".into(),
        },
    );
    let result = push_image(
        &alice,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/public/busybox:v1")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&result), [PushOutcome::Uploaded; 2]);
    assert!(tokens.issued() > 0);
    // Mount into a private repository (token for push on it and pull on the source).
    let mounted = push_image(
        &alice,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/private/busybox:v1")),
        PushOptions {
            mount_from: vec![reference(&format!("{host}/public/busybox:v1"))],
            ..PushOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&mounted), [PushOutcome::Mounted; 2]);
    let repo = Repository::new(&host, "private/busybox").unwrap();
    let pulled = alice
        .get_manifest(&repo, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.digest, loaded.manifest);

    // bob may pull but not push: refused, nothing put.
    let bob = client_with(
        &host,
        Credentials::Basic {
            username: "bob".into(),
            password: "bob-pw".into(),
        },
    );
    let e = push_image(
        &bob,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/private/bob:v1")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_no_manifest(
        &alice,
        &Repository::new(&host, "private/bob").unwrap(),
        "v1",
    )
    .await;
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_missing_local_blobs_are_refused() {
    require_registry!();
    let layout = require_fixture!();
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let client = anonymous_client();

    // A layer corrupted on disk (same size, one byte flipped): monolithic and chunked
    // uploads stop before the registry commits it, and no manifest is put.
    for (name, chunked) in [("mono", None), ("chunked", Some(64 * 1024))] {
        let loaded = load(&layout);
        corrupt(&loaded, &loaded.layer);
        let e = push_image(
            &client,
            &loaded.store,
            &loaded.manifest,
            &reference(&format!("{host}/corrupt/{name}:v1")),
            PushOptions {
                chunked,
                ..PushOptions::default()
            },
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, PushError::CorruptBlob { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains(&loaded.layer.to_string()), "{e}");
        let repo = Repository::new(&host, &format!("corrupt/{name}")).unwrap();
        assert_no_manifest(&client, &repo, "v1").await;
        assert_eq!(
            client.blob_exists(&repo, &loaded.layer).await.unwrap(),
            None,
            "the corrupt layer was committed"
        );
    }

    // A corrupt manifest is refused before anything moves.
    let loaded = load(&layout);
    corrupt(&loaded, &loaded.manifest);
    let e = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/corrupt/manifest:v1")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PushError::CorruptManifest { .. }), "{e}");

    // A layer missing from the store: refused where the registry lacks it, fine where
    // the registry has it.
    let loaded = load(&layout);
    let good = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/missing/has:v1")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&good), [PushOutcome::Uploaded; 2]);
    loaded.store.delete(&loaded.layer).unwrap();
    let e = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/missing/lacks:v1")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PushError::BlobNotFound { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains(&loaded.layer.to_string()), "{e}");
    assert_no_manifest(
        &client,
        &Repository::new(&host, "missing/lacks").unwrap(),
        "v1",
    )
    .await;
    let again = push_image(
        &client,
        &loaded.store,
        &loaded.manifest,
        &reference(&format!("{host}/missing/has:v2")),
        PushOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&again), [PushOutcome::AlreadyExists; 2]);
    drop(registry);
}
