//! [`Manager`]: one container's cgroup across every mounted hierarchy.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::freezer::{self, FreezerState};
use crate::layout::{self, Layout, LayoutKind, Version};
use crate::stats::{self, Stats};
use crate::{fs, path, v1, v2};

/// The container's cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    pub(crate) version: Version,
    /// v1: the hierarchy's controllers (sorted); v2: empty.
    pub(crate) controllers: Vec<String>,
    pub(crate) mountpoint: PathBuf,
    pub(crate) mount_root: String,
    /// The container's cgroup, as an absolute path in the hierarchy.
    pub(crate) path: String,
    /// Its directory.
    pub(crate) dir: PathBuf,
}

impl Hierarchy {
    fn hosts(&self, controller: &str) -> bool {
        self.version == Version::V1 && self.controllers.iter().any(|c| c == controller)
    }

    /// The directories from the mount point down to the parent of the container's one.
    fn ancestors(&self) -> Vec<PathBuf> {
        let mut out = vec![self.mountpoint.clone()];
        if let Ok(rest) = self.dir.strip_prefix(&self.mountpoint) {
            let mut cur = self.mountpoint.clone();
            let comps: Vec<_> = rest.components().collect();
            for c in comps.iter().take(comps.len().saturating_sub(1)) {
                cur.push(c);
                out.push(cur.clone());
            }
        }
        out
    }

    /// Whether `/proc/<pid>/cgroup` text places the process in this cgroup or below.
    fn contains(&self, proc_cgroup: &str) -> bool {
        proc_cgroup.lines().any(|line| {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctls), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                return false;
            };
            let same = match self.version {
                Version::V2 => id == "0" && ctls.is_empty(),
                Version::V1 => layout::controller_set(ctls) == self.controllers,
            };
            same && (p == self.path
                || p.strip_prefix(self.path.as_str())
                    .is_some_and(|r| r.starts_with('/')))
        })
    }
}

/// Where the files of a controller are, for this container.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place<'a> {
    /// In this v1 hierarchy directory.
    V1(&'a Path),
    /// In the v2 directory (the controller may still need enabling there).
    V2(&'a Path),
}

/// One hierarchy the container's cgroup spans (see [`Manager::hierarchies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// The v1 hierarchy's controllers (`["cpu"]`, `["name=systemd"]`...); empty for v2.
    pub controllers: Vec<String>,
    /// Whether this is the v2 (unified) hierarchy.
    pub unified: bool,
    /// Where the hierarchy is mounted.
    pub mountpoint: PathBuf,
    /// The container's cgroup as a path from the hierarchy root.
    pub path: String,
    /// The container's cgroup directory.
    pub dir: PathBuf,
}

/// What to keep in the container state to re-open the cgroup later with
/// [`Manager::from_record`], from another process and whatever its own cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRecord {
    hierarchies: Vec<HierarchyRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HierarchyRecord {
    version: Version,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    controllers: Vec<String>,
    mountpoint: PathBuf,
    mount_root: String,
    path: String,
}

/// A container's cgroup: one directory per mounted hierarchy, and every operation the
/// runtime performs on it. See the crate documentation for the layouts and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    hierarchies: Vec<Hierarchy>,
}

/// Open a cgroup directory (for `CLONE_INTO_CGROUP` or `BPF_PROG_ATTACH`).
pub(crate) fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::OpenDir {
        path: dir.to_owned(),
        source: e.into(),
    })
}

impl Manager {
    /// The cgroup for `linux.cgroupsPath` (`None`: `/berth-<container_id>`) in the
    /// hierarchies of the calling process. `systemd` asks for the systemd driver, which
    /// is refused: [`Error::SystemdNotRunning`] without systemd, else
    /// [`Error::SystemdDriverUnsupported`]. Nothing is created yet.
    pub fn new(cgroups_path: Option<&str>, container_id: &str, systemd: bool) -> Result<Manager> {
        Manager::with_layout(&Layout::detect()?, cgroups_path, container_id, systemd)
    }

    /// Like [`Manager::new`] for a given [`Layout`] (tests build one over a fake tree).
    pub fn with_layout(
        layout: &Layout,
        cgroups_path: Option<&str>,
        container_id: &str,
        systemd: bool,
    ) -> Result<Manager> {
        if systemd {
            return Err(if layout.systemd_running() {
                Error::SystemdDriverUnsupported
            } else {
                Error::SystemdNotRunning {
                    marker: layout.systemd_marker.clone(),
                }
            });
        }
        let requested = path::requested(cgroups_path, container_id)?;
        let mut hierarchies = Vec::with_capacity(layout.mounts.len());
        for m in &layout.mounts {
            let cgroup = if path::is_relative(&requested) {
                let caller = m
                    .caller
                    .as_deref()
                    .ok_or_else(|| Error::CallerCgroupUnknown {
                        hierarchy: m.label(),
                        path: requested.clone(),
                    })?;
                path::resolve(&requested, caller)?
            } else {
                requested.clone()
            };
            let dir = layout::dir_of(&m.mountpoint, &m.mount_root, &cgroup)?;
            hierarchies.push(Hierarchy {
                version: m.version,
                controllers: m.controllers.clone(),
                mountpoint: m.mountpoint.clone(),
                mount_root: m.mount_root.clone(),
                path: cgroup,
                dir,
            });
        }
        Ok(Manager { hierarchies })
    }

    /// The description to store in the container state.
    pub fn to_record(&self) -> CgroupRecord {
        CgroupRecord {
            hierarchies: self
                .hierarchies
                .iter()
                .map(|h| HierarchyRecord {
                    version: h.version,
                    controllers: h.controllers.clone(),
                    mountpoint: h.mountpoint.clone(),
                    mount_root: h.mount_root.clone(),
                    path: h.path.clone(),
                })
                .collect(),
        }
    }

    /// A manager without any hierarchy: for a container that runs without cgroups (a
    /// rootless container whose user may not create any, when it asks for no limits).
    /// Everything is a no-op; pause/resume report the missing freezer.
    pub fn disabled() -> Manager {
        Manager {
            hierarchies: Vec::new(),
        }
    }

    /// Whether this manager has no hierarchy (see [`Manager::disabled`]).
    pub fn is_disabled(&self) -> bool {
        self.hierarchies.is_empty()
    }

    /// Re-open the cgroup described by `record` (checked again: paths absolute, no `..`,
    /// known controllers, at most one v2 hierarchy).
    pub fn from_record(record: &CgroupRecord) -> Result<Manager> {
        let bad = |reason: String| Error::InvalidRecord { reason };
        if record.hierarchies.len() > 64 {
            return Err(bad(format!("{} hierarchies", record.hierarchies.len())));
        }
        if record
            .hierarchies
            .iter()
            .filter(|h| h.version == Version::V2)
            .count()
            > 1
        {
            return Err(bad("more than one v2 hierarchy".into()));
        }
        let mut hierarchies = Vec::with_capacity(record.hierarchies.len());
        for h in &record.hierarchies {
            if !h.mountpoint.is_absolute()
                || h.mountpoint
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(bad(format!(
                    "mount point {} is not a clean absolute path",
                    h.mountpoint.display()
                )));
            }
            if !h.mount_root.starts_with('/') || h.mount_root.split('/').any(|c| c == "..") {
                return Err(bad(format!(
                    "mount root {:?} is not a clean absolute path",
                    h.mount_root
                )));
            }
            path::check_absolute(&h.path)?;
            let mut layout_line = h.controllers.clone();
            layout_line.sort();
            if (h.version == Version::V2) != h.controllers.is_empty() {
                return Err(bad("controllers do not match the hierarchy version".into()));
            }
            if layout_line != h.controllers
                || h.controllers
                    .iter()
                    .any(|c| !fs::is_plain_name(c) || c.contains(','))
            {
                return Err(bad(format!("bad controller list {:?}", h.controllers)));
            }
            let dir = layout::dir_of(&h.mountpoint, &h.mount_root, &h.path)?;
            hierarchies.push(Hierarchy {
                version: h.version,
                controllers: h.controllers.clone(),
                mountpoint: h.mountpoint.clone(),
                mount_root: h.mount_root.clone(),
                path: h.path.clone(),
                dir,
            });
        }
        Ok(Manager { hierarchies })
    }

    /// v1, v2 or hybrid, as for [`Layout::kind`].
    pub fn kind(&self) -> LayoutKind {
        let v2 = self.v2().is_some();
        let v1 = self.hierarchies.iter().any(|h| {
            h.version == Version::V1 && h.controllers.iter().any(|c| !c.starts_with("name="))
        });
        match (v1, v2) {
            (true, true) => LayoutKind::Hybrid,
            (false, true) => LayoutKind::V2,
            _ => LayoutKind::V1,
        }
    }

    /// The container's cgroup in each hierarchy (e.g. to mount them in the container).
    pub fn hierarchies(&self) -> Vec<CgroupDir> {
        self.hierarchies
            .iter()
            .map(|h| CgroupDir {
                controllers: h.controllers.clone(),
                unified: h.version == Version::V2,
                mountpoint: h.mountpoint.clone(),
                path: h.path.clone(),
                dir: h.dir.clone(),
            })
            .collect()
    }

    pub(crate) fn v2(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.version == Version::V2)
    }

    fn has_v1(&self) -> bool {
        self.hierarchies.iter().any(|h| h.version == Version::V1)
    }

    /// Where the files of `controller` (v1 name) are: its v1 hierarchy if mounted, else
    /// the v2 directory if there is one.
    pub(crate) fn place(&self, controller: &str) -> Option<Place<'_>> {
        if let Some(h) = self.hierarchies.iter().find(|h| h.hosts(controller)) {
            return Some(Place::V1(&h.dir));
        }
        self.v2().map(|h| Place::V2(&h.dir))
    }

    /// Create the cgroup directory (and missing parents) in every hierarchy. v1 cpusets
    /// get their CPUs and memory nodes from the parent; in v2 every controller of the
    /// root is enabled down to the parent of the container's directory.
    pub fn create(&self) -> Result<()> {
        for h in &self.hierarchies {
            fs::mkdir_all(&h.dir)?;
            match h.version {
                Version::V1 if h.hosts("cpuset") => v1::init_cpuset(&h.mountpoint, &h.dir)?,
                Version::V1 => {}
                Version::V2 => {
                    let wanted = v2::controllers(&h.mountpoint)?;
                    v2::enable_controllers(&h.ancestors(), &wanted)?;
                }
            }
        }
        Ok(())
    }

    /// An `O_DIRECTORY` descriptor of the v2 directory, for `clone3(CLONE_INTO_CGROUP)`;
    /// `None` without a v2 hierarchy.
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>> {
        self.v2().map(|h| open_dir(&h.dir)).transpose()
    }

    /// Move process `pid` into the cgroup in every hierarchy where it is not already in
    /// it (or below it), e.g. the v2 one after `CLONE_INTO_CGROUP`.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::InvalidResource {
                resource: "pid",
                value: pid.to_string(),
                reason: "not a process ID",
            });
        }
        let current = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        for h in &self.hierarchies {
            if !h.contains(&current) {
                fs::write(&h.dir, "cgroup.procs", &pid.to_string())?;
            }
        }
        Ok(())
    }

    /// Move the calling process into the cgroup in every hierarchy where it is not already
    /// (e.g. the v2 one after `CLONE_INTO_CGROUP`). The caller must be single-threaded.
    ///
    /// On v1 this writes `0` to `tasks`: the kernel moves just the calling thread and, for
    /// that case only, skips the global threadgroup lock whose first writer waits for an
    /// RCU grace period (about 10 ms here) — which `cgroup.procs` from another process
    /// always takes. On v2, `cgroup.procs` (threads cannot be moved alone there).
    pub fn add_self(&self) -> Result<()> {
        let current = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        for h in &self.hierarchies {
            if !h.contains(&current) {
                let file = if h.version == Version::V1 {
                    "tasks"
                } else {
                    "cgroup.procs"
                };
                fs::write(&h.dir, file, "0")?;
            }
        }
        Ok(())
    }

    fn freezer_place(&self) -> Option<Place<'_>> {
        self.place("freezer")
    }

    /// Freeze every process of the container and wait until they are.
    pub fn freeze(&self) -> Result<()> {
        match self.freezer_place() {
            Some(Place::V1(d)) => freezer::v1_freeze(d),
            Some(Place::V2(d)) => freezer::v2_freeze(d),
            None => Err(Error::ControllerUnavailable {
                controller: "freezer",
                resource: "freeze",
                where_: String::new(),
            }),
        }
    }

    /// Thaw the container and wait until it runs again.
    pub fn thaw(&self) -> Result<()> {
        match self.freezer_place() {
            Some(Place::V1(d)) => freezer::v1_thaw(d),
            Some(Place::V2(d)) => freezer::v2_thaw(d),
            None => Err(Error::ControllerUnavailable {
                controller: "freezer",
                resource: "thaw",
                where_: String::new(),
            }),
        }
    }

    /// The freezer state; [`FreezerState::Thawed`] when there is no freezer at all.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        match self.freezer_place() {
            Some(Place::V1(d)) => freezer::v1_state(d),
            Some(Place::V2(d)) => freezer::v2_state(d),
            None => Ok(FreezerState::Thawed),
        }
    }

    /// Every process in the cgroup or its descendants, in any hierarchy, sorted.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        for h in &self.hierarchies {
            for dir in subtree(&h.dir)? {
                let Some(text) = fs::read_optional(&dir, "cgroup.procs")? else {
                    continue;
                };
                out.extend(
                    text.lines()
                        .filter_map(|l| l.trim().parse::<i32>().ok())
                        .filter(|p| *p > 0),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Send `signal` to every process of the container.
    ///
    /// SIGKILL goes through v2 `cgroup.kill` where the kernel has it (5.14+), which
    /// also reaches processes forked meanwhile. Otherwise the cgroup is frozen (when a
    /// freezer exists) so that no process can fork past the signal, every process is
    /// signalled, and the cgroup is thawed again, unless it was frozen before and the
    /// signal is not SIGKILL (a paused container stays paused; the signal waits).
    /// Only named signals are accepted (no real-time signals yet). A cgroup that no
    /// longer exists has nothing to signal: that is not an error.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        let sig = Signal::from_named_raw(signal).ok_or(Error::InvalidSignal { signal })?;
        if self.hierarchies.iter().all(|h| !h.dir.exists()) {
            // Already destroyed: nothing left to signal.
            return Ok(());
        }
        if sig == Signal::KILL {
            if let Some(h) = self.v2().filter(|h| fs::exists(&h.dir, "cgroup.kill")) {
                fs::write(&h.dir, "cgroup.kill", "1")?;
                if self.has_v1() {
                    // Hybrid: a v1 freezer would keep the killed tasks from dying, and a
                    // process moved only in v1 hierarchies would be missed.
                    if let Some(Place::V1(d)) = self.freezer_place() {
                        if freezer::v1_state(d)? != FreezerState::Thawed {
                            freezer::v1_thaw(d)?;
                        }
                    }
                    self.signal_each(sig, signal)?;
                }
                return Ok(());
            }
        }
        let has_freezer = self.freezer_place().is_some();
        let was_frozen = has_freezer && self.freezer_state()? != FreezerState::Thawed;
        // A failed freeze (timeout) must not stop the signal from going out.
        let froze = has_freezer && !was_frozen && self.freeze().is_ok();
        let result = self.signal_each(sig, signal);
        if froze || (was_frozen && sig == Signal::KILL) {
            self.thaw()?;
        }
        result
    }

    fn signal_each(&self, sig: Signal, signal: i32) -> Result<()> {
        let mut first_err = None;
        for pid in self.pids()? {
            let Some(p) = Pid::from_raw(pid) else {
                continue;
            };
            match rustix::process::kill_process(p, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    first_err.get_or_insert(Error::Signal {
                        pid,
                        signal,
                        source: e.into(),
                    });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Usage statistics, each part from the hierarchy hosting its controller.
    pub fn stats(&self) -> Result<Stats> {
        if let Some(h) = self.hierarchies.iter().find(|h| !h.dir.is_dir()) {
            return Err(Error::OpenDir {
                path: h.dir.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let mut s = Stats::default();
        match self.place("cpuacct") {
            Some(Place::V1(d)) => stats::v1_cpuacct(d, &mut s.cpu.usage)?,
            Some(Place::V2(d)) => stats::v2_cpu(d, &mut s.cpu)?,
            None => {}
        }
        match self.place("cpu") {
            Some(Place::V1(d)) => stats::v1_throttling(d, &mut s.cpu.throttling)?,
            Some(Place::V2(d)) => {
                let mut c = stats::CpuStats::default();
                stats::v2_cpu(d, &mut c)?;
                s.cpu.throttling = c.throttling;
            }
            None => {}
        }
        match self.place("cpuset") {
            Some(Place::V1(d)) => stats::cpuset(d, false, &mut s.cpuset)?,
            Some(Place::V2(d)) => stats::cpuset(d, true, &mut s.cpuset)?,
            None => {}
        }
        match self.place("memory") {
            Some(Place::V1(d)) => stats::v1_memory(d, &mut s.memory)?,
            Some(Place::V2(d)) => stats::v2_memory(d, &mut s.memory)?,
            None => {}
        }
        if let Some(Place::V1(d) | Place::V2(d)) = self.place("pids") {
            stats::pids(d, &mut s.pids)?;
        }
        match self.place("blkio") {
            Some(Place::V1(d)) => stats::v1_blkio(d, &mut s.blkio)?,
            Some(Place::V2(d)) => stats::v2_io(d, &mut s.blkio)?,
            None => {}
        }
        match self.place("hugetlb") {
            Some(Place::V1(d)) => stats::v1_hugetlb(d, &mut s.hugetlb)?,
            Some(Place::V2(d)) => stats::v2_hugetlb(d, &mut s.hugetlb)?,
            None => {}
        }
        Ok(s)
    }

    /// How many processes the OOM killer killed in the cgroup (0 without a memory
    /// controller).
    pub fn oom_kill_count(&self) -> Result<u64> {
        let (dir, file) = match self.place("memory") {
            Some(Place::V1(d)) => (d, "memory.oom_control"),
            Some(Place::V2(d)) => (d, "memory.events"),
            None => return Ok(0),
        };
        Ok(fs::read_optional(dir, file)?
            .and_then(|t| fs::keyed_value(&t, "oom_kill"))
            .unwrap_or(0))
    }

    /// Remove the cgroup (descendants first) from every hierarchy. Missing directories
    /// are fine; `EBUSY` (processes still exiting) is retried for about a second. Every
    /// hierarchy is attempted; the first error is returned.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for h in &self.hierarchies {
            // Usually a leaf: one rmdir. Walk the tree only when it has children.
            let removed = match std::fs::remove_dir(&h.dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(_) => remove_tree(&h.dir),
            };
            if let Err(e) = removed {
                first_err.get_or_insert(e);
                continue;
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// `dir` and every directory below it, parents first; empty when `dir` is gone.
fn subtree(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        match std::fs::read_dir(&d) {
            Ok(entries) => {
                for e in entries {
                    let e = e.map_err(|source| Error::ReadFile {
                        path: d.clone(),
                        source,
                    })?;
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        todo.push(e.path());
                    }
                }
                out.push(d);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::ReadFile { path: d, source }),
        }
    }
    Ok(out)
}

/// Remove `dir` and the cgroups below it, deepest first.
fn remove_tree(dir: &Path) -> Result<()> {
    let mut dirs = subtree(dir)?;
    // `subtree` lists parents before children; components count orders by depth.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        rmdir_retry(&d)?;
    }
    Ok(())
}

fn rmdir_retry(dir: &Path) -> Result<()> {
    const ATTEMPTS: u32 = 7;
    let mut pause = Duration::from_millis(10);
    for attempt in 1..=ATTEMPTS {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error())
                    && attempt < ATTEMPTS =>
            {
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(source) => {
                return Err(Error::RemoveDir {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::fake::{Fake, Kind};
    use berth_errdefs::{ErrorKind, HasKind};

    #[test]
    fn default_absolute_and_relative_paths() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        assert_eq!(m.kind(), LayoutKind::Hybrid);
        assert_eq!(Fake::dir(&m, "cpu"), f.path().join("cpu/berth-c1"));
        assert_eq!(Fake::dir(&m, "unified"), f.path().join("unified/berth-c1"));
        assert_eq!(
            Fake::dir(&m, "name=systemd"),
            f.path().join("systemd/berth-c1")
        );

        let m = Manager::with_layout(&f.layout, Some("/a/b"), "c1", false).unwrap();
        assert_eq!(Fake::dir(&m, "memory"), f.path().join("memory/a/b"));

        // Relative: below the caller's cgroup, which differs per hierarchy.
        let m = Manager::with_layout(&f.layout, Some("a/b"), "c1", false).unwrap();
        assert_eq!(Fake::dir(&m, "memory"), f.path().join("memory/agent/a/b"));
        assert_eq!(Fake::dir(&m, "cpu"), f.path().join("cpu/a/b"));
        assert_eq!(Fake::dir(&m, "unified"), f.path().join("unified/user/a/b"));
        let paths: Vec<String> = m.hierarchies().into_iter().map(|h| h.path).collect();
        assert!(paths.contains(&"/agent/a/b".to_owned()));
    }

    #[test]
    fn refused_paths_and_ids() {
        let f = Fake::new(Kind::V1);
        for p in ["/", "../x", "/a/../../b", "a\nb"] {
            let e = Manager::with_layout(&f.layout, Some(p), "c1", false).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{p:?}");
        }
        assert!(Manager::with_layout(&f.layout, None, "../c1", false).is_err());
    }

    #[test]
    fn relative_path_needs_callers_cgroup() {
        let f = Fake::new(Kind::V2);
        let mi = format!(
            "1 0 0:1 / {} rw - cgroup2 cgroup2 rw\n",
            f.path().join("unified").display()
        );
        let layout = Layout::parse(&mi, "").unwrap();
        let e = Manager::with_layout(&layout, Some("a"), "c1", false).unwrap_err();
        assert!(matches!(e, Error::CallerCgroupUnknown { .. }));
        Manager::with_layout(&layout, Some("/a"), "c1", false).unwrap();
    }

    #[test]
    fn systemd_driver_is_refused() {
        let f = Fake::new(Kind::V2);
        let e =
            Manager::with_layout(&f.layout, Some("system.slice:berth:c1"), "c1", true).unwrap_err();
        assert!(matches!(e, Error::SystemdNotRunning { .. }));
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        std::fs::create_dir(f.path().join("no-systemd")).unwrap();
        let e = Manager::with_layout(&f.layout, None, "c1", true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotImplemented);
    }

    #[test]
    fn record_round_trip() {
        for kind in [Kind::V1, Kind::V2, Kind::Hybrid] {
            let f = Fake::new(kind);
            let m = Manager::with_layout(&f.layout, Some("x/y"), "c1", false).unwrap();
            let json = serde_json::to_string(&m.to_record()).unwrap();
            let back: CgroupRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(Manager::from_record(&back).unwrap(), m);
        }
    }

    #[test]
    fn tampered_records_are_refused() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        let good = serde_json::to_value(m.to_record()).unwrap();
        let mutations: [(&str, serde_json::Value); 5] = [
            ("path", "/berth/../../etc".into()),
            ("path", "/".into()),
            ("mountpoint", "relative".into()),
            ("mount_root", "x".into()),
            ("controllers", serde_json::json!(["cpu/../memory"])),
        ];
        for (field, value) in mutations {
            let mut v = good.clone();
            v["hierarchies"][0][field] = value;
            let rec: CgroupRecord = serde_json::from_value(v).unwrap();
            assert!(Manager::from_record(&rec).is_err(), "{field} accepted");
        }
        // No hierarchy at all is a container run without cgroups (rootless).
        let rec: CgroupRecord =
            serde_json::from_value(serde_json::json!({"hierarchies": []})).unwrap();
        assert!(Manager::from_record(&rec).unwrap().is_disabled());
    }

    #[test]
    fn create_enables_v2_controllers_and_inits_cpuset() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, Some("/a/b"), "c1", false).unwrap();
        // The kernel would create the control files; imitate it for the leaves and the
        // intermediate v1 cpuset and v2 directories.
        std::fs::create_dir_all(f.path().join("cpuset/a")).unwrap();
        std::fs::write(f.path().join("cpuset/a/cpuset.cpus"), "\n").unwrap();
        std::fs::write(f.path().join("cpuset/a/cpuset.mems"), "\n").unwrap();
        std::fs::create_dir_all(f.path().join("unified/a")).unwrap();
        std::fs::write(f.path().join("unified/a/cgroup.controllers"), "hugetlb\n").unwrap();
        std::fs::write(f.path().join("unified/a/cgroup.subtree_control"), "").unwrap();
        f.populate(&m);
        m.create().unwrap();
        assert_eq!(Fake::read(&m, "cpuset", "cpuset.cpus"), "0-3");
        assert_eq!(Fake::read(&m, "cpuset", "cpuset.mems"), "0");
        let st = |p: &str| std::fs::read_to_string(f.path().join(p)).unwrap();
        assert_eq!(st("unified/cgroup.subtree_control"), "+hugetlb");
        assert_eq!(st("unified/a/cgroup.subtree_control"), "+hugetlb");
        assert!(Fake::dir(&m, "name=systemd").is_dir());
    }

    #[test]
    fn create_then_destroy_leaves_nothing() {
        let f = Fake::new(Kind::V2);
        let m = Manager::with_layout(&f.layout, Some("/berth/c1"), "c1", false).unwrap();
        m.create().unwrap();
        let dir = Fake::dir(&m, "unified");
        assert!(dir.is_dir());
        std::fs::create_dir_all(dir.join("child/grandchild")).unwrap();
        m.destroy().unwrap();
        assert!(!dir.exists());
        m.destroy().unwrap();
    }

    #[test]
    fn add_process_and_pids() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        m.add_process(4242).unwrap();
        for h in m.hierarchies() {
            assert_eq!(
                std::fs::read_to_string(h.dir.join("cgroup.procs")).unwrap(),
                "4242",
                "{:?}",
                h.dir
            );
        }
        std::fs::create_dir(Fake::dir(&m, "pids").join("sub")).unwrap();
        std::fs::write(Fake::dir(&m, "pids").join("sub/cgroup.procs"), "7\n4242\n").unwrap();
        assert_eq!(m.pids().unwrap(), [7, 4242]);
        assert!(m.add_process(0).is_err());
        assert!(m.add_process(-1).is_err());
    }

    #[test]
    fn add_process_skips_hierarchies_already_holding_it() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, Some("/berth/c1"), "c1", false).unwrap();
        let v2 = m.v2().unwrap();
        assert!(v2.contains("1:cpu:/\n0::/berth/c1\n"));
        assert!(v2.contains("0::/berth/c1/sub\n"));
        assert!(!v2.contains("0::/berth/c10\n"));
        assert!(!v2.contains("4:memory:/berth/c1\n"));
        let cpu = m.hierarchies.iter().find(|h| h.hosts("cpu")).unwrap();
        assert!(cpu.contains("1:cpu:/berth/c1\n"));
    }

    #[test]
    fn v2_dir_fd_only_with_v2() {
        let f = Fake::new(Kind::V1);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        assert!(m.v2_dir_fd().unwrap().is_none());
        let f = Fake::new(Kind::V2);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        assert!(m.v2_dir_fd().is_err());
        m.create().unwrap();
        assert!(m.v2_dir_fd().unwrap().is_some());
    }

    #[test]
    fn freezer_routing() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        m.freeze().unwrap();
        assert_eq!(Fake::read(&m, "freezer", "freezer.state"), "FROZEN");
        assert_eq!(Fake::read(&m, "unified", "cgroup.freeze"), "0\n");
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
        m.thaw().unwrap();
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);

        let f = Fake::new(Kind::V2);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
        std::fs::write(Fake::dir(&m, "unified").join("cgroup.events"), "frozen 1\n").unwrap();
        m.freeze().unwrap();
        assert_eq!(Fake::read(&m, "unified", "cgroup.freeze"), "1");
    }

    #[test]
    fn kill_all_signals_own_child_through_v1_freezer() {
        let f = Fake::new(Kind::V1);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        std::fs::write(
            Fake::dir(&m, "freezer").join("cgroup.procs"),
            format!("{}\n", child.id()),
        )
        .unwrap();
        m.kill_all(15).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(15)
        );
        assert_eq!(Fake::read(&m, "freezer", "freezer.state"), "THAWED");
        assert!(matches!(m.kill_all(0), Err(Error::InvalidSignal { .. })));
        let gone = Manager::with_layout(&f.layout, Some("/never-created"), "c1", false).unwrap();
        gone.kill_all(9).unwrap();
        assert!(matches!(m.kill_all(40), Err(Error::InvalidSignal { .. })));
    }

    #[test]
    fn kill_all_uses_cgroup_kill_for_sigkill() {
        let f = Fake::new(Kind::V2);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        m.kill_all(9).unwrap();
        assert_eq!(Fake::read(&m, "unified", "cgroup.kill"), "1");
    }

    #[test]
    fn stats_and_oom_from_each_layout() {
        let f = Fake::new(Kind::Hybrid);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        assert!(m.stats().is_err());
        f.populate(&m);
        let s = m.stats().unwrap();
        assert_eq!(s.cpu.usage.total, 123);
        assert_eq!(s.cpu.usage.kernel, 20_000_000);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.cache, 5);
        assert_eq!(s.cpuset.cpus, [0, 1]);
        assert!(s.hugetlb.contains_key("2MB"));
        assert_eq!(m.oom_kill_count().unwrap(), 2);

        let f = Fake::new(Kind::V2);
        let m = Manager::with_layout(&f.layout, None, "c1", false).unwrap();
        f.populate(&m);
        let s = m.stats().unwrap();
        assert_eq!(s.cpu.usage.total, 7000);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(m.oom_kill_count().unwrap(), 3);
    }
}
