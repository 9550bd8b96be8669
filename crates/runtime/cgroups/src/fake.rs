//! Fake cgroup trees in a temporary directory, for unit tests.
//!
//! A fake hierarchy is a directory with regular files named like the kernel's control
//! files. A regular file keeps the last value written, which is enough to check what the
//! manager writes where; the `mountinfo` and `/proc/self/cgroup` texts handed to
//! [`Layout::parse`] point the layout at it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::layout::Layout;
use crate::manager::Manager;

/// Which layout to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    V1,
    V2,
    Hybrid,
}

/// v1 hierarchies of the fake trees (mount directory name, controllers).
const V1_ALL: &[(&str, &str)] = &[
    ("cpu,cpuacct", "cpu,cpuacct"),
    ("cpuset", "cpuset"),
    ("memory", "memory"),
    ("devices", "devices"),
    ("freezer", "freezer"),
    ("blkio", "blkio"),
    ("pids", "pids"),
    ("hugetlb", "hugetlb"),
    ("net_cls,net_prio", "net_cls,net_prio"),
    ("systemd", "name=systemd"),
];

/// This machine's hybrid shape: separate cpu/cpuacct, hugetlb only in v2.
const V1_HYBRID: &[(&str, &str)] = &[
    ("cpu", "cpu"),
    ("cpuacct", "cpuacct"),
    ("cpuset", "cpuset"),
    ("memory", "memory"),
    ("devices", "devices"),
    ("freezer", "freezer"),
    ("blkio", "blkio"),
    ("pids", "pids"),
    ("systemd", "name=systemd"),
];

pub(crate) struct Fake {
    pub(crate) root: tempfile::TempDir,
    pub(crate) layout: Layout,
}

fn files_for(controller: &str) -> &'static [(&'static str, &'static str)] {
    match controller {
        "cpu" => &[
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_burst_us", "0\n"),
            ("cpu.rt_period_us", "1000000\n"),
            ("cpu.rt_runtime_us", "0\n"),
            ("cpu.idle", "0\n"),
            (
                "cpu.stat",
                "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
            ),
        ],
        "cpuacct" => &[
            ("cpuacct.usage", "123\n"),
            ("cpuacct.stat", "user 1\nsystem 2\n"),
        ],
        "cpuset" => &[
            ("cpuset.cpus", "\n"),
            ("cpuset.mems", "\n"),
            ("cpuset.effective_cpus", "0-1\n"),
        ],
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", "\n"),
            ("memory.swappiness", "60\n"),
            ("memory.usage_in_bytes", "4096\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("memory.stat", "total_cache 5\n"),
        ],
        "devices" => &[
            ("devices.allow", ""),
            ("devices.deny", ""),
            ("devices.list", "a *:* rwm\n"),
        ],
        "freezer" => &[("freezer.state", "THAWED\n")],
        "blkio" => &[
            ("blkio.bfq.weight", "100\n"),
            ("blkio.bfq.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_bps_device", ""),
            ("blkio.throttle.read_iops_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
        "pids" => &[("pids.max", "max\n"), ("pids.current", "0\n")],
        "hugetlb" => &[("hugetlb.2MB.limit_in_bytes", "\n")],
        "net_cls" => &[("net_cls.classid", "0\n")],
        "net_prio" => &[("net_prio.ifpriomap", "\n")],
        _ => &[],
    }
}

const V2_FILES: &[(&str, &str)] = &[
    ("cgroup.subtree_control", ""),
    ("cgroup.freeze", "0\n"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("cgroup.kill", ""),
    ("cgroup.max.depth", "max\n"),
    ("cpu.weight", "100\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.idle", "0\n"),
    ("cpu.stat", "usage_usec 7\nuser_usec 3\nsystem_usec 4\n"),
    ("cpuset.cpus", "\n"),
    ("cpuset.mems", "\n"),
    ("memory.max", "max\n"),
    ("memory.high", "max\n"),
    ("memory.low", "0\n"),
    ("memory.swap.max", "max\n"),
    ("memory.current", "0\n"),
    ("memory.events", "max 0\noom 0\noom_kill 3\n"),
    ("pids.max", "max\n"),
    ("io.weight", "default 100\n"),
    ("io.max", ""),
    ("hugetlb.2MB.max", "max\n"),
    ("hugetlb.2MB.rsvd.max", "max\n"),
    ("rdma.max", ""),
];

impl Fake {
    /// A fake tree of `kind`. The caller sits in `/` everywhere except the memory
    /// hierarchy (`/agent`) and the v2 tree (`/user`), so relative paths resolve
    /// differently per hierarchy.
    pub(crate) fn new(kind: Kind) -> Fake {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let mut mountinfo = String::new();
        let mut cgroup = String::new();
        let v1: &[(&str, &str)] = match kind {
            Kind::V1 => V1_ALL,
            Kind::Hybrid => V1_HYBRID,
            Kind::V2 => &[],
        };
        for (i, (dir, ctls)) in v1.iter().enumerate() {
            let mp = base.join(dir);
            std::fs::create_dir_all(&mp).unwrap();
            std::fs::write(mp.join("cgroup.procs"), "").unwrap();
            for c in ctls.split(',') {
                for (f, v) in files_for(c) {
                    std::fs::write(mp.join(f), v).unwrap();
                }
            }
            if ctls.contains("cpuset") {
                std::fs::write(mp.join("cpuset.cpus"), "0-3\n").unwrap();
                std::fs::write(mp.join("cpuset.mems"), "0\n").unwrap();
            }
            mountinfo.push_str(&format!(
                "{} 1 0:{} / {} rw,relatime - cgroup cgroup rw,{}\n",
                30 + i,
                30 + i,
                mp.display(),
                ctls
            ));
            let caller = if *ctls == "memory" { "/agent" } else { "/" };
            cgroup.push_str(&format!("{}:{}:{}\n", i + 1, ctls, caller));
        }
        if kind != Kind::V1 {
            let mp = base.join("unified");
            std::fs::create_dir_all(mp.join("user")).unwrap();
            let ctls = if kind == Kind::V2 {
                "cpuset cpu io memory hugetlb pids rdma\n"
            } else {
                "hugetlb\n"
            };
            std::fs::write(mp.join("cgroup.controllers"), ctls).unwrap();
            std::fs::write(mp.join("cgroup.subtree_control"), "").unwrap();
            std::fs::write(mp.join("user/cgroup.controllers"), ctls).unwrap();
            std::fs::write(mp.join("user/cgroup.subtree_control"), "").unwrap();
            mountinfo.push_str(&format!(
                "99 1 0:99 / {} rw - cgroup2 cgroup2 rw\n",
                mp.display()
            ));
            cgroup.push_str("0::/user\n");
        }
        let layout = Layout::parse(&mountinfo, &cgroup)
            .unwrap()
            .with_systemd_marker(base.join("no-systemd"));
        Fake { root, layout }
    }

    pub(crate) fn path(&self) -> &Path {
        self.root.path()
    }

    /// Make the container's directories look like the kernel made them: every control
    /// file of the hierarchy's controllers (and, for v2, `cgroup.controllers` listing
    /// the root's controllers).
    pub(crate) fn populate(&self, m: &Manager) {
        for h in m.hierarchies() {
            std::fs::create_dir_all(&h.dir).unwrap();
            std::fs::write(h.dir.join("cgroup.procs"), "").unwrap();
            if h.unified {
                let ctls =
                    std::fs::read_to_string(h.mountpoint.join("cgroup.controllers")).unwrap();
                std::fs::write(h.dir.join("cgroup.controllers"), ctls).unwrap();
                for (f, v) in V2_FILES {
                    std::fs::write(h.dir.join(f), v).unwrap();
                }
            } else {
                for c in &h.controllers {
                    for (f, v) in files_for(c) {
                        std::fs::write(h.dir.join(f), v).unwrap();
                    }
                }
            }
        }
    }

    /// The container's directory in the hierarchy whose controllers include
    /// `controller` ("unified" for v2).
    pub(crate) fn dir(m: &Manager, controller: &str) -> PathBuf {
        m.hierarchies()
            .into_iter()
            .find(|h| {
                if controller == "unified" {
                    h.unified
                } else {
                    h.controllers.iter().any(|c| c == controller)
                }
            })
            .unwrap()
            .dir
    }

    /// Read a file of the container's cgroup.
    pub(crate) fn read(m: &Manager, controller: &str, file: &str) -> String {
        std::fs::read_to_string(Fake::dir(m, controller).join(file)).unwrap()
    }
}
