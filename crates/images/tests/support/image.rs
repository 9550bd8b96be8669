//! Images made in memory (config, OCI manifest, layer blobs), pushed with Berth's
//! registry client or served by [`super::image_registry::ImageRegistry`]; and the blob
//! transfers the registry tests repeat.

use std::sync::Arc;

use berth_images::digest::Digest;
use berth_images::manifest::media_type::{
    OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use berth_images::progress::{NoProgress, ProgressSink};
use berth_images::registry::{
    Client, FetchedManifest, ManifestRef, PushBlobOptions, PushOutcome, RegistryError, Repository,
    UploadMethod,
};
use bytes::Bytes;

use super::image_registry::FakeRepo;
use super::tarball::{gzip, zstd};

/// An image made in the test.
pub struct TestImage {
    /// The config, then the layers as stored: (digest, bytes).
    pub blobs: Vec<(Digest, Vec<u8>)>,
    pub manifest: Vec<u8>,
    /// The manifest's digest.
    pub digest: Digest,
}

impl TestImage {
    /// `layers` as (media type, uncompressed tar), compressed as the media type says;
    /// `bad_diff_id` replaces the diff ID of that layer in the config.
    pub fn new(arch: &str, layers: Vec<(&str, Vec<u8>)>, bad_diff_id: Option<usize>) -> TestImage {
        let layers: Vec<(&str, Vec<u8>, Digest)> = layers
            .into_iter()
            .map(|(media, tar)| {
                let diff_id = Digest::sha256_of(&tar);
                let blob = match media {
                    OCI_LAYER_GZIP => gzip(&tar),
                    OCI_LAYER_ZSTD => zstd(&tar),
                    _ => tar,
                };
                (media, blob, diff_id)
            })
            .collect();
        let diff_ids: Vec<String> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if Some(i) == bad_diff_id {
                    Digest::sha256_of(b"not this layer").to_string()
                } else {
                    l.2.to_string()
                }
            })
            .collect();
        let history: Vec<serde_json::Value> = (0..layers.len())
            .map(|i| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("step {i}")}))
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"], "Labels": {"test": "yes"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap();
        let desc = |media: &str, data: &[u8]| serde_json::json!({"mediaType": media, "digest": Digest::sha256_of(data).to_string(), "size": data.len()});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": desc(OCI_CONFIG, &config),
            "layers": layers.iter().map(|(m, b, _)| desc(m, b)).collect::<Vec<_>>(),
        }))
        .unwrap();
        TestImage {
            blobs: std::iter::once(config)
                .chain(layers.into_iter().map(|l| l.1))
                .map(|b| (Digest::sha256_of(&b), b))
                .collect(),
            digest: Digest::sha256_of(&manifest),
            manifest,
        }
    }

    /// Two uncompressed layers of pseudo-random bytes (200 KiB and 3 MiB), per `seed`.
    pub fn random(seed: u64) -> TestImage {
        TestImage::new(
            "amd64",
            vec![
                (OCI_LAYER_TAR, super::bytes(200 * 1024 + 7, seed)),
                (OCI_LAYER_TAR, super::bytes(3 * 1024 * 1024 + 123, seed + 1)),
            ],
            None,
        )
    }

    /// The stored (compressed) blob digest of layer `i`.
    pub fn layer_digest(&self, i: usize) -> Digest {
        self.blobs[i + 1].0.clone()
    }

    /// Pushes the blobs (the config monolithic, the layers in 1 MiB chunks) and the
    /// manifest, under `tag` or by digest; returns the manifest digest.
    pub async fn push(&self, client: &Client, repo: &Repository, tag: Option<&str>) -> Digest {
        for (i, (_, data)) in self.blobs.iter().enumerate() {
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
            push_bytes(client, repo, data, &options).await.unwrap();
        }
        let r = match tag {
            Some(t) => tagged(t),
            None => ManifestRef::Digest(self.digest.clone()),
        };
        put_manifest(client, repo, &r, OCI_MANIFEST, &self.manifest)
            .await
            .unwrap()
    }

    /// Pulls the manifest by tag and by digest and every blob, checking bytes.
    pub async fn verify_pull(&self, client: &Client, repo: &Repository, tag: &str) {
        let by_tag = get_tagged(client, repo, tag).await.unwrap();
        assert_eq!(by_tag.bytes.as_ref(), self.manifest.as_slice());
        assert_eq!(by_tag.digest, self.digest);
        assert_eq!(by_tag.media_type.as_deref(), Some(OCI_MANIFEST));
        let by_digest = client
            .get_manifest(repo, &ManifestRef::Digest(by_tag.digest.clone()))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, by_tag.bytes);
        for (digest, data) in &self.blobs {
            let got = fetch(client, repo, digest, data.len() as u64)
                .await
                .unwrap();
            assert!(got.as_ref() == data.as_slice(), "blob {digest} differs");
        }
    }

    /// The image as a repository of the fake image registry, under `tag`.
    pub fn fake_repo(&self, tag: &str) -> FakeRepo {
        let mut repo = FakeRepo::default();
        for (_, blob) in &self.blobs {
            repo.blob(blob.clone());
        }
        repo.manifest(tag, OCI_MANIFEST, self.manifest.clone());
        repo
    }
}

/// Pushes `data` as a blob (its digest and size as they are).
pub async fn push_bytes(
    client: &Client,
    repo: &Repository,
    data: &[u8],
    options: &PushBlobOptions,
) -> Result<PushOutcome, RegistryError> {
    let digest = Digest::sha256_of(data);
    push_blob(
        client,
        repo,
        (&digest, data.len() as u64),
        data,
        options,
        Arc::new(NoProgress),
    )
    .await
}

/// Pushes `data` as the blob `(digest, size)` (whatever the data is).
pub async fn push_blob(
    client: &Client,
    repo: &Repository,
    (digest, size): (&Digest, u64),
    data: &[u8],
    options: &PushBlobOptions,
    progress: Arc<dyn ProgressSink>,
) -> Result<PushOutcome, RegistryError> {
    client
        .push_blob(
            repo,
            digest,
            size,
            std::io::Cursor::new(data.to_vec()),
            options,
            progress,
        )
        .await
}

/// Puts `manifest` (of `media_type`) under `r`.
pub async fn put_manifest(
    client: &Client,
    repo: &Repository,
    r: &ManifestRef,
    media_type: &str,
    manifest: &[u8],
) -> Result<Digest, RegistryError> {
    client
        .put_manifest(repo, r, media_type, Bytes::from(manifest.to_vec()))
        .await
}

/// Downloads the whole blob `digest` of `size` bytes (verified by the client).
pub async fn fetch(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    size: u64,
) -> Result<Bytes, RegistryError> {
    client
        .fetch_blob(repo, digest, size, Arc::new(NoProgress))
        .await?
        .collect()
        .await
}

/// `tag` as a manifest reference.
pub fn tagged(tag: &str) -> ManifestRef {
    ManifestRef::tag(tag).unwrap()
}

/// Downloads the manifest tagged `tag` in `repo`.
pub async fn get_tagged(
    client: &Client,
    repo: &Repository,
    tag: &str,
) -> Result<FetchedManifest, RegistryError> {
    client.get_manifest(repo, &tagged(tag)).await
}
