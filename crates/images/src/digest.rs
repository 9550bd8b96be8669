//! Content digests (`sha256:<hex>`, `sha512:<hex>`), as the OCI image-spec defines them.
//!
//! A [`Digest`] is always well-formed: a known algorithm and the right number of lower-case
//! hex characters. That makes it safe to use as a file name inside the content store
//! (no `/`, no `..`). Blobs are identified and verified by digest everywhere in Berth;
//! [`Verifier`] hashes bytes as they stream past so nothing is read twice.

use std::fmt;
use std::str::FromStr;

use berth_errdefs::{ErrorKind, HasKind};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm Berth accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm of every registry and image in practice.
    Sha256,
    /// SHA-512, accepted as the image-spec allows.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and store paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string has no `algorithm:` prefix.
    #[error("invalid digest {0:?}: expected \"algorithm:hex\"")]
    Malformed(String),
    /// The algorithm is not sha256 or sha512.
    #[error("unsupported digest algorithm {0:?} (Berth accepts sha256 and sha512)")]
    UnsupportedAlgorithm(String),
    /// The hex part has the wrong length or characters.
    #[error("invalid {algorithm} digest {value:?}: expected {len} lower-case hex characters")]
    BadHex {
        /// Algorithm named by the string.
        algorithm: &'static str,
        /// The whole string (truncated to 200 characters).
        value: String,
        /// Expected hex length.
        len: usize,
    },
}

impl HasKind for DigestError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A verified-well-formed content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let truncated = || s.chars().take(200).collect::<String>();
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(truncated()))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm(
                    other.chars().take(64).collect(),
                ))
            }
        };
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::BadHex {
                algorithm: algorithm.as_str(),
                value: truncated(),
                len: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        let mut v = Verifier::new(Algorithm::Sha256);
        v.update(data);
        v.finish()
    }

    /// The digest of `data` with `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut v = Verifier::new(algorithm);
        v.update(data);
        v.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lower-case hex encoding (safe as a file name).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first `n` hex characters (Docker's short IDs use 12).
    pub fn short(&self, n: usize) -> &str {
        &self.hex[..n.min(self.hex.len())]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hashes bytes as they stream past, and counts them.
#[derive(Clone)]
pub struct Verifier {
    state: HashState,
    len: u64,
}

#[derive(Clone)]
enum HashState {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("len", &self.len).finish()
    }
}

impl Verifier {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Verifier {
        let state = match algorithm {
            Algorithm::Sha256 => HashState::Sha256(Sha256::new()),
            Algorithm::Sha512 => HashState::Sha512(Sha512::new()),
        };
        Verifier { state, len: 0 }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len = self.len.saturating_add(data.len() as u64);
        match &mut self.state {
            HashState::Sha256(h) => h.update(data),
            HashState::Sha512(h) => h.update(data),
        }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self.state {
            HashState::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            HashState::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest {
            algorithm,
            hex: to_hex(&bytes),
        }
    }

    /// Whether everything fed hashes to `expected`.
    pub fn matches(self, expected: &Digest) -> bool {
        self.finish() == *expected
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashes_and_round_trips() {
        let d = Digest::sha256_of(b"");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::parse(EMPTY).unwrap(), d);
        assert_eq!(d.short(12), "e3b0c44298fc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(d512.hex().len(), 128);
        assert_eq!(Digest::parse(&d512.to_string()).unwrap(), d512);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "e3b0c44298fc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../etc/passwd",
            "sha256:e3b0",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn verifier_streams() {
        let mut v = Verifier::new(Algorithm::Sha256);
        v.update(b"hello ");
        v.update(b"world");
        assert_eq!(v.len(), 11);
        assert!(v.matches(&Digest::sha256_of(b"hello world")));
    }
}
