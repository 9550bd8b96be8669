//! Blob downloads: a verified, size-bounded stream that resumes broken transfers.
//!
//! [`Client::fetch_blob`] returns a [`BlobStream`] of the blob's bytes. The stream:
//!
//! 1. bounds the blob by its descriptor's size: a registry that sends (or announces with
//!    `Content-Length`) more is an error ([`RegistryError::BlobTooLarge`]);
//! 2. hashes every byte it yields; after the last byte it compares the digest and ends
//!    with [`RegistryError::BlobDigestMismatch`] instead of ending cleanly if it differs.
//!    **A consumer must treat the data as valid only once the stream has ended without
//!    an error**;
//! 3. when the connection breaks off before the declared size, reconnects with
//!    `Range: bytes=<received>-`. A `206` is accepted only with
//!    `Content-Range: bytes <received>-<size-1>/<size or *>`; a `206` with any other range
//!    makes it ask again without `Range`, and a `200` restarts from the beginning — in both
//!    cases the bytes already yielded are skipped, so the consumer sees one continuous
//!    stream (and the digest covers exactly what it saw). Reconnections without progress
//!    are bounded by [`RegistryConfig::retries`]; every reconnection that brings bytes
//!    resets that count;
//! 4. reports `Downloading` progress (bytes received, declared size) every 512 KiB and at
//!    the end; later states (verifying, extracting, done) are the caller's.
//!
//! Registries commonly redirect blob downloads to storage services; the redirect is
//! followed without the registry's `Authorization` header (see `transport`).
//!
//! [`RegistryConfig::retries`]: super::RegistryConfig::retries

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::stream::{Stream, StreamExt as _};
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, ReadBuf};
use url::Url;

use super::auth::Scope;
use super::client::{Client, Endpoint, Repository};
use super::error::{Operation, RegistryError};
use super::transport::{display_url, status_error, Request};
use crate::digest::{Digest, Verifier};
use crate::progress::{Progress, ProgressSink, ProgressState};

/// Progress is reported every this many bytes.
const REPORT_EVERY: u64 = 512 * 1024;
/// Most reconnections of one download, progress or not.
const MAX_TOTAL_RECONNECTS: u32 = 64;

/// A blob being downloaded: a stream of its bytes (see the module documentation), also
/// readable as [`AsyncRead`]. Errors read through `AsyncRead` wrap the
/// [`RegistryError`] (`io::Error::get_ref` + `downcast_ref`).
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>,
    pending: Bytes,
    digest: Digest,
    size: u64,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// The digest the content is verified against.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The declared size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads the whole blob into memory (for small blobs such as image configs).
    pub async fn collect(mut self) -> Result<Bytes, RegistryError> {
        let mut buf =
            BytesMut::with_capacity(usize::try_from(self.size.min(16 << 20)).unwrap_or(0));
        while let Some(chunk) = self.inner.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            return Poll::Ready(Some(Ok(rest)));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl AsyncRead for BlobStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = buf.remaining().min(self.pending.len());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(b))) => self.pending = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
            }
        }
    }
}

struct Download {
    client: Client,
    endpoint: Arc<Endpoint>,
    repo: Repository,
    url: Url,
    digest: Digest,
    size: u64,
    offset: u64,
    verifier: Option<Verifier>,
    resp: Option<Response>,
    /// Bytes to drop from the current response (it restarted from 0).
    skip: u64,
    /// Whether `Range` requests are still worth trying.
    use_range: bool,
    reconnects: u32,
    total_reconnects: u32,
    last_error: Option<reqwest::Error>,
    progress: Arc<dyn ProgressSink>,
    reported: u64,
    finished: bool,
}

/// Parses `bytes <first>-<last>/<complete or *>`.
fn parse_content_range(v: &HeaderValue) -> Option<(u64, u64, Option<u64>)> {
    let s = v.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes ")?.trim_start();
    let (range, complete) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let complete = match complete.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    (first <= last).then_some((first, last, complete))
}

impl Download {
    fn shown(&self) -> String {
        display_url(&self.url)
    }

    fn too_large(&self) -> RegistryError {
        RegistryError::BlobTooLarge {
            repository: self.repo.to_string(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }

    /// Opens (or reopens) the response, from `offset` when possible.
    async fn open(&mut self) -> Result<(), RegistryError> {
        let op = Operation::GetBlob;
        loop {
            let mut req = Request::new(
                &self.client,
                op,
                Method::GET,
                self.url.clone(),
                vec![Scope::pull(self.repo.name())],
            );
            // Blobs can be large: no limit on the whole exchange, only on pauses.
            req.timeout = None;
            let ranged = self.offset > 0 && self.use_range;
            if ranged {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes={}-", self.offset)) {
                    req.headers.insert(RANGE, v);
                }
            }
            let resp = self.client.execute(&self.endpoint, req).await?;
            let length = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            match resp.status() {
                StatusCode::OK => {
                    if length.is_some_and(|n| n > self.size) {
                        return Err(self.too_large());
                    }
                    self.skip = self.offset;
                    self.resp = Some(resp);
                    return Ok(());
                }
                StatusCode::PARTIAL_CONTENT if ranged => {
                    let range = resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(parse_content_range);
                    let expected_last = self.size.saturating_sub(1);
                    let good = matches!(range, Some((first, last, complete))
                        if first == self.offset
                            && last == expected_last
                            && complete.is_none_or(|c| c == self.size))
                        && length.is_none_or(|n| n == self.size - self.offset);
                    if good {
                        self.skip = 0;
                        self.resp = Some(resp);
                        return Ok(());
                    }
                    tracing::debug!(digest = %self.digest, ?range, "unexpected Content-Range; restarting from 0");
                    self.use_range = false;
                }
                _ => return Err(status_error(op, &self.shown(), resp).await),
            }
        }
    }

    fn report(&mut self, force: bool) {
        if force || self.offset - self.reported >= REPORT_EVERY {
            self.reported = self.offset;
            self.progress.report(Progress {
                digest: self.digest.clone(),
                state: ProgressState::Downloading,
                current: self.offset,
                total: Some(self.size),
            });
        }
    }

    fn finish(&mut self) -> Option<Result<Bytes, RegistryError>> {
        self.finished = true;
        self.resp = None;
        self.report(true);
        let actual = self.verifier.take()?.finish();
        if actual != self.digest {
            return Some(Err(RegistryError::BlobDigestMismatch {
                repository: self.repo.to_string(),
                expected: self.digest.clone(),
                actual,
            }));
        }
        None
    }

    fn fail(&mut self, e: RegistryError) -> Option<Result<Bytes, RegistryError>> {
        self.finished = true;
        self.resp = None;
        Some(Err(e))
    }

    async fn next(&mut self) -> Option<Result<Bytes, RegistryError>> {
        loop {
            if self.finished {
                return None;
            }
            let Some(resp) = self.resp.as_mut() else {
                let config = self.client.config();
                if self.reconnects >= config.retries
                    || self.total_reconnects >= MAX_TOTAL_RECONNECTS
                {
                    let e = RegistryError::BlobTruncated {
                        repository: self.repo.to_string(),
                        digest: self.digest.clone(),
                        received: self.offset,
                        size: self.size,
                        attempts: self.total_reconnects + 1,
                        source: self.last_error.take(),
                    };
                    return self.fail(e);
                }
                let pause = config
                    .retry_backoff
                    .saturating_mul(1u32 << self.reconnects.min(5))
                    .min(std::time::Duration::from_secs(10));
                self.reconnects += 1;
                self.total_reconnects += 1;
                tracing::debug!(digest = %self.digest, offset = self.offset, ?pause, "resuming blob download");
                tokio::time::sleep(pause).await;
                if let Err(e) = self.open().await {
                    return self.fail(e);
                }
                continue;
            };
            match resp.chunk().await {
                Ok(Some(mut bytes)) => {
                    if self.skip > 0 {
                        let n = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(bytes.len());
                        bytes.advance(n);
                        self.skip -= n as u64;
                        if bytes.is_empty() {
                            continue;
                        }
                    }
                    if self.offset + bytes.len() as u64 > self.size {
                        let e = self.too_large();
                        return self.fail(e);
                    }
                    if let Some(v) = self.verifier.as_mut() {
                        v.update(&bytes);
                    }
                    self.offset += bytes.len() as u64;
                    self.reconnects = 0;
                    self.report(self.offset == self.size);
                    return Some(Ok(bytes));
                }
                Ok(None) => {
                    self.resp = None;
                    if self.offset == self.size {
                        return self.finish();
                    }
                    self.last_error = None;
                }
                Err(e) => {
                    self.resp = None;
                    if self.offset == self.size && self.skip == 0 {
                        return self.finish();
                    }
                    self.last_error = Some(e);
                }
            }
        }
    }
}

impl Client {
    /// Downloads a blob as a verified stream (see the module documentation).
    ///
    /// `size` is the descriptor's size. Errors known before the first byte (not found,
    /// denied, too large by `Content-Length`) are returned here; later ones end the stream.
    pub async fn fetch_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<BlobStream, RegistryError> {
        self.fetch_blob_resume(
            repo,
            digest,
            size,
            Verifier::new(digest.algorithm()),
            progress,
        )
        .await
    }

    /// Downloads the rest of a blob whose first `already.len()` bytes the caller holds
    /// (hashed into `already`), e.g. after a crash. The stream yields only the remaining
    /// bytes; the digest check covers the whole blob.
    pub async fn fetch_blob_resume(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        already: Verifier,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<BlobStream, RegistryError> {
        let endpoint = self.endpoint(repo.host()).await?;
        let url = endpoint.url(&format!("{}/blobs/{digest}", repo.name()))?;
        let offset = already.len();
        let mut download = Download {
            client: self.clone(),
            endpoint,
            repo: repo.clone(),
            url,
            digest: digest.clone(),
            size,
            offset,
            verifier: Some(already),
            resp: None,
            skip: 0,
            use_range: true,
            reconnects: 0,
            total_reconnects: 0,
            last_error: None,
            progress,
            reported: offset,
            finished: false,
        };
        if offset > size {
            return Err(download.too_large());
        }
        download.open().await?;
        download.report(true);
        let inner = futures_util::stream::unfold(download, |mut d| async move {
            let item = d.next().await;
            item.map(|i| (i, d))
        });
        Ok(BlobStream {
            inner: Box::pin(inner),
            pending: Bytes::new(),
            digest: digest.clone(),
            size,
        })
    }

    /// Whether the repository has the blob: its size from `HEAD`, or `None`.
    pub async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let op = Operation::HeadBlob;
        let endpoint = self.endpoint(repo.host()).await?;
        let url = endpoint.url(&format!("{}/blobs/{digest}", repo.name()))?;
        let shown = display_url(&url);
        let req = Request::new(self, op, Method::HEAD, url, vec![Scope::pull(repo.name())]);
        let resp = self.execute(&endpoint, req).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(status_error(op, &shown, resp).await),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        let p = |s: &str| parse_content_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("bytes 100-199/200"), Some((100, 199, Some(200))));
        assert_eq!(p("bytes 100-199/*"), Some((100, 199, None)));
        for bad in [
            "bytes 5-4/10",
            "bytes=1-2/3",
            "items 1-2/3",
            "bytes 1-/3",
            "bytes -1-2/3",
            "bytes 1-2",
            "",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
