//! `berth-pull`: a small driver of [`ImageService`] for benchmarks and manual checks
//! (see `bench/image-pull.sh` and `docs/performance.md`).
//!
//! ```text
//! berth-pull --root DIR [--insecure HOST]... [--concurrency N] [--quiet] REFERENCE
//!     Opens (creating) the image store at DIR, pulls REFERENCE into it and prints the
//!     elapsed time and one line per layer (size, when its download ended, when it
//!     was done). `localhost` and 127.0.0.0/8 registries are insecure by default.
//!
//! berth-pull unpack-layout [--no-verify] OCI_DIR DEST
//!     Applies every layer of the (host platform's) image of the OCI layout OCI_DIR,
//!     in order, into DEST with `layer::decompress` + `layer::apply`, one after the
//!     other in the calling thread, checking each blob's digest and diff ID (as an
//!     unpack from the content store does) unless --no-verify. DEST is created and
//!     must be empty or absent. This is the unpack-throughput half of the benchmark,
//!     compared with `tar -xzf` of the same blobs.
//!
//! berth-pull unpack-tar DEST FILE...
//!     Applies the layer files FILE... (plain tar, gzip or zstd, told by their first
//!     bytes), in order, into DEST (created; must be empty or absent). No digest is
//!     checked (there is no manifest); the diff ID is computed as always. Compared with
//!     `tar -xf` of the same uncompressed tars, this measures the applier alone.
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use berth_images::digest::{Digest, Verifier};
use berth_images::layer::{self, ApplyOptions};
use berth_images::manifest::{
    parse_any, select_manifest, Compression, Descriptor, Document, ImageConfig, Manifest, Platform,
    MAX_CONFIG_SIZE,
};
use berth_images::progress::{Progress, ProgressSink, ProgressState};
use berth_images::reference::Reference;
use berth_images::registry::HostConfig;
use berth_images::service::{ImageService, ServiceConfig};

const USAGE: &str = "usage:
  berth-pull --root DIR [--insecure HOST]... [--concurrency N] [--quiet] REFERENCE
  berth-pull unpack-layout [--no-verify] OCI_DIR DEST
  berth-pull unpack-tar DEST FILE...";

/// Largest manifest or index read from a layout.
const MAX_DOCUMENT: u64 = 4 << 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("unpack-layout") => unpack_layout(args.get(1..).unwrap_or_default()),
        Some("unpack-tar") => unpack_tar(args.get(1..).unwrap_or_default()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => pull(&args),
    }
}

// ------------------------------------------------------------------------ pull

/// When each layer reached each state (first time), relative to the pull's start.
struct Timeline {
    start: Instant,
    layers: Mutex<HashMap<Digest, LayerTimes>>,
}

#[derive(Default, Clone)]
struct LayerTimes {
    total: Option<u64>,
    downloading: Option<Duration>,
    verifying: Option<Duration>,
    extracting: Option<Duration>,
    done: Option<Duration>,
    already: bool,
}

impl ProgressSink for Timeline {
    fn report(&self, event: Progress) {
        let now = self.start.elapsed();
        let mut layers = self.layers.lock().unwrap_or_else(PoisonError::into_inner);
        let t = layers.entry(event.digest).or_default();
        if event.total.is_some() {
            t.total = event.total;
        }
        let slot = match event.state {
            ProgressState::Downloading => &mut t.downloading,
            ProgressState::Verifying => &mut t.verifying,
            ProgressState::Extracting => &mut t.extracting,
            ProgressState::Done => &mut t.done,
            ProgressState::AlreadyExists => {
                t.already = true;
                &mut t.done
            }
            ProgressState::Waiting | ProgressState::Uploading => return,
        };
        slot.get_or_insert(now);
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.0}", d.as_secs_f64() * 1e3),
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn pull(args: &[String]) -> Result<()> {
    let mut root: Option<PathBuf> = None;
    let mut insecure = Vec::new();
    let mut concurrency = None;
    let mut quiet = false;
    let mut reference = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--root" => root = Some(PathBuf::from(value("--root")?)),
            "--insecure" => insecure.push(value("--insecure")?),
            "--concurrency" => {
                let v = value("--concurrency")?;
                concurrency = Some(
                    v.parse::<usize>()
                        .with_context(|| format!("bad --concurrency {v:?}"))?,
                );
            }
            "--quiet" | "-q" => quiet = true,
            a if a.starts_with('-') => bail!("unknown option {a}\n{USAGE}"),
            a => {
                ensure!(reference.is_none(), "one REFERENCE only\n{USAGE}");
                reference = Some(a.to_owned());
            }
        }
    }
    let root = root.with_context(|| format!("--root is required\n{USAGE}"))?;
    let reference = reference.with_context(|| format!("REFERENCE is required\n{USAGE}"))?;
    let reference = Reference::parse_normalized(&reference)
        .with_context(|| format!("bad reference {reference:?}"))?;

    let mut config = ServiceConfig::default();
    for host in insecure {
        config.registry.hosts.insert(
            host,
            HostConfig {
                insecure: true,
                ..HostConfig::default()
            },
        );
    }
    if let Some(n) = concurrency {
        config.max_concurrent_downloads = n;
    }

    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let service = ImageService::open(&root, config)
        .with_context(|| format!("cannot open the image store at {}", root.display()))?;
    let opened = start.elapsed();
    let timeline = Arc::new(Timeline {
        start,
        layers: Mutex::new(HashMap::new()),
    });
    let image = runtime
        .block_on(service.pull(&reference, &Platform::host(), timeline.clone()))
        .with_context(|| format!("cannot pull {reference}"))?;
    let elapsed = start.elapsed();
    drop(service);

    let mut out = io::stdout().lock();
    writeln!(
        out,
        "pulled {reference} in {:.3} s (store open {:.1} ms)",
        elapsed.as_secs_f64(),
        opened.as_secs_f64() * 1e3
    )?;
    writeln!(
        out,
        "image {} ({} layers, {:.1} MiB compressed, {:.1} MiB unpacked)",
        image.id,
        image.layers.len(),
        mib(image.content_size),
        mib(image.size)
    )?;
    if quiet {
        return Ok(());
    }
    writeln!(
        out,
        "{:>3}  {:<19}  {:>9}  {:>11}  {:>11}  {:>9}  {:>8}",
        "#", "blob", "size MiB", "unpack MiB", "first byte", "received", "done"
    )?;
    let layers = timeline
        .layers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (i, l) in image.layers.iter().enumerate() {
        let t = layers.get(&l.digest).cloned().unwrap_or_default();
        let done = if t.already {
            "exists".to_owned()
        } else {
            ms(t.done)
        };
        writeln!(
            out,
            "{:>3}  {:<19}  {:>9.1}  {:>11.1}  {:>9} ms  {:>6} ms  {:>5} ms",
            i + 1,
            format!("{}…", l.digest.short(12)),
            mib(l.size),
            mib(l.unpacked_size.unwrap_or(0)),
            ms(t.downloading.or(t.extracting)),
            ms(t.verifying),
            done
        )?;
    }
    Ok(())
}

// --------------------------------------------------------------- unpack-layout

/// Where a blob of the layout lives (the digest's hex is a safe file name).
fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Reads a small blob, bounded, and checks its digest.
fn read_blob(layout: &Path, desc: &Descriptor, max: u64) -> Result<Vec<u8>> {
    ensure!(
        desc.size <= max,
        "blob {} is {} bytes (more than {max})",
        desc.digest,
        desc.size
    );
    let path = blob_path(layout, &desc.digest);
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let actual = Digest::of(desc.digest.algorithm(), &bytes);
    ensure!(
        actual == desc.digest,
        "blob {} has digest {actual}",
        desc.digest
    );
    Ok(bytes)
}

/// The host platform's image manifest of the layout at `layout`.
fn layout_manifest(layout: &Path) -> Result<Manifest> {
    let index_path = layout.join("index.json");
    let mut bytes = Vec::new();
    std::fs::File::open(&index_path)
        .with_context(|| format!("cannot open {}", index_path.display()))?
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", index_path.display()))?;
    let mut document = parse_any(&bytes, None)
        .with_context(|| format!("cannot parse {}", index_path.display()))?;
    // index.json → (nested indexes) → manifest; bounded depth.
    for _ in 0..4 {
        match document {
            Document::Manifest(m) => return Ok(*m),
            Document::Index(index) => {
                let desc = select_manifest(&index, &Platform::host())
                    .context("no manifest for this platform in the layout")?;
                let bytes = read_blob(layout, desc, MAX_DOCUMENT)?;
                document = parse_any(&bytes, Some(&desc.media_type))
                    .with_context(|| format!("cannot parse manifest {}", desc.digest))?;
            }
        }
    }
    bail!("indexes nested too deep in {}", layout.display())
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    verifier: Option<Verifier>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(v) = &mut self.verifier {
            v.update(buf.get(..n).unwrap_or_default());
        }
        Ok(n)
    }
}

/// Creates `dest`, or checks that it is an empty directory.
fn fresh_dir(dest: &Path) -> Result<()> {
    match std::fs::create_dir(dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mut entries = std::fs::read_dir(dest)
                .with_context(|| format!("cannot read {}", dest.display()))?;
            ensure!(entries.next().is_none(), "{} is not empty", dest.display());
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", dest.display())),
    }
}

fn unpack_tar(args: &[String]) -> Result<()> {
    let Some((dest, files)) = args.split_first() else {
        bail!("unpack-tar needs DEST and FILE...\n{USAGE}");
    };
    ensure!(
        !files.is_empty(),
        "unpack-tar needs DEST and FILE...\n{USAGE}"
    );
    let dest = Path::new(dest);
    fresh_dir(dest)?;
    let start = Instant::now();
    let options = ApplyOptions::default();
    let mut out = io::stdout().lock();
    let mut input = 0u64;
    for (i, file) in files.iter().enumerate() {
        let mut f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        let mut magic = [0u8; 4];
        let n = f
            .read(&mut magic)
            .with_context(|| format!("cannot read {file}"))?;
        let head = magic.get(..n).unwrap_or_default().to_vec();
        let compression = Compression::detect(&head);
        let decoded = layer::decompress(io::Cursor::new(head).chain(f), compression)
            .with_context(|| format!("layer {}", i + 1))?;
        let stats = layer::apply(dest, decoded, &options)
            .with_context(|| format!("cannot apply {file}"))?;
        input += stats.input_bytes;
        writeln!(
            out,
            "layer {}: {:.1} MiB tar, {} entries, diff ID {}",
            i + 1,
            mib(stats.input_bytes),
            stats.entries,
            stats.diff_id
        )?;
    }
    let secs = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "applied {} layers ({:.1} MiB of tar) in {secs:.3} s: {:.0} MiB/s",
        files.len(),
        mib(input),
        mib(input) / secs.max(1e-9)
    )?;
    Ok(())
}

fn unpack_layout(args: &[String]) -> Result<()> {
    let mut verify = true;
    let mut paths = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--no-verify" => verify = false,
            a if a.starts_with('-') => bail!("unknown option {a}\n{USAGE}"),
            a => paths.push(PathBuf::from(a)),
        }
    }
    let [layout, dest] = paths.as_slice() else {
        bail!("unpack-layout needs OCI_DIR and DEST\n{USAGE}");
    };
    let start = Instant::now();
    let manifest = layout_manifest(layout)?;
    let config_bytes = read_blob(layout, &manifest.config, MAX_CONFIG_SIZE as u64)?;
    let config = ImageConfig::parse(&config_bytes).context("cannot parse the image config")?;
    ensure!(
        config.rootfs.diff_ids.len() == manifest.layers.len(),
        "the config lists {} diff IDs for {} layers",
        config.rootfs.diff_ids.len(),
        manifest.layers.len()
    );
    fresh_dir(dest)?;
    let options = ApplyOptions::default();
    let mut out = io::stdout().lock();
    let (mut compressed, mut uncompressed, mut written) = (0u64, 0u64, 0u64);
    for (i, (desc, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let layer_start = Instant::now();
        let compression = desc
            .layer_type()
            .with_context(|| format!("layer {} has media type {}", i + 1, desc.media_type))?
            .compression;
        let path = blob_path(layout, &desc.digest);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut blob = Hashing {
            inner: file,
            verifier: verify.then(|| Verifier::new(desc.digest.algorithm())),
        };
        let stats = {
            let decoded = layer::decompress(&mut blob, compression)
                .with_context(|| format!("layer {}", i + 1))?;
            layer::apply(dest, decoded, &options)
                .with_context(|| format!("cannot apply layer {} ({})", i + 1, desc.digest))?
        };
        io::copy(&mut blob, &mut io::sink())
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(v) = blob.verifier.take() {
            let actual = v.finish();
            ensure!(
                actual == desc.digest,
                "layer {} blob has digest {actual}",
                i + 1
            );
            ensure!(
                stats.diff_id == *diff_id,
                "layer {} has diff ID {}, the config says {diff_id}",
                i + 1,
                stats.diff_id
            );
        }
        compressed += desc.size;
        uncompressed += stats.input_bytes;
        written += stats.bytes;
        writeln!(
            out,
            "layer {}: {:.1} MiB compressed, {:.1} MiB tar, {} entries, {:.0} ms",
            i + 1,
            mib(desc.size),
            mib(stats.input_bytes),
            stats.entries,
            layer_start.elapsed().as_secs_f64() * 1e3
        )?;
    }
    let secs = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "unpacked {} layers ({:.1} MiB compressed, {:.1} MiB tar, {:.1} MiB file data) in {:.3} s: {:.0} MiB/s of tar{}",
        manifest.layers.len(),
        mib(compressed),
        mib(uncompressed),
        mib(written),
        secs,
        mib(uncompressed) / secs.max(1e-9),
        if verify { "" } else { " (digests not checked)" }
    )?;
    Ok(())
}
