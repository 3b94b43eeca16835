//! A trained model as serving uses it: id maps, factors, item popularity; recommendations (user · item
//! factors, partial top-k), similar items (cosine over item factors), fold-in for unseen users, and the
//! binary file it is stored in.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::als;
use crate::linalg::{dot, top_k, Factors};
use crate::matrix::{Csr, IdIndex};
use crate::{Error, Result};

/// The algorithm a model was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Algo {
    Als,
    Bpr,
    Pop,
}

impl Algo {
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Als => "als",
            Algo::Bpr => "bpr",
            Algo::Pop => "pop",
        }
    }

    fn code(self) -> u8 {
        match self {
            Algo::Als => 1,
            Algo::Bpr => 2,
            Algo::Pop => 3,
        }
    }
}

impl std::str::FromStr for Algo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Algo> {
        match s {
            "als" => Ok(Algo::Als),
            "bpr" => Ok(Algo::Bpr),
            "pop" => Ok(Algo::Pop),
            _ => Err(Error::BadInput(format!(
                "algo: {s:?} is not one of als, bpr, pop"
            ))),
        }
    }
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub algo: Algo,
    pub users: IdIndex,
    pub items: IdIndex,
    /// `users × k` (empty for `pop`).
    pub user_factors: Factors,
    /// `items × k` (empty for `pop`).
    pub item_factors: Factors,
    /// Per item: distinct training users (the popularity baseline and the fallback order).
    pub popularity: Vec<f32>,
    /// λ used in training (fold-in solves with it).
    pub regularization: f32,
    /// `1 / ‖yᵢ‖` per item (0 for a zero vector), for similar items.
    inv_norms: Vec<f32>,
    /// `YᵀY + λI`, for ALS fold-in.
    yty: Vec<f32>,
}

impl Model {
    /// Assembles a model; `popularity` is computed from the training matrix.
    pub fn new(
        algo: Algo,
        users: IdIndex,
        items: IdIndex,
        user_factors: Factors,
        item_factors: Factors,
        train: &Csr,
        regularization: f32,
    ) -> Model {
        let mut popularity = vec![0f32; items.len()];
        for &i in &train.indices {
            popularity[i as usize] += 1.0;
        }
        Model::assemble(
            algo,
            users,
            items,
            user_factors,
            item_factors,
            popularity,
            regularization,
        )
    }

    fn assemble(
        algo: Algo,
        users: IdIndex,
        items: IdIndex,
        user_factors: Factors,
        item_factors: Factors,
        popularity: Vec<f32>,
        regularization: f32,
    ) -> Model {
        let inv_norms = (0..item_factors.rows)
            .map(|i| {
                let n = dot(item_factors.row(i), item_factors.row(i)).sqrt();
                if n > 0.0 {
                    1.0 / n
                } else {
                    0.0
                }
            })
            .collect();
        let yty = if algo == Algo::Als {
            item_factors.gram(regularization)
        } else {
            Vec::new()
        };
        Model {
            algo,
            users,
            items,
            user_factors,
            item_factors,
            popularity,
            regularization,
            inv_norms,
            yty,
        }
    }

    /// Latent dimensions (0 for `pop`).
    pub fn k(&self) -> usize {
        self.item_factors.k
    }

    /// Scores of every item for a user vector (`None` = the popularity baseline).
    pub fn scores(&self, user: Option<&[f32]>) -> Vec<f32> {
        match (self.algo, user) {
            (Algo::Pop, _) | (_, None) => self.popularity.clone(),
            (_, Some(x)) => {
                let mut out = Vec::with_capacity(self.item_factors.rows);
                crate::simd::score_rows(x, &self.item_factors, &mut out);
                out
            }
        }
    }

    /// The trained user vector of a known user.
    pub fn user_vector(&self, user_id: &str) -> Option<&[f32]> {
        if self.algo == Algo::Pop {
            return None;
        }
        self.users
            .get(user_id)
            .map(|u| self.user_factors.row(u as usize))
    }

    /// Top `k` item indices for a user vector (or popularity), skipping `skip`.
    pub fn recommend(
        &self,
        user: Option<&[f32]>,
        k: usize,
        skip: impl Fn(usize) -> bool,
    ) -> Vec<(u32, f32)> {
        top_k(&self.scores(user), k, skip)
    }

    /// Top `k` for many training users at once (parallel in the current rayon pool), each skipping the
    /// items of its own row in `seen`.
    pub fn recommend_batch(&self, user_rows: &[u32], seen: &Csr, k: usize) -> Vec<Vec<u32>> {
        if self.algo != Algo::Pop {
            return recommend_rows(&self.user_factors, &self.item_factors, user_rows, seen, k);
        }
        let best = top_k(&self.popularity, self.popularity.len(), |_| false);
        user_rows
            .iter()
            .map(|&u| {
                let own = seen.row(u as usize).0;
                best.iter()
                    .map(|(i, _)| *i)
                    .filter(|i| own.binary_search(i).is_err())
                    .take(k)
                    .collect()
            })
            .collect()
    }

    /// The `k` items most similar to `item` by cosine of their factors (popularity order for `pop`).
    pub fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        if self.algo == Algo::Pop {
            return top_k(&self.popularity, k, |i| i == item as usize);
        }
        top_k(&self.cosine_scores(item), k, |j| j == item as usize)
    }

    /// Cosine of `item`'s factors with every item's (0 against a zero vector).
    pub fn cosine_scores(&self, item: u32) -> Vec<f32> {
        let y = self.item_factors.row(item as usize);
        let inv = self.inv_norms[item as usize];
        let mut scores = Vec::with_capacity(self.item_factors.rows);
        crate::simd::score_rows(y, &self.item_factors, &mut scores);
        for (s, n) in scores.iter_mut().zip(&self.inv_norms) {
            *s *= inv * n;
        }
        scores
    }

    /// A user vector for someone the model never saw, from their recent interactions (`(item id, weight)`;
    /// unknown items are ignored), without retraining. ALS: the exact least-squares solve against the item
    /// factors. BPR: 30 SGD passes over the user's items against deterministic negatives, item factors
    /// fixed. `None` when no item is known (or for `pop`).
    pub fn fold_in(&self, interactions: &[(String, f32)]) -> Option<Vec<f32>> {
        let known: Vec<(u32, f32)> = interactions
            .iter()
            .filter_map(|(id, w)| self.items.get(id).map(|i| (i, *w)))
            .collect();
        if known.is_empty() {
            return None;
        }
        match self.algo {
            Algo::Pop => None,
            Algo::Als => Some(als::fold_in(&self.yty, &self.item_factors, &known)),
            Algo::Bpr => Some(self.bpr_fold_in(&known)),
        }
    }

    fn bpr_fold_in(&self, known: &[(u32, f32)]) -> Vec<f32> {
        let k = self.k();
        let n = self.items.len() as u64;
        let mut x = vec![0f32; k];
        x[k - 1] = 1.0;
        let mut liked: Vec<u32> = known
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(i, _)| *i)
            .collect();
        liked.sort_unstable();
        liked.dedup();
        let mut state = 0x2545_F491_4F6C_DD1Du64 ^ liked.iter().map(|&i| u64::from(i)).sum::<u64>();
        let (lr, reg) = (0.05f32, self.regularization.max(0.01));
        for _ in 0..30 {
            for &i in &liked {
                // xorshift: a deterministic negative the user has not interacted with.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = (state % n) as u32;
                if liked.binary_search(&j).is_ok() {
                    continue;
                }
                let (yi, yj) = (
                    self.item_factors.row(i as usize),
                    self.item_factors.row(j as usize),
                );
                let score: f32 = (0..k).map(|c| x[c] * (yi[c] - yj[c])).sum();
                let z = 1.0 / (1.0 + score.exp());
                for c in 0..k - 1 {
                    x[c] += lr * (z * (yi[c] - yj[c]) - reg * x[c]);
                }
            }
        }
        x
    }

    /// Writes the model to `path` (atomically: a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut b = Vec::with_capacity(
            64 + 4
                * (self.user_factors.data.len()
                    + self.item_factors.data.len()
                    + self.popularity.len()),
        );
        b.extend_from_slice(MAGIC);
        b.push(self.algo.code());
        for n in [
            self.users.len(),
            self.items.len(),
            self.user_factors.k,
            self.item_factors.k,
        ] {
            b.extend_from_slice(&(n as u64).to_le_bytes());
        }
        b.extend_from_slice(&self.regularization.to_le_bytes());
        for id in self.users.ids().iter().chain(self.items.ids()) {
            b.extend_from_slice(&(id.len() as u32).to_le_bytes());
            b.extend_from_slice(id.as_bytes());
        }
        for v in self
            .user_factors
            .data
            .iter()
            .chain(&self.item_factors.data)
            .chain(&self.popularity)
        {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&b).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a model written by [`Model::save`].
    pub fn load(path: &Path) -> Result<Model> {
        let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad =
            |what: &str| Error::Internal(format!("{}: corrupt model file: {what}", path.display()));
        let mut r = Reader { b: &b, at: 0 };
        if r.take(MAGIC.len()).ok_or_else(|| bad("too short"))? != MAGIC {
            return Err(bad("not a Lusso model (magic)"));
        }
        let algo = match r.take(1).ok_or_else(|| bad("algo"))?[0] {
            1 => Algo::Als,
            2 => Algo::Bpr,
            3 => Algo::Pop,
            other => return Err(bad(&format!("algo code {other}"))),
        };
        let mut dims = [0usize; 4];
        for d in &mut dims {
            *d = r.u64().ok_or_else(|| bad("dimensions"))? as usize;
        }
        let [n_users, n_items, ku, ki] = dims;
        let reg = f32::from_le_bytes(r.array().ok_or_else(|| bad("regularization"))?);
        let mut ids = |n: usize| -> Result<IdIndex> {
            let mut v = Vec::with_capacity(n.min(1 << 24));
            for _ in 0..n {
                let len = r.u32().ok_or_else(|| bad("id length"))? as usize;
                let s = r.take(len).ok_or_else(|| bad("id"))?;
                v.push(String::from_utf8(s.to_vec()).map_err(|_| bad("id is not UTF-8"))?);
            }
            Ok(IdIndex::new(v))
        };
        let users = ids(n_users)?;
        let items = ids(n_items)?;
        let mut floats = |n: usize| -> Result<Vec<f32>> {
            let s = r
                .take(n.checked_mul(4).ok_or_else(|| bad("size"))?)
                .ok_or_else(|| bad("factors"))?;
            Ok(s.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let uf = floats(n_users * ku)?;
        let itf = floats(n_items * ki)?;
        let pop = floats(n_items)?;
        if r.at != b.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Model::assemble(
            algo,
            users,
            items,
            Factors {
                rows: if ku == 0 { 0 } else { n_users },
                k: ku,
                data: uf,
            },
            Factors {
                rows: if ki == 0 { 0 } else { n_items },
                k: ki,
                data: itf,
            },
            pop,
            reg,
        ))
    }
}

/// Top `k` items for each of `rows` (user rows of `users`), skipping the row's own entries in `seen`;
/// parallel over users in the current rayon pool, one score buffer per thread.
pub fn recommend_rows(
    users: &Factors,
    items: &Factors,
    rows: &[u32],
    seen: &Csr,
    k: usize,
) -> Vec<Vec<u32>> {
    rows.par_iter()
        .map_init(
            || Vec::with_capacity(items.rows),
            |scores, &u| {
                crate::simd::score_rows(users.row(u as usize), items, scores);
                let own = seen.row(u as usize).0;
                top_k(scores, k, |i| own.binary_search(&(i as u32)).is_ok())
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect()
            },
        )
        .collect()
}

const MAGIC: &[u8] = b"LUSSOMF1";

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(algo: Algo) -> Model {
        let train = Csr::from_triples(2, 3, &[(0, 0, 1.0), (1, 0, 1.0), (1, 2, 1.0)]);
        let (uf, itf) = match algo {
            Algo::Pop => (Factors::zeros(0, 0), Factors::zeros(0, 0)),
            _ => (
                Factors {
                    rows: 2,
                    k: 2,
                    data: vec![1.0, 0.0, 0.0, 1.0],
                },
                Factors {
                    rows: 3,
                    k: 2,
                    data: vec![1.0, 0.1, 0.9, 0.2, 0.0, 1.0],
                },
            ),
        };
        Model::new(
            algo,
            IdIndex::new(vec!["u1".into(), "u2".into()]),
            IdIndex::new(vec!["a".into(), "b".into(), "c".into()]),
            uf,
            itf,
            &train,
            0.1,
        )
    }

    #[test]
    fn recommends_similar_and_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        for algo in [Algo::Als, Algo::Bpr, Algo::Pop] {
            let m = model(algo);
            let path = dir.path().join(format!("{}.bin", algo.as_str()));
            m.save(&path).unwrap();
            assert_eq!(Model::load(&path).unwrap(), m);
        }
        let m = model(Algo::Als);
        let x = m.user_vector("u1").unwrap();
        assert_eq!(
            m.recommend(Some(x), 2, |i| i == 0),
            vec![(1, 0.9), (2, 0.0)]
        );
        assert_eq!(m.similar_items(0, 1)[0].0, 1);
        assert_eq!(
            model(Algo::Pop).recommend(None, 1, |_| false),
            vec![(0, 2.0)]
        );
        assert!(m.fold_in(&[("zzz".into(), 1.0)]).is_none());
        let f = m.fold_in(&[("c".into(), 10.0)]).unwrap();
        assert!(dot(&f, m.item_factors.row(2)) > dot(&f, m.item_factors.row(0)));
    }

    #[test]
    fn a_truncated_or_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        model(Algo::Als).save(&path).unwrap();
        let b = std::fs::read(&path).unwrap();
        std::fs::write(&path, &b[..b.len() - 3]).unwrap();
        assert!(Model::load(&path)
            .unwrap_err()
            .to_string()
            .contains("corrupt"));
        std::fs::write(&path, b"hello").unwrap();
        assert!(Model::load(&path)
            .unwrap_err()
            .to_string()
            .contains("corrupt"));
    }
}
