//! The HTTP collector: `POST /v1/events` and the operational endpoints.
//!
//! A batch is all-or-nothing towards the bus: valid events go to `lusso.events.v1`, rejected ones (with
//! every reason) to `lusso.events.quarantine`, and only when both produces succeed does the caller hear
//! `200` with the accepted count. If the bus cannot take the batch the answer is `503 + Retry-After` and
//! nothing is reported accepted; a retry of the same batch is harmless because consumers deduplicate by
//! `event_id`. Load bound: at most [`CollectorConfig::max_in_flight`] requests are processed at once;
//! beyond that callers get `503` at once instead of queueing without bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use pipelines::bus::{EventBus, Record};
use pipelines::quarantine::BadRow;
use pipelines::validate::{validate_event, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::{openapi, quarantine};
use pipelines::http::flight::SingleFlight;
use pipelines::http::ApiError;

/// Collector limits (contract values as defaults).
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Most events in one request (contract: 500).
    pub max_batch_events: usize,
    /// Largest body in bytes (contract: 1 MiB).
    pub max_body_bytes: usize,
    /// Requests processed at once (after their body is read); more get 503 (256: ~128k events in flight,
    /// bounded memory).
    pub max_in_flight: usize,
    /// Bodies being read at once; more get 503 at once. Reading takes no processing permit, so slow
    /// uploads cannot starve the others of [`CollectorConfig::max_in_flight`] (1,024 × 1 MiB at worst).
    pub max_reading: usize,
    /// Longest a client may take to send its body; slower gets 408.
    pub body_read_timeout: Duration,
    /// Events topic name.
    pub events_topic: String,
    /// Quarantine topic name.
    pub quarantine_topic: String,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            max_batch_events: 500,
            max_body_bytes: 1024 * 1024,
            max_in_flight: 256,
            max_reading: 1024,
            body_read_timeout: Duration::from_secs(10),
            events_topic: pipelines::topics::EVENTS.to_string(),
            quarantine_topic: pipelines::topics::QUARANTINE.to_string(),
        }
    }
}

/// Shared state of the collector's handlers.
#[derive(Clone)]
pub struct CollectorState {
    /// The bus events are produced to.
    pub bus: Arc<dyn EventBus>,
    /// Limits and topic names.
    pub config: Arc<CollectorConfig>,
    /// Metrics registry.
    pub metrics: Metrics,
    permits: Arc<Semaphore>,
    readers: Arc<Semaphore>,
    schema: Arc<Value>,
    /// The `/openapi.json` document (the collector's own, or the process's merged one).
    openapi: Arc<Value>,
    /// Quarantine replays run one at a time; a second request joins the running one.
    replays: SingleFlight<quarantine::ReplayReport>,
}

impl CollectorState {
    /// State over `bus`.
    pub fn new(bus: Arc<dyn EventBus>, config: CollectorConfig, metrics: Metrics) -> Self {
        CollectorState {
            bus,
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            readers: Arc::new(Semaphore::new(config.max_reading)),
            config: Arc::new(config),
            metrics,
            schema: Arc::new(pipelines::event::json_schema()),
            openapi: Arc::new(openapi::document()),
            replays: SingleFlight::new("quarantine replay"),
        }
    }

    /// Serves `doc` at `/openapi.json` (a process running several roles documents all of them in one).
    pub fn with_openapi(mut self, doc: Value) -> Self {
        self.openapi = Arc::new(doc);
        self
    }
}

/// Per-event outcome in the response.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Rejected {
    /// Index of the event in the request's `events`.
    pub index: usize,
    /// Every problem found.
    pub errors: Vec<FieldError>,
}

/// `POST /v1/events` response body.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct IngestResponse {
    /// Events accepted onto the bus.
    pub accepted: usize,
    /// Events rejected (and quarantined), with reasons.
    pub rejected: Vec<Rejected>,
}

/// The collector's router. Browser storefronts on other origins get CORS from the HTTP edge the binary puts
/// in front of it (per publishable key's origins).
pub fn app(state: CollectorState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/schemas/events", get(schema))
        .route("/v1/quarantine", get(list_quarantine))
        .route("/v1/quarantine/replay", post(replay_quarantine))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|State(s): State<CollectorState>| async move { Json((*s.openapi).clone()) }),
        )
        .with_state(state)
}

async fn schema(State(state): State<CollectorState>) -> Json<Value> {
    Json((*state.schema).clone())
}

async fn readyz(State(state): State<CollectorState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.bus.ping()).await {
        Ok(Ok(())) => Json(json!({"status": "ready", "bus": state.bus.describe()})).into_response(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(_) => ApiError::unavailable(format!("{} did not answer in 2 s", state.bus.describe()))
            .into_response(),
    }
}

async fn metrics(State(state): State<CollectorState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = |n: String| ApiError::TooLarge {
        field: "body".into(),
        reason: format!("{n} bytes is more than the limit of {limit} bytes"),
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large(len.to_string()));
        }
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large("more than".into()))
}

async fn post_events(State(state): State<CollectorState>, req: Request) -> Response {
    let result = ingest(&state, req).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    };
    state
        .metrics
        .requests
        .with_label_values(&[status.as_str()])
        .inc();
    match result {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ingest(state: &CollectorState, req: Request) -> Result<IngestResponse, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = {
        let Ok(_reading) = state.readers.clone().try_acquire_owned() else {
            return Err(ApiError::Full(format!(
                "collector is reading its limit of {} bodies",
                state.config.max_reading
            )));
        };
        let read = read_body(&parts.headers, body, state.config.max_body_bytes);
        tokio::time::timeout(state.config.body_read_timeout, read)
            .await
            .map_err(|_| {
                ApiError::Timeout(format!(
                    "the body did not arrive within {} s",
                    state.config.body_read_timeout.as_secs()
                ))
            })??
    };
    let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
        return Err(ApiError::Full(format!(
            "collector is at its limit of {} requests in flight",
            state.config.max_in_flight
        )));
    };
    let parsed: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad("body", format!("not valid JSON: {e}")))?;
    let Value::Object(mut top) = parsed else {
        return Err(ApiError::bad(
            "body",
            "expected a JSON object {\"events\": [...]}",
        ));
    };
    if let Some(extra) = top.keys().find(|k| *k != "events") {
        return Err(ApiError::bad(
            extra,
            "unknown field; the body is {\"events\": [...]}",
        ));
    }
    let events = match top.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err(ApiError::bad("events", "must be an array of events")),
        None => return Err(ApiError::bad("events", "missing field")),
    };
    if events.len() > state.config.max_batch_events {
        return Err(ApiError::TooLarge {
            field: "events".into(),
            reason: format!(
                "{} events is more than the limit of {} per request",
                events.len(),
                state.config.max_batch_events
            ),
        });
    }

    let now = Utc::now();
    let mut good = Vec::with_capacity(events.len());
    let mut bad = Vec::new();
    let mut rejected = Vec::new();
    for (index, raw) in events.into_iter().enumerate() {
        match validate_event(&raw, now) {
            Ok(mut event) => {
                event.received_at = Some(now);
                good.push(Record::new(
                    Bytes::copy_from_slice(event.key().as_bytes()),
                    event.to_json_bytes(),
                ));
            }
            Err(errors) => {
                let row = BadRow::new("collector", Some(index), errors.clone(), raw);
                bad.push(Record::new(
                    row.key(),
                    serde_json::to_vec(&row).unwrap_or_default(),
                ));
                rejected.push(Rejected { index, errors });
            }
        }
    }

    let started = Instant::now();
    let accepted = good.len();
    let quarantined = bad.len();
    let (events_res, bad_res) = tokio::join!(
        state.bus.produce(&state.config.events_topic, good),
        state.bus.produce(&state.config.quarantine_topic, bad),
    );
    state
        .metrics
        .produce_seconds
        .observe(started.elapsed().as_secs_f64());
    events_res?;
    bad_res?;

    state.metrics.accepted.inc_by(accepted as u64);
    state.metrics.quarantined.inc_by(quarantined as u64);
    state.metrics.rejected.inc_by(rejected.len() as u64);
    for r in &rejected {
        for e in &r.errors {
            state
                .metrics
                .rejected_by_reason
                .with_label_values(&[e.code.as_str()])
                .inc();
        }
    }
    Ok(IngestResponse { accepted, rejected })
}

/// `GET /v1/quarantine?limit=` query.
#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<String>,
}

async fn list_quarantine(
    State(state): State<CollectorState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    "limit",
                    format!("`{s}` is not an integer in 1..=10000"),
                ))
            }
        },
    };
    let rows = quarantine::list(state.bus.as_ref(), &state.config.quarantine_topic, limit).await?;
    Ok(Json(json!({ "count": rows.len(), "bad_rows": rows })))
}

async fn replay_quarantine(
    State(state): State<CollectorState>,
) -> Result<Json<quarantine::ReplayReport>, ApiError> {
    let flight = state.replays.clone();
    let job = async move {
        let report = quarantine::replay(
            state.bus.as_ref(),
            &state.config.quarantine_topic,
            &state.config.events_topic,
        )
        .await?;
        Ok::<_, ApiError>(report)
    };
    Ok(Json(flight.run("the whole quarantine".into(), job).await?))
}
