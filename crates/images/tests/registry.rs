//! Registry client against real peers and hostile doubles, all on loopback:
//! Debian's `docker-registry` (distribution 2.8) anonymous, with htpasswd, behind a token
//! server, and over HTTPS with a test CA; a fake registry that lies, loops and breaks
//! connections; and `skopeo` for interoperability.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::digest::Digest;
use berth_images::manifest::media_type::OCI_MANIFEST;
use berth_images::progress::{NoProgress, ProgressState};
use berth_images::registry::{
    Anonymous, AuthKind, Client, Credentials, DockerConfig, HostConfig, ManifestRef,
    PushBlobOptions, PushOutcome, RegistryError, Repository, UploadMethod,
};
use futures_util::StreamExt as _;
use support::fake::{FakeRegistry, Mode};
use support::image::{fetch, get_tagged, push_blob, push_bytes, put_manifest, tagged, TestImage};
use support::peers;
use support::registry::{Auth, Options, Registry};
use support::token::TokenServer;
use support::{anonymous_client, basic, blob_path, bytes, client_with, test_config, Recorder};

/// Options that offer `repo` as the source of a cross-repository mount.
fn mount_from(repo: Repository) -> PushBlobOptions {
    PushBlobOptions {
        mount_from: Some(repo),
        ..PushBlobOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_registry_push_pull_mount_tags() {
    if Registry::missing() {
        return;
    }
    let registry = Registry::anonymous();
    let client = anonymous_client();
    let info = client.ping(&registry.host()).await.unwrap();
    assert_eq!(info.auth, AuthKind::Anonymous);
    // 127.0.0.1 is insecure by docker's default: HTTPS failed, plain HTTP was chosen.
    assert_eq!(info.base_url.scheme(), "http");

    let repo = Repository::new(&registry.host(), "berth/app").unwrap();
    let image = TestImage::random(1);
    let digest = image.push(&client, &repo, Some("v1")).await;
    assert_eq!(digest, Digest::sha256_of(&image.manifest));
    image.verify_pull(&client, &repo, "v1").await;

    // Pull through a Reference, as the engine will.
    let named = support::reference(&format!("{}/berth/app:v1", registry.host()));
    let r = Repository::from_reference(&named).unwrap();
    let resolved = client
        .resolve_manifest(&r, &ManifestRef::from_reference(&named))
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
    let outcome = push_blob(
        &client,
        &repo,
        (layer_digest, layer.len() as u64),
        layer,
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
    let mount = mount_from(repo.clone());
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
    let decline = mount_from(repo.sibling("berth/empty").unwrap());
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
        let tag = tagged(tag);
        put_manifest(&client, &repo, &tag, OCI_MANIFEST, &image.manifest)
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
    let e = get_tagged(&client, &repo, "nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("MANIFEST_UNKNOWN"), "{e}");
    let missing = Digest::sha256_of(b"missing");
    let e = fetch(&client, &repo, &missing, 7).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = get_tagged(&client, &repo.sibling("berth/nothing").unwrap(), "v1")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // Bad local data never becomes a blob.
    let data = bytes(5000, 7);
    let wrong = Digest::sha256_of(b"something else");
    let size = data.len() as u64;
    let cut = Digest::sha256_of(&data[..4000]);
    let whole = Digest::sha256_of(&data);
    // (digest, size, whether the digest is the lie: else the size is)
    let lies = [
        (&wrong, size, true),
        (&whole, size + 10, false),
        (&cut, 4000, false),
    ];
    for method in [
        UploadMethod::Monolithic,
        UploadMethod::Chunked { chunk_size: 1024 },
    ] {
        let options = PushBlobOptions {
            method,
            ..PushBlobOptions::default()
        };
        for (digest, size, digest_lies) in lies {
            let e = push_blob(
                &client,
                &repo,
                (digest, size),
                &data,
                &options,
                Arc::new(NoProgress),
            )
            .await
            .unwrap_err();
            if digest_lies {
                let mismatch = matches!(e, RegistryError::UploadDigestMismatch { .. });
                assert!(mismatch, "{e}");
            } else {
                assert!(matches!(e, RegistryError::UploadSizeMismatch { .. }), "{e}");
            }
        }
    }
    assert_eq!(client.blob_exists(&repo, &wrong).await.unwrap(), None);
    assert_eq!(client.blob_exists(&repo, &cut).await.unwrap(), None);

    // A manifest referencing a missing blob is refused by the registry.
    let dangling = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing.to_string(), "size": 7},
        "layers": []
    }))
    .unwrap();
    let e = put_manifest(&client, &repo, &tagged("bad"), OCI_MANIFEST, &dangling)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{e}");

    // Parallel pulls through clones of one client.
    let mut tasks = Vec::new();
    for (digest, data) in image.blobs.clone() {
        let c = client.clone();
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let got = fetch(&c, &repo, &digest, data.len() as u64).await.unwrap();
            assert!(got.as_ref() == data.as_slice());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth() {
    if Registry::missing() {
        return;
    }
    let registry = Registry::start(Options {
        auth: Auth::Htpasswd(vec![("alice".into(), "s3cret".into())]),
        tls: None,
        client_ca: None,
    });
    let host = registry.host();
    let repo = Repository::new(&host, "team/app").unwrap();
    let image = TestImage::random(10);

    // No credentials: a clear error.
    let e = get_tagged(&anonymous_client(), &repo, "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::CredentialsRequired { .. }),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);

    // Wrong password: refused.
    let e = get_tagged(&client_with(&host, basic("alice", "wrong")), &repo, "v1")
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
    let dir = support::tmpdir("registry");
    let config = DockerConfig::at(dir.path().join("config.json"));
    config.store(&host, &basic("alice", "typo")).unwrap();
    let client = Client::new(test_config(), Arc::new(config.clone()));
    assert_eq!(client.ping(&host).await.unwrap().auth, AuthKind::Basic);
    let e = get_tagged(&client, &repo, "v1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    // A new login is seen once the client forgets what it cached for the host.
    config.store(&host, &basic("alice", "s3cret")).unwrap();
    let text = std::fs::read_to_string(config.path()).unwrap();
    assert!(text.contains(&host) && text.contains("\"auth\""), "{text}");
    client.forget_host(&host);
    image.push(&client, &repo, Some("v1")).await;
    image.verify_pull(&client, &repo, "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_bearer_flow() {
    if Registry::missing() {
        return;
    }
    let dir = support::tmpdir("registry");
    let tokens = TokenServer::start(dir.path()).await;
    let registry = Registry::with_tokens(&tokens);
    let host = registry.host();
    let alice = client_with(&host, basic("alice", "alice-pw"));
    assert_eq!(alice.ping(&host).await.unwrap().auth, AuthKind::Bearer);

    // alice pushes and pulls.
    let public = Repository::new(&host, "public/app").unwrap();
    let image = TestImage::random(20);
    image.push(&alice, &public, Some("v1")).await;
    image.verify_pull(&alice, &public, "v1").await;

    // Tokens are cached per scope: pulling again fetches no new token.
    let before = tokens.issued();
    image.verify_pull(&alice, &public, "v1").await;
    assert_eq!(tokens.issued(), before, "tokens were not reused");

    // Cross-repository mount with a token for both repositories.
    let private = Repository::new(&host, "private/app").unwrap();
    let (d, layer) = &image.blobs[2];
    let mount = mount_from(public.clone());
    assert_eq!(
        push_bytes(&alice, &private, layer, &mount).await.unwrap(),
        PushOutcome::Mounted
    );
    assert!(alice.blob_exists(&private, d).await.unwrap().is_some());
    image.push(&alice, &private, Some("v1")).await;

    // Anonymous callers get pull-only tokens for public/*.
    let anon = anonymous_client();
    image.verify_pull(&anon, &public, "v1").await;
    let e = get_tagged(&anon, &private, "v1").await.unwrap_err();
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
    let e = get_tagged(&client_with(&host, basic("alice", "bad")), &public, "v1")
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
    if Registry::missing() {
        return;
    }
    let ca = support::certs::TestCa::new("berth test CA");
    let (cert, key) = ca.server_cert(&["127.0.0.1", "localhost"]);
    let registry = Registry::start(Options {
        auth: Auth::None,
        tls: Some((cert, key)),
        client_ca: None,
    });
    let host = registry.host();
    let dir = support::tmpdir("registry");
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
    let image = TestImage::random(30);
    image.push(&client, &repo, Some("v1")).await;
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
    image.push(&client, &repo, Some("v1")).await;
    image.verify_pull(&client, &repo, "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registry_is_caught() {
    let fake = FakeRegistry::start(bytes(300 * 1024 + 11, 40), Mode::Open).await;
    let client = anonymous_client();
    let size = fake.blob.len() as u64;
    let repo = |name: &str| Repository::new(&fake.host(), name).unwrap();
    let blob = |name: &str| {
        let (client, repo, digest) = (&client, repo(name), &fake.digest);
        async move { fetch(client, &repo, digest, size).await }
    };
    let manifest = |name: &str| {
        let (client, repo) = (&client, repo(name));
        async move { get_tagged(client, &repo, "t").await }
    };
    assert!(blob("good/x").await.unwrap().as_ref() == fake.blob.as_slice());

    let e = blob("lie/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::BlobDigestMismatch { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = blob("longheader/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::BlobTooLarge { .. }), "{e}");
    let e = blob("longclose/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::BlobTooLarge { .. }), "{e}");
    let e = blob("loop/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::RedirectLoop { .. }), "{e}");
    let e = blob("chain/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::TooManyRedirects { .. }), "{e}");
    assert!(e.to_string().contains("more than 10 redirects"), "{e}");

    // Manifests.
    let e = manifest("mlie/x").await.unwrap_err();
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
    let e = manifest("mbig/x").await.unwrap_err();
    assert!(matches!(e, RegistryError::ManifestTooLarge { .. }), "{e}");
    let good = manifest("good/x").await.unwrap();
    assert_eq!(good.bytes.as_ref(), fake.manifest.as_slice());

    // Registry error bodies.
    let e = manifest("denied/x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("DENIED"), "{e}");
    let e = manifest("busy/x").await.unwrap_err();
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
    let blob = |name: &str| {
        let repo = Repository::new(&fake.host(), name).unwrap();
        let (client, digest) = (&client, &fake.digest);
        async move { fetch(client, &repo, digest, size).await }
    };

    // Resumed with Range, the server answering 206.
    assert!(blob("cut/x").await.unwrap().as_ref() == fake.blob.as_slice());
    let seen = fake.seen("/v2/cut/");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );

    // The server ignores Range: restarted from 0, bytes already seen skipped.
    assert!(blob("cutnorange/x").await.unwrap().as_ref() == fake.blob.as_slice());
    // The server answers the wrong range: asked again without Range.
    assert!(blob("cutbadrange/x").await.unwrap().as_ref() == fake.blob.as_slice());
    let seen = fake.seen("/v2/cutbadrange/");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[1].range.is_some() && seen[2].range.is_none(),
        "{seen:?}"
    );

    // A connection that never brings a byte: bounded retries, then a clear error.
    let e = blob("cutforever/x").await.unwrap_err();
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
    let got = fetch(&client, &repo, &fake.digest, fake.blob.len() as u64)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_interop() {
    if Registry::missing() {
        return;
    }
    let Some(layout) = support::fixture("busybox/oci") else {
        return;
    };
    if peers::skip_without("skopeo") {
        return;
    }
    let registry = Registry::anonymous();
    let host = registry.host();
    let scratch = support::tmpdir("registry");
    let layout_blob = |digest: &Digest| std::fs::read(blob_path(&layout, digest)).unwrap();

    // skopeo pushes the fixture; Berth pulls it and checks every digest.
    peers::skopeo_copy(
        &["--preserve-digests", "--dest-tls-verify=false"],
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{host}/interop/busybox:latest"),
    );
    let manifest_digest = support::layout_manifest(&layout);

    let client = anonymous_client();
    let repo = Repository::new(&host, "interop/busybox").unwrap();
    let pulled = get_tagged(&client, &repo, "latest").await.unwrap();
    assert_eq!(pulled.digest, manifest_digest);
    assert_eq!(
        pulled.bytes.as_ref(),
        layout_blob(&manifest_digest).as_slice()
    );
    let manifest: serde_json::Value = serde_json::from_slice(&pulled.bytes).unwrap();
    let mut descriptors = vec![manifest["config"].clone()];
    descriptors.extend(manifest["layers"].as_array().unwrap().iter().cloned());
    let blobs: Vec<(Digest, u64)> = descriptors
        .iter()
        .map(|d| {
            let digest = Digest::parse(d["digest"].as_str().unwrap()).unwrap();
            (digest, d["size"].as_u64().unwrap())
        })
        .collect();
    for (digest, size) in &blobs {
        let data = fetch(&client, &repo, digest, *size).await.unwrap();
        assert_eq!(Digest::sha256_of(&data), *digest);
        assert!(data.as_ref() == layout_blob(digest).as_slice());
    }

    // Berth pushes it to another repository (mounting the blobs); skopeo pulls it back.
    let target = repo.sibling("interop/pushed").unwrap();
    for (digest, _) in &blobs {
        let options = PushBlobOptions {
            mount_from: None,
            method: UploadMethod::Chunked {
                chunk_size: 512 * 1024,
            },
            check_exists: true,
        };
        assert_eq!(
            push_bytes(&client, &target, &layout_blob(digest), &options)
                .await
                .unwrap(),
            PushOutcome::Uploaded
        );
    }
    put_manifest(
        &client,
        &target,
        &tagged("v1"),
        pulled.media_type.as_deref().unwrap_or(OCI_MANIFEST),
        &pulled.bytes,
    )
    .await
    .unwrap();
    let out = scratch.path().join("out");
    peers::skopeo_copy(
        &["--preserve-digests", "--src-tls-verify=false"],
        &format!("docker://{host}/interop/pushed:v1"),
        &format!("oci:{}:v1", out.display()),
    );
    assert_eq!(support::layout_manifest(&out), manifest_digest);
    for (digest, _) in &blobs {
        assert!(std::fs::read(blob_path(&out, digest)).unwrap() == layout_blob(digest));
    }
}
