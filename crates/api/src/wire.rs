//! Docker's JSON shapes of Berth's objects (moby's `api/swagger.yaml`), gated by the
//! requested API version where moby's router gates them.

use std::collections::BTreeMap;

use berth_engine::{ContainerRecord, Status};
use berth_images::service::{Image, ImageSummary};
use serde_json::{json, Value};

/// Docker's zero time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Seconds since the epoch of an RFC 3339 time (0 if unparsable).
pub fn unix_seconds(t: &str) -> i64 {
    berth_engine::parse_rfc3339(t)
        .map(|ns| i64::try_from(ns / 1_000_000_000).unwrap_or(0))
        .unwrap_or(0)
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(0))
        .unwrap_or(0)
}

/// Go's `units.HumanDuration`, which `docker ps` prints.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    }
}

fn ago(t: &str) -> i64 {
    let Some(ns) = berth_engine::parse_rfc3339(t) else {
        return 0;
    };
    i64::try_from((now_ns() - ns) / 1_000_000_000).unwrap_or(0)
}

fn time_or_zero(t: &str) -> &str {
    if t.is_empty() {
        ZERO_TIME
    } else {
        t
    }
}

/// The `Status` column of `docker ps`.
pub fn status_text(r: &ContainerRecord) -> String {
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let up = format!("Up {}", human_duration(ago(&r.state.started_at)));
            match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("{up} (health: starting)"),
                Some(s) if !s.is_empty() => format!("{up} ({s})"),
                _ => up,
            }
        }
        Status::Paused => format!("Up {} (Paused)", human_duration(ago(&r.state.started_at))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            human_duration(ago(&r.state.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            human_duration(ago(&r.state.finished_at))
        ),
        Status::Dead => "Dead".into(),
    }
}

fn command_line(r: &ContainerRecord) -> String {
    let mut parts = vec![r.path.clone()];
    parts.extend(r.args.iter().cloned());
    parts.join(" ")
}

fn network_mode(r: &ContainerRecord) -> String {
    match r.host_config.network_mode.as_str() {
        "" | "default" => "none".into(),
        m => m.into(),
    }
}

fn networks(r: &ContainerRecord) -> Value {
    let mode = network_mode(r);
    let id = network_id(&mode);
    json!({ mode: {
        "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
        "NetworkID": id, "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DriverOpts": null, "DNSNames": null
    }})
}

/// A stable ID for the built-in networks.
pub fn network_id(name: &str) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for b in name.bytes().cycle().take(32) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn mounts(r: &ContainerRecord) -> Value {
    let mut out = Vec::new();
    for b in r.host_config.binds.as_deref().unwrap_or_default() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst) = (
            parts.first().copied().unwrap_or(""),
            parts.get(1).copied().unwrap_or(""),
        );
        let ro = parts
            .get(2)
            .is_some_and(|o| o.split(',').any(|x| x == "ro"));
        out.push(json!({"Type": "bind", "Source": src, "Destination": dst, "Mode": parts.get(2).copied().unwrap_or(""), "RW": !ro, "Propagation": "rprivate"}));
    }
    for (dst, _) in r.host_config.tmpfs.clone().unwrap_or_default() {
        out.push(json!({"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": "", "RW": true, "Propagation": ""}));
    }
    Value::Array(out)
}

/// One entry of `GET /containers/json`.
pub fn container_summary(r: &ContainerRecord, image_name: &str) -> Value {
    json!({
        "Id": r.id,
        "Names": [r.name],
        "Image": image_name,
        "ImageID": r.image_id,
        "Command": command_line(r),
        "Created": unix_seconds(&r.created),
        "Ports": [],
        "Labels": r.config.labels.clone().unwrap_or_default(),
        "State": r.state.status.as_str(),
        "Status": status_text(r),
        "HostConfig": { "NetworkMode": network_mode(r) },
        "NetworkSettings": { "Networks": networks(r) },
        "Mounts": mounts(r),
    })
}

/// `GET /containers/{id}/json`.
pub fn container_inspect(r: &ContainerRecord, dir: &std::path::Path) -> Value {
    let s = &r.state;
    let mut host_config = serde_json::to_value(&r.host_config).unwrap_or_else(|_| json!({}));
    if let Some(o) = host_config.as_object_mut() {
        o.insert("NetworkMode".into(), json!(network_mode(r)));
        if r.host_config.log_config.kind.is_empty() {
            o.insert(
                "LogConfig".into(),
                json!({"Type": "json-file", "Config": {}}),
            );
        }
        o.entry("PidsLimit").or_insert(Value::Null);
        // Namespace modes as dockerd reports them after create.
        if r.host_config.cgroupns_mode.is_empty() {
            o.insert("CgroupnsMode".into(), json!("private"));
        }
        if r.host_config.ipc_mode.is_empty() {
            o.insert("IpcMode".into(), json!("private"));
        }
    }
    let health = s.health.as_ref().map(|h| {
        json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|p| json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output})).collect::<Vec<_>>(),
        })
    });
    let mut config = serde_json::to_value(&r.config).unwrap_or_else(|_| json!({}));
    if let Some(o) = config.as_object_mut() {
        if r.config.hostname.is_empty() {
            o.insert("Hostname".into(), json!(r.id.get(..12).unwrap_or(&r.id)));
        }
    }
    let mut v = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status.is_running(),
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": time_or_zero(&s.started_at),
            "FinishedAt": time_or_zero(&s.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": r.log_path,
        "Name": r.name,
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": { "Name": "overlay2", "Data": {} },
        "Mounts": mounts(r),
        "Config": config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
            "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": networks(r),
        },
    });
    if let Some(h) = health {
        v["State"]["Health"] = h;
    }
    v
}

/// Docker's familiar form of a full reference (`docker.io/library/busybox:1` → `busybox:1`).
pub fn familiar(name: &str) -> String {
    match berth_images::reference::Reference::parse_normalized(name) {
        Ok(r) => r.familiar(),
        Err(_) => name.to_owned(),
    }
}

fn dangling(name: &str) -> bool {
    name.contains("<none>") || name.starts_with("berth.dangling") || name.contains("@@dangling")
}

/// One entry of `GET /images/json`.
pub fn image_summary(i: &ImageSummary) -> Value {
    let tags: Vec<String> = i
        .repo_tags
        .iter()
        .filter(|t| !dangling(t))
        .map(|t| familiar(t))
        .collect();
    let digests: Vec<String> = i.repo_digests.iter().map(|t| familiar(t)).collect();
    json!({
        "Id": i.id.to_string(),
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": i.created.as_deref().map(unix_seconds).unwrap_or(0),
        "Size": i.size,
        "SharedSize": -1,
        "VirtualSize": i.size,
        "Labels": i.labels,
        "Containers": i.containers,
    })
}

/// `GET /images/{name}/json`.
pub fn image_inspect(i: &Image) -> Value {
    let cfg = serde_json::to_value(&i.config.config).unwrap_or(Value::Null);
    json!({
        "Id": i.id.to_string(),
        "RepoTags": i.repo_tags.iter().filter(|t| !dangling(t)).map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": i.repo_digests.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": "",
        "Created": i.config.created.clone().unwrap_or_else(|| ZERO_TIME.to_owned()),
        "DockerVersion": "",
        "Author": i.config.author.clone().unwrap_or_default(),
        "Config": cfg,
        "Architecture": i.platform.architecture,
        "Variant": i.platform.variant,
        "Os": i.platform.os,
        "Size": i.size,
        "GraphDriver": { "Name": "overlay2", "Data": {} },
        "RootFS": {
            "Type": "layers",
            "Layers": i.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": ZERO_TIME },
    })
}

/// Labels as a sorted map (for filters).
pub fn labels_of(r: &ContainerRecord) -> BTreeMap<String, String> {
    r.config.labels.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_docker_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
