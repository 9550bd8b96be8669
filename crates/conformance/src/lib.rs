//! Berth's OCI runtime conformance suite.
//!
//! It runs against any runtime with runc's command line (`berth-runtime`,
//! runc, crun), so running it against runc and crun proves the tests
//! themselves. It has two halves, like youki's `contest` and runtime-tools'
//! `validation/` + `runtimetest`:
//!
//! - **`berth-checker`** ([`checker`]) runs *inside* the container as its
//!   process. It reads the spec the container was created from
//!   (`/berth-conformance/config.json`, written into the rootfs by the driver)
//!   plus host facts (`/berth-conformance/facts.json`: host namespace inodes,
//!   enabled LSMs), verifies that every setting took effect and prints TAP:
//!   process args/env/cwd/user/umask/rlimits/oomScoreAdj/noNewPrivileges, the
//!   five capability sets, hostname/domainname, root read-only, mounts with
//!   type and options, rootfs propagation, default devices and `/dev`
//!   symlinks, `linux.devices`, masked and read-only paths, sysctls,
//!   namespaces (new, shared, joined by path), uid/gid mappings, seccomp
//!   (mode and the errno of blocked syscalls), AppArmor/SELinux where enabled,
//!   cgroup limits visible from inside, and that no runtime file descriptors
//!   leaked.
//! - **the driver** ([`run_suite`], binary `berth-conformance`) builds one
//!   bundle per case from a busybox rootfs plus the checker, drives the
//!   runtime (`create`, `start`, `state`, `kill`, `delete`, `pause`, `resume`,
//!   `exec`, `ps`, `events`, `update`, `list`), checks lifecycle semantics and
//!   hooks itself, reads the checker's TAP and reports per case. Every
//!   container, cgroup and temporary directory is removed, also on failure.
//!
//! Case names follow runtime-tools' `validation/` directory (`default`,
//! `process_capabilities_fail`, `linux_cgroups_memory`, `hooks_stdin`, ...);
//! `berth-conformance --list` prints them. Adding a case is one function in
//! `src/driver/cases/` plus a line in its `CASES` table.
//!
//! # Running it
//!
//! As root, with the checker built statically (the rootfs has no libc):
//!
//! ```sh
//! export CARGO_TARGET_DIR=target/conformance
//! RUSTFLAGS="-C target-feature=+crt-static" \
//!   cargo build -p berth-conformance --bin berth-checker --target x86_64-unknown-linux-gnu
//! cargo build -p berth-conformance --bin berth-conformance
//! export BERTH_CHECKER=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/debug/berth-checker
//! $CARGO_TARGET_DIR/debug/berth-conformance --runtime /usr/sbin/runc
//! $CARGO_TARGET_DIR/debug/berth-conformance --runtime /usr/bin/crun --mask-hybrid-cgroup2
//! $CARGO_TARGET_DIR/debug/berth-conformance --runtime target/debug/berth-runtime --filter hooks --tap
//! ```
//!
//! The rootfs is `$BERTH_FIXTURES/busybox/rootfs` (default
//! `/var/cache/berth-fixtures`); when that does not exist the driver builds a
//! minimal one from a static `/bin/busybox` (Debian's busybox-static).
//!
//! Useful options: `--filter NAME` (repeatable), `--tap` (TAP with one
//! subtest per case), `--list`, `-v` (print passing checks too), `--keep`
//! (keep bundles, container output and hook logs), `--runtime-arg ARG`
//! (global runtime flags). The last line reads
//! `conformance: N passed, M failed, K skipped` (cases); the exit code is 1
//! when a case failed. `--mask-hybrid-cgroup2` runs the runtime in a private
//! mount namespace in which the cgroup2 mount of a hybrid layout is covered by
//! an empty tmpfs: crun 1.8 refuses hybrid layouts whose cgroup2 tree has
//! controllers ("cgroups in hybrid mode not supported"), as on the dev VMs
//! where hugetlb sits in `/sys/fs/cgroup/unified`. The host is not changed.
//!
//! `cargo test -p berth-conformance --test runtimes` runs the suite against
//! runc and crun when installed (and against `$BERTH_RUNTIME` when set),
//! building the static checker itself, and asserts that only the cases known
//! to be unsupported on this host fail.
//!
//! `crates/conformance/runtime-tools.sh` is separate measurement tooling: it
//! builds the official runtime-tools validation programs offline with
//! Debian's Go packages and runs them against runtimes (see its header).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod caps;
pub mod checker;
mod driver;
pub mod facts;
pub mod mountinfo;
pub mod tap;

pub use driver::{
    case_names, find_checker, run_suite, CaseReport, Outcome, Report, SuiteError, SuiteOptions,
    CHECKER_ENV, DEFAULT_FIXTURES, FIXTURES_ENV,
};
