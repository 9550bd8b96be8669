//! Checks and conversions of OCI resource values shared by the v1 and v2 writers.
//!
//! Strings from the spec end up in control files; they are checked to be what the file
//! expects (a CPU list, a page size, an interface name) so that no newline, separator or
//! second value can ride along.

use std::path::Path;

use crate::error::{Error, Result};

/// Longest CPU or memory-node list accepted.
const MAX_LIST: usize = 4096;

fn invalid(resource: &'static str, value: impl ToString, reason: &'static str) -> Error {
    Error::InvalidResource {
        resource,
        value: value.to_string(),
        reason,
    }
}

/// A CPU or memory-node list such as `0-3,7`.
pub(crate) fn cpu_list<'a>(resource: &'static str, list: &'a str) -> Result<&'a str> {
    if list.len() > MAX_LIST {
        return Err(invalid(
            resource,
            &list[..64.min(list.len())],
            "longer than 4096 bytes",
        ));
    }
    if !list
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
    {
        return Err(invalid(
            resource,
            list,
            "only digits, ',' and '-' are allowed",
        ));
    }
    Ok(list)
}

/// A huge page size such as `2MB` or `1GB`, as used in `hugetlb.<size>.*` file names.
pub(crate) fn page_size(size: &str) -> Result<&str> {
    let ok = size.len() <= 16
        && size.ends_with('B')
        && size.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && {
            let body = &size[..size.len() - 1];
            let digits = body.trim_end_matches(['K', 'M', 'G', 'T', 'P', 'E']);
            body.len() - digits.len() <= 1 && digits.bytes().all(|b| b.is_ascii_digit())
        };
    if ok {
        Ok(size)
    } else {
        Err(invalid(
            "hugepageLimits.pageSize",
            size,
            "expected <digits><K|M|G|T|P|E>B",
        ))
    }
}

/// A device major or minor number from the spec.
pub(crate) fn device_number(resource: &'static str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| invalid(resource, n, "device numbers are between 0 and 2^32-1"))
}

/// A byte limit where -1 means unlimited and other negative values are meaningless.
pub(crate) fn limit(resource: &'static str, v: i64) -> Result<i64> {
    if v < -1 {
        return Err(invalid(resource, v, "must be -1 (unlimited) or positive"));
    }
    Ok(v)
}

/// A limit written the v2 way: `max` for -1.
pub(crate) fn v2_limit(v: i64) -> String {
    if v == -1 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

/// A network interface name for `net_prio.ifpriomap`.
pub(crate) fn ifname(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            "network.priorities.name",
            name,
            "not an interface name",
        ))
    }
}

/// An RDMA device name for `rdma.max`.
pub(crate) fn rdma_device(name: &str) -> Result<&str> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(name)
    } else {
        Err(invalid("rdma", name, "not an RDMA device name"))
    }
}

/// The `rdma.max` line for one device.
pub(crate) fn rdma_line(
    device: &str,
    handles: Option<u32>,
    objects: Option<u32>,
) -> Result<String> {
    let v = |n: Option<u32>| n.map_or_else(|| "max".to_owned(), |n| n.to_string());
    Ok(format!(
        "{} hca_handle={} hca_object={}",
        rdma_device(device)?,
        v(handles),
        v(objects)
    ))
}

/// cgroup v1 `cpu.shares` to v2 `cpu.weight`: the range 2..=262144 maps linearly onto
/// 1..=10000 (shares outside the range are clamped first).
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio weight (10..=1000) to `io.weight` (1..=10000), linearly.
pub(crate) fn blkio_to_io_weight(weight: u16) -> Result<u64> {
    if !(10..=1000).contains(&weight) {
        return Err(invalid(
            "blockIO.weight",
            weight,
            "must be between 10 and 1000",
        ));
    }
    Ok(1 + (u64::from(weight) - 10) * 9999 / 990)
}

/// OCI `memory.swap` (memory + swap) to v2 `memory.swap.max` (swap alone).
/// `None` leaves the file alone; `Some(-1)` is unlimited.
pub(crate) fn swap_to_v2(limit: i64, swap: i64) -> Result<Option<i64>> {
    // v1 compatibility: an unlimited memory limit without an explicit swap value means
    // unlimited swap too.
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some(-1)),
        s if s < -1 => Err(invalid(
            "memory.swap",
            s,
            "must be -1 (unlimited) or positive",
        )),
        s if limit <= 0 => Err(invalid(
            "memory.swap",
            s,
            "a swap limit needs a memory limit",
        )),
        s if s < limit => Err(invalid(
            "memory.swap",
            s,
            "memory+swap must not be below the memory limit",
        )),
        s => Ok(Some(s - limit)),
    }
}

/// Check that `limit` is not below the current usage read from `file` in `dir`
/// (`memory.checkBeforeUpdate`).
pub(crate) fn check_before_update(dir: &Path, file: &str, limit: i64) -> Result<()> {
    let Ok(wanted) = u64::try_from(limit) else {
        return Ok(());
    };
    if let Some(usage) = crate::fs::read_u64(dir, file)? {
        if wanted < usage {
            return Err(invalid(
                "memory.limit",
                limit,
                "below the cgroup's current memory usage",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn shares_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_to_io_weight(10).unwrap(), 1);
        assert_eq!(blkio_to_io_weight(500).unwrap(), 4950);
        assert_eq!(blkio_to_io_weight(1000).unwrap(), 10_000);
        assert!(blkio_to_io_weight(5).is_err());
        assert!(blkio_to_io_weight(1001).is_err());
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(100, 300).unwrap(), Some(200));
        assert_eq!(swap_to_v2(100, 100).unwrap(), Some(0));
        assert_eq!(swap_to_v2(100, -1).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(100, 0).unwrap(), None);
        assert_eq!(swap_to_v2(-1, 0).unwrap(), Some(-1));
        assert!(swap_to_v2(100, 50).is_err());
        assert!(swap_to_v2(0, 50).is_err());
        assert!(swap_to_v2(-1, 50).is_err());
    }

    #[test]
    fn strings() {
        cpu_list("cpu.cpus", "0-3,7").unwrap();
        assert!(cpu_list("cpu.cpus", "0\n1").is_err());
        assert!(cpu_list("cpu.cpus", "0 1").is_err());
        for ok in ["2MB", "1GB", "64KB", "16B"] {
            page_size(ok).unwrap();
        }
        for bad in ["2mb", "MB", "2MMB", "../2MB", "2MB\n", "2M", ""] {
            assert!(page_size(bad).is_err(), "{bad:?}");
        }
        ifname("eth0").unwrap();
        assert!(ifname("eth0 5\nlo").is_err());
        assert!(ifname("a/b").is_err());
        assert!(ifname("abcdefghijklmnop").is_err());
        assert_eq!(
            rdma_line("mlx4_0", Some(2), None).unwrap(),
            "mlx4_0 hca_handle=2 hca_object=max"
        );
        assert!(rdma_line("a b", None, None).is_err());
        assert!(device_number("x", -1).is_err());
        assert!(limit("x", -2).is_err());
        assert_eq!(v2_limit(-1), "max");
    }
}
