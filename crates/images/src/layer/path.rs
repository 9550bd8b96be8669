//! Normalisation of entry names from a (hostile) tar stream.
//!
//! Rule: a leading `/` is dropped (absolute names are relative to the layer root, as
//! Docker does), empty and `.` components are dropped, and **any `..` component is
//! refused** — even one that would stay inside (`a/../b`): real layers never contain
//! them, and refusing is simpler to reason about than lexical cleaning next to symlinks.
//! NUL bytes are refused (they cannot name a file), and so is a component longer than
//! `NAME_MAX` (255 bytes). The result is a relative path of plain names joined by
//! single `/`; the empty path is the layer root.

/// Normalises a tar entry name or hard link target. See the module docs.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("name contains a `..` component"),
            c if c.len() > 255 => return Err("a name component is longer than 255 bytes"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// Splits a normalised non-empty path into its parent (maybe empty: the root) and its
/// last component.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (
            path.get(..i).unwrap_or_default(),
            path.get(i + 1..).unwrap_or_default(),
        ),
        None => (&[], path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert_eq!(normalize(b"/").unwrap(), b"");
        assert_eq!(normalize(b"...").unwrap(), b"...");
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"a/../b").is_err());
        assert!(normalize(b"a/..").is_err());
        assert!(normalize(b"a\0b").is_err());
        assert!(normalize(&[b'x'; 256]).is_err());
        assert!(normalize(&[b'x'; 255]).is_ok());
    }

    #[test]
    fn splits() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }
}
