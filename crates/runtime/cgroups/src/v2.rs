//! Writing OCI resources into a cgroup v2 directory, and preparing the v2 tree.
//!
//! In v2 a controller's files appear in a cgroup only when the parent lists the
//! controller in `cgroup.subtree_control`; [`enable_controllers`] does that for every
//! ancestor when the cgroup is created, and each writer first checks the cgroup's own
//! `cgroup.controllers` ([`require`]) so that a missing controller is reported as such
//! instead of as a missing file.
//!
//! Values differ from v1 in a few places, converted as runc and crun do: `cpu.shares` →
//! `cpu.weight`, blkio weight → `io.weight`, memory+swap → swap alone, and -1 → `max`.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

use crate::error::{Error, Result};
use crate::fs;
use crate::values;

/// The controllers enabled for the cgroup at `dir` (its `cgroup.controllers`).
pub(crate) fn controllers(dir: &Path) -> Result<Vec<String>> {
    Ok(fs::read_optional(dir, "cgroup.controllers")?
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Fail with [`Error::ControllerUnavailable`] unless `controller` is enabled at `dir`.
pub(crate) fn require(dir: &Path, controller: &'static str, resource: &'static str) -> Result<()> {
    if controllers(dir)?.iter().any(|c| c == controller) {
        return Ok(());
    }
    Err(Error::ControllerUnavailable {
        controller,
        resource,
        where_: format!(" in {}", dir.display()),
    })
}

/// Enable, in each directory of `ancestors` (top first), every controller of `wanted` that
/// the directory has and does not hand down yet.
///
/// Best effort: a cgroup that holds processes itself cannot enable domain controllers
/// for its children (EBUSY, the "no internal processes" rule), which happens with paths
/// relative to the caller's cgroup. A controller left disabled surfaces later as
/// [`Error::ControllerUnavailable`] if a resource needs it.
pub(crate) fn enable_controllers(
    ancestors: &[std::path::PathBuf],
    wanted: &[String],
) -> Result<()> {
    for dir in ancestors {
        let available = controllers(dir)?;
        let enabled: Vec<String> = fs::read_optional(dir, "cgroup.subtree_control")?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|c| available.contains(c) && !enabled.contains(c))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let all = missing
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if fs::write(dir, "cgroup.subtree_control", &all).is_err() {
            for c in missing {
                // Deliberately ignored, see above.
                let _ = fs::write(dir, "cgroup.subtree_control", &format!("+{c}"));
            }
        }
    }
    Ok(())
}

/// `memory.max`, `memory.swap.max`, `memory.low`.
pub(crate) fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = values::limit("memory.limit", m.limit().unwrap_or(0))?;
    let swap = values::swap_to_v2(limit, m.swap().unwrap_or(0))?;
    let reservation = m.reservation().filter(|r| *r != 0);
    if m.swappiness().is_some() {
        return Err(Error::Unsupported {
            resource: "memory.swappiness",
            version: "v2",
        });
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(Error::Unsupported {
            resource: "memory.disableOOMKiller",
            version: "v2",
        });
    }
    if m.kernel_tcp().is_some_and(|t| t != 0) {
        return Err(Error::Unsupported {
            resource: "memory.kernelTCP",
            version: "v2",
        });
    }
    if limit == 0 && swap.is_none() && reservation.is_none() {
        return Ok(());
    }
    require(dir, "memory", "memory")?;
    if m.check_before_update() == Some(true) && limit > 0 {
        values::check_before_update(dir, "memory.current", limit)?;
    }
    if let Some(s) = swap {
        if fs::exists(dir, "memory.swap.max") {
            fs::write(dir, "memory.swap.max", &values::v2_limit(s))?;
        } else if s != -1 {
            return Err(Error::FileUnavailable {
                resource: "memory.swap",
                file: "memory.swap.max".into(),
            });
        }
    }
    if limit != 0 {
        fs::write(dir, "memory.max", &values::v2_limit(limit))?;
    }
    if let Some(r) = reservation {
        let r = values::limit("memory.reservation", r)?;
        fs::write(dir, "memory.low", &values::v2_limit(r))?;
    }
    Ok(())
}

/// `cpu.weight`, `cpu.max`, `cpu.max.burst`, `cpu.idle`.
pub(crate) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(Error::Unsupported {
            resource: "cpu.realtimeRuntime/realtimePeriod",
            version: "v2",
        });
    }
    let shares = c.shares().filter(|s| *s != 0);
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    let burst = c.burst();
    let idle = c.idle();
    if shares.is_none() && quota.is_none() && period.is_none() && burst.is_none() && idle.is_none()
    {
        return Ok(());
    }
    require(dir, "cpu", "cpu")?;
    if let Some(s) = shares {
        fs::write(dir, "cpu.weight", &values::shares_to_weight(s).to_string())?;
    }
    if quota.is_some() || period.is_some() {
        let q = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(q) => {
                values::limit("cpu.quota", q)?;
                "max".to_owned()
            }
            // Keep the current quota when only the period changes.
            None => fs::read(dir, "cpu.max")?
                .split_whitespace()
                .next()
                .unwrap_or("max")
                .to_owned(),
        };
        let value = match period {
            Some(p) => format!("{q} {p}"),
            None => q,
        };
        fs::write(dir, "cpu.max", &value)?;
    }
    if let Some(b) = burst {
        if b != 0 || fs::exists(dir, "cpu.max.burst") {
            fs::optional_write(dir, "cpu.max.burst", "cpu.burst", &b.to_string())?;
        }
    }
    if let Some(i) = idle {
        if i != 0 || fs::exists(dir, "cpu.idle") {
            fs::optional_write(dir, "cpu.idle", "cpu.idle", &i.to_string())?;
        }
    }
    Ok(())
}

/// `cpuset.cpus`, `cpuset.mems`.
pub(crate) fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = c.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_none() && mems.is_none() {
        return Ok(());
    }
    require(dir, "cpuset", "cpu.cpus/cpu.mems")?;
    if let Some(cpus) = cpus {
        fs::write(dir, "cpuset.cpus", values::cpu_list("cpu.cpus", cpus)?)?;
    }
    if let Some(mems) = mems {
        fs::write(dir, "cpuset.mems", values::cpu_list("cpu.mems", mems)?)?;
    }
    Ok(())
}

/// `pids.max`.
pub(crate) fn pids(dir: &Path, limit: i64) -> Result<()> {
    require(dir, "pids", "pids.limit")?;
    crate::v1::pids_max(dir, limit)
}

/// `io.weight` (or BFQ's `io.bfq.weight`, which takes blkio weights as they are) and
/// `io.max`.
pub(crate) fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(Error::Unsupported {
            resource: "blockIO.leafWeight",
            version: "v2",
        });
    }
    let weight = b.weight().filter(|w| *w != 0);
    let devices: Vec<_> = b
        .weight_device()
        .iter()
        .flatten()
        .filter(|d| d.weight().is_some())
        .collect();
    let throttles = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    let any_throttle = throttles
        .iter()
        .any(|(l, _)| l.as_ref().is_some_and(|l| !l.is_empty()));
    if weight.is_none() && devices.is_empty() && !any_throttle {
        return Ok(());
    }
    require(dir, "io", "blockIO")?;
    let bfq = fs::exists(dir, "io.bfq.weight");
    if (weight.is_some() || !devices.is_empty()) && !bfq && !fs::exists(dir, "io.weight") {
        return Err(Error::FileUnavailable {
            resource: "blockIO.weight",
            file: "io.weight or io.bfq.weight".into(),
        });
    }
    if let Some(w) = weight {
        if bfq {
            fs::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            fs::write(
                dir,
                "io.weight",
                &values::blkio_to_io_weight(w)?.to_string(),
            )?;
        }
    }
    for d in devices {
        let major = values::device_number("blockIO.weightDevice.major", d.major())?;
        let minor = values::device_number("blockIO.weightDevice.minor", d.minor())?;
        let Some(w) = d.weight() else { continue };
        if bfq {
            fs::write(dir, "io.bfq.weight", &format!("{major}:{minor} {w}"))?;
        } else {
            fs::write(
                dir,
                "io.weight",
                &format!("{major}:{minor} {}", values::blkio_to_io_weight(w)?),
            )?;
        }
    }
    for (list, key) in throttles {
        for t in list.iter().flatten() {
            let major = values::device_number("blockIO.throttle.major", t.major())?;
            let minor = values::device_number("blockIO.throttle.minor", t.minor())?;
            // In io.max, 0 would be a real (impossible) limit; v1 used 0 for "none".
            let rate = if t.rate() == 0 {
                "max".to_owned()
            } else {
                t.rate().to_string()
            };
            fs::optional_write(
                dir,
                "io.max",
                "blockIO.throttle",
                &format!("{major}:{minor} {key}={rate}"),
            )?;
        }
    }
    Ok(())
}

/// `hugetlb.<size>.max`, and `hugetlb.<size>.rsvd.max` where the kernel has it.
pub(crate) fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    require(dir, "hugetlb", "hugepageLimits")?;
    for l in limits {
        let size = values::page_size(l.page_size())?;
        let v = values::v2_limit(values::limit("hugepageLimits.limit", l.limit())?);
        fs::optional_write(dir, &format!("hugetlb.{size}.max"), "hugepageLimits", &v)?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if fs::exists(dir, &rsvd) {
            fs::write(dir, &rsvd, &v)?;
        }
    }
    Ok(())
}

/// The `cgroup.*` files a spec may set through `unified`; the others (`cgroup.procs`,
/// `cgroup.subtree_control`, `cgroup.kill`, `cgroup.freeze`, `cgroup.type`...) are the
/// runtime's to manage.
const UNIFIED_CORE_KEYS: &[&str] = &["cgroup.max.depth", "cgroup.max.descendants"];

/// Check a `unified` key: a plain `controller.file` name whose controller is enabled.
pub(crate) fn check_unified_key(dir: &Path, key: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidResource {
        resource: "unified",
        value: key.to_owned(),
        reason,
    };
    if !fs::is_plain_name(key) || key.contains("..") || key.starts_with('.') || key.len() > 255 {
        return Err(invalid("must be a file name of the cgroup directory"));
    }
    let Some((controller, _)) = key.split_once('.') else {
        return Err(invalid("must be <controller>.<file>"));
    };
    if controller == "cgroup" {
        if UNIFIED_CORE_KEYS.contains(&key) {
            return Ok(());
        }
        return Err(invalid("this cgroup core file is managed by the runtime"));
    }
    // Files of controllers that are always on (cpu.stat, memory.pressure...) exist
    // without the controller, but only read-only ones; every writable controller file
    // needs the controller enabled.
    if !controllers(dir)?.iter().any(|c| c == controller) {
        return Err(Error::ControllerUnavailable {
            controller: "(unified key)",
            resource: "unified",
            where_: format!(": {controller:?} is not enabled in {}", dir.display()),
        });
    }
    Ok(())
}

/// Write the `unified` map verbatim, after checking every key.
pub(crate) fn unified(dir: &Path, map: &std::collections::HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in &keys {
        check_unified_key(dir, key)?;
    }
    for key in keys {
        let value = map.get(key).map(String::as_str).unwrap_or_default();
        if value.len() > 64 * 1024 {
            return Err(Error::InvalidResource {
                resource: "unified",
                value: key.clone(),
                reason: "value longer than 64 KiB",
            });
        }
        fs::write(dir, key, value)?;
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

    fn fake(controllers: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.controllers"), controllers).unwrap();
        for (f, v) in files {
            std::fs::write(d.path().join(f), v).unwrap();
        }
        d
    }

    fn get(d: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(d.path().join(f)).unwrap()
    }

    #[test]
    fn memory_values_and_swap_conversion() {
        let d = fake(
            "memory\n",
            &[
                ("memory.max", ""),
                ("memory.swap.max", ""),
                ("memory.low", ""),
            ],
        );
        let m = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(300)
            .reservation(50)
            .build()
            .unwrap();
        memory(d.path(), &m).unwrap();
        assert_eq!(get(&d, "memory.max"), "100");
        assert_eq!(get(&d, "memory.swap.max"), "200");
        assert_eq!(get(&d, "memory.low"), "50");
        memory(
            d.path(),
            &LinuxMemoryBuilder::default().limit(-1).build().unwrap(),
        )
        .unwrap();
        assert_eq!(get(&d, "memory.max"), "max");
        assert_eq!(get(&d, "memory.swap.max"), "max");
        let m = LinuxMemoryBuilder::default()
            .swappiness(10u64)
            .build()
            .unwrap();
        assert!(matches!(
            memory(d.path(), &m),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn memory_without_controller() {
        let d = fake("cpu\n", &[("memory.max", "")]);
        let m = LinuxMemoryBuilder::default().limit(100).build().unwrap();
        let e = memory(d.path(), &m).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ControllerUnavailable {
                    controller: "memory",
                    ..
                }
            ),
            "{e}"
        );
        // Nothing requested: no error even without the controller.
        memory(d.path(), &LinuxMemoryBuilder::default().build().unwrap()).unwrap();
    }

    #[test]
    fn cpu_values() {
        let d = fake(
            "cpu cpuset\n",
            &[
                ("cpu.weight", ""),
                ("cpu.max", "max 100000\n"),
                ("cpu.idle", ""),
                ("cpu.max.burst", ""),
            ],
        );
        let c = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(50_000)
            .period(200_000u64)
            .idle(1)
            .burst(10u64)
            .build()
            .unwrap();
        cpu(d.path(), &c).unwrap();
        assert_eq!(get(&d, "cpu.weight"), "39");
        assert_eq!(get(&d, "cpu.max"), "50000 200000");
        assert_eq!(get(&d, "cpu.idle"), "1");
        assert_eq!(get(&d, "cpu.max.burst"), "10");
        cpu(
            d.path(),
            &LinuxCpuBuilder::default().quota(-1).build().unwrap(),
        )
        .unwrap();
        assert_eq!(get(&d, "cpu.max"), "max");
        std::fs::write(d.path().join("cpu.max"), "30000 100000\n").unwrap();
        cpu(
            d.path(),
            &LinuxCpuBuilder::default()
                .period(50_000u64)
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(get(&d, "cpu.max"), "30000 50000");
        let rt = LinuxCpuBuilder::default()
            .realtime_runtime(5)
            .build()
            .unwrap();
        assert!(matches!(cpu(d.path(), &rt), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn io_conversion_and_max() {
        let d = fake("io\n", &[("io.weight", ""), ("io.max", "")]);
        let b = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .throttle_write_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(0)
                .rate(1000u64)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        io(d.path(), &b).unwrap();
        assert_eq!(get(&d, "io.weight"), "4950");
        assert_eq!(get(&d, "io.max"), "8:0 wbps=1000");
        let b = LinuxBlockIoBuilder::default()
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(10u16)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        io(d.path(), &b).unwrap();
        assert_eq!(get(&d, "io.weight"), "8:0 1");
    }

    #[test]
    fn io_prefers_bfq() {
        let d = fake("io\n", &[("io.weight", ""), ("io.bfq.weight", "")]);
        io(
            d.path(),
            &LinuxBlockIoBuilder::default()
                .weight(500u16)
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(get(&d, "io.bfq.weight"), "500");
        assert_eq!(get(&d, "io.weight"), "");
    }

    #[test]
    fn hugetlb_values() {
        let d = fake(
            "hugetlb\n",
            &[("hugetlb.2MB.max", ""), ("hugetlb.2MB.rsvd.max", "")],
        );
        let l = LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(-1)
            .build()
            .unwrap();
        hugetlb(d.path(), &[l]).unwrap();
        assert_eq!(get(&d, "hugetlb.2MB.max"), "max");
        assert_eq!(get(&d, "hugetlb.2MB.rsvd.max"), "max");
    }

    #[test]
    fn unified_keys() {
        let d = fake(
            "memory pids\n",
            &[
                ("memory.high", ""),
                ("cgroup.max.depth", ""),
                ("cgroup.procs", ""),
            ],
        );
        let mut map = std::collections::HashMap::new();
        map.insert("memory.high".to_owned(), "1000".to_owned());
        map.insert("cgroup.max.depth".to_owned(), "3".to_owned());
        unified(d.path(), &map).unwrap();
        assert_eq!(get(&d, "memory.high"), "1000");
        assert_eq!(get(&d, "cgroup.max.depth"), "3");
        for bad in [
            "../memory.high",
            "memory/high",
            "..",
            "cgroup.procs",
            "nodot",
            "io.max",
        ] {
            let mut map = std::collections::HashMap::new();
            map.insert(bad.to_owned(), "1".to_owned());
            assert!(unified(d.path(), &map).is_err(), "{bad:?} accepted");
        }
        assert_eq!(get(&d, "cgroup.procs"), "");
    }

    #[test]
    fn enabling_controllers() {
        let top = fake(
            "cpu memory hugetlb\n",
            &[("cgroup.subtree_control", "cpu\n")],
        );
        let mid = top.path().join("a");
        std::fs::create_dir(&mid).unwrap();
        std::fs::write(mid.join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::write(mid.join("cgroup.subtree_control"), "").unwrap();
        let wanted: Vec<String> = ["cpu", "memory", "pids"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        enable_controllers(&[top.path().to_owned(), mid.clone()], &wanted).unwrap();
        assert_eq!(get(&top, "cgroup.subtree_control"), "+memory");
        assert_eq!(
            std::fs::read_to_string(mid.join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
    }
}
