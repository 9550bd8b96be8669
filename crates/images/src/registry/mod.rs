//! Registry client: OCI distribution-spec 1.1 pull and push, Docker Hub compatible.
//!
//! [`Client`] talks to registries over HTTPS (system roots plus per-registry CAs and
//! client certificates), or plain HTTP for registries the user marks insecure (see
//! [`RegistryConfig`] for docker's rules, which Berth follows). Clones share connection
//! pools, probed endpoints and bearer tokens, so parallel transfers use clones of one
//! client; it is `Send + Sync`. Parallelism itself is the caller's business.
//!
//! # The life of a request
//!
//! 1. **Endpoint.** The first request to a host pings `GET /v2/`: HTTPS first, plain
//!    HTTP only for an insecure registry that does not answer HTTPS. The answer's
//!    challenge fixes the authentication scheme (anonymous, basic, bearer).
//! 2. **Authentication.** Credentials come from a [`CredentialSource`] (for instance the
//!    docker CLI's `config.json`, [`DockerConfig`]) once per host; bearer tokens are
//!    fetched per scope set and cached until they expire (the flow is in `auth`).
//! 3. **Sending.** Redirects are followed by the client itself: never to other schemes,
//!    never from HTTPS to plain HTTP for secure hosts, loops and long chains are errors,
//!    and the `Authorization` header never leaves the origin it was made for. A `401`
//!    re-reads the challenge and retries once; idempotent requests are retried with
//!    backoff on connection failures, `429` and `5xx`.
//! 4. **Answers.** Error bodies become typed errors ([`RegistryError::Status`] with the
//!    registry's codes, classed by [`berth_errdefs::HasKind`]). Every size read from the
//!    wire is bounded: manifests by 4 MiB, blobs by their descriptor's size, listings,
//!    tokens and error bodies by fixed limits.
//!
//! # Operations
//!
//! - [`Client::ping`], [`Client::login`] (checks credentials, stores nothing);
//! - manifests: [`Client::get_manifest`], [`Client::head_manifest`],
//!   [`Client::resolve_manifest`], [`Client::put_manifest`];
//! - blobs: [`Client::fetch_blob`] (verified, resumable stream), [`Client::blob_exists`],
//!   [`Client::push_blob`] (existence check, cross-repository mount, monolithic or chunked);
//! - listings: [`Client::list_tags`], [`Client::catalog`].
//!
//! Progress of blob transfers goes to a [`ProgressSink`](crate::progress::ProgressSink).
//! Proxies are taken from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, as docker does.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use berth_images::reference::Reference;
//! use berth_images::registry::{Client, DockerConfig, ManifestRef, RegistryConfig, Repository};
//!
//! let client = Client::new(RegistryConfig::default(), Arc::new(DockerConfig::from_env()?));
//! let reference = Reference::parse_normalized("busybox")?;
//! let repo = Repository::from_reference(&reference)?;
//! let manifest = client
//!     .get_manifest(&repo, &ManifestRef::from_reference(&reference))
//!     .await?;
//! println!("{} {:?}", manifest.digest, manifest.media_type);
//! # Ok(())
//! # }
//! ```

mod auth;
mod blob_pull;
mod blob_push;
mod challenge;
mod client;
mod config;
mod credentials;
mod error;
mod manifest;
mod tags;
mod transport;

pub use auth::AuthKind;
pub use blob_pull::BlobStream;
pub use blob_push::{PushBlobOptions, PushOutcome, UploadMethod};
pub use challenge::{Challenge, ChallengeError};
pub use client::{Client, ManifestRef, RegistryInfo, Repository};
pub use config::{ClientCertificate, HostConfig, RegistryConfig};
pub use credentials::{
    config_key, Anonymous, CredentialSource, Credentials, CredentialsError, DockerConfig,
    StaticCredentials, DOCKER_HUB_KEY,
};
pub use error::{ErrorCode, Operation, RegistryError, ServerError, ServerErrors};
pub use manifest::{FetchedManifest, ManifestDescriptor, ManifestHead};

/// OCI image manifest media type: an alias of
/// [`manifest::media_type::OCI_MANIFEST`](crate::manifest::media_type::OCI_MANIFEST),
/// which is the one definition (kept because tests use this name).
pub use crate::manifest::media_type::OCI_MANIFEST as MEDIA_TYPE_OCI_MANIFEST;

/// Parses a `WWW-Authenticate` header value (exposed for fuzzing).
pub fn parse_challenges(header: &[u8]) -> Result<Vec<Challenge>, ChallengeError> {
    challenge::parse(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn client_is_shareable() {
        assert_send_sync_clone::<Client>();
        fn assert_send<T: Send>() {}
        assert_send::<BlobStream>();
    }
}
