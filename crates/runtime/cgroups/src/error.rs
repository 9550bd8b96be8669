//! The crate's error type.

use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

/// Everything that can go wrong while finding, changing or removing a container's cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading one of the process files that describe the cgroup layout failed.
    #[error("reading {path}: {source}")]
    ReadLayout {
        /// `/proc/self/mountinfo`, `/proc/self/cgroup` or similar.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No cgroup hierarchy is mounted.
    #[error("no cgroup filesystem is mounted (looked for cgroup and cgroup2 in the mount table)")]
    NoHierarchy,
    /// The caller's own cgroup in a hierarchy is not listed in `/proc/self/cgroup`.
    #[error("the caller's cgroup in hierarchy {hierarchy} is unknown (needed for relative cgroupsPath {path:?})")]
    CallerCgroupUnknown {
        /// The hierarchy (controllers, or "unified").
        hierarchy: String,
        /// The relative path being resolved.
        path: String,
    },
    /// The `linux.cgroupsPath` (or the container ID used for the default) is unusable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The cgroup lies outside the part of the hierarchy that is mounted here.
    #[error(
        "cgroup {path} is outside the mounted part {mount_root} of the hierarchy at {mountpoint}"
    )]
    OutsideMount {
        /// The cgroup path.
        path: String,
        /// The hierarchy path the mount shows.
        mount_root: String,
        /// Where the hierarchy is mounted.
        mountpoint: PathBuf,
    },
    /// The systemd cgroup driver was asked for but systemd does not run here.
    #[error(
        "the systemd cgroup driver needs a running systemd (no {marker}); use the cgroupfs driver"
    )]
    SystemdNotRunning {
        /// The directory whose absence shows systemd is not PID 1.
        marker: PathBuf,
    },
    /// The systemd cgroup driver was asked for; Berth implements only the cgroupfs driver.
    #[error("the systemd cgroup driver is not implemented; use the cgroupfs driver")]
    SystemdDriverUnsupported,
    /// A saved cgroup record is inconsistent.
    #[error("invalid cgroup record: {reason}")]
    InvalidRecord {
        /// What is wrong with it.
        reason: String,
    },
    /// Creating a cgroup directory failed.
    #[error("creating cgroup {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Opening a cgroup directory failed.
    #[error("opening cgroup {path}: {source}")]
    OpenDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("removing cgroup {path}: {source}")]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a cgroup control file failed.
    #[error("writing {value:?} to {path}: {source}")]
    WriteFile {
        /// The control file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel accepted only part of a value.
    #[error("short write of {value:?} to {path}: {written} bytes written")]
    ShortWrite {
        /// The control file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// Bytes the kernel took.
        written: usize,
    },
    /// Reading a cgroup control file failed.
    #[error("reading {path}: {source}")]
    ReadFile {
        /// The control file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A cgroup control file holds something unexpected.
    #[error("parsing {path}: unexpected content {content:?}")]
    ParseFile {
        /// The control file.
        path: PathBuf,
        /// The offending text (truncated).
        content: String,
    },
    /// The kernel stored another value than the one written (e.g. clamped).
    #[error("{path}: wrote {wanted:?} but the kernel kept {got:?}")]
    ValueNotKept {
        /// The control file.
        path: PathBuf,
        /// What was written.
        wanted: String,
        /// What the file reads back.
        got: String,
    },
    /// A resource was requested whose controller is neither mounted (v1) nor enabled (v2).
    #[error("cannot set {resource}: the {controller} cgroup controller is not available{where_}")]
    ControllerUnavailable {
        /// The controller ("memory", "hugetlb"...).
        controller: &'static str,
        /// The OCI resource asking for it.
        resource: &'static str,
        /// Where it was looked for, preformatted (" in /sys/fs/cgroup/x" or "").
        where_: String,
    },
    /// A resource needs a control file this kernel does not provide.
    #[error("cannot set {resource}: this kernel has no {file}")]
    FileUnavailable {
        /// The OCI resource.
        resource: &'static str,
        /// The missing file(s).
        file: String,
    },
    /// A resource has no equivalent in this cgroup version.
    #[error("{resource} is not supported with cgroup {version}")]
    Unsupported {
        /// The OCI resource.
        resource: &'static str,
        /// "v1" or "v2".
        version: &'static str,
    },
    /// An OCI resource value is out of range or malformed.
    #[error("invalid {resource} value {value:?}: {reason}")]
    InvalidResource {
        /// The OCI resource.
        resource: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The cgroup did not reach the requested freezer state in time.
    #[error("cgroup {path} did not become {state} within {millis} ms")]
    FreezeTimeout {
        /// The cgroup.
        path: PathBuf,
        /// The state waited for.
        state: &'static str,
        /// How long was waited.
        millis: u64,
    },
    /// The signal number is not one this crate can send.
    #[error("cannot send signal {signal}: not a named signal")]
    InvalidSignal {
        /// The number.
        signal: i32,
    },
    /// Sending a signal to a process of the cgroup failed.
    #[error("sending signal {signal} to process {pid}: {source}")]
    Signal {
        /// The process.
        pid: i32,
        /// The signal.
        signal: i32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Loading or attaching the eBPF device filter failed.
    #[error("device filter for {path}: {source}")]
    DeviceFilter {
        /// The cgroup directory.
        path: PathBuf,
        /// The failed system call.
        #[source]
        source: berth_sys::Error,
    },
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::ReadLayout { source, .. }
            | Error::CreateDir { source, .. }
            | Error::OpenDir { source, .. }
            | Error::RemoveDir { source, .. }
            | Error::WriteFile { source, .. }
            | Error::ReadFile { source, .. }
            | Error::Signal { source, .. } => ErrorKind::from_io(source),
            Error::DeviceFilter { source, .. } => source.kind(),
            Error::NoHierarchy
            | Error::CallerCgroupUnknown { .. }
            | Error::OutsideMount { .. }
            | Error::SystemdNotRunning { .. }
            | Error::ControllerUnavailable { .. }
            | Error::FileUnavailable { .. } => ErrorKind::FailedPrecondition,
            Error::InvalidPath { .. }
            | Error::InvalidRecord { .. }
            | Error::InvalidResource { .. }
            | Error::InvalidSignal { .. } => ErrorKind::InvalidArgument,
            Error::SystemdDriverUnsupported | Error::Unsupported { .. } => {
                ErrorKind::NotImplemented
            }
            Error::ShortWrite { .. } | Error::ParseFile { .. } | Error::ValueNotKept { .. } => {
                ErrorKind::Internal
            }
            Error::FreezeTimeout { .. } => ErrorKind::Unavailable,
        }
    }
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let e = Error::ControllerUnavailable {
            controller: "hugetlb",
            resource: "hugepageLimits",
            where_: String::new(),
        };
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("hugetlb"));
        assert_eq!(
            Error::SystemdDriverUnsupported.kind(),
            ErrorKind::NotImplemented
        );
        let e = Error::WriteFile {
            path: "/x/pids.max".into(),
            value: "5".into(),
            source: std::io::Error::from_raw_os_error(22),
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("/x/pids.max"));
    }
}
