//! Ground truth of a simulation, for offline checks of segmentation,
//! recommendation and bandit components.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::params::{home_hero_arms, BannerArm, Device, Segment, SegmentParams, ARM_IDS, MARKETS};
use super::shopper::{dot, EMBED_DIM};
use super::world::World;
use crate::catalog::{Department, SizeSystem};

/// Latent truth about one shopper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserTruth {
    /// Stable anonymous id (present on every event of this shopper).
    pub anonymous_id: String,
    /// Registered id `U0000123`, `None` for anonymous-only shoppers.
    pub user_id: Option<String>,
    /// True segment (static for the run).
    pub segment: Segment,
    /// ISO 3166-1 alpha-2 market.
    pub market: String,
    /// Primary device (80 % of sessions; the rest follow the traffic mix).
    pub device: Device,
    /// Department the shopper mainly buys for (donna / uomo).
    pub department: Department,
    /// Also shops kidswear.
    pub shops_kids: bool,
    /// Taste vector (`EMBED_DIM` values; dim 0 = price appetite).
    pub taste: Vec<f32>,
    /// The three categories the taste vector was built from.
    pub favourite_categories: Vec<String>,
    /// Three categories with the highest affinity (taste · category centroid).
    pub top_categories: Vec<String>,
    /// Favourite line ids.
    pub preferred_lines: Vec<String>,
    /// Favourite colour codes.
    pub preferred_colours: Vec<String>,
    /// Comfortable price band `[min, max]` in EUR.
    pub price_band_eur: [f64; 2],
    /// Usual size per relevant size system (e.g. `"it_women": "42"`).
    pub preferred_sizes: BTreeMap<String, String>,
}

/// Truth about one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentTruth {
    /// Segment id.
    pub segment: Segment,
    /// Human label.
    pub label: String,
    /// Behavioural parameters.
    pub params: SegmentParams,
    /// True CTR per `home_hero` arm id.
    pub banner_ctr: BTreeMap<String, f64>,
    /// Arm with the highest true CTR.
    pub best_arm: String,
}

/// Everything the simulator knows that the platform should have to learn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Simulator seed.
    pub seed: u64,
    /// Seed of the catalogue the simulation ran on.
    pub catalog_seed: u64,
    /// Simulated clock start.
    pub start: DateTime<Utc>,
    /// Length of taste / embedding vectors.
    pub embedding_dim: usize,
    /// Per-segment parameters and banner CTRs.
    pub segments: Vec<SegmentTruth>,
    /// The `home_hero` arms.
    pub banner_arms: Vec<BannerArm>,
    /// Per-shopper truth, in shopper order.
    pub users: Vec<UserTruth>,
    /// Product id → embedding (`true affinity = taste · embedding`).
    pub product_embeddings: BTreeMap<String, Vec<f32>>,
}

impl GroundTruth {
    /// Writes pretty-printed JSON to `path`.
    pub fn write_json(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(file, self).map_err(std::io::Error::other)
    }

    /// Map anonymous id → user truth (index for joining events).
    pub fn users_by_anonymous_id(&self) -> BTreeMap<&str, &UserTruth> {
        self.users
            .iter()
            .map(|u| (u.anonymous_id.as_str(), u))
            .collect()
    }

    /// True CTR of `arm_id` for `segment`.
    pub fn banner_ctr(&self, segment: Segment, arm_id: &str) -> Option<f64> {
        let s = self.segments.iter().find(|s| s.segment == segment)?;
        s.banner_ctr.get(arm_id).copied()
    }

    /// True affinity (taste · embedding) of a shopper for a product.
    pub fn affinity(&self, anonymous_id: &str, product_id: &str) -> Option<f32> {
        let u = self.users.iter().find(|u| u.anonymous_id == anonymous_id)?;
        let e = self.product_embeddings.get(product_id)?;
        Some(u.taste.iter().zip(e).map(|(a, b)| a * b).sum())
    }
}

fn size_key(s: SizeSystem) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn build(w: &World, seed: u64, start: DateTime<Utc>) -> GroundTruth {
    let cat = &w.catalog;
    let segments = Segment::ALL
        .iter()
        .map(|&s| {
            let row = super::params::TRUE_BANNER_CTR[s.index()];
            let best = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            SegmentTruth {
                segment: s,
                label: s.label().to_string(),
                params: s.params(),
                banner_ctr: ARM_IDS
                    .iter()
                    .zip(row)
                    .map(|(a, c)| (a.to_string(), c))
                    .collect(),
                best_arm: ARM_IDS[best].to_string(),
            }
        })
        .collect();
    let users = w
        .shoppers
        .iter()
        .map(|s| {
            let mut ranked: Vec<(f32, usize)> = w
                .centroids
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.map(|c| (dot(&s.taste, &c), i)))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (clothing, shoes) = match s.department {
                Department::Uomo => (SizeSystem::ItMen, SizeSystem::ShoesMen),
                _ => (SizeSystem::ItWomen, SizeSystem::ShoesWomen),
            };
            let preferred_sizes = [clothing, SizeSystem::Letter, SizeSystem::Jeans, shoes]
                .into_iter()
                .map(|sys| (size_key(sys), s.preferred_size(sys).to_string()))
                .collect();
            UserTruth {
                anonymous_id: s.anonymous_id.clone(),
                user_id: s.user_id.clone(),
                segment: s.segment,
                market: MARKETS[s.market].0.to_string(),
                device: s.device,
                department: s.department,
                shops_kids: s.shops_kids,
                taste: s.taste.to_vec(),
                favourite_categories: s
                    .fav_categories
                    .iter()
                    .map(|&i| cat.categories()[i].id.clone())
                    .collect(),
                top_categories: ranked
                    .iter()
                    .take(3)
                    .map(|(_, i)| cat.categories()[*i].id.clone())
                    .collect(),
                preferred_lines: s
                    .fav_lines
                    .iter()
                    .map(|&i| cat.lines()[i].id.clone())
                    .collect(),
                preferred_colours: s
                    .fav_colours
                    .iter()
                    .map(|&i| cat.colours()[i].code.clone())
                    .collect(),
                price_band_eur: [s.price_band.0.round(), s.price_band.1.round()],
                preferred_sizes,
            }
        })
        .collect();
    let product_embeddings = cat
        .iter()
        .zip(&w.emb.product)
        .map(|(p, e)| (p.id.clone(), e.to_vec()))
        .collect();
    GroundTruth {
        seed,
        catalog_seed: cat.seed(),
        start,
        embedding_dim: EMBED_DIM,
        segments,
        banner_arms: home_hero_arms(),
        users,
        product_embeddings,
    }
}
