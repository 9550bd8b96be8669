//! Media types of the documents and layers Berth understands, and what they tell.

use super::ManifestError;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty descriptor (artifacts without config).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable uncompressed layer (deprecated).
pub const OCI_FOREIGN_LAYER_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip layer (deprecated).
pub const OCI_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd layer (deprecated).
pub const OCI_FOREIGN_LAYER_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer (what Docker pushes).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker zstd layer.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign uncompressed layer (Windows base layers).
pub const DOCKER_FOREIGN_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker foreign gzip layer (Windows base layers).
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker v2 schema 1 manifest (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker v2 schema 1 signed manifest (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The manifest media types Berth accepts, for a registry request's `Accept` header.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Whether `media_type` is a schema 1 manifest.
pub fn is_schema1(media_type: &str) -> bool {
    let m = essence(media_type);
    m == DOCKER_SCHEMA1 || m == DOCKER_SCHEMA1_SIGNED
}

/// The media type without parameters (`; charset=utf-8`), trimmed and lower-cased.
pub fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The family of a manifest or index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// OCI image-spec.
    Oci,
    /// Docker image manifest v2, schema 2.
    Docker,
}

/// What kind of document a manifest endpoint returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// An OCI image manifest.
    OciManifest,
    /// An OCI image index.
    OciIndex,
    /// A Docker v2 schema 2 manifest.
    DockerManifest,
    /// A Docker v2 schema 2 manifest list.
    DockerManifestList,
}

impl DocumentKind {
    /// The kind named by `media_type`, if it names one.
    pub fn from_media_type(media_type: &str) -> Option<DocumentKind> {
        match essence(media_type).as_str() {
            OCI_MANIFEST => Some(DocumentKind::OciManifest),
            OCI_INDEX => Some(DocumentKind::OciIndex),
            DOCKER_MANIFEST => Some(DocumentKind::DockerManifest),
            DOCKER_MANIFEST_LIST => Some(DocumentKind::DockerManifestList),
            _ => None,
        }
    }

    /// The media type of this kind.
    pub fn media_type(self) -> &'static str {
        match self {
            DocumentKind::OciManifest => OCI_MANIFEST,
            DocumentKind::OciIndex => OCI_INDEX,
            DocumentKind::DockerManifest => DOCKER_MANIFEST,
            DocumentKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether this is an index (manifest list).
    pub fn is_index(self) -> bool {
        matches!(
            self,
            DocumentKind::OciIndex | DocumentKind::DockerManifestList
        )
    }

    /// OCI or Docker.
    pub fn format(self) -> Format {
        match self {
            DocumentKind::OciManifest | DocumentKind::OciIndex => Format::Oci,
            DocumentKind::DockerManifest | DocumentKind::DockerManifestList => Format::Docker,
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression of a layer with `media_type`, if it is a known layer type.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        LayerType::from_media_type(media_type).map(|t| t.compression)
    }

    /// Guesses the compression from the first bytes of a blob (gzip and zstd magic
    /// numbers; anything else is taken as a plain tar). Used for archives whose
    /// layers carry no media type (`docker save`).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The layer media type with this compression in `format`.
    pub fn layer_media_type(self, format: Format) -> &'static str {
        match (format, self) {
            (Format::Oci, Compression::None) => OCI_LAYER_TAR,
            (Format::Oci, Compression::Gzip) => OCI_LAYER_GZIP,
            (Format::Oci, Compression::Zstd) => OCI_LAYER_ZSTD,
            (Format::Docker, Compression::None) => DOCKER_LAYER_TAR,
            (Format::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP,
            (Format::Docker, Compression::Zstd) => DOCKER_LAYER_ZSTD,
        }
    }
}

/// What a layer media type says about the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerType {
    /// How the tar is compressed.
    pub compression: Compression,
    /// A foreign (non-distributable) layer: registries may not hold it, and its
    /// descriptor's `urls` may say where it lives.
    pub foreign: bool,
}

impl LayerType {
    /// The layer type of `media_type`, if it is a layer type Berth can unpack.
    pub fn from_media_type(media_type: &str) -> Option<LayerType> {
        let (compression, foreign) = match essence(media_type).as_str() {
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => (Compression::None, false),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => (Compression::Gzip, false),
            OCI_LAYER_ZSTD | DOCKER_LAYER_ZSTD => (Compression::Zstd, false),
            OCI_FOREIGN_LAYER_TAR | DOCKER_FOREIGN_LAYER_TAR => (Compression::None, true),
            OCI_FOREIGN_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => (Compression::Gzip, true),
            OCI_FOREIGN_LAYER_ZSTD => (Compression::Zstd, true),
            _ => return None,
        };
        Some(LayerType {
            compression,
            foreign,
        })
    }

    /// Like [`LayerType::from_media_type`], with an error saying why not.
    pub fn parse(media_type: &str) -> Result<LayerType, ManifestError> {
        LayerType::from_media_type(media_type).ok_or_else(|| {
            let m = essence(media_type);
            let why = if m.contains("encrypted") {
                "encrypted layers are not supported"
            } else {
                "not a layer media type Berth can unpack (tar, tar+gzip, tar+zstd)"
            };
            ManifestError::LayerMediaType {
                media_type: super::truncate(media_type),
                why,
            }
        })
    }
}

/// Whether `media_type` is an image config media type.
pub fn is_image_config(media_type: &str) -> bool {
    let m = essence(media_type);
    m == OCI_CONFIG || m == DOCKER_CONFIG
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn layer_types() {
        for (mt, c, foreign) in [
            (OCI_LAYER_TAR, Compression::None, false),
            (OCI_LAYER_GZIP, Compression::Gzip, false),
            (OCI_LAYER_ZSTD, Compression::Zstd, false),
            (DOCKER_LAYER_GZIP, Compression::Gzip, false),
            (DOCKER_LAYER_TAR, Compression::None, false),
            (DOCKER_LAYER_ZSTD, Compression::Zstd, false),
            (DOCKER_FOREIGN_LAYER_GZIP, Compression::Gzip, true),
            (OCI_FOREIGN_LAYER_ZSTD, Compression::Zstd, true),
            (
                "Application/Vnd.Oci.Image.Layer.V1.Tar+Gzip; x=y",
                Compression::Gzip,
                false,
            ),
        ] {
            let t = LayerType::parse(mt).unwrap();
            assert_eq!((t.compression, t.foreign), (c, foreign), "{mt}");
        }
        for bad in [
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/vnd.oci.image.layer.v1.tar+xz",
            "application/json",
            "",
        ] {
            assert!(LayerType::parse(bad).is_err(), "{bad}");
        }
        let e =
            LayerType::parse("application/vnd.oci.image.layer.v1.tar+zstd+encrypted").unwrap_err();
        assert!(e.to_string().contains("encrypted"), "{e}");
    }

    #[test]
    fn compression_round_trip_and_detect() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for f in [Format::Oci, Format::Docker] {
                assert_eq!(Compression::from_media_type(c.layer_media_type(f)), Some(c));
            }
        }
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/passwd"), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }

    #[test]
    fn kinds() {
        for k in [
            DocumentKind::OciManifest,
            DocumentKind::OciIndex,
            DocumentKind::DockerManifest,
            DocumentKind::DockerManifestList,
        ] {
            assert_eq!(DocumentKind::from_media_type(k.media_type()), Some(k));
        }
        assert_eq!(
            DocumentKind::from_media_type("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            Some(DocumentKind::OciIndex)
        );
        assert!(is_schema1(DOCKER_SCHEMA1_SIGNED));
        assert!(is_schema1(
            "application/vnd.docker.distribution.manifest.v1+json"
        ));
        assert!(!is_schema1(DOCKER_MANIFEST));
    }
}
