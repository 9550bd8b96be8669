//! Member names of an archive, and the paths its documents refer to.
//!
//! Rule for every path from an archive (tar member names, `Config` and `Layers` in
//! `manifest.json`, symlink targets between members): a relative path of plain
//! components. Empty and `.` components are dropped. A `..` component is refused in
//! member names and document references; in a symlink target it goes up one
//! directory and is refused where it would leave the archive. A leading `/` is
//! refused in references and symlink targets (an absolute path names something
//! outside the archive); in member names it is dropped, as tar(1) does. NUL bytes,
//! components over 255 bytes and paths over the length limit are refused.

/// Longest component.
const NAME_MAX: usize = 255;

/// Normalises a path a document refers to (`manifest.json` `Layers`): relative,
/// no `..`. Returns the normalised path or why it was refused.
pub(crate) fn reference(raw: &str, max_len: usize) -> Result<String, &'static str> {
    if raw.starts_with('/') {
        return Err("absolute path");
    }
    normalize(raw, max_len)
}

/// Normalises a tar member name (a leading `/` is dropped).
pub(crate) fn member(raw: &str, max_len: usize) -> Result<String, &'static str> {
    normalize(raw.trim_start_matches('/'), max_len)
}

fn normalize(raw: &str, max_len: usize) -> Result<String, &'static str> {
    if raw.len() > max_len {
        return Err("path too long");
    }
    if raw.contains('\0') {
        return Err("path contains a NUL byte");
    }
    let mut out = String::with_capacity(raw.len());
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err("path contains a `..` component"),
            c if c.len() > NAME_MAX => return Err("a path component is longer than 255 bytes"),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        return Err("empty path");
    }
    Ok(out)
}

/// Resolves symlink `target`, found at member `link` (normalised), to a normalised
/// member path: relative to the link's directory, `..` going up, never above the
/// archive's root.
pub(crate) fn symlink_target(
    link: &str,
    target: &str,
    max_len: usize,
) -> Result<String, &'static str> {
    if target.starts_with('/') {
        return Err("symlink target is absolute");
    }
    if target.len() > max_len {
        return Err("symlink target too long");
    }
    if target.contains('\0') {
        return Err("symlink target contains a NUL byte");
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("symlink target leaves the archive");
                }
            }
            c if c.len() > NAME_MAX => return Err("a path component is longer than 255 bytes"),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err("symlink target is the archive root");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            reference("./a//b/layer.tar", 4096).unwrap(),
            "a/b/layer.tar"
        );
        assert!(reference("../../etc/passwd", 4096).is_err());
        assert!(reference("a/../b", 4096).is_err());
        assert!(reference("/etc/passwd", 4096).is_err());
        assert!(reference("", 4096).is_err());
        assert!(reference(".", 4096).is_err());
        assert!(reference("a\0b", 4096).is_err());
        assert!(reference(&"x".repeat(300), 4096).is_err());
        assert!(reference(&"x/".repeat(100), 50).is_err());
    }

    #[test]
    fn members() {
        assert_eq!(member("/manifest.json", 4096).unwrap(), "manifest.json");
        assert_eq!(member("./blobs/sha256/", 4096).unwrap(), "blobs/sha256");
        assert!(member("../x", 4096).is_err());
    }

    #[test]
    fn symlinks() {
        assert_eq!(
            symlink_target("a/layer.tar", "../b/layer.tar", 4096).unwrap(),
            "b/layer.tar"
        );
        assert_eq!(symlink_target("a/x", "y", 4096).unwrap(), "a/y");
        assert_eq!(symlink_target("x", "./y", 4096).unwrap(), "y");
        assert!(symlink_target("a/x", "../../y", 4096).is_err());
        assert!(symlink_target("a/x", "/etc/passwd", 4096).is_err());
        assert!(symlink_target("a/x", "..", 4096).is_err());
    }
}
