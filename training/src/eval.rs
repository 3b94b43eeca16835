//! Train/test splits and ranking metrics.
//!
//! # Splits
//! - `time:DAYS`: interactions before `last − DAYS` train; later ones are the test period.
//! - `leave-last-out`: each shopper's most recent positively weighted item is held out (all of that
//!   shopper's interactions with it leave the training matrix); shoppers with a single item stay whole.
//! - The ground truth `Tᵤ` of a training user is the set of items with a positive net weight in the held-out
//!   part that are in the training item set (some user trained on them) and that `u` has no training entry
//!   for. Test users are the training users with a non-empty `Tᵤ`.
//!
//! # Metrics at K (recommendations exclude the user's own training items)
//! With `hᵤ` the hits in the top K, `mᵤ = min(K, |Tᵤ|)`, `relᵢ ∈ {0,1}` at 1-based rank `i`:
//! - precision = `Σᵤ hᵤ / Σᵤ mᵤ` (a ratio of sums, as implicit computes it);
//! - recall = mean of `hᵤ / |Tᵤ|`;
//! - MAP = mean of `(Σᵢ relᵢ · precᵢ) / mᵤ`, `precᵢ` = hits in the first `i` over `i`;
//! - NDCG = mean of `DCG / IDCG`, `DCG = Σᵢ relᵢ / log₂(i + 1)`, IDCG over `mᵤ` positions;
//! - AUC = mean over users of implicit's truncated AUC: walking the top K, each miss adds the hits seen so far;
//!   then `(hᵤ + |Tᵤ|)/2 · (negatives − misses)` is added for the unranked rest, and the sum is divided by
//!   `|Tᵤ| · negatives` (`negatives` = items − `|Tᵤ|`);
//! - hit rate = share of test users with at least one hit;
//! - coverage = distinct items recommended to the test users / items in the training set.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::{Interaction, Interactions};
use crate::matrix::Csr;
use crate::model::Model;
use crate::{Error, Result};

/// How to hold out test data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitSpec {
    /// Train on everything; no metrics.
    None,
    /// The last `days` days are the test period.
    Time { days: u32 },
    /// Each user's most recent item is held out.
    LeaveLastOut,
}

impl std::str::FromStr for SplitSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<SplitSpec> {
        match s {
            "none" => Ok(SplitSpec::None),
            "leave-last-out" => Ok(SplitSpec::LeaveLastOut),
            _ => match s.strip_prefix("time:").map(str::parse::<u32>) {
                Some(Ok(days)) if days > 0 => Ok(SplitSpec::Time { days }),
                _ => Err(Error::BadInput(format!(
                    "split: {s:?} is not time:DAYS (DAYS ≥ 1), leave-last-out or none"
                ))),
            },
        }
    }
}

impl std::fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitSpec::None => write!(f, "none"),
            SplitSpec::Time { days } => write!(f, "time:{days}"),
            SplitSpec::LeaveLastOut => write!(f, "leave-last-out"),
        }
    }
}

/// A training matrix (weights, users × items) and the ground truth per test user.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Csr,
    /// `(user index, sorted item indices)`, users ascending.
    pub test: Vec<(u32, Vec<u32>)>,
}

impl Split {
    /// Builds the truth from a training matrix and the held-out (user, item, weight) triples.
    pub fn new(train: Csr, held_out: &Csr) -> Split {
        let mut in_train = vec![false; train.cols];
        for &i in &train.indices {
            in_train[i as usize] = true;
        }
        let mut test = Vec::new();
        for u in 0..held_out.rows.min(train.rows) {
            if train.row(u).0.is_empty() {
                continue;
            }
            let (cols, w) = held_out.row(u);
            let truth: Vec<u32> = cols
                .iter()
                .zip(w)
                .filter(|(&i, &w)| w > 0.0 && in_train[i as usize] && !train.contains(u, i))
                .map(|(&i, _)| i)
                .collect();
            if !truth.is_empty() {
                test.push((u as u32, truth));
            }
        }
        Split { train, test }
    }

    /// Number of (user, item) truth pairs.
    pub fn test_pairs(&self) -> usize {
        self.test.iter().map(|(_, t)| t.len()).sum()
    }
}

/// Splits interactions as `spec` says.
pub fn split(data: &Interactions, spec: SplitSpec) -> Result<Split> {
    match spec {
        SplitSpec::None => Ok(Split {
            train: data.matrix(|_| true),
            test: Vec::new(),
        }),
        SplitSpec::Time { days } => {
            if !data.timed {
                return Err(Error::BadInput(
                    "split: time:DAYS needs timestamps (a ts column in CSV data); use leave-last-out".into(),
                ));
            }
            let (_, last) = data
                .span()
                .ok_or_else(|| Error::BadInput("training data: no interactions".into()))?;
            let cut = last - i64::from(days) * 86_400_000;
            let train = data.matrix(|r| r.ts_ms < cut);
            let held = data.matrix(|r| r.ts_ms >= cut);
            Ok(Split::new(train, &held))
        }
        SplitSpec::LeaveLastOut => {
            // Each user's last positive interaction (latest ts, then latest row).
            let mut last: HashMap<u32, (i64, usize, u32)> = HashMap::new();
            for (n, r) in data.rows.iter().enumerate() {
                if r.weight > 0.0 {
                    let e = last.entry(r.user).or_insert((r.ts_ms, n, r.item));
                    if (r.ts_ms, n) >= (e.0, e.1) {
                        *e = (r.ts_ms, n, r.item);
                    }
                }
            }
            let all = data.matrix(|_| true);
            let held_item = |r: &Interaction| {
                last.get(&r.user)
                    .is_some_and(|&(_, _, i)| i == r.item && all.row(r.user as usize).0.len() > 1)
            };
            let train = data.matrix(|r| !held_item(r));
            let held = data.matrix(held_item);
            Ok(Split::new(train, &held))
        }
    }
}

/// Ranking metrics at `k` (definitions in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    pub k: usize,
    pub precision_at_k: f64,
    pub recall_at_k: f64,
    pub map_at_k: f64,
    pub ndcg_at_k: f64,
    pub auc_at_k: f64,
    pub hit_rate_at_k: f64,
    pub coverage: f64,
    pub test_users: usize,
    pub test_pairs: usize,
}

/// Evaluates `model` on the split: top `k` from all training items minus the user's own training items.
pub fn evaluate(model: &Model, split: &Split, k: usize) -> Metrics {
    let users: Vec<u32> = split.test.iter().map(|(u, _)| *u).collect();
    let recs = model.recommend_batch(&users, &split.train, k);
    metrics(&recs, &split.test, split.train.cols, k)
}

/// The metrics of given recommendation lists against the truth (`truth[n]` belongs to `recs[n]`).
pub fn metrics(recs: &[Vec<u32>], truth: &[(u32, Vec<u32>)], items: usize, k: usize) -> Metrics {
    let discount: Vec<f64> = (0..k).map(|i| 1.0 / ((i + 2) as f64).log2()).collect();
    let (mut hits_sum, mut m_sum) = (0usize, 0usize);
    let (mut recall, mut map, mut ndcg, mut auc, mut hit_users) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let mut recommended = vec![false; items];
    for (list, (_, t)) in recs.iter().zip(truth) {
        let m = k.min(t.len());
        let (mut hits, mut misses, mut ap, mut dcg, mut u_auc) = (0usize, 0usize, 0.0, 0.0, 0.0);
        for (rank, &i) in list.iter().take(k).enumerate() {
            recommended[i as usize] = true;
            if t.binary_search(&i).is_ok() {
                hits += 1;
                ap += hits as f64 / (rank + 1) as f64;
                dcg += discount[rank];
            } else {
                misses += 1;
                u_auc += hits as f64;
            }
        }
        let negatives = items.saturating_sub(t.len()) as f64;
        u_auc += (hits + t.len()) as f64 / 2.0 * (negatives - misses as f64);
        if negatives > 0.0 {
            auc += u_auc / (t.len() as f64 * negatives);
        }
        let idcg: f64 = discount[..m].iter().sum();
        hits_sum += hits;
        m_sum += m;
        recall += hits as f64 / t.len() as f64;
        map += ap / m as f64;
        ndcg += dcg / idcg;
        hit_users += usize::from(hits > 0);
    }
    let n = truth.len().max(1) as f64;
    Metrics {
        k,
        precision_at_k: if m_sum > 0 {
            hits_sum as f64 / m_sum as f64
        } else {
            0.0
        },
        recall_at_k: recall / n,
        map_at_k: map / n,
        ndcg_at_k: ndcg / n,
        auc_at_k: auc / n,
        hit_rate_at_k: hit_users as f64 / n,
        coverage: if items > 0 {
            recommended.iter().filter(|r| **r).count() as f64 / items as f64
        } else {
            0.0
        },
        test_users: truth.len(),
        test_pairs: truth.iter().map(|(_, t)| t.len()).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_the_written_definitions() {
        // User A: truth {1, 5}, recs [1, 2, 5] → hits at ranks 1 and 3.
        // User B: truth {7}, recs [3, 4, 6] → no hit.
        let recs = vec![vec![1, 2, 5], vec![3, 4, 6]];
        let truth = vec![(0, vec![1, 5]), (1, vec![7])];
        let m = metrics(&recs, &truth, 10, 3);
        assert!((m.precision_at_k - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall_at_k - 0.5).abs() < 1e-12);
        assert!((m.map_at_k - (1.0 + 2.0 / 3.0) / 2.0 / 2.0).abs() < 1e-12);
        let ndcg_a = (1.0 + 1.0 / 4f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((m.ndcg_at_k - ndcg_a / 2.0).abs() < 1e-12);
        assert_eq!(m.hit_rate_at_k, 0.5);
        assert_eq!(m.coverage, 0.6);
        // AUC, user A: one miss after one hit → 1; rest: (2+2)/2 · (8 − 1) = 14; / (2 · 8).
        // User B: 0 + (0+1)/2 · (9 − 3) = 3; / (1 · 9).
        assert!((m.auc_at_k - (15.0 / 16.0 + 3.0 / 9.0) / 2.0).abs() < 1e-12);
        assert_eq!((m.test_users, m.test_pairs), (2, 3));
    }

    #[test]
    fn splits_hold_out_only_new_items_of_training_users() {
        let mut d = Interactions::default();
        let rows = [
            ("u1", "a", 0),
            ("u1", "b", 1),
            ("u2", "a", 2),
            ("u2", "c", 3),
            ("u1", "c", 10),
            ("u3", "d", 11),
        ];
        for (u, i, t) in rows {
            let user = d.users.intern(u);
            let item = d.items.intern(i);
            d.rows.push(Interaction {
                user,
                item,
                weight: 1.0,
                ts_ms: t * 86_400_000,
            });
        }
        d.timed = true;
        let s = split(&d, SplitSpec::Time { days: 5 }).unwrap();
        // u1's c is new to u1 and c is a training item (u2); u3 is not a training user.
        assert_eq!(s.test, vec![(0, vec![2])]);
        let s = split(&d, SplitSpec::LeaveLastOut).unwrap();
        // u1's last is c (held out); u2's last is c too, u3 has one item and stays whole.
        assert!(!s.train.contains(0, 2) && !s.train.contains(1, 2));
        assert!(
            s.test.is_empty(),
            "c is no longer a training item: {:?}",
            s.test
        );
        assert!("time:0".parse::<SplitSpec>().is_err());
        assert_eq!(
            "time:7".parse::<SplitSpec>().unwrap(),
            SplitSpec::Time { days: 7 }
        );
    }
}
