//! `push_image` against Debian's `docker-registry` on loopback (anonymous and behind the
//! token server), with the busybox OCI fixture loaded into a `LocalStore`, checked by
//! pulling the pushed images back with `skopeo` and `podman` (private storage in a
//! temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::content::{ContentStore, LocalStore};
use berth_images::digest::Digest;
use berth_images::manifest::{media_type, Descriptor, Format, Index, Manifest, Platform};
use berth_images::progress::{NoProgress, ProgressSink, ProgressState};
use berth_images::push::{push_image, PushError, PushOptions, PushResult};
use berth_images::registry::{Client, ManifestRef, PushOutcome, Repository};
use support::image::{fetch, get_tagged, tagged};
use support::peers::{self, Podman};
use support::registry::Registry;
use support::token::TokenServer;
use support::{anonymous_client, basic, blob_path, client_with, reference, Recorder};

/// The busybox OCI layout fixture, or `None` (after a loud skip line) when it or
/// `docker-registry` is missing.
fn busybox_layout() -> Option<PathBuf> {
    if Registry::missing() {
        return None;
    }
    support::fixture("busybox/oci")
}

/// A content store in a temporary directory with the fixture's blobs loaded, and the
/// digests of the image manifest the layout's index names, its config and its layer.
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
    let dir = support::tmpdir("push-store");
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
    let manifest = support::layout_manifest(layout);
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

impl Loaded {
    /// Pushes the fixture's image to `image`.
    async fn push(&self, client: &Client, image: &str) -> Result<PushResult, PushError> {
        self.push_with(client, image, PushOptions::default()).await
    }

    async fn push_with(
        &self,
        client: &Client,
        image: &str,
        options: PushOptions,
    ) -> Result<PushResult, PushError> {
        self.push_target(client, &self.manifest, image, options, Arc::new(NoProgress))
            .await
    }

    /// Pushes the manifest or index `target` of the store to `image`.
    async fn push_target(
        &self,
        client: &Client,
        target: &Digest,
        image: &str,
        options: PushOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<PushResult, PushError> {
        push_image(
            client,
            &self.store,
            target,
            &reference(image),
            options,
            progress,
        )
        .await
    }

    /// Pushes the fixture's image to `image`, recording progress; checks that every
    /// blob went through `states`.
    async fn push_recorded(
        &self,
        client: &Client,
        image: &str,
        options: PushOptions,
        states: &[ProgressState],
    ) -> (PushResult, Arc<Recorder>) {
        let recorder = Recorder::new();
        let result = self
            .push_target(client, &self.manifest, image, options, recorder.clone())
            .await
            .unwrap();
        for blob in &result.blobs {
            assert_eq!(recorder.states(&blob.digest), states, "{image}");
        }
        (result, recorder)
    }

    /// Flips one byte in the middle of a stored blob (same size, wrong digest; blobs
    /// are 0444, root may still write them).
    fn corrupt(&self, digest: &Digest) {
        let path = blob_path(&self.root, digest);
        let mut data = std::fs::read(&path).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x55;
        std::fs::write(&path, &data).unwrap();
    }
}

/// Options that offer the blobs of `images` for cross-repository mounts.
fn mount_from(images: &[&str]) -> PushOptions {
    PushOptions {
        mount_from: images.iter().map(|i| reference(i)).collect(),
        ..PushOptions::default()
    }
}

fn outcomes(result: &PushResult) -> Vec<PushOutcome> {
    result.blobs.iter().map(|b| b.outcome).collect()
}

/// The manifest tagged `v1` in `repo` on `host` is `manifest`; returns the repository.
async fn assert_tagged(client: &Client, host: &str, repo: &str, manifest: &Digest) -> Repository {
    let repo = Repository::new(host, repo).unwrap();
    let pulled = get_tagged(client, &repo, "v1").await.unwrap();
    assert_eq!(pulled.digest, *manifest, "{repo}");
    repo
}

async fn assert_no_manifest(client: &Client, host: &str, repo: &str, tag: &str) {
    let repo = Repository::new(host, repo).unwrap();
    assert!(
        client
            .head_manifest(&repo, &tagged(tag))
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
    let mut options = vec!["--preserve-digests", "--src-tls-verify=false"];
    if all {
        options.push("--all");
    }
    peers::skopeo_copy(
        &options,
        &format!("docker://{image}"),
        &format!("oci:{}:pulled", out.display()),
    );
    assert_eq!(support::layout_manifest(&out), *expected);
    let image = format!("docker://{image}");
    let raw = peers::skopeo_inspect(&["--tls-verify=false", "--raw"], &image);
    assert_eq!(Digest::sha256_of(raw.as_bytes()), *expected);
    if !all {
        let inspect = peers::skopeo_inspect(&["--tls-verify=false"], &image);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["Digest"].as_str().unwrap(), expected.to_string());
    }
}

/// Pulls `image` with podman into private storage and checks the digest podman
/// records. Skips loudly when podman is missing.
fn podman_pull(image: &str, expected: &Digest) {
    if !Podman::available() {
        return;
    }
    let podman = Podman::new();
    podman.run(&["pull", "--quiet", "--tls-verify=false", image]);
    let digest = podman.run(&["image", "inspect", "--format", "{{.Digest}}", image]);
    assert_eq!(digest, expected.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_busybox_pull_back_with_peers_mount_and_repush() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let loaded = load(&layout);
    let registry = Registry::anonymous();
    let host = registry.host();
    let client = anonymous_client();
    let scratch = support::tmpdir("push");
    let skopeo = !peers::skip_without("skopeo");

    // First push: everything is uploaded; each blob goes Waiting → Uploading → Done.
    let image = format!("{host}/berth/busybox:v1");
    let (result, recorder) = loaded
        .push_recorded(
            &client,
            &image,
            PushOptions::default(),
            &[
                ProgressState::Waiting,
                ProgressState::Uploading,
                ProgressState::Done,
            ],
        )
        .await;
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
        let last_upload = recorder
            .events()
            .into_iter()
            .rfind(|e| e.digest == blob.digest && e.state == ProgressState::Uploading)
            .unwrap();
        assert_eq!(last_upload.current, blob.size);
        assert_eq!(last_upload.total, Some(blob.size));
    }

    // Peers pull it back and agree on the digest.
    if skopeo {
        skopeo_pull_and_inspect(&image, &loaded.manifest, scratch.path(), false);
    }
    podman_pull(&image, &loaded.manifest);

    // Second push of the same image: nothing moves. A cross-repository mount into a new
    // repository moves nothing either.
    let nothing_moves = [ProgressState::Waiting, ProgressState::AlreadyExists];
    for (target, options, outcome) in [
        (
            "berth/busybox:v2",
            PushOptions::default(),
            PushOutcome::AlreadyExists,
        ),
        (
            "berth/mounted:v1",
            mount_from(&[&image]),
            PushOutcome::Mounted,
        ),
    ] {
        let target = format!("{host}/{target}");
        let (result, _) = loaded
            .push_recorded(&client, &target, options, &nothing_moves)
            .await;
        assert_eq!(outcomes(&result), [outcome; 2], "{target}");
    }
    // Several candidates (one on another registry, one without the blobs): the one that
    // has them is found. A candidate that lacks the blobs: the registry declines and the
    // bytes are uploaded.
    let empty = format!("{host}/berth/empty:v1");
    for (target, candidates, outcome) in [
        (
            "berth/mounted2:v1",
            vec![
                "127.0.0.2:1/berth/busybox:v1".to_owned(),
                empty.clone(),
                format!("{host}/berth/mounted:v1"),
            ],
            PushOutcome::Mounted,
        ),
        (
            "berth/uploaded:v1",
            vec![empty.clone()],
            PushOutcome::Uploaded,
        ),
    ] {
        let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let result = loaded
            .push_with(
                &client,
                &format!("{host}/{target}"),
                mount_from(&candidates),
            )
            .await
            .unwrap();
        assert_eq!(outcomes(&result), [outcome; 2], "{target}");
    }

    // Chunked upload (64 KiB chunks: the 1 MiB layer takes 16), then pull it back.
    let chunked_image = format!("{host}/berth/chunked:v1");
    let options = PushOptions {
        chunked: Some(64 * 1024),
        concurrency: 1,
        ..PushOptions::default()
    };
    let chunked = loaded
        .push_with(&client, &chunked_image, options)
        .await
        .unwrap();
    assert_eq!(outcomes(&chunked), [PushOutcome::Uploaded; 2]);
    let repo = assert_tagged(&client, &host, "berth/chunked", &loaded.manifest).await;
    for blob in &chunked.blobs {
        let data = fetch(&client, &repo, &blob.digest, blob.size)
            .await
            .unwrap();
        let stored = std::fs::read(blob_path(&loaded.root, &blob.digest)).unwrap();
        assert!(data.as_ref() == stored);
    }
    if skopeo {
        skopeo_pull_and_inspect(&chunked_image, &loaded.manifest, scratch.path(), false);
    }

    // By digest only: the manifest is there under its digest, no tag is made.
    let by_digest = loaded
        .push(
            &client,
            &format!("{host}/berth/bydigest@{}", loaded.manifest),
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
    let e = loaded
        .push(&client, &format!("{host}/berth/wrong@{other}"))
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
    let Some(layout) = busybox_layout() else {
        return;
    };
    let loaded = load(&layout);
    let (index, children) = add_index(&loaded);
    let registry = Registry::anonymous();
    let host = registry.host();
    let client = anonymous_client();
    let image = format!("{host}/berth/multi:v1");
    let options = PushOptions {
        concurrency: 4,
        ..PushOptions::default()
    };
    let result = loaded
        .push_target(&client, &index, &image, options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(result.digest, index);
    assert_eq!(
        result.manifests,
        [children[0].clone(), children[1].clone(), index.clone()]
    );
    assert_eq!(outcomes(&result), [PushOutcome::Uploaded; 4]);
    let repo = Repository::new(&host, "berth/multi").unwrap();
    let top = get_tagged(&client, &repo, "v1").await.unwrap();
    assert_eq!(top.digest, index);
    assert_eq!(top.media_type.as_deref(), Some(media_type::OCI_INDEX));
    for child in &children {
        let m = client
            .get_manifest(&repo, &ManifestRef::Digest(child.clone()))
            .await
            .unwrap();
        assert_eq!(m.media_type.as_deref(), Some(media_type::OCI_MANIFEST));
    }
    if !peers::skip_without("skopeo") {
        let scratch = support::tmpdir("push");
        skopeo_pull_and_inspect(&image, &index, scratch.path(), true);
    }
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_bearer_tokens() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let loaded = load(&layout);
    let dir = support::tmpdir("push-tokens");
    let tokens = TokenServer::start(dir.path()).await;
    let registry = Registry::with_tokens(&tokens);
    let host = registry.host();
    let alice = client_with(&host, basic("alice", "alice-pw"));
    let public = format!("{host}/public/busybox:v1");
    let result = loaded.push(&alice, &public).await.unwrap();
    assert_eq!(outcomes(&result), [PushOutcome::Uploaded; 2]);
    assert!(tokens.issued() > 0);
    // Mount into a private repository (token for push on it and pull on the source).
    let mounted = loaded
        .push_with(
            &alice,
            &format!("{host}/private/busybox:v1"),
            mount_from(&[&public]),
        )
        .await
        .unwrap();
    assert_eq!(outcomes(&mounted), [PushOutcome::Mounted; 2]);
    assert_tagged(&alice, &host, "private/busybox", &loaded.manifest).await;

    // bob may pull but not push: refused, nothing put.
    let bob = client_with(&host, basic("bob", "bob-pw"));
    let e = loaded
        .push(&bob, &format!("{host}/private/bob:v1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_no_manifest(&alice, &host, "private/bob", "v1").await;
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_missing_local_blobs_are_refused() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let registry = Registry::anonymous();
    let host = registry.host();
    let client = anonymous_client();

    // A layer corrupted on disk (same size, one byte flipped): monolithic and chunked
    // uploads stop before the registry commits it, and no manifest is put.
    for (name, chunked) in [("mono", None), ("chunked", Some(64 * 1024))] {
        let loaded = load(&layout);
        loaded.corrupt(&loaded.layer);
        let options = PushOptions {
            chunked,
            ..PushOptions::default()
        };
        let e = loaded
            .push_with(&client, &format!("{host}/corrupt/{name}:v1"), options)
            .await
            .unwrap_err();
        assert!(matches!(e, PushError::CorruptBlob { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains(&loaded.layer.to_string()), "{e}");
        let repo = format!("corrupt/{name}");
        assert_no_manifest(&client, &host, &repo, "v1").await;
        assert_eq!(
            client
                .blob_exists(&Repository::new(&host, &repo).unwrap(), &loaded.layer)
                .await
                .unwrap(),
            None,
            "the corrupt layer was committed"
        );
    }

    // A corrupt manifest is refused before anything moves.
    let loaded = load(&layout);
    loaded.corrupt(&loaded.manifest);
    let e = loaded
        .push(&client, &format!("{host}/corrupt/manifest:v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, PushError::CorruptManifest { .. }), "{e}");

    // A layer missing from the store: refused where the registry lacks it, fine where
    // the registry has it.
    let loaded = load(&layout);
    let push = |repo: &str| {
        let (loaded, client) = (&loaded, &client);
        let image = format!("{host}/missing/{repo}");
        async move { loaded.push(client, &image).await }
    };
    let good = push("has:v1").await.unwrap();
    assert_eq!(outcomes(&good), [PushOutcome::Uploaded; 2]);
    loaded.store.delete(&loaded.layer).unwrap();
    let e = push("lacks:v1").await.unwrap_err();
    assert!(matches!(e, PushError::BlobNotFound { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains(&loaded.layer.to_string()), "{e}");
    assert_no_manifest(&client, &host, "missing/lacks", "v1").await;
    let again = push("has:v2").await.unwrap();
    assert_eq!(outcomes(&again), [PushOutcome::AlreadyExists; 2]);
    drop(registry);
}
