//! seccomp for Berth: compile an OCI `linux.seccomp` object to a BPF program once, cache
//! it, and install it with one `seccomp(2)` call.
//!
//! # Lifecycle
//!
//! 1. The runtime reads `linux.seccomp` from `config.json` (an
//!    [`oci_spec::runtime::LinuxSeccomp`]).
//! 2. Before forking the container, it calls [`compile_cached`] (or [`compile`]). This is
//!    the only step that uses libseccomp: the profile becomes a libseccomp filter, which
//!    is exported as classic BPF into memory. With a warm cache, libseccomp is not used at
//!    all; the program is read from `<cache_dir>/<sha256>.bpf` and validated.
//! 3. In the container's init, as the last step before `execve`, the runtime calls
//!    [`CompiledFilter::load`], which only passes the program and its flags to
//!    `seccomp(SECCOMP_SET_MODE_FILTER)`. When the profile has `SCMP_ACT_NOTIFY` rules
//!    ([`CompiledFilter::wants_listener`]), `load` returns the listener fd; sending it to
//!    the `listenerPath` agent is the runtime's job.
//!
//! # Semantics
//!
//! Follows the OCI runtime spec, with runc's behaviour where the spec is silent; see
//! [`compile`] for the rules (unknown syscalls skipped, default-action rules skipped,
//! repeated argument indexes ORed, `errnoRet` defaults and checks). Unknown
//! `flags`, actions, operators or architectures cannot reach this crate: `oci-spec`
//! refuses them while parsing `config.json`, naming the offending value.
//!
//! [`CompiledFilter::evaluate`] runs a compiled program on a synthetic syscall, which
//! lets tests check what a profile does on every architecture it covers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod compile;
mod error;
mod filter;
mod simulate;

use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;

pub use error::{Error, Result};
pub use filter::CompiledFilter;
pub use simulate::Verdict;

/// Compile `profile` into a BPF program (with libseccomp).
///
/// Semantics:
/// - `defaultAction`/`defaultErrnoRet` become the filter's default action.
///   `SCMP_ACT_NOTIFY` is refused as default action.
/// - `errnoRet` and `defaultErrnoRet` default to `EPERM`, must fit in 16 bits, and are an
///   error on actions other than `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` (runtime spec).
///   `SCMP_ACT_KILL` means `SCMP_ACT_KILL_THREAD`.
/// - Every `architectures` entry is added (the native one is always in the filter).
/// - `flags` become `SECCOMP_FILTER_FLAG_*` load flags; `WAIT_KILLABLE_RECV` is dropped
///   when no rule notifies (the kernel refuses it without a listener).
/// - A rule's `args` are ANDed; when an argument index repeats within one rule, each
///   comparison becomes a rule of its own (ORed), as runc does. `SCMP_CMP_MASKED_EQ`
///   takes the mask from `value` and the expected value from `valueTwo`.
/// - Syscall names unknown to libseccomp are skipped silently (profiles name syscalls of
///   newer kernels and other architectures), and so are rules whose action equals the
///   default action (libseccomp refuses them; they would change nothing).
///
/// Errors are [`berth_errdefs::ErrorKind::InvalidArgument`] for bad profiles.
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledFilter> {
    compile::compile(profile)
}

/// [`compile`], cached in `cache_dir`.
///
/// The key is a SHA-256 over the canonical JSON of the profile, the native architecture,
/// the libseccomp version, the kernel release and this crate's version. Entries are
/// written atomically (temporary file + rename, mode 0600) and validated when read; a
/// missing, unreadable or corrupt entry is recompiled and replaced. Cache problems
/// never make this fail: only an invalid profile does.
pub fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter> {
    cache::compile_cached(profile, cache_dir)
}
