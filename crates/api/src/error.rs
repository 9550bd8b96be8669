//! Errors as Docker clients expect them: `{"message": …}` with the status their class
//! maps to — in one exhaustive match.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_errdefs::{ErrorKind, HasKind};

/// The HTTP status of an error class. Docker clients act on 404, 409 and 304.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::FailedPrecondition => StatusCode::BAD_REQUEST,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The class a client gives a status back (the inverse of [`status_of`]).
pub fn kind_of(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400 | 422 => ErrorKind::InvalidArgument,
        304 => ErrorKind::NotModified,
        401 | 403 => ErrorKind::PermissionDenied,
        503 => ErrorKind::Unavailable,
        501 => ErrorKind::NotImplemented,
        _ => ErrorKind::Internal,
    }
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// Its class.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidArgument, message)
    }
}

impl<E: HasKind + std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.kind);
        if status == StatusCode::NOT_MODIFIED {
            // 304 has no body.
            return status.into_response();
        }
        if status.is_server_error() {
            tracing::error!(message = %self.message, "request failed");
        }
        let body = serde_json::json!({ "message": self.message });
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let table = [
            (ErrorKind::NotFound, 404),
            (ErrorKind::AlreadyExists, 409),
            (ErrorKind::Conflict, 409),
            (ErrorKind::InvalidArgument, 400),
            (ErrorKind::FailedPrecondition, 400),
            (ErrorKind::NotModified, 304),
            (ErrorKind::PermissionDenied, 403),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::NotImplemented, 501),
            (ErrorKind::Internal, 500),
        ];
        for (kind, code) in table {
            assert_eq!(status_of(kind).as_u16(), code, "{kind:?}");
        }
        for kind in ErrorKind::ALL {
            let back = kind_of(status_of(kind).as_u16());
            let same_status = status_of(back) == status_of(kind);
            assert!(same_status, "{kind:?} -> {back:?}");
        }
    }
}
