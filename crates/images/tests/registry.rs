//! Registry client against real peers and hostile doubles, all on loopback:
//! Debian's `docker-registry` (distribution 2.8) anonymous, with htpasswd, behind a token
//! server, and over HTTPS with a test CA; a fake registry that lies, loops and breaks
//! connections; and `skopeo` for interoperability.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::digest::Digest;
use berth_images::progress::{NoProgress, ProgressState};
use berth_images::reference::Reference;
use berth_images::registry::{
    Anonymous, AuthKind, Client, Credentials, DockerConfig, HostConfig, ManifestRef,
    PushBlobOptions, PushOutcome, RegistryError, Repository, StaticCredentials, UploadMethod,
    MEDIA_TYPE_OCI_MANIFEST,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use support::fake::{FakeRegistry, Mode};
use support::registry::{Auth, Options, Registry};
use support::token::TokenServer;
use support::{bytes, test_config, Recorder};

macro_rules! require_registry {
    () => {
        if !Registry::available() {
            eprintln!("skipping: {} is not installed", support::registry::BINARY);
            return;
        }
    };
}

fn anonymous_client() -> Client {
    Client::new(test_config(), Arc::new(Anonymous))
}

fn client_with(host: &str, credentials: Credentials) -> Client {
    Client::new(
        test_config(),
        Arc::new(StaticCredentials::new().with(host, credentials)),
    )
}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

/// A small image: config, a small layer and a 3 MiB layer, and its OCI manifest.
struct TestImage {
    blobs: Vec<(Digest, Vec<u8>)>,
    manifest: Vec<u8>,
}

impl TestImage {
    fn new(seed: u64) -> TestImage {
        let layer1 = bytes(200 * 1024 + 7, seed);
        let layer2 = bytes(3 * 1024 * 1024 + 123, seed + 1);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [
                Digest::sha256_of(&layer1).to_string(), Digest::sha256_of(&layer2).to_string()]},
            "seed": seed,
        }))
        .unwrap();
        let desc = |media: &str, data: &[u8]| serde_json::json!({"mediaType": media, "digest": Digest::sha256_of(data).to_string(), "size": data.len()});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": [
                desc("application/vnd.oci.image.layer.v1.tar", &layer1),
                desc("application/vnd.oci.image.layer.v1.tar", &layer2),
            ],
        }))
        .unwrap();
        TestImage {
            blobs: [config, layer1, layer2]
                .into_iter()
                .map(|b| (Digest::sha256_of(&b), b))
                .collect(),
            manifest,
        }
    }

    /// Pushes the blobs (first monolithic, others chunked) and the manifest under `tag`.
    async fn push(&self, client: &Client, repo: &Repository, tag: &str) -> Digest {
        for (i, (digest, data)) in self.blobs.iter().enumerate() {
            let options = PushBlobOptions {
                method: if i == 0 {
                    UploadMethod::Monolithic
                } else {
                    UploadMethod::Chunked {
                        chunk_size: 1024 * 1024,
                    }
                },
                ..PushBlobOptions::default()
            };
            client
                .push_blob(
                    repo,
                    digest,
                    data.len() as u64,
                    std::io::Cursor::new(data.clone()),
                    &options,
                    Arc::new(NoProgress),
                )
                .await
                .unwrap();
        }
        client
            .put_manifest(
                repo,
                &ManifestRef::tag(tag).unwrap(),
                MEDIA_TYPE_OCI_MANIFEST,
                Bytes::from(self.manifest.clone()),
            )
            .await
            .unwrap()
    }

    /// Pulls the manifest by tag and by digest and every blob, checking bytes.
    async fn verify_pull(&self, client: &Client, repo: &Repository, tag: &str) {
        let by_tag = client
            .get_manifest(repo, &ManifestRef::tag(tag).unwrap())
            .await
            .unwrap();
        assert_eq!(by_tag.bytes.as_ref(), self.manifest.as_slice());
        assert_eq!(by_tag.digest, Digest::sha256_of(&self.manifest));
        assert_eq!(by_tag.media_type.as_deref(), Some(MEDIA_TYPE_OCI_MANIFEST));
        let by_digest = client
            .get_manifest(repo, &ManifestRef::Digest(by_tag.digest.clone()))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, by_tag.bytes);
        for (digest, data) in &self.blobs {
            let got = client
                .fetch_blob(repo, digest, data.len() as u64, Arc::new(NoProgress))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert!(got.as_ref() == data.as_slice(), "blob {digest} differs");
        }
    }
}

async fn push_bytes(
    client: &Client,
    repo: &Repository,
    data: &[u8],
    options: &PushBlobOptions,
) -> Result<PushOutcome, RegistryError> {
    client
        .push_blob(
            repo,
            &Digest::sha256_of(data),
            data.len() as u64,
            std::io::Cursor::new(data.to_vec()),
            options,
            Arc::new(NoProgress),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_registry_push_pull_mount_tags() {
    require_registry!();
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: None,
        client_ca: None,
    });
    let client = anonymous_client();
    let info = client.ping(&registry.host()).await.unwrap();
    assert_eq!(info.auth, AuthKind::Anonymous);
    // 127.0.0.1 is insecure by docker's default: HTTPS failed, plain HTTP was chosen.
    assert_eq!(info.base_url.scheme(), "http");

    let repo = Repository::new(&registry.host(), "berth/app").unwrap();
    let image = TestImage::new(1);
    let digest = image.push(&client, &repo, "v1").await;
    assert_eq!(digest, Digest::sha256_of(&image.manifest));
    image.verify_pull(&client, &repo, "v1").await;

    // Pull through a Reference, as the engine will.
    let reference =
        Reference::parse_normalized(&format!("{}/berth/app:v1", registry.host())).unwrap();
    let r = Repository::from_reference(&reference).unwrap();
    let resolved = client
        .resolve_manifest(&r, &ManifestRef::from_reference(&reference))
        .await
        .unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.size, image.manifest.len() as u64);
    let head = client
        .head_manifest(&repo, &ManifestRef::Digest(digest.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, Some(digest.clone()));

    // HEAD skip: pushing a blob the repository has moves nothing.
    let (layer_digest, layer) = &image.blobs[1];
    let progress = Recorder::new();
    let outcome = client
        .push_blob(
            &repo,
            layer_digest,
            layer.len() as u64,
            std::io::Cursor::new(layer.clone()),
            &PushBlobOptions::default(),
            progress.clone(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::AlreadyExists);
    assert_eq!(
        progress.events().last().unwrap().state,
        ProgressState::AlreadyExists
    );
    assert_eq!(
        client.blob_exists(&repo, layer_digest).await.unwrap(),
        Some(layer.len() as u64)
    );

    // Cross-repository mount.
    let other = repo.sibling("berth/other").unwrap();
    assert_eq!(
        client.blob_exists(&other, layer_digest).await.unwrap(),
        None
    );
    let mount = PushBlobOptions {
        mount_from: Some(repo.clone()),
        ..PushBlobOptions::default()
    };
    assert_eq!(
        push_bytes(&client, &other, layer, &mount).await.unwrap(),
        PushOutcome::Mounted
    );
    assert_eq!(
        client.blob_exists(&other, layer_digest).await.unwrap(),
        Some(layer.len() as u64)
    );
    // A mount the registry declines (source lacks the blob) falls back to an upload.
    let fresh = bytes(10_000, 99);
    let decline = PushBlobOptions {
        mount_from: Some(repo.sibling("berth/empty").unwrap()),
        ..PushBlobOptions::default()
    };
    assert_eq!(
        push_bytes(&client, &other, &fresh, &decline).await.unwrap(),
        PushOutcome::Uploaded
    );
    assert!(client
        .blob_exists(&other, &Digest::sha256_of(&fresh))
        .await
        .unwrap()
        .is_some());

    // Progress of a pull: Downloading up to the declared size.
    let progress = Recorder::new();
    let mut stream = client
        .fetch_blob(&repo, layer_digest, layer.len() as u64, progress.clone())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    assert_eq!(n, layer.len());
    let events = progress.events();
    assert!(events.iter().all(|e| e.state == ProgressState::Downloading));
    let last = events.last().unwrap();
    assert_eq!(
        (last.current, last.total),
        (layer.len() as u64, Some(layer.len() as u64))
    );

    // Tags, with pagination.
    for tag in ["v2", "v3"] {
        client
            .put_manifest(
                &repo,
                &ManifestRef::tag(tag).unwrap(),
                MEDIA_TYPE_OCI_MANIFEST,
                Bytes::from(image.manifest.clone()),
            )
            .await
            .unwrap();
    }
    let mut tags = client.list_tags(&repo, Some(1)).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    let catalog = client.catalog(&registry.host(), Some(1)).await.unwrap();
    assert!(catalog.contains(&"berth/app".to_string()), "{catalog:?}");
    assert!(catalog.contains(&"berth/other".to_string()), "{catalog:?}");

    // Errors are typed.
    let e = client
        .get_manifest(&repo, &ManifestRef::tag("nope").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("MANIFEST_UNKNOWN"), "{e}");
    let missing = Digest::sha256_of(b"missing");
    let e = client
        .fetch_blob(&repo, &missing, 7, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client
        .get_manifest(
            &repo.sibling("berth/nothing").unwrap(),
            &ManifestRef::tag("v1").unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // Bad local data never becomes a blob.
    let data = bytes(5000, 7);
    let wrong = Digest::sha256_of(b"something else");
    for method in [
        UploadMethod::Monolithic,
        UploadMethod::Chunked { chunk_size: 1024 },
    ] {
        let options = PushBlobOptions {
            method,
            ..PushBlobOptions::default()
        };
        let e = client
            .push_blob(
                &repo,
                &wrong,
                data.len() as u64,
                std::io::Cursor::new(data.clone()),
                &options,
                Arc::new(NoProgress),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, RegistryError::UploadDigestMismatch { .. }),
            "{e}"
        );
        let e = client
            .push_blob(
                &repo,
                &Digest::sha256_of(&data),
                data.len() as u64 + 10,
                std::io::Cursor::new(data.clone()),
                &options,
                Arc::new(NoProgress),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, RegistryError::UploadSizeMismatch { .. }), "{e}");
        let e = client
            .push_blob(
                &repo,
                &Digest::sha256_of(&data[..4000]),
                4000,
                std::io::Cursor::new(data.clone()),
                &options,
                Arc::new(NoProgress),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, RegistryError::UploadSizeMismatch { .. }), "{e}");
    }
    assert_eq!(client.blob_exists(&repo, &wrong).await.unwrap(), None);
    assert_eq!(
        client
            .blob_exists(&repo, &Digest::sha256_of(&data[..4000]))
            .await
            .unwrap(),
        None
    );

    // A manifest referencing a missing blob is refused by the registry.
    let dangling = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing.to_string(), "size": 7},
        "layers": []
    }))
    .unwrap();
    let e = client
        .put_manifest(
            &repo,
            &ManifestRef::tag("bad").unwrap(),
            MEDIA_TYPE_OCI_MANIFEST,
            Bytes::from(dangling),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{e}");

    // Parallel pulls through clones of one client.
    let mut tasks = Vec::new();
    for (digest, data) in image.blobs.clone() {
        let c = client.clone();
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let got = c
                .fetch_blob(&repo, &digest, data.len() as u64, Arc::new(NoProgress))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert!(got.as_ref() == data.as_slice());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth() {
    require_registry!();
    let registry = Registry::start(Options {
        auth: Auth::Htpasswd(vec![("alice".into(), "s3cret".into())]),
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let repo = Repository::new(&host, "team/app").unwrap();
    let image = TestImage::new(10);

    // No credentials: a clear error.
    let e = anonymous_client()
        .get_manifest(&repo, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::CredentialsRequired { .. }),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);

    // Wrong password: refused.
    let e = client_with(&host, basic("alice", "wrong"))
        .get_manifest(&repo, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // login checks credentials.
    let c = anonymous_client();
    assert_eq!(
        c.login(&host, basic("alice", "s3cret")).await.unwrap(),
        AuthKind::Basic
    );
    let e = c.login(&host, basic("alice", "nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // Credentials from a docker config.json, stored and read as the docker CLI does.
    let dir = tempfile::tempdir().unwrap();
    let config = DockerConfig::at(dir.path().join("config.json"));
    config.store(&host, &basic("alice", "typo")).unwrap();
    let client = Client::new(test_config(), Arc::new(config.clone()));
    assert_eq!(client.ping(&host).await.unwrap().auth, AuthKind::Basic);
    let e = client
        .get_manifest(&repo, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    // A new login is seen once the client forgets what it cached for the host.
    config.store(&host, &basic("alice", "s3cret")).unwrap();
    let text = std::fs::read_to_string(config.path()).unwrap();
    assert!(text.contains(&host) && text.contains("\"auth\""), "{text}");
    client.forget_host(&host);
    image.push(&client, &repo, "v1").await;
    image.verify_pull(&client, &repo, "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_bearer_flow() {
    require_registry!();
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path()).await;
    let registry = Registry::start(Options {
        auth: Auth::Token {
            realm: tokens.realm.clone(),
            cert: tokens.cert_path.clone(),
        },
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let alice = client_with(&host, basic("alice", "alice-pw"));
    assert_eq!(alice.ping(&host).await.unwrap().auth, AuthKind::Bearer);

    // alice pushes and pulls.
    let public = Repository::new(&host, "public/app").unwrap();
    let image = TestImage::new(20);
    image.push(&alice, &public, "v1").await;
    image.verify_pull(&alice, &public, "v1").await;

    // Tokens are cached per scope: pulling again fetches no new token.
    let before = tokens.issued();
    image.verify_pull(&alice, &public, "v1").await;
    assert_eq!(tokens.issued(), before, "tokens were not reused");

    // Cross-repository mount with a token for both repositories.
    let private = Repository::new(&host, "private/app").unwrap();
    let (d, layer) = &image.blobs[2];
    let mount = PushBlobOptions {
        mount_from: Some(public.clone()),
        ..PushBlobOptions::default()
    };
    assert_eq!(
        push_bytes(&alice, &private, layer, &mount).await.unwrap(),
        PushOutcome::Mounted
    );
    assert!(alice.blob_exists(&private, d).await.unwrap().is_some());
    image.push(&alice, &private, "v1").await;

    // Anonymous callers get pull-only tokens for public/*.
    let anon = anonymous_client();
    image.verify_pull(&anon, &public, "v1").await;
    let e = anon
        .get_manifest(&private, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let e = push_bytes(&anon, &public, &bytes(100, 3), &PushBlobOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // bob may pull, not push.
    let bob = client_with(&host, basic("bob", "bob-pw"));
    image.verify_pull(&bob, &private, "v1").await;
    let e = push_bytes(&bob, &private, &bytes(100, 4), &PushBlobOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // Wrong password: the token server refuses.
    let e = client_with(&host, basic("alice", "bad"))
        .get_manifest(&public, &ManifestRef::tag("v1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // Identity token (OAuth2 refresh token flow).
    let refresh = client_with(&host, Credentials::IdentityToken("alice-refresh".into()));
    image.verify_pull(&refresh, &private, "v1").await;
    push_bytes(
        &refresh,
        &private,
        &bytes(1000, 5),
        &PushBlobOptions::default(),
    )
    .await
    .unwrap();

    // login, catalog (alice only).
    assert_eq!(
        anon.login(&host, basic("alice", "alice-pw")).await.unwrap(),
        AuthKind::Bearer
    );
    assert!(anon.login(&host, basic("alice", "no")).await.is_err());
    let catalog = alice.catalog(&host, None).await.unwrap();
    assert!(catalog.contains(&"private/app".to_string()), "{catalog:?}");
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_registry_with_custom_ca() {
    require_registry!();
    let ca = support::certs::TestCa::new("berth test CA");
    let (cert, key) = ca.server_cert(&["127.0.0.1", "localhost"]);
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: Some((cert, key)),
        client_ca: None,
    });
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();

    // Secure (loopback not insecure): without the CA the certificate is refused.
    let mut config = test_config();
    config.insecure_loopback = false;
    let untrusting = Client::new(config.clone(), Arc::new(Anonymous));
    let e = untrusting.ping(&host).await.unwrap_err();
    assert!(matches!(e, RegistryError::Send { .. }), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);

    // With the CA for this host.
    let mut with_ca = config.clone();
    with_ca.hosts.insert(
        host.clone(),
        HostConfig {
            ca_files: vec![ca_file.clone()],
            ..HostConfig::default()
        },
    );
    let client = Client::new(with_ca, Arc::new(Anonymous));
    let info = client.ping(&host).await.unwrap();
    assert_eq!(info.base_url.scheme(), "https");
    let repo = Repository::new(&host, "tls/app").unwrap();
    let image = TestImage::new(30);
    image.push(&client, &repo, "v1").await;
    image.verify_pull(&client, &repo, "v1").await;

    // With docker's certs.d layout.
    let certs_d = dir.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&host)).unwrap();
    std::fs::copy(&ca_file, certs_d.join(&host).join("ca.crt")).unwrap();
    let mut layout = config.clone();
    layout.certs_dir = Some(certs_d);
    let client = Client::new(layout, Arc::new(Anonymous));
    image.verify_pull(&client, &repo, "v1").await;

    // Insecure (docker's default for 127.0.0.0/8): HTTPS without verification.
    let insecure = anonymous_client();
    assert_eq!(
        insecure.ping(&host).await.unwrap().base_url.scheme(),
        "https"
    );
    image.verify_pull(&insecure, &repo, "v1").await;

    // Mutual TLS: a registry that demands a client certificate signed by the CA.
    let (cert, key) = ca.server_cert(&["127.0.0.1"]);
    let mtls = Registry::start(Options {
        auth: Auth::None,
        tls: Some((cert, key)),
        client_ca: Some(ca.cert_pem.clone()),
    });
    let mtls_host = mtls.host();
    let certs_d = dir.path().join("certs-mtls.d");
    let host_dir = certs_d.join(&mtls_host);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca_file, host_dir.join("ca.crt")).unwrap();
    let mut ca_only = config.clone();
    ca_only.certs_dir = Some(certs_d.clone());
    let e = Client::new(ca_only.clone(), Arc::new(Anonymous))
        .ping(&mtls_host)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let (client_cert, client_key) = ca.client_cert("berth-test-client");
    std::fs::write(host_dir.join("client.cert"), client_cert).unwrap();
    std::fs::write(host_dir.join("client.key"), client_key).unwrap();
    let client = Client::new(ca_only, Arc::new(Anonymous));
    let repo = Repository::new(&mtls_host, "mtls/app").unwrap();
    image.push(&client, &repo, "v1").await;
    image.verify_pull(&client, &repo, "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registry_is_caught() {
    let fake = FakeRegistry::start(bytes(300 * 1024 + 11, 40), Mode::Open).await;
    let client = anonymous_client();
    let size = fake.blob.len() as u64;
    let repo = |name: &str| Repository::new(&fake.host(), name).unwrap();
    let fetch = |name: &'static str| {
        let client = client.clone();
        let repo = repo(name);
        let digest = fake.digest.clone();
        async move {
            match client
                .fetch_blob(&repo, &digest, size, Arc::new(NoProgress))
                .await
            {
                Ok(s) => s.collect().await,
                Err(e) => Err(e),
            }
        }
    };
    assert!(fetch("good/x").await.unwrap().as_ref() == fake.blob.as_slice());

    let e = fetch("lie/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::BlobDigestMismatch { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = fetch("longheader/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::BlobTooLarge { .. }), "{e}");
    let e = fetch("longclose/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::BlobTooLarge { .. }), "{e}");
    let e = fetch("loop/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::RedirectLoop { .. }), "{e}");
    let e = fetch("chain/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::TooManyRedirects { .. }), "{e}");
    assert!(e.to_string().contains("more than 10 redirects"), "{e}");

    // Manifests.
    let e = client
        .get_manifest(&repo("mlie/x"), &ManifestRef::tag("t").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::DigestHeaderMismatch { .. }),
        "{e}"
    );
    let asked = Digest::sha256_of(b"asked for this");
    let e = client
        .get_manifest(&repo("mlie/x"), &ManifestRef::Digest(asked))
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::ManifestDigestMismatch { .. }),
        "{e}"
    );
    let e = client
        .get_manifest(&repo("mbig/x"), &ManifestRef::tag("t").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::ManifestTooLarge { .. }), "{e}");
    let good = client
        .get_manifest(&repo("good/x"), &ManifestRef::tag("t").unwrap())
        .await
        .unwrap();
    assert_eq!(good.bytes.as_ref(), fake.manifest.as_slice());

    // Registry error bodies.
    let e = client
        .get_manifest(&repo("denied/x"), &ManifestRef::tag("t").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("DENIED"), "{e}");
    let e = client
        .get_manifest(&repo("busy/x"), &ManifestRef::tag("t").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // Retried: one attempt plus `retries`.
    assert_eq!(
        fake.seen("/v2/busy/").len(),
        1 + test_config().retries as usize
    );

    // Tag listings.
    let mut tags = client.list_tags(&repo("paged/x"), Some(1)).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c"]);
    let e = client
        .list_tags(&repo("tagloop/x"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::RedirectLoop { .. }), "{e}");
    let e = client
        .list_tags(&repo("tagaway/x"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::RefusedRedirect { .. }), "{e}");

    // An unparseable challenge.
    let hostile = FakeRegistry::start(bytes(10, 41), Mode::HostileChallenge).await;
    let e = anonymous_client().ping(&hostile.host()).await.unwrap_err();
    assert!(matches!(e, RegistryError::Challenge { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_downloads_resume() {
    let fake = FakeRegistry::start(bytes(400 * 1024 + 3, 50), Mode::Open).await;
    let client = anonymous_client();
    let size = fake.blob.len() as u64;
    let half = fake.blob.len() / 2;
    let fetch = |name: &str| {
        let client = client.clone();
        let repo = Repository::new(&fake.host(), name).unwrap();
        let digest = fake.digest.clone();
        async move {
            match client
                .fetch_blob(&repo, &digest, size, Arc::new(NoProgress))
                .await
            {
                Ok(s) => s.collect().await,
                Err(e) => Err(e),
            }
        }
    };

    // Resumed with Range, the server answering 206.
    assert!(fetch("cut/x").await.unwrap().as_ref() == fake.blob.as_slice());
    let seen = fake.seen("/v2/cut/");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );

    // The server ignores Range: restarted from 0, bytes already seen skipped.
    assert!(fetch("cutnorange/x").await.unwrap().as_ref() == fake.blob.as_slice());
    // The server answers the wrong range: asked again without Range.
    assert!(fetch("cutbadrange/x").await.unwrap().as_ref() == fake.blob.as_slice());
    let seen = fake.seen("/v2/cutbadrange/");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[1].range.is_some() && seen[2].range.is_none(),
        "{seen:?}"
    );

    // A connection that never brings a byte: bounded retries, then a clear error.
    let e = fetch("cutforever/x").await.unwrap_err();
    assert!(
        matches!(e, RegistryError::BlobTruncated { received: 0, .. }),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        fake.seen("/v2/cutforever/").len(),
        1 + test_config().retries as usize
    );

    // Through AsyncRead.
    let repo = Repository::new(&fake.host(), "cut/y").unwrap();
    let mut reader = client
        .fetch_blob(&repo, &fake.digest, size, Arc::new(NoProgress))
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out)
        .await
        .unwrap();
    assert!(out == fake.blob);

    // Resuming from bytes the caller already holds (e.g. after a crash).
    let mut already = berth_images::digest::Verifier::new(fake.digest.algorithm());
    already.update(&fake.blob[..1000]);
    let rest = client
        .fetch_blob_resume(
            &Repository::new(&fake.host(), "cut/z").unwrap(),
            &fake.digest,
            size,
            already,
            Arc::new(NoProgress),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(rest.as_ref() == &fake.blob[1000..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_redirect_drops_authorization() {
    let fake = FakeRegistry::start(bytes(50_000, 60), Mode::Basic).await;
    let client = client_with(&fake.host(), basic("user", "pw"));
    let repo = Repository::new(&fake.host(), "storage/x").unwrap();
    let got = client
        .fetch_blob(
            &repo,
            &fake.digest,
            fake.blob.len() as u64,
            Arc::new(NoProgress),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(got.as_ref() == fake.blob.as_slice());
    let at_registry = fake.seen("/v2/storage/");
    assert!(
        at_registry.iter().all(|s| s.authorization.is_some()),
        "{at_registry:?}"
    );
    let at_storage = fake.storage_seen();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(
        at_storage[0].authorization, None,
        "credentials leaked to storage"
    );
}

fn skopeo_available() -> bool {
    Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_layout_blob(layout: &Path, digest: &Digest) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_interop() {
    require_registry!();
    let fixtures =
        std::env::var("BERTH_FIXTURES").unwrap_or_else(|_| "/var/cache/berth-fixtures".into());
    let layout = Path::new(&fixtures).join("busybox/oci");
    if !layout.join("index.json").exists() {
        eprintln!(
            "skipping: fixture {} is missing (build it with tests/fixtures/build-images.sh)",
            layout.display()
        );
        return;
    }
    if !skopeo_available() {
        eprintln!("skipping: skopeo is not installed");
        return;
    }
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let scratch = tempfile::tempdir().unwrap();

    // skopeo pushes the fixture; Berth pulls it and checks every digest.
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{host}/interop/busybox:latest"))
        .env("TMPDIR", scratch.path()));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = Digest::parse(index["manifests"][0]["digest"].as_str().unwrap()).unwrap();

    let client = anonymous_client();
    let repo = Repository::new(&host, "interop/busybox").unwrap();
    let pulled = client
        .get_manifest(&repo, &ManifestRef::tag("latest").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.digest, manifest_digest);
    assert_eq!(
        pulled.bytes.as_ref(),
        read_layout_blob(&layout, &manifest_digest).as_slice()
    );
    let manifest: serde_json::Value = serde_json::from_slice(&pulled.bytes).unwrap();
    let mut descriptors = vec![manifest["config"].clone()];
    descriptors.extend(manifest["layers"].as_array().unwrap().iter().cloned());
    for d in &descriptors {
        let digest = Digest::parse(d["digest"].as_str().unwrap()).unwrap();
        let size = d["size"].as_u64().unwrap();
        let data = client
            .fetch_blob(&repo, &digest, size, Arc::new(NoProgress))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(Digest::sha256_of(&data), digest);
        assert!(data.as_ref() == read_layout_blob(&layout, &digest).as_slice());
    }

    // Berth pushes it to another repository (mounting the blobs); skopeo pulls it back.
    let target = repo.sibling("interop/pushed").unwrap();
    for d in &descriptors {
        let digest = Digest::parse(d["digest"].as_str().unwrap()).unwrap();
        let data = read_layout_blob(&layout, &digest);
        let options = PushBlobOptions {
            mount_from: None,
            method: UploadMethod::Chunked {
                chunk_size: 512 * 1024,
            },
            check_exists: true,
        };
        assert_eq!(
            push_bytes(&client, &target, &data, &options).await.unwrap(),
            PushOutcome::Uploaded
        );
    }
    client
        .put_manifest(
            &target,
            &ManifestRef::tag("v1").unwrap(),
            pulled
                .media_type
                .as_deref()
                .unwrap_or(MEDIA_TYPE_OCI_MANIFEST),
            pulled.bytes.clone(),
        )
        .await
        .unwrap();
    let out = scratch.path().join("out");
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{host}/interop/pushed:v1"))
        .arg(format!("oci:{}:v1", out.display()))
        .env("TMPDIR", scratch.path()));
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        copied["manifests"][0]["digest"].as_str().unwrap(),
        manifest_digest.to_string()
    );
    for d in &descriptors {
        let digest = Digest::parse(d["digest"].as_str().unwrap()).unwrap();
        assert!(read_layout_blob(&out, &digest) == read_layout_blob(&layout, &digest));
    }
}
