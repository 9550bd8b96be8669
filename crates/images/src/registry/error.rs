//! Errors of the registry client, and the registry's own JSON error bodies.
//!
//! A registry answers failures with a status and a body like
//! `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…","detail":…}]}`
//! (distribution-spec, "Error Codes"). [`RegistryError::Status`] carries the parsed
//! entries; its [`HasKind::kind`] comes from the codes first and the HTTP status second.
//! Everything taken from the wire is bounded and stripped of control characters before it
//! lands in an error message.

use std::fmt;
use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

use super::challenge::ChallengeError;
use super::credentials::CredentialsError;
use crate::digest::Digest;

/// Longest registry-provided message kept in an error.
const MAX_MESSAGE: usize = 512;
/// Most error entries kept from one body.
const MAX_ENTRIES: usize = 8;

/// The registry operation that failed, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /v2/`.
    Ping,
    /// Fetching a bearer token from the realm of a challenge.
    Token,
    /// `GET /v2/<name>/manifests/<reference>`.
    GetManifest,
    /// `HEAD /v2/<name>/manifests/<reference>`.
    HeadManifest,
    /// `PUT /v2/<name>/manifests/<reference>`.
    PutManifest,
    /// `GET /v2/<name>/blobs/<digest>`.
    GetBlob,
    /// `HEAD /v2/<name>/blobs/<digest>`.
    HeadBlob,
    /// `POST /v2/<name>/blobs/uploads/`.
    StartUpload,
    /// `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repository>`.
    MountBlob,
    /// `PATCH <upload location>`.
    UploadChunk,
    /// `PUT <upload location>?digest=<digest>`.
    CompleteUpload,
    /// `GET /v2/<name>/tags/list`.
    ListTags,
    /// `GET /v2/_catalog`.
    Catalog,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Ping => "ping",
            Operation::Token => "token request",
            Operation::GetManifest => "get manifest",
            Operation::HeadManifest => "head manifest",
            Operation::PutManifest => "put manifest",
            Operation::GetBlob => "get blob",
            Operation::HeadBlob => "head blob",
            Operation::StartUpload => "start upload",
            Operation::MountBlob => "mount blob",
            Operation::UploadChunk => "upload chunk",
            Operation::CompleteUpload => "complete upload",
            Operation::ListTags => "list tags",
            Operation::Catalog => "catalog",
        })
    }
}

/// An error code of the distribution-spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest references a blob the repository lacks.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown.
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name.
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry.
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied.
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests.
    TooManyRequests,
    /// A code this client does not know (kept, bounded, for the message).
    Unrecognized(String),
}

impl ErrorCode {
    /// Parses a code string.
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Unrecognized(sanitize(other, 64)),
        }
    }

    /// The code as the registry spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unrecognized(s) => s,
        }
    }

    /// The class of this code, or `None` for codes that say nothing beyond the status.
    pub fn kind(&self) -> Option<ErrorKind> {
        Some(match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => ErrorKind::NotFound,
            ErrorCode::ManifestBlobUnknown => ErrorKind::FailedPrecondition,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => ErrorKind::InvalidArgument,
            ErrorCode::Unauthorized | ErrorCode::Denied => ErrorKind::PermissionDenied,
            ErrorCode::Unsupported => ErrorKind::NotImplemented,
            ErrorCode::TooManyRequests => ErrorKind::Unavailable,
            ErrorCode::Unrecognized(_) => return None,
        })
    }
}

/// One entry of a registry's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The error code.
    pub code: ErrorCode,
    /// The registry's message (bounded, control characters replaced).
    pub message: String,
}

/// The entries of a registry's JSON error body (possibly none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerErrors(pub Vec<ServerError>);

impl ServerErrors {
    /// Parses an error body; anything that is not the expected JSON yields no entries.
    pub fn parse(body: &[u8]) -> ServerErrors {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
            return ServerErrors::default();
        };
        ServerErrors(
            parsed
                .errors
                .into_iter()
                .take(MAX_ENTRIES)
                .map(|e| ServerError {
                    code: ErrorCode::parse(&e.code),
                    message: sanitize(&e.message, MAX_MESSAGE),
                })
                .collect(),
        )
    }

    /// Whether some entry has `code`.
    pub fn has(&self, code: &ErrorCode) -> bool {
        self.0.iter().any(|e| &e.code == code)
    }
}

impl fmt::Display for ServerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{}", e.code.as_str())?;
            if !e.message.is_empty() {
                write!(f, ": {}", e.message)?;
            }
        }
        Ok(())
    }
}

/// Keeps at most `max` characters of `s`, replacing control characters.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// An error and its causes, `: `-separated: the HTTP library's top-level message
/// ("error sending request") says little; the cause ("invalid peer certificate:
/// UnknownIssuer", "connection refused") is what a user needs.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    let mut depth = 0;
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
        depth += 1;
        if depth == 8 {
            break;
        }
    }
    out
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Reading a CA or client certificate file failed.
    #[error("reading certificate file {path}: {source}")]
    ReadCertificate {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CA or client certificate file holds no usable PEM data.
    #[error("certificate file {path} holds no usable PEM certificate or key")]
    ParseCertificate {
        /// The file.
        path: PathBuf,
        /// The TLS library's error, when it gave one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// A client certificate (`.cert`) without its key (`.key`), or the reverse.
    #[error("client certificate file {path} has no matching {missing} file")]
    UnpairedClientCertificate {
        /// The file found.
        path: PathBuf,
        /// The extension of the missing partner (`.key` or `.cert`).
        missing: &'static str,
    },
    /// Building the HTTP client for a host failed.
    #[error("building the HTTP client for {host}: {source}")]
    BuildClient {
        /// The registry host.
        host: String,
        /// The HTTP library's error.
        #[source]
        source: reqwest::Error,
    },
    /// A registry host name is malformed.
    #[error("invalid registry host {host:?}")]
    InvalidHost {
        /// The host as given (bounded).
        host: String,
    },
    /// A repository name is malformed.
    #[error("invalid repository name {name:?}")]
    InvalidRepository {
        /// The name as given (bounded).
        name: String,
    },
    /// A tag is malformed.
    #[error("invalid tag {tag:?}")]
    InvalidTag {
        /// The tag as given (bounded).
        tag: String,
    },
    /// The request could not be sent or its answer not received (connection, TLS, timeout).
    #[error("{op} {url}: {}", chain(source))]
    Send {
        /// The operation.
        op: Operation,
        /// The URL (without credentials).
        url: String,
        /// The HTTP library's error.
        #[source]
        source: reqwest::Error,
    },
    /// Reading a response body failed.
    #[error("{op} {url}: reading the response: {}", chain(source))]
    ReadBody {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The HTTP library's error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status.
    #[error("{op} {url}: registry answered {status}{errors}")]
    Status {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The entries of the JSON error body.
        errors: ServerErrors,
    },
    /// A response body is larger than this client accepts for it.
    #[error("{op} {url}: response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A header this client needs is missing from a response.
    #[error("{op} {url}: response lacks the {header} header")]
    MissingHeader {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The header name.
        header: &'static str,
    },
    /// A response header is malformed or contradicts the request.
    #[error("{op} {url}: invalid {header} header {value:?}")]
    InvalidHeader {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The header name.
        header: &'static str,
        /// The value (bounded, sanitized).
        value: String,
    },
    /// A JSON response body could not be parsed.
    #[error("{op} {url}: invalid JSON response: {source}")]
    InvalidJson {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Redirects led back to a URL already visited.
    #[error("{op}: redirect loop at {url}")]
    RedirectLoop {
        /// The operation.
        op: Operation,
        /// The URL seen twice.
        url: String,
    },
    /// More redirects than allowed.
    #[error("{op}: more than {max} redirects, last to {url}")]
    TooManyRedirects {
        /// The operation.
        op: Operation,
        /// The last URL.
        url: String,
        /// The configured limit.
        max: usize,
    },
    /// A redirect (or upload location, or pagination link) points somewhere refused:
    /// another scheme than http(s), or plain http for a registry not marked insecure.
    #[error("{op}: refusing to follow {from} to {to}")]
    RefusedRedirect {
        /// The operation.
        op: Operation,
        /// The URL that redirected.
        from: String,
        /// The target.
        to: String,
    },
    /// A `WWW-Authenticate` header could not be parsed.
    #[error("{host}: invalid WWW-Authenticate header: {source}")]
    Challenge {
        /// The registry host.
        host: String,
        /// The parser's error.
        #[source]
        source: ChallengeError,
    },
    /// The registry wants an authentication scheme this client does not speak.
    #[error("{host}: unsupported authentication scheme {scheme:?}")]
    UnsupportedAuthScheme {
        /// The registry host.
        host: String,
        /// The scheme (bounded).
        scheme: String,
    },
    /// The registry asks for credentials and none are configured for it.
    #[error("{host}: authentication required and no credentials are configured (log in first)")]
    CredentialsRequired {
        /// The registry host.
        host: String,
    },
    /// The realm of a bearer challenge is not an acceptable URL.
    #[error(
        "{host}: refusing token realm {realm:?} (must be https, or http for an insecure registry)"
    )]
    InvalidRealm {
        /// The registry host.
        host: String,
        /// The realm (bounded).
        realm: String,
    },
    /// The token server's answer holds no usable token.
    #[error("token server {realm} answered without a usable token")]
    MissingToken {
        /// The realm URL.
        realm: String,
    },
    /// Looking up credentials failed.
    #[error("credentials for {host}: {source}")]
    Credentials {
        /// The registry host.
        host: String,
        /// The credential store's error.
        #[source]
        source: CredentialsError,
    },
    /// The credential lookup thread died (a bug in a credential source).
    #[error("credentials for {host}: the lookup failed unexpectedly")]
    CredentialLookupFailed {
        /// The registry host.
        host: String,
    },
    /// A manifest is larger than the limit.
    #[error("{op} {url}: manifest larger than {limit} bytes")]
    ManifestTooLarge {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest pulled (or pushed) by digest hashes to another digest.
    #[error("manifest {expected} of {repository}: content hashes to {actual}")]
    ManifestDigestMismatch {
        /// The repository.
        repository: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// The `Docker-Content-Digest` header contradicts the content.
    #[error("{op} {url}: Docker-Content-Digest says {header} but the content hashes to {actual}")]
    DigestHeaderMismatch {
        /// The operation.
        op: Operation,
        /// The URL.
        url: String,
        /// The header's digest.
        header: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// A downloaded blob hashes to another digest than asked for.
    #[error("blob {expected} of {repository}: received content hashes to {actual}")]
    BlobDigestMismatch {
        /// The repository.
        repository: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the received bytes.
        actual: Digest,
    },
    /// The registry sent more bytes of a blob than its descriptor declares.
    #[error("blob {digest} of {repository}: registry sent more than the declared {size} bytes")]
    BlobTooLarge {
        /// The repository.
        repository: String,
        /// The blob.
        digest: Digest,
        /// The declared size.
        size: u64,
    },
    /// A blob download kept breaking off before its declared size.
    #[error("blob {digest} of {repository}: download stopped at {received} of {size} bytes after {attempts} attempts")]
    BlobTruncated {
        /// The repository.
        repository: String,
        /// The blob.
        digest: Digest,
        /// Bytes received.
        received: u64,
        /// The declared size.
        size: u64,
        /// Connections tried.
        attempts: u32,
        /// The last transfer error, if any.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// Reading the local data of a blob to upload failed.
    #[error("blob {digest}: reading the data to upload: {source}")]
    ReadUpload {
        /// The blob.
        digest: Digest,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The local data of a blob to upload does not have its declared size.
    #[error("blob {digest}: the data to upload is {actual} bytes, not the declared {size}")]
    UploadSizeMismatch {
        /// The blob.
        digest: Digest,
        /// The declared size.
        size: u64,
        /// Bytes found (a lower bound when longer).
        actual: u64,
    },
    /// The local data of a blob to upload hashes to another digest.
    #[error("blob {expected}: the data to upload hashes to {actual}")]
    UploadDigestMismatch {
        /// The declared digest.
        expected: Digest,
        /// The digest of the data.
        actual: Digest,
    },
    /// A paginated listing did not end within the bounds.
    #[error("{op} {url}: listing exceeds {limit} entries or pages")]
    ListingTooLong {
        /// The operation.
        op: Operation,
        /// The last URL.
        url: String,
        /// The limit hit.
        limit: usize,
    },
}

impl RegistryError {
    /// Whether retrying the same request may succeed (connection trouble, timeouts,
    /// overload).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Send { source, .. } | RegistryError::ReadBody { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
            }
            RegistryError::Status { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

/// Statuses worth retrying for idempotent requests.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

fn status_kind(status: u16) -> ErrorKind {
    match status {
        400 | 411 | 414 | 416 => ErrorKind::InvalidArgument,
        401 | 403 => ErrorKind::PermissionDenied,
        404 | 410 => ErrorKind::NotFound,
        405 | 501 => ErrorKind::NotImplemented,
        409 => ErrorKind::Conflict,
        408 | 429 | 502 | 503 | 504 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

impl HasKind for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::ReadCertificate { source, .. } => ErrorKind::from_io(source),
            RegistryError::ParseCertificate { .. }
            | RegistryError::UnpairedClientCertificate { .. }
            | RegistryError::InvalidHost { .. }
            | RegistryError::InvalidRepository { .. }
            | RegistryError::InvalidTag { .. }
            | RegistryError::UploadSizeMismatch { .. }
            | RegistryError::UploadDigestMismatch { .. } => ErrorKind::InvalidArgument,
            RegistryError::BuildClient { .. } | RegistryError::CredentialLookupFailed { .. } => {
                ErrorKind::Internal
            }
            RegistryError::Send { .. }
            | RegistryError::ReadBody { .. }
            | RegistryError::BlobTruncated { .. } => ErrorKind::Unavailable,
            RegistryError::Status { status, errors, .. } => errors
                .0
                .iter()
                .find_map(|e| e.code.kind())
                .unwrap_or_else(|| status_kind(*status)),
            RegistryError::ResponseTooLarge { .. }
            | RegistryError::MissingHeader { .. }
            | RegistryError::InvalidHeader { .. }
            | RegistryError::InvalidJson { .. }
            | RegistryError::RedirectLoop { .. }
            | RegistryError::TooManyRedirects { .. }
            | RegistryError::RefusedRedirect { .. }
            | RegistryError::Challenge { .. }
            | RegistryError::InvalidRealm { .. }
            | RegistryError::MissingToken { .. }
            | RegistryError::ManifestTooLarge { .. }
            | RegistryError::ManifestDigestMismatch { .. }
            | RegistryError::DigestHeaderMismatch { .. }
            | RegistryError::BlobDigestMismatch { .. }
            | RegistryError::BlobTooLarge { .. }
            | RegistryError::ListingTooLong { .. } => ErrorKind::FailedPrecondition,
            RegistryError::UnsupportedAuthScheme { .. } => ErrorKind::NotImplemented,
            RegistryError::CredentialsRequired { .. } => ErrorKind::PermissionDenied,
            RegistryError::Credentials { source, .. } => source.kind(),
            RegistryError::ReadUpload { source, .. } => ErrorKind::from_io(source),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> RegistryError {
        RegistryError::Status {
            op: Operation::GetManifest,
            url: "https://r/v2/x/manifests/latest".into(),
            status,
            errors: ServerErrors::parse(body.as_bytes()),
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let table = [
            (
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m"}]}"#,
                ErrorKind::NotFound,
            ),
            (
                404,
                r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#,
                ErrorKind::NotFound,
            ),
            (
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
                ErrorKind::NotFound,
            ),
            (
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
                ErrorKind::PermissionDenied,
            ),
            (
                403,
                r#"{"errors":[{"code":"DENIED"}]}"#,
                ErrorKind::PermissionDenied,
            ),
            (
                429,
                r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#,
                ErrorKind::Unavailable,
            ),
            (
                400,
                r#"{"errors":[{"code":"DIGEST_INVALID"}]}"#,
                ErrorKind::InvalidArgument,
            ),
            (
                400,
                r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}"#,
                ErrorKind::FailedPrecondition,
            ),
            (
                405,
                r#"{"errors":[{"code":"UNSUPPORTED"}]}"#,
                ErrorKind::NotImplemented,
            ),
            // Unknown codes and bodies fall back to the status.
            (
                404,
                r#"{"errors":[{"code":"WHATEVER"}]}"#,
                ErrorKind::NotFound,
            ),
            (503, "<html>busy</html>", ErrorKind::Unavailable),
            (500, "", ErrorKind::Internal),
            (403, "{}", ErrorKind::PermissionDenied),
        ];
        for (code, body, kind) in table {
            assert_eq!(status(code, body).kind(), kind, "{code} {body}");
        }
    }

    #[test]
    fn messages_are_bounded_and_clean() {
        let long = "x".repeat(5000);
        let body = format!(r#"{{"errors":[{{"code":"DENIED","message":"a\u001b[31mb{long}"}}]}}"#);
        let e = status(403, &body);
        let text = e.to_string();
        assert!(!text.contains('\u{1b}'));
        assert!(text.len() < 700, "{}", text.len());
        assert!(text.contains("DENIED: a?[31mb"));
    }

    #[test]
    fn many_entries_are_capped() {
        let entries: Vec<String> = (0..100)
            .map(|_| r#"{"code":"DENIED","message":"no"}"#.to_string())
            .collect();
        let body = format!(r#"{{"errors":[{}]}}"#, entries.join(","));
        assert_eq!(ServerErrors::parse(body.as_bytes()).0.len(), MAX_ENTRIES);
    }
}
