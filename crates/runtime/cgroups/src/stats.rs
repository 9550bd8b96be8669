//! Resource usage of a container's cgroup.
//!
//! [`Stats`] serialises to the shape of the `data` object of runc's `events --stats`
//! (field names included), so tools written against runc read it unchanged. Each part is
//! filled from wherever its controller lives (v1 or v2); a controller that is absent
//! leaves its part at zero. Units are runc's: nanoseconds for CPU time, bytes for
//! memory. v2 has no separate memory+swap counter; like runc, `memory.swap` there
//! reports memory plus swap so that the numbers mean the same on both versions.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fs;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Everything the controllers report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: CpuStats,
    /// CPUs and memory nodes in use.
    pub cpuset: CpusetStats,
    /// Memory use and limits.
    pub memory: MemoryStats,
    /// Process count and limit.
    pub pids: PidsStats,
    /// Block I/O counters.
    pub blkio: BlkioStats,
    /// Huge page use per page size ("2MB"...).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

/// CPU statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Time used.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Total.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per CPU (v1 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Per CPU in kernel mode (v1 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// Per CPU in user mode (v1 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// In kernel mode.
    #[serde(default)]
    pub kernel: u64,
    /// In user mode.
    #[serde(default)]
    pub user: u64,
}

/// CFS throttling counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    #[serde(default, rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Total throttled time, in nanoseconds.
    #[serde(default, rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Effective CPUs and memory nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpusetStats {
    /// CPU numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    /// Memory node numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u32>,
}

/// Memory statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Page cache (v1 `total_cache`, v2 `file`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory plus swap.
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every counter of `memory.stat`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter with its limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// Limit (`u64::MAX` when unlimited on v2; v1 reports its own large number).
    #[serde(default)]
    pub limit: u64,
    /// Current use.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Highest use seen.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    #[serde(default)]
    pub failcnt: u64,
}

/// Process counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes (tasks) in the cgroup.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// Limit; 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Block I/O counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes transferred, per device and direction.
    #[serde(
        default,
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations, per device and direction.
    #[serde(
        default,
        rename = "ioServicedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// One block I/O counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// "Read", "Write", "Sync", "Async", "Discard" or "Total".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Huge page use for one page size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbStats {
    /// Bytes in use.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Highest use seen (v1 only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocations refused by the limit.
    #[serde(default)]
    pub failcnt: u64,
}

/// `USER_HZ`, the unit of `cpuacct.stat`; fixed at 100 in the Linux ABI.
const NS_PER_TICK: u64 = 1_000_000_000 / 100;

fn numbers(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn u64_or_zero(dir: &Path, file: &str) -> Result<u64> {
    Ok(fs::read_u64(dir, file)?.unwrap_or(0))
}

/// v1 `cpuacct.*`.
pub(crate) fn v1_cpuacct(dir: &Path, out: &mut CpuUsage) -> Result<()> {
    out.total = u64_or_zero(dir, "cpuacct.usage")?;
    out.percpu = numbers(&fs::read_optional(dir, "cpuacct.usage_percpu")?.unwrap_or_default());
    out.percpu_kernel =
        numbers(&fs::read_optional(dir, "cpuacct.usage_percpu_sys")?.unwrap_or_default());
    out.percpu_user =
        numbers(&fs::read_optional(dir, "cpuacct.usage_percpu_user")?.unwrap_or_default());
    if let Some(stat) = fs::read_optional(dir, "cpuacct.stat")? {
        out.user = fs::keyed_value(&stat, "user")
            .unwrap_or(0)
            .saturating_mul(NS_PER_TICK);
        out.kernel = fs::keyed_value(&stat, "system")
            .unwrap_or(0)
            .saturating_mul(NS_PER_TICK);
    }
    Ok(())
}

/// v1 `cpu.stat` (throttling; times already in ns).
pub(crate) fn v1_throttling(dir: &Path, out: &mut Throttling) -> Result<()> {
    if let Some(stat) = fs::read_optional(dir, "cpu.stat")? {
        out.periods = fs::keyed_value(&stat, "nr_periods").unwrap_or(0);
        out.throttled_periods = fs::keyed_value(&stat, "nr_throttled").unwrap_or(0);
        out.throttled_time = fs::keyed_value(&stat, "throttled_time").unwrap_or(0);
    }
    Ok(())
}

/// v2 `cpu.stat` (usage and, with the cpu controller, throttling; times in µs).
pub(crate) fn v2_cpu(dir: &Path, out: &mut CpuStats) -> Result<()> {
    if let Some(stat) = fs::read_optional(dir, "cpu.stat")? {
        let us = |k| fs::keyed_value(&stat, k).unwrap_or(0).saturating_mul(1000);
        out.usage.total = us("usage_usec");
        out.usage.user = us("user_usec");
        out.usage.kernel = us("system_usec");
        out.throttling.periods = fs::keyed_value(&stat, "nr_periods").unwrap_or(0);
        out.throttling.throttled_periods = fs::keyed_value(&stat, "nr_throttled").unwrap_or(0);
        out.throttling.throttled_time = us("throttled_usec");
    }
    Ok(())
}

/// Expand a CPU list (`0-3,7`) into numbers, bounded.
fn expand_list(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            continue;
        };
        for n in a..=b.min(a.saturating_add(65_536)) {
            out.push(n);
        }
    }
    out
}

/// Effective cpuset (`cpuset.effective_*` in v1, `cpuset.*.effective` in v2).
pub(crate) fn cpuset(dir: &Path, v2: bool, out: &mut CpusetStats) -> Result<()> {
    let (cpus, mems) = if v2 {
        ("cpuset.cpus.effective", "cpuset.mems.effective")
    } else {
        ("cpuset.effective_cpus", "cpuset.effective_mems")
    };
    out.cpus = expand_list(&fs::read_optional(dir, cpus)?.unwrap_or_default());
    out.mems = expand_list(&fs::read_optional(dir, mems)?.unwrap_or_default());
    Ok(())
}

fn entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    Ok(MemoryEntry {
        limit: u64_or_zero(dir, &format!("{prefix}.limit_in_bytes"))?,
        usage: u64_or_zero(dir, &format!("{prefix}.usage_in_bytes"))?,
        max: u64_or_zero(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: u64_or_zero(dir, &format!("{prefix}.failcnt"))?,
    })
}

fn raw_stat(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let text = fs::read_optional(dir, "memory.stat")?.unwrap_or_default();
    Ok(fs::flat_keyed(&text)
        .map(|(k, v)| (k.to_owned(), v))
        .collect())
}

/// v1 `memory.*`.
pub(crate) fn v1_memory(dir: &Path, out: &mut MemoryStats) -> Result<()> {
    out.usage = entry(dir, "memory")?;
    out.swap = entry(dir, "memory.memsw")?;
    out.kernel = entry(dir, "memory.kmem")?;
    out.kernel_tcp = entry(dir, "memory.kmem.tcp")?;
    out.raw = raw_stat(dir)?;
    out.cache = out
        .raw
        .get("total_cache")
        .or_else(|| out.raw.get("cache"))
        .copied()
        .unwrap_or(0);
    Ok(())
}

/// v2 `memory.*`.
pub(crate) fn v2_memory(dir: &Path, out: &mut MemoryStats) -> Result<()> {
    let events = fs::read_optional(dir, "memory.events")?.unwrap_or_default();
    out.usage = MemoryEntry {
        limit: u64_or_zero(dir, "memory.max")?,
        usage: u64_or_zero(dir, "memory.current")?,
        max: u64_or_zero(dir, "memory.peak")?,
        failcnt: fs::keyed_value(&events, "max").unwrap_or(0),
    };
    let swap_limit = u64_or_zero(dir, "memory.swap.max")?;
    out.swap = MemoryEntry {
        limit: if swap_limit == u64::MAX {
            u64::MAX
        } else {
            swap_limit.saturating_add(out.usage.limit)
        },
        usage: u64_or_zero(dir, "memory.swap.current")?.saturating_add(out.usage.usage),
        max: 0,
        failcnt: 0,
    };
    out.raw = raw_stat(dir)?;
    out.cache = out.raw.get("file").copied().unwrap_or(0);
    Ok(())
}

/// `pids.current`/`pids.max` (same files in v1 and v2).
pub(crate) fn pids(dir: &Path, out: &mut PidsStats) -> Result<()> {
    out.current = u64_or_zero(dir, "pids.current")?;
    out.limit = match u64_or_zero(dir, "pids.max")? {
        u64::MAX => 0,
        n => n,
    };
    Ok(())
}

/// Parse v1 blkio lines `MAJ:MIN Op value`.
fn blkio_lines(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_owned(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v1 `blkio.*`: the CFQ counters, else BFQ's, else the throttling layer's.
pub(crate) fn v1_blkio(dir: &Path, out: &mut BlkioStats) -> Result<()> {
    for prefix in ["blkio", "blkio.bfq", "blkio.throttle"] {
        let bytes = fs::read_optional(dir, &format!("{prefix}.io_service_bytes_recursive"))?;
        let ops = fs::read_optional(dir, &format!("{prefix}.io_serviced_recursive"))?;
        if bytes.is_none() && ops.is_none() {
            continue;
        }
        out.io_service_bytes_recursive = blkio_lines(&bytes.unwrap_or_default());
        out.io_serviced_recursive = blkio_lines(&ops.unwrap_or_default());
        break;
    }
    Ok(())
}

/// v2 `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
pub(crate) fn v2_io(dir: &Path, out: &mut BlkioStats) -> Result<()> {
    let text = fs::read_optional(dir, "io.stat")?.unwrap_or_default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut out.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                "dios" => (&mut out.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    Ok(())
}

/// Page sizes for which `dir` has `hugetlb.<size>.<suffix>`.
fn page_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_owned())
        })
        .collect();
    sizes.sort();
    sizes
}

/// v1 `hugetlb.<size>.*`.
pub(crate) fn v1_hugetlb(dir: &Path, out: &mut BTreeMap<String, HugetlbStats>) -> Result<()> {
    for size in page_sizes(dir, ".limit_in_bytes") {
        let stats = HugetlbStats {
            usage: u64_or_zero(dir, &format!("hugetlb.{size}.usage_in_bytes"))?,
            max: u64_or_zero(dir, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
            failcnt: u64_or_zero(dir, &format!("hugetlb.{size}.failcnt"))?,
        };
        out.insert(size, stats);
    }
    Ok(())
}

/// v2 `hugetlb.<size>.*`.
pub(crate) fn v2_hugetlb(dir: &Path, out: &mut BTreeMap<String, HugetlbStats>) -> Result<()> {
    for size in page_sizes(dir, ".max") {
        let events = fs::read_optional(dir, &format!("hugetlb.{size}.events"))?.unwrap_or_default();
        let stats = HugetlbStats {
            usage: u64_or_zero(dir, &format!("hugetlb.{size}.current"))?,
            max: 0,
            failcnt: fs::keyed_value(&events, "max").unwrap_or(0),
        };
        out.insert(size, stats);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, v) in files {
            std::fs::write(d.path().join(f), v).unwrap();
        }
        d
    }

    #[test]
    fn v1_cpu_and_memory() {
        let d = fake(&[
            ("cpuacct.usage", "5000\n"),
            ("cpuacct.usage_percpu", "3000 2000 \n"),
            ("cpuacct.stat", "user 2\nsystem 1\n"),
            (
                "cpu.stat",
                "nr_periods 4\nnr_throttled 1\nthrottled_time 77\n",
            ),
            ("memory.usage_in_bytes", "100\n"),
            ("memory.limit_in_bytes", "200\n"),
            ("memory.max_usage_in_bytes", "150\n"),
            ("memory.failcnt", "3\n"),
            ("memory.memsw.usage_in_bytes", "120\n"),
            ("memory.stat", "cache 10\ntotal_cache 11\nrss 5\n"),
        ]);
        let mut cpu = CpuStats::default();
        v1_cpuacct(d.path(), &mut cpu.usage).unwrap();
        v1_throttling(d.path(), &mut cpu.throttling).unwrap();
        assert_eq!(cpu.usage.total, 5000);
        assert_eq!(cpu.usage.percpu, [3000, 2000]);
        assert_eq!(cpu.usage.user, 20_000_000);
        assert_eq!(cpu.usage.kernel, 10_000_000);
        assert_eq!(cpu.throttling.throttled_time, 77);
        let mut mem = MemoryStats::default();
        v1_memory(d.path(), &mut mem).unwrap();
        assert_eq!(
            mem.usage,
            MemoryEntry {
                limit: 200,
                usage: 100,
                max: 150,
                failcnt: 3
            }
        );
        assert_eq!(mem.swap.usage, 120);
        assert_eq!(mem.cache, 11);
        assert_eq!(mem.raw.get("rss"), Some(&5));
    }

    #[test]
    fn v2_cpu_memory_io_hugetlb() {
        let d = fake(&[
            ("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 2\nnr_throttled 1\nthrottled_usec 3\n"),
            ("memory.current", "100\n"),
            ("memory.max", "max\n"),
            ("memory.swap.current", "5\n"),
            ("memory.swap.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n"),
            ("memory.stat", "anon 1\nfile 9\n"),
            ("io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.rsvd.max", "max\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 4\n"),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
        ]);
        let mut cpu = CpuStats::default();
        v2_cpu(d.path(), &mut cpu).unwrap();
        assert_eq!(cpu.usage.total, 10_000);
        assert_eq!(cpu.throttling.throttled_time, 3000);
        let mut mem = MemoryStats::default();
        v2_memory(d.path(), &mut mem).unwrap();
        assert_eq!(mem.usage.limit, u64::MAX);
        assert_eq!(mem.usage.failcnt, 7);
        assert_eq!(mem.swap.usage, 105);
        assert_eq!(mem.cache, 9);
        let mut io = BlkioStats::default();
        v2_io(d.path(), &mut io).unwrap();
        assert_eq!(io.io_service_bytes_recursive.len(), 3);
        assert_eq!(io.io_serviced_recursive[1].value, 2);
        let mut h = BTreeMap::new();
        v2_hugetlb(d.path(), &mut h).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h["2MB"].usage, 2_097_152);
        assert_eq!(h["2MB"].failcnt, 4);
        let mut p = PidsStats::default();
        pids(d.path(), &mut p).unwrap();
        assert_eq!((p.current, p.limit), (3, 0));
    }

    #[test]
    fn v1_blkio_prefers_cfq_then_bfq_then_throttle() {
        let d = fake(&[
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
            ),
            ("blkio.throttle.io_serviced_recursive", "8:0 Read 4\n"),
        ]);
        let mut b = BlkioStats::default();
        v1_blkio(d.path(), &mut b).unwrap();
        assert_eq!(b.io_service_bytes_recursive.len(), 3);
        assert_eq!(
            b.io_serviced_recursive[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4
            }
        );
        std::fs::write(
            d.path().join("blkio.bfq.io_service_bytes_recursive"),
            "8:0 Read 9\n",
        )
        .unwrap();
        let mut b = BlkioStats::default();
        v1_blkio(d.path(), &mut b).unwrap();
        assert_eq!(b.io_service_bytes_recursive[0].value, 9);
        assert!(b.io_serviced_recursive.is_empty());
    }

    #[test]
    fn json_shape() {
        let mut s = Stats::default();
        s.memory.usage.limit = 5;
        s.hugetlb.insert("2MB".into(), HugetlbStats::default());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["memory"]["usage"]["limit"], 5);
        assert_eq!(v["memory"]["usage"]["failcnt"], 0);
        assert!(v["memory"].get("kernelTCP").is_some());
        assert!(v["memory"]["usage"].get("usage").is_none());
        assert_eq!(v["hugetlb"]["2MB"]["failcnt"], 0);
        assert_eq!(v["cpu"]["usage"]["user"], 0);
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(expand_list("0-2,5\n"), [0, 1, 2, 5]);
        assert_eq!(expand_list(""), Vec::<u32>::new());
        assert_eq!(expand_list("0-4294967295").len(), 65_537);
    }
}
