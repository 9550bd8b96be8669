//! Manifests: get, head, resolve and put.
//!
//! Manifests are small JSON documents; they are read whole, bounded by
//! [`manifest::MAX_MANIFEST_SIZE`](crate::manifest::MAX_MANIFEST_SIZE). The client
//! verifies what it can and leaves parsing to [`crate::manifest`]:
//! - a manifest fetched **by digest** must hash to that digest;
//! - a `Docker-Content-Digest` header, when present, must match the bytes (except for
//!   schema 1 manifests, whose digest covers a signature-stripped payload; schema 1 is
//!   accepted on the wire only so the caller can refuse it with a clear message).

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};

use super::auth::Scope;
use super::client::{Client, ManifestRef, Repository};
use super::error::{sanitize, Operation, RegistryError};
use super::transport::{display_url, read_bounded, status_error, ReqBody, Request};
use crate::digest::{Digest, Verifier};
use crate::manifest::media_type;

/// Largest manifest accepted (pulled or pushed): the format module's limit, 4 MiB as
/// containerd and distribution.
const MAX_MANIFEST_SIZE: u64 = crate::manifest::MAX_MANIFEST_SIZE as u64;

/// The `Accept` header of manifest requests, preferred types first: the types of
/// [`media_type::MANIFEST_ACCEPT`] plus schema 1 (a test checks they agree).
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json;q=0.9, \
    application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, \
    application/vnd.docker.distribution.manifest.v1+json;q=0.5";

/// A manifest as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The `Content-Type` the registry sent (parameters stripped), if any.
    pub media_type: Option<String>,
    /// The digest of the bytes (the requested algorithm when fetched by digest, sha256
    /// otherwise). Verified equal to the requested digest and to `Docker-Content-Digest`.
    pub digest: Digest,
    /// The manifest bytes, exactly as sent.
    pub bytes: Bytes,
}

/// What a `HEAD` on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The `Content-Type`, if any.
    pub media_type: Option<String>,
    /// The `Docker-Content-Digest`, if any.
    pub digest: Option<Digest>,
    /// The `Content-Length`, if any.
    pub size: Option<u64>,
}

/// A manifest's descriptor, as [`Client::resolve_manifest`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDescriptor {
    /// The media type, if the registry named one.
    pub media_type: Option<String>,
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

fn is_schema1(media_type: Option<&str>) -> bool {
    media_type.is_some_and(media_type::is_schema1)
}

/// The media type of a `Content-Type` header without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let t = v.split(';').next()?.trim();
    (!t.is_empty() && t.len() <= 255).then(|| t.to_ascii_lowercase())
}

/// The `Docker-Content-Digest` header, if present; malformed is an error.
pub(crate) fn content_digest(
    op: Operation,
    url: &str,
    headers: &HeaderMap,
) -> Result<Option<Digest>, RegistryError> {
    let Some(v) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| Digest::parse(s.trim()).ok())
        .map(Some)
        .ok_or_else(|| RegistryError::InvalidHeader {
            op,
            url: url.to_owned(),
            header: "Docker-Content-Digest",
            value: sanitize(&String::from_utf8_lossy(v.as_bytes()), 256),
        })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl Client {
    fn manifest_request(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        op: Operation,
        method: Method,
        endpoint: &super::client::Endpoint,
    ) -> Result<Request, RegistryError> {
        let url = endpoint.url(&format!(
            "{}/manifests/{}",
            repo.name(),
            reference.path_segment()?
        ))?;
        let mut req = Request::new(self, op, method, url, vec![Scope::pull(repo.name())]);
        req.headers
            .insert(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
        Ok(req)
    }

    /// Fetches a manifest by tag or digest, verifying its digest (see the module docs).
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<FetchedManifest, RegistryError> {
        let op = Operation::GetManifest;
        let endpoint = self.endpoint(repo.host()).await?;
        let req = self.manifest_request(repo, reference, op, Method::GET, &endpoint)?;
        let url = display_url(&req.url);
        let resp = self.execute(&endpoint, req).await?;
        if !resp.status().is_success() {
            return Err(status_error(op, &url, resp).await);
        }
        self.read_manifest(repo, reference, &url, resp).await
    }

    async fn read_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        url: &str,
        resp: Response,
    ) -> Result<FetchedManifest, RegistryError> {
        let op = Operation::GetManifest;
        let media_type = content_type(resp.headers());
        let header_digest = content_digest(op, url, resp.headers())?;
        let bytes = read_bounded(op, url, resp, MAX_MANIFEST_SIZE)
            .await
            .map_err(|e| match e {
                RegistryError::ResponseTooLarge { op, url, limit } => {
                    RegistryError::ManifestTooLarge { op, url, limit }
                }
                other => other,
            })?;
        let algorithm = reference
            .digest()
            .map_or(crate::digest::Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, &bytes);
        if let Some(expected) = reference.digest() {
            if *expected != digest {
                return Err(RegistryError::ManifestDigestMismatch {
                    repository: repo.to_string(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        if let Some(header) = header_digest {
            if !is_schema1(media_type.as_deref()) {
                let actual = if header.algorithm() == digest.algorithm() {
                    digest.clone()
                } else {
                    let mut v = Verifier::new(header.algorithm());
                    v.update(&bytes);
                    v.finish()
                };
                if actual != header {
                    return Err(RegistryError::DigestHeaderMismatch {
                        op,
                        url: url.to_owned(),
                        header,
                        actual,
                    });
                }
            }
        }
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// `HEAD` on a manifest: `None` when the registry does not have it.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let op = Operation::HeadManifest;
        let endpoint = self.endpoint(repo.host()).await?;
        let req = self.manifest_request(repo, reference, op, Method::HEAD, &endpoint)?;
        let url = display_url(&req.url);
        let resp = self.execute(&endpoint, req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error(op, &url, resp).await);
        }
        Ok(Some(ManifestHead {
            media_type: content_type(resp.headers()),
            digest: content_digest(op, &url, resp.headers())?,
            size: content_length(resp.headers()),
        }))
    }

    /// The descriptor of a manifest: from a `HEAD` when the registry sends digest and
    /// length, else from a `GET` (hashing the bytes).
    pub async fn resolve_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<ManifestDescriptor, RegistryError> {
        if let Some(head) = self.head_manifest(repo, reference).await? {
            let digest = match (reference.digest(), head.digest) {
                (Some(asked), Some(said)) if *asked != said => None,
                (Some(asked), _) => Some(asked.clone()),
                (None, said) => said,
            };
            if let (Some(digest), Some(size)) = (digest, head.size) {
                if size > 0 && size <= MAX_MANIFEST_SIZE && !is_schema1(head.media_type.as_deref())
                {
                    return Ok(ManifestDescriptor {
                        media_type: head.media_type,
                        digest,
                        size,
                    });
                }
            }
        }
        let m = self.get_manifest(repo, reference).await?;
        Ok(ManifestDescriptor {
            media_type: m.media_type,
            digest: m.digest,
            size: m.bytes.len() as u64,
        })
    }

    /// Uploads a manifest under a tag or its digest; returns its digest.
    ///
    /// The manifest's blobs (config, layers, or child manifests of an index) must be in
    /// the repository already; the registry refuses it otherwise (`MANIFEST_BLOB_UNKNOWN`).
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, RegistryError> {
        let op = Operation::PutManifest;
        let endpoint = self.endpoint(repo.host()).await?;
        let url = endpoint.url(&format!(
            "{}/manifests/{}",
            repo.name(),
            reference.path_segment()?
        ))?;
        let shown = display_url(&url);
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::ManifestTooLarge {
                op,
                url: shown,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let algorithm = reference
            .digest()
            .map_or(crate::digest::Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, &bytes);
        if let Some(expected) = reference.digest() {
            if *expected != digest {
                return Err(RegistryError::ManifestDigestMismatch {
                    repository: repo.to_string(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::InvalidHeader {
                op,
                url: shown.clone(),
                header: "Content-Type",
                value: sanitize(media_type, 256),
            })?;
        let mut req = Request::new(self, op, Method::PUT, url, vec![Scope::push(repo.name())]);
        req.headers.insert(CONTENT_TYPE, content_type);
        req.body = ReqBody::Bytes(bytes.clone());
        // Putting the same manifest twice is harmless.
        req.idempotent = true;
        let resp = self.execute(&endpoint, req).await?;
        if !resp.status().is_success() {
            return Err(status_error(op, &shown, resp).await);
        }
        if let Some(header) = content_digest(op, &shown, resp.headers())? {
            let actual = Digest::of(header.algorithm(), &bytes);
            if actual != header {
                return Err(RegistryError::DigestHeaderMismatch {
                    op,
                    url: shown,
                    header,
                    actual,
                });
            }
        }
        Ok(digest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(content_type(&h), None);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.OCI.image.manifest.v1+json; charset=utf-8"),
        );
        assert_eq!(content_type(&h).as_deref(), Some(media_type::OCI_MANIFEST));
        assert!(is_schema1(Some(media_type::DOCKER_SCHEMA1_SIGNED)));
        assert!(is_schema1(Some(media_type::DOCKER_SCHEMA1)));
        assert!(!is_schema1(Some(media_type::DOCKER_MANIFEST)));
        assert!(!is_schema1(None));
    }

    #[test]
    fn accept_header_lists_every_manifest_type() {
        let listed: Vec<&str> = ACCEPT_MANIFESTS
            .split(',')
            .map(|t| t.split(';').next().unwrap().trim())
            .collect();
        for t in media_type::MANIFEST_ACCEPT {
            assert!(listed.contains(&t), "{t} missing from {ACCEPT_MANIFESTS}");
        }
        // Schema 1 is accepted on the wire only to refuse it with a clear message.
        assert!(listed.contains(&media_type::DOCKER_SCHEMA1));
        assert!(listed.contains(&media_type::DOCKER_SCHEMA1_SIGNED));
        assert_eq!(listed.len(), media_type::MANIFEST_ACCEPT.len() + 2);
    }

    #[test]
    fn digest_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(
            content_digest(Operation::GetManifest, "u", &h).unwrap(),
            None
        );
        let d = Digest::sha256_of(b"x");
        h.insert(
            "Docker-Content-Digest",
            HeaderValue::from_str(&d.to_string()).unwrap(),
        );
        assert_eq!(
            content_digest(Operation::GetManifest, "u", &h).unwrap(),
            Some(d)
        );
        h.insert(
            "Docker-Content-Digest",
            HeaderValue::from_static("sha256:../../x"),
        );
        assert!(content_digest(Operation::GetManifest, "u", &h).is_err());
    }
}
