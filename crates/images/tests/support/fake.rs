//! A hostile registry: serves one blob (and a manifest) and misbehaves per repository.
//!
//! Blob behaviours, chosen by the first path component of the repository:
//! - `good`: the blob as it is;
//! - `lie`: other bytes of the same length (digest mismatch);
//! - `longheader`: announces and sends more bytes than the descriptor declares;
//! - `longclose`: sends more bytes with no length (close-delimited);
//! - `loop`: redirects `?hop=1` → `?hop=2` → `?hop=1`…; `chain`: `?hop=n` → `?hop=n+1`;
//! - `cut`: first answer breaks off halfway, then honours `Range` with a `206`;
//! - `cutnorange`: breaks off, then ignores `Range` (full `200`);
//! - `cutbadrange`: breaks off, then answers `Range` with a `206` of the wrong range;
//! - `cutforever`: every answer breaks off before the first byte;
//! - `storage`: redirects to another origin (the storage server) that serves the blob.
//!
//! Manifests: `mlie:tag` has a lying `Docker-Content-Digest`; `mlie@<any digest>` serves
//! bytes of another digest; `mbig` is 5 MiB. `denied` answers `403 DENIED`, `busy`
//! `429 TOOMANYREQUESTS`. Tag lists: `tagloop` links to itself, `tagaway` to another
//! origin, `paged` has three pages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_images::digest::Digest;

use super::http::{send_cut, HttpRequest, Reply, TestServer};

/// How `/v2/` answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    /// Requires `Authorization: Basic …` everywhere under `/v2/`.
    Basic,
    /// Sends an unparseable challenge.
    HostileChallenge,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

pub struct FakeRegistry {
    pub server: TestServer,
    /// The storage service blob downloads of `storage/*` are redirected to.
    _storage: TestServer,
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub manifest: Vec<u8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    storage_seen: Arc<Mutex<Vec<Seen>>>,
}

fn record(log: &Mutex<Vec<Seen>>, req: &HttpRequest) {
    log.lock().unwrap().push(Seen {
        path: req.target.clone(),
        range: req.header("range").map(str::to_owned),
        authorization: req.header("authorization").map(str::to_owned),
    });
}

struct State {
    blob: Vec<u8>,
    digest: Digest,
    manifest: Vec<u8>,
    storage_host: String,
    mode: Mode,
    attempts: Mutex<HashMap<String, usize>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeRegistry {
    pub async fn start(blob: Vec<u8>, mode: Mode) -> FakeRegistry {
        let digest = Digest::sha256_of(&blob);
        let storage_seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let storage_log = storage_seen.clone();
        let storage_blob = blob.clone();
        let storage = TestServer::spawn(move |req, mut stream| {
            let blob = storage_blob.clone();
            let log = storage_log.clone();
            async move {
                record(&log, &req);
                Reply::new(200).body(blob).send(&mut stream).await
            }
        })
        .await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.to_string(), "size": blob.len()},
            "layers": []
        }))
        .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let state = Arc::new(State {
            blob: blob.clone(),
            digest: digest.clone(),
            manifest: manifest.clone(),
            storage_host: storage.host(),
            mode,
            attempts: Mutex::default(),
            seen: seen.clone(),
        });
        let server = TestServer::spawn(move |req, stream| {
            let state = state.clone();
            async move { handle(&state, req, stream).await }
        })
        .await;
        FakeRegistry {
            server,
            _storage: storage,
            blob,
            digest,
            manifest,
            seen,
            storage_seen,
        }
    }

    pub fn host(&self) -> String {
        self.server.host()
    }

    /// Requests seen whose path starts with `prefix`.
    pub fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub fn storage_seen(&self) -> Vec<Seen> {
        self.storage_seen.lock().unwrap().clone()
    }
}

async fn handle(state: &State, req: HttpRequest, mut stream: tokio::net::TcpStream) {
    record(&state.seen, &req);
    let path = req.path().to_owned();
    if state.mode == Mode::HostileChallenge {
        return Reply::new(401)
            .header(
                "WWW-Authenticate",
                r#"Bearer realm="https://x/token,service="s"#,
            )
            .send(&mut stream)
            .await;
    }
    if state.mode == Mode::Basic && req.header("authorization").is_none() {
        return Reply::new(401)
            .header("WWW-Authenticate", r#"Basic realm="fake""#)
            .json(&serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "log in"}]}))
            .send(&mut stream)
            .await;
    }
    if path == "/v2/" {
        return Reply::new(200).body("{}").send(&mut stream).await;
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Reply::new(404).send(&mut stream).await;
    };
    let behaviour = rest.split('/').next().unwrap_or("").to_owned();
    let attempt = {
        let mut a = state.attempts.lock().unwrap();
        let n = a.entry(path.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    let size = state.blob.len();
    let query = req.query();
    let hop: usize = query
        .iter()
        .find(|(k, _)| k == "hop")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    match behaviour.as_str() {
        "denied" => {
            return Reply::new(403)
                .json(&serde_json::json!({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}))
                .send(&mut stream)
                .await
        }
        "busy" => {
            return Reply::new(429)
                .header("Retry-After", "0")
                .json(&serde_json::json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}))
                .send(&mut stream)
                .await
        }
        _ => {}
    }
    if path.contains("/tags/list") {
        let reply = match behaviour.as_str() {
            "tagloop" => Reply::new(200)
                .header("Link", format!("<{path}>; rel=\"next\""))
                .json(&serde_json::json!({"name": "tagloop", "tags": ["a"]})),
            "tagaway" => Reply::new(200)
                .header(
                    "Link",
                    "<http://127.0.0.2:1/v2/x/tags/list?last=a>; rel=\"next\"",
                )
                .json(&serde_json::json!({"name": "tagaway", "tags": ["a"]})),
            _ => {
                let last = query
                    .iter()
                    .find(|(k, _)| k == "last")
                    .map(|(_, v)| v.clone());
                let (tags, next) = match last.as_deref() {
                    None => (vec!["a"], Some("a")),
                    Some("a") => (vec!["b"], Some("b")),
                    _ => (vec!["c"], None),
                };
                let mut r = Reply::new(200);
                if let Some(n) = next {
                    r = r.header("Link", format!("<{path}?n=1&last={n}>; rel=\"next\""));
                }
                r.json(&serde_json::json!({"name": "paged", "tags": tags}))
            }
        };
        return reply.send(&mut stream).await;
    }
    if path.contains("/manifests/") {
        let reference = path.rsplit('/').next().unwrap_or("");
        let reply = match behaviour.as_str() {
            "mlie" if reference.starts_with("sha256:") => Reply::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(state.manifest.clone()),
            "mlie" => Reply::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .header(
                    "Docker-Content-Digest",
                    Digest::sha256_of(b"other").to_string(),
                )
                .body(state.manifest.clone()),
            "mbig" => Reply::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(vec![b' '; 5 * 1024 * 1024]),
            _ => Reply::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .header(
                    "Docker-Content-Digest",
                    Digest::sha256_of(&state.manifest).to_string(),
                )
                .body(state.manifest.clone()),
        };
        return reply.send(&mut stream).await;
    }
    if !path.ends_with(&format!("/blobs/{}", state.digest)) {
        return Reply::new(404)
            .json(&serde_json::json!({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]}))
            .send(&mut stream)
            .await;
    }
    let range_start: Option<usize> = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok());
    let full = || Reply::new(200).body(state.blob.clone());
    let reply = match behaviour.as_str() {
        "lie" => {
            let mut other = state.blob.clone();
            other[size / 2] ^= 0xff;
            Reply::new(200).body(other)
        }
        "longheader" => Reply::new(200).body([state.blob.clone(), vec![0u8; 10]].concat()),
        "longclose" => Reply::new(200)
            .body([state.blob.clone(), vec![0u8; 10]].concat())
            .close_delimited(),
        "loop" => {
            let next = if hop == 1 { 2 } else { 1 };
            Reply::new(302).header("Location", format!("{path}?hop={next}"))
        }
        "chain" => Reply::new(307).header("Location", format!("{path}?hop={}", hop + 1)),
        "storage" => Reply::new(307).header(
            "Location",
            format!("http://{}/blob/{}", state.storage_host, state.digest),
        ),
        "cut" | "cutnorange" | "cutbadrange" if attempt == 0 => {
            return send_cut(&mut stream, 200, &[], size as u64, &state.blob[..size / 2]).await;
        }
        "cut" => match range_start {
            Some(start) if start < size => Reply::new(206)
                .header(
                    "Content-Range",
                    format!("bytes {start}-{}/{size}", size - 1),
                )
                .body(state.blob[start..].to_vec()),
            _ => full(),
        },
        "cutbadrange" => match range_start {
            Some(_) => Reply::new(206)
                .header("Content-Range", format!("bytes 0-{}/{size}", size - 1))
                .body(state.blob.clone()),
            None => full(),
        },
        "cutforever" => {
            return send_cut(&mut stream, 200, &[], size as u64, &[]).await;
        }
        _ => full(),
    };
    reply.send(&mut stream).await
}
