//! Behavioural parameters: segments, devices, markets, banner arms, returns.
//!
//! The rates are *assumptions* calibrated to public e-commerce benchmarks, not
//! measured data. Sources used for the orders of magnitude:
//! * session conversion of fashion/luxury e-commerce ≈ 1–3 % (Dynamic Yield
//!   "Ecommerce benchmarks" fashion vertical; IRP Commerce fashion market data;
//!   Contentsquare Digital Experience Benchmark); we target ≈ 2.4 % overall;
//! * add-to-cart ≈ 8–12 % of product views (brief; consistent with Dynamic
//!   Yield's fashion add-to-cart rates once converted from sessions to views);
//! * cart abandonment ≈ 70–85 % (Baymard Institute average ≈ 70 %, higher on
//!   mobile and in luxury);
//! * online apparel return rates 20–40 %, highest for dresses/trousers/shoes
//!   and lowest for accessories (Coresight Research, NRF/Appriss "Consumer
//!   Returns" reports; Zalando reports ~50 % for its marketplace);
//! * mobile ≈ 55–65 % of fashion traffic but converts below desktop
//!   (Contentsquare benchmark); apps convert best.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// True (latent) lifecycle segment of a shopper. Static for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Recently acquired, few sessions so far.
    New,
    /// Visits often, buys rarely.
    ActiveBrowser,
    /// Loyal, high-AOV customer.
    HighValueReturning,
    /// Former buyer whose visits are dropping.
    AtRisk,
    /// Rarely comes back.
    Lapsed,
}

impl Segment {
    /// All segments in table order.
    pub const ALL: [Segment; 5] = [
        Segment::New,
        Segment::ActiveBrowser,
        Segment::HighValueReturning,
        Segment::AtRisk,
        Segment::Lapsed,
    ];

    /// Human label, e.g. "High-Value Returning".
    pub fn label(self) -> &'static str {
        match self {
            Segment::New => "New",
            Segment::ActiveBrowser => "Active Browser",
            Segment::HighValueReturning => "High-Value Returning",
            Segment::AtRisk => "At Risk",
            Segment::Lapsed => "Lapsed",
        }
    }

    /// Position in [`Segment::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Behavioural parameters of the segment.
    pub fn params(self) -> SegmentParams {
        SEGMENT_PARAMS[self.index()]
    }
}

/// Per-segment behaviour. With the population shares below, sessions split
/// ≈ 17/61/12/8/2 % and the expected session conversion is ≈ 2.4 %.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentParams {
    /// Share of the shopper population.
    pub population_share: f64,
    /// Mean sessions per week (Poisson process modulated by time of day).
    pub sessions_per_week: f64,
    /// Probability a non-converting session ends on its landing page.
    pub bounce_rate: f64,
    /// Mean product views in a non-bounced session.
    pub mean_product_views: f64,
    /// Probability that a session ends in a purchase (before device adjustment).
    pub session_conversion: f64,
    /// Base probability of add-to-cart per product view.
    pub add_to_cart_rate: f64,
    /// Median of the shopper's comfortable price band, EUR.
    pub price_band_median: f64,
    /// Multiplier on category return rates (bracketing by loyal customers).
    pub return_multiplier: f64,
    /// Probability the shopper has an account (registered `user_id`).
    pub registered_share: f64,
}

/// One row of the segment table, columns in the order of [`SEGMENT_PARAMS`].
const fn seg(r: [f64; 8]) -> SegmentParams {
    SegmentParams {
        population_share: r[0],
        sessions_per_week: r[1],
        bounce_rate: r[2],
        mean_product_views: r[3],
        session_conversion: r[4],
        add_to_cart_rate: ADD_TO_CART_BASE,
        price_band_median: r[5],
        return_multiplier: r[6],
        registered_share: r[7],
    }
}

/// Base add-to-cart probability per product view; the session model scales it
/// by affinity and price fit to an observed ≈ 10 % (band 8–12 %).
pub(crate) const ADD_TO_CART_BASE: f64 = 0.095;

/// Rows in [`Segment::ALL`] order. Columns: population share, sessions/week,
/// bounce rate, mean product views, session conversion, price-band median
/// (EUR), return multiplier, registered share. Session shares come out at
/// ≈ 17 / 61 / 12 / 8 / 2 %, conversion Σ ≈ 2.4 %.
#[rustfmt::skip]
const SEGMENT_PARAMS: [SegmentParams; 5] = [
    seg([0.25, 1.2, 0.45, 3.0, 0.024, 300.0, 1.0, 0.40]),  // New
    seg([0.30, 3.5, 0.30, 4.5, 0.016, 350.0, 1.0, 0.55]),  // Active Browser
    seg([0.10, 2.0, 0.20, 3.5, 0.075, 800.0, 1.15, 1.0]),  // High-Value Returning
    seg([0.20, 0.7, 0.45, 2.5, 0.018, 380.0, 1.0, 0.90]),  // At Risk
    seg([0.15, 0.2, 0.55, 2.0, 0.010, 300.0, 1.0, 0.85]),  // Lapsed
];

/// Device of a session: the event contract's own type.
pub use crate::event::Device;

/// Shopper devices: (device, traffic share, conversion multiplier).
pub(crate) const DEVICES: [(Device, f64, f64); 4] = [
    (Device::Mobile, 0.55, 0.8),
    (Device::Desktop, 0.30, 1.3),
    (Device::App, 0.10, 1.5),
    (Device::Tablet, 0.05, 1.0),
];

/// Traffic-weighted mean of the device multipliers, divided out so device mix
/// does not move the segment conversion targets.
pub(crate) fn device_conversion_factor(d: Device) -> f64 {
    let mean: f64 = DEVICES.iter().map(|x| x.1 * x.2).sum();
    DEVICES.iter().find(|x| x.0 == d).map_or(1.0, |x| x.2) / mean
}

/// Markets: (ISO code, share, site language, UTC offset in hours for the
/// time-of-day profile). Domestic majority, then key European markets and US.
pub(crate) const MARKETS: [(&str, f64, &str, i64); 10] = [
    ("IT", 0.55, "it", 1),
    ("GB", 0.08, "en", 0),
    ("DE", 0.08, "de", 1),
    ("CH", 0.07, "de", 1),
    ("FR", 0.07, "fr", 1),
    ("US", 0.07, "en", -5),
    ("ES", 0.03, "en", 1),
    ("NL", 0.02, "en", 1),
    ("AT", 0.015, "de", 1),
    ("JP", 0.015, "en", 9),
];

/// Relative session-start intensity by local hour (evening peak, night trough).
/// Normalised on use so the mean intensity equals 1.
pub(crate) const HOURLY_WEIGHTS: [f64; 24] = [
    0.35, 0.2, 0.12, 0.1, 0.1, 0.15, 0.3, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.3, 1.1, 1.0, 1.0, 1.1,
    1.3, 1.5, 1.7, 1.75, 1.4, 0.8,
];

/// Banner slot on the home page.
pub const HOME_HERO_SLOT: &str = "home_hero";

/// One creative competing for the `home_hero` slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BannerArm {
    /// Arm id used in banner events, e.g. `hero_sale`.
    pub arm_id: String,
    /// Always [`HOME_HERO_SLOT`].
    pub slot: String,
    /// Creative asset URL (placeholder domain).
    pub creative_url: String,
    /// Collection the banner promotes ([`crate::catalog::Collection::id`]).
    pub collection_id: String,
    /// Landing path after the locale, e.g. `sale` → `/it/sale`.
    pub landing_path: String,
    /// Campaign start (metadata; the simulator serves every arm at all times).
    pub campaign_start: DateTime<Utc>,
    /// Campaign end (metadata).
    pub campaign_end: DateTime<Utc>,
}

/// Arm ids in column order of the CTR table.
pub const ARM_IDS: [&str; 5] = [
    "hero_fw26_coats",
    "hero_sale",
    "hero_new_in",
    "hero_sneakers",
    "hero_atelier",
];

/// True click-through rate per (segment, arm), rows in [`Segment::ALL`] order,
/// columns in [`ARM_IDS`] order. Hero-banner CTRs of 1–8 % are typical of
/// above-the-fold home creatives; each segment has a different winner:
/// New → new-in, Active Browser → sneakers, High-Value → atelier,
/// At Risk → sale, Lapsed → FW26 coats.
pub const TRUE_BANNER_CTR: [[f64; 5]; 5] = [
    [0.025, 0.045, 0.060, 0.035, 0.012],
    [0.030, 0.050, 0.040, 0.065, 0.015],
    [0.040, 0.015, 0.045, 0.020, 0.080],
    [0.045, 0.070, 0.030, 0.025, 0.010],
    [0.035, 0.030, 0.020, 0.015, 0.010],
];

/// True CTR of `arm_id` for `segment`, `None` for an unknown arm.
pub fn true_banner_ctr(segment: Segment, arm_id: &str) -> Option<f64> {
    let col = ARM_IDS.iter().position(|a| *a == arm_id)?;
    Some(TRUE_BANNER_CTR[segment.index()][col])
}

/// The five `home_hero` arms with creative, linked collection and campaign window.
pub fn home_hero_arms() -> Vec<BannerArm> {
    let d = |y, m, day| {
        Utc.with_ymd_and_hms(y, m, day, 0, 0, 0)
            .single()
            .expect("valid constant date")
    };
    let rows = [
        ("FW26", "c/fw26-coats", d(2026, 9, 1), d(2027, 2, 28)),
        ("FW25", "sale", d(2026, 6, 25), d(2027, 1, 31)),
        ("SS27", "new-in", d(2026, 11, 1), d(2027, 3, 31)),
        ("ESSENTIALS", "sneakers", d(2026, 3, 1), d(2027, 3, 31)),
        ("CAPSULE-VENEZIA", "atelier", d(2026, 4, 1), d(2027, 3, 31)),
    ];
    ARM_IDS
        .iter()
        .zip(rows)
        .map(|(arm, (coll, landing, start, end))| BannerArm {
            arm_id: (*arm).to_string(),
            slot: HOME_HERO_SLOT.to_string(),
            creative_url: format!(
                "https://cdn.lusso.example/creatives/{HOME_HERO_SLOT}/{arm}_v1.jpg"
            ),
            collection_id: coll.to_string(),
            landing_path: landing.to_string(),
            campaign_start: start,
            campaign_end: end,
        })
        .collect()
}

/// Base probability that a purchased unit of a category is returned
/// (assumption following the benchmark ordering: fit-sensitive apparel and
/// shoes highest, accessories lowest). Multiplied by 1.25 for the extreme
/// sizes of a run, 0.8 for marked-down items and the segment multiplier.
pub fn category_return_rate(category_id: &str) -> f64 {
    match category_id {
        "dresses" => 0.42,
        "jeans" | "trousers-w" => 0.36,
        "skirts" | "shoes-w" => 0.34,
        "blouses" | "suits" | "trousers-m" | "jackets-w" | "coats-w" => 0.31,
        "shoes-m" | "jackets-m" | "coats-m" => 0.29,
        "knitwear-w" => 0.26,
        "shirts-m" | "knitwear-m" | "sneakers" | "kids-shoes" => 0.23,
        "swimwear" | "tshirts-w" | "kids-clothing" => 0.16,
        "tshirts-m" => 0.14,
        "bags" | "jewellery" => 0.12,
        "sunglasses" => 0.10,
        "belts" => 0.08,
        "scarves" => 0.07,
        _ => 0.25,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        let shares: f64 = Segment::ALL
            .iter()
            .map(|s| s.params().population_share)
            .sum();
        assert!((shares - 1.0).abs() < 1e-9);
        let m: f64 = MARKETS.iter().map(|m| m.1).sum();
        assert!((m - 1.0).abs() < 1e-9);
        let d: f64 = DEVICES.iter().map(|d| d.1).sum();
        assert!((d - 1.0).abs() < 1e-9);
        let weighted: f64 = DEVICES
            .iter()
            .map(|d| d.1 * device_conversion_factor(d.0))
            .sum();
        assert!((weighted - 1.0).abs() < 1e-9);
        for row in TRUE_BANNER_CTR {
            assert!(row.iter().all(|c| (0.01..=0.08).contains(c)));
        }
        // Every segment has a distinct best arm.
        let mut winners: Vec<usize> = TRUE_BANNER_CTR
            .iter()
            .map(|r| (0..5).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
            .collect();
        winners.sort_unstable();
        winners.dedup();
        assert_eq!(winners.len(), 5);
        assert_eq!(
            true_banner_ctr(Segment::HighValueReturning, "hero_atelier"),
            Some(0.08)
        );
        assert_eq!(true_banner_ctr(Segment::New, "nope"), None);
        let arms = home_hero_arms();
        assert_eq!(arms.len(), 5);
        assert!(arms.iter().all(|a| a.campaign_start < a.campaign_end));
    }

    #[test]
    fn expected_session_conversion_is_in_band() {
        // Hand-checkable: Σ share·freq·conv / Σ share·freq ≈ 2.4 %.
        let (mut num, mut den) = (0.0, 0.0);
        for s in Segment::ALL {
            let p = s.params();
            num += p.population_share * p.sessions_per_week * p.session_conversion;
            den += p.population_share * p.sessions_per_week;
        }
        let conv = num / den;
        assert!((0.022..0.027).contains(&conv), "{conv}");
    }
}
