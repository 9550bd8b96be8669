//! Checks that `linux.resources` limits are visible from inside the container
//! through `/sys/fs/cgroup` (v1 or v2), when the spec mounts it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxResources, Spec};

use super::read_bounded;
use crate::tap::TapLine;

const ROOT: &str = "/sys/fs/cgroup";

pub(super) fn check(spec: &Spec, out: &mut Vec<TapLine>) {
    let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().clone()) else {
        return;
    };
    let mounted = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new(ROOT));
    let view = CgroupView::detect();
    for (desc, controller, v1, v2, want) in expectations(&resources) {
        let desc = format!("{desc} visible in the container's cgroup");
        if !mounted {
            out.push(TapLine::skip(
                desc,
                "the spec does not mount /sys/fs/cgroup",
            ));
            continue;
        }
        let file = if view.unified { v2 } else { v1 };
        if file.is_empty() {
            continue;
        }
        let Some(path) = view.file(controller, file) else {
            out.push(TapLine::fail(
                desc,
                format!("{file} not found for controller {controller}"),
            ));
            continue;
        };
        match read_bounded(&path.to_string_lossy()) {
            Ok(actual) => out.push(TapLine::check(
                actual.trim() == want(view.unified),
                desc,
                format!(
                    "{} is {:?}, want {:?}",
                    path.display(),
                    actual.trim(),
                    want(view.unified)
                ),
            )),
            Err(e) => out.push(TapLine::fail(desc, format!("{}: {e}", path.display()))),
        }
    }
}

type Want = Box<dyn Fn(bool) -> String>;

/// (description, v1 controller, v1 file, v2 file, expected value given "is v2").
fn expectations(
    res: &LinuxResources,
) -> Vec<(String, &'static str, &'static str, &'static str, Want)> {
    let mut list: Vec<(String, &'static str, &'static str, &'static str, Want)> = Vec::new();
    if let Some(mem) = res.memory() {
        if let Some(limit) = mem.limit().filter(|l| *l > 0) {
            list.push((
                format!("memory.limit {limit}"),
                "memory",
                "memory.limit_in_bytes",
                "memory.max",
                Box::new(move |_| limit.to_string()),
            ));
        }
        if let Some(res) = mem.reservation().filter(|l| *l > 0) {
            list.push((
                format!("memory.reservation {res}"),
                "memory",
                "memory.soft_limit_in_bytes",
                "memory.low",
                Box::new(move |_| res.to_string()),
            ));
        }
    }
    if let Some(pids) = res.pids() {
        let limit = pids.limit();
        list.push((
            format!("pids.limit {limit}"),
            "pids",
            "pids.max",
            "pids.max",
            Box::new(move |_| {
                if limit > 0 {
                    limit.to_string()
                } else {
                    "max".into()
                }
            }),
        ));
    }
    if let Some(cpu) = res.cpu() {
        if let Some(shares) = cpu.shares() {
            list.push((
                format!("cpu.shares {shares}"),
                "cpu",
                "cpu.shares",
                "cpu.weight",
                Box::new(move |v2| {
                    if v2 {
                        // The conversion runc and crun use (and the kernel docs suggest).
                        (1 + (shares.saturating_sub(2) * 9999) / 262_142).to_string()
                    } else {
                        shares.to_string()
                    }
                }),
            ));
        }
        if let Some(quota) = cpu.quota() {
            let period = cpu.period().unwrap_or(100_000);
            list.push((
                format!("cpu.quota {quota}"),
                "cpu",
                "cpu.cfs_quota_us",
                "cpu.max",
                Box::new(move |v2| {
                    if v2 {
                        format!(
                            "{} {period}",
                            if quota > 0 {
                                quota.to_string()
                            } else {
                                "max".into()
                            }
                        )
                    } else {
                        quota.to_string()
                    }
                }),
            ));
        }
        if let (Some(period), None) = (cpu.period(), cpu.quota()) {
            list.push((
                format!("cpu.period {period}"),
                "cpu",
                "cpu.cfs_period_us",
                "cpu.max",
                Box::new(move |v2| {
                    if v2 {
                        format!("max {period}")
                    } else {
                        period.to_string()
                    }
                }),
            ));
        } else if let (Some(period), Some(_)) = (cpu.period(), cpu.quota()) {
            // On v2 the quota line above already covers the period.
            list.push((
                format!("cpu.period {period}"),
                "cpu",
                "cpu.cfs_period_us",
                "",
                Box::new(move |_| period.to_string()),
            ));
        }
        if let Some(cpus) = cpu.cpus().clone() {
            list.push((
                format!("cpu.cpus {cpus}"),
                "cpuset",
                "cpuset.cpus",
                "cpuset.cpus",
                Box::new(move |_| cpus.clone()),
            ));
        }
        if let Some(mems) = cpu.mems().clone() {
            list.push((
                format!("cpu.mems {mems}"),
                "cpuset",
                "cpuset.mems",
                "cpuset.mems",
                Box::new(move |_| mems.clone()),
            ));
        }
    }
    list
}

/// How the container sees its cgroups.
struct CgroupView {
    unified: bool,
    /// (controller list, path) from /proc/self/cgroup.
    own: Vec<(String, String)>,
}

impl CgroupView {
    fn detect() -> Self {
        let unified = Path::new(ROOT).join("cgroup.controllers").exists();
        let own = read_bounded("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let _id = parts.next()?;
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect();
        Self { unified, own }
    }

    /// Where `file` of `controller` is for this process: below the controller
    /// mount at the process's own cgroup path when the whole hierarchy is
    /// visible, else at the mount itself (the runtime bound the container's
    /// cgroup there, or a cgroup namespace makes it the root).
    fn file(&self, controller: &str, file: &str) -> Option<PathBuf> {
        let (base, own) = if self.unified {
            let own = self
                .own
                .iter()
                .find(|(c, _)| c.is_empty())
                .map(|(_, p)| p.clone());
            (PathBuf::from(ROOT), own)
        } else {
            let own = self
                .own
                .iter()
                .find(|(c, _)| c.split(',').any(|x| x == controller))
                .map(|(_, p)| p.clone());
            (Path::new(ROOT).join(controller), own)
        };
        let mut candidates = Vec::new();
        if let Some(own) = own {
            let rel = own.trim_start_matches('/');
            if !rel.is_empty() && !rel.split('/').any(|c| c == "..") {
                candidates.push(base.join(rel).join(file));
            }
        }
        candidates.push(base.join(file));
        candidates.into_iter().find(|p| p.exists())
    }
}
