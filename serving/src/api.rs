//! HTTP API of the serving role (paths in ARCHITECTURE), and the one place its errors become HTTP.
//!
//! - `GET /v1/recommendations`, `GET /v1/products/{id}/similar`;
//! - `GET|POST /v1/rules`, `GET|PUT|DELETE /v1/rules/{id}`, `GET /v1/rules/{id}/audit`, `GET /v1/rules/audit`,
//!   `POST /v1/rules/preview`;
//! - `GET /v1/prices?product_id=&market=`, `GET /v1/markets`, `GET|PUT /v1/prices/overrides`,
//!   `DELETE /v1/prices/overrides/{product_id}/{market}`;
//! - `GET|POST /v1/experiments`, `GET|PUT /v1/experiments/{key}`,
//!   `GET /v1/experiments/{key}/assignment?unit_id=`, `GET /v1/experiments/{key}/results?days=`;
//! - `GET /storefront` (the demo page), `GET /openapi.json` is mounted by the process (one document for all).
//!
//! The actor of a change is the API key's name, which the edge puts in `x-lusso-user` (a caller's own value
//! is dropped; `anonymous` without the edge).

use pipelines::http::{json_body, json_value, ApiError, ApiResult};
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::experiments::{self, assign, exposure_event, ExperimentInput};
use crate::pricing::PriceOverrideInput;
use crate::recommend::request::{self, parse_recommendations};
use crate::recommend::Options;
use crate::rules::RuleInput;
use crate::service::Serving;
use crate::Error;

fn actor(headers: &HeaderMap) -> String {
    headers
        .get(pipelines::http::auth::ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .unwrap_or("anonymous")
        .to_string()
}

/// A `PUT` body's optional `"version"` (the version the client edited) and the rest of the body.
fn take_version(body: &Bytes) -> ApiResult<(Option<i64>, serde_json::Value)> {
    let mut value: serde_json::Value = json_body(body)?;
    let expected = match value.as_object_mut().and_then(|o| o.remove("version")) {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| ApiError::from(Error::bad("version", "must be an integer")))?,
        ),
    };
    Ok((expected, value))
}

fn rule_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::from(Error::bad("id", format!("`{id}` is not a UUID"))))
}

/// The serving routes.
pub fn app(serving: Serving) -> Router {
    Router::new()
        .route("/v1/recommendations", get(recommendations))
        .route("/v1/products/{id}/similar", get(similar))
        .route("/v1/rules", get(list_rules).post(create_rule))
        .route("/v1/rules/preview", post(preview))
        .route("/v1/rules/audit", get(all_audit))
        .route(
            "/v1/rules/{id}",
            get(get_rule).put(update_rule).delete(delete_rule),
        )
        .route("/v1/rules/{id}/audit", get(rule_audit))
        .route("/v1/prices", get(price))
        .route("/v1/markets", get(markets))
        .route(
            "/v1/prices/overrides",
            get(list_overrides).put(put_override),
        )
        .route(
            "/v1/prices/overrides/{product_id}/{market}",
            delete(delete_override),
        )
        .route(
            "/v1/experiments",
            get(list_experiments).post(create_experiment),
        )
        .route(
            "/v1/experiments/{key}",
            get(get_experiment).put(update_experiment),
        )
        .route("/v1/experiments/{key}/assignment", get(assignment))
        .route("/v1/experiments/{key}/results", get(results))
        .route("/storefront", get(storefront))
        .with_state(serving)
}

async fn recommendations(
    State(s): State<Serving>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let req = parse_recommendations(&q)?;
    Ok(Json(s.recommend(&req).await?).into_response())
}

async fn similar(
    State(s): State<Serving>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    request::reject_unknown(
        &q,
        &["n", "market", "size", "exclude", "user_id", "anonymous_id"],
    )?;
    let mut req = parse_recommendations(&q)?;
    req.n = request::n_param(&q, 10, crate::config::MAX_N)?;
    Ok(Json(s.similar(&id, req).await?).into_response())
}

async fn list_rules(State(s): State<Serving>) -> ApiResult<Response> {
    Ok(Json(json!({"rules": s.stores().rules.list().await?})).into_response())
}

async fn create_rule(
    State(s): State<Serving>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let input: RuleInput = json_body(&body)?;
    input.validate(s.catalog())?;
    let rule = s.stores().rules.create(input, &actor(&headers)).await?;
    s.reload(false).await?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

async fn get_rule(State(s): State<Serving>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(s.stores().rules.get(rule_id(&id)?).await?).into_response())
}

/// `PUT` body: the rule, optionally with `"version"` (the version edited; a stale one gets 409).
async fn update_rule(
    State(s): State<Serving>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = rule_id(&id)?;
    let (expected, value) = take_version(&body)?;
    let input: RuleInput = json_value(value)?;
    input.validate(s.catalog())?;
    let rule = s
        .stores()
        .rules
        .update(id, input, expected, &actor(&headers))
        .await?;
    s.reload(false).await?;
    Ok(Json(rule).into_response())
}

async fn delete_rule(
    State(s): State<Serving>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.stores()
        .rules
        .delete(rule_id(&id)?, &actor(&headers))
        .await?;
    s.reload(false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn limit(q: &HashMap<String, String>) -> ApiResult<usize> {
    match q.get("limit") {
        None => Ok(100),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(ApiError::from(Error::bad(
                "limit",
                format!("`{v}` is not an integer in 1–1000"),
            ))),
        },
    }
}

async fn rule_audit(
    State(s): State<Serving>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    request::reject_unknown(&q, &["limit"])?;
    let entries = s
        .stores()
        .rules
        .audit(Some(rule_id(&id)?), limit(&q)?)
        .await?;
    Ok(Json(json!({"entries": entries})).into_response())
}

async fn all_audit(
    State(s): State<Serving>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    request::reject_unknown(&q, &["limit"])?;
    let entries = s.stores().rules.audit(None, limit(&q)?).await?;
    Ok(Json(json!({"entries": entries})).into_response())
}

/// Preview body.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub segment: String,
    #[serde(default = "default_placement")]
    pub placement: String,
    #[serde(default)]
    pub market: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    /// Preview for this shopper's candidates (default: the segment's popular products).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub n: Option<usize>,
    /// Draft rules to try instead of the stored ones (validated like a create).
    #[serde(default)]
    pub rules: Option<Vec<RuleInput>>,
}

fn default_placement() -> String {
    "home".into()
}

async fn preview(State(s): State<Serving>, body: Bytes) -> ApiResult<Response> {
    let p: PreviewRequest = json_body(&body)?;
    let mut q: HashMap<String, String> = HashMap::new();
    q.insert("segment".into(), p.segment.clone());
    q.insert("placement".into(), p.placement.clone());
    for (k, v) in [
        ("market", &p.market),
        ("device", &p.device),
        ("user_id", &p.user_id),
    ] {
        if let Some(v) = v {
            q.insert(k.into(), v.clone());
        }
    }
    if let Some(n) = p.n {
        q.insert("n".into(), n.to_string());
    }
    let req = parse_recommendations(&q)?;
    let rules = match p.rules {
        None => None,
        Some(inputs) => {
            let mut rules: Vec<crate::rules::Rule> = Vec::with_capacity(inputs.len());
            for (i, input) in inputs.into_iter().enumerate() {
                input.validate(s.catalog()).map_err(|e| match e {
                    Error::BadInput { field, reason } => {
                        Error::bad(format!("rules[{i}].{field}"), reason)
                    }
                    other => other,
                })?;
                let now = Utc::now();
                rules.push(crate::rules::Rule {
                    id: Uuid::new_v4(),
                    input,
                    version: 0,
                    created_at: now,
                    updated_at: now,
                    updated_by: "preview".into(),
                });
            }
            rules.sort_by(|a, b| {
                b.input
                    .priority
                    .cmp(&a.input.priority)
                    .then(a.id.cmp(&b.id))
            });
            Some(rules)
        }
    };
    let out = s
        .pipeline(
            &req,
            Options {
                rules,
                silent: true,
            },
        )
        .await?;
    let item = |c: &crate::rules::engine::Candidate| json!({"product_id": c.product_id, "score": c.score, "reasons": c.reasons});
    Ok(Json(json!({
        "segment": out.segment,
        "market": out.market,
        "placement": req.placement,
        "model_version": out.model_version,
        "fallback": out.source.fallback(),
        "before": out.before.iter().map(item).collect::<Vec<_>>(),
        "after": out.after.iter().map(item).collect::<Vec<_>>(),
        "applied": out.applied,
    }))
    .into_response())
}

async fn price(
    State(s): State<Serving>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    request::reject_unknown(&q, &["product_id", "market"])?;
    let timer = s
        .metrics()
        .latency
        .with_label_values(&["prices"])
        .start_timer();
    let product = q
        .get("product_id")
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::from(Error::bad("product_id", "is required")))?;
    let market = request::market_param(&q)?.unwrap_or_else(|| s.config().default_market.clone());
    let p = s.prices().price(product, &market)?;
    timer.observe_duration();
    Ok(Json(p).into_response())
}

async fn markets(State(s): State<Serving>) -> ApiResult<Response> {
    Ok(Json(json!({"markets": s.prices().markets()})).into_response())
}

async fn list_overrides(State(s): State<Serving>) -> ApiResult<Response> {
    Ok(Json(json!({"overrides": s.stores().overrides.list().await?})).into_response())
}

async fn put_override(
    State(s): State<Serving>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let o: PriceOverrideInput = json_body(&body)?;
    s.prices().validate_override(&o)?;
    let stored = s.stores().overrides.put(o, &actor(&headers)).await?;
    s.reload(false).await?;
    Ok(Json(stored).into_response())
}

async fn delete_override(
    State(s): State<Serving>,
    Path((product_id, market)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.stores()
        .overrides
        .delete(&product_id, &market, &actor(&headers))
        .await?;
    s.reload(false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_experiments(State(s): State<Serving>) -> ApiResult<Response> {
    Ok(Json(json!({"experiments": s.stores().experiments.list().await?})).into_response())
}

async fn create_experiment(
    State(s): State<Serving>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let input: ExperimentInput = json_body(&body)?;
    experiments::validate(&input)?;
    let e = s
        .stores()
        .experiments
        .create(input, &actor(&headers))
        .await?;
    s.reload(false).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

async fn get_experiment(State(s): State<Serving>, Path(key): Path<String>) -> ApiResult<Response> {
    Ok(Json(s.stores().experiments.get(&key).await?).into_response())
}

async fn update_experiment(
    State(s): State<Serving>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (expected, value) = take_version(&body)?;
    let input: ExperimentInput = json_value(value)?;
    experiments::validate(&input)?;
    if input.key != key {
        return Err(ApiError::from(Error::bad(
            "key",
            format!("`{}` differs from the path's `{key}`", input.key),
        )));
    }
    let e = s
        .stores()
        .experiments
        .update(&key, input, expected, &actor(&headers))
        .await?;
    s.reload(false).await?;
    Ok(Json(e).into_response())
}

async fn assignment(
    State(s): State<Serving>,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    request::reject_unknown(&q, &["unit_id", "user_id", "anonymous_id", "market"])?;
    let timer = s
        .metrics()
        .latency
        .with_label_values(&["assignment"])
        .start_timer();
    let unit = q
        .get("unit_id")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty() && u.len() <= request::MAX_ID_LEN)
        .ok_or_else(|| ApiError::from(Error::bad("unit_id", "is required (1–128 characters)")))?;
    let exps = s.experiments();
    let exp = match exps.iter().find(|e| e.key == key) {
        Some(e) => e.clone(),
        None => s.stores().experiments.get(&key).await?,
    };
    let a = assign(&exp, unit);
    if a.variant.is_some() {
        // The unit is the user id unless the caller says it is an anonymous id.
        let anonymous = q.contains_key("anonymous_id");
        let (user, anon) = if anonymous {
            (None, Some(unit))
        } else {
            (Some(unit), None)
        };
        let market = request::market_param(&q)?;
        if let Some(e) = exposure_event(&a, user, anon, market.as_deref(), Utc::now()) {
            s.impressions().offer(e);
        }
    }
    timer.observe_duration();
    Ok(Json(a).into_response())
}

async fn results(
    State(s): State<Serving>,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    request::reject_unknown(&q, &["days"])?;
    let days: i64 = match q.get("days") {
        None => 14,
        Some(v) => match v.parse::<i64>() {
            Ok(d) if (1..=365).contains(&d) => d,
            _ => {
                return Err(ApiError::from(Error::bad(
                    "days",
                    format!("`{v}` is not an integer in 1–365"),
                )))
            }
        },
    };
    let exp = s.stores().experiments.get(&key).await?;
    let Some(log) = s.log().cloned() else {
        return Err(ApiError::from(Error::Unavailable(
            "experiment results: no event log configured".into(),
        )));
    };
    let job = async move {
        let until = Utc::now();
        let since = until - Duration::days(days);
        let r = crate::experiments::results::results(log.as_ref(), &exp, since, until).await?;
        Ok::<_, ApiError>(serde_json::to_value(r).unwrap_or_default())
    };
    let flight = s.inner.results_flight.clone();
    Ok(Json(flight.run(format!("{key}, {days} days"), job).await?).into_response())
}

async fn storefront() -> Html<&'static str> {
    Html(crate::storefront::PAGE)
}
