//! `archive::load_file` (`docker load`) of arbitrary bytes: docker-archives
//! (`manifest.json`, or only `repositories`), OCI archives (`index.json`), anything.
//!
//! Each run writes the input to `<scratch>/archive.tar` and loads it into a fresh
//! `LocalStore` and `MetadataStore` under `<scratch>/run` (scratch: `$BERTH_FUZZ_SCRATCH`
//! or /dev/shm, one directory per process), both removed afterwards. Checks:
//! - a failed load records no name, and its error is one a hostile archive may cause
//!   (the caller's input, a digest mismatch, an unsupported or missing platform);
//! - a successful load names at least one image; every image's manifest, config and
//!   layers are in the store with the sizes the manifest gives, the config's diff IDs
//!   are the report's, every stored blob hashes to its digest when read back, every
//!   reported name points at its image's target and no other name is recorded;
//! - loading the same archive again gives the same images and replaces no name;
//! - nothing appears in the scratch directory beside the archive and the run directory.
#![no_main]

#[path = "common/scratch.rs"]
mod scratch;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::archive::{load_file, ArchiveError, LoadOptions, LoadReport};
use berth_images::content::{ContentStore, LocalStore};
use berth_images::manifest::{parse_manifest, ImageConfig, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use berth_images::metadata::MetadataStore;
use berth_images::progress::NoProgress;
use libfuzzer_sys::fuzz_target;

struct Setup {
    dir: PathBuf,
    options: LoadOptions,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = scratch::scratch_dir("archive");
        // The defaults, except the bound on a compressed layer's decompressed stream:
        // 16 MiB instead of 256 GiB, so that a gzip or zstd bomb costs a fraction of a
        // second per run instead of a timeout (the bound's check is the same code).
        let mut options = LoadOptions::default();
        options.limits.max_layer_bytes = 16 << 20;
        Setup { dir, options }
    })
}

fn load(
    setup: &Setup,
    archive: &std::path::Path,
    store: &LocalStore,
    metadata: &MetadataStore,
) -> Result<LoadReport, ArchiveError> {
    let file = File::open(archive).expect("open archive");
    load_file(store, metadata, file, &setup.options, &NoProgress)
}

fn check_loaded(report: &LoadReport, store: &LocalStore, metadata: &MetadataStore) {
    assert!(!report.images.is_empty(), "a load succeeded with no image");
    assert!(
        report.replaced.is_empty(),
        "a fresh metadata store had names to replace"
    );
    let present = |digest: &berth_images::digest::Digest, size: u64, what: &str| {
        let info = store
            .info(digest)
            .expect("store info")
            .unwrap_or_else(|| panic!("{what} {digest} of a loaded image is not in the store"));
        assert_eq!(
            info.size, size,
            "{what} {digest} has another size in the store"
        );
    };
    let mut names = BTreeMap::new();
    for image in &report.images {
        present(&image.target.digest, image.target.size, "manifest");
        let bytes = store
            .read_to_vec(&image.target.digest, MAX_MANIFEST_SIZE as u64)
            .expect("read stored manifest");
        let manifest = parse_manifest(&bytes, Some(&image.target.media_type))
            .expect("a loaded image's manifest parses");
        assert_eq!(
            manifest.config.digest, image.config,
            "report's config is not the manifest's"
        );
        present(&manifest.config.digest, manifest.config.size, "config");
        let config = store
            .read_to_vec(&manifest.config.digest, MAX_CONFIG_SIZE as u64)
            .expect("read stored config");
        let config = ImageConfig::parse(&config).expect("a loaded image's config parses");
        assert_eq!(
            config.rootfs.diff_ids, image.diff_ids,
            "report's diff IDs are not the config's"
        );
        assert_eq!(
            manifest.layers.len(),
            image.diff_ids.len(),
            "layers and diff IDs differ in number"
        );
        for layer in &manifest.layers {
            present(&layer.digest, layer.size, "layer");
        }
        for name in &image.names {
            names.insert(name.clone(), image.target.clone());
        }
    }
    // Read back: every stored blob hashes to its digest.
    for blob in store.list().expect("list store") {
        store
            .verify(&blob.digest)
            .expect("stored blob hashes to its digest");
    }
    let recorded: BTreeMap<_, _> = metadata
        .read()
        .expect("read metadata")
        .images()
        .map(|r| (r.name.clone(), r.target.clone()))
        .collect();
    assert_eq!(recorded, names, "recorded names are not the report's");
}

fn same_images(a: &LoadReport, b: &LoadReport) -> bool {
    a.format == b.format
        && a.images.len() == b.images.len()
        && a.images.iter().zip(&b.images).all(|(x, y)| {
            x.names == y.names
                && x.target == y.target
                && x.config == y.config
                && x.diff_ids == y.diff_ids
        })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let archive = setup.dir.join("archive.tar");
    let run = setup.dir.join("run");
    std::fs::write(&archive, data).expect("write archive");
    std::fs::create_dir(&run).expect("fresh run directory");
    let store = LocalStore::open(&run.join("content")).expect("open content store");
    let metadata = MetadataStore::open(&run.join("metadata")).expect("open metadata");

    match load(setup, &archive, &store, &metadata) {
        Ok(report) => {
            check_loaded(&report, &store, &metadata);
            // Again, into the same stores: every blob is there already.
            let again = load(setup, &archive, &store, &metadata)
                .expect("a second load of a loaded archive");
            assert!(
                same_images(&report, &again),
                "a second load gave other images"
            );
            assert!(again.replaced.is_empty(), "a second load replaced names");
        }
        Err(e) => {
            let kind = e.kind();
            // Not found: only "no manifest for this platform", never a blob the load
            // itself should have stored.
            let expected = match kind {
                ErrorKind::InvalidArgument
                | ErrorKind::FailedPrecondition
                | ErrorKind::NotImplemented => true,
                ErrorKind::NotFound => matches!(e, ArchiveError::Manifest { .. }),
                _ => false,
            };
            assert!(expected, "a hostile archive caused a {kind:?} error: {e}");
            let recorded = metadata.read().expect("read metadata").images().count();
            assert_eq!(recorded, 0, "a failed load recorded names");
        }
    }

    let beside: Vec<_> = std::fs::read_dir(&setup.dir)
        .expect("read scratch")
        .map(|e| e.expect("scratch entry").file_name())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        beside,
        ["archive.tar", "run"],
        "load wrote outside its stores"
    );
    std::fs::remove_dir_all(&run).expect("remove run directory");
    std::fs::remove_file(&archive).expect("remove archive");
});
