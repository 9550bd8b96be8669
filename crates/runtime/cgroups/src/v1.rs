//! Writing OCI resources into cgroup v1 controller directories.
//!
//! Each function gets the container's directory in the hierarchy hosting the controller
//! and writes only what the spec sets. Zero means "unset" for numbers where the kernel
//! has no use for zero (runc's convention), and -1 means "unlimited".

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork};

use crate::error::{Error, Result};
use crate::fs;
use crate::values;

/// `memory.*`: limit, memory+swap, reservation, kernel TCP, swappiness, OOM killer.
///
/// `memory.memsw.limit_in_bytes` must never be below `memory.limit_in_bytes`, so when
/// both change, the order of the two writes depends on whether the limit grows.
pub(crate) fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    let limit = values::limit("memory.limit", m.limit().unwrap_or(0))?;
    let mut swap = values::limit("memory.swap", m.swap().unwrap_or(0))?;
    if m.check_before_update() == Some(true) && limit > 0 {
        values::check_before_update(dir, "memory.usage_in_bytes", limit)?;
    }
    if limit == -1 && swap == 0 {
        swap = -1;
    }
    if swap != 0 && !fs::exists(dir, MEMSW) {
        if swap != -1 {
            return Err(Error::FileUnavailable {
                resource: "memory.swap",
                file: MEMSW.to_owned(),
            });
        }
        // Unlimited swap is what a kernel without swap accounting does anyway.
        swap = 0;
    }
    if limit != 0 && swap != 0 {
        let current = fs::read_u64(dir, LIMIT)?.unwrap_or(u64::MAX);
        if swap == -1 || u64::try_from(swap).is_ok_and(|s| current < s) {
            fs::write(dir, MEMSW, &swap.to_string())?;
            fs::write(dir, LIMIT, &limit.to_string())?;
        } else {
            fs::write(dir, LIMIT, &limit.to_string())?;
            fs::write(dir, MEMSW, &swap.to_string())?;
        }
    } else if limit != 0 {
        fs::write(dir, LIMIT, &limit.to_string())?;
    } else if swap != 0 {
        fs::write(dir, MEMSW, &swap.to_string())?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        let r = values::limit("memory.reservation", r)?;
        fs::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(t) = m.kernel_tcp().filter(|t| *t != 0) {
        let t = values::limit("memory.kernelTCP", t)?;
        fs::optional_write(
            dir,
            "memory.kmem.tcp.limit_in_bytes",
            "memory.kernelTCP",
            &t.to_string(),
        )?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::InvalidResource {
                resource: "memory.swappiness",
                value: s.to_string(),
                reason: "must be between 0 and 100",
            });
        }
        fs::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        fs::write(dir, "memory.oom_control", "1")?;
    }
    // `kernel` is obsolete (kernel 5.4 ignores it; 6.x removed the file) and
    // `useHierarchy` is always on since 6.x; both are ignored as runc does.
    Ok(())
}

/// `cpu.*`: shares, CFS quota/period/burst, realtime runtime/period, idle.
pub(crate) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        fs::write(dir, "cpu.shares", &shares.to_string())?;
        // The kernel clamps out-of-range shares silently; say so instead.
        let got = fs::read(dir, "cpu.shares")?;
        if got.trim() != shares.to_string() {
            return Err(Error::ValueNotKept {
                path: dir.join("cpu.shares"),
                wanted: shares.to_string(),
                got: got.trim().to_owned(),
            });
        }
    }
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    if let Some(q) = quota {
        values::limit("cpu.quota", q)?;
    }
    if let Some(p) = period {
        // A new period may be refused next to the old quota (and vice versa): try the
        // other order on EINVAL.
        match fs::write(dir, "cpu.cfs_period_us", &p.to_string()) {
            Err(Error::WriteFile { source, .. })
                if quota.is_some()
                    && source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                if let Some(q) = quota {
                    fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                }
                fs::write(dir, "cpu.cfs_period_us", &p.to_string())?;
            }
            other => {
                other?;
                if let Some(q) = quota {
                    fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                }
            }
        }
    } else if let Some(q) = quota {
        fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst().filter(|b| *b != 0) {
        fs::optional_write(dir, "cpu.cfs_burst_us", "cpu.burst", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        fs::optional_write(
            dir,
            "cpu.rt_period_us",
            "cpu.realtimePeriod",
            &p.to_string(),
        )?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        fs::optional_write(
            dir,
            "cpu.rt_runtime_us",
            "cpu.realtimeRuntime",
            &r.to_string(),
        )?;
    }
    if let Some(i) = c.idle() {
        if i != 0 || fs::exists(dir, "cpu.idle") {
            fs::optional_write(dir, "cpu.idle", "cpu.idle", &i.to_string())?;
        }
    }
    Ok(())
}

/// `cpuset.cpus` and `cpuset.mems`.
pub(crate) fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.cpus", values::cpu_list("cpu.cpus", cpus)?)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.mems", values::cpu_list("cpu.mems", mems)?)?;
    }
    Ok(())
}

/// A v1 cpuset starts with empty `cpuset.cpus` and `cpuset.mems`, and no task can join
/// it until both are set: copy them from the parent into every directory from `top`
/// (the hierarchy's mount directory, left alone) down to `leaf`.
pub(crate) fn init_cpuset(top: &Path, leaf: &Path) -> Result<()> {
    let Ok(rest) = leaf.strip_prefix(top) else {
        return Ok(());
    };
    let mut parent = top.to_owned();
    for c in rest.components() {
        let dir = parent.join(c);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read(&dir, file)?;
            if mine.trim().is_empty() {
                let theirs = fs::read(&parent, file)?;
                let theirs = theirs.trim();
                if !theirs.is_empty() {
                    fs::write(&dir, file, theirs)?;
                }
            }
        }
        parent = dir;
    }
    Ok(())
}

/// `pids.max` (shared with v2: same file, same syntax). Zero or negative is unlimited.
pub(crate) fn pids_max(dir: &Path, limit: i64) -> Result<()> {
    let v = if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    };
    fs::write(dir, "pids.max", &v)
}

/// The first of `names` that exists in `dir`.
fn first_existing<'a>(dir: &Path, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| fs::exists(dir, n))
}

/// `blkio.*`: weights (CFQ's `blkio.weight`, else BFQ's `blkio.bfq.weight`) and throttles.
pub(crate) fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let weight_files = ["blkio.weight", "blkio.bfq.weight"];
    let device_files = ["blkio.weight_device", "blkio.bfq.weight_device"];
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let file = first_existing(dir, &weight_files).ok_or_else(|| Error::FileUnavailable {
            resource: "blockIO.weight",
            file: weight_files.join(" or "),
        })?;
        fs::write(dir, file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        fs::optional_write(
            dir,
            "blkio.leaf_weight",
            "blockIO.leafWeight",
            &w.to_string(),
        )?;
    }
    for wd in b.weight_device().iter().flatten() {
        let major = values::device_number("blockIO.weightDevice.major", wd.major())?;
        let minor = values::device_number("blockIO.weightDevice.minor", wd.minor())?;
        if let Some(w) = wd.weight() {
            let file =
                first_existing(dir, &device_files).ok_or_else(|| Error::FileUnavailable {
                    resource: "blockIO.weightDevice",
                    file: device_files.join(" or "),
                })?;
            fs::write(dir, file, &format!("{major}:{minor} {w}"))?;
        }
        if let Some(w) = wd.leaf_weight() {
            fs::optional_write(
                dir,
                "blkio.leaf_weight_device",
                "blockIO.weightDevice.leafWeight",
                &format!("{major}:{minor} {w}"),
            )?;
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (list, file) in throttles {
        for t in list.iter().flatten() {
            let major = values::device_number("blockIO.throttle.major", t.major())?;
            let minor = values::device_number("blockIO.throttle.minor", t.minor())?;
            fs::optional_write(
                dir,
                file,
                "blockIO.throttle",
                &format!("{major}:{minor} {}", t.rate()),
            )?;
        }
    }
    Ok(())
}

/// `hugetlb.<size>.limit_in_bytes`, and the reservation limit where the kernel has one.
pub(crate) fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let size = values::page_size(l.page_size())?;
        let v = values::limit("hugepageLimits.limit", l.limit())?.to_string();
        fs::optional_write(
            dir,
            &format!("hugetlb.{size}.limit_in_bytes"),
            "hugepageLimits",
            &v,
        )?;
        let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
        if fs::exists(dir, &rsvd) {
            fs::write(dir, &rsvd, &v)?;
        }
    }
    Ok(())
}

/// `net_cls.classid`.
pub(crate) fn net_cls(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id().filter(|c| *c != 0) {
        fs::write(dir, "net_cls.classid", &id.to_string())?;
    }
    Ok(())
}

/// `net_prio.ifpriomap`, one interface per write.
pub(crate) fn net_prio(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    for p in n.priorities().iter().flatten() {
        let line = format!("{} {}", values::ifname(p.name())?, p.priority());
        fs::write(dir, "net_prio.ifpriomap", &line)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
        LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, v) in files {
            std::fs::write(d.path().join(f), v).unwrap();
        }
        d
    }

    fn get(d: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(d.path().join(f)).unwrap()
    }

    const MEM_FILES: &[(&str, &str)] = &[
        ("memory.limit_in_bytes", "9223372036854771712"),
        ("memory.memsw.limit_in_bytes", "9223372036854771712"),
        ("memory.soft_limit_in_bytes", ""),
        ("memory.swappiness", "60"),
        ("memory.oom_control", ""),
        ("memory.usage_in_bytes", "1000"),
        ("memory.kmem.tcp.limit_in_bytes", ""),
    ];

    #[test]
    fn memory_values() {
        let d = fake(MEM_FILES);
        let m = LinuxMemoryBuilder::default()
            .limit(1 << 20)
            .swap(2 << 20)
            .reservation(1 << 19)
            .swappiness(10u64)
            .disable_oom_killer(true)
            .kernel_tcp(4096)
            .build()
            .unwrap();
        memory(d.path(), &m).unwrap();
        assert_eq!(get(&d, "memory.limit_in_bytes"), "1048576");
        assert_eq!(get(&d, "memory.memsw.limit_in_bytes"), "2097152");
        assert_eq!(get(&d, "memory.soft_limit_in_bytes"), "524288");
        assert_eq!(get(&d, "memory.swappiness"), "10");
        assert_eq!(get(&d, "memory.oom_control"), "1");
        assert_eq!(get(&d, "memory.kmem.tcp.limit_in_bytes"), "4096");
    }

    #[test]
    fn memory_unlimited_sets_swap_unlimited() {
        let d = fake(MEM_FILES);
        memory(
            d.path(),
            &LinuxMemoryBuilder::default().limit(-1).build().unwrap(),
        )
        .unwrap();
        assert_eq!(get(&d, "memory.limit_in_bytes"), "-1");
        assert_eq!(get(&d, "memory.memsw.limit_in_bytes"), "-1");
    }

    #[test]
    fn memory_errors() {
        let d = fake(MEM_FILES);
        let m = LinuxMemoryBuilder::default()
            .swappiness(101u64)
            .build()
            .unwrap();
        assert!(matches!(
            memory(d.path(), &m),
            Err(Error::InvalidResource { .. })
        ));
        let m = LinuxMemoryBuilder::default().limit(-5).build().unwrap();
        assert!(matches!(
            memory(d.path(), &m),
            Err(Error::InvalidResource { .. })
        ));
        let m = LinuxMemoryBuilder::default()
            .limit(500)
            .check_before_update(true)
            .build()
            .unwrap();
        assert!(matches!(
            memory(d.path(), &m),
            Err(Error::InvalidResource { .. })
        ));
        // No swap accounting: a finite swap limit cannot be honoured, unlimited can.
        let d = fake(&MEM_FILES[..1]);
        let m = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(200)
            .build()
            .unwrap();
        assert!(matches!(
            memory(d.path(), &m),
            Err(Error::FileUnavailable { .. })
        ));
        let m = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(-1)
            .build()
            .unwrap();
        memory(d.path(), &m).unwrap();
        assert_eq!(get(&d, "memory.limit_in_bytes"), "100");
    }

    #[test]
    fn cpu_values() {
        let d = fake(&[
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_burst_us", ""),
            ("cpu.rt_period_us", ""),
            ("cpu.rt_runtime_us", ""),
            ("cpu.idle", ""),
        ]);
        let c = LinuxCpuBuilder::default()
            .shares(512u64)
            .quota(50_000)
            .period(100_000u64)
            .burst(1000u64)
            .realtime_period(1_000_000u64)
            .realtime_runtime(10_000)
            .idle(1)
            .build()
            .unwrap();
        cpu(d.path(), &c).unwrap();
        assert_eq!(get(&d, "cpu.shares"), "512");
        assert_eq!(get(&d, "cpu.cfs_period_us"), "100000");
        assert_eq!(get(&d, "cpu.cfs_quota_us"), "50000");
        assert_eq!(get(&d, "cpu.cfs_burst_us"), "1000");
        assert_eq!(get(&d, "cpu.rt_period_us"), "1000000");
        assert_eq!(get(&d, "cpu.rt_runtime_us"), "10000");
        assert_eq!(get(&d, "cpu.idle"), "1");
    }

    #[test]
    fn cpu_missing_rt_is_reported() {
        let d = fake(&[("cpu.shares", "")]);
        let c = LinuxCpuBuilder::default()
            .realtime_runtime(10)
            .build()
            .unwrap();
        let e = cpu(d.path(), &c).unwrap_err();
        assert!(e.to_string().contains("cpu.rt_runtime_us"), "{e}");
    }

    #[test]
    fn cpuset_values_and_init() {
        let top = fake(&[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")]);
        let leaf = top.path().join("a/b");
        std::fs::create_dir_all(&leaf).unwrap();
        for d in [top.path().join("a"), leaf.clone()] {
            std::fs::write(d.join("cpuset.cpus"), "\n").unwrap();
            std::fs::write(d.join("cpuset.mems"), "\n").unwrap();
        }
        init_cpuset(top.path(), &leaf).unwrap();
        assert_eq!(
            std::fs::read_to_string(leaf.join("cpuset.cpus")).unwrap(),
            "0-3"
        );
        assert_eq!(
            std::fs::read_to_string(top.path().join("a/cpuset.mems")).unwrap(),
            "0"
        );
        let c = LinuxCpuBuilder::default()
            .cpus("1")
            .mems("0")
            .build()
            .unwrap();
        cpuset(&leaf, &c).unwrap();
        assert_eq!(
            std::fs::read_to_string(leaf.join("cpuset.cpus")).unwrap(),
            "1"
        );
        let c = LinuxCpuBuilder::default().cpus("1\n2").build().unwrap();
        assert!(cpuset(&leaf, &c).is_err());
    }

    #[test]
    fn pids_values() {
        let d = fake(&[("pids.max", "")]);
        pids_max(d.path(), 10).unwrap();
        assert_eq!(get(&d, "pids.max"), "10");
        pids_max(d.path(), -1).unwrap();
        assert_eq!(get(&d, "pids.max"), "max");
        pids_max(d.path(), 0).unwrap();
        assert_eq!(get(&d, "pids.max"), "max");
    }

    #[test]
    fn blkio_bfq_fallback_and_throttles() {
        let d = fake(&[
            ("blkio.bfq.weight", ""),
            ("blkio.bfq.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ]);
        let b = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(200u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(16)
                .rate(1_048_576u64)
                .build()
                .unwrap()])
            .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(0)
                .rate(100u64)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        blkio(d.path(), &b).unwrap();
        assert_eq!(get(&d, "blkio.bfq.weight"), "300");
        assert_eq!(get(&d, "blkio.bfq.weight_device"), "8:0 200");
        assert_eq!(get(&d, "blkio.throttle.read_bps_device"), "8:16 1048576");
        assert_eq!(get(&d, "blkio.throttle.write_iops_device"), "8:0 100");
    }

    #[test]
    fn blkio_without_weight_files() {
        let d = fake(&[]);
        let b = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .build()
            .unwrap();
        let e = blkio(d.path(), &b).unwrap_err();
        assert!(
            e.to_string().contains("blkio.weight or blkio.bfq.weight"),
            "{e}"
        );
        let b = LinuxBlockIoBuilder::default()
            .leaf_weight(300u16)
            .build()
            .unwrap();
        assert!(blkio(d.path(), &b)
            .unwrap_err()
            .to_string()
            .contains("blkio.leaf_weight"));
    }

    #[test]
    fn hugetlb_values() {
        let d = fake(&[
            ("hugetlb.2MB.limit_in_bytes", ""),
            ("hugetlb.2MB.rsvd.limit_in_bytes", ""),
        ]);
        let l = LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4 << 20)
            .build()
            .unwrap();
        hugetlb(d.path(), &[l]).unwrap();
        assert_eq!(get(&d, "hugetlb.2MB.limit_in_bytes"), "4194304");
        assert_eq!(get(&d, "hugetlb.2MB.rsvd.limit_in_bytes"), "4194304");
        let l = LinuxHugepageLimitBuilder::default()
            .page_size("1GB")
            .limit(0)
            .build()
            .unwrap();
        assert!(matches!(
            hugetlb(d.path(), &[l]),
            Err(Error::FileUnavailable { .. })
        ));
        let l = LinuxHugepageLimitBuilder::default()
            .page_size("../x")
            .limit(0)
            .build()
            .unwrap();
        assert!(matches!(
            hugetlb(d.path(), &[l]),
            Err(Error::InvalidResource { .. })
        ));
    }

    #[test]
    fn network_values() {
        use oci_spec::runtime::{LinuxInterfacePriorityBuilder, LinuxNetworkBuilder};
        let d = fake(&[("net_cls.classid", ""), ("net_prio.ifpriomap", "")]);
        let n = LinuxNetworkBuilder::default()
            .class_id(0x100001u32)
            .priorities(vec![LinuxInterfacePriorityBuilder::default()
                .name("eth0")
                .priority(5u32)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        net_cls(d.path(), &n).unwrap();
        net_prio(d.path(), &n).unwrap();
        assert_eq!(get(&d, "net_cls.classid"), "1048577");
        assert_eq!(get(&d, "net_prio.ifpriomap"), "eth0 5");
    }
}
