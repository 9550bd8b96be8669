//! Errors of loading, saving, importing and exporting archives.

use std::io;
use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

use crate::content::ContentError;
use crate::digest::Digest;
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::metadata::MetadataError;
use crate::reference::ReferenceError;

/// Why an archive could not be loaded, saved, imported or exported.
///
/// `file` fields name a member of the archive (`manifest.json`,
/// `blobs/sha256/…`) or, for errors of the content store, the blob being written.
/// Member names from an archive are shown lossily decoded and truncated to 256
/// characters.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive file or layout directory could not be opened or inspected.
    #[error("cannot open archive {path}: {source}")]
    Open {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading the archive failed.
    #[error("cannot read {file:?} from the archive: {source}")]
    Read {
        /// The member being read (empty: the tar headers).
        file: String,
        /// The cause.
        source: io::Error,
    },
    /// A tar header of the archive is malformed.
    #[error("malformed tar header at byte {offset} of the archive: {reason}")]
    TarHeader {
        /// Offset of the header.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The archive ends inside a header or a member's contents.
    #[error("archive truncated: {file:?} needs {needed} bytes, the archive has {len}")]
    Truncated {
        /// The member (or header) cut short.
        file: String,
        /// The end offset it needs.
        needed: u64,
        /// The archive's length.
        len: u64,
    },
    /// The archive exceeds one of the [`ArchiveLimits`](super::ArchiveLimits).
    #[error("{file:?}: {what} {value} exceeds the limit of {max}")]
    Limit {
        /// The member (or document) where the bound was crossed.
        file: String,
        /// Which bound.
        what: &'static str,
        /// The value found (at least).
        value: u64,
        /// The bound.
        max: u64,
    },
    /// The same member appears twice in the archive.
    #[error("archive member {file:?} appears more than once")]
    DuplicateEntry {
        /// The member.
        file: String,
    },
    /// A member name, or a path a document refers to, would leave the archive or is
    /// otherwise unusable.
    #[error("{file:?}: unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The document naming the path (or the member itself).
        file: String,
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A member a document refers to is not in the archive.
    #[error("{file:?} (referenced by {referenced_by:?}) is not in the archive")]
    Missing {
        /// The missing member.
        file: String,
        /// The document referring to it.
        referenced_by: String,
    },
    /// A member that must be a regular file is something else.
    #[error("{file:?} in the archive is not a regular file")]
    NotAFile {
        /// The member.
        file: String,
    },
    /// The archive is neither a docker-archive nor an OCI layout.
    #[error("not an image archive: none of manifest.json or repositories (docker-archive) or index.json (OCI layout) found")]
    UnknownFormat,
    /// `oci-layout` names a layout version Berth does not read.
    #[error("unsupported OCI layout version {version:?} (expected 1.x)")]
    LayoutVersion {
        /// The version found.
        version: String,
    },
    /// A JSON document of the archive is malformed.
    #[error("invalid {file:?}: {source}")]
    Json {
        /// The document.
        file: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A manifest, index or config of the archive is refused.
    #[error("invalid {file:?}: {source}")]
    Manifest {
        /// The document.
        file: String,
        /// Why it was refused.
        source: ManifestError,
    },
    /// A document's contents do not hash to the digest its descriptor gives.
    #[error("{file:?}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob.
        file: String,
        /// The digest the descriptor (or file name) gives.
        expected: Digest,
        /// The digest of the bytes in the archive.
        actual: Digest,
    },
    /// A blob's size differs from the size its descriptor gives.
    #[error("{file:?}: size mismatch: expected {expected} bytes, the archive has {actual}")]
    SizeMismatch {
        /// The blob.
        file: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A layer's uncompressed contents do not hash to the image config's diff ID.
    #[error(
        "layer {file:?}: diff ID mismatch: the image config says {expected}, the layer is {actual}"
    )]
    DiffIdMismatch {
        /// The layer member.
        file: String,
        /// The diff ID the config gives.
        expected: Digest,
        /// The sha256 of the uncompressed layer.
        actual: Digest,
    },
    /// The manifest and config disagree on the number of layers.
    #[error("{file:?} lists {layers} layers but its image config has {diff_ids} diff IDs")]
    LayerCount {
        /// The document listing the layers.
        file: String,
        /// Layers listed.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// Decompressing a layer failed.
    #[error("cannot decompress layer {file:?}: {source}")]
    Decompress {
        /// The layer.
        file: String,
        /// The cause.
        source: io::Error,
    },
    /// An image name in the archive (or given by the caller) is not a valid reference.
    #[error("invalid image name {name:?} in {file:?}: {source}")]
    InvalidName {
        /// The name.
        name: String,
        /// Where it came from.
        file: String,
        /// Why it was refused.
        source: ReferenceError,
    },
    /// A name the archive (or an import) gives is one Berth refuses to record.
    #[error("{file}: refusing the image name {name:?}: {reason}")]
    RefusedName {
        /// The name.
        name: String,
        /// Where it came from.
        file: String,
        /// Why.
        reason: &'static str,
    },
    /// Two images of the archive claim the same name.
    #[error("image name {name:?} is given to two different images in the archive")]
    NameConflict {
        /// The name.
        name: String,
    },
    /// The archive holds no image to load.
    #[error("the archive holds no image")]
    NoImages,
    /// Storing or reading a blob in the content store failed.
    #[error("content store: {file:?}: {source}")]
    Content {
        /// The archive member or blob concerned.
        file: String,
        /// The cause.
        source: ContentError,
    },
    /// Recording image names failed.
    #[error("cannot record image names: {0}")]
    Metadata(#[source] MetadataError),
    /// Writing the output archive or layout failed.
    #[error("cannot write {file:?}: {source}")]
    Write {
        /// The member or file being written.
        file: String,
        /// The cause.
        source: io::Error,
    },
    /// The output directory is not empty and not an OCI layout.
    #[error("{path} exists and is neither empty nor an OCI image layout")]
    NotALayout {
        /// The directory.
        path: PathBuf,
    },
    /// Two images to save would get the same `org.opencontainers.image.ref.name`.
    #[error("two images would be saved under the OCI reference name {ref_name:?}; save them with full names (RefName::FullName)")]
    RefNameConflict {
        /// The reference name.
        ref_name: String,
    },
    /// The input of `import` is not a tar stream.
    #[error("import input is not a tar archive: {reason}")]
    NotATar {
        /// What is wrong.
        reason: &'static str,
    },
    /// Creating or using the temporary file of `import` failed.
    #[error("import: cannot use temporary file in {path}: {source}")]
    TempFile {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Walking the exported tree failed.
    #[error("export: {0}")]
    Export(#[source] LayerError),
}

impl HasKind for ArchiveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Open { source, .. } => ErrorKind::from_io(source),
            ArchiveError::Read { source, .. } => match source.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::from_io(source),
            },
            // Everything a hostile or broken archive can cause is the caller's input.
            ArchiveError::TarHeader { .. }
            | ArchiveError::Truncated { .. }
            | ArchiveError::Limit { .. }
            | ArchiveError::DuplicateEntry { .. }
            | ArchiveError::UnsafePath { .. }
            | ArchiveError::Missing { .. }
            | ArchiveError::NotAFile { .. }
            | ArchiveError::UnknownFormat
            | ArchiveError::Json { .. }
            | ArchiveError::LayerCount { .. }
            | ArchiveError::Decompress { .. }
            | ArchiveError::InvalidName { .. }
            | ArchiveError::RefusedName { .. }
            | ArchiveError::NameConflict { .. }
            | ArchiveError::NoImages
            | ArchiveError::RefNameConflict { .. }
            | ArchiveError::NotATar { .. } => ErrorKind::InvalidArgument,
            ArchiveError::LayoutVersion { .. } => ErrorKind::NotImplemented,
            ArchiveError::Manifest { source, .. } => source.kind(),
            // Like the content store, a digest that does not match is a failed precondition.
            ArchiveError::DigestMismatch { .. }
            | ArchiveError::SizeMismatch { .. }
            | ArchiveError::DiffIdMismatch { .. } => ErrorKind::FailedPrecondition,
            ArchiveError::Content { source, .. } => source.kind(),
            ArchiveError::Metadata(e) => e.kind(),
            ArchiveError::Write { source, .. } | ArchiveError::TempFile { source, .. } => {
                ErrorKind::from_io(source)
            }
            ArchiveError::NotALayout { .. } => ErrorKind::Conflict,
            ArchiveError::Export(e) => e.kind(),
        }
    }
}

/// A member name for error messages: lossily decoded, at most 256 characters.
pub(crate) fn display_name(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    if s.chars().count() > 256 {
        let mut t: String = s.chars().take(256).collect();
        t.push('…');
        t
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let d = Digest::sha256_of(b"a");
        assert_eq!(
            ArchiveError::DiffIdMismatch {
                file: "x".into(),
                expected: d.clone(),
                actual: d
            }
            .kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(
            ArchiveError::UnsafePath {
                file: "manifest.json".into(),
                path: "../x".into(),
                reason: "r"
            }
            .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(display_name(&[b'a'; 300]).chars().count(), 257);
    }
}
