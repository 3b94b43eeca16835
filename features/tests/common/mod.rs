//! Test helpers: simulated events, fresh store namespaces, and feature snapshots to compare.
//! Real-service tests read `LUSSO_REDIS_URL` / `LUSSO_KAFKA_BROKERS` / `LUSSO_CLICKHOUSE_URL` (set by
//! `scripts/test.sh`) and use a fresh key prefix / topic / table per test.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use features::processor::{state_id, Incoming, Item, Processor};
use features::state::product::ProductState;
use features::state::user::UserState;
use features::store::memory::MemoryStore;
use features::store::redis::RedisStore;
use features::store::FeatureStore;
use features::{Context, FeaturesConfig};
use pipelines::catalog::Catalog;
use pipelines::event::Event;
use pipelines::sim::{GroundTruth, SimConfig, Simulator};
use redis::Commands as _;
use serde_json::Value;

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

/// `days` of simulated history for `users` shoppers ending now, as validated events in simulator order.
pub fn simulate(users: usize, days: i64, seed: u64) -> (Vec<Event>, GroundTruth, DateTime<Utc>) {
    let now = Utc::now();
    let mut sim = Simulator::new(
        SimConfig::new(seed, users, now - ChronoDuration::days(days)),
        catalog(),
    );
    let mut out = Vec::new();
    loop {
        let batch = sim.next_events_until(now, 10_000);
        if batch.is_empty() {
            break;
        }
        for v in batch {
            out.push(
                pipelines::validate::validate_event(&v, now).expect("simulated events are valid"),
            );
        }
    }
    (out, sim.truth(), now)
}

/// The events as bus messages of one stream with consecutive offsets from `first_offset`.
pub fn incoming(events: &[Event], stream: u32, first_offset: u64) -> Vec<Incoming> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| Incoming {
            stream,
            offset: first_offset + i as u64,
            item: Item::Event(Box::new(e.clone())),
        })
        .collect()
}

/// Deletes a test's Redis keys (its fresh prefix) when dropped, so runs do not pile up keys in the shared Redis.
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
        let keys: Vec<String> = match conn.scan_match::<_, String>(format!("{prefix}*")) {
            Ok(iter) => iter.filter_map(|k| k.ok()).collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(1_000) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// A fresh namespace in the named store; keep the guard alive for the test.
pub async fn context_and_store(redis: bool) -> (Arc<Context>, Arc<dyn FeatureStore>, Namespace) {
    let prefix = format!("{}:", fresh("lusso_test"));
    let config = FeaturesConfig {
        key_prefix: prefix.clone(),
        // Neighbour lists are exact only below their cap (2 × top-K; beyond it the weakest is dropped, which
        // depends on arrival order). These tests compare runs that apply the same events in different orders
        // (batch cuts, redelivery, outages), so they keep every product below the cap.
        top_k_neighbours: 1000,
        ..FeaturesConfig::default()
    };
    let (store, guard): (Arc<dyn FeatureStore>, _) = if redis {
        let url = require_env("LUSSO_REDIS_URL");
        (
            Arc::new(RedisStore::connect(&url).await.unwrap()),
            Namespace(Some((url, prefix))),
        )
    } else {
        (Arc::new(MemoryStore::new(1_000_000)), Namespace(None))
    };
    (Arc::new(Context::new(catalog(), config)), store, guard)
}

/// Every shopper's and product's features at `now`, as JSON (for equality checks).
pub async fn snapshot(
    p: &Processor,
    events: &[Event],
    now: DateTime<Utc>,
) -> (Vec<Value>, Vec<Value>) {
    let ctx = p.context();
    let users: BTreeSet<String> = events.iter().map(state_id).collect();
    let ids: Vec<String> = users.into_iter().collect();
    let keys: Vec<String> = ids.iter().map(|i| ctx.keys.user(i)).collect();
    let blobs = p.store().get(&keys).await.unwrap();
    let dict = p.dict().await.unwrap();
    let users = ids
        .iter()
        .zip(blobs)
        .map(|(id, b)| {
            let s = UserState::decode(&b.unwrap_or_else(|| panic!("no state for {id}")), &dict)
                .unwrap();
            serde_json::to_value(s.features(id, now, ctx)).unwrap()
        })
        .collect();
    let products = p.store().members(&ctx.keys.product_index()).await.unwrap();
    let keys: Vec<String> = products.iter().map(|i| ctx.keys.product(i)).collect();
    let blobs = p.store().get(&keys).await.unwrap();
    let products = products
        .iter()
        .zip(blobs)
        .map(|(id, b)| {
            serde_json::to_value(
                ProductState::decode(&b.unwrap())
                    .unwrap()
                    .features(id, now, ctx),
            )
            .unwrap()
        })
        .collect();
    (users, products)
}

/// Compares two feature documents (see [`features::offline::diff`]).
pub fn assert_same(a: &Value, b: &Value, path: &str) {
    if let Some(d) = features::offline::diff(a, b, path) {
        panic!("{d}");
    }
}

pub fn assert_snapshots_equal(a: &(Vec<Value>, Vec<Value>), b: &(Vec<Value>, Vec<Value>)) {
    assert_eq!(a.0.len(), b.0.len(), "shopper count");
    assert_eq!(a.1.len(), b.1.len(), "product count");
    for (x, y) in a.0.iter().zip(&b.0) {
        assert_same(x, y, &format!("user {}", x["user"]));
    }
    for (x, y) in a.1.iter().zip(&b.1) {
        assert_same(x, y, &format!("product {}", x["product_id"]));
    }
}
