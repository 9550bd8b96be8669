//! Root-only tests on the machine's real cgroup hierarchies.
//!
//! Every test creates its own `berth-test-<pid>-<n>` cgroup at the hierarchy roots and a
//! [`Guard`] that, even when an assertion fails, thaws the cgroup, kills and reaps the
//! test's own child processes and removes the cgroup. Nothing else is touched, except
//! that creating a cgroup in the v2 tree enables the controllers of the v2 root in the
//! root's `cgroup.subtree_control` (what any runtime does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_cgroups::{FreezerState, Layout, LayoutKind, Manager};
use berth_errdefs::{ErrorKind, HasKind};
use oci_spec::runtime::LinuxResources;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "berth-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn skip_unless_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return false;
    }
    eprintln!("skipping {test}: needs root");
    true
}

/// Cleans up a test's cgroup and children on every exit path.
struct Guard {
    manager: Manager,
    children: Vec<Child>,
}

impl Guard {
    fn new(manager: &Manager) -> Guard {
        Guard {
            manager: manager.clone(),
            children: Vec::new(),
        }
    }

    /// Start `sleep` and keep it for cleanup; returns its PID.
    fn sleeper(&mut self) -> i32 {
        let child = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        self.children.push(child);
        pid
    }

    /// Wait for the last child started and return how it ended.
    fn wait_last(&mut self) -> std::process::ExitStatus {
        self.children.pop().unwrap().wait().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.manager.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.manager.destroy() {
            eprintln!("cleanup of {:?} failed: {e}", self.manager.hierarchies());
        }
    }
}

fn resources(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_owned()
}

fn dir_of(m: &Manager, controller: &str) -> Option<PathBuf> {
    m.hierarchies()
        .into_iter()
        .find(|h| {
            if controller == "unified" {
                h.unified
            } else {
                h.controllers.iter().any(|c| c == controller)
            }
        })
        .map(|h| h.dir)
}

/// A manager over the real v2 tree alone (a pure v2 layout, whatever else is mounted).
fn v2_only(name: &str) -> Option<Manager> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2: String = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    if v2.is_empty() {
        return None;
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let layout = Layout::parse(&v2, &cgroup).unwrap();
    assert_eq!(layout.kind(), LayoutKind::V2);
    Some(Manager::with_layout(&layout, Some(&format!("/{name}")), "c1", false).unwrap())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn machine_layout_lifecycle() {
    if skip_unless_root("machine_layout_lifecycle") {
        return;
    }
    let name = unique();
    let m = Manager::new(Some(&format!("/{name}")), "c1", false).unwrap();
    let mut g = Guard::new(&m);
    m.create().unwrap();
    for h in m.hierarchies() {
        assert!(h.dir.is_dir(), "{:?} not created", h.dir);
        assert!(h.dir.ends_with(&name));
    }

    let mut wanted = serde_json::json!({
        "pids": {"limit": 32},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432}
    });
    // Keep only what this machine has, so the test runs on any layout.
    if m.kind() == LayoutKind::V2 {
        wanted["memory"]
            .as_object_mut()
            .unwrap()
            .remove("reservation");
    }
    m.apply(&resources(wanted)).unwrap();
    match m.kind() {
        LayoutKind::V1 | LayoutKind::Hybrid => {
            let pids = dir_of(&m, "pids").unwrap();
            let cpu = dir_of(&m, "cpu").unwrap();
            let mem = dir_of(&m, "memory").unwrap();
            let cpuset = dir_of(&m, "cpuset").unwrap();
            assert_eq!(read(&pids, "pids.max"), "32");
            assert_eq!(read(&cpu, "cpu.shares"), "512");
            assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
            assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
            assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
            assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "134217728");
            assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "33554432");
        }
        LayoutKind::V2 => {
            let d = dir_of(&m, "unified").unwrap();
            assert_eq!(read(&d, "pids.max"), "32");
            assert_eq!(read(&d, "cpu.max"), "20000 100000");
            assert_eq!(read(&d, "memory.max"), "67108864");
        }
    }

    let pid = g.sleeper();
    m.add_process(pid).unwrap();
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in proc_cgroup.lines() {
        assert!(line.ends_with(&format!("/{name}")), "{line}");
    }
    assert_eq!(m.pids().unwrap(), [pid]);
    // Adding again is a no-op (already placed everywhere).
    m.add_process(pid).unwrap();

    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    if let Some(f) = dir_of(&m, "freezer") {
        assert_eq!(read(&f, "freezer.state"), "FROZEN");
    }
    m.thaw().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);

    let stats = m.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 32);
    assert_eq!(stats.memory.usage.limit, 67_108_864);
    assert!(!stats.memory.raw.is_empty());
    assert!(!stats.cpuset.cpus.is_empty());
    let json = serde_json::to_value(&stats).unwrap();
    assert!(json["memory"]["usage"].get("limit").is_some());
    assert_eq!(m.oom_kill_count().unwrap(), 0);

    // Update: only the pids limit changes.
    m.apply(&resources(serde_json::json!({"pids": {"limit": -1}})))
        .unwrap();
    assert_eq!(m.stats().unwrap().pids.limit, 0);
    assert_eq!(m.stats().unwrap().memory.usage.limit, 67_108_864);

    // State survives a round trip through the record.
    let again = Manager::from_record(
        &serde_json::from_str(&serde_json::to_string(&m.to_record()).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(again.pids().unwrap(), [pid]);

    again.kill_all(libc_sigkill()).unwrap();
    let status = g.wait_last();
    assert_eq!(status.signal(), Some(9));
    wait_until("empty cgroup", || m.pids().unwrap().is_empty());
    m.destroy().unwrap();
    for h in m.hierarchies() {
        assert!(!h.dir.exists(), "{:?} left behind", h.dir);
    }
}

fn libc_sigkill() -> i32 {
    rustix::process::Signal::KILL.as_raw()
}

#[test]
fn kill_all_with_sigterm_freezes_signals_and_thaws() {
    if skip_unless_root("kill_all_with_sigterm_freezes_signals_and_thaws") {
        return;
    }
    let m = Manager::new(Some(&format!("/{}", unique())), "c1", false).unwrap();
    let mut g = Guard::new(&m);
    m.create().unwrap();
    let a = g.sleeper();
    m.add_process(a).unwrap();
    m.kill_all(rustix::process::Signal::TERM.as_raw()).unwrap();
    assert_eq!(g.wait_last().signal(), Some(15));
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
}

#[test]
fn v1_devices_allow_list() {
    if skip_unless_root("v1_devices_allow_list") {
        return;
    }
    let m = Manager::new(Some(&format!("/{}", unique())), "c1", false).unwrap();
    let _g = Guard::new(&m);
    let Some(dir) = dir_of(&m, "devices") else {
        eprintln!("skipping v1_devices_allow_list: no v1 devices hierarchy");
        return;
    };
    m.create().unwrap();
    m.apply(&resources(serde_json::json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]})))
    .unwrap();
    assert_eq!(read(&dir, "devices.list"), "c 1:3 rwm");
    // A second identical apply (an update) changes nothing.
    m.apply(&resources(serde_json::json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]})))
    .unwrap();
    assert_eq!(read(&dir, "devices.list"), "c 1:3 rwm");
    assert!(try_open_in(&dir, "cat /dev/null").0);
    let (ok, err) = try_open_in(&dir, "head -c1 /dev/zero");
    assert!(!ok);
    assert!(err.contains("not permitted"), "{err}");
}

/// Run `cmd` in a shell that first moves itself into the cgroup `dir`. Returns whether it
/// succeeded, and its stderr.
fn try_open_in(dir: &Path, cmd: &str) -> (bool, String) {
    let script = format!("echo $$ > {}/cgroup.procs && exec {cmd}", dir.display());
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn v2_tree_freeze_kill_procs_hugetlb() {
    if skip_unless_root("v2_tree_freeze_kill_procs_hugetlb") {
        return;
    }
    let name = unique();
    let Some(m) = v2_only(&name) else {
        eprintln!("skipping v2 test: no cgroup2 mount");
        return;
    };
    let mut g = Guard::new(&m);
    m.create().unwrap();
    let dir = dir_of(&m, "unified").unwrap();
    assert!(m.v2_dir_fd().unwrap().is_some());

    let root_controllers = read(
        m.hierarchies()[0].mountpoint.as_path(),
        "cgroup.controllers",
    );
    if root_controllers.split_whitespace().any(|c| c == "hugetlb") {
        m.apply(&resources(
            serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
        ))
        .unwrap();
        assert_eq!(read(&dir, "hugetlb.2MB.max"), "4194304");
        assert!(m.stats().unwrap().hugetlb.contains_key("2MB"));
    }
    if !root_controllers.split_whitespace().any(|c| c == "pids") {
        // A set limit without the controller is a clear, typed error.
        let e = m
            .apply(&resources(serde_json::json!({"pids": {"limit": 5}})))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
        assert!(e.to_string().contains("pids"), "{e}");
    }

    let pid = g.sleeper();
    m.add_process(pid).unwrap();
    assert_eq!(read(&dir, "cgroup.procs"), pid.to_string());
    assert_eq!(m.pids().unwrap(), [pid]);

    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    m.thaw().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);

    // SIGTERM: freeze, signal, thaw through cgroup.freeze.
    m.kill_all(rustix::process::Signal::TERM.as_raw()).unwrap();
    assert_eq!(g.wait_last().signal(), Some(15));

    // SIGKILL: cgroup.kill, which also reaches a nested cgroup.
    let pid = g.sleeper();
    std::fs::create_dir(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested/cgroup.procs"), pid.to_string()).unwrap();
    assert_eq!(m.pids().unwrap(), [pid]);
    m.kill_all(libc_sigkill()).unwrap();
    assert_eq!(g.wait_last().signal(), Some(9));
    wait_until("empty cgroup", || m.pids().unwrap().is_empty());
    m.destroy().unwrap();
    assert!(!dir.exists());
}

#[test]
fn v2_device_filter_denies_and_allows() {
    if skip_unless_root("v2_device_filter_denies_and_allows") {
        return;
    }
    let Some(m) = v2_only(&unique()) else {
        eprintln!("skipping v2 device test: no cgroup2 mount");
        return;
    };
    let _g = Guard::new(&m);
    m.create().unwrap();
    let dir = dir_of(&m, "unified").unwrap();
    let programs = || {
        let fd = m.v2_dir_fd().unwrap().unwrap();
        berth_sys::device_program_ids(fd.as_fd()).unwrap()
    };
    assert!(programs().is_empty());

    m.apply(&resources(
        serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}),
    ))
    .unwrap();
    assert_eq!(programs().len(), 1);
    let (ok, err) = try_open_in(&dir, "cat /dev/null");
    assert!(!ok, "opening /dev/null succeeded under deny-all");
    assert!(err.contains("not permitted"), "{err}");

    m.apply(&resources(serde_json::json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]})))
    .unwrap();
    assert_eq!(programs().len(), 1, "the old program was not replaced");
    let (ok, err) = try_open_in(&dir, "cat /dev/null");
    assert!(ok, "opening /dev/null failed when allowed: {err}");
    let (ok, _) = try_open_in(&dir, "head -c1 /dev/zero");
    assert!(!ok, "/dev/zero was not denied");

    // Last match wins; a deny of one access bit blocks opens that request it.
    m.apply(&resources(serde_json::json!({"devices": [
        {"allow": true, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
    ]})))
    .unwrap();
    assert!(try_open_in(&dir, "cat /dev/null").0);
    let (ok, err) = try_open_in(&dir, "sh -c 'echo x > /dev/null'");
    assert!(
        !ok && (err.contains("not permitted") || err.contains("ermission denied")),
        "{ok} {err}"
    );
    assert!(try_open_in(&dir, "head -c1 /dev/zero").0);
}

#[test]
fn systemd_driver_is_refused_here() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipping systemd_driver_is_refused_here: systemd runs here");
        return;
    }
    let e = Manager::new(Some("system.slice:berth:x"), "x", true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
}
