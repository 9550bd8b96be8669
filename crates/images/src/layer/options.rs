//! What an applier is allowed to do and how much it may consume.

/// Bounds on one layer stream. Every one is checked before the work it bounds is done,
/// so a hostile layer is stopped before it costs more than the bound.
///
/// The defaults fit the largest real images (tens of GiB, a few hundred thousand files)
/// with room to spare, and stop endless or bomb-like streams. The `tar` crate itself
/// bounds nothing (it reads GNU long names and PAX headers of any declared size into
/// memory); Berth therefore parses the tar stream itself and applies these bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files, directories, links, whiteouts…) in one layer.
    pub max_entries: u64,
    /// Most bytes of file contents written to disk for one layer.
    pub max_bytes: u64,
    /// Most bytes of (decompressed) tar stream consumed: the guard against endless
    /// streams, counting headers, padding and everything skipped.
    pub max_input_bytes: u64,
    /// Longest entry name or link target, in bytes (Linux's `PATH_MAX` by default).
    pub max_path_len: usize,
    /// Largest PAX extended header, in bytes.
    pub max_pax_size: u64,
    /// Largest value of one extended attribute (Linux's `XATTR_SIZE_MAX` by default).
    pub max_xattr_size: usize,
    /// Most extended attributes on one entry.
    pub max_xattrs: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 1 << 21,
            max_bytes: 128 << 30,
            max_input_bytes: 256 << 30,
            max_path_len: 4096,
            max_pax_size: 1 << 20,
            max_xattr_size: 64 << 10,
            max_xattrs: 128,
        }
    }
}

/// What to do with character and block device entries (whiteouts are not devices here:
/// they are always created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceNodes {
    /// Create them (needs `CAP_MKNOD`: root outside a user namespace).
    Create,
    /// Leave them out silently (counted in [`ApplyStats::devices_skipped`](super::ApplyStats)),
    /// as rootless engines do.
    Skip,
    /// Fail the layer with [`LayerError::DeviceNotAllowed`](super::LayerError).
    Refuse,
}

/// One contiguous range of a user-namespace id mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id as the container (and the tar stream) sees it.
    pub container_id: u32,
    /// First id on the host (on disk).
    pub host_id: u32,
    /// Number of ids in the range.
    pub size: u32,
}

impl IdRange {
    fn host_of(self, id: u32) -> Option<u32> {
        let off = id.checked_sub(self.container_id)?;
        (off < self.size).then(|| self.host_id.checked_add(off))?
    }

    fn container_of(self, id: u32) -> Option<u32> {
        let off = id.checked_sub(self.host_id)?;
        (off < self.size).then(|| self.container_id.checked_add(off))?
    }
}

/// The id mapping of a user-namespaced store (`userns-remap`): ids in layer tars are the
/// container's, ids on disk are the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    /// User id ranges.
    pub uids: Vec<IdRange>,
    /// Group id ranges.
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// The common case: container ids `0..size` are host ids `host_uid..host_uid+size`
    /// (and likewise for groups).
    pub fn offset(host_uid: u32, host_gid: u32, size: u32) -> IdMap {
        IdMap {
            uids: vec![IdRange {
                container_id: 0,
                host_id: host_uid,
                size,
            }],
            gids: vec![IdRange {
                container_id: 0,
                host_id: host_gid,
                size,
            }],
        }
    }

    /// The host uid of container uid `id`, if mapped.
    pub fn uid_to_host(&self, id: u32) -> Option<u32> {
        self.uids.iter().find_map(|r| r.host_of(id))
    }

    /// The host gid of container gid `id`, if mapped.
    pub fn gid_to_host(&self, id: u32) -> Option<u32> {
        self.gids.iter().find_map(|r| r.host_of(id))
    }

    /// The container uid of host uid `id`, if mapped.
    pub fn uid_to_container(&self, id: u32) -> Option<u32> {
        self.uids.iter().find_map(|r| r.container_of(id))
    }

    /// The container gid of host gid `id`, if mapped.
    pub fn gid_to_container(&self, id: u32) -> Option<u32> {
        self.gids.iter().find_map(|r| r.container_of(id))
    }
}

/// Whether this process is root in the initial user namespace: the only place where
/// device nodes can be created and `trusted.*` attributes (overlay metadata) written.
/// Root inside a user namespace (rootless engines) is not.
pub(crate) fn privileged() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    // The initial namespace maps the whole id range onto itself.
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields == ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// How [`apply`](super::apply) writes a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Bounds on the stream.
    pub limits: Limits,
    /// Device node policy. Default: [`DeviceNodes::Create`] as root of the initial user
    /// namespace, else [`DeviceNodes::Skip`].
    pub devices: DeviceNodes,
    /// Set owners from the tar headers (`lchown`). Default: true as root. When false,
    /// everything is owned by the calling user.
    pub chown: bool,
    /// Map tar ids to host ids (user-namespaced store). `None`: ids are used as they are.
    pub id_map: Option<IdMap>,
    /// Write overlay attributes in the `user.overlay.` namespace (overlayfs' `userxattr`
    /// option, for rootless stores) instead of `trusted.overlay.`. Default: true unless
    /// root of the initial user namespace.
    pub userxattr: bool,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        let privileged = privileged();
        ApplyOptions {
            limits: Limits::default(),
            devices: if privileged {
                DeviceNodes::Create
            } else {
                DeviceNodes::Skip
            },
            chown: rustix::process::geteuid().is_root(),
            id_map: None,
            userxattr: !privileged,
        }
    }
}

/// How [`diff`](super::diff) reads an upper directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Map host ids on disk back to container ids in the tar (user-namespaced store).
    /// An unmapped id is an error.
    pub id_map: Option<IdMap>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn id_map_round_trips_and_bounds() {
        let m = IdMap::offset(100_000, 200_000, 65_536);
        assert_eq!(m.uid_to_host(0), Some(100_000));
        assert_eq!(m.gid_to_host(65_535), Some(265_535));
        assert_eq!(m.uid_to_host(65_536), None);
        assert_eq!(m.uid_to_container(100_001), Some(1));
        assert_eq!(m.uid_to_container(99_999), None);
        let wrap = IdMap::offset(u32::MAX - 1, 0, 10);
        assert_eq!(wrap.uid_to_host(5), None);
    }
}
