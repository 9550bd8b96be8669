//! `berth-runtime`: Berth's OCI runtime, with runc's command line so that containerd,
//! Podman and dockerd can use it in runc's place.
#![forbid(unsafe_code)]

mod commands;
mod log;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::log::LogFormat;

/// Berth's OCI runtime: runs containers from OCI bundles, secure by default.
///
/// Speaks runc's command line: point containerd (`BinaryName`), Podman (`--runtime`) or
/// dockerd (`--add-runtime`) at it. A typical life cycle is `create`, `start`, `state`,
/// `kill`, `delete`; `run` does create, start, wait and delete in one go.
#[derive(Debug, Parser)]
#[command(name = "berth-runtime", version = VERSION, about, long_about, disable_version_flag = true)]
struct Cli {
    /// Directory for container state, on a tmpfs [default: /run/berth-runtime, or
    /// $XDG_RUNTIME_DIR/berth-runtime without root].
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Also write log messages to this file (errors are always printed to stderr).
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,

    /// Format of the log file: text or json (json is what containerd and Podman read).
    #[arg(
        long = "log-format",
        global = true,
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,

    /// Log debug messages too.
    #[arg(long, global = true)]
    debug: bool,

    /// Manage cgroups through systemd (needs a running systemd; cgroupsPath is
    /// "slice:prefix:name").
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,

    /// Ignore cgroup permission errors (true, false or auto). Accepted for compatibility.
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,

    /// Path to criu (accepted for compatibility; checkpoint/restore is not supported).
    #[arg(long, global = true, hide = true)]
    criu: Option<PathBuf>,

    /// Print the version and the runtime-spec version.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,

    #[command(subcommand)]
    command: commands::Command,
}

fn default_root() -> String {
    if rustix_euid_is_root() {
        "/run/berth-runtime".to_string()
    } else {
        let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".to_string());
        format!("{dir}/berth-runtime")
    }
}

fn rustix_euid_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(true)
}

/// `--version` output: ours and the runtime-spec version (kept equal to
/// `berth_runtime::OCI_VERSION`, checked by a test).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0");

fn main() -> ExitCode {
    // First thing: nothing in a container may open our /proc/PID/exe (CVE-2019-5736).
    let protected = berth_runtime::protect_self();
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    log::install(logger.clone());
    berth_runtime::set_warning_sink(log::warn_sink);
    if let Err(e) = protected {
        logger.error(&format!("{e:#}"));
        return ExitCode::from(1);
    }
    let root = cli
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_root()));
    let rt = berth_runtime::Runtime::new(root).with_systemd_cgroup(cli.systemd_cgroup);
    let rootless = cli.rootless.as_deref().is_some_and(|v| v == "true");
    match commands::run(&rt, cli.command, rootless) {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(e) => {
            logger.error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_names_the_spec() {
        assert!(super::VERSION.ends_with(&format!("spec: {}", berth_runtime::OCI_VERSION)));
    }
}
