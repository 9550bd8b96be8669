//! Berth's OCI runtime library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
