//! The image service's load, save, import and push, end to end as root: images imported
//! from a root filesystem tar are saved as a docker-archive and as an OCI archive,
//! loaded into other stores (names, dangling images, unpacked and mountable), pushed
//! to Debian's `docker-registry` on loopback (repository digest recorded, blobs mounted
//! across repositories) and pulled back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs::File;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::archive::{ArchiveFormat, ImportOptions, LoadOptions, SaveOptions};
use berth_images::manifest::Platform;
use berth_images::progress::NoProgress;
use berth_images::push::PushOptions;
use berth_images::registry::{Anonymous, PushOutcome};
use berth_images::service::{
    Image, ImageService, ImageSummary, LoadSource, SaveTarget, ServiceConfig,
};
use support::registry::Registry;
use support::tarball;
use support::{reference, test_config, Mounted};

fn open(store: &Path) -> ImageService {
    let config = ServiceConfig {
        registry: test_config(),
        credentials: Some(Arc::new(Anonymous)),
        ..ServiceConfig::default()
    };
    ImageService::open(store, config).unwrap()
}

/// A root filesystem tar with `marker` in `/etc/berth-marker`.
fn rootfs_tar(marker: &str) -> Vec<u8> {
    tarball::files(&[
        ("etc/berth-marker", marker.as_bytes()),
        ("bin/hello", b"#!/bin/sh\necho hello\n"),
        ("usr/share/doc/readme", &support::bytes(100_000, 7)),
    ])
}

async fn import(svc: &ImageService, name: Option<&str>, marker: &str) -> Image {
    let options = ImportOptions {
        name: name.map(reference),
        ..ImportOptions::default()
    };
    svc.import(
        Box::new(Cursor::new(rootfs_tar(marker))),
        options,
        Arc::new(NoProgress),
    )
    .await
    .unwrap()
}

/// Mounts container `id`'s root filesystem of `image` under `dir` and returns the
/// marker file's contents.
async fn marker_in(svc: &ImageService, image: &str, id: &str, dir: &Path) -> String {
    let mounts = svc.prepare_rootfs(image, id).await.unwrap();
    let text = {
        let _mounted = Mounted::new(&mounts, dir);
        std::fs::read_to_string(dir.join("etc/berth-marker")).unwrap()
    };
    svc.remove_rootfs(id).await.unwrap();
    text
}

fn summary<'a>(list: &'a [ImageSummary], image: &Image) -> &'a ImageSummary {
    list.iter()
        .find(|s| s.id == image.id)
        .unwrap_or_else(|| panic!("{} not listed in {list:#?}", image.id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_save_and_load_keep_names_and_contents() {
    if support::skip_unless_root("overlay mounts, ownership") {
        return;
    }
    let dir = support::tmpdir("transfer-archive");
    let a = open(&dir.path().join("a"));
    let app = import(&a, Some("localhost/berth-test/app:1"), "app one").await;
    assert_eq!(app.repo_tags, ["localhost/berth-test/app:1"]);
    assert!(
        app.layers.iter().all(|l| l.unpacked_size.is_some()),
        "{app:#?}"
    );
    let unnamed = import(&a, None, "nameless").await;
    assert!(unnamed.repo_tags.is_empty());
    assert!(
        summary(&a.list().await.unwrap(), &unnamed)
            .repo_tags
            .is_empty(),
        "an unnamed import is listed as <none>"
    );

    // docker-archive by name, OCI archive by ID.
    let docker_tar = dir.path().join("app.docker.tar");
    let report = a
        .save(
            &["localhost/berth-test/app:1".to_owned()],
            SaveTarget::DockerArchive(Box::new(File::create(&docker_tar).unwrap())),
            SaveOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(report.manifests.len(), 1);
    let oci_tar = dir.path().join("app.oci.tar");
    a.save(
        &[app.id.to_string()],
        SaveTarget::OciArchive(Box::new(File::create(&oci_tar).unwrap())),
        SaveOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    // Loading an unnamed copy of an image the store has named changes nothing.
    let before = a.list().await.unwrap();
    a.load(
        LoadSource::Path(oci_tar.clone()),
        LoadOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(a.list().await.unwrap(), before);
    let missing = a
        .save(
            &["localhost/berth-test/absent:1".to_owned()],
            SaveTarget::OciLayout(dir.path().join("never")),
            SaveOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert!(!dir.path().join("never").exists());

    // Store B had another image under the same name: the load moves the name, and
    // the old image stays, dangling.
    let b = open(&dir.path().join("b"));
    let old = import(&b, Some("localhost/berth-test/app:1"), "old").await;
    let loaded = b
        .load(
            LoadSource::Path(docker_tar.clone()),
            LoadOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(loaded.format, ArchiveFormat::DockerArchive);
    assert_eq!(loaded.images.len(), 1);
    assert_eq!(loaded.images[0].config, app.id);
    assert_eq!(loaded.images[0].names, ["localhost/berth-test/app:1"]);
    assert_eq!(loaded.replaced.len(), 1);
    let list = b.list().await.unwrap();
    assert_eq!(
        summary(&list, &app).repo_tags,
        ["localhost/berth-test/app:1"]
    );
    assert!(summary(&list, &old).repo_tags.is_empty(), "{list:#?}");
    // Unpacked on arrival: the layers have snapshots before any container asks.
    let inspected = b.inspect("localhost/berth-test/app:1").await.unwrap();
    assert!(inspected.layers.iter().all(|l| l.unpacked_size.is_some()));
    assert_eq!(
        marker_in(
            &b,
            "localhost/berth-test/app:1",
            "c1",
            &dir.path().join("mnt-b")
        )
        .await,
        "app one"
    );
    // Loading it again changes nothing.
    let again = b
        .load(
            LoadSource::File(File::open(&docker_tar).unwrap()),
            LoadOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert!(again.replaced.is_empty());
    assert_eq!(b.list().await.unwrap().len(), list.len());

    // The OCI archive saved by ID carries no name: loaded as a dangling image.
    let c = open(&dir.path().join("c"));
    let loaded = c
        .load(
            LoadSource::Path(oci_tar.clone()),
            LoadOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(loaded.format, ArchiveFormat::OciLayout);
    assert!(loaded.images[0].names.is_empty());
    let list = c.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(summary(&list, &app).repo_tags.is_empty());
    assert_eq!(
        marker_in(&c, &app.id.to_string(), "c2", &dir.path().join("mnt-c")).await,
        "app one"
    );

    // A broken archive changes nothing in the store.
    let junk = dir.path().join("junk.tar");
    std::fs::write(
        &junk,
        tarball::files(&[("manifest.json", b"[{\"Config\": 1}]")]),
    )
    .unwrap();
    let err = c
        .load(
            LoadSource::Path(junk),
            LoadOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(c.list().await.unwrap(), list);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_records_the_repo_digest_and_mounts_across_repositories() {
    if support::skip_unless_root("overlay mounts, ownership") || Registry::missing() {
        return;
    }
    let registry = Registry::anonymous();
    let host = registry.host();
    let dir = support::tmpdir("transfer-push");
    let a = open(&dir.path().join("a"));
    let app = import(&a, Some("localhost/berth-test/app:1"), "pushed").await;

    // An image ID has no repository of its own.
    let err = a
        .push(
            &app.id.to_string(),
            None,
            PushOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    let first = reference(&format!("{host}/berth-test/app:1"));
    a.tag("localhost/berth-test/app:1", &first).await.unwrap();
    let pushed = a
        .push(
            &first.to_string(),
            None,
            PushOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert!(
        pushed
            .blobs
            .iter()
            .all(|b| b.outcome == PushOutcome::Uploaded),
        "{pushed:#?}"
    );
    let inspected = a.inspect(&first.to_string()).await.unwrap();
    assert!(
        inspected
            .repo_digests
            .contains(&format!("{host}/berth-test/app@{}", pushed.digest)),
        "{inspected:#?}"
    );

    // Pushed under another repository of the same registry (by ID, with a target):
    // the layer is mounted from the first repository, not uploaded again.
    let second = reference(&format!("{host}/berth-test/copy:2"));
    let copied = a
        .push(
            &app.id.to_string(),
            Some(&second),
            PushOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, pushed.digest);
    assert!(
        copied
            .blobs
            .iter()
            .all(|b| b.outcome == PushOutcome::Mounted),
        "{copied:#?}"
    );

    // Pulled back into an empty store: the same image, the same files.
    let b = open(&dir.path().join("b"));
    let pulled = b
        .pull(&second, &Platform::host(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(pulled.id, app.id);
    assert_eq!(
        marker_in(&b, &second.to_string(), "c1", &dir.path().join("mnt")).await,
        "pushed"
    );
    drop(registry);
}

/// Rewrites the OCI layout `dir` (one image) so that its config lists a wrong diff ID:
/// every blob still matches its digest, only the unpack can tell.
fn break_diff_id(dir: &Path) {
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = berth_images::digest::Digest::sha256_of(bytes).to_string();
        std::fs::write(blob(&digest), bytes).unwrap();
        (digest, bytes.len())
    };
    let mut index = support::read_json(&dir.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&manifest_digest)).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&config_digest)).unwrap()).unwrap();
    config["rootfs"]["diff_ids"][0] = berth_images::digest::Digest::sha256_of(b"not this layer")
        .to_string()
        .into();
    let (digest, size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = size.into();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_names_leave_dangling_images_and_broken_loads_move_nothing() {
    if support::skip_unless_root("overlay mounts, ownership") {
        return;
    }
    let dir = support::tmpdir("transfer-undo");
    let name = "localhost/berth-test/app:1";
    let b = open(&dir.path().join("b"));
    let first = import(&b, Some(name), "first").await;
    let second = import(&b, Some(name), "second").await;
    let list = b.list().await.unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(summary(&list, &first).repo_tags.is_empty(), "{list:#?}");
    assert_eq!(summary(&list, &second).repo_tags, [name]);

    // An image whose layer does not match its config, under the same name.
    let a = open(&dir.path().join("a"));
    import(&a, Some(name), "broken").await;
    let layout = dir.path().join("layout");
    a.save(
        &[name.to_owned()],
        SaveTarget::OciLayout(layout.clone()),
        SaveOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    break_diff_id(&layout);
    let err = b
        .load(
            LoadSource::Path(layout),
            LoadOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("diff ID"), "{err}");
    assert_eq!(b.list().await.unwrap(), list, "a failed load moved names");
    assert_eq!(
        marker_in(&b, name, "c1", &dir.path().join("mnt")).await,
        "second"
    );

    // Names that would lie are refused.
    let refused = b
        .import(
            Box::new(Cursor::new(rootfs_tar("x"))),
            ImportOptions {
                name: Some(reference("sha256:abc")),
                ..ImportOptions::default()
            },
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidArgument, "{refused}");
}
