//! The engine's typed errors.

use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

/// Everything an engine operation can fail with.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum EngineError {
    /// No such container: {0}
    NoSuchContainer(String),
    /// No such image: {0}
    NoSuchImage(String),
    /// {0}
    Unauthorized(String),
    /// Could not find the file {0} in container
    PathNotFound(String),
    /// {0}
    PermissionDenied(String),
    /// get {0}: no such volume
    NoSuchVolume(String),
    /// remove {0}: volume is in use - {1:?}
    VolumeInUse(String, Vec<String>),
    /// No such exec instance: {0}
    NoSuchExec(String),
    /// Error: Exec command {0} has already run
    ExecStarted(String),
    /// Conflict. The container name "{name}" is already in use by container "{id}". You have to remove (or rename) that container to be able to reuse that name.
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed
    InvalidName(String),
    /// {0}
    InvalidArgument(String),
    /// {0} is not supported by berthd yet: {1}
    Unsupported(String, &'static str),
    /// multiple IDs found with provided prefix: {0}
    Ambiguous(String),
    /// You cannot remove a running container {0}. Stop the container before attempting removal or force remove
    RemoveRunning(String),
    /// Container {0} is not running
    NotRunning(String),
    /// Container {0} is paused, unpause the container before stopping or killing
    Paused(String),
    /// container already started
    AlreadyStarted,
    /// container already stopped
    AlreadyStopped,
    /// removal of container {0} is already in progress
    RemovalInProgress(String),
    /// {step} {path}: {source}
    Io {
        /// What was being done.
        step: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// corrupt container record {path}: {source}
    Record {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// {0}
    Image(#[from] berth_images::service::ServiceError),
    /// mounting the root filesystem of {id}: {source}
    Mount {
        /// The container.
        id: String,
        /// The mount error.
        #[source]
        source: berth_images::snapshot::MountError,
    },
    /// starting the monitor of {id}: {source}
    SpawnMonitor {
        /// The container.
        id: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// the monitor of {id} ended without a report
    MonitorGone {
        /// The container.
        id: String,
    },
    /// {message}
    Runtime {
        /// The class the runtime (through the monitor) reported.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// building the runtime configuration of {id}: {message}
    Spec {
        /// The container.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// a background task failed: {0}
    Join(#[from] tokio::task::JoinError),
}

impl EngineError {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            step,
            path: path.into(),
            source,
        }
    }
}

impl HasKind for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchImage(_)
            | EngineError::NoSuchExec(_)
            | EngineError::NoSuchVolume(_)
            | EngineError::PathNotFound(_) => ErrorKind::NotFound,
            EngineError::PermissionDenied(_) | EngineError::Unauthorized(_) => {
                ErrorKind::PermissionDenied
            }
            EngineError::VolumeInUse(..) => ErrorKind::Conflict,
            EngineError::ExecStarted(_) => ErrorKind::Conflict,
            EngineError::NameInUse { .. } => ErrorKind::Conflict,
            EngineError::InvalidName(_)
            | EngineError::InvalidArgument(_)
            | EngineError::Unsupported(..)
            | EngineError::Ambiguous(_) => ErrorKind::InvalidArgument,
            EngineError::RemoveRunning(_)
            | EngineError::NotRunning(_)
            | EngineError::Paused(_)
            | EngineError::RemovalInProgress(_) => ErrorKind::Conflict,
            EngineError::AlreadyStarted | EngineError::AlreadyStopped => ErrorKind::NotModified,
            EngineError::Io { source, .. } => ErrorKind::from_io(source),
            EngineError::Record { .. }
            | EngineError::SpawnMonitor { .. }
            | EngineError::MonitorGone { .. }
            | EngineError::Join(_) => ErrorKind::Internal,
            EngineError::Image(e) => e.kind(),
            EngineError::Mount { .. } => ErrorKind::Internal,
            EngineError::Runtime { kind, .. } => *kind,
            EngineError::Spec { .. } => ErrorKind::InvalidArgument,
        }
    }
}

/// Result of an engine operation.
pub type Result<T> = std::result::Result<T, EngineError>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let cases: Vec<(EngineError, ErrorKind, &str)> = vec![
            (
                EngineError::NoSuchContainer("web".into()),
                ErrorKind::NotFound,
                "No such container: web",
            ),
            (EngineError::AlreadyStarted, ErrorKind::NotModified, "container already started"),
            (
                EngineError::NameInUse { name: "/a".into(), id: "b".into() },
                ErrorKind::Conflict,
                "Conflict. The container name \"/a\" is already in use by container \"b\". You have to remove (or rename) that container to be able to reuse that name.",
            ),
            (
                EngineError::Runtime { kind: ErrorKind::InvalidArgument, message: "exec: \"x\": executable file not found in $PATH".into() },
                ErrorKind::InvalidArgument,
                "exec: \"x\": executable file not found in $PATH",
            ),
        ];
        for (e, kind, msg) in cases {
            assert_eq!(e.kind(), kind);
            assert_eq!(e.to_string(), msg);
        }
    }
}
