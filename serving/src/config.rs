//! Serving settings with documented defaults, overridable by `LUSSO_SERVING_*` variables.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The recommendation placements of the contract.
pub const PLACEMENTS: [&str; 4] = ["home", "pdp", "cart", "email"];

/// Largest `n` a request may ask for (contract: 1–100).
pub const MAX_N: usize = 100;
/// Default `n` (contract).
pub const DEFAULT_N: usize = 20;
/// Largest `exclude` list a request may send.
pub const MAX_EXCLUDE: usize = 200;

/// Per-placement behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    /// Drop products the shopper already bought (their last 50 purchases from the feature store).
    pub exclude_purchased: bool,
    /// At most this many items per category (`None` = no cap): a cheap diversity guard.
    pub max_per_category: Option<usize>,
    /// Maximal marginal relevance with this λ (1 = relevance only) over item-factor cosine, when set.
    pub mmr_lambda: Option<f32>,
}

/// Settings of the serving role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// How long a request waits for the feature store before serving without it (ms). The storefront's
    /// budget is ours to protect: a slow Redis degrades the answer (fallback), never the latency.
    pub features_timeout_ms: u64,
    /// How often the promoted model version is checked in the registry (ms).
    pub model_poll_ms: u64,
    /// How often rules, experiments and price overrides are re-read when their revision moves (ms); the
    /// "live within 1 s on every replica" promise rests on this being ≤ 500.
    pub reload_poll_ms: u64,
    /// Popularity lists and stock views are cached in-process for this long (s); the features role
    /// rewrites popularity every 10 s.
    pub cache_ttl_secs: u64,
    /// Products whose stock view is cached (entries); full → the oldest half is dropped.
    pub stock_cache_max: usize,
    /// Model versions kept loaded besides the promoted one (for experiments routing to other versions);
    /// full → the least recently used is unloaded.
    pub extra_models_max: usize,
    /// Impression and exposure events waiting to be produced to the bus; full → shed and counted
    /// (`lusso_serving_impressions_shed_total`), the response is never delayed.
    pub impression_queue: usize,
    /// Market used when neither the request nor the shopper's features give one.
    pub default_market: String,
    pub home: PlacementConfig,
    pub pdp: PlacementConfig,
    pub cart: PlacementConfig,
    pub email: PlacementConfig,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            features_timeout_ms: 25,
            model_poll_ms: 1_000,
            reload_poll_ms: 500,
            cache_ttl_secs: 10,
            stock_cache_max: 200_000,
            extra_models_max: 3,
            impression_queue: 10_000,
            default_market: "IT".into(),
            home: PlacementConfig {
                exclude_purchased: true,
                max_per_category: Some(4),
                mmr_lambda: None,
            },
            pdp: PlacementConfig {
                exclude_purchased: true,
                max_per_category: None,
                mmr_lambda: None,
            },
            cart: PlacementConfig {
                exclude_purchased: true,
                max_per_category: Some(3),
                mmr_lambda: None,
            },
            email: PlacementConfig {
                exclude_purchased: true,
                max_per_category: None,
                mmr_lambda: Some(0.7),
            },
        }
    }
}

impl ServingConfig {
    /// Defaults overridden by `LUSSO_SERVING_FEATURES_TIMEOUT_MS`, `LUSSO_SERVING_MODEL_POLL_MS`,
    /// `LUSSO_SERVING_RELOAD_POLL_MS`, `LUSSO_SERVING_CACHE_TTL_SECS`, `LUSSO_SERVING_IMPRESSION_QUEUE`,
    /// `LUSSO_SERVING_DEFAULT_MARKET`.
    pub fn from_env() -> Result<ServingConfig> {
        let mut c = ServingConfig::default();
        let num = |key: &str, into: &mut u64| {
            pipelines::config::env_number(key, into).map_err(|r| Error::bad(key, r))
        };
        num(
            "LUSSO_SERVING_FEATURES_TIMEOUT_MS",
            &mut c.features_timeout_ms,
        )?;
        num("LUSSO_SERVING_MODEL_POLL_MS", &mut c.model_poll_ms)?;
        num("LUSSO_SERVING_RELOAD_POLL_MS", &mut c.reload_poll_ms)?;
        num("LUSSO_SERVING_CACHE_TTL_SECS", &mut c.cache_ttl_secs)?;
        pipelines::config::env_number("LUSSO_SERVING_IMPRESSION_QUEUE", &mut c.impression_queue)
            .map_err(|r| Error::bad("LUSSO_SERVING_IMPRESSION_QUEUE", r))?;
        if let Some(m) = pipelines::config::env_nonempty("LUSSO_SERVING_DEFAULT_MARKET") {
            c.default_market = m.trim().to_ascii_uppercase();
        }
        c.validated()
    }

    /// Checks every value, naming the field and the reason.
    pub fn validated(self) -> Result<ServingConfig> {
        if !(1..=10_000).contains(&self.features_timeout_ms) {
            return Err(Error::bad("serving.features_timeout_ms", "must be 1–10000"));
        }
        if !(10..=60_000).contains(&self.model_poll_ms) {
            return Err(Error::bad("serving.model_poll_ms", "must be 10–60000"));
        }
        if !(10..=1_000).contains(&self.reload_poll_ms) {
            return Err(Error::bad(
                "serving.reload_poll_ms",
                "must be 10–1000 (rules must be live within 1 s)",
            ));
        }
        if self.impression_queue == 0 || self.stock_cache_max == 0 {
            return Err(Error::bad(
                "serving.impression_queue",
                "queues and caches need a bound ≥ 1",
            ));
        }
        if !pipelines::iso::is_country(&self.default_market) {
            return Err(Error::bad(
                "serving.default_market",
                format!(
                    "`{}` is not an ISO 3166-1 alpha-2 country",
                    self.default_market
                ),
            ));
        }
        for (name, p) in [
            ("home", &self.home),
            ("pdp", &self.pdp),
            ("cart", &self.cart),
            ("email", &self.email),
        ] {
            if p.max_per_category == Some(0) {
                return Err(Error::bad(
                    format!("serving.{name}.max_per_category"),
                    "must be ≥ 1 when set",
                ));
            }
            if let Some(l) = p.mmr_lambda {
                if !(0.0..=1.0).contains(&l) {
                    return Err(Error::bad(
                        format!("serving.{name}.mmr_lambda"),
                        "must be within 0–1",
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The behaviour of a placement (one of [`PLACEMENTS`]).
    pub fn placement(&self, placement: &str) -> &PlacementConfig {
        match placement {
            "pdp" => &self.pdp,
            "cart" => &self.cart,
            "email" => &self.email,
            _ => &self.home,
        }
    }

    pub fn features_timeout(&self) -> Duration {
        Duration::from_millis(self.features_timeout_ms)
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }
}
