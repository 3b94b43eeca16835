//! The learned state of a slot and the four policies that choose from it.
//!
//! State is a fold over the reward ledger ([`LedgerEntry`], in sequence order), so every replica that has
//! applied the same entries holds the same numbers. Per arm it keeps:
//! - per segment, the Beta-Bernoulli sufficient statistics `(Σ r, n)`; the posterior is
//!   `Beta(1 + k·m + Σr, 1 + k·(1 − m) + n − Σr)` with the arm's warm-start prior (mean `m`, strength `k`);
//! - the ridge regression of LinUCB / linear TS: `A⁻¹` with `A = λI + Σ x xᵀ` (Sherman–Morrison updates),
//!   `b = Σ r x`, and `θ = A⁻¹ (b + λ m e₀)` (the prior mean on the bias feature).
//!
//! A first observation adds `x` to `A` and counts a trial; a revision (a return, a late click) only moves
//! the reward by its delta, so revising is exact in both models.
//!
//! **Choosing.** With live arms `L`, floors `f_a` (`F = Σ f_a ≤ 0.5`) and the policy's own distribution
//! `p(a)`, an arm is drawn from `q(a) = f_a + (1 − F) p(a)`, and `q` of the chosen arm is the logged
//! propensity. `p` is exact for LinUCB (argmax, ties shared) and ε-greedy (`ε/|L|` + `(1 − ε)` on the
//! greedy arm). Linear TS chooses the arm with the largest sampled score and integrates `p` of the chosen
//! arm numerically (exact to < 1e-6, [`crate::propensity`]). Beta-Bernoulli TS samples the arm from its
//! cached P(best) per segment (`policy.mc_draws` posterior draws, refreshed off the request path after
//! rewards), so its propensity is exactly the probability used; without a cached distribution (never
//! refreshed) it falls back to the winner of one posterior draw with
//! `p(a) = (wins of a in N further draws + [a is chosen]) / (N + 1)`, never 0 for the chosen arm (N =
//! `policy.mc_draws`, standard error ≤ 0.5/√N). A segment with a forced winner gets it
//! with propensity 1.

use std::collections::HashMap;

use rand::Rng;
use rand_distr::{Beta, Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::{DIM, SEGMENTS};
use crate::propensity::{gaussian_max_prob, job_seed, ThompsonJob};
use crate::slot::{PolicyKind, Prior, Slot};
use crate::{Error, Result};

/// One learning step: the reward of a decision, first observed (`first`) or revised by `delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the ledger (1, 2, … without gaps, in commit order).
    pub seq: u64,
    pub slot: String,
    pub decision_id: Uuid,
    pub arm_id: String,
    pub segment: String,
    /// The decision's feature vector ([`crate::context::DIM`] entries).
    pub features: Vec<f32>,
    /// Reward added: the whole reward on a first observation, the change on a revision.
    pub delta: f64,
    pub first: bool,
}

/// Learned numbers of one arm.
#[derive(Debug, Clone, PartialEq)]
struct ArmStats {
    /// Per segment (index in [`SEGMENTS`]): `(Σ r, n)`.
    seg: [(f64, f64); SEGMENTS.len()],
    /// `A⁻¹`, row-major `DIM × DIM`.
    ainv: Vec<f64>,
    b: Vec<f64>,
    theta: Vec<f64>,
}

impl ArmStats {
    fn new(lambda: f64) -> ArmStats {
        let mut ainv = vec![0.0; DIM * DIM];
        for i in 0..DIM {
            ainv[i * DIM + i] = 1.0 / lambda;
        }
        ArmStats {
            seg: [(0.0, 0.0); SEGMENTS.len()],
            ainv,
            b: vec![0.0; DIM],
            theta: vec![0.0; DIM],
        }
    }

    fn refresh_theta(&mut self, lambda: f64, prior_mean: f64) {
        let mut b = self.b.clone();
        b[0] += lambda * prior_mean;
        for i in 0..DIM {
            let row = &self.ainv[i * DIM..(i + 1) * DIM];
            self.theta[i] = row.iter().zip(&b).map(|(a, b)| a * b).sum();
        }
    }

    /// `xᵀ A⁻¹ x`.
    fn quad(&self, x: &[f64]) -> f64 {
        let mut total = 0.0;
        for (i, xi) in x.iter().enumerate() {
            if *xi == 0.0 {
                continue;
            }
            let row = &self.ainv[i * DIM..(i + 1) * DIM];
            let r: f64 = row.iter().zip(x).map(|(a, b)| a * b).sum();
            total += xi * r;
        }
        total
    }

    fn observe(&mut self, x: &[f64]) {
        // Sherman–Morrison: (A + x xᵀ)⁻¹ = A⁻¹ − (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x); A⁻¹ is symmetric.
        let mut u = vec![0.0; DIM];
        for (i, ui) in u.iter_mut().enumerate() {
            let row = &self.ainv[i * DIM..(i + 1) * DIM];
            *ui = row.iter().zip(x).map(|(a, b)| a * b).sum();
        }
        let denom = 1.0 + x.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>();
        for i in 0..DIM {
            let ui = u[i] / denom;
            if ui == 0.0 {
                continue;
            }
            let row = &mut self.ainv[i * DIM..(i + 1) * DIM];
            for (a, uj) in row.iter_mut().zip(&u) {
                *a -= ui * uj;
            }
        }
    }
}

/// A posterior summary for reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
    /// Rewarded trials (Σ r) and trials n learned so far, without the prior.
    pub rewards: f64,
    pub trials: f64,
}

impl Posterior {
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// The policy's choice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub arm_id: String,
    /// Probability with which this arm was drawn (see the module docs).
    pub propensity: f64,
    /// `q(a)` for every live arm, in slot order (`propensity` is the chosen arm's entry); `None` for linear
    /// TS, whose probabilities are integrated for the chosen arm only.
    pub probabilities: Option<Vec<(String, f64)>>,
    /// True when a forced winner was served.
    pub forced: bool,
}

/// A cached Thompson distribution of one segment: `(generation, live arm indices, P(best) per live arm)`.
type Cached = (u64, Vec<usize>, Vec<f64>);

/// A slot's configuration and learned state.
#[derive(Debug, Clone)]
pub struct SlotModel {
    slot: Slot,
    stats: HashMap<String, ArmStats>,
    ledger_seq: u64,
    /// Per segment: bumped whenever its posteriors or the configuration change.
    generation: [u64; SEGMENTS.len()],
    thompson: Vec<Option<Cached>>,
}

impl SlotModel {
    /// A model with nothing learned.
    pub fn new(slot: Slot) -> SlotModel {
        let mut m = SlotModel {
            slot,
            stats: HashMap::new(),
            ledger_seq: 0,
            generation: [0; SEGMENTS.len()],
            thompson: vec![None; SEGMENTS.len()],
        };
        m.configure_stats();
        m
    }

    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// Last ledger entry applied.
    pub fn ledger_seq(&self) -> u64 {
        self.ledger_seq
    }

    /// Replaces the configuration, keeping what was learned (arms are matched by id; a removed arm's
    /// numbers are kept in case it comes back; λ changes rebuild nothing, they apply to new arms).
    pub fn reconfigure(&mut self, slot: Slot) {
        self.slot = slot;
        self.configure_stats();
        for g in &mut self.generation {
            *g += 1;
        }
    }

    /// Thompson P(best) estimates that are missing or stale at `now` (empty for other policies).
    pub fn thompson_jobs(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<ThompsonJob> {
        if self.slot.policy.kind != PolicyKind::Thompson {
            return Vec::new();
        }
        let live = self.live(now);
        (0..SEGMENTS.len())
            .filter(|s| {
                !matches!(&self.thompson[*s], Some((g, l, _)) if *g == self.generation[*s] && *l == live)
            })
            .map(|s| ThompsonJob {
                slot: self.slot.slot.clone(),
                segment: s,
                generation: self.generation[s],
                live: live.clone(),
                params: live
                    .iter()
                    .map(|i| {
                        let p = self.posterior(s, &self.slot.arms[*i].arm_id);
                        (p.alpha, p.beta)
                    })
                    .collect(),
                draws: self.slot.policy.mc_draws,
                seed: job_seed(&self.slot.slot, s, self.ledger_seq),
            })
            .collect()
    }

    /// Installs a job's result unless the segment changed meanwhile.
    pub fn install(&mut self, job: &ThompsonJob, dist: Vec<f64>) {
        if self.generation[job.segment] == job.generation {
            self.thompson[job.segment] = Some((job.generation, job.live.clone(), dist));
        }
    }

    /// Computes and installs every missing Thompson distribution (for callers without a background
    /// refresher, e.g. the simulator).
    pub fn refresh(&mut self, now: chrono::DateTime<chrono::Utc>) {
        for job in self.thompson_jobs(now) {
            let dist = job.run();
            self.install(&job, dist);
        }
    }

    fn live(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<usize> {
        (0..self.slot.arms.len())
            .filter(|i| self.slot.arms[*i].is_live(now))
            .collect()
    }

    fn configure_stats(&mut self) {
        let lambda = self.slot.policy.lambda;
        for arm in &self.slot.arms {
            let st = self
                .stats
                .entry(arm.arm_id.clone())
                .or_insert_with(|| ArmStats::new(lambda));
            st.refresh_theta(lambda, arm.prior.map_or(0.0, |p| p.mean));
        }
    }

    /// Applies one ledger entry (entries must come in `seq` order; an entry already applied is skipped).
    pub fn apply(&mut self, e: &LedgerEntry) -> Result<()> {
        if e.seq <= self.ledger_seq {
            return Ok(());
        }
        if e.features.len() != DIM {
            return Err(Error::Internal(format!(
                "ledger entry {}: {} features, expected {DIM}",
                e.seq,
                e.features.len()
            )));
        }
        let lambda = self.slot.policy.lambda;
        let prior_mean = self
            .slot
            .arms
            .iter()
            .find(|a| a.arm_id == e.arm_id)
            .and_then(|a| a.prior)
            .map_or(0.0, |p| p.mean);
        let st = self
            .stats
            .entry(e.arm_id.clone())
            .or_insert_with(|| ArmStats::new(lambda));
        let s = SEGMENTS
            .iter()
            .position(|s| *s == e.segment)
            .unwrap_or(SEGMENTS.len() - 1);
        let x: Vec<f64> = e.features.iter().map(|v| f64::from(*v)).collect();
        st.seg[s].0 += e.delta;
        if e.first {
            st.seg[s].1 += 1.0;
            st.observe(&x);
        }
        for (b, xi) in st.b.iter_mut().zip(&x) {
            *b += e.delta * xi;
        }
        st.refresh_theta(lambda, prior_mean);
        self.generation[s] += 1;
        self.ledger_seq = e.seq;
        Ok(())
    }

    /// The Beta posterior of `arm_id` for a segment (index in [`SEGMENTS`]).
    pub fn posterior(&self, segment: usize, arm_id: &str) -> Posterior {
        let prior = self
            .slot
            .arms
            .iter()
            .find(|a| a.arm_id == arm_id)
            .and_then(|a| a.prior)
            .unwrap_or(Prior {
                mean: 0.5,
                strength: 0.0,
            });
        let (r, n) = self
            .stats
            .get(arm_id)
            .map_or((0.0, 0.0), |s| s.seg[segment]);
        Posterior {
            alpha: (1.0 + prior.strength * prior.mean + r).max(1e-9),
            beta: (1.0 + prior.strength * (1.0 - prior.mean) + n - r).max(1e-9),
            rewards: r,
            trials: n,
        }
    }

    /// The warm-start prior for a new arm: the mean reward learned so far over all arms and segments
    /// (Laplace-smoothed), with the policy's prior strength.
    pub fn auto_prior(&self) -> Prior {
        let (mut r, mut n) = (0.0, 0.0);
        for st in self.stats.values() {
            for (sr, sn) in st.seg {
                r += sr;
                n += sn;
            }
        }
        Prior {
            mean: ((r + 1.0) / (n + 2.0)).clamp(0.0, 1.0),
            strength: self.slot.policy.prior_strength,
        }
    }

    /// Chooses an arm for a context (`segment` index in [`SEGMENTS`], `x` its features) at `now`.
    pub fn choose<R: Rng + ?Sized>(
        &self,
        segment: usize,
        x: &[f32],
        now: chrono::DateTime<chrono::Utc>,
        rng: &mut R,
    ) -> Result<Choice> {
        let live = self.live(now);
        if live.is_empty() {
            return Err(Error::Conflict(format!(
                "slot `{}` has no live arm (all paused or outside their campaign dates)",
                self.slot.slot
            )));
        }
        let ids = |i: usize| self.slot.arms[i].arm_id.clone();
        if let Some(forced) = self.slot.forced.get(SEGMENTS[segment]) {
            if let Some(&i) = live.iter().find(|i| self.slot.arms[**i].arm_id == *forced) {
                return Ok(Choice {
                    arm_id: ids(i),
                    propensity: 1.0,
                    probabilities: Some(
                        live.iter()
                            .map(|j| (ids(*j), if *j == i { 1.0 } else { 0.0 }))
                            .collect(),
                    ),
                    forced: true,
                });
            }
        }
        let (pick, p) = self.policy_distribution(segment, x, &live, rng);
        let floors: Vec<f64> = live
            .iter()
            .map(|i| self.slot.floor_of(&self.slot.arms[*i]))
            .collect();
        let total_floor: f64 = floors.iter().sum();
        let u: f64 = rng.random();
        let chosen = if u < total_floor {
            sample_index(&floors, u)
        } else {
            pick
        };
        let q = |k: usize, pk: f64| floors[k] + (1.0 - total_floor) * pk;
        let (propensity, probabilities) = match p {
            PolicyProb::All(p) => (
                q(chosen, p[chosen]),
                Some(
                    live.iter()
                        .enumerate()
                        .map(|(k, i)| (ids(*i), q(k, p[k])))
                        .collect(),
                ),
            ),
            PolicyProb::Gaussian(moments) => (q(chosen, gaussian_max_prob(&moments, chosen)), None),
        };
        Ok(Choice {
            arm_id: ids(live[chosen]),
            propensity,
            probabilities,
            forced: false,
        })
    }

    /// The policy's own pick (position in `live`) and its distribution over `live`.
    fn policy_distribution<R: Rng + ?Sized>(
        &self,
        segment: usize,
        x: &[f32],
        live: &[usize],
        rng: &mut R,
    ) -> (usize, PolicyProb) {
        let spec = &self.slot.policy;
        let arms = &self.slot.arms;
        match spec.kind {
            PolicyKind::Thompson => {
                if let Some((g, l, dist)) = &self.thompson[segment] {
                    if *g == self.generation[segment] && l == live {
                        // Probability matching from the cached P(best): the propensity is exact.
                        let pick = sample_index(dist, rng.random());
                        return (pick, PolicyProb::All(dist.clone()));
                    }
                }
                let dists: Vec<Beta<f64>> = live
                    .iter()
                    .map(|i| {
                        let p = self.posterior(segment, &arms[*i].arm_id);
                        Beta::new(p.alpha, p.beta)
                            .unwrap_or_else(|_| Beta::new(1.0, 1.0).expect("Beta(1, 1) is valid"))
                    })
                    .collect();
                let (pick, p) = monte_carlo(live.len(), spec.mc_draws, rng, |k, rng| {
                    dists[k].sample(rng)
                });
                (pick, PolicyProb::All(p))
            }
            PolicyKind::LinTs => {
                let xf: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
                let moments: Vec<(f64, f64)> = live
                    .iter()
                    .map(|i| {
                        let st = &self.stats[&arms[*i].arm_id];
                        let mean: f64 = st.theta.iter().zip(&xf).map(|(a, b)| a * b).sum();
                        (mean, spec.scale * st.quad(&xf).max(0.0).sqrt())
                    })
                    .collect();
                let (mut best, mut pick) = (f64::NEG_INFINITY, 0);
                for (k, (mu, sigma)) in moments.iter().enumerate() {
                    let z: f64 = StandardNormal.sample(rng);
                    let v = mu + sigma * z;
                    if v > best {
                        best = v;
                        pick = k;
                    }
                }
                (pick, PolicyProb::Gaussian(moments))
            }
            PolicyKind::Linucb => {
                let xf: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
                let scores: Vec<f64> = live
                    .iter()
                    .map(|i| {
                        let st = &self.stats[&arms[*i].arm_id];
                        let mean: f64 = st.theta.iter().zip(&xf).map(|(a, b)| a * b).sum();
                        mean + spec.alpha * st.quad(&xf).max(0.0).sqrt()
                    })
                    .collect();
                let (pick, p) = argmax_shared(&scores, 0.0, rng);
                (pick, PolicyProb::All(p))
            }
            PolicyKind::EpsilonGreedy => {
                let means: Vec<f64> = live
                    .iter()
                    .map(|i| self.posterior(segment, &arms[*i].arm_id).mean())
                    .collect();
                let (pick, p) = argmax_shared(&means, spec.epsilon, rng);
                (pick, PolicyProb::All(p))
            }
        }
    }
}

/// The policy's probability of each live arm: all of them, or the Gaussian score moments of linear TS
/// (whose probability is integrated for the chosen arm only, see [`crate::propensity`]).
enum PolicyProb {
    All(Vec<f64>),
    Gaussian(Vec<(f64, f64)>),
}

/// `ε/|L|` everywhere plus `(1 − ε)` shared by the best scores (ties within 1e-12); draws the pick.
fn argmax_shared<R: Rng + ?Sized>(scores: &[f64], epsilon: f64, rng: &mut R) -> (usize, Vec<f64>) {
    let best = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let ties: Vec<usize> = (0..scores.len())
        .filter(|k| scores[*k] >= best - 1e-12)
        .collect();
    let n = scores.len() as f64;
    let mut p = vec![epsilon / n; scores.len()];
    for k in &ties {
        p[*k] += (1.0 - epsilon) / ties.len() as f64;
    }
    let pick = sample_index(&p, rng.random());
    (pick, p)
}

/// The index `k` with `Σ_{j<k} p_j ≤ u < Σ_{j≤k} p_j` (the last index when rounding leaves `u` beyond the sum).
pub fn sample_index(p: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (k, pk) in p.iter().enumerate() {
        acc += pk;
        if u < acc {
            return k;
        }
    }
    p.len().saturating_sub(1)
}

/// Thompson choice and Monte-Carlo propensities (see the module docs).
fn monte_carlo<R: Rng + ?Sized>(
    arms: usize,
    draws: usize,
    rng: &mut R,
    mut sample: impl FnMut(usize, &mut R) -> f64,
) -> (usize, Vec<f64>) {
    let mut winner = |rng: &mut R| {
        let (mut best, mut at) = (f64::NEG_INFINITY, 0);
        for k in 0..arms {
            let v = sample(k, rng);
            if v > best {
                best = v;
                at = k;
            }
        }
        at
    };
    let pick = winner(rng);
    let mut wins = vec![0u32; arms];
    wins[pick] += 1;
    for _ in 0..draws {
        wins[winner(rng)] += 1;
    }
    let total = (draws + 1) as f64;
    (pick, wins.iter().map(|w| f64::from(*w) / total).collect())
}

/// P(arm is best) per segment from the Beta posteriors, by `draws` Monte-Carlo draws (for reports).
pub fn prob_best<R: Rng + ?Sized>(posteriors: &[Posterior], draws: usize, rng: &mut R) -> Vec<f64> {
    if posteriors.is_empty() {
        return Vec::new();
    }
    let dists: Vec<Beta<f64>> = posteriors
        .iter()
        .map(|p| Beta::new(p.alpha, p.beta).unwrap_or_else(|_| Beta::new(1.0, 1.0).expect("valid")))
        .collect();
    // The pick plus `draws − 1` further draws: plain win frequencies over `draws` draws.
    let (_, p) = monte_carlo(dists.len(), draws.max(1) - 1, rng, |k, rng| {
        dists[k].sample(rng)
    });
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::{Arm, PolicySpec, RewardSpec};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn slot(kind: PolicyKind, arms: &[&str]) -> Slot {
        Slot {
            slot: "s".into(),
            version: 1,
            policy: PolicySpec {
                kind,
                ..Default::default()
            },
            reward: RewardSpec::default(),
            traffic_floor: 0.0,
            sticky: false,
            forced: Default::default(),
            arms: arms.iter().map(|a| Arm::new(*a)).collect(),
        }
    }

    fn entry(seq: u64, arm: &str, segment: &str, delta: f64, first: bool) -> LedgerEntry {
        let mut x = vec![0f32; DIM];
        x[0] = 1.0;
        LedgerEntry {
            seq,
            slot: "s".into(),
            decision_id: Uuid::nil(),
            arm_id: arm.into(),
            segment: segment.into(),
            features: x,
            delta,
            first,
        }
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn beta_posterior_counts_first_observations_and_revisions() {
        let mut m = SlotModel::new(slot(PolicyKind::Thompson, &["a", "b"]));
        m.apply(&entry(1, "a", "New", 1.0, true)).unwrap();
        m.apply(&entry(2, "a", "New", 0.0, true)).unwrap();
        m.apply(&entry(3, "a", "New", -1.0, false)).unwrap(); // the first reward is revised to 0
        m.apply(&entry(3, "a", "New", 1.0, true)).unwrap(); // replayed: skipped
        let p = m.posterior(0, "a");
        assert_eq!((p.alpha, p.beta, p.trials), (1.0, 3.0, 2.0));
        assert_eq!(m.ledger_seq(), 3);
        assert_eq!(m.posterior(1, "a").trials, 0.0);
    }

    #[test]
    fn sherman_morrison_matches_the_direct_inverse() {
        let mut m = SlotModel::new(slot(PolicyKind::Linucb, &["a"]));
        let mut e = entry(1, "a", "New", 1.0, true);
        e.features[3] = 1.0;
        m.apply(&e).unwrap();
        // A = I + x xᵀ with x = e0 + e3: A⁻¹ = I − x xᵀ / 3; θ = A⁻¹ x = x / 3.
        let st = &m.stats["a"];
        assert!((st.ainv[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((st.ainv[3] + 1.0 / 3.0).abs() < 1e-12);
        assert!((st.theta[0] - 1.0 / 3.0).abs() < 1e-12);
        assert!((st.theta[3] - 1.0 / 3.0).abs() < 1e-12);
        assert!(st.theta[1].abs() < 1e-12);
    }

    #[test]
    fn floors_forced_winners_and_propensities() {
        let mut s = slot(PolicyKind::EpsilonGreedy, &["a", "b", "c"]);
        s.policy.epsilon = 0.3;
        s.traffic_floor = 0.1;
        let mut m = SlotModel::new(s.clone());
        for seq in 1..=20 {
            m.apply(&entry(seq, "b", "New", 1.0, true)).unwrap();
        }
        let x = entry(0, "a", "New", 0.0, true).features;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let c = m.choose(0, &x, now(), &mut rng).unwrap();
        // q(b) = 0.1 + 0.7 · (0.1 + 0.7) = 0.66; q(a) = q(c) = 0.1 + 0.7 · 0.1 = 0.17.
        let q: Vec<f64> = c.probabilities.unwrap().iter().map(|(_, p)| *p).collect();
        assert!((q[0] - 0.17).abs() < 1e-12 && (q[1] - 0.66).abs() < 1e-12);
        let mut counts = [0u32; 3];
        for _ in 0..20_000 {
            let c = m.choose(0, &x, now(), &mut rng).unwrap();
            counts[m.slot().arm_index(&c.arm_id).unwrap()] += 1;
        }
        assert!(
            (f64::from(counts[1]) / 20_000.0 - 0.66).abs() < 0.02,
            "{counts:?}"
        );
        s.forced.insert("New".into(), "c".into());
        m.reconfigure(s);
        let c = m.choose(0, &x, now(), &mut rng).unwrap();
        assert_eq!(
            (c.arm_id.as_str(), c.propensity, c.forced),
            ("c", 1.0, true)
        );
        // Other segments are not forced.
        assert!(!m.choose(1, &x, now(), &mut rng).unwrap().forced);
    }

    #[test]
    fn thompson_propensity_estimates_the_choice_frequency() {
        let mut m = SlotModel::new(slot(PolicyKind::Thompson, &["a", "b"]));
        let mut seq = 0;
        for (arm, wins, n) in [("a", 6, 20), ("b", 4, 20)] {
            for k in 0..n {
                seq += 1;
                m.apply(&entry(
                    seq,
                    arm,
                    "New",
                    if k < wins { 1.0 } else { 0.0 },
                    true,
                ))
                .unwrap();
            }
        }
        let x = entry(0, "a", "New", 0.0, true).features;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut chose_a, mut mean_pa) = (0u32, 0.0);
        let n = 2_000;
        for _ in 0..n {
            let c = m.choose(0, &x, now(), &mut rng).unwrap();
            chose_a += u32::from(c.arm_id == "a");
            mean_pa += c.probabilities.unwrap()[0].1 / f64::from(n);
        }
        let freq = f64::from(chose_a) / f64::from(n);
        assert!((freq - mean_pa).abs() < 0.03, "{freq} vs {mean_pa}");
        assert!(freq > 0.6 && freq < 0.95, "{freq}");
    }

    #[test]
    fn no_live_arm_is_a_conflict() {
        let mut s = slot(PolicyKind::Linucb, &["a"]);
        s.arms[0].paused = true;
        let m = SlotModel::new(s);
        let x = vec![0f32; DIM];
        let e = m
            .choose(0, &x, now(), &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
    }
}
