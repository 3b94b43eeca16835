//! Customer segments: RFM, the rule-based segment (the default context feature), and learned clusters
//! (k-means over RFM + behaviour + category affinities, linfa) with summaries a merchandiser can read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::config::SegmentRules;
use crate::state::user::UserFeatures;
use crate::{Error, Result};

/// Recency (days since the last purchase; `None` before the first), frequency (orders) and monetary value (net
/// spend in EUR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rfm {
    pub recency_days: Option<f64>,
    pub frequency: u32,
    pub monetary_eur: f64,
}

/// The rule-based segment names, in evaluation order (see [`SegmentRules`]).
pub const RULE_SEGMENTS: [&str; 6] = [
    "New",
    "Lapsed",
    "At Risk",
    "High-Value Returning",
    "Active Browser",
    "Occasional",
];

/// The rule-based segment of a shopper.
pub fn rule_segment(
    rules: &SegmentRules,
    rfm: &Rfm,
    days_since_first_seen: f64,
    days_since_last_visit: f64,
    views_7d: u64,
) -> &'static str {
    if days_since_first_seen <= rules.new_days && rfm.frequency <= 1 {
        "New"
    } else if days_since_last_visit > rules.lapsed_days {
        "Lapsed"
    } else if rfm.frequency >= 1 && days_since_last_visit > rules.at_risk_days {
        "At Risk"
    } else if rfm.frequency >= rules.hvr_min_orders
        && rfm.monetary_eur >= rules.hvr_min_monetary_eur
        && rfm
            .recency_days
            .is_some_and(|d| d <= rules.hvr_max_days_since_purchase)
    {
        "High-Value Returning"
    } else if views_7d >= rules.browser_min_views_7d {
        "Active Browser"
    } else {
        "Occasional"
    }
}

/// Readable summary of one learned cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    pub cluster: usize,
    pub size: usize,
    /// Mean days since last purchase over the members who have purchased.
    pub mean_recency_days: Option<f64>,
    pub mean_frequency: f64,
    pub mean_monetary_eur: f64,
    pub mean_views_30d: f64,
    /// The five categories with the largest mean affinity share.
    pub top_categories: Vec<(String, f64)>,
    /// The most common rule-based segment among members.
    pub dominant_segment: String,
}

/// A trained k-means model over standardised shopper vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterModel {
    pub trained_at: DateTime<Utc>,
    pub k: usize,
    /// Column names of the vectors, in order.
    pub columns: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Centroids in standardised space, `k × columns`.
    pub centroids: Vec<Vec<f64>>,
    pub summaries: Vec<ClusterSummary>,
    /// Shoppers the model was trained on.
    pub trained_on: usize,
}

/// Behavioural columns before the category shares.
const BASE_COLUMNS: [&str; 5] = [
    "log_recency_days",
    "log_frequency",
    "log_monetary_eur",
    "log_views_30d",
    "log_carts_30d",
];

/// Recency used for shoppers who never bought: a year, so they sit far from recent buyers.
const NO_PURCHASE_RECENCY_DAYS: f64 = 365.0;

fn window(f: &UserFeatures, kind: &str, w: &str) -> f64 {
    f.counts[kind][w].as_f64().unwrap_or(0.0)
}

/// The raw (unstandardised) vector of a shopper over `categories`.
pub fn vector(f: &UserFeatures, categories: &[String]) -> Vec<f64> {
    let mut v = vec![
        f.rfm
            .recency_days
            .unwrap_or(NO_PURCHASE_RECENCY_DAYS)
            .ln_1p(),
        f64::from(f.rfm.frequency).ln_1p(),
        f.rfm.monetary_eur.max(0.0).ln_1p(),
        window(f, "views", "30d").ln_1p(),
        window(f, "add_to_carts", "30d").ln_1p(),
    ];
    let aff = f.affinities.get("category");
    let total: f64 = aff.map(|a| a.values().sum()).unwrap_or(0.0);
    for c in categories {
        let s = aff.and_then(|a| a.get(c)).copied().unwrap_or(0.0);
        v.push(if total > 0.0 { s / total } else { 0.0 });
    }
    v
}

impl ClusterModel {
    /// Trains k-means (k-means++ init, 10 runs, linfa's fixed seed: the same input gives the same model).
    pub fn train(
        shoppers: &[UserFeatures],
        k: usize,
        categories: &[String],
        now: DateTime<Utc>,
    ) -> Result<ClusterModel> {
        if shoppers.len() < k.max(2) {
            return Err(Error::bad(
                "segments",
                format!(
                    "{} shoppers with events are too few for k = {k} clusters",
                    shoppers.len()
                ),
            ));
        }
        let columns: Vec<String> = BASE_COLUMNS
            .iter()
            .map(|c| (*c).to_string())
            .chain(categories.iter().map(|c| format!("share_{c}")))
            .collect();
        let d = columns.len();
        let raw: Vec<Vec<f64>> = shoppers.iter().map(|f| vector(f, categories)).collect();
        let n = raw.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| raw.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let std: Vec<f64> = (0..d)
            .map(|j| {
                let var = raw.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if var > 1e-12 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut x = Array2::<f64>::zeros((raw.len(), d));
        for (i, r) in raw.iter().enumerate() {
            for j in 0..d {
                x[[i, j]] = (r[j] - mean[j]) / std[j];
            }
        }
        let data = DatasetBase::from(x.clone());
        let model = KMeans::params(k)
            .n_runs(10)
            .max_n_iterations(300)
            .tolerance(1e-6)
            .fit(&data)
            .map_err(|e| Error::Internal(format!("k-means failed: {e}")))?;
        let labels = model.predict(&x);
        let centroids: Vec<Vec<f64>> = model
            .centroids()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        let summaries = (0..k)
            .map(|c| {
                summarise(
                    c,
                    shoppers,
                    &raw,
                    labels.as_slice().unwrap_or(&[]),
                    categories,
                )
            })
            .collect();
        Ok(ClusterModel {
            trained_at: now,
            k,
            columns,
            mean,
            std,
            centroids,
            summaries,
            trained_on: shoppers.len(),
        })
    }

    /// Nearest centroid of a shopper.
    pub fn assign(&self, f: &UserFeatures, categories: &[String]) -> usize {
        let v = vector(f, categories);
        let z: Vec<f64> = v
            .iter()
            .enumerate()
            .map(|(j, x)| (x - self.mean[j]) / self.std[j])
            .collect();
        self.centroids
            .iter()
            .enumerate()
            .map(|(c, cent)| {
                (
                    c,
                    cent.iter()
                        .zip(&z)
                        .map(|(a, b)| (a - b).powi(2))
                        .sum::<f64>(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(c, _)| c)
    }
}

fn summarise(
    c: usize,
    shoppers: &[UserFeatures],
    raw: &[Vec<f64>],
    labels: &[usize],
    categories: &[String],
) -> ClusterSummary {
    let members: Vec<usize> = (0..shoppers.len())
        .filter(|i| labels.get(*i) == Some(&c))
        .collect();
    let n = members.len().max(1) as f64;
    let buyers: Vec<f64> = members
        .iter()
        .filter_map(|i| shoppers[*i].rfm.recency_days)
        .collect();
    let mut shares: Vec<(String, f64)> = categories
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let s = members
                .iter()
                .map(|i| raw[*i][BASE_COLUMNS.len() + j])
                .sum::<f64>()
                / n;
            (name.clone(), (s * 1e3).round() / 1e3)
        })
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    shares.truncate(5);
    let mut seg: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &members {
        *seg.entry(shoppers[*i].segment.as_str()).or_default() += 1;
    }
    let dominant = seg
        .iter()
        .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
        .map(|(s, _)| s.to_string());
    let round = |v: f64| (v * 100.0).round() / 100.0;
    ClusterSummary {
        cluster: c,
        size: members.len(),
        mean_recency_days: (!buyers.is_empty())
            .then(|| round(buyers.iter().sum::<f64>() / buyers.len() as f64)),
        mean_frequency: round(
            members
                .iter()
                .map(|i| f64::from(shoppers[*i].rfm.frequency))
                .sum::<f64>()
                / n,
        ),
        mean_monetary_eur: round(
            members
                .iter()
                .map(|i| shoppers[*i].rfm.monetary_eur)
                .sum::<f64>()
                / n,
        ),
        mean_views_30d: round(
            members
                .iter()
                .map(|i| window(&shoppers[*i], "views", "30d"))
                .sum::<f64>()
                / n,
        ),
        top_categories: shares,
        dominant_segment: dominant.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfm(recency: Option<f64>, frequency: u32, monetary: f64) -> Rfm {
        Rfm {
            recency_days: recency,
            frequency,
            monetary_eur: monetary,
        }
    }

    #[test]
    fn rules_follow_the_documented_order() {
        let r = SegmentRules::default();
        assert_eq!(rule_segment(&r, &rfm(None, 0, 0.0), 3.0, 0.1, 20), "New");
        assert_eq!(
            rule_segment(&r, &rfm(Some(10.0), 1, 900.0), 10.0, 0.0, 0),
            "New"
        );
        assert_eq!(
            rule_segment(&r, &rfm(Some(200.0), 3, 5000.0), 400.0, 130.0, 0),
            "Lapsed"
        );
        assert_eq!(
            rule_segment(&r, &rfm(Some(60.0), 3, 5000.0), 400.0, 50.0, 0),
            "At Risk"
        );
        assert_eq!(
            rule_segment(&r, &rfm(Some(20.0), 2, 1000.0), 100.0, 2.0, 0),
            "High-Value Returning"
        );
        assert_eq!(
            rule_segment(&r, &rfm(Some(20.0), 2, 999.0), 100.0, 2.0, 9),
            "Active Browser"
        );
        assert_eq!(
            rule_segment(&r, &rfm(None, 0, 0.0), 100.0, 2.0, 4),
            "Occasional"
        );
    }
}
