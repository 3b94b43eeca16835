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

/// The OpenAPI 3.1 `paths` of these routes (merged into the process's `/openapi.json`).
pub fn openapi() -> Value {
    use pipelines::openapi::{err, error_schema, ok, path_param};
    let meta = json!({"type": "object", "description":
        "A version's metadata: algorithm, hyperparameters, training data (source, window, hash), split, metrics, \
         history; `promoted` says whether serving uses it"});
    let state = json!({"type": "object", "properties": {
        "promoted": {"type": ["string", "null"]},
        "stack": {"type": "array", "items": {"type": "string"}, "description": "Promotions in effect, oldest first"},
        "log": {"type": "array", "items": {"type": "object"}, "description": "Promotions and rollbacks"}}});
    let locked = err("The registry is locked by another writer; retry");
    let paths = json!({
        "/v1/models": {"get": {"summary": "Every registered version, newest first, and the promoted one",
            "responses": {"200": ok(json!({"type": "object", "properties": {
                "promoted": {"type": ["string", "null"]}, "models": {"type": "array", "items": meta}}}))}}},
        "/v1/models/{version}": {"get": {"summary": "One version", "parameters": [path_param("version")],
            "responses": {"200": ok(meta), "400": err("Not a version name"), "404": err("Unknown version")}}},
        "/v1/models/{version}/promote": {"post": {"summary": "Serve this version (serving picks it up within its poll)",
            "parameters": [path_param("version")],
            "responses": {"200": ok(state.clone()), "400": err("Not a version name"), "404": err("Unknown version"),
                "503": locked}}},
        "/v1/models/rollback": {"post": {"summary": "Serve the previously promoted version again",
            "responses": {"200": ok(state), "409": err("Nothing to roll back to"), "503": locked}}}
    });
    json!({"paths": paths, "components": {"schemas": {"Error": error_schema()}}})
}
