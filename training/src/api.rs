//! The registry over HTTP: `GET /v1/models`, `GET /v1/models/{version}`,
//! `POST /v1/models/{version}/promote`, `POST /v1/models/rollback`. Errors are the edge's `ApiError`:
//! bad version → 400, unknown version → 404, nothing to roll back to → 409, registry locked → 503, ours → 500.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipelines::http::ApiError;
use serde_json::{json, Value};

use crate::registry::{ModelMeta, Registry, RegistryState};
use crate::Error;

/// The routes, sharing one registry.
pub fn app(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v1/models", get(list))
        .route("/v1/models/rollback", post(rollback))
        .route("/v1/models/{version}", get(one))
        .route("/v1/models/{version}/promote", post(promote))
        .with_state(registry)
}

/// The list view of the registry: `{"promoted", "models": [meta + "promoted": bool]}`, newest first.
pub fn listing(registry: &Registry) -> crate::Result<Value> {
    let state = registry.state()?;
    let models: Vec<Value> = registry
        .list()?
        .into_iter()
        .map(|m| with_flag(m, &state))
        .collect();
    Ok(json!({"promoted": state.promoted, "models": models}))
}

fn with_flag(m: ModelMeta, state: &RegistryState) -> Value {
    let promoted = state.promoted.as_deref() == Some(m.version.as_str());
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("promoted".into(), Value::Bool(promoted));
    }
    v
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("registry task: {e}")))?
        .map_err(api_error)
}

async fn list(State(r): State<Arc<Registry>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(blocking(move || listing(&r)).await?))
}

async fn one(
    State(r): State<Arc<Registry>>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        blocking(move || Ok(with_flag(r.meta(&version)?, &r.state()?))).await?,
    ))
}

async fn promote(
    State(r): State<Arc<Registry>>,
    Path(version): Path<String>,
) -> Result<Json<RegistryState>, ApiError> {
    let s = blocking(move || r.promote(&version)).await?;
    tracing::info!(version = ?s.promoted, "model promoted");
    Ok(Json(s))
}

async fn rollback(State(r): State<Arc<Registry>>) -> Result<Json<RegistryState>, ApiError> {
    let s = blocking(move || r.rollback()).await?;
    tracing::info!(version = ?s.promoted, "model rolled back");
    Ok(Json(s))
}

/// The registry's errors for the caller: the only path parameter is the version, so input errors name it.
fn api_error(e: Error) -> ApiError {
    match e {
        Error::BadInput(r) => ApiError::bad("version", r),
        Error::NotFound(r) => ApiError::NotFound(r),
        Error::Conflict(r) => ApiError::conflict("version", r),
        Error::Unavailable(r) => ApiError::unavailable(r),
        Error::Internal(r) => ApiError::Internal(r),
    }
}
