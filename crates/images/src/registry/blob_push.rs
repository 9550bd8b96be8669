//! Blob uploads: existence check, cross-repository mount, monolithic and chunked upload.
//!
//! The steps of [`Client::push_blob`]:
//!
//! 1. With [`PushBlobOptions::check_exists`], `HEAD /v2/<name>/blobs/<digest>`; if the
//!    repository has the blob, nothing moves ([`PushOutcome::AlreadyExists`]).
//! 2. With [`PushBlobOptions::mount_from`] (a repository on the same registry),
//!    `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repository>` with a token for
//!    `pull,push` on the target and `pull` on the source. `201` means mounted
//!    ([`PushOutcome::Mounted`]); `202` means the registry declined and opened an upload
//!    session instead, which the next steps use.
//! 3. Otherwise `POST /v2/<name>/blobs/uploads/` opens an upload session (`202` +
//!    `Location`).
//! 4. Monolithic: `PUT <location>&digest=<digest>` with the whole blob as body. Chunked:
//!    `PATCH <location>` per chunk with `Content-Range: <first>-<last>` (each answer
//!    carries the next `Location` and `Range: 0-<last>`, checked), then
//!    `PUT <location>&digest=<digest>` without body.
//! 5. The registry answers `201`; a `Docker-Content-Digest` in the answer must match.
//!
//! The data is read once and hashed as it goes: data shorter or longer than the
//! declared size, or hashing to another digest, fails the upload before its last byte
//! is sent, so the registry never commits it. A monolithic upload is never retried (its
//! body is a stream); chunks are held in memory and re-sent only for re-authentication.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use url::Url;

use super::auth::Scope;
use super::client::{Client, Endpoint, Repository};
use super::error::{sanitize, Operation, RegistryError};
use super::manifest::content_digest;
use super::transport::{display_url, status_error, ReqBody, Request};
use crate::digest::{Digest, Verifier};
use crate::progress::{Progress, ProgressSink, ProgressState};

/// Size of the pieces a monolithic upload is read in.
const READ_PIECE: usize = 64 * 1024;
/// Progress is reported every this many bytes.
const REPORT_EVERY: u64 = 512 * 1024;
/// Smallest chunk accepted for chunked uploads.
const MIN_CHUNK: usize = 1024;
/// Largest chunk accepted for chunked uploads (chunks are held in memory).
const MAX_CHUNK: usize = 256 * 1024 * 1024;

/// How a blob's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMethod {
    /// One `PUT` with the whole blob.
    Monolithic,
    /// `PATCH` requests of `chunk_size` bytes (clamped to 1 KiB..256 MiB), then a `PUT`.
    Chunked {
        /// Bytes per chunk.
        chunk_size: usize,
    },
}

/// Options of [`Client::push_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushBlobOptions {
    /// How to upload.
    pub method: UploadMethod,
    /// Ask the registry first and skip blobs it has.
    pub check_exists: bool,
    /// Try a cross-repository mount from this repository (same registry) first.
    pub mount_from: Option<Repository>,
}

impl Default for PushBlobOptions {
    fn default() -> PushBlobOptions {
        PushBlobOptions {
            method: UploadMethod::Monolithic,
            check_exists: true,
            mount_from: None,
        }
    }
}

/// What [`Client::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository had the blob already.
    AlreadyExists,
    /// The blob was mounted from another repository.
    Mounted,
    /// The bytes were uploaded.
    Uploaded,
}

/// Hashes and counts the data of an upload, and reports progress.
struct Meter {
    digest: Digest,
    size: u64,
    verifier: Verifier,
    progress: Arc<dyn ProgressSink>,
    reported: u64,
}

impl Meter {
    fn update(&mut self, data: &[u8]) {
        self.verifier.update(data);
        let done = self.verifier.len();
        if done - self.reported >= REPORT_EVERY || done == self.size {
            self.reported = done;
            self.progress.report(Progress {
                digest: self.digest.clone(),
                state: ProgressState::Uploading,
                current: done,
                total: Some(self.size),
            });
        }
    }

    /// Called when `size` bytes were read: the data must end here and hash right.
    async fn check_end<R: AsyncRead + Unpin>(&self, reader: &mut R) -> Result<(), RegistryError> {
        let mut one = [0u8; 1];
        let extra = reader
            .read(&mut one)
            .await
            .map_err(|source| RegistryError::ReadUpload {
                digest: self.digest.clone(),
                source,
            })?;
        if extra > 0 {
            return Err(RegistryError::UploadSizeMismatch {
                digest: self.digest.clone(),
                size: self.size,
                actual: self.size + 1,
            });
        }
        let actual = self.verifier.clone().finish();
        if actual != self.digest {
            return Err(RegistryError::UploadDigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// Reads up to `want` bytes (less only at the end of the data).
async fn read_up_to<R: AsyncRead + Unpin>(
    reader: &mut R,
    want: usize,
    digest: &Digest,
) -> Result<Vec<u8>, RegistryError> {
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let n =
            reader
                .read(&mut buf[filled..])
                .await
                .map_err(|source| RegistryError::ReadUpload {
                    digest: digest.clone(),
                    source,
                })?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

impl Client {
    /// Uploads a blob of `size` bytes read from `reader` (see the module documentation).
    pub async fn push_blob<R>(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        reader: R,
        options: &PushBlobOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<PushOutcome, RegistryError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let endpoint = self.endpoint(repo.host()).await?;
        let report = |state, current| {
            progress.report(Progress {
                digest: digest.clone(),
                state,
                current,
                total: Some(size),
            })
        };
        if options.check_exists && self.blob_exists(repo, digest).await?.is_some() {
            report(ProgressState::AlreadyExists, size);
            return Ok(PushOutcome::AlreadyExists);
        }
        let location = match options
            .mount_from
            .as_ref()
            .filter(|from| from.host() == repo.host())
        {
            Some(from) if from != repo => match self.mount(&endpoint, repo, digest, from).await? {
                None => {
                    report(ProgressState::AlreadyExists, size);
                    return Ok(PushOutcome::Mounted);
                }
                Some(location) => location,
            },
            _ => self.start_upload(&endpoint, repo).await?,
        };
        let meter = Meter {
            digest: digest.clone(),
            size,
            verifier: Verifier::new(digest.algorithm()),
            progress: progress.clone(),
            reported: 0,
        };
        match options.method {
            UploadMethod::Monolithic => {
                self.put_monolithic(&endpoint, repo, location, reader, meter)
                    .await?
            }
            UploadMethod::Chunked { chunk_size } => {
                let chunk_size = chunk_size.clamp(MIN_CHUNK, MAX_CHUNK);
                self.put_chunked(&endpoint, repo, location, reader, meter, chunk_size)
                    .await?
            }
        }
        report(ProgressState::Done, size);
        Ok(PushOutcome::Uploaded)
    }

    /// Tries a cross-repository mount: `None` when mounted, else the upload session the
    /// registry opened instead.
    async fn mount(
        &self,
        endpoint: &Endpoint,
        repo: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<Option<Url>, RegistryError> {
        let op = Operation::MountBlob;
        let mut url = endpoint.url(&format!("{}/blobs/uploads/", repo.name()))?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from.name());
        let shown = display_url(&url);
        let mut req = Request::new(
            self,
            op,
            Method::POST,
            url.clone(),
            vec![Scope::push(repo.name()), Scope::pull(from.name())],
        );
        req.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self.execute(endpoint, req).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(self.location(op, &url, resp.headers())?)),
            _ => Err(status_error(op, &shown, resp).await),
        }
    }

    /// Opens an upload session.
    async fn start_upload(
        &self,
        endpoint: &Endpoint,
        repo: &Repository,
    ) -> Result<Url, RegistryError> {
        let op = Operation::StartUpload;
        let url = endpoint.url(&format!("{}/blobs/uploads/", repo.name()))?;
        let shown = display_url(&url);
        let mut req = Request::new(
            self,
            op,
            Method::POST,
            url.clone(),
            vec![Scope::push(repo.name())],
        );
        req.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self.execute(endpoint, req).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(op, &shown, resp).await);
        }
        self.location(op, &url, resp.headers())
    }

    /// The `Location` of an upload answer, resolved against the request URL. It may
    /// point to another host (authorization is then not sent), but only over http(s),
    /// and plain http only where allowed.
    fn location(
        &self,
        op: Operation,
        from: &Url,
        headers: &HeaderMap,
    ) -> Result<Url, RegistryError> {
        let Some(value) = headers.get(LOCATION) else {
            return Err(RegistryError::MissingHeader {
                op,
                url: display_url(from),
                header: "Location",
            });
        };
        let invalid = || RegistryError::InvalidHeader {
            op,
            url: display_url(from),
            header: "Location",
            value: sanitize(&String::from_utf8_lossy(value.as_bytes()), 256),
        };
        let s = value.to_str().map_err(|_| invalid())?;
        if s.len() > 8 * 1024 {
            return Err(invalid());
        }
        let url = from.join(s).map_err(|_| invalid())?;
        self.check_redirect(op, from, &url)?;
        Ok(url)
    }

    async fn finish_upload(
        &self,
        endpoint: &Endpoint,
        repo: &Repository,
        mut url: Url,
        digest: &Digest,
        size: u64,
        body: ReqBody,
    ) -> Result<(), RegistryError> {
        let op = Operation::CompleteUpload;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let shown = display_url(&url);
        let mut req = Request::new(self, op, Method::PUT, url, vec![Scope::push(repo.name())]);
        req.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        req.headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        req.body = body;
        req.timeout = None;
        req.idempotent = false;
        let resp = self.execute(endpoint, req).await?;
        self.check_created(op, &shown, resp, digest).await
    }

    async fn check_created(
        &self,
        op: Operation,
        shown: &str,
        resp: Response,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(op, shown, resp).await);
        }
        if let Some(said) = content_digest(op, shown, resp.headers())? {
            if said != *digest {
                return Err(RegistryError::InvalidHeader {
                    op,
                    url: shown.to_owned(),
                    header: "Docker-Content-Digest",
                    value: said.to_string(),
                });
            }
        }
        Ok(())
    }

    async fn put_monolithic<R>(
        &self,
        endpoint: &Endpoint,
        repo: &Repository,
        location: Url,
        reader: R,
        meter: Meter,
    ) -> Result<(), RegistryError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let size = meter.size;
        let digest = meter.digest.clone();
        // The body stream cannot return our error type; it parks it here.
        let failure: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let slot = failure.clone();
        let state = (reader, meter, slot, false);
        let body =
            futures_util::stream::unfold(state, |(mut reader, mut meter, slot, done)| async move {
                if done {
                    return None;
                }
                let remaining = meter.size - meter.verifier.len();
                let step = async {
                    if remaining == 0 {
                        meter.check_end(&mut reader).await?;
                        return Ok(None);
                    }
                    let want = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(READ_PIECE);
                    let piece = read_up_to(&mut reader, want, &meter.digest).await?;
                    if piece.is_empty() {
                        return Err(RegistryError::UploadSizeMismatch {
                            digest: meter.digest.clone(),
                            size: meter.size,
                            actual: meter.verifier.len(),
                        });
                    }
                    meter.update(&piece);
                    if meter.verifier.len() == meter.size {
                        // Check before the last byte leaves, so a bad blob is never committed.
                        meter.check_end(&mut reader).await?;
                    }
                    Ok(Some(Bytes::from(piece)))
                };
                match step.await {
                    Ok(Some(bytes)) => {
                        let last = meter.verifier.len() == meter.size;
                        Some((
                            Ok::<Bytes, std::io::Error>(bytes),
                            (reader, meter, slot, last),
                        ))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        let msg = e.to_string();
                        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                        Some((Err(std::io::Error::other(msg)), (reader, meter, slot, true)))
                    }
                }
            });
        let body = ReqBody::Once(Some(reqwest::Body::wrap_stream(body)));
        let result = self
            .finish_upload(endpoint, repo, location, &digest, size, body)
            .await;
        if let Some(e) = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        result
    }

    async fn put_chunked<R>(
        &self,
        endpoint: &Endpoint,
        repo: &Repository,
        mut location: Url,
        mut reader: R,
        mut meter: Meter,
        chunk_size: usize,
    ) -> Result<(), RegistryError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let op = Operation::UploadChunk;
        let size = meter.size;
        while meter.verifier.len() < size {
            let start = meter.verifier.len();
            let want = usize::try_from(size - start)
                .unwrap_or(usize::MAX)
                .min(chunk_size);
            let chunk = read_up_to(&mut reader, want, &meter.digest).await?;
            if chunk.is_empty() {
                return Err(RegistryError::UploadSizeMismatch {
                    digest: meter.digest.clone(),
                    size,
                    actual: start,
                });
            }
            meter.update(&chunk);
            if meter.verifier.len() == size {
                meter.check_end(&mut reader).await?;
            }
            let last = start + chunk.len() as u64 - 1;
            let shown = display_url(&location);
            let mut req = Request::new(
                self,
                op,
                Method::PATCH,
                location.clone(),
                vec![Scope::push(repo.name())],
            );
            req.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            req.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(chunk.len()));
            if let Ok(v) = HeaderValue::from_str(&format!("{start}-{last}")) {
                req.headers.insert("content-range", v);
            }
            req.body = ReqBody::Bytes(Bytes::from(chunk));
            req.timeout = None;
            req.idempotent = false;
            let resp = self.execute(endpoint, req).await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(status_error(op, &shown, resp).await);
            }
            // The registry confirms what it holds: `Range: 0-<last>`.
            if let Some(range) = resp.headers().get("range") {
                let ok = range
                    .to_str()
                    .ok()
                    .and_then(|r| r.trim().strip_prefix("bytes=").or(Some(r.trim())))
                    .and_then(|r| r.split_once('-'))
                    .is_some_and(|(a, b)| {
                        a.trim() == "0" && b.trim().parse::<u64>().ok() == Some(last)
                    });
                if !ok {
                    return Err(RegistryError::InvalidHeader {
                        op,
                        url: shown,
                        header: "Range",
                        value: sanitize(&String::from_utf8_lossy(range.as_bytes()), 128),
                    });
                }
            }
            location = self.location(op, &location, resp.headers())?;
        }
        if size == 0 {
            meter.check_end(&mut reader).await?;
        }
        let digest = meter.digest.clone();
        self.finish_upload(endpoint, repo, location, &digest, 0, ReqBody::Empty)
            .await
    }
}
