//! The errors of this crate, one variant per failing step.

use berth_errdefs::{ErrorKind, HasKind};
use libseccomp::error::SeccompError;

/// Why a seccomp profile could not be compiled, decoded or loaded.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// seccomp profile: errnoRet {value} of {context} does not fit in 16 bits
    ErrnoOutOfRange {
        /// `defaultErrnoRet` or the first syscall name of the rule.
        context: String,
        /// The value found in the profile.
        value: u32,
    },
    /// seccomp profile: errnoRet is set for {context} but its action {action} takes no errno
    ErrnoNotSupported {
        /// `defaultAction` or the first syscall name of the rule.
        context: String,
        /// The action of that rule, as the profile spells it.
        action: String,
    },
    /// seccomp profile: SCMP_ACT_NOTIFY cannot be the default action
    NotifyAsDefault,
    /// seccomp profile: argument index {index} of the rule for {syscall} is out of range (0-5)
    ArgumentIndex {
        /// The first syscall name of the rule.
        syscall: String,
        /// The index found in the profile.
        index: usize,
    },
    /// seccomp profile: libseccomp cannot create a filter with default action {action}
    CreateContext {
        /// The default action.
        action: String,
        /// What libseccomp said.
        #[source]
        source: SeccompError,
    },
    /// seccomp profile: libseccomp cannot add architecture {arch}
    AddArchitecture {
        /// The architecture, as the profile spells it.
        arch: String,
        /// What libseccomp said.
        #[source]
        source: SeccompError,
    },
    /// seccomp profile: libseccomp refused the rule for {syscall}
    AddRule {
        /// The syscall name.
        syscall: String,
        /// What libseccomp said.
        #[source]
        source: SeccompError,
    },
    /// seccomp profile: libseccomp cannot set filter attribute {attribute}
    SetAttribute {
        /// The attribute.
        attribute: &'static str,
        /// What libseccomp said.
        #[source]
        source: SeccompError,
    },
    /// seccomp: cannot create the in-memory file to export the BPF program into
    ExportBuffer(#[source] std::io::Error),
    /// seccomp: libseccomp failed to export the BPF program
    Export(#[source] SeccompError),
    /// seccomp: the compiled BPF program is malformed: {reason}
    MalformedProgram {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// seccomp: syscall {syscall} does not exist on architecture {arch}
    UnknownSyscall {
        /// The syscall name.
        syscall: String,
        /// The architecture, as OCI spells it.
        arch: String,
    },
    /// seccomp: cannot load the filter into the kernel
    Load(#[source] berth_sys::Error),
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::ErrnoOutOfRange { .. }
            | Error::ErrnoNotSupported { .. }
            | Error::NotifyAsDefault
            | Error::ArgumentIndex { .. }
            | Error::AddArchitecture { .. }
            | Error::AddRule { .. }
            | Error::CreateContext { .. } => ErrorKind::InvalidArgument,
            Error::MalformedProgram { .. } => ErrorKind::InvalidArgument,
            Error::UnknownSyscall { .. } => ErrorKind::NotFound,
            Error::SetAttribute { .. } | Error::ExportBuffer(_) | Error::Export(_) => {
                ErrorKind::Internal
            }
            Error::Load(source) => source.kind(),
        }
    }
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;
