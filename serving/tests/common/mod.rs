//! Test fixtures: a serving instance over the in-memory backends or the real ones (Redis with a fresh key
//! prefix, PostgreSQL with a fresh database), a hand-built model whose ranking is known, and event helpers
//! that put shoppers, purchases and stock into the feature store through the real processor.
//! Real-service tests read `LUSSO_REDIS_URL` and `LUSSO_DATABASE_URL` (set by `scripts/test.sh`).
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use features::processor::{Incoming, Item, Processor};
use features::state::product::StockLevel;
use features::state::stream_id;
use features::store::memory::MemoryStore;
use features::store::redis::RedisStore;
use features::store::FeatureStore;
use features::{Context, FeaturesConfig};
use pipelines::catalog::{Catalog, Product};
use pipelines::event::{Event, OrderLine, ProductView as ProductViewProps, Properties, Purchase};
use serde_json::Value;
use serving::impressions::Impressions;
use serving::lookups::Lookups;
use serving::metrics::ServingMetrics;
use serving::models::{LoadedModel, Models};
use serving::pricing::PriceBook;
use serving::{Serving, ServingConfig, ServingParts, Stores};
use tokio::sync::mpsc;
use tower::ServiceExt as _;
use training::linalg::Factors;
use training::matrix::{Csr, IdIndex};
use training::model::{Algo, Model};
use training::registry::{DataSummary, ModelMeta};

pub fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with scripts/test.sh, which starts the real services"
        )
    })
}

pub fn catalog() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    CATALOG
        .get_or_init(|| Arc::new(Catalog::generate(7)))
        .clone()
}

/// Listed products in catalogue order.
pub fn listed() -> Vec<&'static Product> {
    static LISTED: OnceLock<Vec<Product>> = OnceLock::new();
    LISTED
        .get_or_init(|| {
            catalog()
                .products()
                .iter()
                .filter(|p| p.is_listed())
                .cloned()
                .collect()
        })
        .iter()
        .collect()
}

/// A product that is not listed (hidden or discontinued).
pub fn unlisted() -> Product {
    catalog()
        .products()
        .iter()
        .find(|p| !p.is_listed())
        .expect("the generated catalogue has hidden or discontinued products")
        .clone()
}

pub const MODEL_ITEMS: usize = 300;

/// An ALS model over an unlisted product followed by the first 299 listed ones, k = 4. Item `i`'s factors are
/// `[1 − i/1000, 0, 0, 0.5]`, so `U1 = [1, 0, 0, 0]` ranks the items in index order and `U2 = [−1, 0, 0, 0]`
/// in reverse. `U1` trained on items 1–10 (their popularity is 1, the rest 0).
pub fn model(version: &str) -> LoadedModel {
    let mut ids = vec![unlisted().id];
    ids.extend(listed().iter().take(MODEL_ITEMS - 1).map(|p| p.id.clone()));
    let items = IdIndex::new(ids);
    let users = IdIndex::new(vec!["U1".into(), "U2".into()]);
    let k = 4;
    let mut item_factors = Factors::zeros(MODEL_ITEMS, k);
    for i in 0..MODEL_ITEMS {
        let r = item_factors.row_mut(i);
        r[0] = 1.0 - i as f32 / 1000.0;
        r[3] = 0.5;
    }
    let mut user_factors = Factors::zeros(2, k);
    user_factors.row_mut(0)[0] = 1.0;
    user_factors.row_mut(1)[0] = -1.0;
    let triples: Vec<(u32, u32, f32)> = (1..=10).map(|i| (0u32, i as u32, 1.0)).collect();
    let train = Csr::from_triples(2, MODEL_ITEMS, &triples);
    let m = Model::new(
        Algo::Als,
        users,
        items,
        user_factors,
        item_factors,
        &train,
        0.05,
    );
    LoadedModel::new(meta(version), m, &catalog())
}

pub fn meta(version: &str) -> ModelMeta {
    ModelMeta {
        version: version.to_string(),
        algo: Algo::Als,
        created_at: Utc::now(),
        code_version: "test".into(),
        params: serde_json::json!({}),
        data: DataSummary {
            source: "test".into(),
            users: 2,
            items: MODEL_ITEMS,
            interactions: 10,
            hash: "0".into(),
            from: None,
            until: None,
            as_of: None,
        },
        split: "none".into(),
        metrics: None,
        seconds_per_iteration: 0.0,
        history: Vec::new(),
    }
}

/// The model's item `i` (0 is the unlisted product).
pub fn item(i: usize) -> String {
    if i == 0 {
        unlisted().id
    } else {
        listed()[i - 1].id.clone()
    }
}

/// A serving instance and what it reads.
pub struct Fixture {
    pub serving: Serving,
    pub router: Router,
    pub processor: Processor,
    pub stores: Stores,
    pub impressions: mpsc::Receiver<Event>,
    offsets: AtomicU64,
    _ns: Namespace,
}

/// Deletes a test's Redis keys when dropped.
pub struct Namespace(Option<(String, String)>);

impl Drop for Namespace {
    fn drop(&mut self) {
        let Some((url, prefix)) = self.0.take() else {
            return;
        };
        let Ok(mut conn) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> =
            match redis::Commands::scan_match::<_, String>(&mut conn, format!("{prefix}*")) {
                Ok(iter) => iter.filter_map(|k| k.ok()).collect(),
                Err(_) => return,
            };
        for chunk in keys.chunks(1_000) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// The feature store of a backend: Redis at `redis_url` (fresh prefix) or memory.
pub async fn feature_store(redis_url: Option<&str>) -> (Processor, Namespace) {
    let prefix = format!("{}:", fresh("lusso_test_serving"));
    let config = FeaturesConfig {
        key_prefix: prefix.clone(),
        ..FeaturesConfig::default()
    };
    let (store, ns): (Arc<dyn FeatureStore>, Namespace) = match redis_url {
        Some(url) => (
            Arc::new(RedisStore::connect(url).await.unwrap()),
            Namespace(Some((url.to_string(), prefix))),
        ),
        None => (Arc::new(MemoryStore::new(1_000_000)), Namespace(None)),
    };
    (
        Processor::new(Arc::new(Context::new(catalog(), config)), store),
        ns,
    )
}

/// Durable stores of a backend: a fresh PostgreSQL database or memory.
pub async fn stores(real: bool) -> Stores {
    if real {
        let base = require_env("LUSSO_DATABASE_URL");
        let url = serving::pg::fresh_database(&base, "lusso_test_serving")
            .await
            .unwrap();
        Stores::open(Some(&url)).await.unwrap()
    } else {
        Stores::memory()
    }
}

/// A fixture on the in-memory (`real = false`) or real backends, serving `models`.
pub async fn fixture_with(
    real: bool,
    models: Models,
    stores: Stores,
    redis_url: Option<String>,
) -> Fixture {
    let redis_url = match (real, redis_url) {
        (_, Some(u)) => Some(u),
        (true, None) => Some(require_env("LUSSO_REDIS_URL")),
        (false, None) => None,
    };
    let (processor, ns) = feature_store(redis_url.as_deref()).await;
    let config = ServingConfig {
        // Generous: a test machine under load must not turn a slow read into a "degraded" answer.
        features_timeout_ms: 2_000,
        // No caching: tests change stock and popularity and read them back at once.
        cache_ttl_secs: 0,
        ..ServingConfig::default()
    };
    let metrics = ServingMetrics::new(&prometheus::Registry::new());
    let (impressions, rx) = Impressions::new(1_000, metrics.clone());
    let serving = Serving::new(ServingParts {
        lookups: Lookups::new(
            processor.clone(),
            config.features_timeout(),
            config.cache_ttl(),
            10_000,
        ),
        prices: PriceBook::new(catalog(), PriceBook::default_markets()).unwrap(),
        config,
        catalog: catalog(),
        models: Arc::new(models),
        stores: stores.clone(),
        impressions,
        metrics,
        log: None,
    });
    serving.reload(true).await.unwrap();
    Fixture {
        router: serving::api::app(serving.clone()),
        serving,
        processor,
        stores,
        impressions: rx,
        offsets: AtomicU64::new(0),
        _ns: ns,
    }
}

/// A fixture serving [`model`] `"v1"`.
pub async fn fixture(real: bool) -> Fixture {
    let models = Models::fixed(model("v1"), catalog());
    let stores = stores(real).await;
    fixture_with(real, models, stores, None).await
}

fn event(user: &str, ts: DateTime<Utc>, properties: Properties) -> Event {
    Event {
        event_id: uuid::Uuid::new_v4(),
        ts,
        user_id: user
            .strip_prefix("anon:")
            .is_none()
            .then(|| user.to_string()),
        anonymous_id: user.strip_prefix("anon:").map(str::to_string),
        session_id: Some("s1".into()),
        market: Some("IT".into()),
        device: None,
        received_at: Some(ts),
        properties,
    }
}

pub fn view(user: &str, product: &str, ago_minutes: i64) -> Event {
    event(
        user,
        Utc::now() - Duration::minutes(ago_minutes),
        Properties::ProductView(ProductViewProps {
            product_id: product.into(),
            extra: Default::default(),
        }),
    )
}

pub fn purchase(user: &str, product: &str, ago_minutes: i64) -> Event {
    let p = catalog().product(product).unwrap().clone();
    event(
        user,
        Utc::now() - Duration::minutes(ago_minutes),
        Properties::Purchase(Purchase {
            order_id: fresh("o"),
            currency: "EUR".into(),
            total: p.price,
            lines: vec![OrderLine {
                product_id: p.id.clone(),
                variant_id: p.variants[0].id.clone(),
                quantity: 1,
                unit_price: p.price,
                extra: Default::default(),
            }],
            extra: Default::default(),
        }),
    )
}

impl Fixture {
    /// Applies events to the feature store (as the features consumer would).
    pub async fn apply(&self, events: &[Event]) {
        let first = self
            .offsets
            .fetch_add(events.len() as u64, Ordering::SeqCst);
        let batch: Vec<Incoming> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Incoming {
                stream: stream_id(features::consumer::EVENTS_STREAM, 0),
                offset: first + i as u64,
                item: Item::Event(Box::new(e.clone())),
            })
            .collect();
        self.processor.process(&batch).await.unwrap();
    }

    /// Sets the stock of `product`'s `size` at every location (as `stock_level` messages would).
    pub async fn stock(&self, product: &str, size: &str, available: i64) {
        let p = catalog().product(product).unwrap().clone();
        let v = p
            .variants
            .iter()
            .find(|v| v.size == size)
            .expect("size exists")
            .clone();
        let first = self.offsets.fetch_add(4, Ordering::SeqCst);
        let batch: Vec<Incoming> = catalog()
            .locations()
            .iter()
            .enumerate()
            .map(|(i, l)| Incoming {
                stream: stream_id(features::consumer::COMMERCE_STREAM, 0),
                offset: first + i as u64,
                item: Item::Stock {
                    product_id: p.id.clone(),
                    level: StockLevel {
                        variant_id: v.id.clone(),
                        size: v.size.clone(),
                        location: l.id.clone(),
                        available,
                        seq: first + i as u64 + 1,
                    },
                },
            })
            .collect();
        self.processor.process(&batch).await.unwrap();
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        send(&self.router, "GET", uri, None).await
    }

    pub async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        send(&self.router, method, uri, body).await
    }

    /// Product ids of a recommendations answer.
    pub async fn ids(&self, uri: &str) -> Vec<String> {
        let (status, v) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {v}");
        ids(&v)
    }
}

pub fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|i| i["product_id"].as_str().unwrap().to_string())
        .collect()
}

pub async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-lusso-user", "merch@lusso.test");
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}
