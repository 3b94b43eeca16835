//! Results of an experiment per variant, from the event log.
//!
//! [`results`] scans the window once ([`EventLog::scan`], `(ts, event_id)` order, starting at `since`
//! rather than the beginning of the log) and folds it into one small record per exposed unit; the
//! statistics are [`summarise`], a pure function of those records.
//!
//! Definitions:
//! - a *unit* is the exposure event's `user_id`, else its `anonymous_id` (users and anonymous ids are
//!   separate units); its variant is that of its first exposure in the window (later exposures to another
//!   variant, e.g. after a weight change, are ignored), exposures to variants the experiment no longer
//!   has are counted in [`ExperimentResults::unknown_variant_exposures`] and otherwise ignored;
//! - a unit *converts* when a `purchase` strictly after its first exposure (ts in milliseconds; a
//!   purchase in the same millisecond does not count) and no later than `until` carries its `user_id`
//!   (checked first) or its `anonymous_id`. A purchase is credited to at most one unit;
//! - *revenue per visitor* is the sum of the unit's attributed purchase totals in EUR
//!   (`features::attrs::eur_per_unit`; a purchase in another currency converts but adds no revenue, and
//!   is counted in [`ExperimentResults::purchases_unknown_currency`]), averaged over exposed units,
//!   zeros included.
//!
//! Memory: one record per distinct unit (≈ 100 B with its id and hash-map overhead); at most
//! [`MAX_TRACKED_UNITS`] (≈ 500 MB) — a window with more units fails with [`Error::Unavailable`] asking
//! for a shorter window, rather than exhausting the replica.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pipelines::event::{Event, Properties};
use pipelines::log::{EventLog, ScanCursor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Experiment;
use crate::{Error, Result};

/// Most distinct exposed units one computation tracks (see the module doc for the memory it implies).
pub const MAX_TRACKED_UNITS: usize = 5_000_000;
/// Events per [`EventLog::scan`] page (the training replays use the same page size).
pub const SCAN_PAGE_EVENTS: usize = 50_000;
/// Two-sided 95 % normal quantile (1.959964…, rounded as conventionally reported).
pub const Z_95: f64 = 1.96;

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// What [`summarise`] needs of one exposed unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitOutcome {
    /// Index of the unit's variant in the experiment's variants.
    pub variant: usize,
    pub converted: bool,
    /// Attributed purchase totals, EUR.
    pub revenue_eur: f64,
}

/// The statistics of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VariantResult {
    pub variant: String,
    /// Distinct exposed units.
    pub exposed_units: u64,
    /// Exposed units with a purchase after their first exposure.
    pub converted_units: u64,
    /// `converted_units / exposed_units` (`None` without exposed units).
    pub conversion_rate: Option<f64>,
    /// 95 % Wilson score interval of the conversion rate.
    pub conversion_interval: Option<Interval>,
    /// Attributed revenue, EUR.
    pub revenue_eur: f64,
    /// Mean revenue over exposed units (zeros included), EUR.
    pub revenue_per_visitor_eur: Option<f64>,
    /// Sample standard deviation (n − 1) of revenue over exposed units, EUR; needs 2 units.
    pub revenue_per_visitor_sd: Option<f64>,
    /// 95 % normal-approximation interval `mean ± 1.96 · sd / √n` (not clipped at 0); needs 2 units.
    pub revenue_per_visitor_interval: Option<Interval>,
    /// `(cr − cr_control) / cr_control`; `None` for the control and when the control's rate is 0.
    pub conversion_lift: Option<f64>,
    /// `(rpv − rpv_control) / rpv_control`; `None` for the control and when the control's RPV is 0.
    pub revenue_per_visitor_lift: Option<f64>,
    /// Two-sided p-value of the pooled two-proportion z-test of this variant's conversion against the
    /// control's (1 when both rates are 0 or both 1); `None` for the control or without units on a side.
    pub conversion_p_value: Option<f64>,
}

/// The results of an experiment over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExperimentResults {
    pub experiment: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The first variant, which lifts and p-values compare against.
    pub control: String,
    /// In the experiment's variant order.
    pub variants: Vec<VariantResult>,
    /// Events read from the log in the window (all types).
    pub events_scanned: u64,
    /// Exposure events of this experiment read (before de-duplication into units).
    pub exposures: u64,
    /// Exposure events naming a variant the experiment does not have (ignored).
    pub unknown_variant_exposures: u64,
    /// Purchases credited to an exposed unit.
    pub purchases_attributed: u64,
    /// Credited purchases in a currency without an EUR rate (conversion counted, revenue not).
    pub purchases_unknown_currency: u64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    n: u64,
    converted: u64,
    sum: f64,
    mean: f64,
    m2: f64,
}

/// The per-variant statistics of exposed units (`variant_keys[0]` is the control). Units whose variant
/// index is out of range are ignored. Variance uses Welford's update, stable for large counts.
pub fn summarise(
    variant_keys: &[String],
    units: impl IntoIterator<Item = UnitOutcome>,
) -> Vec<VariantResult> {
    let mut acc = vec![Acc::default(); variant_keys.len()];
    for u in units {
        let Some(a) = acc.get_mut(u.variant) else {
            continue;
        };
        a.n += 1;
        a.converted += u64::from(u.converted);
        a.sum += u.revenue_eur;
        let delta = u.revenue_eur - a.mean;
        a.mean += delta / a.n as f64;
        a.m2 += delta * (u.revenue_eur - a.mean);
    }
    let rate = |a: &Acc| (a.n > 0).then(|| a.converted as f64 / a.n as f64);
    let rpv = |a: &Acc| (a.n > 0).then(|| a.sum / a.n as f64);
    let lift = |v: Option<f64>, c: Option<f64>| match (v, c) {
        (Some(v), Some(c)) if c > 0.0 => Some((v - c) / c),
        _ => None,
    };
    let control = acc.first().copied().unwrap_or_default();
    variant_keys
        .iter()
        .zip(&acc)
        .enumerate()
        .map(|(i, (key, a))| {
            let sd = (a.n >= 2).then(|| (a.m2.max(0.0) / (a.n - 1) as f64).sqrt());
            let is_treatment = i > 0;
            VariantResult {
                variant: key.clone(),
                exposed_units: a.n,
                converted_units: a.converted,
                conversion_rate: rate(a),
                conversion_interval: wilson(a.converted, a.n),
                revenue_eur: a.sum,
                revenue_per_visitor_eur: rpv(a),
                revenue_per_visitor_sd: sd,
                revenue_per_visitor_interval: sd.map(|s| {
                    let mean = a.sum / a.n as f64;
                    let half = Z_95 * s / (a.n as f64).sqrt();
                    Interval {
                        low: mean - half,
                        high: mean + half,
                    }
                }),
                conversion_lift: lift(rate(a), rate(&control)).filter(|_| is_treatment),
                revenue_per_visitor_lift: lift(rpv(a), rpv(&control)).filter(|_| is_treatment),
                conversion_p_value: if is_treatment {
                    two_proportion_p(control.converted, control.n, a.converted, a.n)
                } else {
                    None
                },
            }
        })
        .collect()
}

/// 95 % Wilson score interval of `x` successes in `n` trials:
/// `(p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)` with `p = x/n`, `z` = [`Z_95`].
pub fn wilson(x: u64, n: u64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let (n, p, z2) = (n as f64, x as f64 / n as f64, Z_95 * Z_95);
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Two-sided p-value of the pooled two-proportion z-test: `z = (p2 − p1) / √(p̂(1−p̂)(1/n1 + 1/n2))`,
/// `p̂ = (x1 + x2)/(n1 + n2)`, `p = erfc(|z|/√2)`.
pub fn two_proportion_p(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se <= 0.0 {
        return Some(1.0);
    }
    let z = (x2 as f64 / n2f - x1 as f64 / n1f) / se;
    Some(erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0))
}

/// The complementary error function, Chebyshev fit with fractional error < 1.2e-7 everywhere
/// (Press et al., *Numerical Recipes*, 2nd ed., §6.2, `erfcc`).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

struct UnitState {
    variant: usize,
    first_ms: i64,
    converted: bool,
    revenue_eur: f64,
}

#[derive(Default)]
struct Fold {
    users: HashMap<String, UnitState>,
    anons: HashMap<String, UnitState>,
    scanned: u64,
    exposures: u64,
    unknown_variant: u64,
    attributed: u64,
    unknown_currency: u64,
}

impl Fold {
    fn push(&mut self, exp: &Experiment, e: &Event, max_units: usize) -> Result<()> {
        self.scanned += 1;
        let ts = e.ts.timestamp_millis();
        match &e.properties {
            Properties::ExperimentExposure(x) if x.experiment == exp.key => {
                self.exposures += 1;
                let Some(variant) = exp.variants.iter().position(|v| v.key == x.variant) else {
                    self.unknown_variant += 1;
                    return Ok(());
                };
                let is_user = nonempty(&e.user_id).is_some();
                let Some(id) = nonempty(&e.user_id).or(nonempty(&e.anonymous_id)) else {
                    return Ok(());
                };
                let tracked = self.users.len() + self.anons.len();
                let map = if is_user {
                    &mut self.users
                } else {
                    &mut self.anons
                };
                if map.contains_key(id) {
                    return Ok(()); // the first exposure (earliest: the scan is in ts order) decides
                }
                if tracked >= max_units {
                    return Err(Error::Unavailable(format!(
                        "experiment `{}`: more than {max_units} distinct units in the window; ask for a \
                         shorter window",
                        exp.key
                    )));
                }
                map.insert(
                    id.to_string(),
                    UnitState {
                        variant,
                        first_ms: ts,
                        converted: false,
                        revenue_eur: 0.0,
                    },
                );
            }
            Properties::Purchase(p) => {
                let exposed_before = |u: &&mut UnitState| u.first_ms < ts;
                let unit = match nonempty(&e.user_id).and_then(|u| self.users.get_mut(u)) {
                    Some(u) if exposed_before(&u) => Some(u),
                    _ => nonempty(&e.anonymous_id)
                        .and_then(|a| self.anons.get_mut(a))
                        .filter(exposed_before),
                };
                if let Some(unit) = unit {
                    unit.converted = true;
                    self.attributed += 1;
                    match features::attrs::eur_per_unit(&p.currency) {
                        Some(rate) => unit.revenue_eur += p.total * rate,
                        None => self.unknown_currency += 1,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The results of `exp` over exposures and purchases with `since ≤ ts ≤ until`, bounded at
/// [`MAX_TRACKED_UNITS`] units.
pub async fn results(
    log: &dyn EventLog,
    exp: &Experiment,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<ExperimentResults> {
    results_bounded(log, exp, since, until, MAX_TRACKED_UNITS).await
}

/// [`results`] with another unit bound (tests use small bounds).
pub async fn results_bounded(
    log: &dyn EventLog,
    exp: &Experiment,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    max_units: usize,
) -> Result<ExperimentResults> {
    if since > until {
        return Err(Error::bad("since", "must not be after `until`"));
    }
    // Just before `since`: the scan is strictly after the cursor in (ts, event_id) order, and no event id
    // sorts after the maximal UUID, so the first event read is the first with ts ≥ since.
    let mut after = Some(ScanCursor {
        ts_ms: since.timestamp_millis() - 1,
        event_id: Uuid::max(),
    });
    let mut fold = Fold::default();
    loop {
        let page = log.scan(until, after, SCAN_PAGE_EVENTS).await?;
        for e in &page {
            fold.push(exp, e, max_units)?;
        }
        match page.last() {
            Some(last) if page.len() == SCAN_PAGE_EVENTS => after = Some(ScanCursor::of(last)),
            _ => break,
        }
    }
    let keys: Vec<String> = exp.variants.iter().map(|v| v.key.clone()).collect();
    let units = fold
        .users
        .values()
        .chain(fold.anons.values())
        .map(|u| UnitOutcome {
            variant: u.variant,
            converted: u.converted,
            revenue_eur: u.revenue_eur,
        });
    Ok(ExperimentResults {
        experiment: exp.key.clone(),
        since,
        until,
        control: keys.first().cloned().unwrap_or_default(),
        variants: summarise(&keys, units),
        events_scanned: fold.scanned,
        exposures: fold.exposures,
        unknown_variant_exposures: fold.unknown_variant,
        purchases_attributed: fold.attributed,
        purchases_unknown_currency: fold.unknown_currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    fn unit(variant: usize, revenue_eur: f64) -> UnitOutcome {
        UnitOutcome {
            variant,
            converted: revenue_eur > 0.0,
            revenue_eur,
        }
    }

    /// Control `a`: 3 units, one converted for 100 EUR. Treatment `b`: 4 units, 50 and 250 EUR.
    ///
    /// Control, by hand (z = 1.96, z² = 3.8416):
    /// - CR = 1/3; Wilson: z²/n = 1.280533, denominator 2.280533, centre (0.333333 + 0.640267) / 2.280533
    ///   = 0.426916, half-width 1.96 · √(0.222222/3 + 3.8416/36) / 2.280533 = 1.96 · 0.425188 / 2.280533
    ///   = 0.365426 → [0.061490, 0.792345];
    /// - RPV = 100/3 = 33.333333; s = √(((100 − 33.33)² + 2 · 33.33²) / 2) = √3333.33 = 57.735027;
    ///   interval 33.333333 ± 1.96 · 57.735027 / √3 = 33.333333 ± 65.333333 → [−32, 98.666667].
    ///
    /// Treatment: CR 2/4 = 0.5, Wilson [0.150036, 0.849964]; RPV 75, s = √((25² + 175² + 75² + 75²) / 3)
    /// = √14166.67 = 119.023807, interval 75 ± 1.96 · 119.023807 / 2 = [−41.643331, 191.643331]; CR lift
    /// (0.5 − 1/3) / (1/3) = 0.5; RPV lift (75 − 33.33) / 33.33 = 1.25; pooled p̂ = 3/7, se =
    /// √(3/7 · 4/7 · (1/3 + 1/4)) = 0.377964, z = 0.166667 / 0.377964 = 0.440959, p = erfc(z/√2) = 0.659243.
    #[test]
    fn summarise_by_hand() {
        let keys = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let units = [
            unit(0, 100.0),
            unit(0, 0.0),
            unit(0, 0.0),
            unit(1, 50.0),
            unit(1, 250.0),
            unit(1, 0.0),
            unit(1, 0.0),
            unit(7, 10.0), // out of range: ignored
        ];
        let r = summarise(&keys, units);
        let (a, b, c) = (&r[0], &r[1], &r[2]);
        assert_eq!(
            (a.exposed_units, a.converted_units, a.revenue_eur),
            (3, 1, 100.0)
        );
        assert!(close(a.conversion_rate.unwrap(), 1.0 / 3.0));
        let ci = a.conversion_interval.unwrap();
        assert!(
            close(ci.low, 0.061_490_315) && close(ci.high, 0.792_345_045),
            "{ci:?}"
        );
        assert!(close(a.revenue_per_visitor_eur.unwrap(), 33.333_333_333));
        assert!(close(a.revenue_per_visitor_sd.unwrap(), 57.735_026_919));
        let rpv = a.revenue_per_visitor_interval.unwrap();
        assert!(
            close(rpv.low, -32.0) && close(rpv.high, 98.666_666_667),
            "{rpv:?}"
        );
        assert_eq!((a.conversion_lift, a.conversion_p_value), (None, None));

        assert_eq!((b.exposed_units, b.converted_units), (4, 2));
        let ci = b.conversion_interval.unwrap();
        assert!(
            close(ci.low, 0.150_035_709) && close(ci.high, 0.849_964_291),
            "{ci:?}"
        );
        assert!(close(b.revenue_per_visitor_sd.unwrap(), 119.023_807_142));
        let rpv = b.revenue_per_visitor_interval.unwrap();
        assert!(
            close(rpv.low, -41.643_331) && close(rpv.high, 191.643_331),
            "{rpv:?}"
        );
        assert!(close(b.conversion_lift.unwrap(), 0.5));
        assert!(close(b.revenue_per_visitor_lift.unwrap(), 1.25));
        assert!(close(b.conversion_p_value.unwrap(), 0.659_243_004), "{b:?}");

        assert_eq!(
            (c.exposed_units, c.conversion_rate, c.conversion_interval),
            (0, None, None)
        );
        assert_eq!(
            (c.revenue_per_visitor_interval, c.conversion_p_value),
            (None, None)
        );
    }

    #[test]
    fn proportions_and_intervals_at_the_edges() {
        // 100/1000 vs 130/1000: z = 2.102741, p = 0.035488 (Python math.erfc).
        assert!((two_proportion_p(100, 1000, 130, 1000).unwrap() - 0.035_488_450).abs() < 1e-6);
        assert_eq!(two_proportion_p(0, 10, 0, 12), Some(1.0));
        assert_eq!(two_proportion_p(0, 0, 1, 2), None);
        // 0/2: [0, 0.657628]; 2/2: [0.342372, 1].
        let w = wilson(0, 2).unwrap();
        assert!(close(w.low, 0.0) && close(w.high, 0.657_628_047));
        let w = wilson(2, 2).unwrap();
        assert!(close(w.low, 0.342_371_953) && close(w.high, 1.0));
        assert!((erfc(0.0) - 1.0).abs() < 1e-7 && (erfc(-1.0) - 1.842_700_79).abs() < 1e-6);
        // One unit: no standard deviation, so no RPV interval.
        let one = summarise(&["a".to_string()], [unit(0, 5.0)]);
        assert_eq!(
            (
                one[0].revenue_per_visitor_sd,
                one[0].revenue_per_visitor_interval
            ),
            (None, None)
        );
    }
}
