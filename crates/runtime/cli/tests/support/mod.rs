//! Shared helpers for the runtime's integration tests: bundles made from the busybox
//! fixture, a private state root per test, and cleanup of every container on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Root is required to create namespaces and cgroups; tests skip (loudly) without it.
pub fn is_root() -> bool {
    if rustix_uid() == 0 {
        true
    } else {
        eprintln!("SKIP: needs root");
        false
    }
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
}

/// The busybox root filesystem of the project's fixtures, built on first use.
pub fn fixture_rootfs() -> PathBuf {
    let cache =
        std::env::var("BERTH_FIXTURES").unwrap_or_else(|_| "/var/cache/berth-fixtures".into());
    let rootfs = Path::new(&cache).join("busybox/rootfs");
    if !rootfs.join("bin/busybox").exists() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tests/fixtures/build-images.sh");
        let st = Command::new("bash")
            .arg(script)
            .arg("busybox")
            .status()
            .expect("run build-images.sh");
        assert!(st.success(), "building the busybox fixture failed");
    }
    rootfs
}

/// A unique container ID for this test process.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A bundle directory with Berth's default config.json and the fixture rootfs.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// Default spec running `args`, non-terminal, root filesystem read-only. The rootfs is
    /// the shared fixture: mounts must target paths that exist in it (the runtime creates
    /// missing mount points in the rootfs); use [`Bundle::with_rootfs_copy`] otherwise.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|s| Value::String(s.to_string())).collect();
        config["root"]["path"] = Value::String(fixture_rootfs().display().to_string());
        Bundle { dir, config }
    }

    /// Use a private, writable copy of the fixture rootfs (for tests that plant files).
    pub fn with_rootfs_copy(mut self) -> Bundle {
        let copy = self.dir.path().join("rootfs");
        // Not the SELinux context: the fixture's (unlabeled, on its file system) may not
        // be creatable on /tmp under an enforcing policy; the copy takes /tmp's default.
        let st = Command::new("cp")
            .args(["-a", "--no-preserve=context"])
            .arg(fixture_rootfs())
            .arg(&copy)
            .status()
            .unwrap();
        assert!(st.success());
        self.config["root"]["path"] = Value::String("rootfs".into());
        self.config["root"]["readonly"] = Value::Bool(false);
        self
    }

    pub fn rootfs(&self) -> PathBuf {
        let p = self.config["root"]["path"].as_str().unwrap();
        if p.starts_with('/') {
            PathBuf::from(p)
        } else {
            self.dir.path().join(p)
        }
    }

    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Bundle {
        f(&mut self.config);
        self
    }

    pub fn write(&self) -> &Path {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
        self.dir.path()
    }
}

/// A runtime with its own state root; deletes every container it knows on drop.
pub struct Runtime {
    pub root: tempfile::TempDir,
    pub bin: PathBuf,
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("berth-rt-")
                .tempdir_in("/run")
                .unwrap(),
            bin: PathBuf::from(BIN),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `run` a bundle to completion; returns (exit code, stdout, stderr).
    pub fn run(&self, id: &str, bundle: &Bundle) -> (i32, String, String) {
        let dir = bundle.write();
        let o = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(dir)
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `create` (or `run --detach`, with `detach`) a bundle. The container keeps the stdio
    /// it is given, so it gets files, not pipes a caller would wait on forever.
    pub fn create(&self, id: &str, bundle: &Bundle, detach: bool) {
        let dir = bundle.write();
        let out = std::fs::File::create(dir.join("stdout")).unwrap();
        let err = std::fs::File::create(dir.join("stderr")).unwrap();
        let mut c = self.cmd();
        if detach {
            c.args(["run", "--detach"]);
        } else {
            c.arg("create");
        }
        let st = c
            .arg("--bundle")
            .arg(dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "create {id}: {}",
            std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        );
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth-runtime {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn status(&self, id: &str) -> String {
        let v: Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        v["status"].as_str().unwrap().to_string()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let out = self.out(&["list", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.out(&["delete", "--force", id]);
        }
    }
}

/// Whether a kernel feature a test needs is present. Without it the test is skipped
/// loudly, unless `BERTH_REQUIRE=<feature>[,…]` (set by the kernel-matrix runner in guests
/// that must have it) names the feature: then its absence fails the test, so a guest
/// configured wrongly can never pass by skipping.
pub fn require(feature: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let required = std::env::var("BERTH_REQUIRE").unwrap_or_default();
    if required.split(',').any(|f| f.trim() == feature) {
        panic!("{feature} is required here (BERTH_REQUIRE) but this kernel lacks it");
    }
    eprintln!("SKIP: needs {feature}");
    false
}

/// Whether the host runs cgroup v2 only (cgroup2 mounted at /sys/fs/cgroup).
pub fn cgroup_v2_only() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(4) == Some(&"/sys/fs/cgroup")
                && l.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("cgroup2 "))
        })
    })
}

/// Every capability the kernel knows, as OCI names.
pub fn all_capabilities() -> Vec<Value> {
    const NAMES: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
    ];
    NAMES
        .iter()
        .map(|n| Value::String(format!("CAP_{n}")))
        .collect()
}

/// Takes every other wall down: all capabilities, no seccomp filter, no masked or
/// read-only paths. What is still denied then is denied by the LSM alone.
pub fn without_other_walls(c: &mut Value) {
    let caps = Value::Array(all_capabilities());
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = caps.clone();
    }
    c["process"]["noNewPrivileges"] = Value::Bool(false);
    if let Some(l) = c["linux"].as_object_mut() {
        l.remove("seccomp");
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    }
}
