//! Image archives: docker-archive, OCI layout and OCI archive in and out, import and
//! export; round trips in Rust, interop with real peers (Debian's dockerd 20.10,
//! podman, skopeo, umoci), and hostile archives.
//!
//! Peers are started privately per test (temporary data roots, sockets and storage)
//! and stopped by PID when the test ends, also on failure. A test skips loudly when a
//! peer binary or the busybox fixture (tests/fixtures/build-images.sh) is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::archive::{
    self, ArchiveError, ArchiveFormat, ImportOptions, ImportedImage, LoadOptions, LoadReport,
    RefName, SaveImage, SaveOptions, SaveReport,
};
use berth_images::content::{ContentStore, LocalStore};
use berth_images::digest::Digest;
use berth_images::layer::{self, ApplyOptions, Compression};
use berth_images::manifest::{self, ContainerConfig, ImageConfig};
use berth_images::metadata::{MetadataStore, Target};
use berth_images::progress::{NoProgress, ProgressSink, ProgressState};
use support::peers::{self, run_stdout, Dockerd, Podman};
use support::tarball::{self, gzip, Tar};
use support::{blob_path, reference, Recorder};

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
        let tmp = support::tmpdir("archive");
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

    /// Loads `path`, recording progress.
    fn load_recorded(&self, path: &Path) -> (LoadReport, Recorder) {
        let rec = Recorder::default();
        let report =
            archive::load(&self.store, &self.meta, path, &LoadOptions::default(), &rec).unwrap();
        (report, rec)
    }

    /// Writes `bytes` to the file `name` and loads it.
    fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<LoadReport, ArchiveError> {
        self.load(&write(self, name, bytes))
    }

    fn import(&self, input: impl Read + Send, options: &ImportOptions) -> ImportedImage {
        archive::import(&self.store, &self.meta, input, options, &NoProgress).unwrap()
    }

    /// Saves `images` as a docker-archive into the file `out`.
    fn save_docker(&self, images: &[SaveImage], out: &Path) -> SaveReport {
        self.save_docker_with(images, out, &NoProgress)
    }

    fn save_docker_with(
        &self,
        images: &[SaveImage],
        out: &Path,
        progress: &dyn ProgressSink,
    ) -> SaveReport {
        let file = std::fs::File::create(out).unwrap();
        archive::save_docker_archive(&self.store, images, file, &SaveOptions::default(), progress)
            .unwrap()
    }

    /// Saves `images` into the OCI layout `dir`.
    fn save_layout(&self, images: &[SaveImage], dir: &Path) -> Result<SaveReport, ArchiveError> {
        self.save_layout_with(images, dir, &SaveOptions::default())
    }

    fn save_layout_with(
        &self,
        images: &[SaveImage],
        dir: &Path,
        options: &SaveOptions,
    ) -> Result<SaveReport, ArchiveError> {
        archive::save_oci_layout(&self.store, images, dir, options, &NoProgress)
    }

    /// Saves `images` as an OCI archive into the file `out`.
    fn save_oci_archive(&self, images: &[SaveImage], out: &Path) -> SaveReport {
        let file = std::fs::File::create(out).unwrap();
        archive::save_oci_archive(
            &self.store,
            images,
            file,
            &SaveOptions::default(),
            &NoProgress,
        )
        .unwrap()
    }

    fn names(&self) -> Vec<String> {
        let m = self.meta.read().unwrap();
        m.images().map(|i| i.name.clone()).collect()
    }

    fn target(&self, name: &str) -> Target {
        let full = reference(name).to_string();
        let m = self.meta.read().unwrap();
        m.image(&full)
            .unwrap_or_else(|| panic!("{full} not named"))
            .target
            .clone()
    }

    fn save_image(&self, name: &str) -> SaveImage {
        SaveImage {
            target: self.target(name),
            names: vec![reference(name)],
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

// ---------------------------------------------------------------- archive builders

#[derive(Clone)]
enum Member {
    File(Vec<u8>),
    Symlink(&'static str),
}

fn tar_of<S: AsRef<str>>(members: &[(S, Member)]) -> Vec<u8> {
    let mut t = Tar::new();
    for (name, m) in members {
        match m {
            Member::File(data) => t.file(name.as_ref(), data),
            Member::Symlink(target) => t.symlink(name.as_ref(), target),
        };
    }
    t.bytes()
}

/// A small layer tar with `files` (name, contents).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    tarball::files(files)
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

/// The name of the config `config` in a docker-archive.
fn config_name(config: &[u8]) -> String {
    format!("{}.json", Digest::sha256_of(config).hex())
}

/// An image of a docker-archive: (blobs as stored in the archive, diff IDs as its
/// config says, tags).
type ArchivedImage<'a> = (&'a [Vec<u8>], &'a [Digest], &'a [&'a str]);

/// A docker-archive (legacy layout) of `images`: the configs, then the layers
/// (`l<n>/layer.tar`, numbered across images), then `manifest.json`.
fn docker_archive_of(images: &[ArchivedImage]) -> Vec<u8> {
    let mut configs = Vec::new();
    let mut layers = Vec::new();
    let mut manifest = Vec::new();
    for (blobs, diff_ids, tags) in images {
        let config = config_json(diff_ids);
        let name = config_name(&config);
        let mut paths = Vec::new();
        for blob in blobs.iter() {
            let path = format!("l{}/layer.tar", layers.len());
            layers.push((path.clone(), Member::File(blob.clone())));
            paths.push(path);
        }
        manifest.push(serde_json::json!({ "Config": name, "RepoTags": tags, "Layers": paths }));
        configs.push((name, Member::File(config)));
    }
    configs.extend(layers);
    configs.push((
        "manifest.json".into(),
        Member::File(serde_json::to_vec(&manifest).unwrap()),
    ));
    tar_of(&configs)
}

/// A docker-archive of one image (see [`docker_archive_of`]) and its config digest.
fn docker_archive(blobs: &[Vec<u8>], diff_ids: &[Digest], tags: &[&str]) -> (Vec<u8>, Digest) {
    (
        docker_archive_of(&[(blobs, diff_ids, tags)]),
        Digest::sha256_of(&config_json(diff_ids)),
    )
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
    let Some(fixture) = support::fixture("busybox/docker-archive.tar") else {
        return;
    };
    let env = Env::new();
    let (report, rec) = env.load_recorded(&fixture);
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
    let states = rec.states(&m.layers[0].digest);
    assert_eq!(states.first(), Some(&ProgressState::Waiting));
    assert!(states.contains(&ProgressState::Downloading));
    assert_eq!(states.last(), Some(&ProgressState::Done));

    // Loading again reads nothing: every blob is there.
    let (again, rec) = env.load_recorded(&fixture);
    assert_eq!(again.images[0].target, report.images[0].target);
    assert!(again.replaced.is_empty());
    assert!(rec
        .events()
        .iter()
        .any(|e| e.state == ProgressState::AlreadyExists));
}

#[test]
fn docker_archive_round_trip() {
    let Some(fixture) = support::fixture("busybox/docker-archive.tar") else {
        return;
    };
    let env = Env::new();
    let first = env.load(&fixture).unwrap();
    let out = env.path("saved.tar");
    let mut save_names = env.save_image(BUSYBOX);
    save_names
        .names
        .push(reference("localhost:5000/team/bb:v1"));
    let report = env.save_docker(&[save_names], &out);
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
    let Some(fixture) = support::fixture("busybox/oci") else {
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
    assert_eq!(
        first.images[0].target.digest,
        support::layout_manifest(&fixture)
    );

    // Layout directory out and back.
    let dir = env.path("layout");
    let image = env.save_image(name);
    env.save_layout(std::slice::from_ref(&image), &dir).unwrap();
    let env2 = Env::new();
    let second = env2.load_with(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(second.images[0].target, first.images[0].target);
    // io.containerd.image.name carries the full name.
    assert_eq!(second.images[0].names, vec![name.to_owned()]);

    // OCI archive out and back.
    let tar = env.path("oci.tar");
    env.save_oci_archive(std::slice::from_ref(&image), &tar);
    let env3 = Env::new();
    let third = env3.load(&tar).unwrap();
    assert_eq!(third.format, ArchiveFormat::OciLayout);
    assert_eq!(third.images[0].target, first.images[0].target);

    // Saving again into the same layout adds to it; the same ref name is replaced.
    let other = SaveImage {
        target: image.target.clone(),
        names: vec![reference("localhost/busybox:v2")],
    };
    env.save_layout(&[other], &dir).unwrap();
    let index = support::read_json(&dir.join("index.json"));
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
                .load_bytes("x.tar", &small_archive(b"x", &["other:latest"]).0)
                .unwrap()
                .images[0]
                .target
                .clone(),
            names: vec![reference("other:latest")],
        },
    ];
    let err = env.save_layout(&clash, &env.path("l2")).unwrap_err();
    assert!(matches!(err, ArchiveError::RefNameConflict { .. }), "{err}");
    let full = SaveOptions {
        ref_name: RefName::FullName,
        ..SaveOptions::default()
    };
    env.save_layout_with(&clash, &env.path("l3"), &full)
        .unwrap();
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
    let blobs = [gzip(&l0), tarball::zstd(&l1), l2.clone()];
    let (bytes, config) = docker_archive(&blobs, &diff_ids, &["app:1"]);
    let report = env.load_bytes("c.tar", &bytes).unwrap();
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
    env.save_docker_with(&[env.save_image("app:1")], &out, &rec);
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
        .events()
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
    let report = env.load_bytes("d25.tar", &bytes).unwrap();
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
    env.load_bytes("a.tar", &a).unwrap();
    env.load_bytes("b.tar", &b).unwrap();
    let images = [
        env.save_image("a:1"),
        env.save_image("b:1"),
        env.save_image("b:2"),
    ];
    let out = env.path("ab.tar");
    let report = env.save_docker(&images, &out);
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
    let kinds: BTreeMap<String, tar::EntryType> = tarball::entries(&tar).into_iter().collect();
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
            name: Some(reference("imported:1")),
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
        let imported = env.import(&input[..], &options);
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
    env.save_docker(&[env.save_image("imported:1")], &out);
    let env2 = Env::new();
    let back = env2.load(&out).unwrap();
    assert_eq!(back.images[0].diff_ids, vec![stats.digest]);
}

#[test]
fn export_keeps_devices_and_ignores_overlay_markers() {
    if support::skip_unless_root("device nodes, trusted xattrs") {
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
    assert_eq!(
        tarball::entries(&tar),
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
    let err = env.load_bytes("bad.tar", bytes).unwrap_err();
    assert_kind(&err, kind);
    assert!(env.names().is_empty(), "{err}: names recorded");
    err
}

/// A `manifest.json` of one image.
fn manifest_json(config: &str, tags: &[&str], layers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!([{ "Config": config, "RepoTags": tags, "Layers": layers }]),
    )
    .unwrap()
}

/// An archive of `config` (named after its digest), `layer` at `l/layer.tar` and the
/// `manifest.json` `manifest` (whatever it says).
fn config_layer_manifest(config: &[u8], layer: Member, manifest: Vec<u8>) -> Vec<u8> {
    tar_of(&[
        (config_name(config), Member::File(config.to_vec())),
        ("l/layer.tar".into(), layer),
        ("manifest.json".into(), Member::File(manifest)),
    ])
}

#[test]
fn refuses_path_traversal() {
    let layer = layer_tar(&[("f", b"x")]);
    let config = config_json(&[Digest::sha256_of(&layer)]);
    let cname = config_name(&config);
    for (config_path, layer_path) in [
        (cname.as_str(), "../../etc/passwd"),
        (&cname, "/etc/passwd"),
        ("../config.json", "l/layer.tar"),
        (&cname, "l/../../layer.tar"),
    ] {
        let manifest = manifest_json(config_path, &["evil:1"], &[layer_path]);
        let bytes = config_layer_manifest(&config, Member::File(layer.clone()), manifest);
        let err = refused(&bytes, ErrorKind::InvalidArgument);
        assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }
    // A symlink member pointing out of the archive; an absolute symlink.
    for target in ["../../../../etc/passwd", "/etc/passwd"] {
        let manifest = manifest_json(&cname, &["evil:1"], &["l/layer.tar"]);
        let bytes = config_layer_manifest(&config, Member::Symlink(target), manifest);
        let err = refused(&bytes, ErrorKind::InvalidArgument);
        assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
    }
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
        let err = env.load_bytes("liar.tar", &bytes).unwrap_err();
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
    let config = config_json(&[Digest::sha256_of(&layer)]);
    let cname = config_name(&config);
    for (manifest, want) in [
        (b"{not json".to_vec(), "Json"),
        (
            manifest_json(&cname, &["x:1"], &["nope/layer.tar"]),
            "Missing",
        ),
        (
            manifest_json(&cname, &["UPPER/Case:1"], &["l/layer.tar"]),
            "InvalidName",
        ),
        (manifest_json(&cname, &["x:1"], &[]), "LayerCount"),
        (
            manifest_json("l/layer.tar", &["x:1"], &["l/layer.tar"]),
            "Manifest",
        ),
    ] {
        let bytes = config_layer_manifest(&config, Member::File(layer.clone()), manifest);
        let err = refused(&bytes, ErrorKind::InvalidArgument);
        assert!(format!("{err:?}").starts_with(want), "{want}: {err:?}");
    }
}

#[test]
fn a_bad_image_names_nothing_of_the_archive() {
    // Two images; the second's layer lies: the first must not be named either.
    let good = layer_tar(&[("g", b"good")]);
    let bad = layer_tar(&[("b", b"bad")]);
    let bytes = docker_archive_of(&[
        (
            std::slice::from_ref(&good),
            &[Digest::sha256_of(&good)],
            &["good:1"],
        ),
        (&[bad], &[Digest::sha256_of(b"not the layer")], &["bad:1"]),
    ]);
    let err = refused(&bytes, ErrorKind::FailedPrecondition);
    assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");

    // Two images claiming one name.
    let l1 = layer_tar(&[("1", b"1")]);
    let l2 = layer_tar(&[("2", b"2")]);
    let bytes = docker_archive_of(&[
        (
            std::slice::from_ref(&l1),
            &[Digest::sha256_of(&l1)],
            &["same:1"],
        ),
        (
            std::slice::from_ref(&l2),
            &[Digest::sha256_of(&l2)],
            &["same:1"],
        ),
    ]);
    let err = refused(&bytes, ErrorKind::InvalidArgument);
    assert!(matches!(err, ArchiveError::NameConflict { .. }), "{err}");
}

#[test]
fn oci_layouts_are_verified() {
    let Some(fixture) = support::fixture("busybox/oci") else {
        return;
    };
    let md = support::layout_manifest(&fixture);
    let m = support::read_json(&blob_path(&fixture, &md));
    let layer = Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let options = LoadOptions {
        repository: Some("localhost/bb".into()),
        ..LoadOptions::default()
    };
    // Loads a copy of the fixture changed by `tamper`: refused, nothing named.
    let refused = |tamper: &dyn Fn(&Path)| {
        let env = Env::new();
        let dir = env.path("layout");
        run_stdout(Command::new("cp").arg("-a").arg(&fixture).arg(&dir));
        tamper(&dir);
        let err = env.load_with(&dir, &options).unwrap_err();
        assert!(env.names().is_empty(), "{err}");
        (env, err)
    };

    // A tampered layer: the store refuses it.
    let (env, err) = refused(&|dir| {
        let lp = blob_path(dir, &layer);
        let mut data = std::fs::read(&lp).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::remove_file(&lp).unwrap();
        std::fs::write(&lp, &data).unwrap();
    });
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert!(env.store.info(&layer).unwrap().is_none());

    // A lying index.json digest.
    let (_, err) = refused(&|dir| {
        let text = std::fs::read_to_string(dir.join("index.json")).unwrap();
        let other = Digest::sha256_of(b"something else");
        std::fs::write(
            dir.join("index.json"),
            text.replace(&md.to_string(), &other.to_string()),
        )
        .unwrap();
        std::fs::copy(blob_path(dir, &md), blob_path(dir, &other)).unwrap();
    });
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");

    // A blob that is a symlink out of the layout resolves inside it (and is missing).
    let (_, err) = refused(&|dir| {
        let lp = blob_path(dir, &layer);
        std::fs::remove_file(&lp).unwrap();
        std::os::unix::fs::symlink(blob_path(&fixture, &layer), &lp).unwrap();
    });
    assert!(matches!(err, ArchiveError::Missing { .. }), "{err}");

    // A bad layout version.
    let (_, err) = refused(&|dir| {
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    });
    assert!(matches!(err, ArchiveError::LayoutVersion { .. }), "{err}");
}

// ---------------------------------------------------------------- peers

fn list_tar(path: &Path) -> Vec<String> {
    tarball::entries(&std::fs::read(path).unwrap())
        .into_iter()
        .map(|(name, _)| name.trim_end_matches('/').to_owned())
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

/// A peer's view of an image, `run` running the peer's CLI: (ID, RootFS.Layers).
fn inspect(run: impl Fn(&[&str]) -> String, image: &str) -> (String, Vec<String>) {
    let id = run(&["image", "inspect", "--format", "{{.Id}}", image]);
    let layers = run(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        image,
    ]);
    (id, serde_json::from_str(&layers).unwrap())
}

fn docker_inspect(d: &Dockerd, image: &str) -> (String, Vec<String>) {
    inspect(|args| d.run(args), image)
}

fn strings(digests: &[Digest]) -> Vec<String> {
    digests.iter().map(ToString::to_string).collect()
}

/// The busybox docker-archive fixture if `peer` (whether the peer is installed) holds,
/// else `None`; the skip was said.
fn fixture_for_peer(peer: bool) -> Option<PathBuf> {
    if !peer {
        return None;
    }
    support::fixture("busybox/docker-archive.tar")
}

#[test]
fn dockerd_interop() {
    let Some(fixture) = fixture_for_peer(Dockerd::available()) else {
        return;
    };
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
        assert_eq!(strings(&image.diff_ids), layers, "{name}");
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
    assert_eq!(strings(&multi.diff_ids), layers);
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
            names: vec![reference("berth-test/from-berth:2")],
        },
        env.save_image(BUSYBOX),
    ];
    env.save_docker(&images, &ours);
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
    assert_eq!(layers, strings(&multi.rootfs.diff_ids));
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
        support::fixtures().join("busybox/rootfs/bin/busybox"),
        tree.join("bin/busybox"),
    )
    .unwrap();
    let mut tar = Vec::new();
    archive::export(&tree, &mut tar).unwrap();
    let imported = env.import(
        &tar[..],
        &ImportOptions {
            name: Some(reference("berth-test/imported:1")),
            config: ContainerConfig {
                cmd: Some(vec!["/bin/busybox".into(), "sh".into(), "/bin/tool".into()]),
                ..ContainerConfig::default()
            },
            ..ImportOptions::default()
        },
    );
    let ours = env.path("imported.tar");
    env.save_docker(&[env.save_image("berth-test/imported:1")], &ours);
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
    let im = env.import(
        std::fs::File::open(&exported).unwrap(),
        &ImportOptions::default(),
    );
    assert_eq!(
        im.diff_id,
        Digest::sha256_of(&std::fs::read(&exported).unwrap())
    );
}

#[test]
fn podman_interop() {
    let Some(fixture) = fixture_for_peer(Podman::available()) else {
        return;
    };
    let env = Env::new();
    env.load(&fixture).unwrap();
    let l0 = layer_tar(&[("a", b"a")]);
    let l1 = layer_tar(&[("b", b"b")]);
    let d = [Digest::sha256_of(&l0), Digest::sha256_of(&l1)];
    let (two, _) = docker_archive(&[gzip(&l0), l1], &d, &["berth-test/two:1"]);
    let two = env.load_bytes("two.tar", &two).unwrap();
    let ours = env.path("for-podman.tar");
    env.save_docker(
        &[env.save_image(BUSYBOX), env.save_image("berth-test/two:1")],
        &ours,
    );
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
        let (id, layers) = inspect(|args| p.run(args), name);
        assert_eq!(format!("sha256:{id}"), config, "{name}");
        assert_eq!(layers, strings(&diff_ids), "{name}");
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
    let Some(fixture) = fixture_for_peer(!peers::skip_without("skopeo")) else {
        return;
    };
    let env = Env::new();
    let dir = format!("oci:{}:latest", env.path("skopeo-layout").display());
    let file = format!(
        "oci-archive:{}:latest",
        env.path("skopeo.oci.tar").display()
    );
    let src = format!("docker-archive:{}", fixture.display());
    let options = LoadOptions {
        repository: Some("localhost/busybox".into()),
        ..LoadOptions::default()
    };
    let fixture_diff_ids = {
        let env0 = Env::new();
        env0.load(&fixture).unwrap().images[0].diff_ids.clone()
    };
    for (path, name) in [
        (env.path("skopeo-layout"), dir),
        (env.path("skopeo.oci.tar"), file),
    ] {
        peers::skopeo_copy(&[], &src, &name);
        // skopeo rewrites the config when it converts to OCI: compare with what it wrote.
        let raw = peers::skopeo_inspect(&["--raw"], &name);
        let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let env2 = Env::new();
        let r = env2.load_with(&path, &options).unwrap();
        let image = &r.images[0];
        assert_eq!(
            image.config.to_string(),
            raw["config"]["digest"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(image.diff_ids, fixture_diff_ids, "{name}");
        assert_eq!(image.names, vec!["localhost/busybox:latest".to_owned()]);
    }

    // Berth's OCI layout and archive → skopeo inspect and copy, umoci unpack.
    env.load(&fixture).unwrap();
    let image = env.save_image(BUSYBOX);
    let ours = env.path("berth-layout");
    let report = env
        .save_layout(std::slice::from_ref(&image), &ours)
        .unwrap();
    let digest = report.manifests[0].digest.to_string();
    let ours_tar = env.path("berth.oci.tar");
    env.save_oci_archive(&[image], &ours_tar);
    for name in [
        format!("oci:{}:latest", ours.display()),
        format!("oci-archive:{}:latest", ours_tar.display()),
    ] {
        let out = peers::skopeo_inspect(&[], &name);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Digest"], digest.as_str(), "{name}");
        let config = peers::skopeo_inspect(&["--config"], &name);
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        // The layer is stored uncompressed: its digest is its diff ID.
        assert_eq!(config["rootfs"]["diff_ids"][0], v["Layers"][0], "{name}");
        // A full copy verifies every blob.
        let copy = env.path("copy-out");
        let _ = std::fs::remove_dir_all(&copy);
        peers::skopeo_copy(&[], &name, &format!("dir:{}", copy.display()));
    }
    if peers::skip_without("umoci") {
        return;
    }
    let tags = run_stdout(Command::new("umoci").args(["ls", "--layout"]).arg(&ours));
    assert_eq!(tags, "latest");
    let bundle = env.path("bundle");
    let image = format!("{}:latest", ours.display());
    run_stdout(
        Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&bundle),
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert!(bundle.join("config.json").is_file());
    let stat = run_stdout(Command::new("umoci").args(["stat", "--image", &image]));
    assert!(stat.contains("LAYER"), "{stat}");
}
