//! The driver: builds bundles, runs the runtime under test through its
//! runc-compatible CLI and collects results.
//!
//! # Lifecycle of a suite run
//!
//! 1. [`run_suite`] checks the inputs (runtime binary, static checker, rootfs)
//!    and creates a work directory (`berth-conformance-XXXX` under the system
//!    temp dir or [`SuiteOptions::work_dir`]) holding `template/` (the fixture
//!    rootfs plus the checker), `state/` (the runtime's `--root`, so the suite
//!    never sees or touches other containers) and `cases/<case>/`.
//! 2. For each selected case it builds a [`context::Ctx`] and calls the case
//!    function. Containers are created through guards that run
//!    `delete --force` and remove their `berth-test-*` cgroups when dropped,
//!    whether the case passed, failed or returned early.
//! 3. The case's checks become a [`CaseReport`]; the callback sees each one as
//!    it finishes.
//! 4. The work directory is removed at the end (also on error).

mod bundle;
mod cases;
mod cgroups;
mod context;
mod elf;
mod runtime;
mod spec;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_errdefs::{ErrorKind, HasKind};

use crate::facts::{inode_of, Facts, NAMESPACES};
use crate::tap::{Status, TapLine};

/// Where the fixture rootfs is looked for: `$BERTH_FIXTURES/busybox/rootfs`.
pub const FIXTURES_ENV: &str = "BERTH_FIXTURES";
/// The default fixture directory when [`FIXTURES_ENV`] is unset.
pub const DEFAULT_FIXTURES: &str = "/var/cache/berth-fixtures";
/// Environment variable naming the static checker binary.
pub const CHECKER_ENV: &str = "BERTH_CHECKER";

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The runtime binary under test (runc-compatible CLI).
    pub runtime: PathBuf,
    /// Global arguments placed before every subcommand (e.g. `--debug`).
    pub runtime_args: Vec<String>,
    /// The statically linked `berth-checker`; found automatically when `None`
    /// (see [`find_checker`]).
    pub checker: Option<PathBuf>,
    /// The rootfs to copy; `$BERTH_FIXTURES/busybox/rootfs` when `None`, or
    /// one built from a static `/bin/busybox` when that does not exist.
    pub rootfs: Option<PathBuf>,
    /// Only cases whose name contains one of these run (all when empty).
    pub filters: Vec<String>,
    /// Parent of the work directory (system temp dir when `None`).
    pub work_dir: Option<PathBuf>,
    /// Limit for each runtime command and each wait for a status.
    pub timeout: Duration,
    /// Give the runtime a private `--root` state directory (default). Turn it
    /// off only for runtimes without a `--root` flag.
    pub private_state_root: bool,
    /// Run the runtime in a private mount namespace in which the cgroup2
    /// mount of a hybrid cgroup layout is covered by an empty tmpfs. crun
    /// refuses hybrid layouts with controllers in cgroup2 ("cgroups in hybrid
    /// mode not supported"); this hides it from crun without changing the
    /// host. Needs `unshare` from util-linux.
    pub mask_hybrid_cgroup2: bool,
    /// Keep the work directory (bundles, logs) for debugging instead of
    /// removing it. Containers and cgroups are removed either way.
    pub keep_work_dir: bool,
}

impl SuiteOptions {
    /// Options for `runtime` with every other setting at its default.
    pub fn new(runtime: impl Into<PathBuf>) -> Self {
        Self {
            runtime: runtime.into(),
            runtime_args: Vec::new(),
            checker: None,
            rootfs: None,
            filters: Vec::new(),
            work_dir: None,
            timeout: Duration::from_secs(30),
            private_state_root: true,
            mask_hybrid_cgroup2: false,
            keep_work_dir: false,
        }
    }
}

/// Why the suite could not run at all (individual case failures are results,
/// not errors).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The runtime binary does not exist.
    #[error("runtime binary {path} not found")]
    RuntimeNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// No checker binary was found.
    #[error("berth-checker not found (tried {tried}); build it with RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build -p berth-conformance --bin berth-checker --target x86_64-unknown-linux-gnu, or set BERTH_CHECKER")]
    CheckerNotFound {
        /// The candidates looked at.
        tried: String,
    },
    /// The checker binary needs a dynamic loader, which a busybox rootfs lacks.
    #[error("checker {path} is dynamically linked; build it with RUSTFLAGS=\"-C target-feature=+crt-static\" --target x86_64-unknown-linux-gnu")]
    CheckerNotStatic {
        /// The checker path.
        path: PathBuf,
    },
    /// Neither the fixture rootfs nor a static busybox exists.
    #[error("no rootfs: {path} does not exist and no static /bin/busybox to build one")]
    RootfsNotFound {
        /// The fixture path looked at.
        path: PathBuf,
    },
    /// Setting up the work directory (template rootfs, wrapper) failed.
    #[error("prepare work directory {path}")]
    Prepare {
        /// The work directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HasKind for SuiteError {
    fn kind(&self) -> ErrorKind {
        match self {
            SuiteError::RuntimeNotFound { .. }
            | SuiteError::CheckerNotFound { .. }
            | SuiteError::RootfsNotFound { .. } => ErrorKind::NotFound,
            SuiteError::CheckerNotStatic { .. } => ErrorKind::FailedPrecondition,
            SuiteError::Prepare { .. } => ErrorKind::Internal,
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed (some may be skipped).
    Pass,
    /// At least one check failed.
    Fail,
    /// The case does not apply here (or every check was skipped).
    Skip,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case name (runtime-tools style, e.g. `linux_cgroups_memory`).
    pub name: String,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// The individual checks.
    pub lines: Vec<TapLine>,
    /// Why the whole case was skipped, when it was.
    pub skip_reason: Option<String>,
    /// How long the case took.
    pub duration: Duration,
}

/// The results of a suite run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per case that ran, in order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// (passed, failed, skipped) case counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |o: Outcome| self.cases.iter().filter(|c| c.outcome == o).count();
        (
            count(Outcome::Pass),
            count(Outcome::Fail),
            count(Outcome::Skip),
        )
    }

    /// (passed, failed, skipped) counts of the individual checks.
    pub fn check_counts(&self) -> (usize, usize, usize) {
        let lines = || self.cases.iter().flat_map(|c| c.lines.iter());
        let count = |s: Status| lines().filter(|l| l.status == s).count();
        (
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
        )
    }

    /// Names of the failed cases.
    pub fn failed(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Names of every case, in run order.
pub fn case_names() -> Vec<&'static str> {
    cases::CASES.iter().map(|c| c.name).collect()
}

/// Finds the checker: `$BERTH_CHECKER`, then next to the running executable
/// and in the cargo target layouts around it, preferring static builds.
pub fn find_checker() -> Result<PathBuf, SuiteError> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os(CHECKER_ENV) {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/berth-conformance or target/<profile>/deps/<test>.
        let mut dirs: Vec<PathBuf> = exe
            .ancestors()
            .skip(1)
            .take(3)
            .map(Path::to_path_buf)
            .collect();
        dirs.dedup();
        for dir in &dirs {
            for profile in ["debug", "release"] {
                candidates.push(
                    dir.join("x86_64-unknown-linux-gnu")
                        .join(profile)
                        .join("berth-checker"),
                );
            }
            candidates.push(dir.join("berth-checker"));
        }
    }
    let existing: Vec<&PathBuf> = candidates.iter().filter(|p| p.is_file()).collect();
    if let Some(found) = existing.iter().find(|p| elf::is_static(p).unwrap_or(false)) {
        return Ok((*found).clone());
    }
    match existing.first() {
        Some(dynamic) => Err(SuiteError::CheckerNotStatic {
            path: (*dynamic).clone(),
        }),
        None => Err(SuiteError::CheckerNotFound {
            tried: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The facts every container gets: the namespaces the driver (and so the
/// runtime it starts) runs in, and which LSMs are enabled.
fn host_facts() -> Facts {
    let mut facts = Facts::default();
    for name in NAMESPACES {
        if let Some(inode) = inode_of(&format!("/proc/self/ns/{name}")) {
            facts.host_namespaces.insert(name.to_string(), inode);
        }
    }
    facts.apparmor_enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    facts.selinux_enabled = Path::new("/sys/fs/selinux/enforce").exists();
    let mounts = crate::mountinfo::read_self().unwrap_or_default();
    facts.host_root_shared = crate::mountinfo::find(&mounts, "/")
        .is_some_and(|m| m.propagation() == crate::mountinfo::Propagation::Shared);
    facts
}

fn prepare_err(path: &Path) -> impl FnOnce(anyhow::Error) -> SuiteError + '_ {
    move |e| SuiteError::Prepare {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Writes the wrapper that runs `runtime` with the hybrid cgroup2 mount hidden.
fn write_mask_wrapper(work: &Path, runtime: &Path, cgroup2: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let quote = |p: &Path| -> anyhow::Result<String> {
        let s = p.to_string_lossy();
        anyhow::ensure!(!s.contains('\''), "path {s} contains a quote");
        Ok(format!("'{s}'"))
    };
    let script = format!(
        "#!/bin/sh\n# Generated by berth-conformance: run the runtime with the cgroup2 mount of\n# the hybrid layout hidden in a private mount namespace (host unchanged).\nexec unshare --mount --propagation private -- /bin/sh -c 'mount -t tmpfs -o size=64k berth-hide-cgroup2 \"$1\" && shift && exec \"$@\"' sh {} {} \"$@\"\n",
        quote(cgroup2)?,
        quote(runtime)?,
    );
    let path = work.join("runtime-wrapper.sh");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Runs the selected cases against `options.runtime`, calling `on_case` after
/// each, and returns every result.
pub fn run_suite(
    options: &SuiteOptions,
    on_case: &mut dyn FnMut(&CaseReport),
) -> Result<Report, SuiteError> {
    if !options.runtime.is_file() {
        return Err(SuiteError::RuntimeNotFound {
            path: options.runtime.clone(),
        });
    }
    let runtime_path =
        std::fs::canonicalize(&options.runtime).unwrap_or_else(|_| options.runtime.clone());
    let checker = match &options.checker {
        Some(p) if !p.is_file() => {
            return Err(SuiteError::CheckerNotFound {
                tried: p.display().to_string(),
            })
        }
        Some(p) if !elf::is_static(p).unwrap_or(false) => {
            return Err(SuiteError::CheckerNotStatic { path: p.clone() })
        }
        Some(p) => p.clone(),
        None => find_checker()?,
    };
    let parent = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("berth-conformance-")
        .tempdir_in(&parent)
        .map_err(|e| SuiteError::Prepare {
            path: parent.clone(),
            source: e.into(),
        })?;
    let work_path = work.path().to_path_buf();
    let template = work_path.join("template");
    let fixture = match &options.rootfs {
        Some(p) => p.clone(),
        None => {
            let base = std::env::var_os(FIXTURES_ENV)
                .map_or_else(|| PathBuf::from(DEFAULT_FIXTURES), PathBuf::from);
            base.join("busybox").join("rootfs")
        }
    };
    let fixture = if fixture.is_dir() {
        fixture
    } else if options.rootfs.is_none() && Path::new("/bin/busybox").is_file() {
        let built = work_path.join("busybox-rootfs");
        bundle::make_busybox_rootfs(Path::new("/bin/busybox"), &built)
            .map_err(prepare_err(&work_path))?;
        built
    } else {
        return Err(SuiteError::RootfsNotFound { path: fixture });
    };
    bundle::make_template(&fixture, &checker, &template).map_err(prepare_err(&work_path))?;
    let cgroups = cgroups::Hierarchies::detect();
    let mut binary = runtime_path;
    if options.mask_hybrid_cgroup2 {
        if let Some(cgroup2) = cgroups.hybrid_cgroup2() {
            binary = write_mask_wrapper(&work_path, &binary, &cgroup2)
                .map_err(prepare_err(&work_path))?;
        }
    }
    let mut global_args = options.runtime_args.clone();
    if options.private_state_root {
        let state = work_path.join("state");
        std::fs::create_dir_all(&state).map_err(|e| SuiteError::Prepare {
            path: state.clone(),
            source: e.into(),
        })?;
        global_args.push("--root".into());
        global_args.push(state.to_string_lossy().into_owned());
    }
    let scratch = work_path.join("scratch");
    let cases_dir = work_path.join("cases");
    for dir in [&scratch, &cases_dir] {
        std::fs::create_dir_all(dir).map_err(|e| SuiteError::Prepare {
            path: dir.clone(),
            source: e.into(),
        })?;
    }
    let env = context::Env {
        runtime: runtime::Runtime::new(binary, global_args, options.timeout, scratch),
        template,
        cases_dir,
        cgroups,
        host_facts: host_facts(),
        tag: unique_tag(),
        work: work_path.clone(),
    };
    let mut report = Report::default();
    for case in cases::CASES {
        if !options.filters.is_empty()
            && !options
                .filters
                .iter()
                .any(|f| case.name.contains(f.as_str()))
        {
            continue;
        }
        let result = run_case(&env, case);
        on_case(&result);
        report.cases.push(result);
    }
    drop(env);
    // Never remove a tree with mounts in it: that would delete through them.
    let leftover = detach_mounts_under(&work_path);
    if options.keep_work_dir || !leftover.is_empty() {
        let kept = work.keep();
        eprintln!("berth-conformance: kept work directory {}", kept.display());
    } else {
        let _ = work.close();
    }
    Ok(report)
}

fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{:x}", std::process::id(), nanos % 0xfff)
}

/// Lazily unmounts every mount point below `dir` (deepest first) and returns
/// the ones that could not be detached.
fn detach_mounts_under(dir: &Path) -> Vec<String> {
    let mut points = mounts_under(dir);
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    points
        .into_iter()
        .filter(|p| {
            rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH).is_err()
        })
        .collect()
}

/// Mount points below `dir` in this process's mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    crate::mountinfo::read_self()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&prefix))
        .collect()
}

fn run_case(env: &context::Env, case: &cases::Case) -> CaseReport {
    let start = Instant::now();
    let (mut lines, skipped) = match context::Ctx::new(env, case.name) {
        Ok(mut ctx) => {
            if let Err(e) = (case.run)(&mut ctx) {
                ctx.fail("case ran to completion", format!("{e:#}"));
            }
            (std::mem::take(&mut ctx.lines), ctx.skipped.take())
        }
        Err(e) => (
            vec![TapLine::fail("set up the case", format!("{e:#}"))],
            None,
        ),
    };
    // The case's containers are gone now; anything still mounted below the
    // work directory leaked into the runtime's mount namespace.
    let leaked = mounts_under(&env.work);
    if !leaked.is_empty() {
        lines.push(TapLine::fail(
            "no mounts are left in the runtime's mount namespace",
            leaked.join(", "),
        ));
        detach_mounts_under(&env.work);
    }
    let outcome = if lines.iter().any(|l| l.status == Status::Fail) {
        Outcome::Fail
    } else if skipped.is_some() || lines.iter().all(|l| l.status == Status::Skip) {
        Outcome::Skip
    } else {
        Outcome::Pass
    };
    CaseReport {
        name: case.name.to_string(),
        outcome,
        lines,
        skip_reason: skipped,
        duration: start.elapsed(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique() {
        let mut names = case_names();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
    }

    #[test]
    fn report_counts() {
        let case = |name: &str, outcome| CaseReport {
            name: name.into(),
            outcome,
            lines: vec![TapLine::pass("x")],
            skip_reason: None,
            duration: Duration::ZERO,
        };
        let report = Report {
            cases: vec![
                case("a", Outcome::Pass),
                case("b", Outcome::Fail),
                case("c", Outcome::Skip),
            ],
        };
        assert_eq!(report.counts(), (1, 1, 1));
        assert_eq!(report.failed(), vec!["b"]);
        assert_eq!(report.check_counts(), (3, 0, 0));
    }

    #[test]
    fn missing_runtime_is_not_found() {
        let err = run_suite(&SuiteOptions::new("/nonexistent/runtime"), &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn wrapper_quotes_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_mask_wrapper(
            tmp.path(),
            Path::new("/usr/bin/crun"),
            Path::new("/sys/fs/cgroup/unified"),
        )
        .unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("'/sys/fs/cgroup/unified' '/usr/bin/crun' \"$@\""));
        assert!(write_mask_wrapper(tmp.path(), Path::new("/a'b"), Path::new("/c")).is_err());
    }
}
