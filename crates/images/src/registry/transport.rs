//! Sending requests: TLS clients per host, redirects, authentication retries, retries of
//! transient failures, and bounded reading of responses.
//!
//! Redirects are followed here, not by the HTTP library, so that:
//! - the `Authorization` header goes only to the origin it was made for (registries
//!   redirect blob downloads to storage services, which must not see the token);
//! - a redirect loop or a chain longer than [`RegistryConfig::max_redirects`] is a clear
//!   error;
//! - HTTPS never redirects to plain HTTP unless the target host is configured insecure,
//!   and no scheme other than `http`/`https` is followed.
//!
//! [`RegistryConfig::max_redirects`]: super::RegistryConfig::max_redirects

use std::collections::HashSet;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use url::{Origin, Url};

use super::auth::{scheme_from_challenges, AuthScheme, Scope};
use super::challenge;
use super::client::{Client, Endpoint};
use super::error::{is_retryable_status, sanitize, Operation, RegistryError, ServerErrors};

/// Most bytes of an error body read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// Longest `Location` header followed.
const MAX_LOCATION: usize = 8 * 1024;
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A request body.
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// Bytes in memory: can be sent again (retries, authentication, redirects).
    Bytes(Bytes),
    /// A streaming body: sent once, never retried.
    Once(Option<reqwest::Body>),
}

impl ReqBody {
    fn replayable(&self) -> bool {
        !matches!(self, ReqBody::Once(_))
    }

    /// The body for one attempt (a streaming body is taken by the first attempt).
    fn for_attempt(&mut self) -> ReqBody {
        match self {
            ReqBody::Empty => ReqBody::Empty,
            ReqBody::Bytes(b) => ReqBody::Bytes(b.clone()),
            ReqBody::Once(b) => ReqBody::Once(b.take()),
        }
    }

    fn into_body(self) -> Option<reqwest::Body> {
        match self {
            ReqBody::Empty => None,
            ReqBody::Bytes(b) => Some(reqwest::Body::from(b)),
            ReqBody::Once(b) => b,
        }
    }
}

/// One HTTP exchange, redirects included, without registry authentication logic.
pub(crate) struct RawRequest {
    pub op: Operation,
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: ReqBody,
    /// `Authorization` value, sent only to URLs of this origin.
    pub auth: Option<(Origin, HeaderValue)>,
    /// Limit on the whole exchange (`None`: only the client's read timeout).
    pub timeout: Option<Duration>,
    pub follow_redirects: bool,
}

/// A request to a registry endpoint, with the scopes it needs.
pub(crate) struct Request {
    pub op: Operation,
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: ReqBody,
    pub scopes: Vec<Scope>,
    pub timeout: Option<Duration>,
    /// Whether the request may be sent again after a transient failure.
    pub idempotent: bool,
}

impl Request {
    /// A GET/HEAD-like request with the client's small-request timeout.
    pub fn new(
        client: &Client,
        op: Operation,
        method: Method,
        url: Url,
        scopes: Vec<Scope>,
    ) -> Request {
        let idempotent = matches!(method, Method::GET | Method::HEAD);
        Request {
            op,
            method,
            url,
            headers: HeaderMap::new(),
            body: ReqBody::Empty,
            scopes,
            timeout: Some(client.config().request_timeout),
            idempotent,
        }
    }
}

/// A URL as shown in errors: bounded, control characters replaced.
pub(crate) fn display_url(url: &Url) -> String {
    sanitize(url.as_str(), 512)
}

/// Reads a whole response body of at most `limit` bytes.
pub(crate) async fn read_bounded(
    op: Operation,
    url: &str,
    mut resp: Response,
    limit: u64,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::ResponseTooLarge {
        op,
        url: url.to_owned(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| RegistryError::ReadBody {
            op,
            url: url.to_owned(),
            source,
        })?
    {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Turns an unexpected response into [`RegistryError::Status`], reading (a bounded part
/// of) its JSON error body.
pub(crate) async fn status_error(op: Operation, url: &str, mut resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    // Best effort: a body that cannot be read just gives no error entries.
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BODY.saturating_sub(body.len() as u64);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
        body.extend_from_slice(&chunk[..take]);
        if body.len() as u64 >= MAX_ERROR_BODY {
            break;
        }
    }
    RegistryError::Status {
        op,
        url: url.to_owned(),
        status,
        errors: ServerErrors::parse(&body),
    }
}

/// Parses every `WWW-Authenticate` header of a response.
pub(crate) fn challenges(
    host: &str,
    headers: &HeaderMap,
) -> Result<Vec<challenge::Challenge>, RegistryError> {
    let mut out = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE).iter().take(8) {
        let parsed =
            challenge::parse(value.as_bytes()).map_err(|source| RegistryError::Challenge {
                host: host.to_owned(),
                source,
            })?;
        out.extend(parsed);
    }
    Ok(out)
}

/// The `host[:port]` of a URL, as used to key per-host settings.
pub(crate) fn host_key(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    }
}

fn backoff(client: &Client, attempt: u32, resp: Option<&Response>) -> Duration {
    let base = client.config().retry_backoff;
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    let retry_after = resp
        .and_then(|r| r.headers().get(RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    retry_after.unwrap_or(exp).min(MAX_BACKOFF)
}

impl Client {
    /// Sends one request, following redirects as the module documentation describes.
    pub(crate) async fn send_raw(&self, req: RawRequest) -> Result<Response, RegistryError> {
        let RawRequest {
            op,
            mut method,
            mut url,
            headers,
            mut body,
            auth,
            timeout,
            follow_redirects,
        } = req;
        let mut seen: HashSet<Url> = HashSet::new();
        seen.insert(url.clone());
        let mut redirects = 0usize;
        loop {
            let http = self.http_for(&url)?;
            let mut rb = http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some((origin, value)) = &auth {
                if url.origin() == *origin {
                    rb = rb.header(AUTHORIZATION, value.clone());
                }
            }
            let replay = body.for_attempt();
            if let Some(b) = replay.into_body() {
                rb = rb.body(b);
            }
            if let Some(t) = timeout {
                rb = rb.timeout(t);
            }
            let resp = rb.send().await.map_err(|source| RegistryError::Send {
                op,
                url: display_url(&url),
                source,
            })?;
            let status = resp.status();
            let is_redirect = matches!(
                status,
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            if !follow_redirects || !is_redirect {
                return Ok(resp);
            }
            let Some(location) = resp.headers().get(LOCATION) else {
                return Err(RegistryError::MissingHeader {
                    op,
                    url: display_url(&url),
                    header: "Location",
                });
            };
            let next = location
                .to_str()
                .ok()
                .filter(|l| l.len() <= MAX_LOCATION)
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| RegistryError::InvalidHeader {
                    op,
                    url: display_url(&url),
                    header: "Location",
                    value: sanitize(&String::from_utf8_lossy(location.as_bytes()), 256),
                })?;
            self.check_redirect(op, &url, &next)?;
            redirects += 1;
            if !seen.insert(next.clone()) {
                return Err(RegistryError::RedirectLoop {
                    op,
                    url: display_url(&next),
                });
            }
            if redirects > self.config().max_redirects {
                return Err(RegistryError::TooManyRedirects {
                    op,
                    url: display_url(&next),
                    max: self.config().max_redirects,
                });
            }
            if status == StatusCode::SEE_OTHER
                || (method == Method::POST
                    && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
            {
                method = Method::GET;
                body = ReqBody::Empty;
            } else if !body.replayable() {
                // A streamed body cannot be sent twice: hand the redirect to the caller.
                return Ok(resp);
            }
            url = next;
        }
    }

    /// Refuses redirect targets other than http(s), and HTTPS-to-HTTP downgrades to hosts
    /// not configured insecure.
    pub(crate) fn check_redirect(
        &self,
        op: Operation,
        from: &Url,
        to: &Url,
    ) -> Result<(), RegistryError> {
        let refused = || RegistryError::RefusedRedirect {
            op,
            from: display_url(from),
            to: display_url(to),
        };
        match to.scheme() {
            "https" => {}
            "http" if from.scheme() == "http" || self.config().is_insecure(&host_key(to)) => {}
            _ => return Err(refused()),
        }
        if to.host_str().is_none() || !to.username().is_empty() || to.password().is_some() {
            return Err(refused());
        }
        Ok(())
    }

    /// Sends a request to a registry endpoint with authentication, one re-authentication
    /// on `401`, and retries of transient failures for idempotent requests.
    pub(crate) async fn execute(
        &self,
        endpoint: &Endpoint,
        mut req: Request,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let auth = self.authorization(endpoint, &req.scopes).await?;
            let replayable = req.body.replayable();
            let raw = RawRequest {
                op: req.op,
                method: req.method.clone(),
                url: req.url.clone(),
                headers: req.headers.clone(),
                body: req.body.for_attempt(),
                auth: auth.clone().map(|h| (endpoint.origin().clone(), h)),
                timeout: req.timeout,
                follow_redirects: matches!(req.method, Method::GET | Method::HEAD),
            };
            let can_retry = req.idempotent && replayable && attempt < self.config().retries;
            match self.send_raw(raw).await {
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED
                        && replayable
                        && !reauthenticated =>
                {
                    reauthenticated = true;
                    let found = challenges(endpoint.host(), resp.headers())?;
                    if found.is_empty() {
                        return Err(status_error(req.op, &display_url(&req.url), resp).await);
                    }
                    let scheme = scheme_from_challenges(self, endpoint.host(), &found)?;
                    let previous = endpoint.auth_scheme();
                    if scheme == AuthScheme::Basic
                        && previous == AuthScheme::Basic
                        && auth.is_some()
                    {
                        // The credentials themselves were refused.
                        return Err(status_error(req.op, &display_url(&req.url), resp).await);
                    }
                    if let Some(failed) = &auth {
                        self.drop_token(endpoint.host(), &req.scopes, failed).await;
                    }
                    endpoint.set_auth_scheme(scheme);
                }
                Ok(resp) if can_retry && is_retryable_status(resp.status().as_u16()) => {
                    let pause = backoff(self, attempt, Some(&resp));
                    tracing::debug!(op = %req.op, status = resp.status().as_u16(), ?pause, "retrying");
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if can_retry && e.is_transient() => {
                    let pause = backoff(self, attempt, None);
                    tracing::debug!(op = %req.op, error = %e, ?pause, "retrying");
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::registry::config::RegistryConfig;
    use crate::registry::credentials::Anonymous;
    use std::sync::Arc;

    #[test]
    fn redirect_targets() {
        let c = Client::new(RegistryConfig::default(), Arc::new(Anonymous));
        let u = |s: &str| Url::parse(s).unwrap();
        let op = Operation::GetBlob;
        assert!(c
            .check_redirect(op, &u("https://r/v2/"), &u("https://s3.example/x"))
            .is_ok());
        assert!(c
            .check_redirect(op, &u("http://127.0.0.1:1/"), &u("http://127.0.0.1:2/"))
            .is_ok());
        assert!(c
            .check_redirect(op, &u("https://r/"), &u("http://127.0.0.1/x"))
            .is_ok());
        for bad in [
            "http://s3.example/x",
            "file:///etc/passwd",
            "ftp://x/",
            "https://u:p@h/",
        ] {
            assert!(
                c.check_redirect(op, &u("https://r/"), &u(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_keys() {
        assert_eq!(
            host_key(&Url::parse("https://r.example/v2/").unwrap()),
            "r.example"
        );
        assert_eq!(
            host_key(&Url::parse("http://127.0.0.1:5000/v2/").unwrap()),
            "127.0.0.1:5000"
        );
        assert_eq!(
            host_key(&Url::parse("https://[::1]:5000/").unwrap()),
            "[::1]:5000"
        );
    }
}
