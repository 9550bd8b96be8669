//! A fake registry serving whole images (manifests, configs, layers) on loopback, with
//! misbehaving blobs: corrupt bytes, or a first download that stalls halfway (for
//! killing a pull in the middle). Also serves a Docker schema 1 manifest under the tag
//! `schema1`. Ranged requests (`Range: bytes=<n>-`) are honoured with `206`, as
//! distribution does, and every blob request is recorded.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_images::digest::Digest;

use super::http::{HttpRequest, Reply, TestServer};

/// How a blob is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMode {
    Good,
    /// Same length, one byte flipped in the middle.
    Corrupt,
    /// The first request sends half the blob (announcing all of it), then holds the
    /// connection open for a minute; later requests are served normally.
    StallOnce,
}

/// One image repository's content.
#[derive(Debug, Clone, Default)]
pub struct FakeRepo {
    /// tag → manifest digest
    pub tags: HashMap<String, Digest>,
    /// digest → (media type, bytes)
    pub manifests: HashMap<Digest, (String, Vec<u8>)>,
    /// digest → bytes
    pub blobs: HashMap<Digest, Vec<u8>>,
}

impl FakeRepo {
    /// The image of an OCI layout's `index.json` entry tagged `tag` (its manifest,
    /// config and layers), served under `tag`.
    pub fn from_oci_layout(layout: &Path, tag: &str) -> FakeRepo {
        let index = super::read_json(&layout.join("index.json"));
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone();
        let blob = |d: &str| {
            let hex = d.strip_prefix("sha256:").unwrap();
            std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
        };
        let digest: Digest = entry["digest"].as_str().unwrap().parse().unwrap();
        let manifest_bytes = blob(entry["digest"].as_str().unwrap());
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let mut repo = FakeRepo::default();
        let config = manifest["config"]["digest"].as_str().unwrap();
        repo.blobs.insert(config.parse().unwrap(), blob(config));
        for layer in manifest["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            repo.blobs.insert(d.parse().unwrap(), blob(d));
        }
        repo.manifests.insert(
            digest.clone(),
            (
                entry["mediaType"].as_str().unwrap().to_owned(),
                manifest_bytes,
            ),
        );
        repo.tags.insert(tag.to_owned(), digest);
        repo
    }

    /// Adds a blob, returning its digest.
    pub fn blob(&mut self, data: Vec<u8>) -> Digest {
        let d = Digest::sha256_of(&data);
        self.blobs.insert(d.clone(), data);
        d
    }

    /// Adds a manifest under `tag`, returning its digest.
    pub fn manifest(&mut self, tag: &str, media_type: &str, bytes: Vec<u8>) -> Digest {
        let d = Digest::sha256_of(&bytes);
        self.manifests
            .insert(d.clone(), (media_type.to_owned(), bytes));
        self.tags.insert(tag.to_owned(), d.clone());
        d
    }
}

/// A blob request seen.
#[derive(Debug, Clone)]
pub struct BlobRequest {
    pub repo: String,
    pub digest: String,
    pub range: Option<String>,
}

struct State {
    repos: HashMap<String, FakeRepo>,
    modes: HashMap<Digest, BlobMode>,
    attempts: Mutex<HashMap<Digest, usize>>,
    seen: Mutex<Vec<BlobRequest>>,
}

pub struct ImageRegistry {
    server: TestServer,
    state: Arc<State>,
}

const SCHEMA1: &str = r#"{"schemaVersion":1,"name":"x","tag":"schema1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#;

impl ImageRegistry {
    pub async fn start(
        repos: HashMap<String, FakeRepo>,
        modes: HashMap<Digest, BlobMode>,
    ) -> ImageRegistry {
        let state = Arc::new(State {
            repos,
            modes,
            attempts: Mutex::default(),
            seen: Mutex::default(),
        });
        let shared = state.clone();
        let server = TestServer::spawn(move |req, stream| {
            let state = shared.clone();
            async move { handle(&state, req, stream).await }
        })
        .await;
        ImageRegistry { server, state }
    }

    pub fn host(&self) -> String {
        self.server.host()
    }

    /// Blob requests seen so far.
    pub fn blob_requests(&self) -> Vec<BlobRequest> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn handle(state: &State, req: HttpRequest, mut stream: tokio::net::TcpStream) {
    let path = req.path().to_owned();
    if path == "/v2/" {
        return Reply::new(200).body("{}").send(&mut stream).await;
    }
    let not_found = |code: &str| {
        Reply::new(404).json(&serde_json::json!({"errors": [{"code": code, "message": "unknown"}]}))
    };
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found("NAME_UNKNOWN").send(&mut stream).await;
    };
    let (repo_name, kind, reference) = if let Some(i) = rest.rfind("/manifests/") {
        (&rest[..i], "manifests", &rest[i + "/manifests/".len()..])
    } else if let Some(i) = rest.rfind("/blobs/") {
        (&rest[..i], "blobs", &rest[i + "/blobs/".len()..])
    } else {
        return not_found("NAME_UNKNOWN").send(&mut stream).await;
    };
    let head = req.method == "HEAD";
    if kind == "manifests" && reference == "schema1" {
        let mut r = Reply::new(200).header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        );
        if !head {
            r = r.body(SCHEMA1);
        }
        return r.send(&mut stream).await;
    }
    let Some(repo) = state.repos.get(repo_name) else {
        return not_found("NAME_UNKNOWN").send(&mut stream).await;
    };
    if kind == "manifests" {
        let digest = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => repo.tags.get(reference).cloned(),
        };
        let Some((media_type, bytes)) = digest.as_ref().and_then(|d| repo.manifests.get(d)) else {
            return not_found("MANIFEST_UNKNOWN").send(&mut stream).await;
        };
        let mut r = Reply::new(200)
            .header("Content-Type", media_type.clone())
            .header(
                "Docker-Content-Digest",
                Digest::sha256_of(bytes).to_string(),
            );
        if !head {
            r = r.body(bytes.clone());
        }
        return r.send(&mut stream).await;
    }
    let Ok(digest) = reference.parse::<Digest>() else {
        return not_found("BLOB_UNKNOWN").send(&mut stream).await;
    };
    let Some(blob) = repo.blobs.get(&digest) else {
        return not_found("BLOB_UNKNOWN").send(&mut stream).await;
    };
    let range = req.header("range").map(str::to_owned);
    state.seen.lock().unwrap().push(BlobRequest {
        repo: repo_name.to_owned(),
        digest: digest.to_string(),
        range: range.clone(),
    });
    let attempt = {
        let mut a = state.attempts.lock().unwrap();
        let n = a.entry(digest.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    let mode = state.modes.get(&digest).copied().unwrap_or(BlobMode::Good);
    let mut data = blob.clone();
    if mode == BlobMode::Corrupt {
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
    }
    if mode == BlobMode::StallOnce && attempt == 0 && !head {
        use tokio::io::AsyncWriteExt as _;
        let head = format!(
            "HTTP/1.1 200 X\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            data.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&data[..data.len() / 2]).await;
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let start: Option<usize> = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok());
    let reply = match start {
        Some(start) if start < data.len() => Reply::new(206)
            .header(
                "Content-Range",
                format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
            )
            .body(data[start..].to_vec()),
        _ => Reply::new(200).body(data),
    };
    let reply = if head {
        Reply {
            body: Vec::new(),
            ..reply
        }
    } else {
        reply
    };
    reply.send(&mut stream).await
}
