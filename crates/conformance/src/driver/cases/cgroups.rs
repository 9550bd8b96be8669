//! linux.resources cases: the limits are checked on the host (the container's
//! cgroup files, v1 or v2, after `create`) and from inside by the checker.

use anyhow::Result;
use serde_json::{json, Value};

use crate::driver::context::Ctx;
use crate::driver::spec::set;

/// One file to check on the host: the controller, and for v1 and v2 the file
/// name and a predicate on its trimmed content (described by `want`).
struct HostFile {
    controller: &'static str,
    v1: (&'static str, String),
    v2: Option<(&'static str, String)>,
    /// Whether the expected text must equal the file or only be one of its lines.
    line: bool,
    /// On cgroup v2, the file to check instead when the `v2` one does not exist.
    v2_fallback: Option<(&'static str, String)>,
}

fn exact(
    controller: &'static str,
    v1: (&'static str, String),
    v2: Option<(&'static str, String)>,
) -> HostFile {
    HostFile {
        controller,
        v1,
        v2,
        line: false,
        v2_fallback: None,
    }
}

fn line(
    controller: &'static str,
    v1: (&'static str, String),
    v2: Option<(&'static str, String)>,
) -> HostFile {
    HostFile {
        controller,
        v1,
        v2,
        line: true,
        v2_fallback: None,
    }
}

/// Creates a container with `resources`, checks `files` on the host, then runs
/// the checker (which checks what it can see from inside).
fn run(c: &mut Ctx<'_>, resources: Value, files: &[HostFile]) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/linux/resources", resources);
    let cgroups_path = spec
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let container = c.create(&spec)?;
    for f in files {
        let v2_only = c.env.cgroups.v2_only();
        let v2 = v2_only || c.env.cgroups.is_v2(f.controller);
        let controller = if v2_only {
            v2_controller(f.controller)
        } else {
            Some(f.controller)
        };
        let target = if v2 { f.v2.as_ref() } else { Some(&f.v1) };
        let (Some(controller), Some((file, want))) = (controller, target) else {
            c.skip(
                format!("{} {}", f.controller, f.v1.0),
                "no cgroup v2 equivalent",
            );
            continue;
        };
        let (file, want) = match &f.v2_fallback {
            Some(alt) if v2 && c.env.cgroups.read(controller, &cgroups_path, file).is_err() => {
                (&alt.0, &alt.1)
            }
            _ => (file, want),
        };
        let desc = format!("host cgroup {file} is {want:?}");
        match c.env.cgroups.read(controller, &cgroups_path, file) {
            Ok(actual) => {
                let ok = if f.line {
                    actual.lines().any(|l| l.trim() == want)
                } else {
                    actual == *want
                };
                c.check(ok, desc, format!("found {actual:?}"));
            }
            Err(e) => c.fail(desc, format!("{e:#}")),
        }
    }
    let lines = container.run_to_completion()?;
    c.lines.extend(lines);
    let out = container.delete(false)?;
    c.expect_ok("delete the stopped container", &out);
    let gone = !c.env.cgroups.exists_anywhere(&cgroups_path);
    c.check(
        gone,
        "delete removed the container's cgroups",
        format!("{cgroups_path} still exists"),
    );
    Ok(())
}

/// The cgroup v2 controller holding what v1 `controller` did, if any (net_cls,
/// net_prio and devices have none: the device controller is an eBPF program).
fn v2_controller(controller: &'static str) -> Option<&'static str> {
    match controller {
        "blkio" => Some("io"),
        "cpuacct" => Some("cpu"),
        "net_cls" | "net_prio" | "devices" | "freezer" => None,
        other => Some(other),
    }
}

/// memory limit, reservation, swappiness and the OOM killer switch.
pub(crate) fn linux_cgroups_memory(c: &mut Ctx<'_>) -> Result<()> {
    let limit = 50 * 1024 * 1024;
    let reservation = 25 * 1024 * 1024;
    if c.env.cgroups.v2_only() {
        // swappiness and the OOM-killer switch exist only in cgroup v1; runtimes
        // refuse them on v2 (crun: "cannot disable OOM killer with cgroupv2").
        return run(
            c,
            json!({ "memory": { "limit": limit, "reservation": reservation }}),
            &[
                exact(
                    "memory",
                    ("memory.limit_in_bytes", limit.to_string()),
                    Some(("memory.max", limit.to_string())),
                ),
                exact(
                    "memory",
                    ("memory.soft_limit_in_bytes", reservation.to_string()),
                    Some(("memory.low", reservation.to_string())),
                ),
            ],
        );
    }
    run(
        c,
        json!({ "memory": {
            "limit": limit, "reservation": reservation, "swappiness": 30, "disableOOMKiller": true
        }}),
        &[
            exact(
                "memory",
                ("memory.limit_in_bytes", limit.to_string()),
                Some(("memory.max", limit.to_string())),
            ),
            exact(
                "memory",
                ("memory.soft_limit_in_bytes", reservation.to_string()),
                Some(("memory.low", reservation.to_string())),
            ),
            exact("memory", ("memory.swappiness", "30".into()), None),
            line(
                "memory",
                ("memory.oom_control", "oom_kill_disable 1".into()),
                None,
            ),
        ],
    )
}

/// memory+swap limit (needs swap accounting).
pub(crate) fn linux_cgroups_memory_swap(c: &mut Ctx<'_>) -> Result<()> {
    let limit: u64 = 50 * 1024 * 1024;
    let swap: u64 = 100 * 1024 * 1024;
    run(
        c,
        json!({ "memory": { "limit": limit, "swap": swap }}),
        &[exact(
            "memory",
            ("memory.memsw.limit_in_bytes", swap.to_string()),
            Some(("memory.swap.max", (swap - limit).to_string())),
        )],
    )
}

/// cpu shares, quota, period, cpuset cpus and mems.
pub(crate) fn linux_cgroups_cpus(c: &mut Ctx<'_>) -> Result<()> {
    let weight = 1 + ((2048u64 - 2) * 9999) / 262_142;
    run(
        c,
        json!({ "cpu": {
            "shares": 2048, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"
        }}),
        &[
            exact(
                "cpu",
                ("cpu.shares", "2048".into()),
                Some(("cpu.weight", weight.to_string())),
            ),
            exact(
                "cpu",
                ("cpu.cfs_quota_us", "50000".into()),
                Some(("cpu.max", "50000 100000".into())),
            ),
            exact("cpu", ("cpu.cfs_period_us", "100000".into()), None),
            exact(
                "cpuset",
                ("cpuset.cpus", "0".into()),
                Some(("cpuset.cpus", "0".into())),
            ),
            exact(
                "cpuset",
                ("cpuset.mems", "0".into()),
                Some(("cpuset.mems", "0".into())),
            ),
        ],
    )
}

/// pids limit.
pub(crate) fn linux_cgroups_pids(c: &mut Ctx<'_>) -> Result<()> {
    run(
        c,
        json!({ "pids": { "limit": 1000 } }),
        &[exact(
            "pids",
            ("pids.max", "1000".into()),
            Some(("pids.max", "1000".into())),
        )],
    )
}

/// blkio weight (needs a proportional-weight I/O scheduler; on cgroup v2 BFQ's
/// io.bfq.weight takes it as it is, io.weight (blk-iocost) converted from
/// [10, 1000] onto [1, 10000]).
pub(crate) fn linux_cgroups_blkio(c: &mut Ctx<'_>) -> Result<()> {
    let converted = 1 + (500 - 10) * 9999 / 990;
    run(
        c,
        json!({ "blockIO": { "weight": 500 } }),
        &[HostFile {
            v2_fallback: Some(("io.weight", format!("default {converted}"))),
            ..exact(
                "blkio",
                ("blkio.weight", "500".into()),
                Some(("io.bfq.weight", "default 500".into())),
            )
        }],
    )
}

/// blkio read-bandwidth throttling on the disk holding `/`, or on the first disk
/// when `/` is not on a block device (cgroup v2 refuses other device numbers).
pub(crate) fn linux_cgroups_blkio_throttle(c: &mut Ctx<'_>) -> Result<()> {
    let Some((major, minor)) = block_device() else {
        c.skip_case("no block device on this host");
        return Ok(());
    };
    let rate = 1024 * 1024;
    run(
        c,
        json!({ "blockIO": { "throttleReadBpsDevice": [ { "major": major, "minor": minor, "rate": rate } ] } }),
        &[line(
            "blkio",
            (
                "blkio.throttle.read_bps_device",
                format!("{major}:{minor} {rate}"),
            ),
            Some((
                "io.max",
                format!("{major}:{minor} rbps={rate} wbps=max riops=max wiops=max"),
            )),
        )],
    )
}

/// The device of `/` if it is a block device, else the first disk in /sys/block.
fn block_device() -> Option<(u32, u32)> {
    let dev = rustix::fs::stat("/").ok()?.st_dev;
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    if std::path::Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
        return Some((major, minor));
    }
    let mut disks: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    disks.sort();
    let text = std::fs::read_to_string(format!("/sys/block/{}/dev", disks.first()?)).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// hugetlb limit for 2 MiB pages.
pub(crate) fn linux_cgroups_hugetlb(c: &mut Ctx<'_>) -> Result<()> {
    let limit = 4 * 1024 * 1024;
    run(
        c,
        json!({ "hugepageLimits": [ { "pageSize": "2MB", "limit": limit } ] }),
        &[exact(
            "hugetlb",
            ("hugetlb.2MB.limit_in_bytes", limit.to_string()),
            Some(("hugetlb.2MB.max", limit.to_string())),
        )],
    )
}

/// net_cls class id and net_prio priorities (cgroup v1 only).
pub(crate) fn linux_cgroups_network(c: &mut Ctx<'_>) -> Result<()> {
    if c.env.cgroups.v2_only() {
        c.skip_case("net_cls and net_prio exist only in cgroup v1");
        return Ok(());
    }
    let class_id: u32 = 0x0010_0001;
    run(
        c,
        json!({ "network": { "classID": class_id, "priorities": [ { "name": "lo", "priority": 3 } ] } }),
        &[
            exact("net_cls", ("net_cls.classid", class_id.to_string()), None),
            line("net_prio", ("net_prio.ifpriomap", "lo 3".into()), None),
        ],
    )
}

/// Device cgroup rules: deny all, then allow two devices outside the defaults.
pub(crate) fn linux_cgroups_devices(c: &mut Ctx<'_>) -> Result<()> {
    run(
        c,
        json!({ "devices": [
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw" },
            { "allow": true, "type": "b", "major": 7, "minor": 0, "access": "r" },
        ]}),
        &[
            line("devices", ("devices.list", "c 10:229 rw".into()), None),
            line("devices", ("devices.list", "b 7:0 r".into()), None),
        ],
    )
}
