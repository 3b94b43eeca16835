//! Test fixtures: a commerce service over the in-memory store or PostgreSQL (a fresh database per scenario),
//! the built-in catalogue, the fake payment provider, a clock the test moves, and HTTP helpers that go
//! through the public router. PostgreSQL scenarios read `LUSSO_DATABASE_URL` (set by `scripts/test.sh`).
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use commerce::catalog::CatalogPrices;
use commerce::payments::Providers;
use commerce::service::Clock;
use commerce::store::{self, CommerceStore};
use commerce::{Commerce, CommerceConfig, CommerceParts};
use pipelines::catalog::{Catalog, Product};
use serde_json::{json, Value};
use tower::ServiceExt as _;

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
        .get_or_init(|| Arc::new(Catalog::generate_with(11, 80)))
        .clone()
}

/// Listed products with at least two sizes, in catalogue order.
pub fn listed() -> Vec<&'static Product> {
    static LISTED: OnceLock<Vec<Product>> = OnceLock::new();
    LISTED
        .get_or_init(|| {
            catalog()
                .products()
                .iter()
                .filter(|p| p.is_listed() && p.variants.len() >= 2)
                .cloned()
                .collect()
        })
        .iter()
        .collect()
}

/// A clock the test moves forward.
#[derive(Default)]
pub struct TestClock {
    offset_secs: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }
}

/// Which store a scenario runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Postgres,
}

pub struct Fixture {
    pub commerce: Arc<Commerce>,
    pub router: Router,
    pub store: Arc<dyn CommerceStore>,
    pub clock: Arc<TestClock>,
    /// The PostgreSQL URL of the scenario's database (none in memory).
    pub database_url: Option<String>,
}

pub async fn store_for(backend: Backend) -> (Arc<dyn CommerceStore>, Option<String>) {
    match backend {
        Backend::Memory => (store::open("memory://").await.unwrap(), None),
        Backend::Postgres => {
            let base = require_env("LUSSO_DATABASE_URL");
            let url = pipelines::pg::fresh_database(&base, "lusso_commerce")
                .await
                .unwrap();
            (store::open(&url).await.unwrap(), Some(url))
        }
    }
}

pub async fn fixture(backend: Backend) -> Fixture {
    fixture_with(backend, CommerceConfig::default(), Providers::fake_only()).await
}

pub async fn fixture_with(
    backend: Backend,
    config: CommerceConfig,
    providers: Providers,
) -> Fixture {
    let (store, database_url) = store_for(backend).await;
    let clock = Arc::new(TestClock::default());
    let commerce = Arc::new(
        Commerce::new(CommerceParts {
            config,
            store: store.clone(),
            catalog: catalog(),
            prices: Arc::new(CatalogPrices),
            providers,
            clock: clock.clone(),
        })
        .await
        .unwrap(),
    );
    Fixture {
        router: commerce::api::app(commerce.clone()),
        commerce,
        store,
        clock,
        database_url,
    }
}

impl Fixture {
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (status, bytes) = self
            .call_raw(method, uri, body.map(|b| b.to_string()), headers)
            .await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn call_raw(
        &self,
        method: &str,
        uri: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec();
        (status, bytes)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None, &[]).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(body), &[]).await
    }

    /// Sets a SKU's stock at each named location (others 0).
    pub async fn stock(&self, sku: &str, levels: &[(&str, i64)]) {
        let mut locations = serde_json::Map::new();
        for l in catalog().locations() {
            let q = levels
                .iter()
                .find(|(id, _)| *id == l.id)
                .map(|(_, q)| *q)
                .unwrap_or(0);
            locations.insert(l.id.clone(), json!(q));
        }
        let (s, b) = self
            .call(
                "PUT",
                &format!("/v1/inventory/{sku}"),
                Some(json!({ "locations": locations })),
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    /// `(on_hand, reserved, available)` summed over locations.
    pub async fn levels(&self, sku: &str) -> (i64, i64, i64) {
        let (s, b) = self.get(&format!("/v1/inventory/{sku}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let mut t = (0, 0, 0);
        for l in b["locations"].as_object().unwrap().values() {
            t.0 += l["on_hand"].as_i64().unwrap();
            t.1 += l["reserved"].as_i64().unwrap();
            t.2 += l["available"].as_i64().unwrap();
        }
        assert_eq!(b["available"].as_i64().unwrap(), t.2);
        t
    }

    /// A cart in `market` with `lines` (sku, quantity); returns its id.
    pub async fn cart(&self, market: &str, lines: &[(&str, u32)]) -> String {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(s, q)| json!({"sku": s, "quantity": q}))
            .collect();
        let (s, b) = self
            .post("/v1/carts", json!({"market": market, "lines": lines}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    pub async fn checkout(&self, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/checkouts",
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
    }

    /// The outbox's messages (decoded), oldest first, without relaying them.
    pub async fn outbox(&self) -> Vec<Value> {
        self.store
            .outbox_batch(100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    }
}

/// An Italian shipping address.
pub fn milano() -> Value {
    json!({"name": "Giulia Rossi", "street": "Via Montenapoleone 8", "city": "Milano",
           "postal_code": "20121", "province": "MI", "country": "IT"})
}

/// A checkout body for `cart` paying with the fake provider (`outcome`: succeed, decline, requires_action).
pub fn checkout_body(cart: &str, outcome: &str) -> Value {
    json!({
        "cart_id": cart,
        "email": "giulia@example.com",
        "user_id": "u_giulia",
        "shipping": milano(),
        "payment": {"provider": "fake", "outcome": outcome}
    })
}
