//! cgroup management for Berth's OCI runtime: one [`Manager`] over cgroup v1, v2 and
//! hybrid layouts (cgroupfs driver; the systemd driver is refused with a clear error).
//!
//! # Layouts
//!
//! A controller (cpu, memory, pids...) is bound to exactly one hierarchy: a v1 `cgroup`
//! mount hosting it, or else the v2 `cgroup2` tree (see [`Layout`]). The manager keeps
//! the container's directory in *every* mounted hierarchy (v1 ones, named ones such as
//! `name=systemd`, and the v2 one) and sends each resource to the hierarchy that hosts
//! its controller:
//!
//! | layout | cpu, memory, pids... | freezer | devices | kill (SIGKILL) |
//! |---|---|---|---|---|
//! | v1 | v1 hierarchies | `freezer.state` | `devices.allow`/`deny` | freeze, signal each, thaw |
//! | v2 | v2 files | `cgroup.freeze` | eBPF program | `cgroup.kill` |
//! | hybrid | where mounted (hugetlb in v2 here) | v1 if mounted | v1 if mounted | `cgroup.kill` |
//!
//! In a hybrid layout the process is placed in the v2 tree too, like runc does, so that
//! v2-only features (`cgroup.kill`, `CLONE_INTO_CGROUP`) work.
//!
//! # Lifecycle
//!
//! 1. `create`: [`Manager::new`] resolves `linux.cgroupsPath` (see below), then
//!    [`Manager::create`] makes the directories (v1 cpusets inherit CPUs and memory
//!    nodes from their parent; v2 controllers are enabled down the tree) and
//!    [`Manager::apply`] writes `linux.resources`. The init process is either cloned
//!    straight into the v2 cgroup ([`Manager::v2_dir_fd`] for `CLONE_INTO_CGROUP`) or
//!    moved, and [`Manager::add_process`] places it in the hierarchies it is not in yet.
//!    The runtime saves [`Manager::to_record`] in the container state.
//! 2. Later commands re-open the cgroup with [`Manager::from_record`]: `update` calls
//!    `apply`, `pause`/`resume` call [`Manager::freeze`]/[`Manager::thaw`], `kill --all`
//!    calls [`Manager::kill_all`], `ps` calls [`Manager::pids`], `events` calls
//!    [`Manager::stats`] and [`Manager::oom_kill_count`].
//! 3. `delete`: [`Manager::kill_all`] then [`Manager::destroy`].
//!
//! # Paths (runc's cgroupfs rules)
//!
//! No `cgroupsPath`: `/berth-<id>`. Absolute `/a/b`: `/a/b` from each hierarchy root.
//! Relative `a/b`: below the caller's own cgroup in each hierarchy. `..` components,
//! control characters and the hierarchy root itself are refused.
//!
//! ```
//! use berth_cgroups::{Layout, LayoutKind, Manager};
//!
//! // A pure v2 machine where the caller sits in /user.slice.
//! let mountinfo = "41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";
//! let layout = Layout::parse(mountinfo, "0::/user.slice\n")?;
//! assert_eq!(layout.kind(), LayoutKind::V2);
//! let relative = Manager::with_layout(&layout, Some("berth/c1"), "c1", false)?;
//! assert_eq!(relative.hierarchies()[0].path, "/user.slice/berth/c1");
//! let default = Manager::with_layout(&layout, None, "c1", false)?;
//! assert_eq!(default.hierarchies()[0].dir, std::path::Path::new("/sys/fs/cgroup/berth-c1"));
//! assert!(Manager::with_layout(&layout, Some("/a/../b"), "c1", false).is_err());
//! # Ok::<(), berth_cgroups::Error>(())
//! ```
//!
//! # Invariants
//!
//! * Control files are opened `O_WRONLY|O_CLOEXEC|O_NOFOLLOW` and never created;
//!   each value goes in one `write(2)` whose length is checked. Errors name the file and
//!   the value.
//! * Strings from the spec (CPU lists, page sizes, interface names, `unified` keys) are
//!   validated before they reach a file name or a file.
//! * A resource that is set (non-zero) but whose controller is missing is an error of
//!   kind FailedPrecondition; a resource that has no equivalent in the cgroup version is
//!   NotImplemented. Nothing is silently dropped except what runc also ignores
//!   (`memory.kernel`, `memory.useHierarchy`).
//! * The device list is default-deny and last-match-wins on both versions;
//!   `devices: None` leaves the device policy alone, `Some(vec![])` denies every device.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod apply;
mod devices;
mod error;
mod freezer;
mod fs;
mod layout;
mod manager;
mod path;
mod stats;
mod v1;
mod v2;
mod values;

#[cfg(test)]
mod fake;

pub use error::{Error, Result};
pub use freezer::FreezerState;
pub use layout::{Layout, LayoutKind};
pub use manager::{CgroupDir, CgroupRecord, Manager};
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, CpusetStats, HugetlbStats, MemoryEntry,
    MemoryStats, PidsStats, Stats, Throttling,
};
