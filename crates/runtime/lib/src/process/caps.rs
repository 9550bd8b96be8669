//! Capability sets: OCI names to kernel numbers, and applying the five sets.

use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxCapabilities};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::error::{Error, Result};

/// Kernel capability numbers by OCI name (`CAP_*`), from <linux/capability.h>.
const NAMES: [(&str, u32); 41] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// The kernel number of an OCI capability name (`CAP_SYS_ADMIN`, case-insensitive, `CAP_`
/// optional).
pub(crate) fn number_of_name(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().find(|(n, _)| *n == full).map(|(_, v)| *v)
}

/// The kernel number of a capability.
pub(crate) fn number(cap: &Capability) -> Option<u32> {
    let json = serde_json::to_string(cap).ok()?;
    number_of_name(json.trim_matches('"'))
}

/// The bit set of a list of capabilities (unknown ones are ignored, as runc does).
pub(crate) fn bits(caps: Option<&HashSet<Capability>>) -> CapabilitySet {
    let mut set = CapabilitySet::empty();
    for c in caps.into_iter().flatten() {
        if let Some(n) = number(c) {
            set |= CapabilitySet::from_bits_retain(1u64 << n);
        }
    }
    set
}

/// Highest capability number the kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The five sets, resolved to bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sets {
    pub bounding: CapabilitySet,
    pub effective: CapabilitySet,
    pub permitted: CapabilitySet,
    pub inheritable: CapabilitySet,
    pub ambient: CapabilitySet,
}

impl Sets {
    pub(crate) fn from_spec(c: Option<&LinuxCapabilities>) -> Sets {
        let Some(c) = c else {
            let none = CapabilitySet::empty();
            return Sets {
                bounding: none,
                effective: none,
                permitted: none,
                inheritable: none,
                ambient: none,
            };
        };
        Sets {
            bounding: bits(c.bounding().as_ref()),
            effective: bits(c.effective().as_ref()),
            permitted: bits(c.permitted().as_ref()),
            inheritable: bits(c.inheritable().as_ref()),
            ambient: bits(c.ambient().as_ref()),
        }
    }
}

/// Drop every capability outside `bounding` from the bounding set.
pub(crate) fn apply_bounding(sets: &Sets, last: u32) -> Result<()> {
    for n in 0..=last.min(63) {
        let bit = CapabilitySet::from_bits_retain(1u64 << n);
        if !sets.bounding.contains(bit) {
            match rustix::thread::remove_capability_from_bounding_set(bit) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => {
                    return Err(Error::sys(
                        format!("drop capability {n} from the bounding set"),
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Make every permitted capability effective (the user switch cleared the effective set).
pub(crate) fn raise_permitted() -> Result<()> {
    let cur = rustix::thread::capabilities(None).map_err(|e| Error::sys("capget", e))?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: cur.permitted,
            permitted: cur.permitted,
            inheritable: cur.inheritable,
        },
    )
    .map_err(|e| Error::sys("capset", e))
}

/// Set effective, permitted and inheritable, then raise the ambient ones.
///
/// A process can never gain a capability its runtime does not hold (root here, for
/// instance, lacks CAP_SYS_RESOURCE): the requested sets are clamped to the permitted set
/// the runtime has, as `--privileged` on such a host expects.
pub(crate) fn apply_sets(sets: &Sets) -> Result<()> {
    let held = rustix::thread::capabilities(None)
        .map_err(|e| Error::sys("capget", e))?
        .permitted;
    let sets = Sets {
        bounding: sets.bounding,
        effective: sets.effective & held,
        permitted: sets.permitted & held,
        inheritable: sets.inheritable & held,
        ambient: sets.ambient & held,
    };
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: sets.effective,
            permitted: sets.permitted,
            inheritable: sets.inheritable,
        },
    )
    .map_err(|e| Error::sys("capset", e))?;
    // The kernel only raises an ambient capability that is permitted and inheritable;
    // configurations often list ambient ones without inheritable ones (runc's own `spec`
    // does), and runc and crun skip those. So do we.
    let raisable = sets.ambient & sets.permitted & sets.inheritable;
    for n in 0..64u32 {
        let bit = CapabilitySet::from_bits_retain(1u64 << n);
        if raisable.contains(bit) {
            rustix::thread::configure_capability_in_ambient_set(bit, true)
                .map_err(|e| Error::sys(format!("raise ambient capability {n}"), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(number(&Capability::SysAdmin), Some(21));
        assert_eq!(number(&Capability::NetRaw), Some(13));
        assert_eq!(number(&Capability::CheckpointRestore), Some(40));
        assert_eq!(number_of_name("net_admin"), Some(12));
        assert_eq!(number_of_name("CAP_NOPE"), None);
    }

    #[test]
    fn bitsets() {
        let set: HashSet<Capability> = [Capability::Chown, Capability::Kill].into_iter().collect();
        assert_eq!(bits(Some(&set)).bits(), 1 | (1 << 5));
        assert!(bits(None).is_empty());
    }
}
