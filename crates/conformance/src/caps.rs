//! Linux capability names and numbers (capabilities(7)).

/// Capability names indexed by their number, as the runtime spec spells them.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability name such as `CAP_KILL`.
pub fn number(name: &str) -> Option<u32> {
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i).ok())
}

/// The name of capability `number`.
pub fn name(number: u32) -> Option<&'static str> {
    NAMES.get(usize::try_from(number).ok()?).copied()
}

/// A bit mask from capability names; unknown names are returned as errors.
pub fn mask<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<u64, String> {
    let mut mask = 0u64;
    for n in names {
        let bit = number(n).ok_or_else(|| format!("unknown capability {n}"))?;
        mask |= 1u64 << bit;
    }
    Ok(mask)
}

/// The names of the bits set in `mask`, for messages.
pub fn names(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| name(bit).map_or_else(|| format!("cap{bit}"), str::to_string))
        .collect()
}

/// Every capability name this table knows.
pub fn all() -> &'static [&'static str] {
    &NAMES
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
        assert_eq!(mask(["CAP_KILL", "CAP_CHOWN"]).unwrap(), 0b100001);
        assert_eq!(names(0b100001), vec!["CAP_CHOWN", "CAP_KILL"]);
        assert!(mask(["CAP_NOPE"]).is_err());
    }
}
