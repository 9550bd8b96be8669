//! Container IDs and names: generation and validation.

use crate::error::{EngineError, Result};

/// A new random 64-hex-digit ID.
pub(crate) fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| EngineError::io("open", "/dev/urandom", e))?;
    std::io::Read::read_exact(&mut f, &mut buf)
        .map_err(|e| EngineError::io("read", "/dev/urandom", e))?;
    let mut s = String::with_capacity(64);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    // Docker never hands out an all-digit short ID (it would parse as a number).
    if s.get(..12)
        .is_some_and(|p| p.bytes().all(|c| c.is_ascii_digit()))
    {
        return new_id();
    }
    Ok(s)
}

/// Whether `s` is a full container ID.
pub(crate) fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a name given by a client (with or without the leading `/`) and returns it
/// with the slash.
pub(crate) fn validate(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && bare.len() <= 253;
    if !ok {
        return Err(EngineError::InvalidName(bare.to_owned()));
    }
    Ok(format!("/{bare}"))
}

const LEFT: &[&str] = &[
    "admiring", "agile", "amazing", "brave", "calm", "clever", "dazzling", "eager", "elated",
    "epic", "festive", "focused", "friendly", "gallant", "gifted", "happy", "hopeful", "jolly",
    "keen", "kind", "lucid", "modest", "nifty", "noble", "peaceful", "quirky", "relaxed", "serene",
    "sharp", "stoic", "sweet", "tender", "upbeat", "vibrant", "wizardly", "zealous",
];
const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "bell",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "galileo",
    "goldberg",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "mayer",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "sammet",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
    "yalow",
];

/// A generated name (`adjective_scientist`, with a digit suffix after collisions).
pub(crate) fn generate(id: &str, attempt: u32) -> String {
    let n = u64::from_str_radix(id.get(..12).unwrap_or("0"), 16).unwrap_or(0);
    let l = LEFT[usize::try_from(n % LEFT.len() as u64).unwrap_or(0)];
    let r = RIGHT[usize::try_from((n / 97) % RIGHT.len() as u64).unwrap_or(0)];
    if attempt == 0 {
        format!("/{l}_{r}")
    } else {
        format!("/{l}_{r}{attempt}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let id = new_id().unwrap();
        assert!(is_full_id(&id));
        assert_eq!(validate("web").unwrap(), "/web");
        assert_eq!(validate("/web.1_a-b").unwrap(), "/web.1_a-b");
        for bad in ["", "/", "-x", "a/b", "a b", "../x"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        assert!(generate(&id, 0).starts_with('/'));
        assert_ne!(generate(&id, 0), generate(&id, 1));
    }
}
