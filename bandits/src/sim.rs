//! Simulator check: cumulative regret of each policy on the built-in shopper simulator's true banner CTRs.
//!
//! Each round draws a shopper segment with the simulator's session shares (population share × sessions
//! per week, ≈ 17/61/12/8/2 %), a device and an hour, builds the same context and features the service
//! uses, lets the policy choose one of the five `home_hero` arms, and draws a click with the true CTR of
//! (segment, arm) ([`pipelines::sim::TRUE_BANNER_CTR`]). Rewards reach the learner in batches of
//! `feedback_batch` decisions, as joined rewards do in production.
//!
//! Regret is *expected* regret (from the true CTRs, so it is not blurred by click noise):
//! - against the best single banner: `Σ_t ctr(s_t, a*) − ctr(s_t, a_t)` with `a*` the arm with the best
//!   traffic-weighted CTR;
//! - against the per-segment oracle: `Σ_t max_a ctr(s_t, a) − ctr(s_t, a_t)`.
//!
//! Beta-Bernoulli Thompson sampling refreshes its P(best) per segment after every feedback batch, as the
//! service does after applying rewards, with 1,000 posterior draws.

use chrono::{DateTime, Utc};
use pipelines::sim::{Segment, ARM_IDS, TRUE_BANNER_CTR};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use uuid::Uuid;

use crate::context::{ContextInput, DEVICES, SEGMENTS};
use crate::policy::{sample_index, LedgerEntry, SlotModel};
use crate::slot::{Arm, PolicyKind, PolicySpec, RewardSpec, Slot};
use crate::{Error, Result};

/// A policy in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimPolicy {
    Thompson,
    LinTs,
    Linucb,
    EpsilonGreedy,
    /// Every arm equally (ε-greedy with ε = 1): the logging policy of the simulator's own banners.
    Uniform,
}

impl SimPolicy {
    pub const ALL: [SimPolicy; 5] = [
        SimPolicy::Thompson,
        SimPolicy::LinTs,
        SimPolicy::Linucb,
        SimPolicy::EpsilonGreedy,
        SimPolicy::Uniform,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SimPolicy::Thompson => "thompson",
            SimPolicy::LinTs => "lin_ts",
            SimPolicy::Linucb => "linucb",
            SimPolicy::EpsilonGreedy => "epsilon_greedy",
            SimPolicy::Uniform => "uniform",
        }
    }

    fn spec(self) -> PolicySpec {
        let (kind, epsilon) = match self {
            SimPolicy::Thompson => (PolicyKind::Thompson, 0.1),
            SimPolicy::LinTs => (PolicyKind::LinTs, 0.1),
            SimPolicy::Linucb => (PolicyKind::Linucb, 0.1),
            SimPolicy::EpsilonGreedy => (PolicyKind::EpsilonGreedy, 0.1),
            SimPolicy::Uniform => (PolicyKind::EpsilonGreedy, 1.0),
        };
        PolicySpec {
            kind,
            epsilon,
            ..PolicySpec::default()
        }
    }
}

/// Settings of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    pub decisions: usize,
    pub seed: u64,
    pub feedback_batch: usize,
    /// Cumulative regret is reported at these decision counts (and at the end).
    pub checkpoints: Vec<usize>,
}

impl SimConfig {
    /// `decisions` rounds with checkpoints at 1k, 10k, 100k … below it.
    pub fn new(decisions: usize, seed: u64, feedback_batch: usize) -> SimConfig {
        let mut checkpoints: Vec<usize> = [1_000, 10_000, 100_000, 1_000_000]
            .into_iter()
            .filter(|c| *c < decisions)
            .collect();
        checkpoints.push(decisions);
        SimConfig {
            decisions,
            seed,
            feedback_batch,
            checkpoints,
        }
    }
}

/// Cumulative numbers at one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkpoint {
    pub decisions: usize,
    pub regret_vs_best_arm: f64,
    pub regret_vs_oracle: f64,
    /// Clicks actually drawn.
    pub clicks: u64,
    /// Expected CTR of the choices so far.
    pub expected_ctr: f64,
}

/// One policy's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRun {
    pub policy: String,
    pub checkpoints: Vec<Checkpoint>,
    /// Share of the last 10 % of decisions that picked each segment's best arm.
    pub final_oracle_share: f64,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub config: SimConfig,
    pub best_arm: String,
    /// CTR of the best single arm and of the per-segment oracle, traffic-weighted.
    pub best_arm_ctr: f64,
    pub oracle_ctr: f64,
    pub runs: Vec<PolicyRun>,
}

/// Session share of each simulator segment (population share × sessions per week, normalised).
pub fn segment_weights() -> [f64; 5] {
    let raw = Segment::ALL.map(|s| s.params().population_share * s.params().sessions_per_week);
    let total: f64 = raw.iter().sum();
    raw.map(|w| w / total)
}

/// A simulator segment drawn with the session shares.
pub fn sample_segment<R: Rng + ?Sized>(rng: &mut R) -> Segment {
    Segment::ALL[sample_index(&segment_weights(), rng.random())]
}

fn slot(policy: SimPolicy) -> Slot {
    Slot {
        slot: pipelines::sim::HOME_HERO_SLOT.to_string(),
        version: 1,
        policy: policy.spec(),
        reward: RewardSpec::default(),
        traffic_floor: 0.0,
        sticky: false,
        forced: Default::default(),
        arms: ARM_IDS.iter().map(|a| Arm::new(*a)).collect(),
    }
}

/// Runs every policy in [`SimPolicy::ALL`] on the same seed.
pub fn run(config: &SimConfig, mut progress: impl FnMut(&str, usize)) -> Result<SimReport> {
    if config.decisions == 0 || config.feedback_batch == 0 {
        return Err(Error::bad(
            "decisions",
            "decisions and feedback batch must be at least 1",
        ));
    }
    let w = segment_weights();
    let weighted = |a: usize| -> f64 { (0..5).map(|s| w[s] * TRUE_BANNER_CTR[s][a]).sum() };
    let best = (0..ARM_IDS.len())
        .max_by(|a, b| weighted(*a).total_cmp(&weighted(*b)))
        .unwrap_or(0);
    let oracle_ctr: f64 = (0..5)
        .map(|s| w[s] * TRUE_BANNER_CTR[s].iter().cloned().fold(0.0, f64::max))
        .sum();
    let mut runs = Vec::new();
    for policy in SimPolicy::ALL {
        runs.push(run_policy(policy, config, &w, best, &mut progress)?);
    }
    Ok(SimReport {
        config: config.clone(),
        best_arm: ARM_IDS[best].to_string(),
        best_arm_ctr: weighted(best),
        oracle_ctr,
        runs,
    })
}

fn run_policy(
    policy: SimPolicy,
    config: &SimConfig,
    w: &[f64; 5],
    best: usize,
    progress: &mut impl FnMut(&str, usize),
) -> Result<PolicyRun> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut model = SlotModel::new(slot(policy));
    let now: DateTime<Utc> = "2026-12-01T00:00:00Z"
        .parse()
        .map_err(|e| Error::Internal(format!("{e}")))?;
    let mut pending: Vec<LedgerEntry> = Vec::with_capacity(config.feedback_batch);
    let (mut seq, mut clicks, mut expected) = (0u64, 0u64, 0.0);
    let (mut regret_best, mut regret_oracle) = (0.0, 0.0);
    let (mut tail_oracle, tail_start) = (0u64, config.decisions - config.decisions / 10);
    let mut checkpoints = Vec::new();
    for t in 0..config.decisions {
        let s = sample_index(w, rng.random());
        let segment = Segment::ALL[s];
        let context = ContextInput {
            segment: Some(segment.label().to_string()),
            device: Some(DEVICES[rng.random_range(0..4)].to_string()),
            hour: Some(rng.random_range(0..24)),
            ..Default::default()
        }
        .resolve(None, rng.random_bool(0.6), now);
        let x = context.features();
        let seg_index = SEGMENTS
            .iter()
            .position(|n| *n == segment.label())
            .unwrap_or(SEGMENTS.len() - 1);
        let choice = model.choose(seg_index, &x, now, &mut rng)?;
        let a = ARM_IDS
            .iter()
            .position(|id| *id == choice.arm_id)
            .unwrap_or(0);
        let ctr = TRUE_BANNER_CTR[s][a];
        let oracle = TRUE_BANNER_CTR[s].iter().cloned().fold(0.0, f64::max);
        regret_best += TRUE_BANNER_CTR[s][best] - ctr;
        regret_oracle += oracle - ctr;
        expected += ctr;
        if t >= tail_start && (ctr - oracle).abs() < 1e-15 {
            tail_oracle += 1;
        }
        let clicked = rng.random_bool(ctr);
        clicks += u64::from(clicked);
        seq += 1;
        pending.push(LedgerEntry {
            seq,
            slot: String::new(),
            decision_id: Uuid::nil(),
            arm_id: choice.arm_id,
            segment: segment.label().to_string(),
            features: x,
            delta: if clicked { 1.0 } else { 0.0 },
            first: true,
        });
        if pending.len() >= config.feedback_batch {
            for e in pending.drain(..) {
                model.apply(&e)?;
            }
            // As the service does after applying rewards: Thompson's P(best) per segment.
            model.refresh(now);
        }
        let done = t + 1;
        if config.checkpoints.contains(&done) {
            checkpoints.push(Checkpoint {
                decisions: done,
                regret_vs_best_arm: regret_best,
                regret_vs_oracle: regret_oracle,
                clicks,
                expected_ctr: expected / done as f64,
            });
        }
        if done % 10_000 == 0 {
            progress(policy.name(), done);
        }
    }
    let tail = (config.decisions - tail_start).max(1) as f64;
    Ok(PolicyRun {
        policy: policy.name().to_string(),
        checkpoints,
        final_oracle_share: tail_oracle as f64 / tail,
    })
}

impl SimReport {
    /// The regret table as Markdown (one row per policy, columns per checkpoint).
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Best single banner: {} (CTR {:.4}); per-segment oracle CTR {:.4}; {} decisions, seed {}, feedback every {} decisions.\n\n",
            self.best_arm,
            self.best_arm_ctr,
            self.oracle_ctr,
            self.config.decisions,
            self.config.seed,
            self.config.feedback_batch
        );
        out.push_str("| policy |");
        for c in &self.config.checkpoints {
            out.push_str(&format!(
                " regret vs best arm @{c} | regret vs oracle @{c} |"
            ));
        }
        out.push_str(" CTR | oracle arm share (last 10 %) |\n|---|");
        for _ in &self.config.checkpoints {
            out.push_str("---:|---:|");
        }
        out.push_str("---:|---:|\n");
        for r in &self.runs {
            out.push_str(&format!("| {} |", r.policy));
            for c in &r.checkpoints {
                out.push_str(&format!(
                    " {:.1} | {:.1} |",
                    c.regret_vs_best_arm, c.regret_vs_oracle
                ));
            }
            let last = r.checkpoints.last();
            out.push_str(&format!(
                " {:.4} | {:.1} % |\n",
                last.map_or(0.0, |c| c.expected_ctr),
                100.0 * r.final_oracle_share
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_policies_beat_uniform_and_approach_the_oracle() {
        let report = run(&SimConfig::new(20_000, 7, 100), |_, _| {}).unwrap();
        let get = |name: &str| {
            report
                .runs
                .iter()
                .find(|r| r.policy == name)
                .unwrap()
                .checkpoints
                .last()
                .unwrap()
                .clone()
        };
        let uniform = get("uniform");
        // Uniform's regret vs the oracle is ≈ 20,000 × (oracle − mean CTR) ≈ 20,000 × 0.029.
        assert!(uniform.regret_vs_oracle > 400.0, "{uniform:?}");
        // Thompson per segment learns five 5-armed problems; linear TS learns over 64 features, slower.
        for (name, factor) in [("thompson", 3.0), ("lin_ts", 2.0)] {
            let r = get(name);
            assert!(
                r.regret_vs_oracle < uniform.regret_vs_oracle / factor,
                "{name}: {r:?} vs uniform {uniform:?}"
            );
            // Per-segment learning beats the best single banner (negative regret against it).
            assert!(r.regret_vs_best_arm < 0.0, "{name}: {r:?}");
        }
        assert!(report.oracle_ctr > report.best_arm_ctr);
        assert!(report.to_markdown().contains("| thompson |"));
    }
}
