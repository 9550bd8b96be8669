//! The baseline `config.json` every case starts from, and small helpers to edit
//! it. Specs are plain JSON values so a case can also write configs a typed
//! model would reject (the `*_fail` cases need invalid ones).

use serde_json::{json, Map, Value};

use crate::facts::CHECKER_PATH;

/// The capabilities runc and Docker grant by default.
pub(crate) const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The baseline spec: the checker as the process, the usual mounts, masked
/// and read-only paths, new pid/net/ipc/uts/mount namespaces and the given
/// cgroup path.
pub(crate) fn base(cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": [CHECKER_PATH],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "berth-conformance",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/proc/scsi", "/sys/firmware"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Sets the value at a JSON pointer such as `/linux/sysctl`, creating
/// intermediate objects.
pub(crate) fn set(spec: &mut Value, pointer: &str, value: Value) {
    let mut cur = spec;
    let parts: Vec<&str> = pointer.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, parents)) = parts.split_last() else {
        *cur = value;
        return;
    };
    for part in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        map.insert((*last).to_string(), value);
    }
}

/// Appends to the array at `pointer`, creating it when missing.
pub(crate) fn push(spec: &mut Value, pointer: &str, value: Value) {
    match spec.pointer_mut(pointer) {
        Some(Value::Array(items)) => items.push(value),
        _ => set(spec, pointer, Value::Array(vec![value])),
    }
}

/// Removes the mount at `destination`.
pub(crate) fn remove_mount(spec: &mut Value, destination: &str) {
    if let Some(Value::Array(mounts)) = spec.pointer_mut("/mounts") {
        mounts.retain(|m| m.get("destination").and_then(Value::as_str) != Some(destination));
    }
}

/// Replaces the namespace list with `types` (no paths).
pub(crate) fn namespaces(spec: &mut Value, types: &[&str]) {
    let list: Vec<Value> = types.iter().map(|t| json!({ "type": t })).collect();
    set(spec, "/linux/namespaces", Value::Array(list));
}

/// The process that runs `sh -c script` instead of the checker.
pub(crate) fn shell(spec: &mut Value, script: &str) {
    set(spec, "/process/args", json!(["/bin/sh", "-c", script]));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn base_parses_as_an_oci_spec() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(base("/berth-test-x")).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("berth-conformance"));
    }

    #[test]
    fn set_and_push_create_paths() {
        let mut spec = json!({});
        set(&mut spec, "/linux/sysctl/kernel.x", json!("1"));
        assert_eq!(spec["linux"]["sysctl"]["kernel.x"], "1");
        push(&mut spec, "/linux/devices", json!({"path": "/dev/a"}));
        push(&mut spec, "/linux/devices", json!({"path": "/dev/b"}));
        assert_eq!(spec["linux"]["devices"].as_array().unwrap().len(), 2);
        let mut spec = base("/x");
        remove_mount(&mut spec, "/sys/fs/cgroup");
        assert!(!spec.to_string().contains("\"/sys/fs/cgroup\""));
        namespaces(&mut spec, &["pid"]);
        assert_eq!(spec["linux"]["namespaces"], json!([{"type": "pid"}]));
    }
}
