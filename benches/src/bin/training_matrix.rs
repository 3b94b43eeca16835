//! Training-matrix build benchmark (issue: training data, "memory stated for 10M interactions").
//!
//! Builds the user × item CSR (and its transpose, which ALS also needs) from `--interactions` random
//! `(user, item, weight)` rows with power-law item popularity, and in the same run the textbook baseline:
//! sort all triples by (user, item), merge duplicates, then cut rows. Reports seconds for each, the ratio, the
//! CSR's bytes and the process's peak resident memory (VmHWM).
//! Run: `cargo run --release -p lusso-benches --bin training_matrix -- --interactions 10000000`

use std::time::Instant;

use clap::Parser;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use training::matrix::Csr;

#[derive(Parser)]
struct Args {
    /// Interaction rows (before aggregation).
    #[arg(long, default_value_t = 10_000_000)]
    interactions: usize,
    /// Distinct users.
    #[arg(long, default_value_t = 1_000_000)]
    users: usize,
    /// Distinct items.
    #[arg(long, default_value_t = 50_000)]
    items: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sort + merge baseline.
fn baseline(rows: usize, cols: usize, triples: &[(u32, u32, f32)]) -> Csr {
    let mut t = triples.to_vec();
    t.sort_unstable_by_key(|&(u, i, _)| (u, i));
    let mut indptr = vec![0usize; rows + 1];
    let (mut indices, mut data) = (Vec::new(), Vec::<f32>::new());
    let mut last: Option<(u32, u32)> = None;
    for (u, i, w) in t {
        if last == Some((u, i)) {
            if let Some(d) = data.last_mut() {
                *d += w;
            }
            continue;
        }
        last = Some((u, i));
        indices.push(i);
        data.push(w);
        indptr[u as usize + 1] += 1;
    }
    for r in 0..rows {
        indptr[r + 1] += indptr[r];
    }
    Csr {
        rows,
        cols,
        indptr,
        indices,
        data,
    }
}

fn main() {
    let a = Args::parse();
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let triples: Vec<(u32, u32, f32)> = (0..a.interactions)
        .map(|_| {
            let u = rng.random_range(0..a.users as u32);
            // Power-law popularity: item = items · r³.
            let r: f64 = rng.random();
            let i = ((a.items as f64) * r * r * r) as u32;
            (
                u,
                i.min(a.items as u32 - 1),
                [1.0, 4.0, 10.0][rng.random_range(0..3)],
            )
        })
        .collect();
    let rss_input = peak_rss_mib();
    let started = Instant::now();
    let base = baseline(a.users, a.items, &triples);
    let base_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let csr = Csr::from_triples(a.users, a.items, &triples);
    let build_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let t = csr.transpose();
    let transpose_s = started.elapsed().as_secs_f64();
    assert_eq!(csr.indptr, base.indptr, "the two builds disagree");
    assert_eq!(csr.indices, base.indices, "the two builds disagree");
    println!(
        "{} interactions → {} users × {} items, {} entries",
        a.interactions,
        a.users,
        a.items,
        csr.nnz()
    );
    println!("baseline sort + merge: {base_s:.3} s");
    println!(
        "counting-sort build:   {build_s:.3} s ({:.2}× the baseline's time)",
        build_s / base_s
    );
    println!("transpose:             {transpose_s:.3} s");
    println!(
        "CSR {:.0} MiB + transpose {:.0} MiB; peak RSS {:.0} MiB (input triples alone: {:.0} MiB)",
        csr.memory_bytes() as f64 / 1048576.0,
        t.memory_bytes() as f64 / 1048576.0,
        peak_rss_mib(),
        rss_input
    );
}
