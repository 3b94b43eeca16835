//! Feature settings: serde structs with documented defaults, overridable by `LUSSO_FEATURES_*` env variables.
//! [`FeaturesConfig::validated`] checks every value once, so the rest of the crate can trust it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Everything the feature pipeline and API need to know, with defaults for a fashion storefront.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// Consumer group on `lusso.events.v1` / `lusso.commerce.v1`.
    pub group: String,
    /// Redis URL (`redis://…`); `None` selects the in-memory store (embedded mode). Env `LUSSO_REDIS_URL`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (contract: `lusso:`); tests use a fresh one each.
    pub key_prefix: String,
    /// Last-N viewed / purchased products kept per shopper.
    pub last_n: usize,
    /// Half-life of affinity scores (category, line, colour, price band), hours.
    pub affinity_half_life_hours: f64,
    /// Half-life of product popularity per market and per segment, hours.
    pub popularity_half_life_hours: f64,
    /// Two products viewed (or bought) by one shopper within this many minutes count as a co-view (co-purchase
    /// uses the same order, or this window × 48, i.e. one day by default).
    pub co_window_minutes: i64,
    /// Neighbours served per product; `2 × top_k` are kept so the top-K stays exact under churn.
    pub top_k_neighbours: usize,
    /// Shopper state expires after this many days without any event (Redis TTL; memory bound).
    pub user_ttl_days: u64,
    /// Event ids remembered per shopper for duplicate detection: those within this many minutes of the shopper's
    /// newest event, kept under their own key that expires this many minutes after the shopper's last write…
    pub dedup_horizon_minutes: i64,
    /// …and at most this many.
    pub dedup_max_ids: usize,
    /// Messages per consumer batch (one Redis read + one write round trip per batch).
    pub batch_max: usize,
    /// Longest wait to fill a batch, milliseconds (freshness bound under low traffic).
    pub batch_wait_ms: u64,
    /// Rule-based segment thresholds.
    pub segments: SegmentRules,
    /// Number of learned clusters (k-means).
    pub clusters: usize,
    /// The features role retrains the learned segments from the event log this often (minutes; 0 = never).
    pub segments_refresh_minutes: u64,
    /// The features role recomputes the popularity lists this often (seconds).
    pub popularity_refresh_secs: u64,
    /// Smoothing of product conversion and return rates (Bayesian prior strength, in views / purchases).
    pub rate_prior_weight: f64,
    /// Prior conversion rate (purchases per view) used for smoothing.
    pub prior_conversion: f64,
    /// Prior return rate (returns per purchase) used for smoothing.
    pub prior_return_rate: f64,
}

/// Thresholds of the rule-based segments, evaluated in this order (first match wins):
/// 1. **New**: first seen ≤ `new_days` ago and at most one order;
/// 2. **Lapsed**: no visit for more than `lapsed_days`;
/// 3. **At Risk**: at least one order and no visit for more than `at_risk_days`;
/// 4. **High-Value Returning**: ≥ `hvr_min_orders` orders, ≥ `hvr_min_monetary_eur` net spend, last purchase
///    ≤ `hvr_max_days_since_purchase` ago;
/// 5. **Active Browser**: ≥ `browser_min_views_7d` product views in the last 7 days;
/// 6. otherwise **Occasional**.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentRules {
    pub new_days: f64,
    pub lapsed_days: f64,
    pub at_risk_days: f64,
    pub hvr_min_orders: u32,
    pub hvr_min_monetary_eur: f64,
    pub hvr_max_days_since_purchase: f64,
    pub browser_min_views_7d: u64,
}

impl Default for SegmentRules {
    fn default() -> Self {
        SegmentRules {
            new_days: 30.0,
            lapsed_days: 120.0,
            at_risk_days: 45.0,
            hvr_min_orders: 2,
            // Two orders at the house's median ticket (≈ 500 € per order) — a premium-fashion "VIC" entry line.
            hvr_min_monetary_eur: 1_000.0,
            hvr_max_days_since_purchase: 180.0,
            browser_min_views_7d: 5,
        }
    }
}

/// Default of `last_n`: the default.
const fn default_last_n() -> usize {
    50
}
/// One week: a fashion taste moves over weeks, not days.
const fn default_affinity_half_life_hours() -> f64 {
    168.0
}
/// Three days: "popular now" should follow drops and campaigns quickly.
const fn default_popularity_half_life_hours() -> f64 {
    72.0
}
/// The usual 30-minute analytics session.
const fn default_co_window_minutes() -> i64 {
    30
}
const fn default_top_k_neighbours() -> usize {
    50
}
/// 90 days: beyond that a shopper is lapsed and the rebuild from the log is the source of truth.
const fn default_user_ttl_days() -> u64 {
    90
}
/// Client retries and collector re-posts arrive within minutes; an hour is a wide margin.
const fn default_dedup_horizon_minutes() -> i64 {
    60
}
const fn default_dedup_max_ids() -> usize {
    64
}
/// 20k events ≈ 0.2 s of the 100k events/s goal: large enough to amortise round trips.
const fn default_batch_max() -> usize {
    20_000
}
/// Bounds the freshness added by batching at low traffic.
const fn default_batch_wait_ms() -> u64 {
    100
}
const fn default_clusters() -> usize {
    6
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            group: "lusso-features".into(),
            redis_url: None,
            key_prefix: "lusso:".into(),
            last_n: default_last_n(),
            affinity_half_life_hours: default_affinity_half_life_hours(),
            popularity_half_life_hours: default_popularity_half_life_hours(),
            co_window_minutes: default_co_window_minutes(),
            top_k_neighbours: default_top_k_neighbours(),
            user_ttl_days: default_user_ttl_days(),
            dedup_horizon_minutes: default_dedup_horizon_minutes(),
            dedup_max_ids: default_dedup_max_ids(),
            batch_max: default_batch_max(),
            batch_wait_ms: default_batch_wait_ms(),
            segments: SegmentRules::default(),
            clusters: default_clusters(),
            segments_refresh_minutes: 360,
            popularity_refresh_secs: 10,
            rate_prior_weight: 50.0,
            prior_conversion: 0.01,
            prior_return_rate: 0.3,
        }
    }
}

impl FeaturesConfig {
    /// Defaults overridden by the environment: `LUSSO_REDIS_URL`, `LUSSO_FEATURES_GROUP`,
    /// `LUSSO_FEATURES_KEY_PREFIX`, `LUSSO_FEATURES_LAST_N`, `LUSSO_FEATURES_BATCH_MAX`,
    /// `LUSSO_FEATURES_USER_TTL_DAYS`, `LUSSO_FEATURES_CLUSTERS`, `LUSSO_FEATURES_AFFINITY_HALF_LIFE_HOURS`,
    /// `LUSSO_FEATURES_SEGMENTS_REFRESH_MINUTES`, `LUSSO_FEATURES_TOP_K`.
    pub fn from_env() -> Result<FeaturesConfig> {
        let mut c = FeaturesConfig::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        c.redis_url = var("LUSSO_REDIS_URL");
        if let Some(v) = var("LUSSO_FEATURES_GROUP") {
            c.group = v;
        }
        if let Some(v) = var("LUSSO_FEATURES_KEY_PREFIX") {
            c.key_prefix = v;
        }
        fn num<T: std::str::FromStr>(key: &str, v: Option<String>, into: &mut T) -> Result<()> {
            if let Some(v) = v {
                *into = v
                    .parse()
                    .map_err(|_| Error::bad(key.to_string(), format!("`{v}` is not a number")))?;
            }
            Ok(())
        }
        num(
            "LUSSO_FEATURES_LAST_N",
            var("LUSSO_FEATURES_LAST_N"),
            &mut c.last_n,
        )?;
        num(
            "LUSSO_FEATURES_BATCH_MAX",
            var("LUSSO_FEATURES_BATCH_MAX"),
            &mut c.batch_max,
        )?;
        num(
            "LUSSO_FEATURES_USER_TTL_DAYS",
            var("LUSSO_FEATURES_USER_TTL_DAYS"),
            &mut c.user_ttl_days,
        )?;
        num(
            "LUSSO_FEATURES_CLUSTERS",
            var("LUSSO_FEATURES_CLUSTERS"),
            &mut c.clusters,
        )?;
        num(
            "LUSSO_FEATURES_AFFINITY_HALF_LIFE_HOURS",
            var("LUSSO_FEATURES_AFFINITY_HALF_LIFE_HOURS"),
            &mut c.affinity_half_life_hours,
        )?;
        num(
            "LUSSO_FEATURES_TOP_K",
            var("LUSSO_FEATURES_TOP_K"),
            &mut c.top_k_neighbours,
        )?;
        num(
            "LUSSO_FEATURES_SEGMENTS_REFRESH_MINUTES",
            var("LUSSO_FEATURES_SEGMENTS_REFRESH_MINUTES"),
            &mut c.segments_refresh_minutes,
        )?;
        c.validated()
    }

    /// Checks every value, naming the field and the reason.
    pub fn validated(self) -> Result<FeaturesConfig> {
        let bad =
            |field: &str, why: &str| Err(Error::bad(format!("features.{field}"), why.to_string()));
        if !(1..=1000).contains(&self.last_n) {
            return bad("last_n", "must be 1–1000");
        }
        if !(self.affinity_half_life_hours > 0.0 && self.popularity_half_life_hours > 0.0) {
            return bad("half_life_hours", "must be > 0");
        }
        if self.co_window_minutes <= 0 {
            return bad("co_window_minutes", "must be > 0");
        }
        if !(1..=1000).contains(&self.top_k_neighbours) {
            return bad("top_k_neighbours", "must be 1–1000");
        }
        if self.user_ttl_days == 0 {
            return bad("user_ttl_days", "must be ≥ 1");
        }
        if self.dedup_horizon_minutes < 0 || self.dedup_max_ids > 4096 {
            return bad("dedup_*", "horizon must be ≥ 0 and max ids ≤ 4096");
        }
        if !(1..=200_000).contains(&self.batch_max) {
            return bad("batch_max", "must be 1–200000");
        }
        if self.popularity_refresh_secs == 0 {
            return bad("popularity_refresh_secs", "must be ≥ 1");
        }
        if !(2..=50).contains(&self.clusters) {
            return bad("clusters", "must be 2–50");
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return bad("key_prefix", "must be non-empty without braces or spaces");
        }
        Ok(self)
    }

    /// Affinity half-life in milliseconds.
    pub fn affinity_half_life_ms(&self) -> f64 {
        self.affinity_half_life_hours * 3_600_000.0
    }

    /// Popularity half-life in milliseconds.
    pub fn popularity_half_life_ms(&self) -> f64 {
        self.popularity_half_life_hours * 3_600_000.0
    }

    /// The batch wait as a duration.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_are_read_and_checked() {
        // One test touches the process environment, so no other test races with it.
        std::env::set_var("LUSSO_FEATURES_TOP_K", "1000");
        std::env::set_var("LUSSO_FEATURES_SEGMENTS_REFRESH_MINUTES", "0");
        let c = FeaturesConfig::from_env().unwrap();
        assert_eq!((c.top_k_neighbours, c.segments_refresh_minutes), (1000, 0));
        std::env::set_var("LUSSO_FEATURES_LAST_N", "many");
        let err = FeaturesConfig::from_env().unwrap_err().to_string();
        assert!(
            err.contains("LUSSO_FEATURES_LAST_N") && err.contains("many"),
            "{err}"
        );
        std::env::set_var("LUSSO_FEATURES_LAST_N", "0");
        let err = FeaturesConfig::from_env().unwrap_err().to_string();
        assert!(err.contains("last_n"), "{err}");
        for k in [
            "LUSSO_FEATURES_TOP_K",
            "LUSSO_FEATURES_SEGMENTS_REFRESH_MINUTES",
            "LUSSO_FEATURES_LAST_N",
        ] {
            std::env::remove_var(k);
        }
    }
}
