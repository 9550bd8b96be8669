//! Platforms (`linux/arm64/v8`) and choosing a manifest from an index.
//!
//! Names are normalised as containerd's platforms package does: `x86_64` → `amd64`,
//! `aarch64` → `arm64` (default variant `v8`), `armhf` → `arm/v7`, `armel` →
//! `arm/v6`, `arm` without variant → `arm/v7`, `i386` → `386`, `macos` → `darwin`.
//! Matching compares OS and architecture exactly, then the variant: amd64 variants
//! (`v1`…`v4`) are ignored (an entry without variant is preferred); an arm `vN`
//! machine also runs `v(N-1)` … `v5` images, preferring the highest; other
//! architectures need the same variant.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{truncate, Descriptor, DocumentKind, Index, ManifestError};

/// The annotation BuildKit puts on attestation manifests in an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// An OS, architecture and variant, as in an index entry or an image config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, …), GOARCH style.
    pub architecture: String,
    /// Operating system (`linux`, …), GOOS style.
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// CPU features (Docker manifest lists; unused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl Platform {
    /// A platform from its parts, normalised.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.map(str::to_owned),
            features: Vec::new(),
        }
        .normalized()
    }

    /// The platform Berth runs on (`linux/amd64` on x86-64, `linux/arm64/v8` on
    /// aarch64, …).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// Parses `os/arch[/variant]`, `os` or `arch` (the `--platform` flag), filling in the
    /// host's architecture or `linux` for a missing part.
    pub fn parse(s: &str) -> Result<Platform, ManifestError> {
        let bad = || ManifestError::InvalidPlatform(truncate(s));
        let part_ok = |p: &str| {
            p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 || !parts.iter().all(|p| part_ok(p)) {
            return Err(bad());
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let platform = match lower.as_slice() {
            [one] if is_known_os(one) => {
                let host = Platform::host();
                Platform::new(one, &host.architecture, host.variant.as_deref())
            }
            [one] => Platform::new("linux", one, None),
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(bad()),
        };
        Ok(platform)
    }

    /// The normalised form (see the module documentation).
    pub fn normalized(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let variant = variant.filter(|v| !v.is_empty());
        let (arch, variant) = match arch.as_str() {
            "i386" => ("386".to_owned(), None),
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_owned(), variant.filter(|v| v != "v1")),
            "aarch64" | "arm64" => {
                let v = match variant.as_deref() {
                    None | Some("8" | "v8" | "v8.0") => "v8".to_owned(),
                    Some(other) => other.to_owned(),
                };
                ("arm64".to_owned(), Some(v))
            }
            "armhf" => ("arm".to_owned(), Some("v7".to_owned())),
            "armel" => ("arm".to_owned(), Some("v6".to_owned())),
            "arm" => {
                let v = match variant.as_deref() {
                    None | Some("7") => "v7".to_owned(),
                    Some(n @ ("5" | "6" | "8")) => format!("v{n}"),
                    Some(other) => other.to_owned(),
                };
                ("arm".to_owned(), Some(v))
            }
            _ => (arch, variant),
        };
        Platform {
            architecture: arch,
            os,
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant,
            features: self.features.clone(),
        }
    }

    /// How well an image for `self` runs on `host`: `None` if it does not, else a rank
    /// (0 is best).
    pub fn compatibility(&self, host: &Platform) -> Option<u32> {
        let image = self.normalized();
        let host = host.normalized();
        if image.os != host.os || image.architecture != host.architecture {
            return None;
        }
        if image.architecture == "amd64" {
            return Some(u32::from(image.variant.is_some()));
        }
        if image.architecture == "arm" {
            let level = |v: &Option<String>| {
                v.as_deref()
                    .and_then(|v| v.strip_prefix('v'))
                    .and_then(|n| n.parse::<u32>().ok())
            };
            return match (level(&image.variant), level(&host.variant)) {
                (Some(i), Some(h)) if (5..=h).contains(&i) => Some(h - i),
                _ if image.variant == host.variant => Some(0),
                _ => None,
            };
        }
        match (&image.variant, &host.variant) {
            (a, b) if a == b => Some(0),
            // The image does not say: it may run.
            (None, Some(_)) => Some(1),
            _ => None,
        }
    }
}

fn is_known_os(s: &str) -> bool {
    matches!(
        s,
        "linux"
            | "windows"
            | "darwin"
            | "macos"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "illumos"
            | "solaris"
            | "android"
            | "ios"
            | "aix"
            | "plan9"
            | "js"
            | "wasip1"
    )
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Whether an index entry is an attestation or other non-runnable manifest.
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.contains_key(REFERENCE_TYPE_ANNOTATION)
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
}

/// Chooses the manifest of `index` that best runs on `wanted` (normally
/// [`Platform::host`]). An entry without platform matches anything, with the lowest
/// preference. With no match, the error (kind `NotFound`) lists the platforms the
/// index has.
pub fn select_manifest<'a>(
    index: &'a Index,
    wanted: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in &index.manifests {
        let runnable = matches!(
            DocumentKind::from_media_type(&d.media_type),
            Some(DocumentKind::OciManifest | DocumentKind::DockerManifest)
        );
        if !runnable || is_attestation(d) {
            continue;
        }
        let rank = match &d.platform {
            Some(p) => match p.compatibility(wanted) {
                Some(r) => r,
                None => continue,
            },
            None => u32::MAX,
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| {
        let mut available: Vec<String> = index
            .manifests
            .iter()
            .filter(|d| !is_attestation(d))
            .filter_map(|d| d.platform.as_ref().map(|p| p.normalized().to_string()))
            .collect();
        available.sort();
        available.dedup();
        ManifestError::NoMatchingPlatform {
            wanted: wanted.normalized().to_string(),
            available,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use berth_errdefs::{ErrorKind, HasKind};

    use super::super::media_type::{Format, OCI_MANIFEST};
    use super::*;
    use crate::digest::Digest;

    fn entry(n: u8, p: Option<Platform>) -> Descriptor {
        Descriptor {
            platform: p,
            ..Descriptor::new(OCI_MANIFEST, Digest::sha256_of(&[n]), 10)
        }
    }

    fn raw(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: arch.into(),
            os: os.into(),
            os_version: None,
            os_features: vec![],
            variant: variant.map(Into::into),
            features: vec![],
        }
    }

    #[test]
    fn normalises() {
        for (input, want) in [
            (raw("linux", "x86_64", None), "linux/amd64"),
            (raw("Linux", "AMD64", Some("v1")), "linux/amd64"),
            (raw("linux", "amd64", Some("v3")), "linux/amd64/v3"),
            (raw("linux", "aarch64", None), "linux/arm64/v8"),
            (raw("linux", "arm64", Some("8")), "linux/arm64/v8"),
            (raw("linux", "armhf", None), "linux/arm/v7"),
            (raw("linux", "armel", None), "linux/arm/v6"),
            (raw("linux", "arm", None), "linux/arm/v7"),
            (raw("linux", "arm", Some("6")), "linux/arm/v6"),
            (raw("linux", "i386", Some("x")), "linux/386"),
            (raw("macos", "arm64", None), "darwin/arm64/v8"),
            (raw("linux", "s390x", None), "linux/s390x"),
        ] {
            assert_eq!(input.normalized().to_string(), want);
        }
    }

    #[test]
    fn parses_flags() {
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("LINUX/AMD64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(Platform::parse("linux").unwrap(), Platform::host());
        for bad in [
            "",
            "/",
            "linux/",
            "a/b/c/d",
            "linux/amd 64",
            "linux/../x",
            &"a".repeat(65),
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn host_is_linux() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(h.compatibility(&h).is_some());
    }

    #[test]
    fn selects_best() {
        let idx = Index::new(
            Format::Oci,
            vec![
                entry(0, Some(raw("unknown", "unknown", None))),
                entry(1, Some(raw("linux", "amd64", Some("v3")))),
                entry(2, Some(raw("linux", "amd64", None))),
                entry(3, Some(raw("linux", "arm64", Some("v8")))),
                entry(4, Some(raw("linux", "arm", Some("v5")))),
                entry(5, Some(raw("linux", "arm", Some("v6")))),
                entry(6, Some(raw("windows", "amd64", None))),
            ],
        );
        let pick = |p: Platform| select_manifest(&idx, &p).map(|d| d.digest.clone());
        let id = |n: u8| Digest::sha256_of(&[n]);
        assert_eq!(pick(raw("linux", "amd64", None)).unwrap(), id(2));
        assert_eq!(pick(raw("linux", "x86_64", Some("v2"))).unwrap(), id(2));
        assert_eq!(pick(raw("linux", "aarch64", None)).unwrap(), id(3));
        assert_eq!(pick(raw("linux", "arm", Some("v7"))).unwrap(), id(5));
        assert_eq!(pick(raw("linux", "arm", Some("v6"))).unwrap(), id(5));
        assert_eq!(pick(raw("linux", "arm", Some("v5"))).unwrap(), id(4));
        assert_eq!(pick(raw("windows", "amd64", None)).unwrap(), id(6));
        let err = pick(raw("linux", "s390x", None)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(msg.contains("linux/s390x"), "{msg}");
        assert!(
            msg.contains("linux/arm64/v8") && msg.contains("windows/amd64"),
            "{msg}"
        );
        assert!(!msg.contains("unknown"), "{msg}");

        // Only v3 offered: amd64 variants are ignored.
        let only_v3 = Index::new(
            Format::Oci,
            vec![entry(1, Some(raw("linux", "amd64", Some("v3"))))],
        );
        assert!(select_manifest(&only_v3, &raw("linux", "amd64", None)).is_ok());
        // An arm v6 machine cannot run v7.
        let v7 = Index::new(Format::Oci, vec![entry(1, Some(raw("linux", "arm", None)))]);
        assert!(select_manifest(&v7, &raw("linux", "arm", Some("v6"))).is_err());
    }

    #[test]
    fn skips_attestations_and_nested_and_accepts_bare() {
        let mut att = entry(1, Some(raw("linux", "amd64", None)));
        att.annotations = BTreeMap::from([(
            REFERENCE_TYPE_ANNOTATION.to_owned(),
            "attestation-manifest".to_owned(),
        )]);
        let mut nested = entry(2, Some(raw("linux", "amd64", None)));
        nested.media_type = super::super::media_type::OCI_INDEX.into();
        let bare = entry(3, None);
        let idx = Index::new(Format::Oci, vec![att, nested, bare]);
        let d = select_manifest(&idx, &raw("linux", "amd64", None)).unwrap();
        assert_eq!(d.digest, Digest::sha256_of(&[3]));
    }
}
