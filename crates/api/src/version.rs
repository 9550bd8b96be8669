//! API versions: what Berth reports, the oldest it serves, and the `/vX.Y` prefix.

/// The API version Berth reports (Docker 28.4 serves this one).
pub const CURRENT: &str = "1.51";
/// The oldest API version served (as dockerd's minimum).
pub const MINIMUM: &str = "1.24";

/// A parsed `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// Parses `1.51`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }

    /// [`CURRENT`].
    pub fn current() -> ApiVersion {
        ApiVersion::parse(CURRENT).unwrap_or(ApiVersion(1, 51))
    }

    /// [`MINIMUM`].
    pub fn minimum() -> ApiVersion {
        ApiVersion::parse(MINIMUM).unwrap_or(ApiVersion(1, 24))
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Splits `/v1.51/containers/json` into the version and `/containers/json`; a path
/// without a prefix is unversioned (the current version).
pub fn split_path(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let tail = &rest[end..];
            return (Some(v), if tail.is_empty() { "/" } else { tail });
        }
    }
    (None, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            split_path("/v1.51/containers/json"),
            (Some("1.51"), "/containers/json")
        );
        assert_eq!(split_path("/containers/json"), (None, "/containers/json"));
        assert_eq!(split_path("/version"), (None, "/version"));
        assert_eq!(split_path("/v1.24/_ping"), (Some("1.24"), "/_ping"));
        assert!(ApiVersion::parse("1.9") < ApiVersion::parse("1.24"));
    }
}
