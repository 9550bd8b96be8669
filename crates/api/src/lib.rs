//! The Docker Engine API for Berth: routes that translate HTTP requests into the
//! engine's [`Action`](berth_engine::Action)s, Docker's JSON shapes, the version gate
//! (`/v1.24` … `/v1.51` and unversioned paths), and the one mapping from error classes
//! to HTTP statuses ([`status_of`]).
#![forbid(unsafe_code)]
#![recursion_limit = "256"]
#![warn(missing_docs)]

pub mod decode;
mod error;
mod server;
mod version;
pub mod wire;

pub use error::{kind_of, status_of, ApiError};
pub use server::{router, version_gate, ApiState};
pub use version::{split_path, ApiVersion, CURRENT, MINIMUM};

/// The whole service: the router behind the version gate (which rewrites `/vX.Y/…`
/// before routing, so it wraps the router rather than running inside it).
pub fn service(state: ApiState) -> axum::Router {
    axum::Router::new()
        .fallback_service(router(state))
        .layer(axum::middleware::from_fn(version_gate))
}
