//! Parsing of `/proc/<pid>/mountinfo` (see proc(5)).

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Root of the mount within its filesystem (field 4).
    pub root: String,
    /// Mount point relative to the process root (field 5).
    pub mount_point: String,
    /// Per-mount options such as `ro`, `nosuid` (field 6).
    pub mount_options: Vec<String>,
    /// Optional fields such as `shared:1`, `master:2`, `unbindable`.
    pub optional: Vec<String>,
    /// Filesystem type, e.g. `tmpfs`.
    pub fstype: String,
    /// Mount source, e.g. `proc`.
    pub source: String,
    /// Per-superblock options such as `mode=755`.
    pub super_options: Vec<String>,
}

/// The propagation type of a mount, from its optional fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `shared:N` (possibly also a slave).
    Shared,
    /// `master:N` without `shared:`.
    Slave,
    /// `unbindable`.
    Unbindable,
    /// No optional fields.
    Private,
}

impl MountInfo {
    /// The propagation type of this mount.
    pub fn propagation(&self) -> Propagation {
        let has = |prefix: &str| self.optional.iter().any(|o| o.starts_with(prefix));
        if has("shared:") {
            Propagation::Shared
        } else if has("master:") {
            Propagation::Slave
        } else if has("unbindable") {
            Propagation::Unbindable
        } else {
            Propagation::Private
        }
    }

    /// Whether the per-mount options contain `opt`.
    pub fn has_mount_option(&self, opt: &str) -> bool {
        self.mount_options.iter().any(|o| o == opt)
    }
}

/// Undoes the octal escapes (`\040` for space and so on) the kernel applies.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line; `None` when it is malformed.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut fields = left.split(' ');
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let _dev = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let mount_options = fields.next()?.split(',').map(str::to_string).collect();
    let optional = fields
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let mut right = right.splitn(3, ' ');
    let fstype = right.next()?.to_string();
    let source = unescape(right.next()?);
    let super_options = right
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    Some(MountInfo {
        root,
        mount_point,
        mount_options,
        optional,
        fstype,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo file, skipping malformed lines.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn read_self() -> std::io::Result<Vec<MountInfo>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mount visible at `mount_point`: the last (topmost) entry for it.
pub fn find<'a>(mounts: &'a [MountInfo], mount_point: &str) -> Option<&'a MountInfo> {
    let wanted = normalize(mount_point);
    mounts.iter().rev().find(|m| m.mount_point == wanted)
}

/// Removes trailing slashes and duplicate slashes from an absolute path.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
65 43 254:0 /tmp/b/rootfs / ro,relatime - ext4 /dev/vda rw,discard
67 65 0:41 / /dev rw,nosuid shared:7 - tmpfs tmpfs rw,size=65536k,mode=755
68 67 0:42 / /dev/pts rw,nosuid,noexec,relatime master:3 - devpts devpts rw,gid=5,mode=620,ptmxmode=666
70 65 0:43 / /with\\040space rw unbindable - tmpfs tmpfs rw
";

    #[test]
    fn parses_fields() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 4);
        let root = find(&mounts, "/").unwrap();
        assert!(root.has_mount_option("ro"));
        assert_eq!(root.propagation(), Propagation::Private);
        let dev = find(&mounts, "/dev/").unwrap();
        assert_eq!(dev.fstype, "tmpfs");
        assert_eq!(dev.propagation(), Propagation::Shared);
        assert!(dev.super_options.contains(&"mode=755".to_string()));
        let pts = find(&mounts, "/dev/pts").unwrap();
        assert_eq!(pts.propagation(), Propagation::Slave);
        let spaced = find(&mounts, "/with space").unwrap();
        assert_eq!(spaced.propagation(), Propagation::Unbindable);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("1 2 3 - x").is_none());
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\134b"), "a\\b");
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/a//b/"), "/a/b");
        assert_eq!(normalize("/"), "/");
    }
}
