//! Registry credentials, stored the way the docker CLI stores them.
//!
//! The docker CLI keeps credentials in `config.json` in `$DOCKER_CONFIG`, or in
//! `~/.docker` when that variable is unset:
//!
//! ```json
//! {
//!   "auths": {
//!     "https://index.docker.io/v1/": { "auth": "dXNlcjpwYXNz" },
//!     "registry.example:5000": { "username": "u", "password": "p" },
//!     "ghcr.io": { "auth": "…", "identitytoken": "…" }
//!   },
//!   "credsStore": "pass",
//!   "credHelpers": { "gcr.io": "gcloud" }
//! }
//! ```
//!
//! - `auth` is base64 of `user:password`; `username`/`password` are read when `auth` is
//!   absent; `identitytoken` is an OAuth2 refresh token and wins over the password.
//! - Docker Hub is keyed `https://index.docker.io/v1/`; other registries by `host[:port]`.
//!   Lookups also accept keys written with a scheme or a path (`https://host/v1/`).
//! - `credHelpers[<host>]`, else `credsStore`, names a helper program
//!   `docker-credential-<name>`: `get` reads the server URL on stdin and prints
//!   `{"ServerURL","Username","Secret"}` (a `Username` of `<token>` marks an identity
//!   token); `store` reads that JSON; `erase` reads the server URL. A configured helper
//!   that is not installed is an error, as with the docker CLI.
//!
//! [`DockerConfig`] reads the file on every lookup (so a login elsewhere is seen) and
//! writes it atomically (temporary file in the same directory, `fsync`, `rename`), mode
//! 0600, keeping every field it does not manage.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use berth_errdefs::{ErrorKind, HasKind};
use serde_json::{Map, Value};

use super::error::sanitize;

/// Largest config.json read.
const MAX_CONFIG: u64 = 16 * 1024 * 1024;
/// Largest helper output read.
const MAX_HELPER_OUTPUT: u64 = 1024 * 1024;
/// The key docker uses for Docker Hub.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The user name a credential helper reports for identity tokens.
const TOKEN_USERNAME: &str = "<token>";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and a password (or an access token used as password).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token (docker's "identity token") from an earlier login.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither `$DOCKER_CONFIG` nor `$HOME` is set.
    #[error("cannot locate the docker config directory: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
    /// Reading config.json failed.
    #[error("reading {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// config.json is larger than the limit.
    #[error("{path} is larger than {limit} bytes")]
    ConfigTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// config.json is not valid JSON.
    #[error("parsing {path}: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A field of config.json has the wrong JSON type.
    #[error("{path}: field {field:?} has the wrong type")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
    },
    /// An `auth` field is not base64 of `user:password`.
    #[error("{path}: the auth field of {key:?} is not base64 of \"user:password\"")]
    MalformedAuth {
        /// The file.
        path: PathBuf,
        /// The registry key.
        key: String,
    },
    /// A helper name holds characters that cannot be part of a program name.
    #[error("invalid credential helper name {helper:?}")]
    InvalidHelperName {
        /// The name (bounded).
        helper: String,
    },
    /// The configured credential helper is not installed.
    #[error("credential helper {program} is configured but not installed (not found in PATH)")]
    HelperMissing {
        /// The program name.
        program: String,
    },
    /// Running the credential helper failed.
    #[error("running {program} {action}: {source}")]
    HelperSpawn {
        /// The program name.
        program: String,
        /// The helper action (`get`, `store`, `erase`).
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The credential helper reported a failure.
    #[error("{program} {action} failed: {message}")]
    HelperFailed {
        /// The program name.
        program: String,
        /// The helper action.
        action: &'static str,
        /// Its output (bounded, sanitized).
        message: String,
    },
    /// The credential helper's output is not the expected JSON.
    #[error("{program} get printed invalid JSON: {source}")]
    HelperOutput {
        /// The program name.
        program: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Writing config.json failed.
    #[error("writing {path}: {source}")]
    WriteConfig {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for CredentialsError {
    fn kind(&self) -> ErrorKind {
        match self {
            CredentialsError::NoConfigDir
            | CredentialsError::HelperMissing { .. }
            | CredentialsError::HelperFailed { .. } => ErrorKind::FailedPrecondition,
            CredentialsError::ReadConfig { source, .. }
            | CredentialsError::WriteConfig { source, .. }
            | CredentialsError::HelperSpawn { source, .. } => ErrorKind::from_io(source),
            CredentialsError::ConfigTooLarge { .. }
            | CredentialsError::ParseConfig { .. }
            | CredentialsError::WrongType { .. }
            | CredentialsError::MalformedAuth { .. }
            | CredentialsError::InvalidHelperName { .. }
            | CredentialsError::HelperOutput { .. } => ErrorKind::InvalidArgument,
        }
    }
}

/// Where the registry client gets credentials from.
///
/// Called from a blocking thread (lookups may run helper programs), at most once per
/// registry host and client.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// Credentials for the registry at `host` (`host[:port]`, as connected to, e.g.
    /// `registry-1.docker.io`), or `None` for anonymous access.
    fn credentials(&self, host: &str) -> Result<Option<Credentials>, CredentialsError>;
}

/// No credentials for any registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credentials(&self, _host: &str) -> Result<Option<Credentials>, CredentialsError> {
        Ok(None)
    }
}

/// Fixed credentials per registry host.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    by_host: BTreeMap<String, Credentials>,
}

impl StaticCredentials {
    /// No credentials yet.
    pub fn new() -> StaticCredentials {
        StaticCredentials::default()
    }

    /// Adds (or replaces) the credentials of `host`; Docker Hub's names are unified.
    pub fn with(mut self, host: &str, credentials: Credentials) -> StaticCredentials {
        self.by_host
            .insert(hostname_of_key(&config_key(host)), credentials);
        self
    }
}

impl CredentialSource for StaticCredentials {
    fn credentials(&self, host: &str) -> Result<Option<Credentials>, CredentialsError> {
        Ok(self
            .by_host
            .get(&hostname_of_key(&config_key(host)))
            .cloned())
    }
}

/// Whether `host` names Docker Hub.
fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The key docker uses in `auths` (and sends to helpers) for `host`.
pub fn config_key(host: &str) -> String {
    if is_docker_hub(host) || host == DOCKER_HUB_KEY {
        DOCKER_HUB_KEY.to_owned()
    } else {
        host.to_owned()
    }
}

/// The host part of an `auths` key: without scheme and path; Docker Hub unified.
fn hostname_of_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    if is_docker_hub(host) {
        "index.docker.io".to_owned()
    } else {
        host.to_owned()
    }
}

/// The docker CLI's `config.json`.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    helper_dir: Option<PathBuf>,
}

impl DockerConfig {
    /// The file the docker CLI uses: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`.
    pub fn from_env() -> Result<DockerConfig, CredentialsError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => match std::env::var_os("HOME") {
                Some(home) if !home.is_empty() => PathBuf::from(home).join(".docker"),
                _ => return Err(CredentialsError::NoConfigDir),
            },
        };
        Ok(DockerConfig::at(dir.join("config.json")))
    }

    /// The config file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> DockerConfig {
        DockerConfig {
            path: path.into(),
            helper_dir: None,
        }
    }

    /// Looks for `docker-credential-*` helpers in `dir` instead of `$PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> DockerConfig {
        self.helper_dir = Some(dir.into());
        self
    }

    /// The program to run for `helper`.
    fn helper_program(&self, helper: &str) -> Result<PathBuf, CredentialsError> {
        let name = helper_program(helper)?;
        Ok(match &self.helper_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; a missing file reads as `{}`.
    fn load(&self) -> Result<Map<String, Value>, CredentialsError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(source) => {
                return Err(CredentialsError::ReadConfig {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut data = Vec::new();
        file.take(MAX_CONFIG + 1)
            .read_to_end(&mut data)
            .map_err(|source| CredentialsError::ReadConfig {
                path: self.path.clone(),
                source,
            })?;
        if data.len() as u64 > MAX_CONFIG {
            return Err(CredentialsError::ConfigTooLarge {
                path: self.path.clone(),
                limit: MAX_CONFIG,
            });
        }
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&data) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(self.wrong_type("(top level)")),
            Err(source) => Err(CredentialsError::ParseConfig {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn wrong_type(&self, field: &str) -> CredentialsError {
        CredentialsError::WrongType {
            path: self.path.clone(),
            field: sanitize(field, 256),
        }
    }

    /// The helper configured for `host`, if any.
    fn helper_for(
        &self,
        config: &Map<String, Value>,
        host: &str,
    ) -> Result<Option<String>, CredentialsError> {
        let wanted = hostname_of_key(&config_key(host));
        if let Some(helpers) = config.get("credHelpers") {
            let helpers = helpers
                .as_object()
                .ok_or_else(|| self.wrong_type("credHelpers"))?;
            for (key, name) in helpers {
                if hostname_of_key(key) == wanted {
                    let name = name.as_str().ok_or_else(|| self.wrong_type(key))?;
                    if !name.is_empty() {
                        return Ok(Some(name.to_owned()));
                    }
                }
            }
        }
        match config.get("credsStore") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong_type("credsStore")),
        }
    }

    /// The `auths` entry of `host`: the exact key first, then any key with that host.
    fn find_entry<'a>(
        &self,
        auths: &'a Map<String, Value>,
        host: &str,
    ) -> Option<(&'a String, &'a Value)> {
        let key = config_key(host);
        if let Some(found) = auths.get_key_value(&key) {
            return Some(found);
        }
        let wanted = hostname_of_key(&key);
        auths.iter().find(|(k, _)| hostname_of_key(k) == wanted)
    }

    fn decode_entry(
        &self,
        key: &str,
        entry: &Value,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let entry = entry.as_object().ok_or_else(|| self.wrong_type(key))?;
        let field = |name: &str| -> Result<Option<&str>, CredentialsError> {
            match entry.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(self.wrong_type(&format!("{key}.{name}"))),
            }
        };
        if let Some(token) = field("identitytoken")? {
            return Ok(Some(Credentials::IdentityToken(token.to_owned())));
        }
        if let Some(auth) = field("auth")? {
            let malformed = || CredentialsError::MalformedAuth {
                path: self.path.clone(),
                key: sanitize(key, 256),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| malformed())?;
            let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
            let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
            return Ok(Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.trim_end_matches('\0').to_owned(),
            }));
        }
        match (field("username")?, field("password")?) {
            (Some(username), Some(password)) => Ok(Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            })),
            _ => Ok(None),
        }
    }

    /// Stores credentials for `host` (in its helper when one is configured).
    pub fn store(&self, host: &str, credentials: &Credentials) -> Result<(), CredentialsError> {
        let mut config = self.load()?;
        let key = config_key(host);
        if let Some(helper) = self.helper_for(&config, host)? {
            let (username, secret) = match credentials {
                Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
                Credentials::IdentityToken(t) => (TOKEN_USERNAME, t.as_str()),
            };
            let input =
                serde_json::json!({"ServerURL": key, "Username": username, "Secret": secret});
            run_helper(
                &self.helper_program(&helper)?,
                "store",
                input.to_string().as_bytes(),
            )?;
            // Like the docker CLI, keep an empty entry so the registry is listed.
            let auths = self.auths_mut(&mut config)?;
            auths.retain(|k, _| hostname_of_key(k) != hostname_of_key(&key));
            auths.insert(key, Value::Object(Map::new()));
            return self.save(&config);
        }
        let auths = self.auths_mut(&mut config)?;
        // Keep unrelated fields of an existing entry (e.g. "email"), replace the secrets.
        let mut entry = auths
            .iter()
            .find(|(k, _)| hostname_of_key(k) == hostname_of_key(&key))
            .and_then(|(_, v)| v.as_object().cloned())
            .unwrap_or_default();
        auths.retain(|k, _| hostname_of_key(k) != hostname_of_key(&key));
        for f in ["auth", "username", "password", "identitytoken"] {
            entry.remove(f);
        }
        match credentials {
            Credentials::Basic { username, password } => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                entry.insert("auth".into(), Value::String(auth));
            }
            Credentials::IdentityToken(token) => {
                entry.insert("identitytoken".into(), Value::String(token.clone()));
            }
        }
        auths.insert(key, Value::Object(entry));
        self.save(&config)
    }

    /// Removes the credentials of `host`; returns whether there were any in the file.
    pub fn erase(&self, host: &str) -> Result<bool, CredentialsError> {
        let mut config = self.load()?;
        let key = config_key(host);
        if let Some(helper) = self.helper_for(&config, host)? {
            run_helper(&self.helper_program(&helper)?, "erase", key.as_bytes())?;
        }
        let Some(Value::Object(auths)) = config.get_mut("auths") else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|k, _| hostname_of_key(k) != hostname_of_key(&key));
        if auths.len() == before {
            return Ok(false);
        }
        self.save(&config)?;
        Ok(true)
    }

    fn auths_mut<'a>(
        &self,
        config: &'a mut Map<String, Value>,
    ) -> Result<&'a mut Map<String, Value>, CredentialsError> {
        let err = self.wrong_type("auths");
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if auths.is_null() {
            *auths = Value::Object(Map::new());
        }
        auths.as_object_mut().ok_or(err)
    }

    /// Writes the config atomically: a temporary file beside the target, fsync, rename.
    /// A symlinked config.json is written through to its target, as the docker CLI does.
    fn save(&self, config: &Map<String, Value>) -> Result<(), CredentialsError> {
        let target = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::canonicalize(&self.path).map_err(|source| {
                    CredentialsError::WriteConfig {
                        path: self.path.clone(),
                        source,
                    }
                })?
            }
            _ => self.path.clone(),
        };
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CredentialsError::WriteConfig { path, source }
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(write_err(&dir))?;
        let mut data = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut data, formatter);
        serde::Serialize::serialize(config, &mut ser).map_err(|e| {
            CredentialsError::WriteConfig {
                path: target.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        data.push(b'\n');
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(".config.json.{}.{nanos}.tmp", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(&dir)?.sync_all()
        })();
        if let Err(source) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(CredentialsError::WriteConfig {
                path: target,
                source,
            });
        }
        Ok(())
    }
}

impl CredentialSource for DockerConfig {
    fn credentials(&self, host: &str) -> Result<Option<Credentials>, CredentialsError> {
        let config = self.load()?;
        if let Some(helper) = self.helper_for(&config, host)? {
            return helper_get(&self.helper_program(&helper)?, &config_key(host));
        }
        let Some(auths) = config.get("auths") else {
            return Ok(None);
        };
        if auths.is_null() {
            return Ok(None);
        }
        let auths = auths.as_object().ok_or_else(|| self.wrong_type("auths"))?;
        match self.find_entry(auths, host) {
            Some((key, entry)) => self.decode_entry(key, entry),
            None => Ok(None),
        }
    }
}

fn helper_program(helper: &str) -> Result<String, CredentialsError> {
    let ok = !helper.is_empty()
        && helper.len() <= 64
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !helper.starts_with('.');
    if !ok {
        return Err(CredentialsError::InvalidHelperName {
            helper: sanitize(helper, 64),
        });
    }
    Ok(format!("docker-credential-{helper}"))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns stdout.
fn run_helper(
    program_path: &Path,
    action: &'static str,
    input: &[u8],
) -> Result<Vec<u8>, CredentialsError> {
    let program = program_path.display().to_string();
    let spawn_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            CredentialsError::HelperMissing {
                program: program.clone(),
            }
        } else {
            CredentialsError::HelperSpawn {
                program: program.clone(),
                action,
                source,
            }
        }
    };
    let mut child = Command::new(program_path)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input shows up in its exit status.
        let _ = stdin.write_all(input);
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let io_err = |source| CredentialsError::HelperSpawn {
        program: program.clone(),
        action,
        source,
    };
    if let Some(out) = child.stdout.take() {
        out.take(MAX_HELPER_OUTPUT)
            .read_to_end(&mut stdout)
            .map_err(io_err)?;
    }
    if let Some(err) = child.stderr.take() {
        err.take(MAX_HELPER_OUTPUT)
            .read_to_end(&mut stderr)
            .map_err(io_err)?;
    }
    let status = child.wait().map_err(io_err)?;
    if !status.success() {
        let text = if stdout.iter().all(u8::is_ascii_whitespace) {
            String::from_utf8_lossy(&stderr).into_owned()
        } else {
            String::from_utf8_lossy(&stdout).into_owned()
        };
        return Err(CredentialsError::HelperFailed {
            program,
            action,
            message: sanitize(text.trim(), 512),
        });
    }
    Ok(stdout)
}

fn helper_get(program: &Path, server_url: &str) -> Result<Option<Credentials>, CredentialsError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let out = match run_helper(program, "get", server_url.as_bytes()) {
        Ok(out) => out,
        Err(CredentialsError::HelperFailed { message, .. })
            if message.contains("credentials not found") =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let answer: Answer =
        serde_json::from_slice(&out).map_err(|source| CredentialsError::HelperOutput {
            program: program.display().to_string(),
            source,
        })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    if answer.username == TOKEN_USERNAME {
        return Ok(Some(Credentials::IdentityToken(answer.secret)));
    }
    Ok(Some(Credentials::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn reads_every_docker_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{
                "auths": {
                    "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
                    "https://reg.example:5000/v2/": {"username": "u", "password": "p:w"},
                    "tok.example": {"auth": "dTo=", "identitytoken": "refresh"},
                    "empty.example": {},
                    "bad.example": {"auth": "!!!"}
                },
                "HttpHeaders": {"X-Meta": "1"}
            }"#,
        )
        .unwrap();
        let cfg = DockerConfig::at(&path);
        for hub in ["docker.io", "registry-1.docker.io", "index.docker.io"] {
            assert_eq!(
                cfg.credentials(hub).unwrap(),
                Some(basic("hub", "secret")),
                "{hub}"
            );
        }
        assert_eq!(
            cfg.credentials("reg.example:5000").unwrap(),
            Some(basic("u", "p:w"))
        );
        assert_eq!(
            cfg.credentials("tok.example").unwrap(),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        assert_eq!(cfg.credentials("empty.example").unwrap(), None);
        assert_eq!(cfg.credentials("other.example").unwrap(), None);
        let err = cfg.credentials("bad.example").unwrap_err();
        assert!(
            matches!(err, CredentialsError::MalformedAuth { .. }),
            "{err}"
        );
        assert!(!format!("{:?}", basic("a", "hunter2")).contains("hunter2"));
    }

    #[test]
    fn missing_or_empty_file_is_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::at(dir.path().join("nope/config.json"));
        assert_eq!(cfg.credentials("x").unwrap(), None);
        std::fs::write(dir.path().join("e.json"), "  \n").unwrap();
        assert_eq!(
            DockerConfig::at(dir.path().join("e.json"))
                .credentials("x")
                .unwrap(),
            None
        );
        std::fs::write(dir.path().join("arr.json"), "[]").unwrap();
        assert!(DockerConfig::at(dir.path().join("arr.json"))
            .credentials("x")
            .is_err());
    }

    #[test]
    fn store_and_erase_keep_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"eDp5","email":"a@b"}},
                "proxies":{"default":{"httpProxy":"http://p:3128"}},"detachKeys":"ctrl-x"}"#,
        )
        .unwrap();
        let cfg = DockerConfig::at(&path);
        cfg.store("docker.io", &basic("new", "pw")).unwrap();
        cfg.store("reg.example:5000", &Credentials::IdentityToken("t".into()))
            .unwrap();
        assert_eq!(
            cfg.credentials("docker.io").unwrap(),
            Some(basic("new", "pw"))
        );
        assert_eq!(
            cfg.credentials("reg.example:5000").unwrap(),
            Some(Credentials::IdentityToken("t".into()))
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p:3128");
        assert_eq!(v["detachKeys"], "ctrl-x");
        assert_eq!(v["auths"][DOCKER_HUB_KEY]["email"], "a@b");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(cfg.erase("registry-1.docker.io").unwrap());
        assert!(!cfg.erase("registry-1.docker.io").unwrap());
        assert_eq!(cfg.credentials("docker.io").unwrap(), None);
        assert_eq!(
            cfg.credentials("reg.example:5000").unwrap(),
            Some(Credentials::IdentityToken("t".into()))
        );
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    }

    #[test]
    fn store_creates_the_file_and_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, r#"{"credsStore":""}"#).unwrap();
        let link = dir.path().join("sub/config.json");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        DockerConfig::at(&link)
            .store("h:1", &basic("a", "b"))
            .unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            DockerConfig::at(&real).credentials("h:1").unwrap(),
            Some(basic("a", "b"))
        );
        let fresh = dir.path().join("new/dir/config.json");
        DockerConfig::at(&fresh)
            .store("h:2", &basic("c", "d"))
            .unwrap();
        assert_eq!(
            DockerConfig::at(&fresh).credentials("h:2").unwrap(),
            Some(basic("c", "d"))
        );
    }

    #[test]
    fn helpers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"credsStore":"berth-test-missing-helper","credHelpers":{"evil.example":"../../bin/sh"}}"#,
        )
        .unwrap();
        let cfg = DockerConfig::at(&path);
        let err = cfg.credentials("x.example").unwrap_err();
        assert!(
            matches!(err, CredentialsError::HelperMissing { .. }),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        let err = cfg.credentials("evil.example").unwrap_err();
        assert!(
            matches!(err, CredentialsError::InvalidHelperName { .. }),
            "{err}"
        );
    }

    #[test]
    fn helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        // A fake helper: `get` answers per server URL, `store`/`erase` log their input.
        let script = format!(
            "#!/bin/sh\nread -r input\necho \"$1 $input\" >> {log}\ncase \"$1 $input\" in\n\
             'get https://index.docker.io/v1/') echo '{{\"ServerURL\":\"x\",\"Username\":\"hubuser\",\"Secret\":\"hubpw\"}}' ;;\n\
             'get tok.example') echo '{{\"Username\":\"<token>\",\"Secret\":\"rt\"}}' ;;\n\
             get*) echo 'credentials not found in native keychain'; exit 1 ;;\n\
             esac\n",
            log = log.display()
        );
        let prog = dir.path().join("docker-credential-berthtest");
        std::fs::write(&prog, script).unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"credsStore":"berthtest","credHelpers":{"plain.example":""}}"#,
        )
        .unwrap();
        let cfg = DockerConfig::at(&path).with_helper_dir(dir.path());
        assert_eq!(
            cfg.credentials("docker.io").unwrap(),
            Some(basic("hubuser", "hubpw"))
        );
        assert_eq!(
            cfg.credentials("tok.example").unwrap(),
            Some(Credentials::IdentityToken("rt".into()))
        );
        assert_eq!(cfg.credentials("none.example").unwrap(), None);
        cfg.store("reg.example", &basic("u", "p")).unwrap();
        assert!(cfg.erase("reg.example").unwrap());
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains(r#"store {"Secret":"p","ServerURL":"reg.example","Username":"u"}"#),
            "{logged}"
        );
        assert!(logged.contains("erase reg.example"), "{logged}");
        // The password never reaches config.json.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("\"p\""));
    }

    #[test]
    fn static_credentials_unify_docker_hub() {
        let s = StaticCredentials::new().with("docker.io", basic("a", "b"));
        assert_eq!(
            s.credentials("registry-1.docker.io").unwrap(),
            Some(basic("a", "b"))
        );
        assert_eq!(s.credentials("quay.io").unwrap(), None);
    }
}
