//! Descriptors, manifests and indexes: parsing, kind detection and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::media_type::{
    essence, is_image_config, is_schema1, DocumentKind, Format, LayerType, DOCKER_CONFIG,
};
use super::{truncate, ManifestError, Platform, MAX_INDEX_ENTRIES, MAX_LAYERS, MAX_MANIFEST_SIZE};
use crate::digest::Digest;

/// Most URLs on one descriptor.
const MAX_URLS: usize = 16;
/// Longest media type.
const MAX_MEDIA_TYPE_LEN: usize = 255;

/// A content descriptor: what a blob is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The blob's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Where else the blob may be fetched from (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the manifest this descriptor points to (in indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the manifest this descriptor points to.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The blob itself, base64-encoded, when embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// A plain descriptor.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// The layer type (compression, foreign) of this descriptor's media type.
    pub fn layer_type(&self) -> Result<LayerType, ManifestError> {
        LayerType::parse(&self.media_type)
    }

    /// Checks the parts serde does not: size within int64, a sane media type, a few
    /// http(s) URLs.
    pub fn validate(&self, what: &str) -> Result<(), ManifestError> {
        let bad = |why: &'static str| ManifestError::Descriptor {
            what: truncate(what),
            why,
        };
        if i64::try_from(self.size).is_err() {
            return Err(bad("size does not fit in int64"));
        }
        let mt = &self.media_type;
        let well_formed = !mt.is_empty()
            && mt.len() <= MAX_MEDIA_TYPE_LEN
            && mt
                .split_once('/')
                .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
            && mt.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if !well_formed {
            return Err(bad("malformed media type"));
        }
        if self.urls.len() > MAX_URLS {
            return Err(bad("too many urls"));
        }
        if !self
            .urls
            .iter()
            .all(|u| u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(bad("urls must be http or https"));
        }
        Ok(())
    }
}

/// An image manifest (OCI, or Docker v2 schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's media type (optional in old OCI manifests).
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for OCI artifacts.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// A new image manifest of `format` (media type set, schema version 2).
    pub fn new(format: Format, config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        let kind = match format {
            Format::Oci => DocumentKind::OciManifest,
            Format::Docker => DocumentKind::DockerManifest,
        };
        Manifest {
            schema_version: 2,
            media_type: Some(kind.media_type().to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// OCI or Docker.
    pub fn format(&self) -> Format {
        match self
            .media_type
            .as_deref()
            .and_then(DocumentKind::from_media_type)
        {
            Some(kind) => kind.format(),
            None if essence(&self.config.media_type) == DOCKER_CONFIG => Format::Docker,
            None => Format::Oci,
        }
    }

    /// Whether this manifest describes a container image (its config is an image config),
    /// rather than some other artifact.
    pub fn is_image(&self) -> bool {
        is_image_config(&self.config.media_type)
    }

    /// The image ID: the digest of the config.
    pub fn image_id(&self) -> &Digest {
        &self.config.digest
    }

    /// Sum of the (compressed) layer sizes.
    pub fn layers_size(&self) -> u64 {
        self.layers
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.size))
    }

    /// Checks bounds, descriptors, and (for images) that every layer has a layer media
    /// type Berth can unpack.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(u64::from(self.schema_version)));
        }
        if self.layers.len() > MAX_LAYERS {
            return Err(ManifestError::TooMany {
                what: "layers",
                count: self.layers.len(),
                max: MAX_LAYERS,
            });
        }
        self.config.validate("config")?;
        if let Some(subject) = &self.subject {
            subject.validate("subject")?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            layer.validate(&format!("layer {i}"))?;
        }
        if self.format() == Format::Docker && essence(&self.config.media_type) != DOCKER_CONFIG {
            return Err(ManifestError::ConfigMediaType {
                found: truncate(&self.config.media_type),
            });
        }
        if self.is_image() {
            for layer in &self.layers {
                layer.layer_type()?;
            }
        }
        Ok(())
    }

    /// Like [`Manifest::validate`], and refuses manifests that are not container images.
    pub fn validate_image(&self) -> Result<(), ManifestError> {
        self.validate()?;
        if !self.is_image() {
            return Err(ManifestError::NotAnImage {
                config_media_type: truncate(&self.config.media_type),
            });
        }
        Ok(())
    }
}

/// An image index (OCI) or manifest list (Docker): manifests per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's media type (optional in old OCI indexes).
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for OCI artifacts.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// A new index of `format` (media type set, schema version 2).
    pub fn new(format: Format, manifests: Vec<Descriptor>) -> Index {
        let kind = match format {
            Format::Oci => DocumentKind::OciIndex,
            Format::Docker => DocumentKind::DockerManifestList,
        };
        Index {
            schema_version: 2,
            media_type: Some(kind.media_type().to_owned()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// OCI or Docker.
    pub fn format(&self) -> Format {
        match self
            .media_type
            .as_deref()
            .and_then(DocumentKind::from_media_type)
        {
            Some(kind) => kind.format(),
            None => Format::Oci,
        }
    }

    /// Checks bounds and descriptors.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(u64::from(self.schema_version)));
        }
        if self.manifests.len() > MAX_INDEX_ENTRIES {
            return Err(ManifestError::TooMany {
                what: "index entries",
                count: self.manifests.len(),
                max: MAX_INDEX_ENTRIES,
            });
        }
        if let Some(subject) = &self.subject {
            subject.validate("subject")?;
        }
        for (i, m) in self.manifests.iter().enumerate() {
            m.validate(&format!("manifest {i}"))?;
        }
        Ok(())
    }
}

/// A parsed manifest-endpoint document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image manifest.
    Manifest(Box<Manifest>),
    /// An index or manifest list.
    Index(Box<Index>),
}

impl Document {
    /// The kind, as detected when parsing.
    pub fn kind(&self) -> DocumentKind {
        match self {
            Document::Manifest(m) => match m.format() {
                Format::Oci => DocumentKind::OciManifest,
                Format::Docker => DocumentKind::DockerManifest,
            },
            Document::Index(i) => match i.format() {
                Format::Oci => DocumentKind::OciIndex,
                Format::Docker => DocumentKind::DockerManifestList,
            },
        }
    }

    /// The media type of the document.
    pub fn media_type(&self) -> &'static str {
        self.kind().media_type()
    }
}

/// The fields that tell what a document is; everything else is ignored here.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<serde::de::IgnoredAny>,
}

/// Content types that say nothing about the document.
fn is_generic_content_type(ct: &str) -> bool {
    matches!(
        ct,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    )
}

/// Parses a document from a registry's manifest endpoint (or an OCI layout / archive
/// index), whatever it is, and validates it. Never panics, whatever the bytes.
///
/// The kind comes from the document's `mediaType` field, else from `content_type`
/// (the HTTP `Content-Type`, parameters ignored), else from its shape. A document and
/// content type naming different kinds are refused, as is anything schema 1.
pub fn parse_any(bytes: &[u8], content_type: Option<&str>) -> Result<Document, ManifestError> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge {
            what: "manifest",
            size: bytes.len() as u64,
            max: MAX_MANIFEST_SIZE as u64,
        });
    }
    let ct = content_type.map(essence).unwrap_or_default();
    if is_schema1(&ct) {
        return Err(ManifestError::Schema1);
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "manifest",
        source,
    })?;
    if probe.media_type.as_deref().is_some_and(is_schema1) || probe.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    match &probe.schema_version {
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) if v.as_u64() == Some(1) => return Err(ManifestError::Schema1),
        Some(v) => return Err(ManifestError::SchemaVersion(v.as_u64().unwrap_or(u64::MAX))),
        None => return Err(ManifestError::MissingSchemaVersion),
    }
    let from_ct = DocumentKind::from_media_type(&ct);
    if from_ct.is_none() && !is_generic_content_type(&ct) {
        return Err(ManifestError::UnsupportedMediaType(truncate(&ct)));
    }
    let from_body = match &probe.media_type {
        Some(mt) => Some(
            DocumentKind::from_media_type(mt)
                .ok_or_else(|| ManifestError::UnsupportedMediaType(truncate(mt)))?,
        ),
        None => None,
    };
    let kind = match (from_body, from_ct) {
        (Some(body), Some(ct_kind)) if body != ct_kind => {
            return Err(ManifestError::MediaTypeMismatch {
                content_type: ct_kind.media_type(),
                document: body.media_type(),
            })
        }
        (Some(kind), _) | (None, Some(kind)) => kind,
        (None, None) => match (&probe.manifests, &probe.config, &probe.layers) {
            (Some(_), None, None) => DocumentKind::OciIndex,
            (None, Some(_), Some(_)) => DocumentKind::OciManifest,
            _ => return Err(ManifestError::UnknownDocument),
        },
    };
    let json_err = |what| move |source| ManifestError::Json { what, source };
    if kind.is_index() {
        if probe.config.is_some() || probe.layers.is_some() {
            return Err(ManifestError::UnknownDocument);
        }
        let mut index: Index = serde_json::from_slice(bytes).map_err(json_err("index"))?;
        index.validate()?;
        // A document without mediaType takes the one the server named.
        index
            .media_type
            .get_or_insert_with(|| kind.media_type().to_owned());
        Ok(Document::Index(Box::new(index)))
    } else {
        if probe.manifests.is_some() {
            return Err(ManifestError::UnknownDocument);
        }
        let mut manifest: Manifest = serde_json::from_slice(bytes).map_err(json_err("manifest"))?;
        manifest
            .media_type
            .get_or_insert_with(|| kind.media_type().to_owned());
        manifest.validate()?;
        Ok(Document::Manifest(Box::new(manifest)))
    }
}

/// Parses and validates an image manifest (refusing indexes and non-images).
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    match parse_any(bytes, content_type)? {
        Document::Manifest(m) => {
            m.validate_image()?;
            Ok(*m)
        }
        Document::Index(_) => Err(ManifestError::UnexpectedKind {
            expected: "image manifest",
            found: "index",
        }),
    }
}

/// Parses and validates an index or manifest list.
pub fn parse_index(bytes: &[u8], content_type: Option<&str>) -> Result<Index, ManifestError> {
    match parse_any(bytes, content_type)? {
        Document::Index(i) => Ok(*i),
        Document::Manifest(_) => Err(ManifestError::UnexpectedKind {
            expected: "index",
            found: "image manifest",
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use berth_errdefs::{ErrorKind, HasKind};

    use super::super::media_type::*;
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn docker_manifest() -> String {
        format!(
            r#"{{
   "schemaVersion": 2,
   "mediaType": "{DOCKER_MANIFEST}",
   "config": {{"mediaType": "{DOCKER_CONFIG}", "size": 1469, "digest": "{D1}"}},
   "layers": [
      {{"mediaType": "{DOCKER_LAYER_GZIP}", "size": 2811969, "digest": "{D2}"}}
   ]
}}"#
        )
    }

    fn oci_manifest(media_type: bool, layer_type: &str) -> String {
        let mt = if media_type {
            format!(r#""mediaType": "{OCI_MANIFEST}","#)
        } else {
            String::new()
        };
        format!(
            r#"{{"schemaVersion": 2, {mt}
              "config": {{"mediaType": "{OCI_CONFIG}", "size": 7, "digest": "{D1}"}},
              "layers": [{{"mediaType": "{layer_type}", "size": 32, "digest": "{D2}"}}],
              "annotations": {{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}}}}"#
        )
    }

    fn index(media_type: &str) -> String {
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{media_type}", "manifests": [
                {{"mediaType": "{OCI_MANIFEST}", "size": 7, "digest": "{D1}",
                  "platform": {{"architecture": "amd64", "os": "linux"}}}},
                {{"mediaType": "{OCI_MANIFEST}", "size": 7, "digest": "{D2}",
                  "platform": {{"architecture": "arm64", "os": "linux", "variant": "v8"}}}}]}}"#
        )
    }

    #[test]
    fn parses_docker_and_oci() {
        let doc = parse_any(docker_manifest().as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(doc.kind(), DocumentKind::DockerManifest);
        let Document::Manifest(m) = doc else {
            unreachable!()
        };
        assert_eq!(m.image_id().to_string(), D1);
        assert_eq!(
            m.layers[0].layer_type().unwrap().compression,
            Compression::Gzip
        );
        assert_eq!(m.layers_size(), 2811969);

        for ct in [None, Some(OCI_MANIFEST), Some("application/json"), Some("")] {
            let doc = parse_any(oci_manifest(true, OCI_LAYER_ZSTD).as_bytes(), ct).unwrap();
            assert_eq!(doc.kind(), DocumentKind::OciManifest);
        }
        // No mediaType: from the content type, else from the shape.
        let bare = oci_manifest(false, OCI_LAYER_TAR);
        assert_eq!(
            parse_any(bare.as_bytes(), None).unwrap().kind(),
            DocumentKind::OciManifest
        );
        let m = parse_manifest(bare.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));

        let i = parse_index(index(OCI_INDEX).as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(i.manifests.len(), 2);
        let doc = parse_any(index(DOCKER_MANIFEST_LIST).as_bytes(), None).unwrap();
        assert_eq!(doc.kind(), DocumentKind::DockerManifestList);
        assert_eq!(doc.media_type(), DOCKER_MANIFEST_LIST);
    }

    #[test]
    fn round_trips_through_serde() {
        let m = parse_manifest(docker_manifest().as_bytes(), None).unwrap();
        let again = parse_manifest(&serde_json::to_vec(&m).unwrap(), None).unwrap();
        assert_eq!(again, m);
        let built = Manifest::new(
            Format::Oci,
            Descriptor::new(OCI_CONFIG, Digest::parse(D1).unwrap(), 7),
            vec![Descriptor::new(
                OCI_LAYER_GZIP,
                Digest::parse(D2).unwrap(),
                3,
            )],
        );
        let bytes = serde_json::to_vec(&built).unwrap();
        assert_eq!(parse_manifest(&bytes, Some(OCI_MANIFEST)).unwrap(), built);
        let idx = Index::new(Format::Docker, vec![]);
        let bytes = serde_json::to_vec(&idx).unwrap();
        assert_eq!(parse_index(&bytes, None).unwrap(), idx);
    }

    #[test]
    fn refuses_schema1_clearly() {
        let signed = r#"{"schemaVersion": 1, "name": "library/busybox", "tag": "latest",
            "architecture": "amd64", "fsLayers": [{"blobSum": "sha256:a3ed"}],
            "history": [], "signatures": []}"#;
        for (body, ct) in [
            (signed, None),
            (signed, Some(DOCKER_SCHEMA1_SIGNED)),
            (r#"{"schemaVersion":2}"#, Some(DOCKER_SCHEMA1)),
            (r#"{"schemaVersion":1}"#, None),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#,
                None,
            ),
        ] {
            let err = parse_any(body.as_bytes(), ct).unwrap_err();
            assert!(matches!(err, ManifestError::Schema1), "{err}");
            assert!(err.to_string().contains("schema 1"), "{err}");
            assert_eq!(err.kind(), ErrorKind::NotImplemented);
        }
    }

    #[test]
    fn refuses_lies_and_junk() {
        let oci = oci_manifest(true, OCI_LAYER_GZIP);
        // The server says index, the document says manifest.
        let err = parse_any(oci.as_bytes(), Some(OCI_INDEX)).unwrap_err();
        assert!(
            matches!(err, ManifestError::MediaTypeMismatch { .. }),
            "{err}"
        );
        // An index body claiming to be a manifest.
        let lying = index(OCI_MANIFEST);
        assert!(parse_any(lying.as_bytes(), None).is_err());
        // A Docker manifest with an OCI config.
        let bad_config = docker_manifest().replace(DOCKER_CONFIG, OCI_CONFIG);
        assert!(matches!(
            parse_any(bad_config.as_bytes(), None).unwrap_err(),
            ManifestError::ConfigMediaType { .. }
        ));
        let cases: Vec<(String, Option<&str>)> = vec![
            ("".into(), None),
            ("null".into(), None),
            ("[]".into(), None),
            ("{}".into(), None),
            (r#"{"schemaVersion":"2"}"#.into(), None),
            (r#"{"schemaVersion":3,"manifests":[]}"#.into(), None),
            (r#"{"schemaVersion":2}"#.into(), None),
            (
                r#"{"schemaVersion":2,"manifests":[],"layers":[]}"#.into(),
                None,
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"text/html","manifests":[]}"#.into(),
                None,
            ),
            (
                r#"{"schemaVersion":2,"manifests":[]}"#.into(),
                Some("text/html"),
            ),
            (
                r#"{"schemaVersion":2,"schemaVersion":2,"manifests":[]}"#.into(),
                None,
            ),
            (oci.replace("\"size\": 32", "\"size\": -1"), None),
            (oci.replace("\"size\": 32", "\"size\": 1e3"), None),
            (
                oci.replace("\"size\": 32", "\"size\": 18446744073709551615"),
                None,
            ),
            (oci.replace(D2, "sha256:abc"), None),
            (
                oci.replace(D2, "md5:d41d8cd98f00b204e9800998ecf8427e"),
                None,
            ),
            (
                oci.replace(
                    OCI_LAYER_GZIP,
                    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                ),
                None,
            ),
            (oci.replace(OCI_LAYER_GZIP, ""), None),
            (oci.replace(OCI_LAYER_GZIP, "application/x\u{7}"), None),
            ("[".repeat(10_000), None),
            (
                format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200)),
                None,
            ),
        ];
        for (body, ct) in cases {
            let r = parse_any(body.as_bytes(), ct);
            assert!(r.is_err(), "{body:.200} accepted");
            assert_eq!(
                r.unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{body:.200}"
            );
        }
    }

    #[test]
    fn bounds() {
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(matches!(
            parse_any(&big, None).unwrap_err(),
            ManifestError::TooLarge { .. }
        ));
        let layer = format!(r#"{{"mediaType": "{OCI_LAYER_GZIP}", "size": 1, "digest": "{D2}"}}"#);
        let layers = vec![layer.as_str(); MAX_LAYERS + 1].join(",");
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","size":1,"digest":"{D1}"}},"layers":[{layers}]}}"#
        );
        assert!(matches!(
            parse_any(body.as_bytes(), None).unwrap_err(),
            ManifestError::TooMany { what: "layers", .. }
        ));
        let entry = format!(r#"{{"mediaType": "{OCI_MANIFEST}", "size": 1, "digest": "{D2}"}}"#);
        let entries = vec![entry.as_str(); MAX_INDEX_ENTRIES + 1].join(",");
        let body = format!(r#"{{"schemaVersion":2,"manifests":[{entries}]}}"#);
        assert!(matches!(
            parse_any(body.as_bytes(), None).unwrap_err(),
            ManifestError::TooMany { .. }
        ));
    }

    #[test]
    fn artifacts_are_not_images() {
        let artifact = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example+type",
              "config":{{"mediaType":"{OCI_EMPTY}","size":2,"digest":"{D1}"}},
              "layers":[{{"mediaType":"application/vnd.example.sbom","size":9,"digest":"{D2}"}}]}}"#
        );
        let doc = parse_any(artifact.as_bytes(), None).unwrap();
        let Document::Manifest(m) = doc else {
            unreachable!()
        };
        assert!(!m.is_image());
        let err = parse_manifest(artifact.as_bytes(), None).unwrap_err();
        assert!(matches!(err, ManifestError::NotAnImage { .. }), "{err}");
        assert!(matches!(
            parse_manifest(index(OCI_INDEX).as_bytes(), None).unwrap_err(),
            ManifestError::UnexpectedKind { .. }
        ));
    }

    #[test]
    fn never_panics_on_mutations() {
        // A cheap in-test fuzz: every truncation and single-byte flip of valid documents.
        let docs = [
            docker_manifest(),
            oci_manifest(true, OCI_LAYER_GZIP),
            index(OCI_INDEX),
        ];
        for doc in &docs {
            let b = doc.as_bytes();
            for cut in 0..b.len() {
                let _ = parse_any(&b[..cut], None);
            }
            for i in 0..b.len() {
                for flip in [0x01u8, 0x20, 0x80] {
                    let mut m = b.to_vec();
                    m[i] ^= flip;
                    let _ = parse_any(&m, Some(OCI_MANIFEST));
                }
            }
        }
    }
}
