//! Attacks from inside a default container (the security model's table): each test runs a
//! hostile workload under Berth's default spec and checks that the host held.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::{is_root, unique_id, Bundle, Runtime};

fn sh(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

#[test]
fn host_processes_are_invisible() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let me = std::process::id();
    let script = format!(
        "ls /proc | grep -c '^[0-9]' ; if kill -0 {me} 2>/dev/null; then echo SAW-HOST; fi; ps -o pid | wc -l"
    );
    let (code, out, err) = rt.run(&unique_id("pid"), &sh(&script));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("SAW-HOST"), "signalled a host process: {out}");
    let procs: usize = out.lines().next().unwrap().trim().parse().unwrap();
    assert!(procs <= 4, "container sees {procs} processes: {out}");
}

#[test]
fn cannot_mount_or_remount() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let script = "mount -t tmpfs none /tmp && echo MOUNTED; \
                  mount -o remount,rw / && echo REMOUNTED; \
                  mount --bind /bin /tmp && echo BOUND; \
                  mount -t proc proc /tmp && echo PROC; \
                  touch /rootfs-write && echo WROTE-ROOT; \
                  echo done";
    let (code, out, err) = rt.run(&unique_id("mnt"), &sh(script));
    assert_eq!(code, 0, "{err}");
    for bad in ["MOUNTED", "REMOUNTED", "BOUND", "PROC", "WROTE-ROOT"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    assert!(out.contains("done"));
}

#[test]
fn cannot_write_kernel_interfaces() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let script = "echo 1 > /proc/sys/kernel/domainname && echo SYSCTL; \
                  echo h > /proc/sysrq-trigger && echo SYSRQ; \
                  echo x > /sys/kernel/uevent_helper && echo SYSFS; \
                  echo 1 > /sys/fs/cgroup/pids/cgroup.procs 2>/dev/null && echo CGROUPFS; \
                  head -c 16 /proc/kcore > /dev/null 2>&1 && test -s /proc/kcore && echo KCORE; \
                  cat /proc/keys | grep -q . && echo KEYS; \
                  echo done";
    let (code, out, err) = rt.run(&unique_id("kern"), &sh(script));
    assert_eq!(code, 0, "{err}");
    for bad in ["SYSCTL", "SYSRQ", "SYSFS", "CGROUPFS", "KCORE", "KEYS"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
}

#[test]
fn cannot_reach_host_devices() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let script = "test -e /dev/mem && echo HAS-MEM; \
                  mknod /tmp/sda b 8 0 2>/dev/null && echo MKNOD; \
                  mknod /dev/shm/mem c 1 1 2>/dev/null && echo MKNOD-MEM; \
                  ls /dev | tr '\\n' ' '; echo; echo done";
    let b = sh(script).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
    });
    let (code, out, err) = rt.run(&unique_id("dev"), &b);
    assert_eq!(code, 0, "{err}");
    for bad in ["HAS-MEM", "MKNOD", "MKNOD-MEM"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
}

#[test]
fn device_cgroup_blocks_nodes_even_with_mknod() {
    if !is_root() {
        return;
    }
    // Grant CAP_MKNOD: the node can be made, but the device cgroup refuses opening it.
    let rt = Runtime::new();
    let script = "mknod /dev/shm/null2 c 1 3 && echo made; \
                  mknod /dev/shm/mem c 1 1 && echo made-mem; \
                  head -c 1 /dev/shm/mem >/dev/null 2>&1 && echo READ-MEM; \
                  echo done";
    let b = sh(script).edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        let shm = c["mounts"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|m| m["destination"] == "/dev/shm")
            .unwrap();
        shm["options"] = json!(["nosuid", "mode=1777"]);
    });
    let (code, out, err) = rt.run(&unique_id("devcg"), &b);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("made-mem"),
        "mknod with CAP_MKNOD should work: {out} {err}"
    );
    assert!(
        !out.contains("READ-MEM"),
        "device cgroup let /dev/mem through: {out}"
    );
}

#[test]
fn cannot_unshare_to_reach_release_agent() {
    if !is_root() {
        return;
    }
    // CVE-2022-0492: a new user+cgroup namespace would allow mounting cgroup v1 and writing
    // release_agent. The unshare itself must fail.
    let rt = Runtime::new();
    let script = "unshare -Ur -C sh -c 'mkdir -p /tmp/cg && mount -t cgroup -o rdma cgroup /tmp/cg && echo MOUNTED-CG' 2>/dev/null || echo refused; \
                  unshare -U true 2>/dev/null && echo USERNS; echo done";
    let (code, out, err) = rt.run(&unique_id("rel"), &sh(script));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("refused"), "{out}");
    assert!(
        !out.contains("MOUNTED-CG") && !out.contains("USERNS"),
        "{out}"
    );
}

#[test]
fn fork_bomb_stops_at_pids_limit() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let id = unique_id("fork");
    // The init just waits; a shell exec'd next to it forks sleepers until it cannot
    // (busybox sh exits at the first failed fork), and the sleepers stay.
    let b = sh("exec sleep 60").edit(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 64});
    });
    rt.create(&id, &b, true);
    let st = rt
        .cmd()
        .args([
            "exec",
            "--detach",
            &id,
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do sleep 60 & i=$((i+1)); done",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut count = 0;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let pids: Vec<i32> =
            serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
        count = count.max(pids.len());
        if count >= 64 {
            break;
        }
    }
    assert!(count <= 64, "{count} processes despite pids limit 64");
    assert!(count >= 32, "the bomb did not run ({count} processes)");
    // The host still forks fine.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn memory_bomb_is_oom_killed_in_its_cgroup() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    // tail keeps all of an endless line in memory: 32 MiB limit, no extra swap.
    let b = sh("tail /dev/zero; echo status=$?").edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    });
    let (code, out, err) = rt.run(&unique_id("oom"), &b);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("status=137"), "tail was not OOM-killed: {out}");
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[test]
fn no_runtime_descriptor_leaks_into_the_container() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    // The init's own descriptors, seen from a process exec'd next to it (`sleep` opens
    // nothing itself): only 0, 1, 2.
    let id = unique_id("fd");
    rt.create(&id, &sh("exec sleep 30"), true);
    let out = rt.ok(&["exec", &id, "ls", "/proc/1/fd"]);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "leaked descriptors: {out}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn cwd_through_a_leaked_descriptor_is_refused() {
    if !is_root() {
        return;
    }
    // CVE-2024-21626: cwd = /proc/self/fd/N would reach a host directory through a
    // descriptor the runtime holds while setting up.
    let rt = Runtime::new();
    for n in 3..12 {
        let b = sh("pwd; ls .. | head -3; echo ESCAPED").edit(|c| {
            c["process"]["cwd"] = Value::String(format!("/proc/self/fd/{n}"));
        });
        let (code, out, _err) = rt.run(&unique_id("cwd"), &b);
        assert!(
            code != 0 && !out.contains("ESCAPED"),
            "cwd /proc/self/fd/{n} was accepted: {out}"
        );
    }
}

#[test]
fn symlinks_in_the_image_cannot_redirect_mounts() {
    if !is_root() {
        return;
    }
    // CVE-2021-30465 family: the image plants a symlink pointing at a host directory where a
    // mount goes; the mount must land inside the rootfs.
    let rt = Runtime::new();
    let host = tempfile::tempdir().unwrap();
    let b = sh("ls /data/ >/dev/null; echo ok").with_rootfs_copy();
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("data")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", b.rootfs().join("up")).unwrap();
    let b = b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data/evil", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/up/tmp/berth-escape-check", "type": "tmpfs", "source": "tmpfs"}));
    });
    let (code, out, err) = rt.run(&unique_id("sym"), &b);
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        !host.path().join("evil").exists(),
        "a mount point was created on the host"
    );
    assert!(
        !std::path::Path::new("/tmp/berth-escape-check").exists(),
        "escaped through .."
    );
}

#[test]
fn runtime_binary_is_out_of_reach() {
    if !is_root() {
        return;
    }
    // CVE-2019-5736: while `exec` works inside the container, processes there try to open the
    // runtime's /proc/PID/exe for writing. The binary must stay intact.
    let rt = Runtime::new();
    let before = std::fs::read(support::BIN).unwrap();
    let id = unique_id("exe");
    let script = "end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do \
                    for p in /proc/[0-9]*; do \
                      if readlink $p/exe 2>/dev/null | grep -q berth; then echo SAW-RUNTIME; \
                        (echo PWNED >> $p/exe) 2>/dev/null && echo WROTE; fi; \
                    done; done; echo finished";
    let b = sh(script);
    rt.create(&id, &b, true);
    for _ in 0..40 {
        let _ = rt.out(&["exec", &id, "true"]);
    }
    let log = rt.out(&["exec", &id, "cat", "/proc/1/cmdline"]);
    drop(log);
    let after = std::fs::read(support::BIN).unwrap();
    assert!(before == after, "the runtime binary was modified");
    // A created (not started) container's init is the runtime itself: a process exec'd
    // next to it must not be able to resolve its executable.
    let id2 = unique_id("exe2");
    let b2 = sh("true");
    rt.create(&id2, &b2, false);
    let o = rt.out(&[
        "exec",
        &id2,
        "sh",
        "-c",
        "readlink /proc/1/exe || echo DENIED; cat /proc/1/exe > /dev/null 2>&1 || echo NOREAD",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("DENIED") && text.contains("NOREAD"),
        "init's exe reachable: {text}"
    );
}

#[test]
fn default_capabilities_are_podmans_eleven() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("caps"), &sh("grep -E '^Cap(Eff|Bnd|Prm|Amb|Inh)' /proc/self/status; grep Seccomp: /proc/self/status; grep NoNewPrivs /proc/self/status"));
    assert_eq!(code, 0, "{err}");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT SETFCAP
    let expected = "00000000800405fb";
    for set in ["CapEff", "CapBnd", "CapPrm"] {
        let line = out.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(line.ends_with(expected), "{line}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{out}"
    );
}

#[test]
fn ping_group_range_lets_ping_work_without_net_raw() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let (code, out, err) = rt.run(
        &unique_id("ping"),
        &sh("cat /proc/sys/net/ipv4/ping_group_range"),
    );
    assert_eq!(code, 0, "{err}");
    let v: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(v, ["0", "2147483647"], "{out}");
}

#[test]
fn runtime_binary_is_out_of_reach_even_with_sys_ptrace() {
    if !is_root() {
        return;
    }
    // With CAP_SYS_PTRACE (and no user namespace) non-dumpable is not enough: the runtime
    // must run from a sealed copy. The container tries to write through every runtime exe
    // it can see while exec'd processes come and go.
    let rt = Runtime::new();
    let before = std::fs::read(support::BIN).unwrap();
    let add_ptrace = |c: &mut Value| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_PTRACE"));
        }
        // Under AppArmor, berth-default already refuses ptrace access to the (unconfined)
        // runtime; this test is about the sealed copy on its own, so it runs without it.
        if let Some(p) = c["process"].as_object_mut() {
            p.remove("apparmorProfile");
        }
    };
    let id = unique_id("ptr");
    let script = "end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do \
                    for p in /proc/[0-9]*; do (echo PWNED >> $p/exe) 2>/dev/null && echo WROTE $p; done; \
                  done; echo finished";
    rt.create(&id, &sh(script).edit(add_ptrace), true);
    for _ in 0..40 {
        let _ = rt.out(&["exec", "--cap", "CAP_SYS_PTRACE", &id, "true"]);
    }
    assert!(
        std::fs::read(support::BIN).unwrap() == before,
        "the runtime binary was modified"
    );
    // A created container's init is the runtime: with SYS_PTRACE its exe is visible, and
    // it must be the sealed copy, not the file on disk.
    let id2 = unique_id("ptr2");
    rt.create(&id2, &sh("true").edit(add_ptrace), false);
    let o = rt.out(&[
        "exec",
        "--cap",
        "CAP_SYS_PTRACE",
        &id2,
        "sh",
        "-c",
        "readlink /proc/1/exe; (echo x >> /proc/1/exe) 2>/dev/null && echo WROTE",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("memfd:berth-runtime"),
        "init does not run from the sealed copy: {text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !text.contains("WROTE"),
        "wrote to the init's executable: {text}"
    );
    assert!(
        std::fs::read(support::BIN).unwrap() == before,
        "the runtime binary was modified"
    );
}
