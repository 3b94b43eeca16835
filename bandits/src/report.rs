//! What merchandisers read: per slot and segment, each arm's traffic, click and conversion rates with 95 %
//! intervals, revenue per impression, the current winner and how sure we are; and off-policy estimates of
//! what another policy would have earned on the same traffic.
//!
//! Definitions (also in ARCHITECTURE):
//! - `share` = the arm's decisions / the segment's decisions in the window;
//! - `ctr` = clicks / decisions and `cvr` = conversions (an attributed purchase not fully returned) /
//!   decisions, each with a 95 % Wilson score interval;
//! - `revenue_per_impression` = net attributed revenue (EUR) / decisions;
//! - `prob_best` = P(the arm has the highest mean reward) under the Beta posteriors of the segment,
//!   estimated with 10,000 Monte-Carlo draws (seeded by the slot version and ledger position, so a report
//!   is reproducible); the winner is the arm with the highest `prob_best`, and the verdict reads "sure"
//!   at ≥ 0.95, "likely" at ≥ 0.75, else "not yet".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::context::SEGMENTS;
use crate::ope;
use crate::policy::{prob_best, SlotModel};
use crate::slot::{AuditEntry, Slot};
use crate::store::{AggRow, Logged};
use crate::{Error, Result};

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;
/// Monte-Carlo draws behind `prob_best`.
pub const PROB_BEST_DRAWS: usize = 10_000;

/// A proportion with its 95 % Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Wilson score interval of `k` successes in `n` trials (`0, 0, 1` when `n` = 0).
pub fn wilson(k: u64, n: u64) -> Rate {
    if n == 0 {
        return Rate {
            value: 0.0,
            lower: 0.0,
            upper: 1.0,
        };
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Rate {
        value: p,
        lower: (centre - half).max(0.0),
        upper: (centre + half).min(1.0),
    }
}

/// One arm in one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub arm_id: String,
    pub decisions: u64,
    pub share: f64,
    pub clicks: u64,
    pub ctr: Rate,
    pub conversions: u64,
    pub cvr: Rate,
    pub revenue: f64,
    pub revenue_per_impression: f64,
    /// Posterior mean reward (prior included) from everything learned, not only the window.
    pub posterior_mean: f64,
    pub prob_best: f64,
}

/// Decisions per arm in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub bucket: DateTime<Utc>,
    /// Arm id → decisions (every arm of the slot present, 0 when none).
    pub decisions: BTreeMap<String, u64>,
}

/// One segment of a slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentReport {
    pub segment: String,
    pub decisions: u64,
    pub arms: Vec<ArmReport>,
    pub winner: Option<String>,
    pub winner_prob_best: f64,
    /// "sure", "likely" or "not yet".
    pub verdict: String,
    /// The arm a merchandiser forced for this segment, if any.
    pub forced: Option<String>,
    pub series: Vec<SeriesPoint>,
}

/// An arm's configuration and state as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmInfo {
    pub arm_id: String,
    pub creative_url: String,
    pub collection_id: String,
    pub live: bool,
    pub paused: bool,
    pub traffic_floor: f64,
    pub campaign_start: Option<DateTime<Utc>>,
    pub campaign_end: Option<DateTime<Utc>>,
}

/// `GET /v1/bandits/{slot}/report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotReport {
    pub slot: String,
    pub version: u64,
    pub policy: String,
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket_secs: i64,
    pub arms: Vec<ArmInfo>,
    /// All segments together first (segment `All`), then each segment with decisions in the window.
    pub segments: Vec<SegmentReport>,
    pub audit: Vec<AuditEntry>,
}

/// Builds the report from the window's counts and the learned model.
#[allow(clippy::too_many_arguments)]
pub fn build(
    model: &SlotModel,
    rows: &[AggRow],
    audit: Vec<AuditEntry>,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_secs: i64,
) -> SlotReport {
    let slot = model.slot();
    let arms: Vec<ArmInfo> = slot
        .arms
        .iter()
        .map(|a| ArmInfo {
            arm_id: a.arm_id.clone(),
            creative_url: a.creative_url.clone(),
            collection_id: a.collection_id.clone(),
            live: a.is_live(now),
            paused: a.paused,
            traffic_floor: slot.floor_of(a),
            campaign_start: a.campaign_start,
            campaign_end: a.campaign_end,
        })
        .collect();
    let mut seed = ChaCha8Rng::seed_from_u64(slot.version ^ (model.ledger_seq() << 20));
    let mut segments = vec![segment_report(model, "All", rows, &mut seed)];
    for s in SEGMENTS {
        let mine: Vec<AggRow> = rows.iter().filter(|r| r.segment == s).cloned().collect();
        if !mine.is_empty() || slot.forced.contains_key(s) {
            segments.push(segment_report(model, s, &mine, &mut seed));
        }
    }
    SlotReport {
        slot: slot.slot.clone(),
        version: slot.version,
        policy: slot.policy_label(model.ledger_seq()),
        generated_at: now,
        since,
        until,
        bucket_secs,
        arms,
        segments,
        audit,
    }
}

fn segment_report(
    model: &SlotModel,
    segment: &str,
    rows: &[AggRow],
    rng: &mut ChaCha8Rng,
) -> SegmentReport {
    let slot = model.slot();
    let total: u64 = rows.iter().map(|r| r.decisions).sum();
    // Posteriors: the segment's own, or for `All` the sum over segments (prior counted once).
    let posteriors: Vec<_> = slot
        .arms
        .iter()
        .map(|a| match SEGMENTS.iter().position(|s| *s == segment) {
            Some(i) => model.posterior(i, &a.arm_id),
            None => {
                let mut p = model.posterior(0, &a.arm_id);
                for i in 1..SEGMENTS.len() {
                    let q = model.posterior(i, &a.arm_id);
                    p.alpha += q.rewards;
                    p.beta += q.trials - q.rewards;
                    p.rewards += q.rewards;
                    p.trials += q.trials;
                }
                p
            }
        })
        .collect();
    let best = prob_best(&posteriors, PROB_BEST_DRAWS, rng);
    let mut arms = Vec::with_capacity(slot.arms.len());
    for (i, a) in slot.arms.iter().enumerate() {
        let mine = rows.iter().filter(|r| r.arm_id == a.arm_id);
        let (mut n, mut c, mut v, mut rev) = (0u64, 0u64, 0u64, 0.0);
        for r in mine {
            n += r.decisions;
            c += r.clicks;
            v += r.conversions;
            rev += r.revenue;
        }
        arms.push(ArmReport {
            arm_id: a.arm_id.clone(),
            decisions: n,
            share: if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            },
            clicks: c,
            ctr: wilson(c, n),
            conversions: v,
            cvr: wilson(v, n),
            revenue: rev,
            revenue_per_impression: if n > 0 { rev / n as f64 } else { 0.0 },
            posterior_mean: posteriors[i].mean(),
            prob_best: best.get(i).copied().unwrap_or(0.0),
        });
    }
    let winner = arms
        .iter()
        .max_by(|a, b| a.prob_best.total_cmp(&b.prob_best))
        .map(|a| (a.arm_id.clone(), a.prob_best));
    let wp = winner.as_ref().map_or(0.0, |w| w.1);
    let verdict = if wp >= 0.95 {
        "sure"
    } else if wp >= 0.75 {
        "likely"
    } else {
        "not yet"
    };
    let mut buckets: BTreeMap<DateTime<Utc>, BTreeMap<String, u64>> = BTreeMap::new();
    for r in rows {
        let b = buckets
            .entry(r.bucket)
            .or_insert_with(|| slot.arms.iter().map(|a| (a.arm_id.clone(), 0)).collect());
        *b.entry(r.arm_id.clone()).or_insert(0) += r.decisions;
    }
    SegmentReport {
        segment: segment.to_string(),
        decisions: total,
        arms,
        winner: winner.map(|w| w.0),
        winner_prob_best: wp,
        verdict: verdict.to_string(),
        forced: slot.forced.get(segment).cloned(),
        series: buckets
            .into_iter()
            .map(|(bucket, decisions)| SeriesPoint { bucket, decisions })
            .collect(),
    }
}

/// A candidate policy for off-policy evaluation on a slot's decision log.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidate {
    /// Every live arm equally.
    Uniform,
    /// Always this arm.
    Arm(String),
    /// Per segment, the arm with the highest posterior mean now.
    Greedy,
    /// Per segment, Thompson sampling's distribution now (P(best) under the posteriors).
    Thompson,
}

impl Candidate {
    /// Parses `uniform`, `greedy`, `thompson` or `arm:ARM_ID`.
    pub fn parse(s: &str, slot: &Slot) -> Result<Candidate> {
        match s {
            "uniform" => Ok(Candidate::Uniform),
            "greedy" => Ok(Candidate::Greedy),
            "thompson" => Ok(Candidate::Thompson),
            _ => match s.strip_prefix("arm:") {
                Some(a) if slot.arm_index(a).is_some() => Ok(Candidate::Arm(a.to_string())),
                Some(a) => Err(Error::bad(
                    "policy",
                    format!("`{a}` is not an arm of slot `{}`", slot.slot),
                )),
                None => Err(Error::bad(
                    "policy",
                    format!("`{s}` must be uniform, greedy, thompson or arm:ARM_ID"),
                )),
            },
        }
    }

    fn label(&self) -> String {
        match self {
            Candidate::Uniform => "uniform".into(),
            Candidate::Arm(a) => format!("arm:{a}"),
            Candidate::Greedy => "greedy".into(),
            Candidate::Thompson => "thompson".into(),
        }
    }

    /// The candidate's distribution over the slot's arms for a segment (index in [`SEGMENTS`]).
    fn distribution(&self, model: &SlotModel, segment: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let arms = &model.slot().arms;
        let n = arms.len();
        match self {
            Candidate::Uniform => vec![1.0 / n as f64; n],
            Candidate::Arm(id) => arms
                .iter()
                .map(|a| if &a.arm_id == id { 1.0 } else { 0.0 })
                .collect(),
            Candidate::Greedy => {
                let means: Vec<f64> = arms
                    .iter()
                    .map(|a| model.posterior(segment, &a.arm_id).mean())
                    .collect();
                let best = (0..n)
                    .max_by(|a, b| means[*a].total_cmp(&means[*b]))
                    .unwrap_or(0);
                (0..n).map(|i| if i == best { 1.0 } else { 0.0 }).collect()
            }
            Candidate::Thompson => {
                let ps: Vec<_> = arms
                    .iter()
                    .map(|a| model.posterior(segment, &a.arm_id))
                    .collect();
                prob_best(&ps, PROB_BEST_DRAWS, rng)
            }
        }
    }
}

/// Off-policy estimates for one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentOpe {
    pub segment: String,
    pub rounds: usize,
    /// Mean reward the logged policy earned.
    pub logged_value: f64,
    pub ipw: ope::Estimate,
    pub snipw: ope::Estimate,
    pub dm: ope::Estimate,
    pub dr: ope::Estimate,
}

/// `GET /v1/bandits/{slot}/ope`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpeReport {
    pub slot: String,
    pub policy: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// `All` first, then each segment with logged decisions.
    pub segments: Vec<SegmentOpe>,
}

/// Evaluates `candidate` on `logged` (the slot's learned decisions), overall and per segment, with the
/// estimators of [`crate::ope`] (one position; the reward model is the empirical mean per arm).
pub fn off_policy(
    model: &SlotModel,
    candidate: &Candidate,
    logged: &[Logged],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    spec: ope::IntervalSpec,
) -> Result<OpeReport> {
    let slot = model.slot();
    let n_actions = slot.arms.len();
    if n_actions == 0 {
        return Err(Error::Conflict(format!("slot `{}` has no arms", slot.slot)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(spec.seed));
    let mut by_segment: BTreeMap<usize, Vec<ope::Round>> = BTreeMap::new();
    for l in logged {
        let Some(action) = slot.arm_index(&l.arm_id) else {
            continue; // an arm since removed from the slot: no candidate can choose it
        };
        let seg = SEGMENTS
            .iter()
            .position(|s| *s == l.segment)
            .unwrap_or(SEGMENTS.len() - 1);
        by_segment.entry(seg).or_default().push(ope::Round {
            action,
            position: 0,
            reward: l.reward,
            pscore: l.propensity,
        });
    }
    let mut segments = Vec::new();
    // `All`: each round weighted by its own segment's candidate distribution.
    let dists: BTreeMap<usize, Vec<f64>> = by_segment
        .keys()
        .map(|seg| (*seg, candidate.distribution(model, *seg, &mut rng)))
        .collect();
    let mut all_rounds = Vec::new();
    let mut all_dists = Vec::new();
    for (seg, rounds) in &by_segment {
        for r in rounds {
            all_rounds.push(*r);
            all_dists.push(dists[seg].clone());
        }
    }
    if !all_rounds.is_empty() {
        segments.push(evaluate_rounds(
            "All", all_rounds, &all_dists, n_actions, spec,
        )?);
    }
    for (seg, rounds) in by_segment {
        let d = vec![dists[&seg].clone(); rounds.len()];
        segments.push(evaluate_rounds(SEGMENTS[seg], rounds, &d, n_actions, spec)?);
    }
    Ok(OpeReport {
        slot: slot.slot.clone(),
        policy: candidate.label(),
        since,
        until,
        segments,
    })
}

fn evaluate_rounds(
    segment: &str,
    rounds: Vec<ope::Round>,
    dists: &[Vec<f64>],
    n_actions: usize,
    spec: ope::IntervalSpec,
) -> Result<SegmentOpe> {
    let fb = ope::Feedback {
        rounds,
        n_actions,
        len_list: 1,
    };
    let report = ope::evaluate_contextual(&fb, dists, spec)?;
    Ok(SegmentOpe {
        segment: segment.to_string(),
        rounds: fb.rounds.len(),
        logged_value: report.on_policy_value,
        ipw: report.ipw,
        snipw: report.snipw,
        dm: report.dm,
        dr: report.dr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_hand_computation() {
        // 10 of 100: centre (0.1 + 1.9208/100)/(1.03841) = 0.11480, half 0.06089 → [0.0552, 0.1744].
        let r = wilson(10, 100);
        assert!((r.lower - 0.05523).abs() < 1e-4, "{r:?}");
        assert!((r.upper - 0.17437).abs() < 1e-4, "{r:?}");
        assert_eq!(wilson(0, 0).upper, 1.0);
        assert_eq!(wilson(0, 10).lower, 0.0);
    }
}
