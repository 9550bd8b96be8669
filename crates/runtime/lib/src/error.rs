//! The runtime's typed errors.

use std::path::PathBuf;

use berth_errdefs::{ErrorKind, HasKind};

/// Everything that can go wrong in a runtime operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A container ID was empty, too long or held characters other than `[A-Za-z0-9_.-]`.
    #[error("invalid container ID {0:?}: use 1-1024 characters from [A-Za-z0-9_.+-], not starting with '.'")]
    InvalidId(String),
    /// No container with that ID exists under the runtime root.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// A container with that ID exists already.
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    /// The container is not in a state that allows the operation.
    #[error("container {id:?} is {status}: cannot {op}")]
    WrongState {
        /// Container ID.
        id: String,
        /// Its current status.
        status: &'static str,
        /// The refused operation.
        op: &'static str,
    },
    /// The bundle's `config.json` could not be read or parsed.
    #[error("reading the bundle configuration {path}: {message}")]
    Config {
        /// Path of config.json.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration asks for something invalid or unsupported.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The configuration asks for something this host cannot provide.
    #[error("unsupported on this host: {0}")]
    Unsupported(String),
    /// A security module refused a profile or label, or loading one failed.
    #[error("security module: {0}")]
    Lsm(String),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A wrapped system call of berth-sys failed.
    #[error(transparent)]
    Kernel(#[from] berth_sys::Error),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),
    /// Compiling or loading the seccomp filter failed.
    #[error(transparent)]
    Seccomp(#[from] berth_seccomp::Error),
    /// The container's init process reported a failure while setting up.
    #[error("container init failed: {0}")]
    Init(String),
    /// A process the runtime forked (the container's init, an exec'd process) failed at a
    /// step and reported the error's class with its message.
    #[error("{message}")]
    Reported {
        /// The class of the original error.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// A hook failed or timed out.
    #[error("{kind} hook {path}: {message}")]
    Hook {
        /// Which hook list (prestart, createRuntime, ...).
        kind: &'static str,
        /// The hook's path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The state file of a container is corrupt.
    #[error("container state {path}: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            op: op.into(),
            source: source.into(),
        }
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidId(_) | Error::Config { .. } | Error::InvalidConfig(_) => {
                ErrorKind::InvalidArgument
            }
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::WrongState { .. } => ErrorKind::Conflict,
            Error::Unsupported(_) => ErrorKind::NotImplemented,
            Error::Io { source, .. } | Error::Sys { source, .. } => ErrorKind::from_io(source),
            Error::Kernel(e) => e.kind(),
            Error::Cgroup(e) => e.kind(),
            Error::Seccomp(e) => e.kind(),
            Error::Init(_) | Error::Hook { .. } | Error::Lsm(_) => ErrorKind::FailedPrecondition,
            Error::State { .. } => ErrorKind::Internal,
            Error::Reported { kind, .. } => *kind,
        }
    }
}

/// Result of a runtime operation.
pub type Result<T> = std::result::Result<T, Error>;
