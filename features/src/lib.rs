//! Lusso features: streaming shopper and product features, online and offline, and customer segments.
//!
//! # Layout
//! - [`config`]: settings with documented defaults (`LUSSO_FEATURES_*`, `LUSSO_REDIS_URL`).
//! - [`state`]: the per-shopper and per-product blobs (windows in [`windows`], compact encoding in `codec`),
//!   each with its own fences (offsets applied) that make redelivery harmless.
//! - [`processor`]: applies a batch of bus messages to a [`store::FeatureStore`], exactly once in effect.
//! - [`store`]: the online store trait with Redis and in-memory implementations.
//! - [`consumer`]: the consumer group on `lusso.events.v1` + `lusso.commerce.v1` (commit after durable write,
//!   retry with backoff while the store is down), and the popularity refresher.
//! - [`offline`]: point-in-time exports (`--as-of`) by replaying the event log, and snapshot tables.
//! - [`segment`]: RFM, rule-based segments, k-means clusters (linfa).
//! - [`api`]: `GET /v1/users/{id}/features|segment`, `GET /v1/products/{id}/features`, `GET /v1/segments`,
//!   `POST /v1/segments/train`; [`openapi`]: their OpenAPI document.
//! - [`metrics`]: Prometheus metrics (lag, freshness, throughput).

pub mod api;
pub mod attrs;
mod codec;
pub mod config;
pub mod consumer;
pub mod error;
pub mod metrics;
pub mod offline;
pub mod openapi;
pub mod processor;
pub mod segment;
pub mod state;
pub mod store;
pub mod windows;

use std::sync::Arc;

use pipelines::catalog::Catalog;

pub use config::FeaturesConfig;
pub use error::{Error, Result};

/// What every part of the pipeline reads: the catalogue (product attributes), the settings, the key names.
#[derive(Debug, Clone)]
pub struct Context {
    pub catalog: Arc<Catalog>,
    pub config: FeaturesConfig,
    pub keys: store::Keys,
}

impl Context {
    pub fn new(catalog: Arc<Catalog>, config: FeaturesConfig) -> Context {
        let keys = store::Keys::new(&config.key_prefix);
        Context {
            catalog,
            config,
            keys,
        }
    }

    /// Category ids of the catalogue (the columns of the learned segments' affinity shares).
    pub fn categories(&self) -> Vec<String> {
        self.catalog
            .categories()
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }
}
