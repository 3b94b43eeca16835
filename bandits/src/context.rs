//! Decision context: what the storefront sends, completed from the feature store, turned into features.
//!
//! The feature vector has [`DIM`] = 64 entries, in this order (names from [`feature_names`]):
//!
//! | block | size | value |
//! |---|---|---|
//! | `bias` | 1 | 1 |
//! | `segment=…` | 7 | one-hot over the rule segments + `Unknown` |
//! | `cluster=0..7` | 8 | one-hot of the learned k-means cluster (none: all 0) |
//! | `device=…` | 5 | one-hot desktop, mobile, tablet, app, other |
//! | `market=…` | 11 | one-hot IT, GB, DE, CH, FR, US, ES, NL, AT, JP, other |
//! | `hour_sin`, `hour_cos` | 2 | hour of day on the unit circle (local to the shopper if sent, else UTC) |
//! | `weekend`, `logged_in` | 2 | 0/1 |
//! | `frequency` | 1 | ln(1 + orders) / 3 |
//! | `affinity=…` | 27 | category affinity from the feature store, divided by the shopper's largest |

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::slot::UNKNOWN_SEGMENT;
use crate::{Error, Result};

/// Segments known to the policies (the features crate's rule segments, then `Unknown`).
pub const SEGMENTS: [&str; 7] = [
    "New",
    "Lapsed",
    "At Risk",
    "High-Value Returning",
    "Active Browser",
    "Occasional",
    UNKNOWN_SEGMENT,
];
/// Learned clusters represented (k-means k ≤ 8).
pub const CLUSTERS: usize = 8;
/// Devices, as in the event contract.
pub const DEVICES: [&str; 5] = ["desktop", "mobile", "tablet", "app", "other"];
/// Markets with their own feature (the rest share `other`).
pub const MARKETS: [&str; 10] = ["IT", "GB", "DE", "CH", "FR", "US", "ES", "NL", "AT", "JP"];
/// Catalogue categories (the built-in catalogue's 27).
pub const CATEGORIES: [&str; 27] = [
    "dresses",
    "skirts",
    "blouses",
    "knitwear-w",
    "trousers-w",
    "jackets-w",
    "coats-w",
    "tshirts-w",
    "shoes-w",
    "bags",
    "jewellery",
    "shirts-m",
    "suits",
    "knitwear-m",
    "trousers-m",
    "jackets-m",
    "coats-m",
    "tshirts-m",
    "shoes-m",
    "belts",
    "jeans",
    "sneakers",
    "scarves",
    "sunglasses",
    "swimwear",
    "kids-clothing",
    "kids-shoes",
];
/// Length of the feature vector.
pub const DIM: usize = 1
    + SEGMENTS.len()
    + CLUSTERS
    + DEVICES.len()
    + MARKETS.len()
    + 1
    + 2
    + 2
    + 1
    + CATEGORIES.len();

/// The `context` object of `POST /v1/decisions`. Every field is optional; what is missing is read from the
/// feature store for a known `user_id`, else left unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextInput {
    pub segment: Option<String>,
    pub cluster: Option<usize>,
    pub device: Option<String>,
    pub market: Option<String>,
    /// Local hour of day 0–23.
    pub hour: Option<u32>,
    /// ISO weekday 1 (Monday) – 7 (Sunday).
    pub weekday: Option<u32>,
    pub session_id: Option<String>,
    /// Category id → affinity score (any non-negative scale; normalised by the largest).
    pub category_affinity: Option<BTreeMap<String, f64>>,
    /// Completed orders so far.
    pub orders: Option<u32>,
}

/// The context a decision used, as logged: every field resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub segment: String,
    pub cluster: Option<usize>,
    pub device: Option<String>,
    pub market: Option<String>,
    pub hour: u32,
    pub weekday: u32,
    pub session_id: Option<String>,
    pub logged_in: bool,
    pub orders: u32,
    pub category_affinity: BTreeMap<String, f64>,
    /// Where the fields came from: `request`, `features`, `default` per field name.
    pub sources: BTreeMap<String, String>,
}

impl ContextInput {
    /// Checks each field; errors name `context.FIELD`.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.segment {
            if !SEGMENTS.contains(&s.as_str()) {
                return Err(Error::bad(
                    "context.segment",
                    format!("`{s}` is not a known segment ({})", SEGMENTS.join(", ")),
                ));
            }
        }
        if let Some(c) = self.cluster {
            if c >= CLUSTERS {
                return Err(Error::bad(
                    "context.cluster",
                    format!("{c} must be below {CLUSTERS}"),
                ));
            }
        }
        if let Some(d) = &self.device {
            if !DEVICES.contains(&d.as_str()) {
                return Err(Error::bad(
                    "context.device",
                    format!("`{d}` must be one of {}", DEVICES.join(", ")),
                ));
            }
        }
        if let Some(m) = &self.market {
            if m.len() != 2 || !m.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(Error::bad(
                    "context.market",
                    format!("`{m}` must be an ISO 3166 alpha-2 code such as IT"),
                ));
            }
        }
        if let Some(h) = self.hour {
            if h > 23 {
                return Err(Error::bad("context.hour", format!("{h} must be 0–23")));
            }
        }
        if let Some(w) = self.weekday {
            if !(1..=7).contains(&w) {
                return Err(Error::bad(
                    "context.weekday",
                    format!("{w} must be 1 (Monday) – 7 (Sunday)"),
                ));
            }
        }
        if let Some(s) = &self.session_id {
            if s.is_empty() || s.len() > 128 {
                return Err(Error::bad("context.session_id", "must be 1–128 characters"));
            }
        }
        if let Some(a) = &self.category_affinity {
            for (k, v) in a {
                if !CATEGORIES.contains(&k.as_str()) {
                    return Err(Error::bad(
                        format!("context.category_affinity.{k}"),
                        "not a catalogue category",
                    ));
                }
                if !(v.is_finite() && *v >= 0.0) {
                    return Err(Error::bad(
                        format!("context.category_affinity.{k}"),
                        format!("{v} must be a finite number ≥ 0"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Fills the missing fields from `stored` (the feature store's view of the shopper) and `now`.
    pub fn resolve(
        self,
        stored: Option<&StoredFeatures>,
        logged_in: bool,
        now: DateTime<Utc>,
    ) -> Context {
        let mut sources = BTreeMap::new();
        let mut pick = |name: &str, from_request: bool, from_store: bool| {
            let s = if from_request {
                "request"
            } else if from_store {
                "features"
            } else {
                "default"
            };
            sources.insert(name.to_string(), s.to_string());
        };
        let st = stored.cloned().unwrap_or_default();
        pick(
            "segment",
            self.segment.is_some(),
            st.segment.as_deref().is_some_and(|s| SEGMENTS.contains(&s)),
        );
        let segment = self
            .segment
            .or(st.segment.filter(|s| SEGMENTS.contains(&s.as_str())))
            .unwrap_or_else(|| UNKNOWN_SEGMENT.to_string());
        pick("cluster", self.cluster.is_some(), st.cluster.is_some());
        let cluster = self.cluster.or(st.cluster.filter(|c| *c < CLUSTERS));
        pick("device", self.device.is_some(), st.device.is_some());
        let device = self.device.or(st.device);
        pick("market", self.market.is_some(), st.market.is_some());
        let market = self.market.or(st.market);
        pick("hour", self.hour.is_some(), false);
        pick("weekday", self.weekday.is_some(), false);
        pick(
            "category_affinity",
            self.category_affinity.is_some(),
            !st.category_affinity.is_empty(),
        );
        pick("orders", self.orders.is_some(), st.orders.is_some());
        Context {
            segment,
            cluster,
            device,
            market,
            hour: self.hour.unwrap_or_else(|| now.hour()),
            weekday: self
                .weekday
                .unwrap_or_else(|| now.weekday().number_from_monday()),
            session_id: self.session_id,
            logged_in,
            orders: self.orders.or(st.orders).unwrap_or(0),
            category_affinity: self.category_affinity.unwrap_or(st.category_affinity),
            sources,
        }
    }
}

/// What the feature store knows of a shopper (see `features::state::UserFeatures`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredFeatures {
    pub segment: Option<String>,
    pub cluster: Option<usize>,
    pub device: Option<String>,
    pub market: Option<String>,
    pub orders: Option<u32>,
    pub category_affinity: BTreeMap<String, f64>,
}

impl From<&features::state::user::UserFeatures> for StoredFeatures {
    fn from(u: &features::state::user::UserFeatures) -> Self {
        StoredFeatures {
            segment: Some(u.segment.clone()),
            cluster: u.cluster,
            device: u.device.clone(),
            market: u.market.clone(),
            orders: Some(u.rfm.frequency),
            category_affinity: u.affinities.get("category").cloned().unwrap_or_default(),
        }
    }
}

/// Names of the [`DIM`] features, in vector order.
pub fn feature_names() -> Vec<String> {
    let mut n = vec!["bias".to_string()];
    n.extend(SEGMENTS.iter().map(|s| format!("segment={s}")));
    n.extend((0..CLUSTERS).map(|c| format!("cluster={c}")));
    n.extend(DEVICES.iter().map(|d| format!("device={d}")));
    n.extend(MARKETS.iter().map(|m| format!("market={m}")));
    n.push("market=other".into());
    n.extend(["hour_sin", "hour_cos", "weekend", "logged_in", "frequency"].map(String::from));
    n.extend(CATEGORIES.iter().map(|c| format!("affinity={c}")));
    n
}

impl Context {
    /// Index of the segment in [`SEGMENTS`].
    pub fn segment_index(&self) -> usize {
        SEGMENTS
            .iter()
            .position(|s| *s == self.segment)
            .unwrap_or(SEGMENTS.len() - 1)
    }

    /// The feature vector (see the module docs for the layout).
    pub fn features(&self) -> Vec<f32> {
        let mut x = vec![0f32; DIM];
        x[0] = 1.0;
        let mut at = 1;
        x[at + self.segment_index()] = 1.0;
        at += SEGMENTS.len();
        if let Some(c) = self.cluster.filter(|c| *c < CLUSTERS) {
            x[at + c] = 1.0;
        }
        at += CLUSTERS;
        let d = self
            .device
            .as_deref()
            .and_then(|d| DEVICES.iter().position(|x| *x == d))
            .unwrap_or(DEVICES.len() - 1);
        x[at + d] = 1.0;
        at += DEVICES.len();
        let m = self
            .market
            .as_deref()
            .and_then(|m| MARKETS.iter().position(|x| *x == m))
            .unwrap_or(MARKETS.len());
        x[at + m] = 1.0;
        at += MARKETS.len() + 1;
        let angle = std::f64::consts::TAU * f64::from(self.hour) / 24.0;
        x[at] = angle.sin() as f32;
        x[at + 1] = angle.cos() as f32;
        x[at + 2] = if self.weekday >= 6 { 1.0 } else { 0.0 };
        x[at + 3] = if self.logged_in { 1.0 } else { 0.0 };
        x[at + 4] = ((1.0 + f64::from(self.orders)).ln() / 3.0) as f32;
        at += 5;
        let max = self
            .category_affinity
            .values()
            .fold(0.0f64, |m, v| m.max(*v));
        if max > 0.0 {
            for (k, v) in &self.category_affinity {
                if let Some(i) = CATEGORIES.iter().position(|c| c == k) {
                    x[at + i] = (v / max) as f32;
                }
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_64_named_features() {
        assert_eq!(DIM, 64);
        assert_eq!(feature_names().len(), DIM);
        // The segments are the feature store's rule segments, in its order, then `Unknown`.
        assert_eq!(&SEGMENTS[..6], &features::segment::RULE_SEGMENTS[..]);
    }

    #[test]
    fn features_follow_the_layout() {
        let now = "2026-12-05T14:00:00Z".parse().unwrap(); // a Saturday
        let input = ContextInput {
            segment: Some("At Risk".into()),
            device: Some("app".into()),
            market: Some("BR".into()),
            category_affinity: Some([("bags".to_string(), 2.0), ("jeans".into(), 1.0)].into()),
            ..Default::default()
        };
        input.validate().unwrap();
        let c = input.resolve(None, true, now);
        let x = c.features();
        let names = feature_names();
        let on: Vec<&str> = names
            .iter()
            .zip(&x)
            .filter(|(_, v)| **v == 1.0)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            on,
            [
                "bias",
                "segment=At Risk",
                "device=app",
                "market=other",
                "weekend",
                "logged_in",
                "affinity=bags"
            ]
        );
        let jeans = names.iter().position(|n| n == "affinity=jeans").unwrap();
        assert_eq!(x[jeans], 0.5);
        assert_eq!(c.sources["segment"], "request");
        assert_eq!(c.sources["cluster"], "default");
    }

    #[test]
    fn stored_features_fill_gaps_and_request_wins() {
        let now = "2026-12-01T09:00:00Z".parse().unwrap();
        let stored = StoredFeatures {
            segment: Some("Lapsed".into()),
            device: Some("mobile".into()),
            cluster: Some(3),
            ..Default::default()
        };
        let c = ContextInput {
            device: Some("desktop".into()),
            ..Default::default()
        }
        .resolve(Some(&stored), true, now);
        assert_eq!(c.segment, "Lapsed");
        assert_eq!(c.device.as_deref(), Some("desktop"));
        assert_eq!(c.cluster, Some(3));
        assert_eq!(c.hour, 9);
        assert_eq!(c.sources["segment"], "features");
    }

    #[test]
    fn bad_fields_are_named() {
        let e = ContextInput {
            segment: Some("VIP".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("context.segment"));
        let e = ContextInput {
            hour: Some(24),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("context.hour"));
    }
}
