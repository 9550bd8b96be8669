//! Registry operations: pull, push and login, with the credentials clients send.
//!
//! Docker clients send credentials with each request (`X-Registry-Auth`) and check
//! them with `POST /auth`; the engine keeps the ones it was given, per registry host,
//! in memory only (never on disk), and the image service asks for them when a registry
//! wants them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use berth_images::manifest::Platform;
use berth_images::progress::{Progress, ProgressSink, ProgressState};
use berth_images::reference::Reference;
use berth_images::registry::{CredentialSource, Credentials, CredentialsError};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::events::Event;

/// Credentials clients gave, by registry host.
#[derive(Debug, Default)]
pub(crate) struct ClientCredentials {
    by_host: Mutex<HashMap<String, Credentials>>,
}

fn canonical_host(host: &str) -> String {
    let h = host
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let h = h.split('/').next().unwrap_or(h);
    match h {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "registry-1.docker.io".to_owned()
        }
        other => other.to_owned(),
    }
}

impl ClientCredentials {
    pub(crate) fn set(&self, host: &str, c: Credentials) {
        self.by_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(canonical_host(host), c);
    }
}

impl CredentialSource for ClientCredentials {
    fn credentials(
        &self,
        host: &str,
    ) -> std::result::Result<Option<Credentials>, CredentialsError> {
        Ok(self
            .by_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&canonical_host(host))
            .cloned())
    }
}

/// One line of Docker's JSON progress stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferMessage {
    /// A status line (`{"status": …, "id": …}`), with progress when moving bytes.
    Status {
        /// The text.
        status: String,
        /// The layer (short digest) or tag it is about.
        id: Option<String>,
        /// Bytes done and total.
        progress: Option<(u64, Option<u64>)>,
    },
    /// The pushed manifest (`aux`).
    Pushed {
        /// Tag.
        tag: String,
        /// Manifest digest.
        digest: String,
        /// Manifest size.
        size: u64,
    },
    /// The transfer failed.
    Error(String),
}

struct Sink {
    tx: mpsc::UnboundedSender<TransferMessage>,
    push: bool,
}

impl ProgressSink for Sink {
    fn report(&self, e: Progress) {
        let id = Some(e.digest.hex().get(..12).unwrap_or_default().to_owned());
        let (status, progress) = match (e.state, self.push) {
            (ProgressState::Waiting, _) => ("Waiting", None),
            (ProgressState::Downloading, _) => ("Downloading", Some((e.current, e.total))),
            (ProgressState::Uploading, _) => ("Pushing", Some((e.current, e.total))),
            (ProgressState::Verifying, _) => ("Verifying Checksum", None),
            (ProgressState::Extracting, _) => ("Extracting", Some((e.current, e.total))),
            (ProgressState::Done, false) => ("Pull complete", None),
            (ProgressState::Done, true) => ("Pushed", None),
            (ProgressState::AlreadyExists, false) => ("Already exists", None),
            (ProgressState::AlreadyExists, true) => ("Layer already exists", None),
        };
        let _ = self.tx.send(TransferMessage::Status {
            status: status.to_owned(),
            id,
            progress,
        });
    }
}

fn status(text: String, id: Option<String>) -> TransferMessage {
    TransferMessage::Status {
        status: text,
        id,
        progress: None,
    }
}

fn parse_ref(s: &str) -> Result<Reference> {
    Reference::parse_normalized(s)
        .map_err(|e| EngineError::InvalidArgument(format!("invalid reference format: {s}: {e}")))
}

impl Engine {
    /// Remembers credentials a client sent for `host`.
    pub fn set_credentials(
        &self,
        host: &str,
        username: String,
        password: String,
        identity_token: Option<String>,
    ) {
        let c = match identity_token.filter(|t| !t.is_empty()) {
            Some(t) => Credentials::IdentityToken(t),
            None => Credentials::Basic { username, password },
        };
        self.inner.credentials.set(host, c);
    }

    /// Checks credentials against a registry (`docker login`); remembers them if good.
    pub async fn login(&self, server: &str, username: String, password: String) -> Result<()> {
        let host = canonical_host(if server.is_empty() {
            "docker.io"
        } else {
            server
        });
        let creds = Credentials::Basic { username, password };
        self.inner
            .images
            .client()
            .login(&host, creds.clone())
            .await
            .map_err(|e| EngineError::Unauthorized(e.to_string()))?;
        self.inner.credentials.set(&host, creds);
        Ok(())
    }

    /// Pulls `reference` (`docker pull`), reporting progress on the returned channel,
    /// which ends with the result.
    pub fn pull(&self, reference: &str) -> Result<mpsc::UnboundedReceiver<TransferMessage>> {
        let r = parse_ref(reference)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = self.clone();
        tokio::spawn(async move {
            let tag = r.tag().unwrap_or("latest").to_owned();
            let _ = tx.send(status(
                format!("Pulling from {}", r.familiar_name()),
                Some(tag),
            ));
            let had = engine
                .inner
                .images
                .inspect(&r.to_string())
                .await
                .ok()
                .map(|i| i.id);
            let sink = Arc::new(Sink {
                tx: tx.clone(),
                push: false,
            });
            match engine.inner.images.pull(&r, &Platform::host(), sink).await {
                Ok(img) => {
                    let _ = tx.send(status(format!("Digest: {}", img.manifest_digest), None));
                    let what = if had.as_ref() == Some(&img.id) {
                        "Image is up to date for"
                    } else {
                        "Downloaded newer image for"
                    };
                    let _ = tx.send(status(format!("Status: {what} {}", r.familiar()), None));
                    engine.emit(Event::new(
                        "image",
                        "pull",
                        &r.familiar(),
                        vec![("name".into(), r.familiar())],
                    ));
                }
                Err(e) => {
                    let _ = tx.send(TransferMessage::Error(e.to_string()));
                }
            }
        });
        Ok(rx)
    }

    /// Pushes image `name` (`docker push`).
    pub fn push(&self, name: &str) -> Result<mpsc::UnboundedReceiver<TransferMessage>> {
        let r = parse_ref(name)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = self.clone();
        let name = r.to_string();
        tokio::spawn(async move {
            let _ = tx.send(status(
                format!("The push refers to repository [{}]", r.name()),
                None,
            ));
            if engine.inner.images.inspect(&name).await.is_err() {
                let _ = tx.send(TransferMessage::Error(format!(
                    "An image does not exist locally with the tag: {}",
                    r.familiar_name()
                )));
                return;
            }
            let sink = Arc::new(Sink {
                tx: tx.clone(),
                push: true,
            });
            match engine
                .inner
                .images
                .push(
                    &name,
                    None,
                    berth_images::push::PushOptions::default(),
                    sink,
                )
                .await
            {
                Ok(res) => {
                    let tag = r.tag().unwrap_or("latest").to_owned();
                    let _ = tx.send(status(
                        format!("{tag}: digest: {} size: {}", res.digest, res.size),
                        None,
                    ));
                    let _ = tx.send(TransferMessage::Pushed {
                        tag,
                        digest: res.digest.to_string(),
                        size: res.size,
                    });
                    engine.emit(Event::new(
                        "image",
                        "push",
                        &r.familiar(),
                        vec![("name".into(), r.familiar())],
                    ));
                }
                Err(e) => {
                    let _ = tx.send(TransferMessage::Error(e.to_string()));
                }
            }
        });
        Ok(rx)
    }
}
