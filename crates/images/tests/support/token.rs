//! A token server for distribution's `auth: token:` mode, as Docker Hub's auth.docker.io.
//!
//! Users: `alice`/`alice-pw` may pull and push everything (and read the catalog);
//! `bob`/`bob-pw` may only pull; anonymous callers may pull `public/*`. The refresh token
//! `alice-refresh` (OAuth2 `grant_type=refresh_token`) stands for alice. Tokens are
//! ES256 JWTs with the signing certificate in `x5c`; the registry trusts that
//! certificate through `rootcertbundle`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::certs::SigningKey;
use super::http::{HttpRequest, Reply, TestServer};

pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-issuer";

pub struct TokenServer {
    pub realm: String,
    pub cert_path: PathBuf,
    /// Tokens issued so far.
    pub issued: Arc<AtomicUsize>,
    _server: TestServer,
}

fn user_of(req: &HttpRequest) -> Result<Option<String>, ()> {
    if req.method == "POST" {
        let form = req.form();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("grant_type").as_deref() != Some("refresh_token") {
            return Err(());
        }
        return match get("refresh_token").as_deref() {
            Some("alice-refresh") => Ok(Some("alice".into())),
            _ => Err(()),
        };
    }
    let Some(auth) = req.header("authorization") else {
        return Ok(None);
    };
    let encoded = auth.strip_prefix("Basic ").ok_or(())?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    match decoded.split_once(':') {
        Some(("alice", "alice-pw")) => Ok(Some("alice".into())),
        Some(("bob", "bob-pw")) => Ok(Some("bob".into())),
        _ => Err(()),
    }
}

fn grant(user: Option<&str>, scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let wanted: Vec<&str> = actions.split(',').collect();
    let allowed: Vec<&str> = match (kind, user) {
        ("registry", Some("alice")) if name == "catalog" => vec!["*"],
        ("repository", Some("alice")) => vec!["pull", "push"],
        ("repository", Some("bob")) => vec!["pull"],
        ("repository", None) if name.starts_with("public/") => vec!["pull"],
        _ => vec![],
    };
    let granted: Vec<&str> = wanted.into_iter().filter(|a| allowed.contains(a)).collect();
    Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
}

impl TokenServer {
    pub async fn start(dir: &Path) -> TokenServer {
        let key = Arc::new(SigningKey::new());
        let cert_path = dir.join("token-signer.crt");
        std::fs::write(&cert_path, &key.cert_pem).unwrap();
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let server = TestServer::spawn(move |req, mut stream| {
            let key = key.clone();
            let counter = counter.clone();
            async move {
                if req.path() != "/token" {
                    return Reply::new(404).send(&mut stream).await;
                }
                let user =
                    match user_of(&req) {
                        Ok(u) => u,
                        Err(()) => return Reply::new(401)
                            .json(&serde_json::json!({"details": "incorrect username or password"}))
                            .send(&mut stream)
                            .await,
                    };
                let scopes: Vec<String> = if req.method == "POST" {
                    req.form()
                        .into_iter()
                        .filter(|(k, _)| k == "scope")
                        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                        .collect()
                } else {
                    req.query()
                        .into_iter()
                        .filter(|(k, _)| k == "scope")
                        .map(|(_, v)| v)
                        .collect()
                };
                let service = req
                    .query()
                    .into_iter()
                    .chain(req.form())
                    .find(|(k, _)| k == "service")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let access: Vec<serde_json::Value> = scopes
                    .iter()
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| grant(user.as_deref(), s))
                    .collect();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let claims = serde_json::json!({
                    "iss": ISSUER,
                    "sub": user.clone().unwrap_or_default(),
                    "aud": service,
                    "exp": now + 300,
                    "nbf": now - 10,
                    "iat": now,
                    "jti": format!("berth-test-{n}"),
                    "access": access,
                });
                let jwt = key.sign_jwt(&claims);
                let body = if req.method == "POST" {
                    serde_json::json!({"access_token": jwt, "expires_in": 300})
                } else {
                    serde_json::json!({"token": jwt, "expires_in": 300})
                };
                Reply::new(200).json(&body).send(&mut stream).await
            }
        })
        .await;
        TokenServer {
            realm: format!("http://{}/token", server.host()),
            cert_path,
            issued,
            _server: server,
        }
    }

    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}
