//! [`Manager::apply`]: sending each part of `linux.resources` to the hierarchy hosting
//! its controller.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources};

use crate::error::{Error, Result};
use crate::layout::LayoutKind;
use crate::manager::{Manager, Place};
use crate::{devices, fs, v1, v2, values};

fn unavailable(controller: &'static str, resource: &'static str) -> Error {
    Error::ControllerUnavailable {
        controller,
        resource,
        where_: String::new(),
    }
}

fn memory_requested(m: &LinuxMemory) -> bool {
    let nz = |v: Option<i64>| v.is_some_and(|v| v != 0);
    nz(m.limit())
        || nz(m.swap())
        || nz(m.reservation())
        || nz(m.kernel_tcp())
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
}

fn cpu_requested(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some_and(|v| v != 0)
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
        || c.idle().is_some_and(|v| v != 0)
}

fn cpuset_requested(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

fn blkio_requested(b: &LinuxBlockIo) -> bool {
    let list = |l: &Option<Vec<_>>| l.as_ref().is_some_and(|l: &Vec<_>| !l.is_empty());
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|l| !l.is_empty())
        || list(b.throttle_read_bps_device())
        || list(b.throttle_write_bps_device())
        || list(b.throttle_read_iops_device())
        || list(b.throttle_write_iops_device())
}

fn class_id_requested(n: &LinuxNetwork) -> bool {
    n.class_id().is_some_and(|c| c != 0)
}

fn priorities_requested(n: &LinuxNetwork) -> bool {
    n.priorities().as_ref().is_some_and(|p| !p.is_empty())
}

impl Manager {
    /// Write `resources` into the cgroup: at create time, and again for `update` (only
    /// what the spec sets is written). A part whose controller is absent fails with
    /// [`Error::ControllerUnavailable`] unless its values are all zero or unset.
    /// `unified` entries are written last and win over the converted values.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if let Some(p) = resources.pids() {
            match self.place("pids") {
                Some(Place::V1(d)) => v1::pids_max(d, p.limit())?,
                // Unlimited needs no controller.
                Some(Place::V2(d))
                    if p.limit() > 0 || v2::controllers(d)?.iter().any(|c| c == "pids") =>
                {
                    v2::pids(d, p.limit())?;
                }
                Some(Place::V2(_)) => {}
                None if p.limit() > 0 => return Err(unavailable("pids", "pids.limit")),
                None => {}
            }
        }
        if let Some(m) = resources.memory().as_ref().filter(|m| memory_requested(m)) {
            match self.place("memory") {
                Some(Place::V1(d)) => v1::memory(d, m)?,
                Some(Place::V2(d)) => v2::memory(d, m)?,
                None => return Err(unavailable("memory", "memory")),
            }
        }
        if let Some(c) = resources.cpu() {
            if cpu_requested(c) || c.idle().is_some() {
                match self.place("cpu") {
                    Some(Place::V1(d)) => v1::cpu(d, c)?,
                    Some(Place::V2(d)) => v2::cpu(d, c)?,
                    None if cpu_requested(c) => return Err(unavailable("cpu", "cpu")),
                    None => {}
                }
            }
            if cpuset_requested(c) {
                match self.place("cpuset") {
                    Some(Place::V1(d)) => v1::cpuset(d, c)?,
                    Some(Place::V2(d)) => v2::cpuset(d, c)?,
                    None => return Err(unavailable("cpuset", "cpu.cpus/cpu.mems")),
                }
            }
        }
        if let Some(b) = resources.block_io().as_ref().filter(|b| blkio_requested(b)) {
            match self.place("blkio") {
                Some(Place::V1(d)) => v1::blkio(d, b)?,
                Some(Place::V2(d)) => v2::io(d, b)?,
                None => return Err(unavailable("blkio", "blockIO")),
            }
        }
        if let Some(limits) = resources
            .hugepage_limits()
            .as_ref()
            .filter(|l| !l.is_empty())
        {
            match self.place("hugetlb") {
                Some(Place::V1(d)) => v1::hugetlb(d, limits)?,
                Some(Place::V2(d)) => v2::hugetlb(d, limits)?,
                None => return Err(unavailable("hugetlb", "hugepageLimits")),
            }
        }
        if let Some(n) = resources.network() {
            if class_id_requested(n) {
                match self.place("net_cls") {
                    Some(Place::V1(d)) => v1::net_cls(d, n)?,
                    // cgroup v2 has no net_cls; on a hybrid host it is just not mounted.
                    Some(Place::V2(_)) if self.kind() == LayoutKind::V2 => {
                        return Err(Error::Unsupported {
                            resource: "network.classID",
                            version: "v2",
                        })
                    }
                    Some(Place::V2(_)) => return Err(unavailable("net_cls", "network.classID")),
                    None => return Err(unavailable("net_cls", "network.classID")),
                }
            }
            if priorities_requested(n) {
                match self.place("net_prio") {
                    Some(Place::V1(d)) => v1::net_prio(d, n)?,
                    // cgroup v2 has no net_prio; on a hybrid host it is just not mounted.
                    Some(Place::V2(_)) if self.kind() == LayoutKind::V2 => {
                        return Err(Error::Unsupported {
                            resource: "network.priorities",
                            version: "v2",
                        })
                    }
                    Some(Place::V2(_)) => {
                        return Err(unavailable("net_prio", "network.priorities"))
                    }
                    None => return Err(unavailable("net_prio", "network.priorities")),
                }
            }
        }
        if let Some(rdma) = resources.rdma().as_ref().filter(|r| !r.is_empty()) {
            let dir = match self.place("rdma") {
                Some(Place::V1(d)) => d,
                Some(Place::V2(d)) => {
                    v2::require(d, "rdma", "rdma")?;
                    d
                }
                None => return Err(unavailable("rdma", "rdma")),
            };
            let mut devices: Vec<_> = rdma.iter().collect();
            devices.sort_by(|a, b| a.0.cmp(b.0));
            for (device, limits) in devices {
                let line = values::rdma_line(device, limits.hca_handles(), limits.hca_objects())?;
                fs::write(dir, "rdma.max", &line)?;
            }
        }
        if let Some(list) = resources.devices() {
            match self.place("devices") {
                Some(Place::V1(d)) => devices::apply_v1(d, list)?,
                Some(Place::V2(d)) => devices::apply_v2(d, list)?,
                None if list.is_empty() => {}
                None => return Err(unavailable("devices", "devices")),
            }
        }
        if let Some(map) = resources.unified().as_ref().filter(|m| !m.is_empty()) {
            match self.v2() {
                Some(h) => v2::unified(&h.dir, map)?,
                None => {
                    return Err(Error::Unsupported {
                        resource: "unified",
                        version: "v1",
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::fake::{Fake, Kind};
    use berth_errdefs::{ErrorKind, HasKind};
    use oci_spec::runtime::LinuxResources;

    /// Every resource the spec knows, with recognisable values.
    fn everything() -> LinuxResources {
        serde_json::from_value(serde_json::json!({
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
            ],
            "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 64},
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        }))
        .unwrap()
    }

    fn setup(kind: Kind) -> (Fake, Manager) {
        let f = Fake::new(kind);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        (f, m)
    }

    #[test]
    fn v1_writes() {
        let (_f, m) = setup(Kind::V1);
        m.apply(&everything()).unwrap();
        let r = |c, file| Fake::read(&m, c, file);
        assert_eq!(r("memory", "memory.limit_in_bytes"), "104857600");
        assert_eq!(r("memory", "memory.memsw.limit_in_bytes"), "209715200");
        assert_eq!(r("memory", "memory.soft_limit_in_bytes"), "52428800");
        assert_eq!(r("cpu", "cpu.shares"), "512");
        assert_eq!(r("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(r("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(r("cpuset", "cpuset.cpus"), "0-1");
        assert_eq!(r("pids", "pids.max"), "64");
        assert_eq!(r("blkio", "blkio.bfq.weight"), "500");
        assert_eq!(r("blkio", "blkio.throttle.read_bps_device"), "8:0 1048576");
        assert_eq!(r("hugetlb", "hugetlb.2MB.limit_in_bytes"), "4194304");
        assert_eq!(r("devices", "devices.deny"), "a");
        assert_eq!(r("devices", "devices.allow"), "c 1:3 rwm");
        let net: LinuxResources = serde_json::from_value(serde_json::json!({
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 7}]}
        }))
        .unwrap();
        m.apply(&net).unwrap();
        assert_eq!(r("net_cls", "net_cls.classid"), "1048577");
        assert_eq!(r("net_prio", "net_prio.ifpriomap"), "eth0 7");
    }

    #[test]
    fn v2_rdma_and_network() {
        let (_f, m) = setup(Kind::V2);
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "rdma": {"mlx5_1": {"hcaHandles": 3}}
        }))
        .unwrap();
        m.apply(&res).unwrap();
        assert_eq!(
            Fake::read(&m, "unified", "rdma.max"),
            "mlx5_1 hca_handle=3 hca_object=max"
        );
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"network": {"classID": 5}})).unwrap();
        assert_eq!(m.apply(&res).unwrap_err().kind(), ErrorKind::NotImplemented);
    }

    #[test]
    fn v2_writes_with_conversions() {
        let (_f, m) = setup(Kind::V2);
        let mut res = everything();
        // The device program needs a real cgroup; covered by the root integration test.
        res.set_devices(None);
        m.apply(&res).unwrap();
        let r = |file| Fake::read(&m, "unified", file);
        assert_eq!(r("memory.max"), "104857600");
        assert_eq!(r("memory.swap.max"), "104857600");
        assert_eq!(r("memory.low"), "52428800");
        assert_eq!(r("cpu.weight"), "20");
        assert_eq!(r("cpu.max"), "50000 100000");
        assert_eq!(r("cpuset.cpus"), "0-1");
        assert_eq!(r("pids.max"), "64");
        assert_eq!(r("io.weight"), "4950");
        assert_eq!(r("io.max"), "8:0 rbps=1048576");
        assert_eq!(r("hugetlb.2MB.max"), "4194304");
        assert_eq!(r("hugetlb.2MB.rsvd.max"), "4194304");
    }

    #[test]
    fn hybrid_routes_each_controller() {
        let (_f, m) = setup(Kind::Hybrid);
        m.apply(&everything()).unwrap();
        assert_eq!(
            Fake::read(&m, "memory", "memory.limit_in_bytes"),
            "104857600"
        );
        assert_eq!(Fake::read(&m, "cpu", "cpu.shares"), "512");
        assert_eq!(Fake::read(&m, "devices", "devices.allow"), "c 1:3 rwm");
        // hugetlb is not a v1 hierarchy here: it goes to the unified tree.
        assert_eq!(Fake::read(&m, "unified", "hugetlb.2MB.max"), "4194304");
        // v2 files of controllers hosted by v1 are left alone.
        assert_eq!(Fake::read(&m, "unified", "memory.max"), "max\n");
        assert_eq!(Fake::read(&m, "unified", "pids.max"), "max\n");
    }

    #[test]
    fn unified_map() {
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"unified": {"memory.high": "1000"}}))
                .unwrap();
        let (_f, m) = setup(Kind::V2);
        m.apply(&res).unwrap();
        assert_eq!(Fake::read(&m, "unified", "memory.high"), "1000");
        // Hybrid here: the unified tree exists but memory is not enabled in it.
        let (_f, m) = setup(Kind::Hybrid);
        assert_eq!(
            m.apply(&res).unwrap_err().kind(),
            ErrorKind::FailedPrecondition
        );
        let (_f, m) = setup(Kind::V1);
        assert_eq!(m.apply(&res).unwrap_err().kind(), ErrorKind::NotImplemented);
        let bad: LinuxResources =
            serde_json::from_value(serde_json::json!({"unified": {"../memory.high": "1"}}))
                .unwrap();
        let (_f, m) = setup(Kind::V2);
        assert_eq!(
            m.apply(&bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn missing_controllers() {
        let (_f, m) = setup(Kind::Hybrid);
        // No net_cls mounted in the hybrid fake: this host lacks the controller.
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"network": {"classID": 5}})).unwrap();
        assert_eq!(
            m.apply(&res).unwrap_err().kind(),
            ErrorKind::FailedPrecondition
        );
        // cgroup v2 has no net_cls at all.
        let (_f2, v2only) = setup(Kind::V2);
        assert_eq!(
            v2only.apply(&res).unwrap_err().kind(),
            ErrorKind::NotImplemented
        );
        let (_f, m) = setup(Kind::V2);
        let mi = format!(
            "1 0 0:1 / {} rw - cgroup cgroup rw,cpu\n",
            m.hierarchies()[0].mountpoint.display()
        );
        let layout = crate::Layout::parse(&mi, "1:cpu:/\n").unwrap();
        let only_cpu = Manager::with_layout(&layout, None, "c1", false).unwrap();
        for json in [
            serde_json::json!({"memory": {"limit": 5}}),
            serde_json::json!({"pids": {"limit": 5}}),
            serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
            serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}),
        ] {
            let res: LinuxResources = serde_json::from_value(json.clone()).unwrap();
            let e = only_cpu.apply(&res).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{json}: {e}");
        }
        // Zero or unset values need no controller.
        for json in [
            serde_json::json!({"memory": {}}),
            serde_json::json!({"pids": {"limit": -1}}),
            serde_json::json!({"network": {"classID": 0}}),
            serde_json::json!({"devices": []}),
        ] {
            let res: LinuxResources = serde_json::from_value(json.clone()).unwrap();
            only_cpu.apply(&res).unwrap();
        }
    }

    #[test]
    fn v2_controller_not_enabled() {
        let (_f, m) = setup(Kind::V2);
        std::fs::write(Fake::dir(&m, "unified").join("cgroup.controllers"), "cpu\n").unwrap();
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"pids": {"limit": 5}})).unwrap();
        let e = m.apply(&res).unwrap_err();
        assert!(e.to_string().contains("pids"), "{e}");
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"pids": {"limit": 0}})).unwrap();
        m.apply(&res).unwrap();
    }

    #[test]
    fn update_only_touches_what_is_set() {
        let (_f, m) = setup(Kind::V1);
        m.apply(&everything()).unwrap();
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"pids": {"limit": 10}})).unwrap();
        m.apply(&res).unwrap();
        assert_eq!(Fake::read(&m, "pids", "pids.max"), "10");
        assert_eq!(
            Fake::read(&m, "memory", "memory.limit_in_bytes"),
            "104857600"
        );
    }
}
