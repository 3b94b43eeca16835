//! The Online Retail comparison protocol against implicit 0.7.3's measured quality (issue acceptance):
//! the split hashes, ALS and BPR means over seeds 1–5 within 0.003 of implicit's, both above popularity, and
//! bit-identical ALS factors for the same seed and thread count.
//!
//! implicit 0.7.3 on this protocol (measured here with `benches/implicit/protocol.py`, 2 threads, the same
//! hyperparameters): ALS NDCG@10 0.0805 and precision@10 0.0827 (the figures; 0.0794 / 0.0826 in our
//! own re-run), BPR NDCG@10 ≈ 0.052, popularity 0.0340.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use training::eval::Metrics;
use training::job::{fit_split, TrainSpec};
use training::model::Algo;
use training::retail::{self, RetailSplit};

const IMPLICIT_ALS_NDCG: f64 = 0.0805;
const IMPLICIT_ALS_PRECISION: f64 = 0.0827;
const IMPLICIT_BPR_NDCG: f64 = 0.052;
const POPULARITY_NDCG: f64 = 0.0340;

fn data() -> RetailSplit {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/online_retail/online_retail.csv.gz");
    retail::load(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared data folder sits next to the repository)",
            path.display()
        )
    })
}

fn sha256(path: &std::path::Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn spec(algo: Algo, seed: u64) -> TrainSpec {
    TrainSpec {
        algo,
        factors: 64,
        iterations: Some(if algo == Algo::Bpr { 100 } else { 15 }),
        regularization: Some(if algo == Algo::Bpr { 0.01 } else { 0.05 }),
        alpha: 10.0,
        learning_rate: 0.05,
        threads: 2,
        seed,
        k: 10,
        eval_every: 0,
        ..TrainSpec::default()
    }
}

fn run(r: &RetailSplit, algo: Algo, seed: u64) -> (training::model::Model, Metrics) {
    let f = fit_split(&r.split, &r.users, &r.items, &spec(algo, seed), &mut |_| {}).unwrap();
    (f.model, f.metrics.unwrap())
}

fn mean(r: &RetailSplit, algo: Algo) -> (f64, f64) {
    let runs: Vec<Metrics> = (1..=5).map(|s| run(r, algo, s).1).collect();
    let n = runs.len() as f64;
    (
        runs.iter().map(|m| m.ndcg_at_k).sum::<f64>() / n,
        runs.iter().map(|m| m.precision_at_k).sum::<f64>() / n,
    )
}

#[test]
fn split_matches_the_protocol_hashes() {
    let r = data();
    assert_eq!(r.rows_kept, 396_079);
    assert_eq!(r.split.train.nnz(), 230_535);
    assert_eq!((r.split.test.len(), r.split.test_pairs()), (1_287, 26_450));
    let dir = tempfile::tempdir().unwrap();
    r.write_csv(dir.path()).unwrap();
    assert_eq!(
        sha256(&dir.path().join("train.csv")),
        "23e2d5c4d4b92147afc2344d446c4303e3f4848a8e8a042d7c6198ba87449f6f"
    );
    assert_eq!(
        sha256(&dir.path().join("test.csv")),
        "9b06ba3f54a2fcf35e822fa1ac0c6dc8fe4b8b8a005f05b330cbc8be4f3f32e5"
    );
}

#[test]
fn als_and_bpr_match_implicit_and_beat_popularity() {
    let r = data();
    let pop = run(&r, Algo::Pop, 1).1;
    assert!(
        (pop.ndcg_at_k - POPULARITY_NDCG).abs() < 0.001,
        "popularity NDCG {}",
        pop.ndcg_at_k
    );
    let (als_ndcg, als_precision) = mean(&r, Algo::Als);
    println!("ALS mean NDCG@10 {als_ndcg:.4}, precision@10 {als_precision:.4}");
    assert!(
        als_ndcg >= IMPLICIT_ALS_NDCG - 0.003,
        "ALS NDCG@10 {als_ndcg}"
    );
    assert!(
        als_precision >= IMPLICIT_ALS_PRECISION - 0.003,
        "ALS precision@10 {als_precision}"
    );
    let (bpr_ndcg, bpr_precision) = mean(&r, Algo::Bpr);
    println!("BPR mean NDCG@10 {bpr_ndcg:.4}, precision@10 {bpr_precision:.4}");
    assert!(
        bpr_ndcg >= IMPLICIT_BPR_NDCG - 0.003,
        "BPR NDCG@10 {bpr_ndcg}"
    );
    assert!(als_ndcg > pop.ndcg_at_k && bpr_ndcg > pop.ndcg_at_k);
}

#[test]
fn als_factors_are_bit_identical_for_a_seed_and_thread_count() {
    let r = data();
    let (a, _) = run(&r, Algo::Als, 3);
    let (b, _) = run(&r, Algo::Als, 3);
    assert_eq!(a.user_factors, b.user_factors);
    assert_eq!(a.item_factors, b.item_factors);
    let (c, _) = run(&r, Algo::Als, 4);
    assert_ne!(a.item_factors, c.item_factors);
    // BPR with one thread, likewise.
    let one = |seed| {
        let mut s = spec(Algo::Bpr, seed);
        s.threads = 1;
        s.iterations = Some(5);
        fit_split(&r.split, &r.users, &r.items, &s, &mut |_| {})
            .unwrap()
            .model
    };
    assert_eq!(one(2).item_factors, one(2).item_factors);
}
