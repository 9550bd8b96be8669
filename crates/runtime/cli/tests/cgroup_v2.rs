//! cgroup v2 for real: every controller Berth drives, seen from inside the container
//! (its cgroup namespace shows its own cgroup at /sys/fs/cgroup) and from the host.
//!
//! Runs where the host is cgroup v2 only: the kernel-matrix guests (tests/vm/, with
//! `BERTH_REQUIRE=cgroup2`, so a wrong guest fails instead of skipping) and any v2 host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{cgroup_v2_only, is_root, require, unique_id, Bundle, Runtime};

fn ready() -> bool {
    is_root() && require("cgroup2", cgroup_v2_only())
}

fn controllers() -> String {
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default()
}

fn has(controller: &str) -> bool {
    controllers().split_whitespace().any(|c| c == controller)
}

/// A container running `script`, with `resources` and a unique cgroupsPath.
fn bundle(script: &str, cgroup: &str, resources: Value) -> Bundle {
    let cgroup = cgroup.to_string();
    Bundle::new(&["sh", "-c", script]).edit(move |c| {
        c["linux"]["cgroupsPath"] = json!(cgroup);
        c["linux"]["resources"] = resources;
    })
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
        .trim()
        .to_string()
}

/// Lines "file=value" printed by the container for each cgroup file asked for.
fn dump(files: &[&str]) -> String {
    files
        .iter()
        .map(|f| format!("echo {f}=$(cat /sys/fs/cgroup/{f} | tr '\\n' ' ');"))
        .collect()
}

fn value<'a>(out: &'a str, file: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{file}=")))
        .unwrap_or_else(|| panic!("{file} not in output: {out}"))
        .trim()
}

#[test]
fn limits_reach_their_files() {
    if !ready() {
        return;
    }
    let cg = format!("/{}", unique_id("berth-test-v2lim"));
    let mut resources = json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0", "mems": "0"},
        "pids": {"limit": 77},
        "unified": {"memory.high": "62914560"}
    });
    let mut files = vec![
        "memory.max",
        "memory.low",
        "memory.high",
        "memory.swap.max",
        "cpu.max",
        "cpu.weight",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
    ];
    let hugetlb = has("hugetlb") && Path::new("/sys/fs/cgroup/hugetlb.2MB.max").exists();
    if hugetlb {
        resources["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
        files.push("hugetlb.2MB.max");
    }
    let script = format!("cat /proc/self/cgroup; {}", dump(&files));
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("v2lim"), &bundle(&script, &cg, resources));
    assert_eq!(code, 0, "{err}");
    // The cgroup namespace: the container sees its own cgroup as the root.
    assert!(out.lines().next() == Some("0::/"), "{out}");
    assert_eq!(value(&out, "memory.max"), "67108864");
    assert_eq!(value(&out, "memory.low"), "33554432");
    assert_eq!(value(&out, "memory.high"), "62914560");
    // OCI swap is memory+swap; cgroup v2 counts swap alone.
    assert_eq!(value(&out, "memory.swap.max"), "33554432");
    assert_eq!(value(&out, "cpu.max"), "50000 100000");
    // shares 512 in [2, 262144] maps onto weight [1, 10000]: 1 + (510 * 9999) / 262142.
    assert_eq!(value(&out, "cpu.weight"), "20");
    assert_eq!(value(&out, "cpuset.cpus"), "0");
    assert_eq!(value(&out, "cpuset.mems"), "0");
    assert_eq!(value(&out, "pids.max"), "77");
    if hugetlb {
        assert_eq!(value(&out, "hugetlb.2MB.max"), "4194304");
    }
    assert!(
        !Path::new("/sys/fs/cgroup").join(&cg[1..]).exists(),
        "cgroup left behind"
    );
}

/// io.max and io.weight on a real block device (the guest's virtio disk).
#[test]
fn io_limits_on_a_block_device() {
    if !ready() {
        return;
    }
    let Some((major, minor)) = first_block_device() else {
        assert!(
            !std::env::var("BERTH_REQUIRE")
                .unwrap_or_default()
                .contains("blockdev"),
            "no block device although BERTH_REQUIRE names blockdev"
        );
        eprintln!("SKIP: no block device");
        return;
    };
    if !has("io") {
        require("io-controller", false);
        return;
    }
    let cg = format!("/{}", unique_id("berth-test-v2io"));
    let resources = json!({
        "blockIO": {
            "weight": 300,
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 120}]
        }
    });
    let script = dump(&["io.max", "io.weight"]);
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("v2io"), &bundle(&script, &cg, resources));
    assert_eq!(code, 0, "{err}");
    let max = value(&out, "io.max");
    assert!(
        max.contains(&format!(
            "{major}:{minor} rbps=1048576 wbps=max riops=max wiops=120"
        )),
        "{out}"
    );
    let weight = value(&out, "io.weight");
    // blkio's 10..1000 maps onto io.weight's 1..10000: 1 + (300 - 10) * 9999 / 990.
    // (io.weight exists with blk-iocost or BFQ.)
    if !weight.is_empty() {
        assert!(weight.contains("default 2930"), "{out}");
    }
}

fn first_block_device() -> Option<(u64, u64)> {
    let dir = std::fs::read_dir("/sys/block").ok()?;
    let mut names: Vec<String> = dir
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vd") || n.starts_with("sd") || n.starts_with("nvme"))
        .collect();
    names.sort();
    let dev = read(format!("/sys/block/{}/dev", names.first()?));
    let (a, b) = dev.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The eBPF device program: allowed devices open, denied ones fail even with a node
/// made by CAP_MKNOD.
#[test]
fn device_program_allows_and_denies() {
    if !ready() {
        return;
    }
    let cg = format!("/{}", unique_id("berth-test-v2dev"));
    let script = "echo x > /dev/null && echo NULL-OK; head -c 4 /dev/urandom | wc -c; \
                  mknod /tmp/sda b 8 0 && echo MKNOD-OK; \
                  head -c 1 /tmp/sda >/dev/null 2>&1 && echo SDA-OPENED; \
                  mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem >/dev/null 2>&1 && echo MEM-OPENED; \
                  echo end";
    let b = bundle(script, &cg, json!({})).edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "dev"]
        }));
    });
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("v2dev"), &b);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NULL-OK") && out.contains('4'), "{out}");
    assert!(
        out.contains("MKNOD-OK"),
        "the test needs mknod to work: {out}\n{err}"
    );
    assert!(!out.contains("SDA-OPENED"), "{out}");
    assert!(!out.contains("MEM-OPENED"), "{out}");
    assert!(out.contains("end"));
}

/// pause/resume freeze the cgroup; `kill --all` and `delete --force` use cgroup.kill;
/// `update` changes live limits; `events --stats` reports v2 statistics.
#[test]
fn freeze_update_stats_and_kill() {
    if !ready() {
        return;
    }
    let cg = format!("/{}", unique_id("berth-test-v2live"));
    let host_cg = Path::new("/sys/fs/cgroup").join(&cg[1..]);
    let rt = Runtime::new();
    let id = unique_id("v2live");
    let b = bundle(
        "sleep 300 & sleep 300 & sleep 300",
        &cg,
        json!({"memory": {"limit": 134217728}, "pids": {"limit": 50}}),
    );
    rt.create(&id, &b, true);
    assert!(read(host_cg.join("cgroup.procs")).lines().count() >= 1);

    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    assert_eq!(read(host_cg.join("cgroup.freeze")), "1");
    assert!(read(host_cg.join("cgroup.events")).contains("frozen 1"));
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    assert_eq!(read(host_cg.join("cgroup.freeze")), "0");

    rt.ok(&[
        "update",
        "--memory",
        "100663296",
        "--pids-limit",
        "40",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    assert_eq!(read(host_cg.join("memory.max")), "100663296");
    assert_eq!(read(host_cg.join("pids.max")), "40");
    assert_eq!(read(host_cg.join("cpu.max")), "20000 100000");

    let stats: Value = serde_json::from_str(&rt.ok(&["events", "--stats", &id])).unwrap();
    let data = &stats["data"];
    assert_eq!(stats["type"], "stats");
    // sh and three sleeps, the last one exec'd by sh.
    assert!(data["pids"]["current"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(data["pids"]["limit"], 40);
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(data["memory"]["usage"]["limit"], 100663296u64);
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{stats}"
    );

    // All processes, not only init, die through cgroup.kill.
    rt.ok(&["kill", "--all", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read(host_cg.join("cgroup.procs")).is_empty() {
        assert!(Instant::now() < deadline, "processes survived kill --all");
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.ok(&["delete", &id]);
    assert!(!host_cg.exists(), "cgroup left behind");
}

/// A memory bomb in a child is OOM-killed; the container survives, memory.events counts
/// it, and `events` reports an "oom" event.
#[test]
fn oom_kill_is_counted_and_reported() {
    if !ready() {
        return;
    }
    let cg = format!("/{}", unique_id("berth-test-v2oom"));
    let host_cg = Path::new("/sys/fs/cgroup").join(&cg[1..]);
    let rt = Runtime::new();
    let id = unique_id("v2oom");
    let b = bundle(
        "sleep 2; tail /dev/zero; sleep 300",
        &cg,
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    rt.create(&id, &b, true);
    let mut events = rt
        .cmd()
        .args(["events", "--interval", "200ms", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut saw_oom = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains("\"oom\"") => {
                saw_oom = true;
                break;
            }
            _ => {}
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(saw_oom, "no oom event");
    let counters = read(host_cg.join("memory.events"));
    assert!(counters.contains("oom_kill 1"), "{counters}");
    assert_eq!(rt.status(&id), "running", "init died with the bomb");
    rt.ok(&["delete", "--force", &id]);
    assert!(!host_cg.exists());
}

/// Kubernetes-style nested cgroupsPath: parents are created, the container lands in the
/// leaf from its first instruction (clone3 CLONE_INTO_CGROUP), and delete removes it.
#[test]
fn nested_cgroups_path() {
    if !ready() {
        return;
    }
    let top = unique_id("berth-test-kubepods");
    let cg = format!("/{top}/burstable/pod-1234/ctr");
    let rt = Runtime::new();
    let b = bundle("cat /proc/self/cgroup", &cg, json!({"pids": {"limit": 10}}));
    let (code, out, err) = rt.run(&unique_id("v2nest"), &b);
    let cleanup = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd /sys/fs/cgroup && for d in {top}/burstable/pod-1234/ctr {top}/burstable/pod-1234 {top}/burstable {top}; do [ ! -d $d ] || rmdir $d; done"
        ))
        .status();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "0::/");
    assert!(cleanup.unwrap().success());
}
