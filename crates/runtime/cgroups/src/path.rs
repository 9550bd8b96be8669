//! Turning OCI `linux.cgroupsPath` into a cgroup path in each hierarchy.
//!
//! The rules are runc's for its cgroupfs driver:
//!
//! * unset: `/berth-<container-id>` (one flat cgroup per container: no shared parent to
//!   create and remove around every container, nothing left once it is deleted);
//! * absolute (`/a/b`): that path from the root of every hierarchy;
//! * relative (`a/b`): that path below the caller's own cgroup in each hierarchy (which
//!   may differ per hierarchy).
//!
//! The result is a normalised absolute path: no empty or `.` components, and `..` is
//! refused outright (a spec must not name a cgroup outside the subtree it points into).
//! Control characters are refused too, and so is the hierarchy root itself: a container
//! never owns the root cgroup, and removing it on `delete` must be impossible.

use crate::error::{Error, Result};
use crate::fs::is_plain_name;

/// Longest accepted `cgroupsPath` (and container ID), in bytes; `PATH_MAX`.
const MAX_LEN: usize = 4096;

/// The normalised components of `path`.
fn components(path: &str) -> Result<Vec<&str>> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.len() > MAX_LEN {
        return Err(invalid("longer than 4096 bytes"));
    }
    if path.bytes().any(|b| b.is_ascii_control()) {
        return Err(invalid("contains a control character"));
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid("contains a '..' component")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The requested path: absolute paths as given, `None` as `/berth-<id>`, relative paths
/// still relative (returned without a leading `/`).
pub(crate) fn requested(cgroups_path: Option<&str>, container_id: &str) -> Result<String> {
    if !is_plain_name(container_id) || container_id.len() > 1024 {
        return Err(Error::InvalidPath {
            path: container_id.to_owned(),
            reason: "the container ID is not a plain file name",
        });
    }
    let raw = match cgroups_path {
        None => format!("/berth-{container_id}"),
        Some(p) => p.to_owned(),
    };
    let parts = components(&raw)?;
    if parts.is_empty() {
        return Err(Error::InvalidPath {
            path: raw,
            reason: "names the hierarchy root",
        });
    }
    let joined = parts.join("/");
    Ok(if raw.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Whether `requested` (from [`requested`]) is relative to the caller's cgroup.
pub(crate) fn is_relative(requested: &str) -> bool {
    !requested.starts_with('/')
}

/// The absolute cgroup path for `requested` in a hierarchy where the caller sits in
/// `caller`.
pub(crate) fn resolve(requested: &str, caller: &str) -> Result<String> {
    if !is_relative(requested) {
        return Ok(requested.to_owned());
    }
    let base = components(caller)?;
    let rel = components(requested)?;
    let all: Vec<&str> = base.into_iter().chain(rel).collect();
    Ok(format!("/{}", all.join("/")))
}

/// Check a stored absolute cgroup path (from a record).
pub(crate) fn check_absolute(path: &str) -> Result<()> {
    if !path.starts_with('/') {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "not absolute",
        });
    }
    if components(path)?.is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "names the hierarchy root",
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn default_path() {
        assert_eq!(requested(None, "abc").unwrap(), "/berth-abc");
        assert!(requested(None, "a/b").is_err());
        assert!(requested(None, "..").is_err());
        assert!(requested(None, "").is_err());
        assert!(requested(None, "a\nb").is_err());
    }

    #[test]
    fn absolute_and_relative() {
        assert_eq!(requested(Some("/a//b/./c/"), "x").unwrap(), "/a/b/c");
        assert_eq!(requested(Some("a/b"), "x").unwrap(), "a/b");
        assert_eq!(resolve("/a/b", "/ignored").unwrap(), "/a/b");
        assert_eq!(resolve("a/b", "/user/1").unwrap(), "/user/1/a/b");
        assert_eq!(resolve("a/b", "/").unwrap(), "/a/b");
    }

    #[test]
    fn refused() {
        for p in ["/", "", ".", "/a/../b", "../x", "a/..", "/a\n/b", "/a\0"] {
            assert!(requested(Some(p), "x").is_err(), "{p:?} accepted");
        }
        assert!(requested(Some(&"a".repeat(5000)), "x").is_err());
        assert!(check_absolute("relative").is_err());
        assert!(check_absolute("/").is_err());
        assert!(check_absolute("/a/../b").is_err());
        check_absolute("/a/b").unwrap();
    }

    #[test]
    fn systemd_style_is_literal_for_cgroupfs() {
        assert_eq!(
            requested(Some("system.slice:berth:abc"), "x").unwrap(),
            "system.slice:berth:abc"
        );
    }
}
