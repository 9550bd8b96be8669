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
        let v2 = c.env.cgroups.is_v2(f.controller);
        let target = if v2 { f.v2.as_ref() } else { Some(&f.v1) };
        let Some((file, want)) = target else {
            c.skip(
                format!("{} {}", f.controller, f.v1.0),
                "no cgroup v2 equivalent",
            );
            continue;
        };
        let desc = format!("host cgroup {file} is {want:?}");
        match c.env.cgroups.read(f.controller, &cgroups_path, file) {
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

/// memory limit, reservation, swappiness and the OOM killer switch.
pub(crate) fn linux_cgroups_memory(c: &mut Ctx<'_>) -> Result<()> {
    let limit = 50 * 1024 * 1024;
    let reservation = 25 * 1024 * 1024;
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

/// blkio weight (needs a proportional-weight I/O scheduler).
pub(crate) fn linux_cgroups_blkio(c: &mut Ctx<'_>) -> Result<()> {
    run(
        c,
        json!({ "blockIO": { "weight": 500 } }),
        &[exact(
            "blkio",
            ("blkio.weight", "500".into()),
            Some(("io.bfq.weight", "default 500".into())),
        )],
    )
}

/// blkio read-bandwidth throttling on the disk holding `/`.
pub(crate) fn linux_cgroups_blkio_throttle(c: &mut Ctx<'_>) -> Result<()> {
    let dev = rustix::fs::stat("/")?.st_dev;
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
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
