//! Image references (`busybox`, `localhost:5000/team/app:1.2`, `ghcr.io/x/y@sha256:…`),
//! parsed and normalised as docker does it.
//!
//! # Grammar
//!
//! The grammar is the one of the distribution project's reference package:
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path
//! domain         := host [ ":" port ]
//! host           := domain-name | "[" ipv6 "]"
//! domain-name    := component ( "." component )*      component: [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
//! path           := path-component ( "/" path-component )*
//! path-component := alnum ( separator alnum )*       alnum: [a-z0-9]+
//! separator      := "." | "_" | "__" | "-"+
//! tag            := [\w][\w.-]{0,127}
//! ```
//!
//! A name is at most 255 bytes (domain included). Berth is stricter than docker in two
//! places: a port must fit in 16 bits, and a digest must use an algorithm Berth accepts
//! (sha256 or sha512, see [`Digest`]).
//!
//! # Normalisation
//!
//! [`Reference::parse_normalized`] turns what a user types into the full form:
//!
//! 1. The first `/`-separated component is the **domain** when it contains `.` or `:`, is
//!    `localhost`, or contains an upper-case letter; otherwise the domain is `docker.io`.
//! 2. `index.docker.io` is spelled `docker.io`.
//! 3. On `docker.io`, a one-component path gets the `library/` prefix (official images).
//! 4. The path must be lower-case.
//! 5. A reference with neither tag nor digest gets the tag `latest`; a reference with a
//!    digest keeps its tag only if one was given (both are kept then).
//!
//! A bare 64-hex string is refused: it is an image ID, not a name.
//!
//! [`Reference::familiar`] gives docker's short form back for display
//! (`docker.io/library/busybox:latest` → `busybox:latest`).

use std::fmt;
use std::str::FromStr;

use berth_errdefs::{ErrorKind, HasKind};

use crate::digest::{Digest, DigestError};

/// The registry domain of Docker Hub, as references spell it.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy spelling of Docker Hub's domain, normalised to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The host Berth connects to for Docker Hub.
pub const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";
/// The path prefix of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag given to references that name neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest name (domain and path), in bytes.
pub const NAME_MAX_LEN: usize = 255;
/// Longest tag, in bytes.
pub const TAG_MAX_LEN: usize = 128;
/// Longest input accepted at all (name, tag and a sha512 digest with separators).
const INPUT_MAX_LEN: usize = NAME_MAX_LEN + 1 + TAG_MAX_LEN + 1 + 7 + 128;

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid reference format: empty reference")]
    Empty,
    /// The input is far longer than any valid reference.
    #[error("invalid reference format: reference is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The name (domain and path) is longer than 255 bytes.
    #[error(
        "invalid reference format: repository name {name:?} is longer than {NAME_MAX_LEN} bytes"
    )]
    NameTooLong {
        /// The name (truncated).
        name: String,
    },
    /// A 64-hex string was given where a name is expected.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    IdentifierAsName(String),
    /// The repository path has upper-case letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    UpperCase(String),
    /// The domain is not a valid host with optional port.
    #[error("invalid reference format: invalid registry domain {0:?}")]
    Domain(String),
    /// A path component breaks the grammar.
    #[error(
        "invalid reference format: invalid repository path component {component:?} in {input:?} \
         (lower-case letters and digits separated by '.', '_', '__' or dashes)"
    )]
    PathComponent {
        /// The offending component (truncated).
        component: String,
        /// The whole input (truncated).
        input: String,
    },
    /// The tag breaks the grammar or is too long.
    #[error("invalid reference format: invalid tag {0:?} (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')")]
    Tag(String),
    /// The digest after `@` is not a digest Berth accepts.
    #[error("invalid reference format: {0}")]
    Digest(#[from] DigestError),
}

impl HasKind for ReferenceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A normalised image reference: domain, repository path, and a tag and/or digest.
///
/// Always fully qualified (`docker.io/library/busybox:latest`); [`fmt::Display`] prints that
/// form and [`Reference::familiar`] the short one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses what a user types and normalises it (see the module documentation).
    ///
    /// ```
    /// use berth_images::reference::Reference;
    /// let r = Reference::parse_normalized("busybox").unwrap();
    /// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
    /// assert_eq!(r.familiar(), "busybox:latest");
    /// assert_eq!(r.registry_host(), "registry-1.docker.io");
    /// ```
    pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() > INPUT_MAX_LEN {
            return Err(ReferenceError::TooLong { max: INPUT_MAX_LEN });
        }
        if is_identifier(s) {
            return Err(ReferenceError::IdentifierAsName(s.to_owned()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to the domain.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (domain, path) = split_domain(name);
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UpperCase(truncate(&path)));
        }
        check_domain(domain)?;
        check_path(&path, s)?;
        if domain.len() + 1 + path.len() > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                name: truncate(&format!("{domain}/{path}")),
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain: domain.to_owned(),
            path,
            tag,
            digest,
        })
    }

    /// The registry domain as the reference names it (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path without the domain (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository name with its domain (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The host (with port) to connect to: `registry-1.docker.io` for Docker Hub, else
    /// the domain itself.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DEFAULT_REGISTRY_HOST
        } else {
            &self.domain
        }
    }

    /// The repository name in docker's short form (`busybox`, `user/app`,
    /// `localhost:5000/x`), as `docker images` shows it.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            let short = match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_owned(),
                _ => self.path.clone(),
            };
            // A short form whose first component reads as a domain (`docker.io/a.b/c`,
            // `docker.io/localhost/c`) would name another registry when typed back in
            // (docker shows it anyway): keep the full name then.
            let (domain, path) = split_domain(&short);
            if domain == DEFAULT_DOMAIN && path == self.path {
                short
            } else {
                self.name()
            }
        } else {
            self.name()
        }
    }

    /// The whole reference in docker's short form (`busybox:latest`,
    /// `localhost:5000/x:1@sha256:…`), for display.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The same repository with `tag` (the digest, if any, is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag)?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository with `digest` (the tag, if any, is kept).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository without tag, pinned to `digest` (`name@digest`), the form
    /// used to fetch exactly what a tag resolved to.
    pub fn pinned(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest if there is one,
    /// else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_normalized(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Reference::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Whether `s` is exactly 64 lower-case hex characters (an image ID).
fn is_identifier(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits `name` into domain and (normalised) path.
fn split_domain(name: &str) -> (&str, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path.to_owned()
    };
    (domain, path)
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= TAG_MAX_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::Tag(truncate(tag)))
    }
}

fn check_domain(domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Domain(truncate(domain));
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() {
            return Err(bad());
        }
    }
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    f.is_ascii_alphanumeric()
                        && l.is_ascii_alphanumeric()
                        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                }
                _ => false,
            }
        };
        if !host.split('.').all(component_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

fn check_path(path: &str, input: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(ReferenceError::PathComponent {
                component: truncate(component),
                input: truncate(input),
            });
        }
    }
    Ok(())
}

/// `alnum (separator alnum)*` with alnum `[a-z0-9]+` and separator `.`, `_`, `__` or `-+`.
fn path_component_ok(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if !(b.first().is_some_and(|x| alnum(*x)) && b.last().is_some_and(|x| alnum(*x))) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn full(s: &str) -> String {
        Reference::parse_normalized(s)
            .map_err(|e| format!("{s:?}: {e}"))
            .unwrap()
            .to_string()
    }

    #[test]
    fn normalises_like_docker() {
        let d = format!("sha256:{HEX}");
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest".to_owned()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".to_owned()),
            (
                "library/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            (
                "index.docker.io/user/app:v1",
                "docker.io/user/app:v1".to_owned(),
            ),
            ("user/app", "docker.io/user/app:latest".to_owned()),
            ("user/app/sub", "docker.io/user/app/sub:latest".to_owned()),
            ("localhost/app", "localhost/app:latest".to_owned()),
            ("localhost:5000/a/b", "localhost:5000/a/b:latest".to_owned()),
            (
                "localhost:5000/a/b:tag",
                "localhost:5000/a/b:tag".to_owned(),
            ),
            (
                &format!("localhost:5000/a/b@{d}"),
                format!("localhost:5000/a/b@{d}"),
            ),
            (
                &format!("busybox:1@{d}"),
                format!("docker.io/library/busybox:1@{d}"),
            ),
            (
                &format!("busybox@{d}"),
                format!("docker.io/library/busybox@{d}"),
            ),
            ("ghcr.io/o/r:1.0", "ghcr.io/o/r:1.0".to_owned()),
            (
                "quay.io/a_b/c__d/e-f/g---h/i.j",
                "quay.io/a_b/c__d/e-f/g---h/i.j:latest".to_owned(),
            ),
            ("example.com:443/x", "example.com:443/x:latest".to_owned()),
            ("[::1]:5000/x:y", "[::1]:5000/x:y".to_owned()),
            ("[fe80::1]/x", "[fe80::1]/x:latest".to_owned()),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest".to_owned()),
            ("Foo/bar", "Foo/bar:latest".to_owned()),
            ("my-registry.local/UPPERtag:V1_x.y-z", "".to_owned()),
            (
                "busybox:V_1.x-Y",
                "docker.io/library/busybox:V_1.x-Y".to_owned(),
            ),
            (
                &format!("sha256:{HEX}"),
                format!("docker.io/library/sha256:{HEX}"),
            ),
        ] {
            if want.is_empty() {
                assert!(Reference::parse_normalized(input).is_err(), "{input:?}");
            } else {
                assert_eq!(full(input), want, "{input:?}");
            }
        }
    }

    #[test]
    fn accessors_and_familiar() {
        let r = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference(), "latest");

        let r = Reference::parse_normalized("localhost:5000/x:1").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/x:1");
        assert_eq!(r.registry_host(), "localhost:5000");
        let r = Reference::parse_normalized("user/app").unwrap();
        assert_eq!(r.familiar(), "user/app:latest");
        let r = Reference::parse_normalized("docker.io/library/a/b").unwrap();
        assert_eq!(r.familiar_name(), "library/a/b");

        let d = Digest::sha256_of(b"x");
        let r = Reference::parse_normalized("busybox").unwrap();
        let pinned = r.with_digest(d.clone());
        assert_eq!(pinned.tag(), Some("latest"));
        assert_eq!(pinned.digest(), Some(&d));
        assert_eq!(pinned.manifest_reference(), d.to_string());
        assert_eq!(
            r.pinned(d.clone()).to_string(),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(r.with_tag("v2").unwrap().familiar(), "busybox:v2");
        assert!(r.with_tag("-bad").is_err());
        assert!(r.with_tag(&"a".repeat(129)).is_err());
        assert!(r.with_tag(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn round_trips() {
        for s in [
            "busybox",
            "localhost:5000/a/b:c",
            "[::1]:5000/x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "quay.io/x/y:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            let r = Reference::parse_normalized(s).unwrap();
            assert_eq!(Reference::parse_normalized(&r.to_string()).unwrap(), r);
            assert_eq!(Reference::parse_normalized(&r.familiar()).unwrap(), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
            assert_eq!(s.parse::<Reference>().unwrap(), r);
        }
    }

    #[test]
    fn refuses_hostile_and_malformed() {
        let long_component = "a".repeat(300);
        let long_name = format!("{}/{}", "a".repeat(200), "b".repeat(60));
        let huge = "a".repeat(100_000);
        let long_tag = format!("busybox:{}", "t".repeat(129));
        let bad_digest = format!("busybox@sha256:{}", &HEX[..63]);
        let md5 = "busybox@md5:d41d8cd98f00b204e9800998ecf8427e";
        for bad in [
            "",
            HEX,
            "BusyBox",
            "docker.io/Library/busybox",
            "localhost:5000/UP",
            "busybox:",
            ":tag",
            "@sha256:x",
            "busybox@",
            "busybox@sha256:",
            bad_digest.as_str(),
            md5,
            "a//b",
            "/a",
            "a/",
            "-a",
            "a-",
            "_a",
            "a.",
            "a..b",
            "a___b",
            "a_-b",
            "a.-b",
            "a/../b",
            "../etc/passwd",
            "a/./b",
            "busybox:-tag",
            "busybox:.tag",
            "busybox:ta/g",
            "busybox:tag:more",
            "busybox@sha256:abc@sha256:def",
            "a b",
            "busy\nbox",
            "busy\0box",
            "bücher",
            "localhost:99999/a",
            "localhost:/a",
            "localhost:5x/a",
            "-host.com/a",
            "host-.com/a",
            "host..com/a",
            "[::1/a",
            "[zz::1]:5000/a",
            "[::1]x/a",
            "ex_ample.com/a",
            long_component.as_str(),
            long_name.as_str(),
            huge.as_str(),
            long_tag.as_str(),
        ] {
            let r = Reference::parse_normalized(bad);
            assert!(r.is_err(), "{bad:?} accepted as {r:?}");
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn error_messages_say_why() {
        let e = Reference::parse_normalized(HEX).unwrap_err();
        assert!(e.to_string().contains("64-byte hexadecimal"), "{e}");
        let e = Reference::parse_normalized("Docker.io/Busybox").unwrap_err();
        assert!(e.to_string().contains("must be lowercase"), "{e}");
        let e = Reference::parse_normalized("busybox@md5:d41d8cd98f00b204e9800998ecf8427e")
            .unwrap_err();
        assert!(
            e.to_string().contains("unsupported digest algorithm"),
            "{e}"
        );
    }

    #[test]
    fn name_length_limit() {
        // docker.io/library/ + 237 = 255 bytes exactly.
        let ok = "a".repeat(255 - "docker.io/library/".len());
        assert!(Reference::parse_normalized(&ok).is_ok());
        let too_long = "a".repeat(256 - "docker.io/library/".len());
        assert!(matches!(
            Reference::parse_normalized(&too_long),
            Err(ReferenceError::NameTooLong { .. })
        ));
    }

    #[test]
    fn separators() {
        for ok in [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a--b",
            "a---b",
            "a.b_c__d-e",
        ] {
            assert!(path_component_ok(ok), "{ok}");
        }
        for bad in [
            "", ".", "a..b", "a___b", "a._b", "a-.b", "a_-b", "A", "a.B", "a+b",
        ] {
            assert!(!path_component_ok(bad), "{bad}");
        }
    }

    /// Found by the `reference` fuzz target: the familiar form of a Docker Hub
    /// repository whose first component looks like a domain must parse back to it.
    #[test]
    fn familiar_form_round_trips_when_path_looks_like_a_domain() {
        for input in [
            "index.docker.io/bndex.docker.io/usybox",
            "docker.io/a.b/c:1",
            "docker.io/localhost/c",
            "docker.io/index.docker.io/x",
            "busybox",
            "user/app:v1",
        ] {
            let r = Reference::parse_normalized(input).unwrap();
            let again = Reference::parse_normalized(&r.familiar()).unwrap();
            assert_eq!(again, r, "{input:?} -> {:?}", r.familiar());
        }
        let r = Reference::parse_normalized("docker.io/a.b/c").unwrap();
        assert_eq!(r.familiar(), "docker.io/a.b/c:latest");
        assert_eq!(
            Reference::parse_normalized("user/app").unwrap().familiar(),
            "user/app:latest"
        );
    }
}
