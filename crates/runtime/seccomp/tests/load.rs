//! Installs compiled filters for real, in a child process: this test binary re-executed
//! to run only `child`, so the filters never touch the test runner itself.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use oci_spec::runtime::LinuxSeccomp;

const CHILD_ENV: &str = "BERTH_SECCOMP_TEST_CHILD";
const EXDEV: i32 = 18;

/// Allow by default; refuse namespaces and mounts with EPERM, make `faccessat` fail
/// with EXDEV, notify on `acct` (never called) so a listener is requested, and
/// synchronise threads (TSYNC together with a listener needs TSYNC_ESRCH).
const PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
  "syscalls": [
    {"names": ["unshare", "mount", "setns", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
    {"names": ["access", "faccessat", "faccessat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18},
    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
     "args": [{"index": 0, "value": 4194304, "valueTwo": 4194304, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}
  ]
}"#;

fn profile() -> LinuxSeccomp {
    serde_json::from_str(PROFILE).unwrap()
}

#[test]
fn filter_is_enforced_in_a_child() {
    let filter = berth_seccomp::compile(&profile()).unwrap();
    assert!(filter.wants_listener());
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("seccomp-child-ok"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child side; does nothing unless started by `filter_is_enforced_in_a_child`.
#[test]
fn child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Through the cache, as the runtime does: the second call is a cache hit.
    let first = berth_seccomp::compile_cached(&profile(), dir.path()).unwrap();
    let filter = berth_seccomp::compile_cached(&profile(), dir.path()).unwrap();
    assert_eq!(first, filter);

    rustix::thread::set_no_new_privs(true).unwrap();
    let listener = filter.load().unwrap();
    assert!(listener.is_some(), "NOTIFY rule must give a listener fd");

    assert!(rustix::process::getpid().as_raw_nonzero().get() > 0);
    rustix::fs::stat("/").unwrap();
    let unshare = berth_sys::unshare(berth_sys::NamespaceFlags::USER).unwrap_err();
    assert_eq!(unshare.errno(), Some(1));
    let mount = rustix::mount::mount(
        "none",
        "/",
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap_err();
    assert_eq!(mount.raw_os_error(), 1);
    let access = rustix::fs::access("/", rustix::fs::Access::EXISTS).unwrap_err();
    assert_eq!(access.raw_os_error(), EXDEV);
    // personality(READ_IMPLIES_EXEC) is refused with EINVAL; PER_LINUX passes.
    let refused = berth_sys::personality(0x0040_0000).unwrap_err();
    assert_eq!(refused.errno(), Some(22));
    berth_sys::personality(0).unwrap();
    println!("seccomp-child-ok");
}
