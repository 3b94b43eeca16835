//! Off-policy evaluation: what an evaluation policy would have earned on logged traffic.
//!
//! Inputs: logged rounds `(action aᵢ, 0-based position pᵢ, reward rᵢ, propensity π_b,ᵢ)` and an evaluation
//! policy `π_e(a, p)` (one distribution over actions per position, the same every round). With
//! `wᵢ = π_e(aᵢ, pᵢ) / π_b,ᵢ` and the reward model `q̂(a, p)` = the empirical mean reward of (a, p) in the log
//! (0 for a pair never logged), the estimators are those of Open Bandit Pipeline 0.5.7, without clipping:
//!
//! | estimator | per-round value `vᵢ` | estimate = mean of `vᵢ` |
//! |---|---|---|
//! | IPW | `wᵢ rᵢ` | `(1/n) Σ wᵢ rᵢ` |
//! | SNIPW | `wᵢ rᵢ / ((1/n) Σⱼ wⱼ)` | `Σ wᵢ rᵢ / Σ wᵢ` |
//! | DM | `q̄(pᵢ) = Σₐ π_e(a,pᵢ) q̂(a,pᵢ) / Σₐ π_e(a,pᵢ)` | `(1/n) Σ q̄(pᵢ)` |
//! | DR | `q̄(pᵢ) + wᵢ (rᵢ − q̂(aᵢ,pᵢ))` | `DM + (1/n) Σ wᵢ (rᵢ − q̂(aᵢ,pᵢ))` |
//!
//! The value is a reward per impression (per slot): each logged row is one slot, the position only selects
//! the column of `π_e` and `q̂`. Intervals are obp's percentile bootstrap: `B` resamples of the rows with
//! replacement drawn from `RandomState(seed)` (MT19937, [`crate::mt`]), the same rows for every estimator,
//! `mean` = the mean of the resampled estimates, bounds = their `α/2` and `1 − α/2` percentiles (NumPy's
//! linear interpolation). Equal to obp on the Open Bandit sample (tests against `tools/obp/golden`).

use std::path::Path;

use serde::Serialize;

use crate::mt::Mt19937;
use crate::{Error, Result};

/// One logged round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub action: usize,
    /// 0-based.
    pub position: usize,
    pub reward: f64,
    /// The probability with which the logging policy chose `action` at `position`.
    pub pscore: f64,
}

/// Logged bandit feedback.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub rounds: Vec<Round>,
    pub n_actions: usize,
    pub len_list: usize,
}

fn bad(path: &Path, line: Option<u64>, what: &str, why: impl std::fmt::Display) -> Error {
    match line {
        Some(l) => Error::bad(
            path.display().to_string(),
            format!("line {l}: {what}: {why}"),
        ),
        None => Error::bad(path.display().to_string(), format!("{what}: {why}")),
    }
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| bad(path, None, "file", e))?;
    Ok(csv::Reader::from_reader(file))
}

fn column(headers: &csv::StringRecord, path: &Path, name: &str) -> Result<usize> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| bad(path, Some(1), "header", format!("no {name} column")))
}

impl Feedback {
    /// Reads an Open Bandit Dataset log CSV: `item_id` → action, `position` (1-based in the file) → 0-based,
    /// `click` → reward, `propensity_score` parsed from its text. `n_actions` = the row count of the
    /// `item_context.csv` beside the log when there is one, else the largest action + 1. Every row must
    /// parse: a bad row is an error naming its line, never skipped.
    pub fn read_obd_csv(path: &Path) -> Result<Feedback> {
        let mut csv = reader(path)?;
        let headers = csv
            .headers()
            .map_err(|e| bad(path, Some(1), "header", e))?
            .clone();
        let (ca, cp, cr, cs) = (
            column(&headers, path, "item_id")?,
            column(&headers, path, "position")?,
            column(&headers, path, "click")?,
            column(&headers, path, "propensity_score")?,
        );
        let mut rounds = Vec::new();
        for (n, rec) in csv.records().enumerate() {
            let line = Some(n as u64 + 2);
            let rec = rec.map_err(|e| bad(path, line, "row", e))?;
            let get =
                |c: usize, name: &str| rec.get(c).ok_or_else(|| bad(path, line, name, "missing"));
            let action: usize = get(ca, "item_id")?
                .parse()
                .map_err(|e| bad(path, line, "item_id", e))?;
            let pos: usize = get(cp, "position")?
                .parse()
                .map_err(|e| bad(path, line, "position", e))?;
            let position = pos
                .checked_sub(1)
                .ok_or_else(|| bad(path, line, "position", "must be ≥ 1 (1-based)"))?;
            let reward: f64 = get(cr, "click")?
                .parse()
                .map_err(|e| bad(path, line, "click", e))?;
            let pscore: f64 = get(cs, "propensity_score")?
                .parse()
                .map_err(|e| bad(path, line, "propensity_score", e))?;
            if !(pscore > 0.0 && pscore <= 1.0) {
                return Err(bad(
                    path,
                    line,
                    "propensity_score",
                    format!("{pscore} is not in (0, 1]"),
                ));
            }
            rounds.push(Round {
                action,
                position,
                reward,
                pscore,
            });
        }
        if rounds.is_empty() {
            return Err(bad(path, None, "rows", "the log has no rounds"));
        }
        let from_context = path
            .parent()
            .map(|d| d.join("item_context.csv"))
            .filter(|p| p.exists());
        let n_actions = match from_context {
            Some(ctx) => reader(&ctx)?.records().count(),
            None => rounds.iter().map(|r| r.action).max().unwrap_or(0) + 1,
        };
        let len_list = rounds.iter().map(|r| r.position).max().unwrap_or(0) + 1;
        if let Some(r) = rounds.iter().find(|r| r.action >= n_actions) {
            return Err(bad(
                path,
                None,
                "item_id",
                format!("{} is not below n_actions {n_actions}", r.action),
            ));
        }
        Ok(Feedback {
            rounds,
            n_actions,
            len_list,
        })
    }
}

/// An evaluation policy: `prob[p · n_actions + a] = π_e(a, p)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub n_actions: usize,
    pub len_list: usize,
    prob: Vec<f64>,
}

impl Policy {
    /// Builds from `(action, position, prob)` rows; pairs not given have probability 0. Each position's
    /// probabilities must sum to 1 (within 1e-6).
    pub fn new(rows: &[(usize, usize, f64)], n_actions: usize, len_list: usize) -> Result<Policy> {
        let mut prob = vec![0.0; n_actions * len_list];
        for &(a, p, q) in rows {
            if a >= n_actions || p >= len_list {
                return Err(Error::bad("policy", format!("(action {a}, position {p}) is outside {n_actions} actions × {len_list} positions")));
            }
            if !(0.0..=1.0).contains(&q) {
                return Err(Error::bad(
                    "policy",
                    format!("prob {q} of (action {a}, position {p}) is not in [0, 1]"),
                ));
            }
            prob[p * n_actions + a] += q;
        }
        for p in 0..len_list {
            let s: f64 = prob[p * n_actions..(p + 1) * n_actions].iter().sum();
            if (s - 1.0).abs() > 1e-6 {
                return Err(Error::bad(
                    "policy",
                    format!("the probabilities of position {p} sum to {s}, not 1"),
                ));
            }
        }
        Ok(Policy {
            n_actions,
            len_list,
            prob,
        })
    }

    /// Reads `action,position,prob` CSV (0-based positions) for a log of `n_actions × len_list`.
    pub fn read_csv(path: &Path, n_actions: usize, len_list: usize) -> Result<Policy> {
        let mut csv = reader(path)?;
        let headers = csv
            .headers()
            .map_err(|e| bad(path, Some(1), "header", e))?
            .clone();
        let (ca, cp, cq) = (
            column(&headers, path, "action")?,
            column(&headers, path, "position")?,
            column(&headers, path, "prob")?,
        );
        let mut rows = Vec::new();
        for (n, rec) in csv.records().enumerate() {
            let line = Some(n as u64 + 2);
            let rec = rec.map_err(|e| bad(path, line, "row", e))?;
            let field = |c: usize, name: &str| {
                rec.get(c)
                    .map(str::trim)
                    .ok_or_else(|| bad(path, line, name, "missing"))
            };
            rows.push((
                field(ca, "action")?
                    .parse()
                    .map_err(|e| bad(path, line, "action", e))?,
                field(cp, "position")?
                    .parse()
                    .map_err(|e| bad(path, line, "position", e))?,
                field(cq, "prob")?
                    .parse()
                    .map_err(|e| bad(path, line, "prob", e))?,
            ));
        }
        Policy::new(&rows, n_actions, len_list).map_err(|e| bad(path, None, "policy", e))
    }

    #[inline]
    pub fn prob(&self, action: usize, position: usize) -> f64 {
        self.prob[position * self.n_actions + action]
    }
}

/// `q̂(a, p)`: the empirical mean reward per (action, position), 0 where never logged.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardModel {
    n_actions: usize,
    q: Vec<f64>,
}

impl RewardModel {
    pub fn empirical(fb: &Feedback) -> RewardModel {
        let cells = fb.n_actions * fb.len_list;
        let (mut sum, mut count) = (vec![0.0; cells], vec![0u64; cells]);
        for r in &fb.rounds {
            let c = r.position * fb.n_actions + r.action;
            sum[c] += r.reward;
            count[c] += 1;
        }
        let q = sum
            .iter()
            .zip(&count)
            .map(|(s, n)| if *n > 0 { s / *n as f64 } else { 0.0 })
            .collect();
        RewardModel {
            n_actions: fb.n_actions,
            q,
        }
    }

    #[inline]
    pub fn get(&self, action: usize, position: usize) -> f64 {
        self.q[position * self.n_actions + action]
    }
}

/// Bootstrap settings (obp's `estimate_interval` defaults used by the tests: 0.05, 10,000, 12345).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IntervalSpec {
    pub alpha: f64,
    pub n_bootstrap_samples: usize,
    pub seed: u32,
}

impl Default for IntervalSpec {
    fn default() -> Self {
        IntervalSpec {
            alpha: 0.05,
            n_bootstrap_samples: 10_000,
            seed: 12345,
        }
    }
}

/// A bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Mean of the resampled estimates (not the point estimate).
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// A point estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub interval: Interval,
}

/// The four estimates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub ipw: Estimate,
    pub snipw: Estimate,
    pub dm: Estimate,
    pub dr: Estimate,
    pub n_rounds: usize,
    pub n_actions: usize,
    pub len_list: usize,
    /// Mean logged reward (what the logging policy earned).
    pub on_policy_value: f64,
    pub interval: IntervalSpec,
}

/// Evaluates `policy` on `fb` with the reward model `q`.
pub fn evaluate(
    fb: &Feedback,
    policy: &Policy,
    q: &RewardModel,
    spec: IntervalSpec,
) -> Result<Report> {
    if policy.n_actions < fb.n_actions || policy.len_list < fb.len_list {
        return Err(Error::bad(
            "policy",
            format!(
                "covers {} actions × {} positions, the log has {} × {}",
                policy.n_actions, policy.len_list, fb.n_actions, fb.len_list
            ),
        ));
    }
    if !(spec.alpha > 0.0 && spec.alpha < 1.0) || spec.n_bootstrap_samples == 0 {
        return Err(Error::bad(
            "interval",
            format!(
                "alpha {} must be in (0, 1) and n_bootstrap_samples ≥ 1",
                spec.alpha
            ),
        ));
    }
    // q̄(p) per position.
    let qbar: Vec<f64> = (0..fb.len_list)
        .map(|p| {
            let (mut num, mut den) = (0.0, 0.0);
            for a in 0..policy.n_actions {
                let w = policy.prob(a, p);
                num += w * if a < fb.n_actions { q.get(a, p) } else { 0.0 };
                den += w;
            }
            if den > 0.0 {
                num / den
            } else {
                0.0
            }
        })
        .collect();
    let w: Vec<f64> = fb
        .rounds
        .iter()
        .map(|r| policy.prob(r.action, r.position) / r.pscore)
        .collect();
    let qbar_i: Vec<f64> = fb.rounds.iter().map(|r| qbar[r.position]).collect();
    Ok(estimates(fb, q, &w, &qbar_i, spec))
}

/// Evaluates a policy that may differ per round (e.g. per shopper segment): `dists[i][a]` is the
/// evaluation policy's probability of action `a` at round `i`'s position. The reward model is the
/// empirical one; with the same distribution on every round this equals [`evaluate`].
pub fn evaluate_contextual(
    fb: &Feedback,
    dists: &[Vec<f64>],
    spec: IntervalSpec,
) -> Result<Report> {
    if dists.len() != fb.rounds.len() || dists.iter().any(|d| d.len() < fb.n_actions) {
        return Err(Error::bad(
            "policy",
            format!(
                "need one distribution over {} actions per round ({} rounds, {} given)",
                fb.n_actions,
                fb.rounds.len(),
                dists.len()
            ),
        ));
    }
    if fb.rounds.is_empty() {
        return Err(Error::bad("log", "no rounds to evaluate"));
    }
    let q = RewardModel::empirical(fb);
    let mut w = Vec::with_capacity(dists.len());
    let mut qbar_i = Vec::with_capacity(dists.len());
    for (r, d) in fb.rounds.iter().zip(dists) {
        w.push(d[r.action] / r.pscore);
        let (num, den) = d.iter().enumerate().fold((0.0, 0.0), |(n, s), (a, p)| {
            let qa = if a < fb.n_actions {
                q.get(a, r.position)
            } else {
                0.0
            };
            (n + p * qa, s + p)
        });
        qbar_i.push(if den > 0.0 { num / den } else { 0.0 });
    }
    Ok(estimates(fb, &q, &w, &qbar_i, spec))
}

/// The four estimates from the importance weights `w` and the model's value `qbar_i` of each round.
fn estimates(
    fb: &Feedback,
    q: &RewardModel,
    w: &[f64],
    qbar_i: &[f64],
    spec: IntervalSpec,
) -> Report {
    let n = fb.rounds.len();
    let mean_w = w.iter().sum::<f64>() / n as f64;
    let mut values = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    for (i, r) in fb.rounds.iter().enumerate() {
        values[0][i] = w[i] * r.reward;
        values[1][i] = w[i] * r.reward / mean_w;
        values[2][i] = qbar_i[i];
        values[3][i] = qbar_i[i] + w[i] * (r.reward - q.get(r.action, r.position));
    }
    let intervals = bootstrap(&values, spec);
    let est = |k: usize| Estimate {
        value: values[k].iter().sum::<f64>() / n as f64,
        interval: intervals[k],
    };
    Report {
        ipw: est(0),
        snipw: est(1),
        dm: est(2),
        dr: est(3),
        n_rounds: n,
        n_actions: fb.n_actions,
        len_list: fb.len_list,
        on_policy_value: fb.rounds.iter().map(|r| r.reward).sum::<f64>() / n as f64,
        interval: spec,
    }
}

/// obp's percentile bootstrap for several per-round value vectors at once: a fresh `RandomState(seed)` per
/// estimator draws the same indices, so one stream of indices serves them all.
fn bootstrap<const K: usize>(values: &[Vec<f64>; K], spec: IntervalSpec) -> [Interval; K] {
    let n = values[0].len();
    let b = spec.n_bootstrap_samples;
    let mut rng = Mt19937::new(spec.seed);
    // One row per round with its K values side by side: one cache line per drawn index.
    let rows: Vec<[f64; K]> = (0..n)
        .map(|i| std::array::from_fn(|k| values[k][i]))
        .collect();
    let mut boots: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(b));
    for _ in 0..b {
        let mut sums = [0.0f64; K];
        for _ in 0..n {
            let row = &rows[rng.below(n as u64) as usize];
            for (s, v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        for (boot, s) in boots.iter_mut().zip(sums) {
            boot.push(s / n as f64);
        }
    }
    std::array::from_fn(|k| {
        let boot = &mut boots[k];
        let mean = boot.iter().sum::<f64>() / b as f64;
        boot.sort_by(f64::total_cmp);
        Interval {
            mean,
            lower: percentile(boot, spec.alpha / 2.0),
            upper: percentile(boot, 1.0 - spec.alpha / 2.0),
        }
    })
}

/// NumPy's default ("linear") percentile of sorted data, `q` in [0, 1], with its two-sided lerp.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_round_log_by_hand() {
        let fb = Feedback {
            rounds: vec![
                Round {
                    action: 0,
                    position: 0,
                    reward: 1.0,
                    pscore: 0.5,
                },
                Round {
                    action: 1,
                    position: 0,
                    reward: 0.0,
                    pscore: 0.5,
                },
            ],
            n_actions: 2,
            len_list: 1,
        };
        let policy = Policy::new(&[(0, 0, 0.8), (1, 0, 0.2)], 2, 1).unwrap();
        let q = RewardModel::empirical(&fb);
        let r = evaluate(
            &fb,
            &policy,
            &q,
            IntervalSpec {
                n_bootstrap_samples: 50,
                ..IntervalSpec::default()
            },
        )
        .unwrap();
        // w = [1.6, 0.4]; IPW = (1.6·1 + 0)/2 = 0.8; SNIPW = 1.6 / 2.0 = 0.8; q̂ = [1, 0] → q̄ = 0.8 = DM;
        // DR = 0.8 + mean(1.6·(1−1), 0.4·(0−0)) = 0.8.
        for e in [r.ipw, r.snipw, r.dm, r.dr] {
            assert!((e.value - 0.8).abs() < 1e-12, "{r:?}");
            assert!(e.interval.lower <= e.interval.upper);
        }
        assert_eq!(r.on_policy_value, 0.5);
    }

    #[test]
    fn bad_policies_are_rejected_with_the_reason() {
        assert!(Policy::new(&[(0, 0, 0.5)], 2, 1)
            .unwrap_err()
            .to_string()
            .contains("sum to 0.5"));
        assert!(Policy::new(&[(2, 0, 1.0)], 2, 1)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert!(Policy::new(&[(0, 0, 1.5), (1, 0, -0.5)], 2, 1)
            .unwrap_err()
            .to_string()
            .contains("not in [0, 1]"));
    }

    #[test]
    fn percentile_is_numpys_linear() {
        let s = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(percentile(&s, 0.0), 1.0);
        assert_eq!(percentile(&s, 0.5), 3.0);
        assert_eq!(percentile(&s, 1.0), 8.0);
        assert!((percentile(&s, 0.9) - 6.8).abs() < 1e-12);
    }
}
