//! Image archives: docker-archive, OCI layout and OCI archive in and out, import and
//! export; round trips in Rust, interop with real peers (Debian's dockerd 20.10,
//! podman, skopeo, umoci), and hostile archives.
//!
//! Peers are started privately per test (temporary data roots, sockets and storage)
//! and stopped by PID when the test ends, also on failure. A test skips loudly when a
//! peer binary or the busybox fixture (tests/fixtures/build-images.sh) is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::archive::{
    self, ArchiveError, ArchiveFormat, ImportOptions, LoadOptions, LoadReport, RefName, SaveImage,
    SaveOptions,
};
use berth_images::content::{ContentStore, LocalStore};
use berth_images::digest::Digest;
use berth_images::layer::{self, ApplyOptions, Compression};
use berth_images::manifest::{self, ContainerConfig, ImageConfig};
use berth_images::metadata::{MetadataStore, Target};
use berth_images::progress::{NoProgress, Progress, ProgressSink, ProgressState};
use berth_images::reference::Reference;
use peers::{Dockerd, Podman};

/// The busybox fixture's image ID (config digest), built reproducibly.
const BUSYBOX_ID: &str = "sha256:6c61d813ce985894f952a84f180f7e31bf1dda69bb7ac8b79db72b7ece69ca3c";
const BUSYBOX: &str = "docker.io/library/busybox:latest";

struct Env {
    tmp: tempfile::TempDir,
    store: LocalStore,
    meta: MetadataStore,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("berth-test-archive-")
            .tempdir()
            .unwrap();
        let store = LocalStore::open(&tmp.path().join("content")).unwrap();
        let meta = MetadataStore::open(&tmp.path().join("meta")).unwrap();
        Env { tmp, store, meta }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn load(&self, path: &Path) -> Result<LoadReport, ArchiveError> {
        self.load_with(path, &LoadOptions::default())
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<LoadReport, ArchiveError> {
        archive::load(&self.store, &self.meta, path, options, &NoProgress)
    }

    fn names(&self) -> Vec<String> {
        let m = self.meta.read().unwrap();
        m.images().map(|i| i.name.clone()).collect()
    }

    fn target(&self, name: &str) -> Target {
        let full = Reference::parse_normalized(name).unwrap().to_string();
        let m = self.meta.read().unwrap();
        m.image(&full)
            .unwrap_or_else(|| panic!("{full} not named"))
            .target
            .clone()
    }

    fn save_image(&self, name: &str) -> SaveImage {
        SaveImage {
            target: self.target(name),
            names: vec![Reference::parse_normalized(name).unwrap()],
        }
    }

    fn blob(&self, d: &Digest) -> Vec<u8> {
        self.store.read_to_vec(d, 1 << 30).unwrap()
    }

    fn manifest(&self, t: &Target) -> manifest::Manifest {
        manifest::parse_manifest(&self.blob(&t.digest), Some(&t.media_type)).unwrap()
    }

    fn config(&self, t: &Target) -> ImageConfig {
        let m = self.manifest(t);
        ImageConfig::parse(&self.blob(&m.config.digest)).unwrap()
    }

    fn blob_count(&self) -> usize {
        self.store.list().unwrap().len()
    }
}

/// Records progress events.
#[derive(Default)]
struct Recorder(Mutex<Vec<Progress>>);

impl ProgressSink for Recorder {
    fn report(&self, event: Progress) {
        self.0.lock().unwrap().push(event);
    }
}

// ---------------------------------------------------------------- archive builders

#[derive(Clone)]
enum Member {
    File(Vec<u8>),
    Symlink(&'static str),
}

fn tar_of<S: AsRef<str>>(members: &[(S, Member)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, m) in members {
        let name = name.as_ref();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match m {
            Member::File(data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, &data[..]).unwrap();
            }
            Member::Symlink(target) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A small layer tar with `files` (name, contents).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn config_json(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": [ { "created_by": "test" } ],
    }))
    .unwrap()
}

/// A docker-archive (legacy layout) of one image: `blobs` as stored in the archive,
/// `diff_ids` as the config says.
fn docker_archive(blobs: &[Vec<u8>], diff_ids: &[Digest], tags: &[&str]) -> (Vec<u8>, Digest) {
    let config = config_json(diff_ids);
    let config_digest = Digest::sha256_of(&config);
    let mut members = vec![(
        format!("{}.json", config_digest.hex()),
        Member::File(config.clone()),
    )];
    let mut layers = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        let path = format!("l{i}/layer.tar");
        members.push((path.clone(), Member::File(blob.clone())));
        layers.push(path);
    }
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", config_digest.hex()),
        "RepoTags": tags,
        "Layers": layers,
    }]);
    members.push((
        "manifest.json".into(),
        Member::File(serde_json::to_vec(&manifest).unwrap()),
    ));
    (tar_of(&members), config_digest)
}

fn write(env: &Env, name: &str, data: &[u8]) -> PathBuf {
    let p = env.path(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn assert_kind(err: &ArchiveError, kind: ErrorKind) {
    assert_eq!(err.kind(), kind, "unexpected kind for {err}");
}

// ---------------------------------------------------------------- round trips in Rust

#[test]
fn loads_the_busybox_docker_archive_fixture() {
    let Some(fixture) = peers::fixture("docker-archive.tar") else {
        return;
    };
    let env = Env::new();
    let rec = Recorder::default();
    let report = archive::load(
        &env.store,
        &env.meta,
        &fixture,
        &LoadOptions::default(),
        &rec,
    )
    .unwrap();
    assert_eq!(report.format, ArchiveFormat::DockerArchive);
    assert_eq!(report.images.len(), 1);
    let image = &report.images[0];
    assert_eq!(image.names, vec![BUSYBOX.to_owned()]);
    assert_eq!(image.config.to_string(), BUSYBOX_ID);
    assert_eq!(env.names(), vec![BUSYBOX.to_owned()]);
    let t = env.target(BUSYBOX);
    assert_eq!(t.media_type, manifest::media_type::DOCKER_MANIFEST);
    let m = env.manifest(&t);
    let c = env.config(&t);
    assert_eq!(m.layers.len(), 1);
    // Stored as found: uncompressed, so the blob digest is the diff ID.
    assert_eq!(m.layers[0].digest, c.rootfs.diff_ids[0]);
    assert_eq!(
        m.layers[0].media_type,
        manifest::media_type::DOCKER_LAYER_TAR
    );
    env.store.verify(&m.layers[0].digest).unwrap();
    let states: Vec<ProgressState> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.digest == m.layers[0].digest)
        .map(|e| e.state)
        .collect();
    assert_eq!(states.first(), Some(&ProgressState::Waiting));
    assert!(states.contains(&ProgressState::Downloading));
    assert_eq!(states.last(), Some(&ProgressState::Done));

    // Loading again reads nothing: every blob is there.
    let rec = Recorder::default();
    let again = archive::load(
        &env.store,
        &env.meta,
        &fixture,
        &LoadOptions::default(),
        &rec,
    )
    .unwrap();
    assert_eq!(again.images[0].target, report.images[0].target);
    assert!(again.replaced.is_empty());
    assert!(rec
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.state == ProgressState::AlreadyExists));
}

#[test]
fn docker_archive_round_trip() {
    let Some(fixture) = peers::fixture("docker-archive.tar") else {
        return;
    };
    let env = Env::new();
    let first = env.load(&fixture).unwrap();
    let out = env.path("saved.tar");
    let mut save_names = env.save_image(BUSYBOX);
    save_names
        .names
        .push(Reference::parse_normalized("localhost:5000/team/bb:v1").unwrap());
    let report = archive::save_docker_archive(
        &env.store,
        &[save_names],
        std::fs::File::create(&out).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.blobs, 1);
    // Docker's own layout and names.
    let listing = list_tar(&out);
    assert!(listing.contains(&"manifest.json".to_owned()));
    assert!(listing.contains(&"repositories".to_owned()));
    assert!(listing.contains(&format!("{}.json", &BUSYBOX_ID[7..])));
    assert!(listing.iter().any(|n| n.ends_with("/layer.tar")));
    assert!(listing.iter().any(|n| n.ends_with("/VERSION")));
    let manifest_json: serde_json::Value =
        serde_json::from_slice(&read_member(&out, "manifest.json")).unwrap();
    assert_eq!(
        manifest_json[0]["RepoTags"],
        serde_json::json!([BUSYBOX, "localhost:5000/team/bb:v1"])
    );

    // The same archive without manifest.json: the pre-1.10 format.
    let legacy = env.path("legacy.tar");
    without_member(&out, "manifest.json", &legacy);
    let env_legacy = Env::new();
    let old = env_legacy.load(&legacy).unwrap();
    assert_eq!(old.format, ArchiveFormat::DockerArchive);
    assert_eq!(old.images[0].diff_ids, first.images[0].diff_ids);
    assert_eq!(
        old.images[0].names,
        vec![BUSYBOX.to_owned(), "localhost:5000/team/bb:v1".to_owned()]
    );
    let rebuilt = env_legacy.config(&old.images[0].target);
    let original = env.config(&first.images[0].target);
    assert_eq!(rebuilt.config, original.config);
    assert_eq!(rebuilt.architecture, original.architecture);

    let env2 = Env::new();
    let second = env2.load(&out).unwrap();
    assert_eq!(second.images[0].config, first.images[0].config);
    assert_eq!(second.images[0].diff_ids, first.images[0].diff_ids);
    // Same layers as found, same synthesized manifest.
    assert_eq!(second.images[0].target, first.images[0].target);
    assert_eq!(
        env2.names(),
        vec![BUSYBOX.to_owned(), "localhost:5000/team/bb:v1".to_owned()]
    );
}

#[test]
fn oci_layout_round_trip() {
    let Some(fixture) = peers::fixture("oci") else {
        return;
    };
    let env = Env::new();
    // The fixture's ref.name is a bare tag: without a repository it loads unnamed.
    let unnamed = env.load(&fixture).unwrap();
    assert_eq!(unnamed.format, ArchiveFormat::OciLayout);
    assert!(unnamed.images[0].names.is_empty());
    assert!(env.names().is_empty());
    let options = LoadOptions {
        repository: Some("localhost/busybox".into()),
        ..LoadOptions::default()
    };
    let first = env.load_with(&fixture, &options).unwrap();
    let name = "localhost/busybox:latest";
    assert_eq!(first.images[0].names, vec![name.to_owned()]);
    assert_eq!(first.images[0].config.to_string(), BUSYBOX_ID);
    // The manifest is kept as it is (its digest is the layout's).
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        first.images[0].target.digest.to_string(),
        index["manifests"][0]["digest"].as_str().unwrap()
    );

    // Layout directory out and back.
    let dir = env.path("layout");
    let image = env.save_image(name);
    archive::save_oci_layout(
        &env.store,
        std::slice::from_ref(&image),
        &dir,
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let env2 = Env::new();
    let second = env2.load_with(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(second.images[0].target, first.images[0].target);
    // io.containerd.image.name carries the full name.
    assert_eq!(second.images[0].names, vec![name.to_owned()]);

    // OCI archive out and back.
    let tar = env.path("oci.tar");
    archive::save_oci_archive(
        &env.store,
        std::slice::from_ref(&image),
        std::fs::File::create(&tar).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let env3 = Env::new();
    let third = env3.load(&tar).unwrap();
    assert_eq!(third.format, ArchiveFormat::OciLayout);
    assert_eq!(third.images[0].target, first.images[0].target);

    // Saving again into the same layout adds to it; the same ref name is replaced.
    let other = SaveImage {
        target: image.target.clone(),
        names: vec![Reference::parse_normalized("localhost/busybox:v2").unwrap()],
    };
    archive::save_oci_layout(
        &env.store,
        &[other],
        &dir,
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(refs, vec!["latest", "v2"]);
    // Two repositories with the same tag need full names.
    let clash = [
        image.clone(),
        SaveImage {
            target: env
                .load(&write(
                    &env,
                    "x.tar",
                    &small_archive(b"x", &["other:latest"]).0,
                ))
                .unwrap()
                .images[0]
                .target
                .clone(),
            names: vec![Reference::parse_normalized("other:latest").unwrap()],
        },
    ];
    let err = archive::save_oci_layout(
        &env.store,
        &clash,
        &env.path("l2"),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::RefNameConflict { .. }), "{err}");
    let full = SaveOptions {
        ref_name: RefName::FullName,
        ..SaveOptions::default()
    };
    archive::save_oci_layout(&env.store, &clash, &env.path("l3"), &full, &NoProgress).unwrap();
    let env4 = Env::new();
    let r = env4.load(&env.path("l3")).unwrap();
    assert_eq!(r.images.len(), 2);
}

/// A one-layer docker-archive whose layer holds `content`.
fn small_archive(content: &[u8], tags: &[&str]) -> (Vec<u8>, Digest) {
    let layer = layer_tar(&[("f", content)]);
    let d = Digest::sha256_of(&layer);
    docker_archive(&[layer], &[d], tags)
}

#[test]
fn compressed_layers_are_stored_as_found_and_saved_uncompressed() {
    let env = Env::new();
    let l0 = layer_tar(&[("a", b"first layer")]);
    let l1 = layer_tar(&[("b", b"second layer")]);
    let l2 = layer_tar(&[("c", b"third layer")]);
    let diff_ids = [
        Digest::sha256_of(&l0),
        Digest::sha256_of(&l1),
        Digest::sha256_of(&l2),
    ];
    let blobs = [gzip(&l0), zstd::encode_all(&l1[..], 3).unwrap(), l2.clone()];
    let (bytes, config) = docker_archive(&blobs, &diff_ids, &["app:1"]);
    let path = write(&env, "c.tar", &bytes);
    let report = env.load(&path).unwrap();
    assert_eq!(report.images[0].config, config);
    let m = env.manifest(&report.images[0].target);
    use manifest::media_type::*;
    assert_eq!(m.layers[0].media_type, DOCKER_LAYER_GZIP);
    assert_eq!(m.layers[0].digest, Digest::sha256_of(&blobs[0]));
    assert_eq!(m.layers[1].media_type, DOCKER_LAYER_ZSTD);
    assert_eq!(m.layers[1].digest, Digest::sha256_of(&blobs[1]));
    assert_eq!(m.layers[2].media_type, DOCKER_LAYER_TAR);
    assert_eq!(m.layers[2].digest, diff_ids[2]);

    // Saved, every layer.tar is uncompressed and hashes to its diff ID.
    let out = env.path("out.tar");
    let rec = Recorder::default();
    archive::save_docker_archive(
        &env.store,
        &[env.save_image("app:1")],
        std::fs::File::create(&out).unwrap(),
        &SaveOptions::default(),
        &rec,
    )
    .unwrap();
    let manifest_json: serde_json::Value =
        serde_json::from_slice(&read_member(&out, "manifest.json")).unwrap();
    for (i, layer) in manifest_json[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let data = read_member(&out, layer.as_str().unwrap());
        assert_eq!(Digest::sha256_of(&data), diff_ids[i]);
    }
    assert!(rec
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.state == ProgressState::Uploading));
    let env2 = Env::new();
    let back = env2.load(&out).unwrap();
    assert_eq!(back.images[0].config, config);
}

#[test]
fn docker_25_layout_loads_through_manifest_json() {
    let env = Env::new();
    let layer = layer_tar(&[("etc/os-release", b"ID=test\n")]);
    let diff_id = Digest::sha256_of(&layer);
    let config = config_json(std::slice::from_ref(&diff_id));
    let config_digest = Digest::sha256_of(&config);
    let oci_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [ { "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": layer.len() } ],
    }))
    .unwrap();
    let md = Digest::sha256_of(&oci_manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [ { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": oci_manifest.len(),
            "annotations": { "io.containerd.image.name": "docker.io/library/test:25", "org.opencontainers.image.ref.name": "25" } } ],
    }))
    .unwrap();
    let manifest_json = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config_digest.hex()),
        "RepoTags": ["test:25"],
        "Layers": [format!("blobs/sha256/{}", diff_id.hex())],
    }]))
    .unwrap();
    let bytes = tar_of(&[
        (
            "blobs/sha256/".to_owned() + config_digest.hex(),
            Member::File(config),
        ),
        (
            "blobs/sha256/".to_owned() + diff_id.hex(),
            Member::File(layer),
        ),
        (
            "blobs/sha256/".to_owned() + md.hex(),
            Member::File(oci_manifest),
        ),
        ("index.json".to_owned(), Member::File(index)),
        ("manifest.json".to_owned(), Member::File(manifest_json)),
        (
            "oci-layout".to_owned(),
            Member::File(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ),
        (
            "repositories".to_owned(),
            Member::File(br#"{"test":{"25":"x"}}"#.to_vec()),
        ),
    ]);
    let report = env.load(&write(&env, "d25.tar", &bytes)).unwrap();
    assert_eq!(report.format, ArchiveFormat::DockerArchive);
    assert_eq!(report.images[0].config, config_digest);
    assert_eq!(
        report.images[0].names,
        vec!["docker.io/library/test:25".to_owned()]
    );
}

#[test]
fn multi_image_archive_shares_layers() {
    let env = Env::new();
    let base = layer_tar(&[("base", b"base")]);
    let top = layer_tar(&[("top", b"top")]);
    let (db, dt) = (Digest::sha256_of(&base), Digest::sha256_of(&top));
    let (a, _) = docker_archive(
        std::slice::from_ref(&base),
        std::slice::from_ref(&db),
        &["a:1"],
    );
    let (b, _) = docker_archive(&[base, top], &[db, dt], &["b:1", "b:2"]);
    env.load(&write(&env, "a.tar", &a)).unwrap();
    env.load(&write(&env, "b.tar", &b)).unwrap();
    let images = [
        env.save_image("a:1"),
        env.save_image("b:1"),
        env.save_image("b:2"),
    ];
    let out = env.path("ab.tar");
    let report = archive::save_docker_archive(
        &env.store,
        &images,
        std::fs::File::create(&out).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    // b:1 and b:2 are one image; the base layer is written once.
    assert_eq!(report.manifests.len(), 2);
    assert_eq!(report.blobs, 2);
    let env2 = Env::new();
    let back = env2.load(&out).unwrap();
    assert_eq!(back.images.len(), 2);
    assert_eq!(
        env2.names(),
        vec![
            "docker.io/library/a:1".to_owned(),
            "docker.io/library/b:1".to_owned(),
            "docker.io/library/b:2".to_owned()
        ]
    );
}

// ---------------------------------------------------------------- import / export

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc/empty")).unwrap();
    std::fs::write(root.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    std::fs::write(root.join("etc/hostname"), b"berth\n").unwrap();
    std::fs::hard_link(root.join("bin/tool"), root.join("bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("tool", root.join("bin/alias")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

#[test]
fn export_then_import_round_trips() {
    let env = Env::new();
    let tree = env.path("tree");
    make_tree(&tree);
    let mut tar = Vec::new();
    let stats = archive::export(&tree, &mut tar).unwrap();
    assert_eq!(Digest::sha256_of(&tar), stats.digest);
    // Deterministic: the same tree gives the same bytes.
    let mut again = Vec::new();
    archive::export(&tree, &mut again).unwrap();
    assert_eq!(tar, again);
    // Hard link stored once.
    let mut ar = tar::Archive::new(&tar[..]);
    let kinds: BTreeMap<String, tar::EntryType> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert_eq!(kinds["bin/tool"], tar::EntryType::Regular);
    assert_eq!(kinds["bin/tool-link"], tar::EntryType::Link);
    assert_eq!(kinds["abs"], tar::EntryType::Symlink);

    for (compression, input) in [
        (Compression::Gzip, tar.clone()),
        (Compression::None, tar.clone()),
        (Compression::Zstd, tar.clone()),
        // Already compressed input is stored as it is.
        (Compression::Gzip, gzip(&tar)),
    ] {
        let options = ImportOptions {
            name: Some(Reference::parse_normalized("imported:1").unwrap()),
            config: ContainerConfig {
                cmd: Some(vec!["/bin/tool".into()]),
                env: vec!["A=b".into()],
                working_dir: Some("/etc".into()),
                ..ContainerConfig::default()
            },
            message: Some("from a test".into()),
            compression,
            ..ImportOptions::default()
        };
        let imported =
            archive::import(&env.store, &env.meta, &input[..], &options, &NoProgress).unwrap();
        assert_eq!(imported.diff_id, stats.digest);
        assert_eq!(
            imported.name.as_deref(),
            Some("docker.io/library/imported:1")
        );
        assert_eq!(env.target("docker.io/library/imported:1"), imported.target);
        let c = env.config(&imported.target);
        assert_eq!(c.rootfs.diff_ids, vec![stats.digest.clone()]);
        assert_eq!(c.os, "linux");
        assert_eq!(
            c.config.as_ref().unwrap().working_dir.as_deref(),
            Some("/etc")
        );
        assert_eq!(c.history[0].comment.as_deref(), Some("from a test"));
        assert!(c.created.as_deref().unwrap().ends_with('Z'));
        let layer = &imported.layer;
        assert_eq!(
            layer.layer_type().unwrap().compression,
            if input[0] == 0x1f {
                Compression::Gzip
            } else {
                compression
            }
        );
        // The stored layer unpacks to the same tree.
        let unpacked = env.path(&format!("unpacked-{}", layer.digest.hex()));
        std::fs::create_dir(&unpacked).unwrap();
        let blob = env.store.open(&layer.digest).unwrap();
        let stats2 = layer::apply(
            &unpacked,
            layer::decompress(blob, layer.layer_type().unwrap().compression).unwrap(),
            &ApplyOptions::default(),
        )
        .unwrap();
        assert_eq!(stats2.diff_id, stats.digest);
        let mut re = Vec::new();
        archive::export(&unpacked, &mut re).unwrap();
        assert_eq!(Digest::sha256_of(&re), stats.digest);
    }

    // Not a tar.
    let err = archive::import(
        &env.store,
        &env.meta,
        &b"this is not a tar archive at all"[..],
        &ImportOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::NotATar { .. }), "{err}");

    // An imported (gzip) image saves as a docker-archive with the layer uncompressed.
    let out = env.path("imported.tar");
    archive::save_docker_archive(
        &env.store,
        &[env.save_image("imported:1")],
        std::fs::File::create(&out).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let env2 = Env::new();
    let back = env2.load(&out).unwrap();
    assert_eq!(back.images[0].diff_ids, vec![stats.digest]);
}

#[test]
fn export_keeps_devices_and_ignores_overlay_markers() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPING: needs root (device nodes, trusted xattrs)");
        return;
    }
    let env = Env::new();
    let tree = env.path("tree");
    std::fs::create_dir_all(tree.join("dir")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tree.join("null0"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    rustix::fs::setxattr(
        tree.join("dir"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut tar = Vec::new();
    archive::export(&tree, &mut tar).unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    let names: Vec<(String, tar::EntryType)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("dir/".to_owned(), tar::EntryType::Directory),
            ("null0".to_owned(), tar::EntryType::Char)
        ]
    );
}

// ---------------------------------------------------------------- hostile archives

/// Loads `bytes`; checks it fails with `kind`, names nothing and leaves no layer blob
/// named `forbidden` in the store. Returns the error.
fn refused(bytes: &[u8], kind: ErrorKind) -> ArchiveError {
    let env = Env::new();
    let err = env.load(&write(&env, "bad.tar", bytes)).unwrap_err();
    assert_kind(&err, kind);
    assert!(env.names().is_empty(), "{err}: names recorded");
    err
}

#[test]
fn refuses_path_traversal() {
    let layer = layer_tar(&[("f", b"x")]);
    let d = Digest::sha256_of(&layer);
    let config = config_json(std::slice::from_ref(&d));
    let cd = Digest::sha256_of(&config);
    for (config_path, layer_path) in [
        (format!("{}.json", cd.hex()), "../../etc/passwd".to_owned()),
        (format!("{}.json", cd.hex()), "/etc/passwd".to_owned()),
        ("../config.json".to_owned(), "l/layer.tar".to_owned()),
        (format!("{}.json", cd.hex()), "l/../../layer.tar".to_owned()),
    ] {
        let manifest = serde_json::json!([{ "Config": config_path, "RepoTags": ["evil:1"], "Layers": [layer_path] }]);
        let bytes = tar_of(&[
            (format!("{}.json", cd.hex()), Member::File(config.clone())),
            ("l/layer.tar".into(), Member::File(layer.clone())),
            (
                "manifest.json".into(),
                Member::File(serde_json::to_vec(&manifest).unwrap()),
            ),
        ]);
        let err = refused(&bytes, ErrorKind::InvalidArgument);
        assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }
    // A symlink member pointing out of the archive.
    let manifest = serde_json::json!([{ "Config": format!("{}.json", cd.hex()), "RepoTags": ["evil:1"], "Layers": ["l/layer.tar"] }]);
    let bytes = tar_of(&[
        (format!("{}.json", cd.hex()), Member::File(config.clone())),
        (
            "l/layer.tar".into(),
            Member::Symlink("../../../../etc/passwd"),
        ),
        (
            "manifest.json".into(),
            Member::File(serde_json::to_vec(&manifest).unwrap()),
        ),
    ]);
    let err = refused(&bytes, ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
    // An absolute symlink.
    let bytes = tar_of(&[
        (format!("{}.json", cd.hex()), Member::File(config)),
        ("l/layer.tar".into(), Member::Symlink("/etc/passwd")),
        (
            "manifest.json".into(),
            Member::File(serde_json::to_vec(&manifest).unwrap()),
        ),
    ]);
    let err = refused(&bytes, ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
}

#[test]
fn refuses_hostile_legacy_archives() {
    let id_a = "a".repeat(64);
    let id_b = "b".repeat(64);
    // A layer ID that is a path.
    let bytes = tar_of(&[(
        "repositories",
        Member::File(br#"{"evil":{"1":"../../../etc"}}"#.to_vec()),
    )]);
    let err = refused(&bytes, ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
    // A parent chain that loops.
    let repos = format!(r#"{{"loop":{{"1":"{id_a}"}}}}"#);
    let bytes = tar_of(&[
        ("repositories".to_owned(), Member::File(repos.into_bytes())),
        (
            format!("{id_a}/json"),
            Member::File(format!(r#"{{"id":"{id_a}","parent":"{id_b}"}}"#).into_bytes()),
        ),
        (
            format!("{id_b}/json"),
            Member::File(format!(r#"{{"id":"{id_b}","parent":"{id_a}"}}"#).into_bytes()),
        ),
    ]);
    let err = refused(&bytes, ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("loops"), "{err}");
}

#[test]
fn refuses_a_layer_whose_diff_id_lies() {
    let real = layer_tar(&[("f", b"real")]);
    let fake = layer_tar(&[("f", b"fake")]);
    let claimed = Digest::sha256_of(&real);
    for blob in [fake.clone(), gzip(&fake)] {
        let env = Env::new();
        let (bytes, _) = docker_archive(&[blob], std::slice::from_ref(&claimed), &["liar:1"]);
        let err = env.load(&write(&env, "liar.tar", &bytes)).unwrap_err();
        assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");
        assert_kind(&err, ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("l0/layer.tar"), "{err}");
        assert!(env.names().is_empty());
        // Nothing of the lying layer is visible in the store.
        assert!(env.store.info(&claimed).unwrap().is_none());
        assert!(env.store.info(&Digest::sha256_of(&fake)).unwrap().is_none());
        assert_eq!(env.blob_count(), 0);
    }
}

#[test]
fn refuses_oversized_documents_and_archives() {
    // A 5 MiB manifest.json.
    let mut huge = b"[".to_vec();
    huge.resize(5 << 20, b' ');
    huge.push(b']');
    let err = refused(
        &tar_of(&[("manifest.json", Member::File(huge))]),
        ErrorKind::InvalidArgument,
    );
    assert!(matches!(err, ArchiveError::Limit { .. }), "{err}");
    assert!(err.to_string().contains("manifest.json"), "{err}");

    // Too many members.
    let env = Env::new();
    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let members: Vec<(&str, Member)> = names
        .iter()
        .map(|n| (n.as_str(), Member::File(Vec::new())))
        .collect();
    let path = write(&env, "many.tar", &tar_of(&members));
    let options = LoadOptions {
        limits: archive::ArchiveLimits {
            max_entries: 10,
            ..archive::ArchiveLimits::default()
        },
        ..LoadOptions::default()
    };
    let err = env.load_with(&path, &options).unwrap_err();
    assert!(matches!(err, ArchiveError::Limit { .. }), "{err}");

    // A gzip bomb layer stops at the bound.
    let zeros = vec![0u8; 8 << 20];
    let bomb = gzip(&zeros);
    let (bytes, _) = docker_archive(&[bomb], &[Digest::sha256_of(&zeros)], &["bomb:1"]);
    let path = write(&env, "bomb.tar", &bytes);
    let options = LoadOptions {
        limits: archive::ArchiveLimits {
            max_layer_bytes: 1 << 20,
            ..archive::ArchiveLimits::default()
        },
        ..LoadOptions::default()
    };
    let err = env.load_with(&path, &options).unwrap_err();
    assert!(matches!(err, ArchiveError::Limit { .. }), "{err}");
    assert!(env.names().is_empty());
}

#[test]
fn refuses_duplicates_truncation_and_garbage() {
    let (good, _) = small_archive(b"ok", &["dup:1"]);
    // Duplicate member.
    let mut dup_members = vec![("manifest.json", Member::File(b"[]".to_vec()))];
    dup_members.push(("./manifest.json", Member::File(b"[]".to_vec())));
    let err = refused(&tar_of(&dup_members), ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::DuplicateEntry { .. }), "{err}");

    // Truncated in the middle of a member.
    let err = refused(&good[..good.len() / 2], ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::Truncated { .. }), "{err}");

    // Not a tar at all.
    let err = refused(&[0x42u8; 4096], ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::TarHeader { .. }), "{err}");

    // No manifest.json, no index.json.
    let err = refused(
        &tar_of(&[("x", Member::File(b"1".to_vec()))]),
        ErrorKind::InvalidArgument,
    );
    assert!(matches!(err, ArchiveError::UnknownFormat), "{err}");

    // Malformed manifest.json, missing layer, bad name, layer count.
    let layer = layer_tar(&[("f", b"x")]);
    let d = Digest::sha256_of(&layer);
    let config = config_json(std::slice::from_ref(&d));
    let cname = format!("{}.json", Digest::sha256_of(&config).hex());
    for (manifest, want) in [
        (b"{not json".to_vec(), "Json"),
        (
            serde_json::to_vec(&serde_json::json!([{ "Config": cname, "RepoTags": ["x:1"], "Layers": ["nope/layer.tar"] }])).unwrap(),
            "Missing",
        ),
        (
            serde_json::to_vec(&serde_json::json!([{ "Config": cname, "RepoTags": ["UPPER/Case:1"], "Layers": ["l/layer.tar"] }])).unwrap(),
            "InvalidName",
        ),
        (
            serde_json::to_vec(&serde_json::json!([{ "Config": cname, "RepoTags": ["x:1"], "Layers": [] }])).unwrap(),
            "LayerCount",
        ),
        (
            serde_json::to_vec(&serde_json::json!([{ "Config": "l/layer.tar", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"] }])).unwrap(),
            "Manifest",
        ),
    ] {
        let bytes = tar_of(&[
            (cname.clone(), Member::File(config.clone())),
            ("l/layer.tar".into(), Member::File(layer.clone())),
            ("manifest.json".into(), Member::File(manifest)),
        ]);
        let err = refused(&bytes, ErrorKind::InvalidArgument);
        assert!(format!("{err:?}").starts_with(want), "{want}: {err:?}");
    }
}

#[test]
fn a_bad_image_names_nothing_of_the_archive() {
    // Two images; the second's layer lies: the first must not be named either.
    let good = layer_tar(&[("g", b"good")]);
    let bad = layer_tar(&[("b", b"bad")]);
    let dg = Digest::sha256_of(&good);
    let c1 = config_json(std::slice::from_ref(&dg));
    let c2 = config_json(&[Digest::sha256_of(b"not the layer")]);
    let (h1, h2) = (Digest::sha256_of(&c1), Digest::sha256_of(&c2));
    let manifest = serde_json::json!([
        { "Config": format!("{}.json", h1.hex()), "RepoTags": ["good:1"], "Layers": ["g/layer.tar"] },
        { "Config": format!("{}.json", h2.hex()), "RepoTags": ["bad:1"], "Layers": ["b/layer.tar"] },
    ]);
    let bytes = tar_of(&[
        (format!("{}.json", h1.hex()), Member::File(c1)),
        (format!("{}.json", h2.hex()), Member::File(c2)),
        ("g/layer.tar".into(), Member::File(good)),
        ("b/layer.tar".into(), Member::File(bad)),
        (
            "manifest.json".into(),
            Member::File(serde_json::to_vec(&manifest).unwrap()),
        ),
    ]);
    let err = refused(&bytes, ErrorKind::FailedPrecondition);
    assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");

    // Two images claiming one name.
    let l1 = layer_tar(&[("1", b"1")]);
    let l2 = layer_tar(&[("2", b"2")]);
    let (d1, d2) = (Digest::sha256_of(&l1), Digest::sha256_of(&l2));
    let (c1, c2) = (
        config_json(std::slice::from_ref(&d1)),
        config_json(std::slice::from_ref(&d2)),
    );
    let (h1, h2) = (Digest::sha256_of(&c1), Digest::sha256_of(&c2));
    let manifest = serde_json::json!([
        { "Config": format!("{}.json", h1.hex()), "RepoTags": ["same:1"], "Layers": ["1/layer.tar"] },
        { "Config": format!("{}.json", h2.hex()), "RepoTags": ["same:1"], "Layers": ["2/layer.tar"] },
    ]);
    let bytes = tar_of(&[
        (format!("{}.json", h1.hex()), Member::File(c1)),
        (format!("{}.json", h2.hex()), Member::File(c2)),
        ("1/layer.tar".into(), Member::File(l1)),
        ("2/layer.tar".into(), Member::File(l2)),
        (
            "manifest.json".into(),
            Member::File(serde_json::to_vec(&manifest).unwrap()),
        ),
    ]);
    let err = refused(&bytes, ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::NameConflict { .. }), "{err}");
}

#[test]
fn oci_layouts_are_verified() {
    let Some(fixture) = peers::fixture("oci") else {
        return;
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("index.json")).unwrap()).unwrap();
    let md = Digest::parse(index["manifests"][0]["digest"].as_str().unwrap()).unwrap();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture.join("blobs/sha256").join(md.hex())).unwrap(),
    )
    .unwrap();
    let layer = Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let options = LoadOptions {
        repository: Some("localhost/bb".into()),
        ..LoadOptions::default()
    };

    let copy = |env: &Env| {
        let dir = env.path("layout");
        run_ok(Command::new("cp").arg("-a").arg(&fixture).arg(&dir));
        dir
    };
    // A tampered layer: the store refuses it.
    let env = Env::new();
    let dir = copy(&env);
    let lp = dir.join("blobs/sha256").join(layer.hex());
    let mut data = std::fs::read(&lp).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::remove_file(&lp).unwrap();
    std::fs::write(&lp, &data).unwrap();
    let err = env.load_with(&dir, &options).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert!(env.names().is_empty());
    assert!(env.store.info(&layer).unwrap().is_none());

    // A lying index.json digest.
    let env = Env::new();
    let dir = copy(&env);
    let text = std::fs::read_to_string(dir.join("index.json")).unwrap();
    let other = Digest::sha256_of(b"something else");
    std::fs::write(
        dir.join("index.json"),
        text.replace(&md.to_string(), &other.to_string()),
    )
    .unwrap();
    std::fs::write(
        dir.join("blobs/sha256").join(other.hex()),
        std::fs::read(dir.join("blobs/sha256").join(md.hex())).unwrap(),
    )
    .unwrap();
    let err = env.load_with(&dir, &options).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert!(env.names().is_empty());

    // A blob that is a symlink out of the layout resolves inside it (and is missing).
    let env = Env::new();
    let dir = copy(&env);
    let lp = dir.join("blobs/sha256").join(layer.hex());
    std::fs::remove_file(&lp).unwrap();
    std::os::unix::fs::symlink(
        "/var/cache/berth-fixtures/busybox/oci/blobs/sha256/".to_owned() + layer.hex(),
        &lp,
    )
    .unwrap();
    let err = env.load_with(&dir, &options).unwrap_err();
    assert!(matches!(err, ArchiveError::Missing { .. }), "{err}");

    // A bad layout version.
    let env = Env::new();
    let dir = copy(&env);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let err = env.load_with(&dir, &options).unwrap_err();
    assert!(matches!(err, ArchiveError::LayoutVersion { .. }), "{err}");
}

// ---------------------------------------------------------------- peers

fn run_ok(cmd: &mut Command) -> String {
    peers::stdout(&peers::run(cmd))
}

fn list_tar(path: &Path) -> Vec<String> {
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned()
        })
        .collect()
}

fn read_member(path: &Path, name: &str) -> Vec<u8> {
    let mut target = name.to_owned();
    for _ in 0..4 {
        let mut ar2 = tar::Archive::new(std::fs::File::open(path).unwrap());
        let mut next = None;
        for e in ar2.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == target {
                if e.header().entry_type() == tar::EntryType::Symlink {
                    let link = e
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    let dir = Path::new(&target).parent().unwrap().to_path_buf();
                    let joined = dir.join(link);
                    let mut parts: Vec<String> = Vec::new();
                    for c in joined.components() {
                        match c {
                            std::path::Component::ParentDir => {
                                parts.pop();
                            }
                            std::path::Component::Normal(s) => {
                                parts.push(s.to_string_lossy().into_owned())
                            }
                            _ => {}
                        }
                    }
                    next = Some(parts.join("/"));
                    break;
                }
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                return data;
            }
        }
        target = next.unwrap_or_else(|| panic!("{name} not in {}", path.display()));
    }
    panic!("{name}: too many symlinks");
}

/// A copy of the tar at `path` without member `name` (a `docker save` of Docker before
/// 1.10 has no `manifest.json`).
fn without_member(path: &Path, name: &str, out: &Path) {
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            continue;
        }
        let h = e.header().clone();
        b.append(&h, &mut e).unwrap();
    }
    b.finish().unwrap();
}

/// docker's view of an image: (ID, RootFS.Layers).
fn docker_inspect(d: &Dockerd, image: &str) -> (String, Vec<String>) {
    let id = d.run(&["image", "inspect", "--format", "{{.Id}}", image]);
    let layers = d.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        image,
    ]);
    (id, serde_json::from_str(&layers).unwrap())
}

#[test]
fn dockerd_interop() {
    let Some(fixture) = peers::fixture("docker-archive.tar") else {
        return;
    };
    if !Dockerd::available() {
        return;
    }
    let env = Env::new();
    let d = Dockerd::start();
    d.run(&["load", "-i", fixture.to_str().unwrap()]);
    // A two-layer image made by docker itself.
    d.run(&[
        "run",
        "--name",
        "berth-test-commit",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hi > /hello; mkdir -p /x/y; ln /hello /x/y/hl; rm /bin/vi",
    ]);
    d.run(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/hello\"]",
        "berth-test-commit",
        "berth-test/multi:1",
    ]);
    d.run(&["rm", "berth-test-commit"]);
    let saved = env.path("docker-saved.tar");
    d.run(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        "busybox:latest",
        "berth-test/multi:1",
    ]);

    // docker save → Berth: same image IDs and diff IDs.
    let report = env.load(&saved).unwrap();
    assert_eq!(report.images.len(), 2);
    for (name, docker_name) in [
        (BUSYBOX, "busybox:latest"),
        ("docker.io/berth-test/multi:1", "berth-test/multi:1"),
    ] {
        let image = report
            .images
            .iter()
            .find(|i| i.names.contains(&name.to_owned()))
            .unwrap();
        let (id, layers) = docker_inspect(&d, docker_name);
        assert_eq!(image.config.to_string(), id, "{name}");
        let diff_ids: Vec<String> = image.diff_ids.iter().map(ToString::to_string).collect();
        assert_eq!(diff_ids, layers, "{name}");
    }
    assert_eq!(
        report.images[0].names.len() + report.images[1].names.len(),
        2
    );
    // Docker's own output without manifest.json (the pre-1.10 format).
    let legacy = env.path("docker-legacy.tar");
    without_member(&saved, "manifest.json", &legacy);
    let env_legacy = Env::new();
    let old = env_legacy.load(&legacy).unwrap();
    let multi = old
        .images
        .iter()
        .find(|i| i.names == ["docker.io/berth-test/multi:1"])
        .unwrap();
    let (_, layers) = docker_inspect(&d, "berth-test/multi:1");
    let diff_ids: Vec<String> = multi.diff_ids.iter().map(ToString::to_string).collect();
    assert_eq!(diff_ids, layers);
    let rebuilt = env_legacy.config(&multi.target);
    assert_eq!(
        rebuilt.config.as_ref().unwrap().cmd,
        Some(vec!["cat".to_owned(), "/hello".to_owned()])
    );

    // Berth save → docker load: same IDs, and the image runs.
    d.run(&["rmi", "busybox:latest", "berth-test/multi:1"]);
    let ours = env.path("berth-saved.tar");
    let images = [
        SaveImage {
            target: env.target("docker.io/berth-test/multi:1"),
            names: vec![Reference::parse_normalized("berth-test/from-berth:2").unwrap()],
        },
        env.save_image(BUSYBOX),
    ];
    archive::save_docker_archive(
        &env.store,
        &images,
        std::fs::File::create(&ours).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let out = d.run(&["load", "-i", ours.to_str().unwrap()]);
    assert!(out.contains("berth-test/from-berth:2"), "{out}");
    let (id, layers) = docker_inspect(&d, "berth-test/from-berth:2");
    let multi = env.config(&env.target("docker.io/berth-test/multi:1"));
    assert_eq!(
        id,
        env.manifest(&env.target("docker.io/berth-test/multi:1"))
            .config
            .digest
            .to_string()
    );
    assert_eq!(
        layers,
        multi
            .rootfs
            .diff_ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let out = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "berth-test/from-berth:2",
    ]);
    assert_eq!(out, "hi");
    let out = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:latest",
        "/bin/busybox",
        "echo",
        "ok",
    ]);
    assert_eq!(out, "ok");

    // An imported image (gzip layer in the store) loads into docker and runs.
    let tree = env.path("tree");
    make_tree(&tree);
    std::fs::copy(
        Path::new(peers::FIXTURES).join("busybox/rootfs/bin/busybox"),
        tree.join("bin/busybox"),
    )
    .unwrap();
    let mut tar = Vec::new();
    archive::export(&tree, &mut tar).unwrap();
    let imported = archive::import(
        &env.store,
        &env.meta,
        &tar[..],
        &ImportOptions {
            name: Some(Reference::parse_normalized("berth-test/imported:1").unwrap()),
            config: ContainerConfig {
                cmd: Some(vec!["/bin/busybox".into(), "sh".into(), "/bin/tool".into()]),
                ..ContainerConfig::default()
            },
            ..ImportOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    let ours = env.path("imported.tar");
    archive::save_docker_archive(
        &env.store,
        &[env.save_image("berth-test/imported:1")],
        std::fs::File::create(&ours).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    d.run(&["load", "-i", ours.to_str().unwrap()]);
    let (id, _) = docker_inspect(&d, "berth-test/imported:1");
    assert_eq!(id, imported.config.to_string());
    let out = d.run(&["run", "--rm", "--network", "none", "berth-test/imported:1"]);
    assert_eq!(out, "tool");

    // docker export of a container → Berth import.
    let cid = d.run(&["create", "--network", "none", "busybox:latest"]);
    let exported = env.path("exported.tar");
    d.run(&["export", "-o", exported.to_str().unwrap(), &cid]);
    d.run(&["rm", &cid]);
    let im = archive::import(
        &env.store,
        &env.meta,
        std::fs::File::open(&exported).unwrap(),
        &ImportOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        im.diff_id,
        Digest::sha256_of(&std::fs::read(&exported).unwrap())
    );
}

#[test]
fn podman_interop() {
    let Some(fixture) = peers::fixture("docker-archive.tar") else {
        return;
    };
    if !Podman::available() {
        return;
    }
    let env = Env::new();
    env.load(&fixture).unwrap();
    let two = env
        .load(&write(&env, "two.tar", &{
            let l0 = layer_tar(&[("a", b"a")]);
            let l1 = layer_tar(&[("b", b"b")]);
            let d = [Digest::sha256_of(&l0), Digest::sha256_of(&l1)];
            docker_archive(&[gzip(&l0), l1], &d, &["berth-test/two:1"]).0
        }))
        .unwrap();
    let ours = env.path("for-podman.tar");
    archive::save_docker_archive(
        &env.store,
        &[env.save_image(BUSYBOX), env.save_image("berth-test/two:1")],
        std::fs::File::create(&ours).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let p = Podman::new();
    let out = p.run(&["load", "-i", ours.to_str().unwrap()]);
    assert!(out.contains("busybox:latest"), "{out}");
    for (name, config, diff_ids) in [
        (
            "docker.io/library/busybox:latest",
            BUSYBOX_ID.to_owned(),
            env.config(&env.target(BUSYBOX)).rootfs.diff_ids,
        ),
        (
            "docker.io/berth-test/two:1",
            two.images[0].config.to_string(),
            two.images[0].diff_ids.clone(),
        ),
    ] {
        let id = p.run(&["image", "inspect", "--format", "{{.Id}}", name]);
        assert_eq!(format!("sha256:{id}"), config, "{name}");
        let layers = p.run(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            name,
        ]);
        let layers: Vec<String> = serde_json::from_str(&layers).unwrap();
        assert_eq!(
            layers,
            diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "{name}"
        );
    }
    // podman save (docker-archive and oci-archive) → Berth.
    for format in ["docker-archive", "oci-archive"] {
        let file = env.path(&format!("podman-{format}.tar"));
        p.run(&[
            "save",
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
            "docker.io/library/busybox:latest",
        ]);
        let env2 = Env::new();
        let back = env2.load(&file).unwrap();
        // podman keeps the config of a docker-archive, rewrites it for OCI.
        if format == "docker-archive" {
            assert_eq!(back.images[0].config.to_string(), BUSYBOX_ID, "{format}");
        }
        assert_eq!(
            back.images[0].diff_ids,
            env.config(&env.target(BUSYBOX)).rootfs.diff_ids,
            "{format}"
        );
        assert_eq!(back.images[0].names, vec![BUSYBOX.to_owned()], "{format}");
    }
}

#[test]
fn skopeo_and_umoci_interop() {
    let Some(fixture) = peers::fixture("docker-archive.tar") else {
        return;
    };
    if peers::skip_without("skopeo") {
        return;
    }
    let env = Env::new();
    let dir = env.path("skopeo-layout");
    let file = env.path("skopeo.oci.tar");
    let src = format!("docker-archive:{}", fixture.display());
    run_ok(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", &src])
            .arg(format!("oci:{}:latest", dir.display())),
    );
    run_ok(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", &src])
            .arg(format!("oci-archive:{}:latest", file.display())),
    );
    let options = LoadOptions {
        repository: Some("localhost/busybox".into()),
        ..LoadOptions::default()
    };
    let fixture_diff_ids = {
        let env0 = Env::new();
        env0.load(&fixture).unwrap().images[0].diff_ids.clone()
    };
    for (path, reference) in [
        (&dir, format!("oci:{}:latest", dir.display())),
        (&file, format!("oci-archive:{}:latest", file.display())),
    ] {
        // skopeo rewrites the config when it converts to OCI: compare with what it wrote.
        let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", &reference]));
        let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let env2 = Env::new();
        let r = env2.load_with(path, &options).unwrap();
        let image = &r.images[0];
        assert_eq!(
            image.config.to_string(),
            raw["config"]["digest"].as_str().unwrap(),
            "{reference}"
        );
        assert_eq!(image.diff_ids, fixture_diff_ids, "{reference}");
        assert_eq!(image.names, vec!["localhost/busybox:latest".to_owned()]);
    }

    // Berth's OCI layout and archive → skopeo inspect and copy, umoci unpack.
    env.load(&fixture).unwrap();
    let image = env.save_image(BUSYBOX);
    let ours = env.path("berth-layout");
    let report = archive::save_oci_layout(
        &env.store,
        std::slice::from_ref(&image),
        &ours,
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let digest = report.manifests[0].digest.to_string();
    let ours_tar = env.path("berth.oci.tar");
    archive::save_oci_archive(
        &env.store,
        &[image],
        std::fs::File::create(&ours_tar).unwrap(),
        &SaveOptions::default(),
        &NoProgress,
    )
    .unwrap();
    for reference in [
        format!("oci:{}:latest", ours.display()),
        format!("oci-archive:{}:latest", ours_tar.display()),
    ] {
        let out = run_ok(Command::new("skopeo").args(["inspect", &reference]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Digest"], digest.as_str(), "{reference}");
        let config = run_ok(Command::new("skopeo").args(["inspect", "--config", &reference]));
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        // The layer is stored uncompressed: its digest is its diff ID.
        assert_eq!(
            config["rootfs"]["diff_ids"][0], v["Layers"][0],
            "{reference}"
        );
        // A full copy verifies every blob.
        let copy = env.path("copy-out");
        let _ = std::fs::remove_dir_all(&copy);
        run_ok(
            Command::new("skopeo")
                .args(["--insecure-policy", "copy", "--quiet", &reference])
                .arg(format!("dir:{}", copy.display())),
        );
    }
    if peers::skip_without("umoci") {
        return;
    }
    let tags = run_ok(Command::new("umoci").args(["ls", "--layout"]).arg(&ours));
    assert_eq!(tags, "latest");
    let bundle = env.path("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", ours.display()))
            .arg(&bundle),
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert!(bundle.join("config.json").is_file());
    let stat = run_ok(
        Command::new("umoci")
            .args(["stat", "--image"])
            .arg(format!("{}:latest", ours.display())),
    );
    assert!(stat.contains("LAYER"), "{stat}");
}
