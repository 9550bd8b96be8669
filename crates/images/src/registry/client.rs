//! The client handle, registry endpoints (scheme and auth per host), repositories.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use url::{Origin, Url};

use super::auth::{basic_header, scheme_from_challenges, AuthKind, AuthScheme, TokenCache};
use super::config::{validate_host, RegistryConfig, TlsProfile};
use super::credentials::{CredentialSource, Credentials};
use super::error::{sanitize, Operation, RegistryError};
use super::transport::{challenges, display_url, host_key, status_error, RawRequest, ReqBody};
use crate::digest::Digest;
use crate::reference::Reference;

/// Most hosts whose TLS settings are remembered (redirect targets included).
const MAX_HOSTS: usize = 1024;

/// An OCI distribution-spec client.
///
/// Cheap to clone; clones share the connection pools, the endpoint cache and the token
/// cache, so parallel transfers should use clones of one client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistryConfig,
    credentials: Arc<dyn CredentialSource>,
    /// HTTP clients (connection pools) per TLS profile; shared with `with_credentials`.
    http: Arc<HttpClients>,
    /// Probed endpoints per registry host.
    endpoints: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Endpoint>>>>>,
    /// Credentials per registry host, looked up once.
    credentials_cache: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Option<Credentials>>>>>,
    tokens: TokenCache,
}

#[derive(Default)]
struct HttpClients {
    by_profile: Mutex<HashMap<TlsProfile, reqwest::Client>>,
    profile_by_host: Mutex<HashMap<String, TlsProfile>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// A registry host as probed: the base URL (scheme chosen) and how it authenticates.
pub(crate) struct Endpoint {
    host: String,
    base: Url,
    origin: Origin,
    auth: Mutex<AuthScheme>,
}

impl Endpoint {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn auth_scheme(&self) -> AuthScheme {
        self.auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_auth_scheme(&self, scheme: AuthScheme) {
        *self.auth.lock().unwrap_or_else(PoisonError::into_inner) = scheme;
    }

    /// `<base>/v2/<path>`; `path` is built from validated names and digests.
    pub fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(&format!("v2/{path}"))
            .map_err(|_| RegistryError::InvalidHost {
                host: self.host.clone(),
            })
    }

    /// Resolves a `Location` (or `Link`) value against `from`; the target must stay on
    /// this endpoint's origin.
    pub fn same_origin_location(
        &self,
        op: Operation,
        from: &Url,
        header: &'static str,
        value: &HeaderValue,
    ) -> Result<Url, RegistryError> {
        let invalid = || RegistryError::InvalidHeader {
            op,
            url: display_url(from),
            header,
            value: sanitize(&String::from_utf8_lossy(value.as_bytes()), 256),
        };
        let s = value.to_str().map_err(|_| invalid())?;
        if s.len() > 8 * 1024 {
            return Err(invalid());
        }
        let url = from.join(s).map_err(|_| invalid())?;
        if url.origin() != self.origin {
            return Err(RegistryError::RefusedRedirect {
                op,
                from: display_url(from),
                to: display_url(&url),
            });
        }
        Ok(url)
    }
}

/// What [`Client::ping`] learnt about a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryInfo {
    /// The base URL in use (`https://host/` or, for an insecure registry, maybe `http://`).
    pub base_url: Url,
    /// How the registry authenticates.
    pub auth: AuthKind,
}

impl Client {
    /// A client with `config`, asking `credentials` for the credentials of each registry.
    pub fn new(config: RegistryConfig, credentials: Arc<dyn CredentialSource>) -> Client {
        Client {
            inner: Arc::new(Inner {
                config,
                credentials,
                http: Arc::new(HttpClients::default()),
                endpoints: Mutex::new(HashMap::new()),
                credentials_cache: Mutex::new(HashMap::new()),
                tokens: TokenCache::default(),
            }),
        }
    }

    /// A client with the same settings and connection pools but other credentials (and
    /// its own token and endpoint caches).
    pub fn with_credentials(&self, credentials: Arc<dyn CredentialSource>) -> Client {
        Client {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                credentials,
                http: self.inner.http.clone(),
                endpoints: Mutex::new(HashMap::new()),
                credentials_cache: Mutex::new(HashMap::new()),
                tokens: TokenCache::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    pub(crate) fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// The HTTP client for a URL's host (its TLS settings), built on first use.
    pub(crate) fn http_for(&self, url: &Url) -> Result<reqwest::Client, RegistryError> {
        let host = host_key(url);
        let http = &self.inner.http;
        let known = http
            .profile_by_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&host)
            .cloned();
        let profile = match known {
            Some(p) => p,
            None => {
                let p = self.inner.config.tls_profile(&host)?;
                let mut map = http
                    .profile_by_host
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if map.len() < MAX_HOSTS {
                    map.insert(host.clone(), p.clone());
                }
                p
            }
        };
        if let Some(c) = http
            .by_profile
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&profile)
        {
            return Ok(c.clone());
        }
        let built = self.build_http(&host, &profile)?;
        Ok(http
            .by_profile
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(profile)
            .or_insert(built)
            .clone())
    }

    fn build_http(
        &self,
        host: &str,
        profile: &TlsProfile,
    ) -> Result<reqwest::Client, RegistryError> {
        let config = &self.inner.config;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_native_certs(true)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90));
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| RegistryError::ReadCertificate {
                path: path.to_path_buf(),
                source,
            })
        };
        for path in &profile.ca_files {
            let pem = read(path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                RegistryError::ParseCertificate {
                    path: path.clone(),
                    source: Some(source),
                }
            })?;
            if certs.is_empty() {
                return Err(RegistryError::ParseCertificate {
                    path: path.clone(),
                    source: None,
                });
            }
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &profile.client {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend_from_slice(&read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|source| {
                RegistryError::ParseCertificate {
                    path: cert.clone(),
                    source: Some(source),
                }
            })?;
            b = b.identity(identity);
        }
        if profile.accept_invalid {
            b = b.danger_accept_invalid_certs(true);
        }
        b.build().map_err(|source| RegistryError::BuildClient {
            host: host.to_owned(),
            source,
        })
    }

    /// The credentials of `host`, looked up once per client (on a blocking thread: the
    /// lookup may run a credential helper).
    pub(crate) async fn credentials_for(
        &self,
        host: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        let cell = self
            .inner
            .credentials_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_owned())
            .or_default()
            .clone();
        let found = cell
            .get_or_try_init(|| async {
                let source = self.inner.credentials.clone();
                let h = host.to_owned();
                let result = tokio::task::spawn_blocking(move || source.credentials(&h)).await;
                match result {
                    Ok(r) => r.map_err(|source| RegistryError::Credentials {
                        host: host.to_owned(),
                        source,
                    }),
                    Err(_) => Err(RegistryError::CredentialLookupFailed {
                        host: host.to_owned(),
                    }),
                }
            })
            .await?;
        Ok(found.clone())
    }

    /// The endpoint of `host`, probed on first use (see [`Client::ping`]).
    pub(crate) async fn endpoint(&self, host: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let cell = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.probe(host)).await.cloned()
    }

    /// Chooses the scheme (HTTPS, then plain HTTP for insecure registries) and reads the
    /// authentication challenge of `GET /v2/`.
    async fn probe(&self, host: &str) -> Result<Arc<Endpoint>, RegistryError> {
        validate_host(host)?;
        let https = base_url("https", host)?;
        match self.ping_at(host, https).await {
            Ok(e) => Ok(e),
            Err(RegistryError::Send { .. }) if self.inner.config.is_insecure(host) => {
                tracing::debug!(host, "HTTPS failed, trying plain HTTP (insecure registry)");
                self.ping_at(host, base_url("http", host)?).await
            }
            Err(e) => Err(e),
        }
    }

    async fn ping_at(&self, host: &str, base: Url) -> Result<Arc<Endpoint>, RegistryError> {
        let url = base.join("v2/").map_err(|_| RegistryError::InvalidHost {
            host: host.to_owned(),
        })?;
        let resp = self
            .send_raw(RawRequest {
                op: Operation::Ping,
                method: Method::GET,
                url: url.clone(),
                headers: Default::default(),
                body: ReqBody::Empty,
                auth: None,
                timeout: Some(self.inner.config.request_timeout),
                follow_redirects: false,
            })
            .await?;
        let auth = match resp.status() {
            s if s.is_success() => AuthScheme::Anonymous,
            StatusCode::UNAUTHORIZED => {
                let found = challenges(host, resp.headers())?;
                if found.is_empty() {
                    return Err(status_error(Operation::Ping, &display_url(&url), resp).await);
                }
                scheme_from_challenges(self, host, &found)?
            }
            _ => return Err(status_error(Operation::Ping, &display_url(&url), resp).await),
        };
        Ok(Arc::new(Endpoint {
            host: host.to_owned(),
            origin: base.origin(),
            base,
            auth: Mutex::new(auth),
        }))
    }

    /// Forgets what this client learnt about `host`: its endpoint (scheme and
    /// authentication scheme), its credentials and its tokens. Call after the user's
    /// credentials changed (login, logout).
    pub fn forget_host(&self, host: &str) {
        self.inner
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host);
        self.inner
            .credentials_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host);
        self.inner.tokens.forget_host(host);
    }

    /// Checks that `host` (`host[:port]`) speaks the distribution API: `GET /v2/`.
    /// Chooses HTTPS, or plain HTTP for an insecure registry that does not speak TLS, and
    /// remembers the choice and the authentication scheme for later requests.
    pub async fn ping(&self, host: &str) -> Result<RegistryInfo, RegistryError> {
        let e = self.endpoint(host).await?;
        Ok(RegistryInfo {
            base_url: e.base.clone(),
            auth: e.auth_scheme().kind(),
        })
    }

    /// Checks `credentials` against `host` as `docker login` does: for basic
    /// authentication `GET /v2/` with them must succeed, for bearer authentication the
    /// token server must issue a token for them. Stores nothing.
    pub async fn login(
        &self,
        host: &str,
        credentials: Credentials,
    ) -> Result<AuthKind, RegistryError> {
        let single = super::credentials::StaticCredentials::new().with(host, credentials.clone());
        let probe = self.with_credentials(Arc::new(single));
        let endpoint = probe.endpoint(host).await?;
        let scheme = endpoint.auth_scheme();
        match &scheme {
            AuthScheme::Anonymous => {}
            AuthScheme::Basic => {
                let url = endpoint.url("")?;
                let header = match &credentials {
                    Credentials::Basic { username, password } => basic_header(username, password),
                    Credentials::IdentityToken(_) => None,
                };
                let Some(header) = header else {
                    return Err(RegistryError::CredentialsRequired {
                        host: host.to_owned(),
                    });
                };
                let resp = probe
                    .send_raw(RawRequest {
                        op: Operation::Ping,
                        method: Method::GET,
                        url: url.clone(),
                        headers: Default::default(),
                        body: ReqBody::Empty,
                        auth: Some((endpoint.origin().clone(), header)),
                        timeout: Some(self.inner.config.request_timeout),
                        follow_redirects: false,
                    })
                    .await?;
                if !resp.status().is_success() {
                    return Err(status_error(Operation::Ping, &display_url(&url), resp).await);
                }
            }
            AuthScheme::Bearer { .. } => {
                probe.authorization(&endpoint, &[]).await?;
            }
        }
        Ok(scheme.kind())
    }
}

fn base_url(scheme: &str, host: &str) -> Result<Url, RegistryError> {
    let url =
        Url::parse(&format!("{scheme}://{host}/")).map_err(|_| RegistryError::InvalidHost {
            host: sanitize(host, 256),
        })?;
    // The URL must be exactly the host asked for (no user info, path or query smuggled in).
    if host_key(&url) != host && format!("{}:{}", host_key(&url), default_port(scheme)) != host {
        return Err(RegistryError::InvalidHost {
            host: sanitize(host, 256),
        });
    }
    Ok(url)
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// A repository on a registry: the host to connect to and the repository path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    host: String,
    name: String,
}

impl Repository {
    /// `name` (e.g. `library/busybox`) on `host` (`host[:port]`, as connected to).
    pub fn new(host: &str, name: &str) -> Result<Repository, RegistryError> {
        validate_host(host)?;
        validate_repository(name)?;
        Ok(Repository {
            host: host.to_ascii_lowercase(),
            name: name.to_owned(),
        })
    }

    /// The repository a reference names (Docker Hub's host is `registry-1.docker.io`).
    pub fn from_reference(reference: &Reference) -> Result<Repository, RegistryError> {
        Repository::new(reference.registry_host(), reference.path())
    }

    /// The host connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another repository on the same registry (for cross-repository mounts).
    pub fn sibling(&self, name: &str) -> Result<Repository, RegistryError> {
        Repository::new(&self.host, name)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

/// Checks a repository path: `/`-separated components of `[a-z0-9]` with `.`, `_`, `-`
/// separators inside, at most 255 bytes. Only URL-safe characters remain possible.
fn validate_repository(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        });
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidRepository {
            name: sanitize(name, 256),
        })
    }
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    /// A tag (`latest`).
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// A tag, checked against `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    pub fn tag(tag: &str) -> Result<ManifestRef, RegistryError> {
        let b = tag.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && b.first()
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if ok {
            Ok(ManifestRef::Tag(tag.to_owned()))
        } else {
            Err(RegistryError::InvalidTag {
                tag: sanitize(tag, 256),
            })
        }
    }

    /// What to fetch for a reference: its digest if it has one, else its tag (`latest`
    /// when it has neither).
    pub fn from_reference(reference: &Reference) -> ManifestRef {
        match (reference.digest(), reference.tag()) {
            (Some(d), _) => ManifestRef::Digest(d.clone()),
            (None, Some(t)) => ManifestRef::Tag(t.to_owned()),
            (None, None) => ManifestRef::Tag(crate::reference::DEFAULT_TAG.to_owned()),
        }
    }

    /// The reference as a URL path segment; a tag is validated again here because the
    /// variant can be built directly.
    pub(crate) fn path_segment(&self) -> Result<String, RegistryError> {
        match self {
            ManifestRef::Tag(t) => ManifestRef::tag(t).map(|_| t.clone()),
            ManifestRef::Digest(d) => Ok(d.to_string()),
        }
    }

    /// The digest, when this names one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ManifestRef::Digest(d) => Some(d),
            ManifestRef::Tag(_) => None,
        }
    }
}

impl From<Digest> for ManifestRef {
    fn from(d: Digest) -> ManifestRef {
        ManifestRef::Digest(d)
    }
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(t) => f.write_str(t),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        let r = Repository::new("127.0.0.1:5000", "library/busybox").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/library/busybox");
        for bad in [
            "", "A/b", "a//b", "a/../b", "a/.b", "a?b", "a b", "-a", "a/", "/a", "a%2f",
        ] {
            assert!(Repository::new("h", bad).is_err(), "{bad:?}");
        }
        assert!(Repository::new("h/x", "a").is_err());
        let reference = Reference::parse_normalized("busybox:1.36").unwrap();
        let r = Repository::from_reference(&reference).unwrap();
        assert_eq!(
            (r.host(), r.name()),
            ("registry-1.docker.io", "library/busybox")
        );
        assert_eq!(
            ManifestRef::from_reference(&reference),
            ManifestRef::Tag("1.36".into())
        );
    }

    #[test]
    fn tags() {
        for ok in ["latest", "1.36.1", "_x", "A-b_c.d"] {
            assert!(ManifestRef::tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a?b", &"x".repeat(129)] {
            assert!(ManifestRef::tag(bad).is_err(), "{bad}");
            assert!(
                ManifestRef::Tag(bad.to_string()).path_segment().is_err(),
                "{bad}"
            );
        }
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            ManifestRef::Digest(d.clone()).path_segment().unwrap(),
            d.to_string()
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("https", "r.example").unwrap().as_str(),
            "https://r.example/"
        );
        assert_eq!(
            base_url("http", "127.0.0.1:5000").unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
        assert!(base_url("https", "r.example:443").is_ok());
        assert!(base_url("https", "u@r.example").is_err());
        assert!(base_url("https", "r.example/x").is_err());
    }
}
