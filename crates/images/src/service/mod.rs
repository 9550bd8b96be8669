//! The image service: the one façade the engine drives for images and container root
//! filesystems. It ties together the [content store](crate::content), the
//! [metadata store](crate::metadata), the [overlay snapshotter](crate::snapshot), the
//! [registry client](crate::registry) and the [layer applier](crate::layer), the way
//! containerd's images, content, snapshots and unpacker services do, Berth-sized.
//!
//! # On-disk layout
//!
//! ```text
//! <root>/lock          flock(2)ed by the one ImageService that has the store open
//! <root>/content/      content store (LocalStore): blobs/<alg>/<hex>, ingest/<alg>-<hex>/
//! <root>/metadata/     metadata store: metadata.json (image names, image users)
//! <root>/snapshots/    overlay snapshotter: snapshots.json, snapshots/<id>/{fs,work}
//! <root>/tmp/          scratch files of commits and imports in progress (emptied at open)
//! ```
//!
//! # What is authoritative
//!
//! - **Names** (`docker.io/library/busybox:latest` → target descriptor) and **image
//!   users** (target digest → container IDs) live only in the metadata store. A name is
//!   the only thing that makes an image visible.
//! - **Blobs** (manifests, indexes, configs, compressed layers) live only in the content
//!   store, addressed by digest. A named image has every blob its manifest names there
//!   (push and save need the compressed layers).
//! - **Snapshots** and their parent links live only in the snapshotter's records. A
//!   layer's committed snapshot is named by its **chain ID** (image-spec:
//!   `ChainID(L1) = DiffID(L1)`, `ChainID(L1..Ln) = sha256(ChainID(L1..Ln-1) + " " +
//!   DiffID(Ln))`), so images sharing a base share its snapshots. Other keys:
//!   `extract/<nonce>/<chain ID>…` for layers being unpacked and `container/<id>` for
//!   containers' writable layers.
//!
//! Everything else (image IDs, sizes, repo tags and digests) is derived from these.
//!
//! # Invariants
//!
//! 1. A name is written only after the image's manifest, config and every layer blob are
//!    committed (verified) in the content store and every layer's snapshot is committed
//!    under its chain ID. A half-pulled image is never visible by name.
//! 2. A committed snapshot `C(k)` has parent `C(k-1)` and holds exactly layer `k`
//!    unpacked, its diff ID checked against the config.
//! 3. Garbage collection keeps the content reachable from names, from used targets and
//!    from *leases*: operations in flight (a pull, a commit, a rootfs being prepared)
//!    lease what they are about to write before checking whether it exists, under a
//!    lock that `gc` holds while it marks and sweeps, so `gc` never removes what a
//!    running operation relies on.
//! 4. One `ImageService` per root at a time (`<root>/lock`, held for the service's life),
//!    so everything stale found at [`ImageService::open`] belongs to nobody.
//!
//! # Pulling (see [`ImageService::pull`])
//!
//! 1. Resolve the reference to a manifest: an index or manifest list is narrowed to the
//!    wanted platform; Docker schema 1 is refused with a clear error.
//! 2. Fetch the config (verified against its digest), check one diff ID per layer, and
//!    compute the chain IDs.
//! 3. Every layer at once, at most [`ServiceConfig::max_concurrent_downloads`] at a time
//!    (docker's default is 3):
//!    - its chain ID snapshot is committed and its blob stored: `AlreadyExists`;
//!    - its blob is stored but not unpacked: unpack it from the store, no download;
//!    - otherwise **one streamed pass**: the registry's
//!      [`BlobStream`](crate::registry::BlobStream) is pumped through a bounded
//!      channel into a blocking thread, whose reader tees every chunk into the
//!      content store's ingest (the compressed blob is kept), decompresses (per media
//!      type) and [applies](crate::layer::apply) the tar into a fresh active snapshot
//!      prepared *without parent*, while the diff ID is computed on the decompressed
//!      stream. No second pass over the data and no blob is buffered whole. At the end
//!      the blob digest is verified (by the stream and again by the ingest commit) and
//!      the diff ID compared with the config's; any mismatch removes the partial
//!      snapshot and the partial blob and names the layer in the error.
//! 4. **Chain commit.** Overlay layers unpack independently (a layer directory does not
//!    depend on what is below it), which is why step 3 runs in parallel. Once every
//!    layer is verified, the layers are committed in chain order: the base layer's
//!    snapshot is committed as `C(1)`; for layer `k > 1` an active snapshot on parent
//!    `C(k-1)` is prepared and the unpacked directory is renamed over its (empty)
//!    writable directory, then committed as `C(k)` — a rename, not a copy. If another
//!    pull committed the same chain ID meanwhile, the duplicate is dropped.
//! 5. The manifest (and index) and config are stored and the names written: the tag and
//!    `repository@digest` (docker's repo digest). A tag moved away from an image that
//!    has no other name leaves that image *dangling* (`<none>`), as docker does.
//!
//! Progress per layer: `Waiting` → `Downloading` (bytes) → `Verifying` → `Extracting`
//! → `Done`, or `AlreadyExists`. A pull runs to its end (success or cleanup) even if the
//! caller stops waiting for it.
//!
//! # Load, save, import, push
//!
//! [`ImageService::load`] (`docker load`: docker-archive of any version, OCI layout or
//! OCI archive) and [`ImageService::import`] (`docker import`) store the blobs with
//! [`archive`](crate::archive), record the names, then unpack the layers like a pull,
//! so a broken layer fails the load, not the first `run`; nameless images, and images
//! whose last name a load moved elsewhere, get dangling names. Both hold `gc` off
//! while their blobs are stored but not yet named. [`ImageService::save`] writes
//! docker-archives, OCI archives and OCI layouts of images named by reference or ID;
//! [`ImageService::push`] pushes with [`push_image`](crate::push::push_image), offers the
//! image's other repositories on the same registry for cross-repository mounts, and
//! records `repository@digest` afterwards.
//!
//! # Crash recovery
//!
//! - **Partial downloads** stay in the content store's ingests. The next pull of that
//!   layer resumes: the prefix is re-hashed from disk and the registry asked for the
//!   rest (`Range`), then the layer is unpacked from the completed blob. Within one
//!   process a broken connection is resumed by the registry client itself. Ingests left
//!   alone longer than [`ServiceConfig::stale_ingest_age`] are removed at open and by
//!   `gc`.
//! - **Partial snapshots** (`extract/…` keys, whatever state their directory is in) are
//!   removed at open and by `gc`; snapshot directories without records (`tmp-<id>`,
//!   `rm-<id>`) are removed at open by the snapshotter's cleanup.
//! - **Commit and import scratch files** (`<root>/tmp`) are removed at open.
//! - **Metadata** is replaced atomically; since names are written last, a killed pull
//!   leaves no name, and the blobs and snapshots it had committed are either reused by
//!   the next pull or collected by `gc`.
//!
//! # Container root filesystems
//!
//! [`ImageService::prepare_rootfs`] records the container as a user of the image (so
//! `remove` refuses the image without force and `gc` keeps it) and prepares the active
//! snapshot `container/<id>` on the image's top chain ID; the engine mounts the returned
//! [`Mount`]s (see [`crate::snapshot::mount`]). [`ImageService::commit_container`] turns
//! its changes into a new image, [`ImageService::remove_rootfs`] discards them.

mod error;
mod gc;
mod images;
mod pull;
mod resolve;
mod rootfs;
mod transfer;
mod types;
mod unpack;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};
use tokio::sync::{OwnedMutexGuard, RwLock, Semaphore};

use crate::content::{ContentStore, LocalStore};
use crate::digest::Digest;
use crate::layer::ApplyOptions;
use crate::manifest::Platform;
use crate::metadata::MetadataStore;
use crate::progress::ProgressSink;
use crate::reference::Reference;
use crate::registry::{Anonymous, Client, CredentialSource, DockerConfig, RegistryConfig};
use crate::snapshot::{Kind, Mount, OverlayOptions, OverlaySnapshotter, Snapshotter};

pub use error::{LayerId, ServiceError};
pub use transfer::{LoadSource, SaveTarget};
pub use types::{
    CommitOptions, ContainerUsage, DiskUsage, GcReport, HistoryEntry, Image, ImageSummary,
    ImageUsage, LayerInfo, PruneReport, RemoveOutcome,
};

/// Default of [`ServiceConfig::max_concurrent_downloads`] (docker's default).
pub const DEFAULT_MAX_CONCURRENT_DOWNLOADS: usize = 3;
/// Default of [`ServiceConfig::stale_ingest_age`]: one week.
pub const DEFAULT_STALE_INGEST_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Key prefix of snapshots being unpacked.
const EXTRACT_PREFIX: &str = "extract/";
/// Key prefix of containers' writable snapshots.
const CONTAINER_PREFIX: &str = "container/";

/// Settings of an [`ImageService`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Registry client settings (insecure registries, certificates, timeouts).
    pub registry: RegistryConfig,
    /// Where registry credentials come from; `None`: the docker CLI's `config.json`
    /// ([`DockerConfig::from_env`]), or anonymous access when there is no home.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    /// Layers downloaded (and unpacked) at once, over all pulls; at least 1.
    pub max_concurrent_downloads: usize,
    /// How layers are unpacked (limits, device nodes, ownership, id mapping).
    pub apply: ApplyOptions,
    /// Snapshotter options.
    pub overlay: OverlayOptions,
    /// Partial downloads untouched this long are removed (at open and by `gc`);
    /// younger ones are kept so the next pull resumes them.
    pub stale_ingest_age: Duration,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            registry: RegistryConfig::default(),
            credentials: None,
            max_concurrent_downloads: DEFAULT_MAX_CONCURRENT_DOWNLOADS,
            apply: ApplyOptions::default(),
            overlay: OverlayOptions::default(),
            stale_ingest_age: DEFAULT_STALE_INGEST_AGE,
        }
    }
}

/// The image service (see the [module documentation](self)). Cheap to clone; clones
/// share the store. Its operations must run inside a tokio runtime (multi-threaded:
/// blocking work goes to `spawn_blocking`).
#[derive(Debug, Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

/// The shared state behind an [`ImageService`].
pub(crate) struct Inner {
    root: PathBuf,
    /// Holds the store's flock for the service's life.
    _lock: File,
    content: LocalStore,
    metadata: MetadataStore,
    snapshots: OverlaySnapshotter,
    client: Client,
    apply: ApplyOptions,
    stale_ingest_age: Duration,
    /// Bounds the layers moving at once.
    downloads: Arc<Semaphore>,
    /// Held shared while a lease is extended, exclusively by `gc` while it marks and
    /// sweeps (see invariant 3 of the module docs).
    gc_lock: RwLock<()>,
    /// What operations in flight hold (gc roots).
    leases: Mutex<Leases>,
    /// One lock per layer blob, so two pulls of the same layer do not write the same
    /// ingest at once (the second one then finds the layer done).
    layer_locks: Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>,
    /// For unique snapshot keys.
    nonce: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageService")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Counted gc roots of the operations in flight.
#[derive(Debug, Default)]
struct Leases {
    digests: HashMap<Digest, usize>,
    snapshots: HashMap<String, usize>,
}

fn count_up<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

fn count_down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// What one operation in flight keeps from `gc`: blobs by digest and snapshots by key
/// or name (with their parents). Released on drop.
pub(crate) struct Lease {
    inner: Arc<Inner>,
    held: Mutex<(Vec<Digest>, Vec<String>)>,
}

impl Lease {
    fn new(inner: &Arc<Inner>) -> Lease {
        Lease {
            inner: inner.clone(),
            held: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    fn record(&self, digests: &[Digest], snapshots: &[String]) {
        let mut leases = self
            .inner
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        for d in digests {
            count_up(&mut leases.digests, d.clone());
            held.0.push(d.clone());
        }
        for s in snapshots {
            count_up(&mut leases.snapshots, s.clone());
            held.1.push(s.clone());
        }
    }

    /// Leases `digests` and `snapshots` (from async code).
    async fn hold(&self, digests: &[Digest], snapshots: &[String]) {
        let _gc = self.inner.gc_lock.read().await;
        self.record(digests, snapshots);
    }

    /// Leases `digests` and `snapshots` (from blocking code).
    fn hold_blocking(&self, digests: &[Digest], snapshots: &[String]) {
        let _gc = self.inner.gc_lock.blocking_read();
        self.record(digests, snapshots);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = self
            .inner
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        for d in &held.0 {
            count_down(&mut leases.digests, d);
        }
        for s in &held.1 {
            count_down(&mut leases.snapshots, s);
        }
    }
}

fn create_private_dir(path: &Path) -> Result<(), ServiceError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| ServiceError::Root {
            path: path.to_path_buf(),
            source,
        })
}

impl ImageService {
    /// Opens (creating if needed) the image store at `root` and recovers from a crash
    /// (see the module docs). Fails with [`ServiceError::Locked`] while another service
    /// has the store open. Blocking: call it at start-up or from a blocking thread.
    pub fn open(root: &Path, config: ServiceConfig) -> Result<ImageService, ServiceError> {
        create_private_dir(root)?;
        let root = root.canonicalize().map_err(|source| ServiceError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| ServiceError::Root {
                path: lock_path.clone(),
                source,
            })?;
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(ServiceError::Locked { path: lock_path })
            }
            Err(e) => {
                return Err(ServiceError::Root {
                    path: lock_path,
                    source: e.into(),
                })
            }
        }
        let content = LocalStore::open(&root.join("content"))?;
        let metadata = MetadataStore::open(&root.join("metadata"))?;
        let snapshots = OverlaySnapshotter::open(&root.join("snapshots"), config.overlay)?;
        let credentials: Arc<dyn CredentialSource> = match config.credentials {
            Some(c) => c,
            None => match DockerConfig::from_env() {
                Ok(c) => Arc::new(c),
                Err(_) => Arc::new(Anonymous),
            },
        };
        let inner = Arc::new(Inner {
            _lock: lock,
            content,
            metadata,
            snapshots,
            client: Client::new(config.registry, credentials),
            apply: config.apply,
            stale_ingest_age: config.stale_ingest_age,
            downloads: Arc::new(Semaphore::new(config.max_concurrent_downloads.max(1))),
            gc_lock: RwLock::new(()),
            leases: Mutex::new(Leases::default()),
            layer_locks: Mutex::new(HashMap::new()),
            nonce: AtomicU64::new(0),
            root,
        });
        inner.recover()?;
        Ok(ImageService { inner })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The content store (read access for push, save and fsck).
    pub fn content(&self) -> &LocalStore {
        &self.inner.content
    }

    /// The registry client the service pulls with (for push, login, search).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Pulls `reference` for `platform` (normally [`Platform::host`]) and names it (see
    /// the module docs). Returns the image as [`ImageService::inspect`] describes it.
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Image, ServiceError> {
        let inner = self.inner.clone();
        let (reference, platform) = (reference.clone(), platform.clone());
        // Spawned: the pull finishes (or cleans up) even if the caller stops waiting.
        tokio::spawn(async move { inner.pull(reference, platform, progress).await }).await?
    }

    /// Every named image, grouped by image ID, newest first.
    pub async fn list(&self) -> Result<Vec<ImageSummary>, ServiceError> {
        self.blocking(|inner| inner.list()).await
    }

    /// The image named `name` (a reference such as `busybox` or `busybox@sha256:…`), or
    /// with image ID `name` (`sha256:<hex>`, `<hex>`, or a unique prefix of the hex).
    pub async fn inspect(&self, name: &str) -> Result<Image, ServiceError> {
        let name = name.to_owned();
        self.blocking(move |inner| inner.inspect(&name)).await
    }

    /// The build history of image `name`, newest step first.
    pub async fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, ServiceError> {
        let name = name.to_owned();
        self.blocking(move |inner| inner.history(&name)).await
    }

    /// Gives image `source` (name or ID) the additional name `new` (which must carry a
    /// tag, not a digest). A tag moved away from another image leaves that one
    /// dangling if it has no other name.
    pub async fn tag(&self, source: &str, new: &Reference) -> Result<(), ServiceError> {
        let (source, new) = (source.to_owned(), new.clone());
        self.blocking(move |inner| inner.tag(&source, &new)).await
    }

    /// Removes image `name` as `docker rmi` does: a name of an image with other tags is
    /// only untagged; the last tag, or an image ID, deletes the image (its digest
    /// references included) unless containers use it ([`ServiceError::ImageInUse`],
    /// kind `Conflict`; with `force` the names go and the image stays, dangling, until
    /// its containers are removed). An image ID named in several repositories needs
    /// `force` too. Deleted images' content is garbage-collected right away.
    pub async fn remove(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<RemoveOutcome>, ServiceError> {
        let name = name.to_owned();
        self.blocking(move |inner| inner.remove(&name, force)).await
    }

    /// Removes unused dangling images (no tag), or with `all` every image no container
    /// uses, then collects garbage.
    pub async fn prune(&self, all: bool) -> Result<PruneReport, ServiceError> {
        self.blocking(move |inner| inner.prune(all)).await
    }

    /// Removes every blob and snapshot nothing references (see the module docs) and
    /// stale partial downloads; returns what was freed.
    pub async fn gc(&self) -> Result<GcReport, ServiceError> {
        self.blocking(|inner| inner.gc()).await
    }

    /// Disk usage of images, layers, blobs and containers (`system df`).
    pub async fn disk_usage(&self) -> Result<DiskUsage, ServiceError> {
        self.blocking(|inner| inner.disk_usage()).await
    }

    /// Prepares the root filesystem of container `container_id` from image `image`
    /// (name or ID): records the container as a user of the image and returns the
    /// mounts of a writable layer on the image's layers (unpacking layers that are only
    /// in the content store). The caller mounts them.
    pub async fn prepare_rootfs(
        &self,
        image: &str,
        container_id: &str,
    ) -> Result<Vec<Mount>, ServiceError> {
        let inner = self.inner.clone();
        let (image, id) = (image.to_owned(), container_id.to_owned());
        tokio::spawn(async move { inner.prepare_rootfs(&image, &id).await }).await?
    }

    /// The mounts of container `container_id`'s root filesystem (after a restart).
    pub async fn rootfs_mounts(&self, container_id: &str) -> Result<Vec<Mount>, ServiceError> {
        let id = container_id.to_owned();
        self.blocking(move |inner| inner.rootfs_mounts(&id)).await
    }

    /// Removes container `container_id`'s writable layer and its use of its image. The
    /// caller has unmounted it.
    pub async fn remove_rootfs(&self, container_id: &str) -> Result<(), ServiceError> {
        let id = container_id.to_owned();
        self.blocking(move |inner| inner.remove_rootfs(&id)).await
    }

    /// Makes a new image of container `container_id`'s changes on top of its image
    /// (`docker commit`). The container should be paused or stopped.
    pub async fn commit_container(
        &self,
        container_id: &str,
        options: CommitOptions,
    ) -> Result<Image, ServiceError> {
        let id = container_id.to_owned();
        self.blocking(move |inner| inner.commit_container(&id, &options))
            .await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&Arc<Inner>) -> Result<T, ServiceError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }
}

impl Inner {
    /// Crash recovery at open (see the module docs).
    fn recover(&self) -> Result<(), ServiceError> {
        self.snapshots.cleanup()?;
        let mut stale = Vec::new();
        self.snapshots.walk(&mut |info| {
            if info.name.starts_with(EXTRACT_PREFIX) {
                stale.push(info.name.clone());
            }
        })?;
        for key in stale {
            tracing::info!(key, "removing snapshot of an interrupted unpack");
            self.remove_snapshot_quietly(&key);
        }
        let tmp = self.tmp_dir();
        match std::fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(ServiceError::Scratch { path: tmp, source }),
        }
        create_private_dir(&tmp)?;
        let removed = self.content.clean_stale_ingests(self.stale_ingest_age)?;
        if removed > 0 {
            tracing::info!(removed, "removed stale partial downloads");
        }
        Ok(())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn next_nonce(&self) -> String {
        format!(
            "{}-{}",
            std::process::id(),
            self.nonce.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Whether `name` is a committed snapshot.
    fn is_committed(&self, name: &str) -> Result<bool, ServiceError> {
        match self.snapshots.stat(name) {
            Ok(info) => Ok(info.kind == Kind::Committed),
            Err(crate::snapshot::SnapshotError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a snapshot, logging instead of failing (cleanup paths).
    fn remove_snapshot_quietly(&self, key: &str) {
        match self.snapshots.remove(key) {
            Ok(()) | Err(crate::snapshot::SnapshotError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key, error = %e, "cannot remove snapshot"),
        }
    }

    /// The lock serialising work on one layer blob.
    async fn layer_lock(&self, digest: &Digest) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .layer_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(digest).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(digest.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Whether the content store has `digest`.
    fn has_blob(&self, digest: &Digest) -> Result<bool, ServiceError> {
        Ok(self.content.info(digest)?.is_some())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use berth_errdefs::{ErrorKind, HasKind};

    fn config() -> ServiceConfig {
        ServiceConfig {
            credentials: Some(Arc::new(Anonymous)),
            ..ServiceConfig::default()
        }
    }

    #[test]
    fn one_service_per_root() {
        let dir = tempfile::tempdir().unwrap();
        let first = ImageService::open(dir.path(), config()).unwrap();
        let err = ImageService::open(dir.path(), config()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        drop(first);
        ImageService::open(dir.path(), config()).unwrap();
    }

    #[test]
    fn open_creates_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("images");
        let s = ImageService::open(&root, config()).unwrap();
        for sub in ["content", "metadata", "snapshots", "tmp", "lock"] {
            assert!(root.join(sub).exists(), "{sub}");
        }
        assert_eq!(s.root(), root.canonicalize().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_count_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageService::open(dir.path(), config()).unwrap();
        let d = Digest::sha256_of(b"x");
        let a = Lease::new(&s.inner);
        let b = Lease::new(&s.inner);
        a.hold(std::slice::from_ref(&d), &["k".into()]).await;
        b.hold(std::slice::from_ref(&d), &[]).await;
        drop(a);
        assert_eq!(s.inner.leases.lock().unwrap().digests.get(&d), Some(&1));
        assert!(s.inner.leases.lock().unwrap().snapshots.is_empty());
        drop(b);
        assert!(s.inner.leases.lock().unwrap().digests.is_empty());
    }
}
