//! HTTP API of the bandit service (paths in ARCHITECTURE), and the one place its errors become HTTP.
//!
//! - `POST /v1/decisions`, `GET /v1/decisions/{id}` (the decision with its outcome), `POST /v1/rewards`;
//! - `GET|POST /v1/slots`, `GET|PUT|DELETE /v1/slots/{slot}`, `POST /v1/slots/{slot}/actions`,
//!   `GET /v1/slots/{slot}/audit`; the actor of a change is the API key's name, which the edge puts in `x-lusso-user`;
//! - `GET /v1/bandits/{slot}/report?days=&bucket_hours=` and
//!   `GET /v1/bandits/{slot}/ope?policy=&days=&bootstrap=&seed=`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use pipelines::http::{json_body, ApiError, ApiResult};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::reward::Applied;
use crate::service::{Action, Bandits, DecideRequest};
use crate::slot::Slot;
use crate::{ope, Error};

fn actor(headers: &HeaderMap) -> String {
    headers
        .get(pipelines::http::auth::ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .unwrap_or("anonymous")
        .to_string()
}

/// The bandit routes (the dashboard is mounted by [`crate::dashboard::routes`]).
pub fn app(bandits: Bandits) -> Router {
    Router::new()
        .route("/v1/decisions", post(decide))
        .route("/v1/decisions/{id}", get(decision))
        .route("/v1/rewards", post(reward))
        .route("/v1/slots", get(list_slots).post(create_slot))
        .route(
            "/v1/slots/{slot}",
            get(get_slot).put(put_slot).delete(delete_slot),
        )
        .route("/v1/slots/{slot}/actions", post(act))
        .route("/v1/slots/{slot}/audit", get(audit))
        .route("/v1/bandits/{slot}/report", get(report))
        .route("/v1/bandits/{slot}/ope", get(ope_report))
        .with_state(bandits)
}

async fn decide(State(b): State<Bandits>, body: Bytes) -> ApiResult<Json<serde_json::Value>> {
    let req: DecideRequest = json_body(&body)?;
    let r = b.decide(req).await?;
    Ok(Json(serde_json::to_value(r).unwrap_or_default()))
}

fn parse_uuid(field: &str, s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::from(Error::bad(
            field.to_string(),
            format!("`{}` is not a UUID", s.escape_debug()),
        ))
    })
}

async fn decision(
    State(b): State<Bandits>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = parse_uuid("decision_id", &id)?;
    let (d, o) = b
        .store()
        .decision(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("decision {id} does not exist")))?;
    Ok(Json(json!({"decision": d, "outcome": o})))
}

/// `POST /v1/rewards`: an explicit reward for a decision.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RewardBody {
    /// The decision's id (a UUID).
    decision_id: String,
    /// The reward, e.g. 1 for a conversion the shop attributes to the banner.
    value: f64,
}

async fn reward(State(b): State<Bandits>, body: Bytes) -> ApiResult<Response> {
    let r: RewardBody = json_body(&body)?;
    let id = parse_uuid("decision_id", &r.decision_id)?;
    let applied = b.reward(id, r.value).await?;
    let status = match &applied {
        Applied::Conflict { .. } => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    Ok((
        status,
        Json(serde_json::to_value(applied).unwrap_or_default()),
    )
        .into_response())
}

async fn list_slots(State(b): State<Bandits>) -> ApiResult<Json<serde_json::Value>> {
    b.sync().await?;
    Ok(Json(json!({ "slots": b.slots() })))
}

async fn create_slot(
    State(b): State<Bandits>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let slot: Slot = json_body(&body)?;
    b.sync().await?;
    if b.model(&slot.slot).is_some() {
        return Err(Error::Conflict(format!(
            "slot: `{}` already exists; PUT /v1/slots/{} changes it",
            slot.slot, slot.slot
        ))
        .into());
    }
    let s = b.create_slot(slot, &actor(&headers)).await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

async fn get_slot(State(b): State<Bandits>, Path(slot): Path<String>) -> ApiResult<Json<Slot>> {
    b.sync().await?;
    b.model(&slot)
        .map(|m| Json(m.slot().clone()))
        .ok_or_else(|| Error::NotFound(format!("slot `{slot}` does not exist")).into())
}

async fn put_slot(
    State(b): State<Bandits>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Slot>> {
    let slot: Slot = json_body(&body)?;
    if slot.slot != name {
        return Err(Error::bad(
            "slot",
            format!("the body names `{}` but the path names `{name}`", slot.slot),
        )
        .into());
    }
    // `version` in the body, when set, is the version the caller edited (optimistic locking).
    let expected = (slot.version > 0).then_some(slot.version);
    Ok(Json(b.update_slot(slot, expected, &actor(&headers)).await?))
}

async fn delete_slot(
    State(b): State<Bandits>,
    Path(slot): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    b.delete_slot(&slot, &actor(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn act(
    State(b): State<Bandits>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Slot>> {
    let action: Action = json_body(&body)?;
    Ok(Json(b.act(&slot, action, &actor(&headers)).await?))
}

async fn audit(
    State(b): State<Bandits>,
    Path(slot): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let entries = b.store().audit(&slot, 200).await?;
    Ok(Json(json!({ "slot": slot, "audit": entries })))
}

/// `days` (window length back from now, default 7) and `bucket_hours` (default 6).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub days: Option<String>,
    pub bucket_hours: Option<String>,
}

fn number(field: &str, v: Option<&str>, default: f64, lo: f64, hi: f64) -> ApiResult<f64> {
    let Some(v) = v else {
        return Ok(default);
    };
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
        _ => Err(ApiError::from(Error::bad(
            field.to_string(),
            format!(
                "`{}` must be a number between {lo} and {hi}",
                v.escape_debug()
            ),
        ))),
    }
}

/// The window `[now − days, now]` (the end is inclusive of decisions made this instant).
pub fn window(now: DateTime<Utc>, days: f64) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        now - Duration::seconds((days * 86_400.0) as i64),
        now + Duration::seconds(1),
    )
}

async fn report(
    State(b): State<Bandits>,
    Path(slot): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let days = number("days", q.days.as_deref(), 7.0, 0.01, 400.0)?;
    let bucket = number(
        "bucket_hours",
        q.bucket_hours.as_deref(),
        6.0,
        0.01,
        24.0 * 31.0,
    )?;
    b.sync().await?;
    let (since, until) = window(b.now(), days);
    let r = b
        .report(&slot, since, until, (bucket * 3600.0) as i64)
        .await?;
    Ok(Json(serde_json::to_value(r).unwrap_or_default()))
}

/// `policy` (uniform, greedy, thompson, arm:ID; default greedy), `days` (default 7), `bootstrap`
/// (resamples, default 1000), `seed` (default 12345).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeQuery {
    pub policy: Option<String>,
    pub days: Option<String>,
    pub bootstrap: Option<String>,
    pub seed: Option<String>,
}

async fn ope_report(
    State(b): State<Bandits>,
    Path(slot): Path<String>,
    Query(q): Query<OpeQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let days = number("days", q.days.as_deref(), 7.0, 0.01, 400.0)?;
    let boots = number("bootstrap", q.bootstrap.as_deref(), 1000.0, 10.0, 100_000.0)? as usize;
    let seed = number("seed", q.seed.as_deref(), 12345.0, 0.0, f64::from(u32::MAX))? as u32;
    let policy = q.policy.unwrap_or_else(|| "greedy".to_string());
    let key = format!("slot={slot} policy={policy} days={days} bootstrap={boots} seed={seed}");
    let flight = b.ope_flight().clone();
    let job = async move {
        b.sync().await?;
        let (since, until) = window(b.now(), days);
        let spec = ope::IntervalSpec {
            alpha: 0.05,
            n_bootstrap_samples: boots,
            seed,
        };
        let r = b.ope(&slot, &policy, since, until, spec).await?;
        Ok::<_, ApiError>(serde_json::to_value(r).unwrap_or_default())
    };
    Ok(Json(flight.run(key, job).await?))
}
