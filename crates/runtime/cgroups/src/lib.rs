//! cgroup management for Berth (stub; being implemented).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
