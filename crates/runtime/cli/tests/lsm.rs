//! Linux security modules on real kernels: Berth's AppArmor profile and SELinux labels.
//!
//! These run for real only where the kernel has the LSM (the kernel matrix boots such
//! guests, see tests/vm/, and sets `BERTH_REQUIRE` so a missing LSM fails instead of
//! skipping). Each denial is shown twice: refused under the profile or label, and
//! allowed in the same container without it, with every other wall (capabilities,
//! seccomp, masked and read-only paths) taken down, so the LSM is what refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_runtime::lsm::{apparmor, selinux};
use serde_json::{json, Value};
use support::{is_root, require, unique_id, without_other_walls, Bundle, Runtime};

fn apparmor_ready() -> bool {
    is_root() && require("apparmor", apparmor::enabled())
}

fn selinux_ready() -> bool {
    is_root() && require("selinux", selinux::enabled())
}

fn parser(args: &[&str], text: &str) {
    let mut child = Command::new("apparmor_parser")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("apparmor_parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "apparmor_parser {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A profile loaded for one test and removed afterwards, also on failure.
struct TestProfile {
    text: String,
}

impl TestProfile {
    fn load(text: String) -> TestProfile {
        parser(&["-Kr", "-q"], &text);
        TestProfile { text }
    }
}

impl Drop for TestProfile {
    fn drop(&mut self) {
        parser(&["-KR", "-q"], &self.text);
    }
}

#[test]
fn default_spec_runs_under_berth_default() {
    if !apparmor_ready() {
        return;
    }
    let b = Bundle::new(&["cat", "/proc/self/attr/current"]);
    assert_eq!(b.config["process"]["apparmorProfile"], "berth-default");
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("aa-cur"), &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "berth-default (enforce)");
    assert!(apparmor::is_loaded("berth-default").unwrap());
}

/// Mount, /proc/sys, /proc/sysrq-trigger, /proc/kcore and securityfs with every other
/// wall down: refused under berth-default, allowed without it.
#[test]
fn berth_default_alone_denies_host_interfaces() {
    if !apparmor_ready() {
        return;
    }
    // Each probe prints its name when the operation succeeded. sysrq 'h' only prints the
    // help text to the kernel log; the hostname is the container's own (UTS namespace).
    let script = "mount -t tmpfs none /tmp 2>/dev/null && echo MOUNT; \
                  echo probe > /proc/sys/kernel/hostname 2>/dev/null && echo PROCSYS; \
                  echo h > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ; \
                  head -c 1 /proc/kcore >/dev/null 2>&1 && echo KCORE; \
                  echo end";
    let rt = Runtime::new();
    let confined = Bundle::new(&["sh", "-c", script]).edit(without_other_walls);
    let (code, out, err) = rt.run(&unique_id("aa-deny"), &confined);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("end"), "{out}");
    for probe in ["MOUNT", "PROCSYS", "SYSRQ", "KCORE"] {
        assert!(
            !out.contains(probe),
            "{probe} allowed under berth-default: {out}"
        );
    }

    let open = Bundle::new(&["sh", "-c", script]).edit(|c| {
        without_other_walls(c);
        c["process"]
            .as_object_mut()
            .unwrap()
            .remove("apparmorProfile");
    });
    let (code, out, err) = rt.run(&unique_id("aa-open"), &open);
    assert_eq!(code, 0, "{err}");
    for probe in ["MOUNT", "PROCSYS", "SYSRQ", "KCORE"] {
        assert!(
            out.contains(probe),
            "{probe} fails even without the profile: {out}"
        );
    }
}

/// AF_ALG (the kernel crypto API) with every other wall down: refused under berth-default,
/// allowed without it. The probe is this test binary itself, run in the container with the
/// host's libraries bound in, in the role of [`probe_af_alg`].
#[test]
fn berth_default_denies_af_alg_sockets() {
    if !apparmor_ready() {
        return;
    }
    let me = std::env::current_exe().unwrap();
    let bundle = |profile: bool| {
        let me = me.display().to_string();
        Bundle::new(&["/probe", "--exact", "probe_af_alg", "--nocapture", "--test-threads=1"])
            .with_rootfs_copy()
            .edit(move |c| {
                without_other_walls(c);
                if !profile {
                    c["process"].as_object_mut().unwrap().remove("apparmorProfile");
                }
                c["process"]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("BERTH_PROBE=af_alg"));
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.push(json!({"destination": "/probe", "type": "bind", "source": me, "options": ["bind", "ro"]}));
                for lib in ["/lib64", "/lib/x86_64-linux-gnu"] {
                    if Path::new(lib).exists() {
                        mounts.push(json!({"destination": lib, "type": "bind", "source": lib, "options": ["rbind", "ro"]}));
                    }
                }
            })
    };
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("aa-alg"), &bundle(true));
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("ALG-REFUSED"), "{out} {err}");
    let (code, out, err) = rt.run(&unique_id("aa-alg-open"), &bundle(false));
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("ALG-OPENED"),
        "AF_ALG fails even without the profile: {out} {err}"
    );
}

/// Not a test on its own: the container side of `berth_default_denies_af_alg_sockets`.
#[test]
fn probe_af_alg() {
    if std::env::var_os("BERTH_PROBE").is_none() {
        return;
    }
    use rustix::net::{socket, AddressFamily, SocketType};
    // AF_ALG is 38 on every Linux architecture.
    match socket(AddressFamily::from_raw(38), SocketType::SEQPACKET, None) {
        Ok(_) => println!("ALG-OPENED"),
        Err(e) => println!("ALG-REFUSED {e}"),
    }
}

/// A profile named in the spec is the one the process runs under, and its rules hold.
#[test]
fn apparmor_profile_in_the_spec_is_honoured() {
    if !apparmor_ready() {
        return;
    }
    let name = unique_id("berth-test-aa");
    let _profile = TestProfile::load(format!(
        "abi <abi/3.0>,\nprofile {name} flags=(attach_disconnected) {{\n  file,\n  capability,\n  deny /etc/passwd r,\n}}\n"
    ));
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/attr/current; cat /etc/group >/dev/null && echo GROUP; cat /etc/passwd >/dev/null 2>&1 && echo PASSWD; true",
    ])
    .edit(|c| c["process"]["apparmorProfile"] = json!(name));
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&unique_id("aa-own"), &b);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("{name} (enforce)")), "{out}");
    assert!(out.contains("GROUP") && !out.contains("PASSWD"), "{out}");
}

/// `exec` into a running container gets the container's profile, or the one asked for.
#[test]
fn exec_runs_under_the_profile() {
    if !apparmor_ready() {
        return;
    }
    let rt = Runtime::new();
    let id = unique_id("aa-exec");
    rt.create(&id, &Bundle::new(&["sleep", "60"]), true);
    let cur = rt.ok(&["exec", &id, "cat", "/proc/self/attr/current"]);
    assert_eq!(cur.trim(), "berth-default (enforce)");
    let o = rt.out(&["exec", "--apparmor", "berth-no-such-profile", &id, "true"]);
    assert!(!o.status.success(), "unknown profile accepted");
    rt.ok(&["delete", "--force", &id]);
}

/// berth-default lets a container trace only its own processes: even with SYS_PTRACE it
/// cannot inspect the runtime (the init of a created container, still unconfined).
#[test]
fn berth_default_refuses_ptrace_of_the_runtime() {
    if !apparmor_ready() {
        return;
    }
    let rt = Runtime::new();
    let with_ptrace = |profile: bool| {
        Bundle::new(&["true"]).edit(move |c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_PTRACE"));
            }
            if !profile {
                c["process"]
                    .as_object_mut()
                    .unwrap()
                    .remove("apparmorProfile");
            }
        })
    };
    for (profile, readable) in [(true, false), (false, true)] {
        let id = unique_id("aa-ptrace");
        rt.create(&id, &with_ptrace(profile), false);
        let o = rt.out(&[
            "exec",
            "--cap",
            "CAP_SYS_PTRACE",
            &id,
            "sh",
            "-c",
            "readlink /proc/1/exe >/dev/null 2>&1 && echo READ; echo end",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("end"),
            "{out} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(out.contains("READ"), readable, "profile {profile}: {out}");
        rt.ok(&["delete", "--force", &id]);
    }
}

/// A spec naming an LSM the kernel lacks is refused, not run unconfined.
#[test]
fn labels_for_an_absent_lsm_are_refused() {
    if !is_root() {
        return;
    }
    let rt = Runtime::new();
    let (field, value, absent) = if apparmor::enabled() {
        (
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            !selinux::enabled(),
        )
    } else {
        ("apparmorProfile", "berth-default", true)
    };
    if !absent {
        eprintln!("SKIP: both AppArmor and SELinux present");
        return;
    }
    let b = Bundle::new(&["true"]).edit(|c| c["process"][field] = Value::String(value.into()));
    let (code, _, err) = rt.run(&unique_id("lsm-absent"), &b);
    assert_ne!(code, 0);
    assert!(err.contains("not enabled in this kernel"), "{err}");
}

/// SELinux: the process label and the mount label are applied, and a container cannot
/// read another container's files (different MCS categories).
#[test]
fn selinux_labels_separate_containers() {
    if !selinux_ready() {
        return;
    }
    let (ptype, ftype) = selinux_container_types();
    let a_proc = format!("system_u:system_r:{ptype}:s0:c1,c2");
    let a_file = format!("system_u:object_r:{ftype}:s0:c1,c2");
    let b_proc = format!("system_u:system_r:{ptype}:s0:c3,c4");

    let rt = Runtime::new();
    // A file of container A (its categories), in a volume both containers mount.
    let vol = tempfile::tempdir().unwrap();
    let secret = vol.path().join("secret");
    std::fs::write(&secret, "a-only\n").unwrap();
    chcon(vol.path(), &format!("system_u:object_r:{ftype}:s0"), false);
    chcon(&secret, &a_file, false);
    let script = "cat /proc/self/attr/current; echo; \
                  cat /vol/secret 2>/dev/null || echo DENIED; \
                  grep ' /dev/shm ' /proc/self/mountinfo";
    let with = |proc_label: &str| {
        let proc_label = proc_label.to_string();
        let mount_label = a_file.clone();
        let vol = vol.path().display().to_string();
        let b = Bundle::new(&["sh", "-c", script])
            .with_rootfs_copy()
            .edit(move |c| {
                c["process"]["selinuxLabel"] = Value::String(proc_label);
                c["linux"]["mountLabel"] = Value::String(mount_label);
                c["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "ro"]}),
                );
            });
        // The image's files: readable by every container (level s0, no categories).
        chcon(&b.rootfs(), &format!("system_u:object_r:{ftype}:s0"), true);
        b
    };
    let (code, out, err) = rt.run(&unique_id("se-a"), &with(&a_proc));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&a_proc), "{out}");
    assert!(out.contains("a-only"), "A cannot read its own file: {out}");
    assert!(
        out.contains(&format!("context=\"{a_file}\"")),
        "/dev/shm not mounted with context {a_file}: {out}"
    );

    let (code, out, err) = rt.run(&unique_id("se-b"), &with(&b_proc));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&b_proc), "{out}");
    assert!(
        out.contains("DENIED") && !out.contains("a-only"),
        "B read A's file: {out}"
    );
}

/// The container process and file types of the loaded policy: container-selinux's
/// `container_t` (Fedora, RHEL), else the kernel matrix's test module (tests/vm/selinux).
fn selinux_container_types() -> (&'static str, &'static str) {
    for (p, f) in [
        ("container_t", "container_file_t"),
        ("berth_test_container_t", "berth_test_file_t"),
    ] {
        if valid_context(&format!("system_u:system_r:{p}:s0")) {
            return (p, f);
        }
    }
    panic!(
        "the loaded SELinux policy has no container domain (container_t or berth_test_container_t)"
    );
}

/// Whether the loaded policy knows `context` (selinuxfs validates what is written).
fn valid_context(context: &str) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/sys/fs/selinux/context")
        .and_then(|mut f| f.write_all(context.as_bytes()))
        .is_ok()
}

fn chcon(path: &std::path::Path, label: &str, recursive: bool) {
    let mut c = Command::new("chcon");
    if recursive {
        c.arg("-R");
    }
    let st = c.arg(label).arg(path).status().expect("chcon");
    assert!(st.success(), "chcon {label} {}", path.display());
}
