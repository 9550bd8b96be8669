//! Cases that hand a spec to the in-container checker.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use anyhow::Result;
use serde_json::json;

use crate::driver::context::Ctx;
use crate::driver::spec::{self, push, set};
use crate::facts::CHECKER_PATH;

/// The baseline spec as is.
pub(crate) fn default(c: &mut Ctx<'_>) -> Result<()> {
    let spec = c.spec();
    c.check_spec(&spec)
}

/// process.args, cwd and env.
pub(crate) fn process(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/args",
        json!([CHECKER_PATH, "an argument with spaces", "--flag=x", ""]),
    );
    set(&mut spec, "/process/cwd", json!("/tmp"));
    push(
        &mut spec,
        "/process/env",
        json!("BERTH_CONFORMANCE=env value=with equals"),
    );
    push(&mut spec, "/process/env", json!("EMPTY="));
    c.check_spec(&spec)
}

/// A non-root user with additional groups.
pub(crate) fn process_user(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/user",
        json!({ "uid": 1000, "gid": 1000, "additionalGids": [5, 100] }),
    );
    c.check_spec(&spec)
}

/// process.user.umask.
pub(crate) fn process_umask(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/process/user/umask", json!(0o077));
    c.check_spec(&spec)
}

/// All five capability sets, with an ambient capability.
pub(crate) fn process_capabilities(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    let caps = json!([
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_RAW",
        "CAP_SYS_CHROOT",
        "CAP_SETUID",
        "CAP_SETGID"
    ]);
    set(
        &mut spec,
        "/process/capabilities",
        json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
            "ambient": ["CAP_KILL"],
        }),
    );
    c.check_spec(&spec)?;
    // The same for a non-root user, where only ambient capabilities survive exec.
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/capabilities",
        json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
            "ambient": ["CAP_KILL", "CAP_NET_RAW"],
        }),
    );
    set(
        &mut spec,
        "/process/user",
        json!({ "uid": 1000, "gid": 1000 }),
    );
    c.check_spec(&spec)
}

/// An unknown capability name must make create fail (config.md: values that
/// cannot be mapped MUST cause an error).
pub(crate) fn process_capabilities_fail(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/capabilities/bounding",
        json!(["CAP_KILL", "CAP_BERTH_NO_SUCH_CAP"]),
    );
    c.expect_create_fails(&spec, "create rejects an unknown capability")
}

/// Several rlimits below the host's hard limits.
pub(crate) fn process_rlimits(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/rlimits",
        json!([
            { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000 },
            { "type": "RLIMIT_CORE", "soft": 4096, "hard": 8192 },
            { "type": "RLIMIT_NPROC", "soft": 900, "hard": 1000 },
            { "type": "RLIMIT_MSGQUEUE", "soft": 8192, "hard": 8192 },
        ]),
    );
    c.check_spec(&spec)
}

/// An unknown rlimit type must make create fail.
pub(crate) fn process_rlimits_fail(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/rlimits",
        json!([{ "type": "RLIMIT_BERTH_NOPE", "soft": 1, "hard": 1 }]),
    );
    c.expect_create_fails(&spec, "create rejects an unknown rlimit type")
}

/// process.oomScoreAdj.
pub(crate) fn process_oom_score_adj(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/process/oomScoreAdj", json!(500));
    c.check_spec(&spec)
}

/// hostname and domainname.
pub(crate) fn hostname(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/hostname", json!("berth-hostname-test"));
    set(&mut spec, "/domainname", json!("berth.test"));
    c.check_spec(&spec)
}

/// A tmpfs with options, a read-only bind mount of a host directory and a
/// bind mount of a host file.
pub(crate) fn mounts(c: &mut Ctx<'_>) -> Result<()> {
    let host_dir = c.dir().join("bind-source");
    fs::create_dir_all(&host_dir)?;
    fs::write(host_dir.join("hello"), "hello")?;
    let host_file = c.dir().join("bind-file");
    fs::write(&host_file, "file")?;
    let mut spec = c.spec();
    push(
        &mut spec,
        "/mounts",
        json!({
            "destination": "/mnt/tmpfs", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "mode=700", "size=1024k"]
        }),
    );
    push(
        &mut spec,
        "/mounts",
        json!({
            "destination": "/mnt/bind-ro", "type": "bind", "source": host_dir,
            "options": ["rbind", "ro", "nosuid"]
        }),
    );
    push(
        &mut spec,
        "/mounts",
        json!({
            "destination": "/mnt/bind-file", "type": "bind", "source": host_file,
            "options": ["bind", "rw"]
        }),
    );
    c.check_spec(&spec)
}

/// root.readonly = true.
pub(crate) fn root_readonly_true(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/root/readonly", json!(true));
    c.check_spec(&spec)
}

/// root.readonly = false.
pub(crate) fn root_readonly_false(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/root/readonly", json!(false));
    c.check_spec(&spec)
}

/// linux.devices of each type, with mode and owner.
pub(crate) fn linux_devices(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/linux/devices",
        json!([
            { "path": "/dev/berth-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o644, "uid": 1, "gid": 2 },
            { "path": "/dev/berth-zero", "type": "u", "major": 1, "minor": 5, "fileMode": 0o600, "uid": 0, "gid": 0 },
            { "path": "/dev/berth-fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640, "uid": 0, "gid": 0 },
            { "path": "/dev/berth-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600, "uid": 0, "gid": 0 },
        ]),
    );
    c.check_spec(&spec)
}

/// maskedPaths over a directory with files and a file with content.
pub(crate) fn linux_masked_paths(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    push(&mut spec, "/linux/maskedPaths", json!("/berth-masked-dir"));
    push(&mut spec, "/linux/maskedPaths", json!("/berth-masked-file"));
    push(
        &mut spec,
        "/linux/maskedPaths",
        json!("/berth-masked-absent"),
    );
    c.check_spec_with(&spec, |b| {
        fs::create_dir_all(b.rootfs_path("/berth-masked-dir"))?;
        fs::write(b.rootfs_path("/berth-masked-dir/secret"), "secret")?;
        fs::write(b.rootfs_path("/berth-masked-file"), "secret")?;
        Ok(())
    })
}

/// readonlyPaths over a directory and a file.
pub(crate) fn linux_readonly_paths(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    push(&mut spec, "/linux/readonlyPaths", json!("/berth-ro-dir"));
    push(&mut spec, "/linux/readonlyPaths", json!("/berth-ro-file"));
    c.check_spec_with(&spec, |b| {
        fs::create_dir_all(b.rootfs_path("/berth-ro-dir"))?;
        let file = b.rootfs_path("/berth-ro-file");
        fs::write(&file, "data")?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666))?;
        Ok(())
    })
}

/// Namespaced sysctls (net and ipc).
pub(crate) fn linux_sysctl(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/linux/sysctl",
        json!({
            "net.ipv4.ip_forward": "1",
            "net.ipv4.ip_local_port_range": "20000 40000",
            "kernel.shmmni": "4000",
        }),
    );
    c.check_spec(&spec)
}

/// A seccomp profile that makes some syscalls fail with chosen errnos.
pub(crate) fn linux_seccomp(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" },
                { "names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18 },
                { "names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38 }
            ]
        }),
    );
    c.check_spec(&spec)
}

/// Namespaces not in the spec are shared with the runtime.
pub(crate) fn linux_ns_itype(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    spec::namespaces(&mut spec, &["pid", "mount"]);
    // Without its own network namespace the container may not mount sysfs.
    spec::remove_mount(&mut spec, "/sys/fs/cgroup");
    spec::remove_mount(&mut spec, "/sys");
    spec::remove_mount(&mut spec, "/dev/mqueue");
    set(&mut spec, "/linux/maskedPaths", json!([]));
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    c.check_spec(&spec)
}

/// Namespaces in the spec without a path are new.
pub(crate) fn linux_ns_nopath(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    spec::namespaces(
        &mut spec,
        &["pid", "network", "ipc", "uts", "mount", "cgroup"],
    );
    c.check_spec(&spec)
}

/// Namespaces with a path are joined.
pub(crate) fn linux_ns_path(c: &mut Ctx<'_>) -> Result<()> {
    let holder = c.ns_holder()?;
    let mut spec = c.spec();
    let list: Vec<serde_json::Value> = ["pid", "network", "ipc", "uts"]
        .iter()
        .map(|t| json!({ "type": t, "path": holder.path(t) }))
        .chain(std::iter::once(json!({ "type": "mount" })))
        .collect();
    set(&mut spec, "/linux/namespaces", json!(list));
    // Setting a hostname in a UTS namespace the container does not own is
    // allowed by the spec but refused by some runtimes; not what this tests.
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    c.check_spec(&spec)
}

/// A user namespace with uid and gid mappings.
pub(crate) fn linux_uid_mappings(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    push(&mut spec, "/linux/namespaces", json!({ "type": "user" }));
    set(
        &mut spec,
        "/linux/uidMappings",
        json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]),
    );
    set(
        &mut spec,
        "/linux/gidMappings",
        json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]),
    );
    spec::remove_mount(&mut spec, "/sys/fs/cgroup");
    c.check_spec(&spec)
}

fn rootfs_propagation(c: &mut Ctx<'_>, mode: &str) -> Result<()> {
    let mut spec = c.spec();
    set(&mut spec, "/linux/rootfsPropagation", json!(mode));
    c.check_spec(&spec)
}

/// rootfsPropagation private.
pub(crate) fn linux_rootfs_propagation_private(c: &mut Ctx<'_>) -> Result<()> {
    rootfs_propagation(c, "private")
}

/// rootfsPropagation shared.
pub(crate) fn linux_rootfs_propagation_shared(c: &mut Ctx<'_>) -> Result<()> {
    rootfs_propagation(c, "shared")
}

/// rootfsPropagation slave.
pub(crate) fn linux_rootfs_propagation_slave(c: &mut Ctx<'_>) -> Result<()> {
    rootfs_propagation(c, "slave")
}

/// rootfsPropagation unbindable.
pub(crate) fn linux_rootfs_propagation_unbindable(c: &mut Ctx<'_>) -> Result<()> {
    rootfs_propagation(c, "unbindable")
}

/// process.apparmorProfile (only where AppArmor is enabled).
pub(crate) fn linux_apparmor(c: &mut Ctx<'_>) -> Result<()> {
    if !c.env.host_facts.apparmor_enabled {
        c.skip_case("AppArmor is not enabled on this host");
        return Ok(());
    }
    let mut spec = c.spec();
    set(&mut spec, "/process/apparmorProfile", json!("unconfined"));
    c.check_spec(&spec)
}

/// The container process and file types of the loaded SELinux policy: container-selinux's
/// `container_t` (Fedora, RHEL), else the kernel matrix's test module (tests/vm/selinux).
fn selinux_types() -> (&'static str, &'static str) {
    let valid = |context: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/sys/fs/selinux/context")
            .and_then(|mut f| std::io::Write::write_all(&mut f, context.as_bytes()))
            .is_ok()
    };
    if !valid("system_u:system_r:container_t:s0")
        && valid("system_u:system_r:berth_test_container_t:s0")
    {
        ("berth_test_container_t", "berth_test_file_t")
    } else {
        ("container_t", "container_file_t")
    }
}

/// process.selinuxLabel (only where SELinux is enabled).
pub(crate) fn linux_selinux_label(c: &mut Ctx<'_>) -> Result<()> {
    if !c.env.host_facts.selinux_enabled {
        c.skip_case("SELinux is not enabled on this host");
        return Ok(());
    }
    let mut spec = c.spec();
    set(
        &mut spec,
        "/process/selinuxLabel",
        json!(format!("system_u:system_r:{}:s0:c1,c2", selinux_types().0)),
    );
    c.check_spec(&spec)
}

/// linux.mountLabel (only where SELinux is enabled).
pub(crate) fn linux_mount_label(c: &mut Ctx<'_>) -> Result<()> {
    if !c.env.host_facts.selinux_enabled {
        c.skip_case("SELinux is not enabled on this host");
        return Ok(());
    }
    let mut spec = c.spec();
    set(
        &mut spec,
        "/linux/mountLabel",
        json!(format!("system_u:object_r:{}:s0:c1,c2", selinux_types().1)),
    );
    c.check_spec(&spec)
}
