//! The HTTP edge every role's router goes through: the one caller-facing error ([`ApiError`]) and its one
//! mapping to HTTP, request ids ([`request_ids`]), and the JSON-body parser that names the offending field.
//!
//! Every error body is `{"error": {"code", "message", "field"?}, "request_id"}`. A 5xx never carries our
//! internal text: the body names the request id and the log line with the same id carries the cause. Every
//! response has an `x-request-id` header, the caller's own when it sent a sane one (1–64 of `[A-Za-z0-9._:-]`),
//! else a new UUID. Error responses that did not come from [`ApiError`] (axum's extractor rejections, the
//! router's 404 and 405, a body-limit layer's 413) are rewritten into the same shape by [`request_ids`].
//!
//! - [`auth`]: API keys and console sessions checked against the process's route table (401/403/415, CSRF,
//!   origins), before any handler runs.
//! - [`console`]: the console's login and logout (a key exchanged for a session cookie).
//! - [`flight`]: single-flight for heavy endpoints (one run at a time; identical requests share it).

pub mod auth;
pub mod console;
pub mod flight;

use std::fmt;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

/// The request-id header, read from the request and set on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Default seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Longest error text read back from a response that did not come from [`ApiError`] (axum's rejections are
/// one line; anything longer is cut).
const FOREIGN_BODY_MAX_BYTES: usize = 4096;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (set by [`request_ids`]), or `None` outside of one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// What went wrong, named for what the caller can do about it. Each crate converts its own error into this
/// (`impl From<crate::Error> for ApiError`); it becomes HTTP only here.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400: the request is wrong; `field` names the parameter or JSON path.
    BadInput { field: String, reason: String },
    /// 404: the named thing does not exist.
    NotFound(String),
    /// 409: the request conflicts with the current state (a stale version, stock short, a reused key).
    Conflict {
        field: Option<String>,
        reason: String,
    },
    /// 402: the payment provider declined the payment; another method may work.
    PaymentDeclined(String),
    /// 413: over a size bound; `field` names the bound.
    TooLarge { field: String, reason: String },
    /// 415: the route takes JSON and the body says it is something else.
    UnsupportedMediaType(String),
    /// 408: the client did not send its request (body) in time.
    Timeout(String),
    /// 401: no key, or a key that is not valid.
    Unauthorized(String),
    /// 403: a valid key without the scope the route needs, or a refused origin.
    Forbidden(String),
    /// 429 + `Retry-After`: over the caller's rate limit.
    TooManyRequests { retry_after_secs: u64 },
    /// 503 + `Retry-After`: a backend cannot take the request now. `cause` is logged, never sent.
    Unavailable {
        cause: String,
        retry_after_secs: u64,
    },
    /// 503 + `Retry-After`: a bounded queue or store is full. `cause` is logged, never sent.
    Full(String),
    /// 500: our bug. `cause` is logged, never sent.
    Internal(String),
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::BadInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A 409 naming `field`.
    pub fn conflict(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// A 503 with the default `Retry-After`.
    pub fn unavailable(cause: impl Into<String>) -> ApiError {
        ApiError::Unavailable {
            cause: cause.into(),
            retry_after_secs: RETRY_AFTER_SECS,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadInput { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadInput { .. } => "bad_input",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PaymentDeclined(_) => "payment_declined",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Full(_) => "full",
            ApiError::Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Full(_) => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// The caller-facing message and field; for a 5xx a fixed text, never the cause.
    fn public(&self, request_id: &str) -> (String, Option<String>) {
        match self {
            ApiError::BadInput { field, reason } | ApiError::TooLarge { field, reason } => {
                (reason.clone(), Some(field.clone()))
            }
            ApiError::Conflict { field, reason } => (reason.clone(), field.clone()),
            ApiError::NotFound(m)
            | ApiError::PaymentDeclined(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Timeout(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m) => (m.clone(), None),
            ApiError::TooManyRequests { retry_after_secs } => (
                format!("over the rate limit; retry after {retry_after_secs} s"),
                None,
            ),
            ApiError::Unavailable {
                retry_after_secs, ..
            } => (
                format!("a backend this request needs is unavailable; retry after {retry_after_secs} s (request id {request_id})"),
                None,
            ),
            ApiError::Full(_) => (
                format!("at capacity; retry after {RETRY_AFTER_SECS} s (request id {request_id})"),
                None,
            ),
            ApiError::Internal(_) => (
                format!("internal error; the log has the cause under request id {request_id}"),
                None,
            ),
        }
    }

    fn log(&self, request_id: &str) {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(request_id, cause = %cause, "internal error")
            }
            ApiError::Unavailable { cause, .. } => {
                tracing::warn!(request_id, cause = %cause, "backend unavailable")
            }
            ApiError::Full(cause) => tracing::warn!(request_id, cause = %cause, "full"),
            other => tracing::debug!(request_id, code = other.code(), "request refused"),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadInput { field, reason } | ApiError::TooLarge { field, reason } => {
                write!(f, "{}: {field}: {reason}", self.code())
            }
            ApiError::Conflict { reason, .. } => write!(f, "conflict: {reason}"),
            ApiError::NotFound(m)
            | ApiError::PaymentDeclined(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Timeout(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::Full(m)
            | ApiError::Internal(m)
            | ApiError::Unavailable { cause: m, .. } => write!(f, "{}: {m}", self.code()),
            ApiError::TooManyRequests { retry_after_secs } => {
                write!(f, "too_many_requests: retry after {retry_after_secs} s")
            }
        }
    }
}

impl std::error::Error for ApiError {}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::BadInput(m) => ApiError::bad("request", m),
            crate::Error::Unavailable(m) => ApiError::unavailable(m),
            crate::Error::Full(m) => ApiError::Full(m),
            crate::Error::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// The error body (`components.schemas.Error` in the OpenAPI document).
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// Marks a response whose body is already in the error shape (so [`request_ids`] leaves it alone).
#[derive(Clone, Copy)]
struct Rendered;

fn render(
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
    id: &str,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field,
        },
        request_id: id,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response();
    resp.extensions_mut().insert(Rendered);
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let id = current_request_id().unwrap_or_else(new_request_id);
        self.log(&id);
        let (message, field) = self.public(&id);
        let mut resp = render(self.status(), self.code(), &message, field.as_deref(), &id);
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A request id the caller may choose: 1–64 characters of `[A-Za-z0-9._:-]` (safe in logs and headers).
fn sane_request_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The edge's request-id middleware (`axum::middleware::from_fn(request_ids)`): picks the request's id, runs
/// the handler with it (so [`ApiError`] bodies and logs carry it), rewrites plain-text or empty error
/// responses into the error shape, and sets `x-request-id` on the response.
pub async fn request_ids(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let span = tracing::debug_span!("request", request_id = %id);
    let resp = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span)
        .await;
    let mut resp = if needs_reshape(&resp) {
        reshape(resp, &id).await
    } else {
        resp
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    resp
}

/// `router` behind the whole edge, as every process serves it: the console's login routes added, access control
/// ([`auth::authorize`]) on every matched route, the request deadline, and request ids around everything.
pub fn behind_edge(router: axum::Router, edge: auth::Edge) -> axum::Router {
    router
        .merge(console::routes(edge.clone()))
        .route_layer(axum::middleware::from_fn_with_state(edge, auth::authorize))
        .layer(axum::middleware::from_fn_with_state(
            REQUEST_TIMEOUT,
            deadline,
        ))
        .layer(axum::middleware::from_fn(request_ids))
}

/// Longest a request may take by default ([`deadline`]); routes that need longer run their work in the
/// background and are polled.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The edge's deadline (`axum::middleware::from_fn_with_state(limit, deadline)`): a request still running after
/// `limit` is cancelled and answered 503 with `Retry-After`.
pub async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::unavailable(format!(
            "the request took longer than {} s and was cancelled",
            limit.as_secs()
        ))
        .into_response(),
    }
}

/// An error response in plain text or with no body: axum's rejections and the router's own 404/405. Pages
/// (HTML) and bodies that are already JSON are left as they are.
fn needs_reshape(resp: &Response) -> bool {
    if resp.status().as_u16() < 400 || resp.extensions().get::<Rendered>().is_some() {
        return false;
    }
    match resp.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(ct) => ct.as_bytes().starts_with(b"text/plain"),
    }
}

/// An error response from outside [`ApiError`] (an extractor's rejection, the router's 404/405, a layer's
/// 413 or 408) in the error shape: 4xx keep their text as the message, 5xx get a fixed one.
async fn reshape(resp: Response, id: &str) -> Response {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let (code, message) = if status.is_server_error() {
        let cause = body_text(body).await;
        tracing::error!(request_id = id, status = status.as_u16(), cause = %cause, "error response");
        let e = if status == StatusCode::SERVICE_UNAVAILABLE {
            ApiError::unavailable(cause)
        } else {
            ApiError::Internal(cause)
        };
        (e.code(), e.public(id).0)
    } else {
        let text = body_text(body).await;
        let message = if text.trim().is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request refused")
                .to_string()
        } else {
            text
        };
        (code_for_status(status), message)
    };
    let field = match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Some("path"),
        StatusCode::PAYLOAD_TOO_LARGE => Some("body"),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Some("request"),
        _ => None,
    };
    let mut out = render(status, code, &message, field, id);
    for name in [header::RETRY_AFTER, header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYMENT_REQUIRED => "payment_declined",
        _ => "bad_input",
    }
}

async fn body_text(body: Body) -> String {
    match axum::body::to_bytes(body, FOREIGN_BODY_MAX_BYTES).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    }
}

/// Parses a JSON body into `T`; the error names the offending field path (`body` for the whole body).
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(e.path(), e.inner()))
}

/// Decodes a JSON value into `T`; the error names the offending field path.
pub fn json_value<T: DeserializeOwned>(value: serde_json::Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(e.path(), e.inner()))
}

fn path_error(path: &serde_path_to_error::Path, e: &serde_json::Error) -> ApiError {
    let path = path.to_string();
    let field = if path == "." {
        "body".to_string()
    } else {
        path
    };
    ApiError::bad(field, e.to_string())
}

#[cfg(test)]
mod tests;
