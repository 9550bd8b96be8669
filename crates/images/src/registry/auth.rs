//! Authentication: the `WWW-Authenticate` challenge flow and the token cache.
//!
//! 1. The first request to a registry is the ping (`GET /v2/`). A `200` means anonymous
//!    access; a `401` carries the challenge that decides the scheme for the host:
//!    `Basic realm=…` or `Bearer realm=…,service=…`.
//! 2. With **Basic**, every request to the registry carries the user's credentials.
//! 3. With **Bearer**, every request needs a token for its *scopes*
//!    (`repository:<name>:pull`, `repository:<name>:pull,push`, plus
//!    `repository:<from>:pull` for a cross-repository mount, `registry:catalog:*`).
//!    The token comes from the realm: `GET <realm>?service=…&scope=…` with the user's
//!    basic credentials when there are some (anonymous tokens otherwise), or, for an
//!    identity token, `POST <realm>` with `grant_type=refresh_token`. The answer is
//!    `{"token"|"access_token", "expires_in"}`.
//! 4. Tokens are cached per host and scope set until shortly before they expire; concurrent
//!    requests for the same scopes wait for one token fetch.
//! 5. A `401` on a request re-reads the challenge (the scheme may change), drops the token
//!    that failed and retries once; a second `401` is an error.
//!
//! The realm is chosen by the registry, so it must be `https` (plain `http` only for a
//! registry configured insecure), and credentials never travel to it over plain HTTP
//! unless the user allowed plain HTTP for that registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use super::challenge::Challenge;
use super::client::{Client, Endpoint};
use super::credentials::Credentials;
use super::error::{sanitize, Operation, RegistryError};
use super::transport::{read_bounded, status_error, RawRequest, ReqBody};

/// Largest token server answer read.
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;
/// Tokens are dropped this long before they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Lifetime assumed when the token server names none (the spec's default).
const DEFAULT_EXPIRES_IN: u64 = 60;
/// Longest lifetime believed (a day); longer claims are cut.
const MAX_EXPIRES_IN: u64 = 24 * 3600;
/// Most cache slots kept before expired ones are swept.
const MAX_SLOTS: usize = 1024;

/// An access scope of a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Scope(String);

impl Scope {
    /// `repository:<name>:pull`.
    pub fn pull(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull"))
    }

    /// `repository:<name>:pull,push`.
    pub fn push(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull,push"))
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Scope {
        Scope("registry:catalog:*".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a registry host wants requests authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthScheme {
    /// No authentication.
    Anonymous,
    /// HTTP basic authentication with the user's credentials.
    Basic,
    /// Bearer tokens from `realm`.
    Bearer {
        /// The token endpoint.
        realm: Url,
        /// The `service` parameter, when the challenge names one.
        service: Option<String>,
    },
}

/// The kind of authentication a registry asked for, as reported by [`Client::ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// The registry answered `/v2/` without authentication.
    Anonymous,
    /// HTTP basic authentication.
    Basic,
    /// Bearer tokens (the Docker Hub flow).
    Bearer,
}

impl AuthScheme {
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthScheme::Anonymous => AuthKind::Anonymous,
            AuthScheme::Basic => AuthKind::Basic,
            AuthScheme::Bearer { .. } => AuthKind::Bearer,
        }
    }
}

/// Chooses the scheme from a 401's challenges: Bearer over Basic; others refused.
pub(crate) fn scheme_from_challenges(
    client: &Client,
    host: &str,
    challenges: &[Challenge],
) -> Result<AuthScheme, RegistryError> {
    if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
        let raw = bearer.param("realm").unwrap_or_default();
        let invalid = || RegistryError::InvalidRealm {
            host: host.to_owned(),
            realm: sanitize(raw, 256),
        };
        if raw.is_empty() || raw.len() > 2048 {
            return Err(invalid());
        }
        let realm = Url::parse(raw).map_err(|_| invalid())?;
        let allowed = match realm.scheme() {
            "https" => true,
            "http" => client.config().is_insecure(host),
            _ => false,
        };
        if !allowed || realm.host_str().is_none() || !realm.username().is_empty() {
            return Err(invalid());
        }
        let service = bearer
            .param("service")
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(1024).collect());
        return Ok(AuthScheme::Bearer { realm, service });
    }
    if challenges.iter().any(|c| c.scheme == "basic") {
        return Ok(AuthScheme::Basic);
    }
    Err(RegistryError::UnsupportedAuthScheme {
        host: host.to_owned(),
        scheme: challenges
            .first()
            .map(|c| sanitize(&c.scheme, 64))
            .unwrap_or_default(),
    })
}

#[derive(Clone)]
struct CachedToken {
    header: HeaderValue,
    expires: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Bearer tokens per host and scope set, shared by every clone of a [`Client`].
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(key) {
            // Sweep slots nobody is using whose token expired.
            let now = Instant::now();
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(t) => t.as_ref().is_some_and(|t| t.expires > now),
                Err(_) => true,
            });
        }
        slots.entry(key.to_owned()).or_default().clone()
    }
}

impl TokenCache {
    /// Drops every token of `host`.
    pub fn forget_host(&self, host: &str) {
        let prefix = format!("{host} ");
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| !k.starts_with(&prefix));
    }
}

fn cache_key(host: &str, scopes: &[Scope]) -> String {
    let mut s: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    s.sort_unstable();
    s.dedup();
    format!("{host} {}", s.join(" "))
}

/// `Basic base64(user:password)`.
pub(crate) fn basic_header(username: &str, password: &str) -> Option<HeaderValue> {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

impl Client {
    /// The `Authorization` header for a request to `endpoint` needing `scopes`, or `None`.
    pub(crate) async fn authorization(
        &self,
        endpoint: &Endpoint,
        scopes: &[Scope],
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match endpoint.auth_scheme() {
            AuthScheme::Anonymous => Ok(None),
            AuthScheme::Basic => match self.credentials_for(endpoint.host()).await? {
                Some(Credentials::Basic { username, password }) => {
                    Ok(basic_header(&username, &password))
                }
                Some(Credentials::IdentityToken(_)) | None => {
                    Err(RegistryError::CredentialsRequired {
                        host: endpoint.host().to_owned(),
                    })
                }
            },
            AuthScheme::Bearer { realm, service } => {
                let slot = self.tokens().slot(&cache_key(endpoint.host(), scopes));
                let mut cached = slot.lock().await;
                if let Some(t) = cached.as_ref() {
                    if t.expires > Instant::now() {
                        return Ok(Some(t.header.clone()));
                    }
                }
                let token = self
                    .fetch_token(endpoint, &realm, service.as_deref(), scopes)
                    .await?;
                *cached = Some(token.clone());
                Ok(Some(token.header))
            }
        }
    }

    /// Forgets the cached token for `scopes` if it is still `failed`.
    pub(crate) async fn drop_token(&self, host: &str, scopes: &[Scope], failed: &HeaderValue) {
        let slot = self.tokens().slot(&cache_key(host, scopes));
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| t.header == *failed) {
            *cached = None;
        }
    }

    /// Fetches a token from `realm`.
    async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        realm: &Url,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<CachedToken, RegistryError> {
        let credentials = self.credentials_for(endpoint.host()).await?;
        // Credentials travel to the realm only over HTTPS, or over HTTP when the user
        // allowed plain HTTP for this registry.
        if realm.scheme() != "https" && !self.config().is_insecure(endpoint.host()) {
            return Err(RegistryError::InvalidRealm {
                host: endpoint.host().to_owned(),
                realm: sanitize(realm.as_str(), 256),
            });
        }
        let mut headers = HeaderMap::new();
        let mut url = realm.clone();
        let (method, body) = match &credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh);
                form.append_pair("client_id", "berth");
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                let joined: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
                if !joined.is_empty() {
                    form.append_pair("scope", &joined.join(" "));
                }
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                (Method::POST, ReqBody::Bytes(Bytes::from(form.finish())))
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = service {
                        q.append_pair("service", service);
                    }
                    for scope in scopes {
                        q.append_pair("scope", scope.as_str());
                    }
                    if let Some(Credentials::Basic { username, .. }) = other {
                        q.append_pair("account", username);
                    }
                }
                (Method::GET, ReqBody::Empty)
            }
        };
        let op = Operation::Token;
        let resp = self
            .send_raw(RawRequest {
                op,
                method,
                url: url.clone(),
                headers,
                body,
                // The user's basic credentials go to the realm's origin only.
                auth: match &credentials {
                    Some(Credentials::Basic { username, password }) => {
                        basic_header(username, password).map(|h| (realm.origin(), h))
                    }
                    _ => None,
                },
                timeout: Some(self.config().request_timeout),
                follow_redirects: true,
            })
            .await?;
        let shown = super::transport::display_url(realm);
        if !resp.status().is_success() {
            return Err(status_error(op, &shown, resp).await);
        }
        let body = read_bounded(op, &shown, resp, MAX_TOKEN_RESPONSE).await?;
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|source| RegistryError::InvalidJson {
                op,
                url: shown.clone(),
                source,
            })?;
        let token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .or(answer.token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::MissingToken {
                realm: shown.clone(),
            })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            RegistryError::MissingToken {
                realm: shown.clone(),
            }
        })?;
        header.set_sensitive(true);
        let lifetime = answer
            .expires_in
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_EXPIRES_IN)
            .min(MAX_EXPIRES_IN);
        let expires = Instant::now() + Duration::from_secs(lifetime).saturating_sub(EXPIRY_MARGIN);
        Ok(CachedToken { header, expires })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::registry::challenge::parse;
    use crate::registry::config::RegistryConfig;
    use crate::registry::credentials::Anonymous;

    fn client() -> Client {
        Client::new(RegistryConfig::default(), Arc::new(Anonymous))
    }

    #[test]
    fn scopes_and_keys() {
        assert_eq!(
            Scope::pull("library/busybox").as_str(),
            "repository:library/busybox:pull"
        );
        assert_eq!(Scope::push("a/b").as_str(), "repository:a/b:pull,push");
        let k1 = cache_key("h", &[Scope::push("a"), Scope::pull("b")]);
        let k2 = cache_key("h", &[Scope::pull("b"), Scope::push("a"), Scope::pull("b")]);
        assert_eq!(k1, k2);
        assert_ne!(k1, cache_key("h2", &[Scope::push("a"), Scope::pull("b")]));
    }

    #[test]
    fn schemes_from_challenges() {
        let c = client();
        let ch =
            parse(br#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#)
                .unwrap();
        let s = scheme_from_challenges(&c, "registry-1.docker.io", &ch).unwrap();
        assert_eq!(
            s,
            AuthScheme::Bearer {
                realm: Url::parse("https://auth.docker.io/token").unwrap(),
                service: Some("registry.docker.io".into())
            }
        );
        let ch = parse(br#"Basic realm="x""#).unwrap();
        assert_eq!(
            scheme_from_challenges(&c, "h", &ch).unwrap(),
            AuthScheme::Basic
        );
        // Plain-HTTP realms only for insecure registries.
        let ch = parse(br#"Bearer realm="http://127.0.0.1:1/token""#).unwrap();
        assert!(scheme_from_challenges(&c, "127.0.0.1:5000", &ch).is_ok());
        assert!(matches!(
            scheme_from_challenges(&c, "reg.example", &ch),
            Err(RegistryError::InvalidRealm { .. })
        ));
        for bad in [
            &br#"Bearer service="x""#[..],
            br#"Bearer realm="file:///etc/passwd""#,
            br#"Bearer realm="https://user:pw@h/t""#,
            br#"Bearer realm="not a url""#,
        ] {
            let ch = parse(bad).unwrap();
            assert!(scheme_from_challenges(&c, "reg.example", &ch).is_err());
        }
        let ch = parse(b"Negotiate abc").unwrap();
        assert!(matches!(
            scheme_from_challenges(&c, "h", &ch),
            Err(RegistryError::UnsupportedAuthScheme { .. })
        ));
    }

    #[test]
    fn basic_header_is_sensitive() {
        let h = basic_header("user", "pass").unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Basic dXNlcjpwYXNz");
    }
}
