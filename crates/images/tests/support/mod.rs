//! Scaffolding shared by the integration tests (every test file includes it with
//! `mod support;`; a helper one file does not use is no warning, see the `allow` below).
//!
//! - [`registry::Registry`]: Debian's `docker-registry` (distribution 2.8) on loopback;
//! - [`token::TokenServer`]: the token server of the bearer flow;
//! - [`fake::FakeRegistry`]: a registry that lies, loops and breaks connections;
//! - [`image_registry::ImageRegistry`]: a fake registry serving whole images;
//! - [`certs`]: a test CA and the token signing key, made at test time;
//! - [`http`]: the tiny HTTP server under the fakes;
//! - [`peers`]: dockerd, podman, skopeo and umoci, privately per test;
//! - [`image::TestImage`]: images made in memory, pushed or served by the fakes;
//! - [`tarball::Tar`]: layer tars built entry by entry, and compression helpers;
//! - here: temporary directories, fixtures, clients, progress recording, mounts.
#![allow(dead_code)]

pub mod certs;
pub mod fake;
pub mod http;
pub mod image;
pub mod image_registry;
pub mod peers;
pub mod registry;
pub mod tarball;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_images::digest::Digest;
use berth_images::progress::{Progress, ProgressSink, ProgressState};
use berth_images::reference::Reference;
use berth_images::registry::{Anonymous, Client, Credentials, RegistryConfig, StaticCredentials};
use berth_images::snapshot::{self, Mount};

/// Client settings for tests: short pauses, bounded waits.
pub fn test_config() -> RegistryConfig {
    RegistryConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        read_timeout: Duration::from_secs(30),
        retry_backoff: Duration::from_millis(5),
        retries: 3,
        ..RegistryConfig::default()
    }
}

/// A registry client without credentials.
pub fn anonymous_client() -> Client {
    Client::new(test_config(), Arc::new(Anonymous))
}

/// A registry client with `credentials` for `host`.
pub fn client_with(host: &str, credentials: Credentials) -> Client {
    Client::new(
        test_config(),
        Arc::new(StaticCredentials::new().with(host, credentials)),
    )
}

/// Username and password.
pub fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

pub fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).unwrap()
}

/// Records progress events.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Progress>>,
}

impl ProgressSink for Recorder {
    fn report(&self, event: Progress) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn events(&self) -> Vec<Progress> {
        self.events.lock().unwrap().clone()
    }

    /// The states the blob `digest` went through, consecutive repeats folded.
    pub fn states(&self, digest: &Digest) -> Vec<ProgressState> {
        let mut states: Vec<ProgressState> = self
            .events()
            .into_iter()
            .filter(|e| e.digest == *digest)
            .map(|e| e.state)
            .collect();
        states.dedup();
        states
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A temporary directory named `berth-test-<tag>-…`, removed when dropped.
pub fn tmpdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("berth-test-{tag}-"))
        .tempdir()
        .unwrap()
}

/// True (after a loud skip line) when the test does not run as root.
pub fn skip_unless_root(why: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIPPING: needs root ({why})");
    true
}

// ---------------------------------------------------------------------------- fixtures

/// The fixture cache: `$BERTH_FIXTURES`, else `/var/cache/berth-fixtures`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("BERTH_FIXTURES").unwrap_or_else(|_| "/var/cache/berth-fixtures".into()),
    )
}

/// The fixture `rel` (e.g. `busybox/oci`), or `None` (with a loud skip line) when it is
/// missing. The busybox fixtures are built on first use (the script serialises on a lock).
pub fn fixture(rel: &str) -> Option<PathBuf> {
    let path = fixtures().join(rel);
    if !path.exists() && rel.starts_with("busybox/") {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/build-images.sh");
        let _ = Command::new("bash").arg(script).arg("busybox").status();
    }
    if path.exists() {
        return Some(path);
    }
    eprintln!(
        "SKIPPING: fixture {} is missing (build it with tests/fixtures/build-images.sh{})",
        path.display(),
        if rel.starts_with("debian/") {
            " --with-debian"
        } else {
            ""
        }
    );
    None
}

/// Reads a JSON document.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The digest of the first manifest an OCI layout's `index.json` names.
pub fn layout_manifest(layout: &Path) -> Digest {
    let index = read_json(&layout.join("index.json"));
    Digest::parse(index["manifests"][0]["digest"].as_str().unwrap()).unwrap()
}

/// Where `digest` lives below `root` (an OCI layout, or a `LocalStore` root):
/// `blobs/<algorithm>/<hex>`.
pub fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

// ------------------------------------------------------------------------------ mounts

/// Mounts on creation, unmounts on drop (also when the test fails).
pub struct Mounted {
    target: PathBuf,
    count: usize,
}

impl Mounted {
    pub fn new(mounts: &[Mount], target: &Path) -> Mounted {
        std::fs::create_dir_all(target).unwrap();
        snapshot::mount(mounts, target).unwrap();
        Mounted {
            target: target.to_path_buf(),
            count: mounts.len(),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..self.count {
            if let Err(e) = snapshot::unmount(&self.target) {
                eprintln!("unmount {}: {e}", self.target.display());
            }
        }
    }
}
