//! HTTP API of the features: `GET /v1/users/{id}/features`, `GET /v1/users/{id}/segment`,
//! `GET /v1/products/{id}/features`, `GET /v1/segments`. Each request is one store round trip (the shopper's two
//! possible keys, registered `u:` and anonymous `a:`, are read in one pipeline). Errors are the edge's
//! [`ApiError`] (`pipelines::http`): 400/404 for the caller, 503 + `Retry-After` when Redis is down, 500 for
//! our bugs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::RwLock;

use pipelines::http::flight::SingleFlight;
use pipelines::http::ApiError;
use pipelines::log::EventLog;

use crate::processor::Processor;
use crate::segment::{ClusterModel, RULE_SEGMENTS};
use crate::state::product::ProductState;
use crate::state::user::UserFeatures;
use crate::Error;

/// How long a loaded cluster model is reused before re-reading the store (a new model is live within this).
const CLUSTER_MODEL_TTL: Duration = Duration::from_secs(10);

/// The cached learned model and when it was read (`None` inside: no model trained yet).
type CachedModel = Arc<RwLock<Option<(Instant, Option<Arc<ClusterModel>>)>>>;

/// State of the features API.
#[derive(Clone)]
pub struct FeaturesApi {
    processor: Processor,
    clusters: CachedModel,
    log: Option<Arc<dyn EventLog>>,
    /// `POST /v1/segments/train` runs once at a time (a second click joins the running one).
    training: SingleFlight<Value>,
}

impl FeaturesApi {
    pub fn new(processor: Processor) -> FeaturesApi {
        FeaturesApi {
            processor,
            clusters: Arc::new(RwLock::new(None)),
            log: None,
            training: SingleFlight::new("segment training"),
        }
    }

    /// The processor (store, catalogue, key names) the API reads through.
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// Enables `POST /v1/segments/train` (the learned segments are trained from this event log).
    pub fn with_log(mut self, log: Arc<dyn EventLog>) -> FeaturesApi {
        self.log = Some(log);
        self
    }

    /// The current learned model, cached for [`CLUSTER_MODEL_TTL`].
    async fn cluster_model(&self) -> Result<Option<Arc<ClusterModel>>, Error> {
        if let Some((at, m)) = &*self.clusters.read().await {
            if at.elapsed() < CLUSTER_MODEL_TTL {
                return Ok(m.clone());
            }
        }
        let m = crate::offline::load_cluster_model(&self.processor)
            .await?
            .map(Arc::new);
        *self.clusters.write().await = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    /// A shopper's features now (registered id first, then anonymous id); `None` when never seen.
    pub async fn user_features(&self, id: &str) -> Result<Option<UserFeatures>, Error> {
        let ctx = self.processor.context();
        let keys = [
            ctx.keys.user(&format!("u:{id}")),
            ctx.keys.user(&format!("a:{id}")),
        ];
        let blobs = self.processor.store().get(&keys).await?;
        let found = blobs
            .into_iter()
            .zip(["u:", "a:"])
            .find_map(|(b, kind)| b.map(|b| (b, kind)));
        let Some((blob, kind)) = found else {
            return Ok(None);
        };
        let state = self.processor.decode_user(&blob).await?;
        let mut f = state.features(&format!("{kind}{id}"), Utc::now(), ctx);
        if let Some(model) = self.cluster_model().await? {
            f.cluster = Some(model.assign(&f, &ctx.categories()));
        }
        Ok(Some(f))
    }
}

/// The features routes.
pub fn app(state: FeaturesApi) -> Router {
    Router::new()
        .route("/v1/users/{id}/features", get(user_features))
        .route("/v1/users/{id}/segment", get(user_segment))
        .route("/v1/products/{id}/features", get(product_features))
        .route("/v1/segments", get(segments))
        .route("/v1/segments/train", post(train_segments))
        .with_state(state)
}

/// Checks a path id: non-empty, at most 256 bytes, no control characters or braces (they would break key tags).
fn check_id(id: &str) -> Result<(), ApiError> {
    let why = if id.trim().is_empty() {
        Some("must not be empty")
    } else if id.len() > 256 {
        Some("must be at most 256 bytes")
    } else if id.chars().any(|c| c.is_control() || c == '{' || c == '}') {
        Some("must not contain control characters or braces")
    } else {
        None
    };
    match why {
        Some(w) => Err(ApiError::bad("id", format!("`{}` {w}", id.escape_debug()))),
        None => Ok(()),
    }
}

async fn user_features(
    State(api): State<FeaturesApi>,
    Path(id): Path<String>,
) -> Result<Json<UserFeatures>, ApiError> {
    check_id(&id)?;
    match api.user_features(&id).await? {
        Some(f) => Ok(Json(f)),
        None => Err(ApiError::NotFound(format!(
            "no events seen for user `{id}`"
        ))),
    }
}

async fn user_segment(
    State(api): State<FeaturesApi>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    Ok(Json(match api.user_features(&id).await? {
        Some(f) => {
            json!({"user_id": id, "segment": f.segment, "cluster": f.cluster, "rfm": f.rfm, "known": true})
        }
        // Never seen: a first visit is the definition of "New".
        None => {
            json!({"user_id": id, "segment": "New", "cluster": null, "rfm": null, "known": false})
        }
    }))
}

async fn product_features(
    State(api): State<FeaturesApi>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    let ctx = api.processor.context();
    let blob = api
        .processor
        .store()
        .get(&[ctx.keys.product(&id)])
        .await?
        .pop()
        .flatten();
    let state = match blob {
        Some(b) => ProductState::decode(&b)?,
        None if ctx.catalog.product(&id).is_some() => ProductState::default(),
        None => return Err(ApiError::NotFound(format!("unknown product `{id}`"))),
    };
    let f = state.features(&id, Utc::now(), ctx);
    let mut v = serde_json::to_value(f).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(p) = ctx.catalog.product(&id) {
        v["listed"] = json!(p.is_listed());
        v["category"] = json!(p.category_id);
    }
    Ok(Json(v))
}

async fn segments(State(api): State<FeaturesApi>) -> Result<Json<Value>, ApiError> {
    let cfg = &api.processor.context().config;
    let model = api.cluster_model().await?;
    Ok(Json(json!({
        "rule_based": {"segments": RULE_SEGMENTS, "rules": cfg.segments},
        "learned": model.map(|m| json!({
            "trained_at": m.trained_at, "k": m.k, "trained_on": m.trained_on, "clusters": m.summaries,
        })),
    })))
}

async fn train_segments(State(api): State<FeaturesApi>) -> Result<Json<Value>, ApiError> {
    let Some(log) = api.log.clone() else {
        return Err(ApiError::NotFound(
            "this process has no event log to train from".into(),
        ));
    };
    let flight = api.training.clone();
    let job = async move {
        let model =
            crate::offline::train_segments(log.as_ref(), &api.processor, Utc::now(), |_| {})
                .await?;
        *api.clusters.write().await = Some((Instant::now(), Some(Arc::new(model.clone()))));
        Ok::<_, ApiError>(
            json!({"trained_at": model.trained_at, "k": model.k, "trained_on": model.trained_on, "clusters": model.summaries}),
        )
    };
    Ok(Json(flight.run("all segments".into(), job).await?))
}
