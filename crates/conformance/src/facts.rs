//! What the driver tells the checker besides the spec.
//!
//! The driver writes two files into the container's rootfs, under
//! [`CHECKER_DIR`]: the exact `config.json` it handed to the runtime
//! ([`CONFIG_FILE`]) and a [`Facts`] document ([`FACTS_FILE`]) with things the
//! checker cannot learn from inside, such as the inode numbers of the host's
//! namespaces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Directory inside the container rootfs that holds the checker and its inputs.
pub const CHECKER_DIR: &str = "/berth-conformance";
/// Path of the checker binary inside the container.
pub const CHECKER_PATH: &str = "/berth-conformance/berth-checker";
/// Path of the spec copy inside the container.
pub const CONFIG_FILE: &str = "/berth-conformance/config.json";
/// Path of the facts file inside the container.
pub const FACTS_FILE: &str = "/berth-conformance/facts.json";

/// Host-side facts for the checker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// Namespace name as in `/proc/self/ns` (`net`, `pid`, ...) to the inode of the
    /// namespace the runtime itself runs in.
    pub host_namespaces: BTreeMap<String, u64>,
    /// Namespace name to the inode of the namespace at the spec's `path`, for the
    /// namespaces the container joins.
    pub joined_namespaces: BTreeMap<String, u64>,
    /// Number of file descriptors beyond 0, 1 and 2 the runtime was asked to pass
    /// (`--preserve-fds`).
    pub preserved_fds: u32,
    /// Whether AppArmor is enabled on the host.
    pub apparmor_enabled: bool,
    /// Whether SELinux is enabled on the host.
    pub selinux_enabled: bool,
    /// Whether the runtime's `/` mount is shared (has a peer group). When it
    /// is not, a `slave` rootfs has no master and the kernel leaves it private.
    pub host_root_shared: bool,
}

/// The namespace names under `/proc/<pid>/ns` the suite compares.
pub const NAMESPACES: [&str; 8] = ["pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "time"];

/// The inode number of the file at `path`, following symlinks (for a
/// `/proc/<pid>/ns/<name>` link: the namespace's inode).
pub fn inode_of(path: &str) -> Option<u64> {
    rustix::fs::stat(path).ok().map(|st| st.st_ino)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_camel_case() {
        let mut facts = Facts::default();
        facts.host_namespaces.insert("net".into(), 4026531840);
        let text = serde_json::to_string(&facts).unwrap();
        assert!(text.contains("hostNamespaces"));
        let back: Facts = serde_json::from_str(&text).unwrap();
        assert_eq!(back, facts);
    }
}
