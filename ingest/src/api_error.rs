//! Errors as HTTP responses: the single mapping from failures to status codes for the collector.
//!
//! Body shape: `{"error": {"field": "...", "reason": "..."}}`. 4xx when the caller can fix the request,
//! 503 + `Retry-After` when a backend is down or full, 500 only for our own bugs.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed request; names the field.
    BadRequest { field: String, reason: String },
    /// 404.
    NotFound(String),
    /// 413: over a size bound; names the bound.
    TooLarge { field: String, reason: String },
    /// 503 + Retry-After: a backend cannot take it now.
    Unavailable(String),
    /// 500: our bug.
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad(field: &str, reason: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<pipelines::Error> for ApiError {
    fn from(e: pipelines::Error) -> Self {
        match e {
            pipelines::Error::BadInput(m) => ApiError::bad("request", m),
            pipelines::Error::Unavailable(m) | pipelines::Error::Full(m) => {
                ApiError::Unavailable(m)
            }
            pipelines::Error::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, field, reason) = match self {
            ApiError::BadRequest { field, reason } => (StatusCode::BAD_REQUEST, field, reason),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "path".into(), what),
            ApiError::TooLarge { field, reason } => (StatusCode::PAYLOAD_TOO_LARGE, field, reason),
            ApiError::Unavailable(reason) => {
                tracing::warn!(%reason, "backend unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "backend".into(), reason)
            }
            ApiError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "server".into(), reason)
            }
        };
        let mut resp = (
            status,
            Json(json!({ "error": { "field": field, "reason": reason } })),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp
    }
}
