//! Error classes shared by every Berth crate.
//!
//! Each crate defines its own typed errors (one `thiserror` enum per crate, variants named
//! after the step that failed). Every such error answers [`HasKind::kind`] with one of the
//! few classes below; the code that knows what a failure *means* picks the class. The API
//! layer maps classes to HTTP statuses in exactly one place, and the CLI maps statuses back.
//!
//! The set mirrors containerd's `errdefs`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

/// The class of an error, independent of which crate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object (container, image, file, cgroup…) does not exist.
    NotFound,
    /// An object with that name or ID exists already.
    AlreadyExists,
    /// The object is in a state that conflicts with the request (container running…).
    Conflict,
    /// The request itself is malformed: bad flag, bad JSON, bad reference.
    InvalidArgument,
    /// The system is not in the state the operation needs (digest mismatch, missing kernel feature).
    FailedPrecondition,
    /// Nothing changed because nothing needed to.
    NotModified,
    /// The caller lacks the privilege the operation needs.
    PermissionDenied,
    /// A dependency is temporarily unavailable; retrying may work.
    Unavailable,
    /// The operation is not implemented on this platform or configuration.
    NotImplemented,
    /// A bug or an unexpected failure of the system underneath.
    Internal,
}

impl ErrorKind {
    /// Every class, in declaration order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Conflict,
        ErrorKind::InvalidArgument,
        ErrorKind::FailedPrecondition,
        ErrorKind::NotModified,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::NotImplemented,
        ErrorKind::Internal,
    ];

    /// The class named `name` (the inverse of [`ErrorKind::as_str`]), for kinds that cross
    /// a process boundary as text. Unknown names are `None`.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A stable lower-case name, used in logs and JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::NotModified => "not modified",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Internal => "internal",
        }
    }

    /// The class an operating-system error number belongs to.
    pub fn from_errno(errno: i32) -> ErrorKind {
        // Values from <asm-generic/errno-base.h>, identical on every Linux architecture
        // Berth supports; kept here so this crate has no dependencies.
        const EPERM: i32 = 1;
        const ENOENT: i32 = 2;
        const EAGAIN: i32 = 11;
        const EACCES: i32 = 13;
        const EBUSY: i32 = 16;
        const EEXIST: i32 = 17;
        const ENOTDIR: i32 = 20;
        const EISDIR: i32 = 21;
        const EINVAL: i32 = 22;
        const EROFS: i32 = 30;
        const ENAMETOOLONG: i32 = 36;
        const ENOSYS: i32 = 38;
        const ELOOP: i32 = 40;
        const EOPNOTSUPP: i32 = 95;
        const EXDEV: i32 = 18;
        match errno {
            ENOENT => ErrorKind::NotFound,
            EEXIST => ErrorKind::AlreadyExists,
            EBUSY => ErrorKind::Conflict,
            EPERM | EACCES | EROFS => ErrorKind::PermissionDenied,
            EINVAL | ENOTDIR | EISDIR | ENAMETOOLONG | ELOOP | EXDEV => ErrorKind::InvalidArgument,
            EAGAIN => ErrorKind::Unavailable,
            ENOSYS | EOPNOTSUPP => ErrorKind::NotImplemented,
            _ => ErrorKind::Internal,
        }
    }

    /// The class of a `std::io::Error`.
    pub fn from_io(err: &std::io::Error) -> ErrorKind {
        match err.raw_os_error() {
            Some(errno) => ErrorKind::from_errno(errno),
            None => match err.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::Internal,
            },
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every Berth error type.
pub trait HasKind {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        assert_eq!(ErrorKind::from_errno(2), ErrorKind::NotFound);
        assert_eq!(ErrorKind::from_errno(17), ErrorKind::AlreadyExists);
        assert_eq!(ErrorKind::from_errno(1), ErrorKind::PermissionDenied);
        assert_eq!(ErrorKind::from_errno(38), ErrorKind::NotImplemented);
        assert_eq!(ErrorKind::from_errno(9999), ErrorKind::Internal);
    }

    #[test]
    fn names_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(ErrorKind::from_name("bogus"), None);
    }

    #[test]
    fn io_without_errno() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "x");
        assert_eq!(ErrorKind::from_io(&e), ErrorKind::InvalidArgument);
    }
}
