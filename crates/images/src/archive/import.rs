//! `import`: a plain root filesystem tar (`docker import`) → a one-layer image.
//!
//! The input is read once. Its bytes are hashed as they come (the blob digest when
//! the input is compressed and stored as it is) and decompressed on the fly (the diff
//! ID); an uncompressed input is compressed on the fly (gzip by default) and that
//! output hashed. The layer goes to an anonymous temporary file first, because the
//! content store's writers need the digest before the first byte, then into the
//! store (verified again there). Config (rootfs, history, os and architecture, the
//! caller's container defaults) and manifest follow; the name is recorded last.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, OFlags};

use super::blob::{store_blob, HashingReader, Reporter};
use super::error::ArchiveError;
use crate::content::ContentStore;
use crate::digest::{Algorithm, Digest, Verifier};
use crate::layer::{decompress, Compression};
use crate::manifest::media_type::{DOCKER_CONFIG, OCI_CONFIG};
use crate::manifest::{
    ContainerConfig, Descriptor, DocumentKind, Format, History, ImageConfig, Manifest, Platform,
    RootFs,
};
use crate::metadata::{MetadataError, MetadataStore, Target};
use crate::progress::ProgressSink;
use crate::reference::Reference;

/// How to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The name to give the image (`None`: unnamed, the caller keeps the target).
    pub name: Option<Reference>,
    /// The image's platform. Default: the host's.
    pub platform: Platform,
    /// Defaults for containers (`CMD`, `ENV`, `WORKDIR`…, what `docker import
    /// --change` sets).
    pub config: ContainerConfig,
    /// The history comment (`docker import --message`).
    pub message: Option<String>,
    /// How to store an uncompressed input (a compressed input is stored as it is).
    /// Default: gzip, what registries expect.
    pub compression: Compression,
    /// Manifest and config format. Default: Docker v2 schema 2, as `docker import`.
    pub format: Format,
    /// Where the layer is staged (an anonymous file; must be a local file system).
    /// Default: the system's temporary directory.
    pub temp_dir: PathBuf,
    /// Most bytes of (decompressed) tar stream accepted.
    pub max_bytes: u64,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            name: None,
            platform: Platform::host(),
            config: ContainerConfig::default(),
            message: None,
            compression: Compression::Gzip,
            format: Format::Docker,
            temp_dir: std::env::temp_dir(),
            max_bytes: 256 << 30,
        }
    }
}

/// What [`import`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The name recorded, if one was given.
    pub name: Option<String>,
    /// The image's manifest, in the content store.
    pub target: Target,
    /// The image ID (the config's digest).
    pub config: Digest,
    /// The layer as stored.
    pub layer: Descriptor,
    /// The layer's diff ID.
    pub diff_id: Digest,
}

/// Imports the root filesystem tar `input` (plain, gzip or zstd) as a one-layer image
/// into `store`, naming it in `metadata` if [`ImportOptions::name`] is set.
pub fn import(
    store: &dyn ContentStore,
    metadata: &MetadataStore,
    input: impl Read + Send,
    options: &ImportOptions,
    progress: &dyn ProgressSink,
) -> Result<ImportedImage, ArchiveError> {
    if let Some(reason) = options.name.as_ref().and_then(super::refused_name) {
        return Err(ArchiveError::RefusedName {
            name: options
                .name
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            file: "import".to_owned(),
            reason,
        });
    }
    let mut temp = temp_file(&options.temp_dir)?;
    let staged = stage(input, &mut temp, options)?;
    let temp_err = |source| ArchiveError::TempFile {
        path: options.temp_dir.clone(),
        source,
    };
    temp.seek(SeekFrom::Start(0)).map_err(temp_err)?;
    let file = "import layer";
    let mut reporter = Reporter::new(progress, &staged.digest, Some(staged.size));
    let reader = temp.try_clone().map_err(temp_err)?;
    store_blob(
        store,
        &staged.digest,
        staged.size,
        move || Ok(Box::new(reader) as Box<dyn Read + Send>),
        file,
        &mut reporter,
        |actual| ArchiveError::DigestMismatch {
            file: file.to_owned(),
            expected: staged.digest.clone(),
            actual,
        },
    )?;
    drop(temp);

    let layer = Descriptor::new(
        staged.compression.layer_media_type(options.format),
        staged.digest.clone(),
        staged.size,
    );
    let created = rfc3339(SystemTime::now());
    let p = options.platform.normalized();
    let config = ImageConfig {
        created: Some(created.clone()),
        author: None,
        architecture: p.architecture,
        os: p.os,
        os_version: p.os_version,
        os_features: Vec::new(),
        variant: p.variant,
        config: (options.config != ContainerConfig::default()).then(|| options.config.clone()),
        rootfs: RootFs {
            fs_type: "layers".to_owned(),
            diff_ids: vec![staged.diff_id.clone()],
        },
        history: vec![History {
            created: Some(created),
            created_by: Some("berth import".to_owned()),
            author: None,
            comment: options.message.clone(),
            empty_layer: false,
        }],
    };
    let json_err = |source| ArchiveError::Json {
        file: "image config".to_owned(),
        source,
    };
    let config_bytes = serde_json::to_vec(&config).map_err(json_err)?;
    let content = |file: &'static str| {
        move |source| ArchiveError::Content {
            file: file.to_owned(),
            source,
        }
    };
    let config_digest = store
        .put_bytes(&config_bytes)
        .map_err(content("image config"))?;
    let config_type = match options.format {
        Format::Oci => OCI_CONFIG,
        Format::Docker => DOCKER_CONFIG,
    };
    let manifest = Manifest::new(
        options.format,
        Descriptor::new(
            config_type,
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        vec![layer.clone()],
    );
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(json_err)?;
    let manifest_digest = store
        .put_bytes(&manifest_bytes)
        .map_err(content("image manifest"))?;
    let kind = match options.format {
        Format::Oci => DocumentKind::OciManifest,
        Format::Docker => DocumentKind::DockerManifest,
    };
    let target = Target {
        media_type: kind.media_type().to_owned(),
        digest: manifest_digest,
        size: manifest_bytes.len() as u64,
    };
    let name = options.name.as_ref().map(ToString::to_string);
    if let Some(name) = &name {
        metadata
            .update(|m| -> Result<_, MetadataError> {
                m.put_image(name, target.clone(), BTreeMap::new())
            })
            .map_err(ArchiveError::Metadata)?;
    }
    Ok(ImportedImage {
        name,
        target,
        config: config_digest,
        layer,
        diff_id: staged.diff_id,
    })
}

/// The layer as staged in the temporary file.
struct Staged {
    compression: Compression,
    digest: Digest,
    size: u64,
    diff_id: Digest,
}

/// Counts and hashes what is written through it.
struct HashingWriter<W> {
    inner: W,
    verifier: Verifier,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(written) = buf.get(..n) {
            self.verifier.update(written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor of an uncompressed import.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(data),
            Encoder::Gzip(w) => w.write_all(data),
            Encoder::Zstd(w) => w.write_all(data),
        }
    }

    /// Ends the compressed stream and flushes it.
    fn finish(self) -> io::Result<()> {
        let mut w = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Zstd(w) => w.finish()?,
        };
        w.flush()
    }
}

/// Copies `input` into `temp` (compressing an uncompressed input), computing the blob
/// digest and the diff ID in the same pass.
fn stage(
    input: impl Read + Send,
    temp: &mut File,
    options: &ImportOptions,
) -> Result<Staged, ArchiveError> {
    let file = "import input";
    let read_err = |source| ArchiveError::Read {
        file: file.to_owned(),
        source,
    };
    let temp_err = |source| ArchiveError::TempFile {
        path: options.temp_dir.clone(),
        source,
    };
    let mut input = input;
    let mut head = Vec::with_capacity(8);
    (&mut input)
        .take(8)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let compression = Compression::detect(&head);
    let input = io::Cursor::new(head).chain(input);
    let mut buf = vec![0u8; 128 << 10];
    let mut first_block = Vec::with_capacity(512);
    let mut uncompressed = Verifier::new(Algorithm::Sha256);
    // Feeds decompressed bytes to the diff-ID hash (bounded) and the tar check.
    let mut feed = |data: &[u8]| -> Result<(), ArchiveError> {
        uncompressed.update(data);
        if uncompressed.len() > options.max_bytes {
            return Err(ArchiveError::Limit {
                file: file.to_owned(),
                what: "bytes of tar stream",
                value: uncompressed.len(),
                max: options.max_bytes,
            });
        }
        let want = 512usize.saturating_sub(first_block.len()).min(data.len());
        first_block.extend_from_slice(data.get(..want).unwrap_or_default());
        Ok(())
    };
    let (out_compression, digest, size) = match compression {
        Compression::None => {
            // Compress on the fly into the temporary file, hashing what is written.
            let mut sink = HashingWriter {
                inner: &mut *temp,
                verifier: Verifier::new(Algorithm::Sha256),
            };
            let mut input = input;
            let mut encoder = match options.compression {
                Compression::None => Encoder::Plain(&mut sink),
                Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                    &mut sink,
                    flate2::Compression::default(),
                )),
                Compression::Zstd => Encoder::Zstd(
                    zstd::stream::write::Encoder::new(&mut sink, 3).map_err(temp_err)?,
                ),
            };
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_err(e)),
                };
                let data = buf.get(..n).unwrap_or_default();
                feed(data)?;
                encoder.write_all(data).map_err(temp_err)?;
            }
            encoder.finish().map_err(temp_err)?;
            sink.flush().map_err(temp_err)?;
            let size = sink.verifier.len();
            (options.compression, sink.verifier.finish(), size)
        }
        compressed => {
            // Store as it is: tee the raw bytes into the file while decompressing.
            struct Tee<'a, R> {
                inner: R,
                out: &'a mut File,
            }
            impl<R: Read> Read for Tee<'_, R> {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    let n = self.inner.read(buf)?;
                    self.out.write_all(buf.get(..n).unwrap_or_default())?;
                    Ok(n)
                }
            }
            let mut raw = HashingReader::new(Tee {
                inner: input,
                out: &mut *temp,
            });
            {
                let mut decoder =
                    decompress(&mut raw, compressed).map_err(|e| ArchiveError::Decompress {
                        file: file.to_owned(),
                        source: io::Error::other(e),
                    })?;
                loop {
                    let n = match decoder.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(source) => {
                            return Err(ArchiveError::Decompress {
                                file: file.to_owned(),
                                source,
                            })
                        }
                    };
                    feed(buf.get(..n).unwrap_or_default())?;
                }
            }
            let (digest, size) = raw.drain().map_err(read_err)?;
            (compressed, digest, size)
        }
    };
    check_tar_start(&first_block)?;
    Ok(Staged {
        compression: out_compression,
        digest,
        size,
        diff_id: uncompressed.finish(),
    })
}

/// Checks that a stream starts like a tar archive: a header with a valid checksum, or
/// the end-of-archive marker (an empty archive).
fn check_tar_start(block: &[u8]) -> Result<(), ArchiveError> {
    if block.len() < 512 {
        return Err(ArchiveError::NotATar {
            reason: "shorter than one tar block",
        });
    }
    if block.iter().all(|b| *b == 0) {
        return Ok(());
    }
    let stored = block
        .get(148..156)
        .unwrap_or_default()
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(8)
                .and_then(|a| a.checked_add(u64::from(d - b'0')))
        });
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if stored == Some(sum) {
        Ok(())
    } else {
        Err(ArchiveError::NotATar {
            reason: "the first header's checksum is wrong",
        })
    }
}

/// Copies `input` into an anonymous file in `dir`, at most `max` bytes, and returns it
/// rewound (the image service spools a client's upload before it holds anything).
pub(crate) fn spool(input: impl Read, dir: &Path, max: u64) -> Result<File, ArchiveError> {
    let mut file = temp_file(dir)?;
    let copied =
        std::io::copy(&mut input.take(max.saturating_add(1)), &mut file).map_err(|source| {
            ArchiveError::Read {
                file: "import input".to_owned(),
                source,
            }
        })?;
    if copied > max {
        return Err(ArchiveError::Limit {
            file: "import input".to_owned(),
            what: "input bytes",
            value: copied,
            max,
        });
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|source| ArchiveError::TempFile {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(file)
}

/// An anonymous file in `dir` (`O_TMPFILE`), or a named one removed at once where the
/// file system lacks `O_TMPFILE`.
fn temp_file(dir: &Path) -> Result<File, ArchiveError> {
    let err = |source| ArchiveError::TempFile {
        path: dir.to_path_buf(),
        source,
    };
    match rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => return Ok(File::from(fd)),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {}
        Err(e) => return Err(err(e.into())),
    }
    for attempt in 0..16u32 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            ".berth-import-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path).map_err(err)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(io::Error::from(io::ErrorKind::AlreadyExists)))
}

/// `t` as RFC 3339 in UTC with whole seconds (`2024-05-01T12:00:00Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of day `z` after 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn checks_tar_start() {
        assert!(check_tar_start(&[0u8; 512]).is_ok());
        assert!(check_tar_start(b"hello").is_err());
        let mut h = tar::Header::new_ustar();
        h.set_path("a").unwrap();
        h.set_cksum();
        assert!(check_tar_start(h.as_bytes()).is_ok());
        let mut bad = h.as_bytes().to_vec();
        bad[0] = b'b';
        assert!(check_tar_start(&bad).is_err());
    }
}
