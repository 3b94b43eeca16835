//! A training run end to end: load interactions from a source, filter, split, scale to confidences, fit,
//! evaluate (per iteration and at the end), and describe the result as a registry version.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pipelines::catalog::Catalog;
use pipelines::log::EventLog;
use pipelines::sim::{SimConfig, Simulator};
use serde::{Deserialize, Serialize};

use crate::als::{self, AlsParams, Progress, Solver};
use crate::bpr::{self, BprParams};
use crate::data::{matrix_hash, Confidence, EventWeights, Interactions, Window};
use crate::eval::{self, Metrics, Split, SplitSpec};
use crate::linalg::Factors;
use crate::matrix::IdIndex;
use crate::model::{Algo, Model};
use crate::registry::{code_version, DataSummary, IterationRecord, ModelMeta};
use crate::{Error, Result};

/// Where training data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The event log if it holds any event in the window, else the built-in simulator.
    Auto,
    /// The configured event log (ClickHouse or embedded Parquet).
    Log,
    /// The built-in shopper simulator: `users` shoppers over the `days` before the as-of instant.
    Sim { users: usize, days: u32, seed: u64 },
    /// A `user,item,weight[,ts]` CSV file.
    Csv(PathBuf),
}

impl std::str::FromStr for Source {
    type Err = Error;
    /// `auto`, `log`, `sim`, `sim:USERS`, `csv:PATH` (or a path ending in `.csv` / `.csv.gz`).
    fn from_str(s: &str) -> Result<Source> {
        match s {
            "auto" => return Ok(Source::Auto),
            "log" => return Ok(Source::Log),
            "sim" => {
                return Ok(Source::Sim {
                    users: 2_000,
                    days: 30,
                    seed: 42,
                })
            }
            _ => {}
        }
        if let Some(n) = s.strip_prefix("sim:") {
            let users = n
                .parse::<usize>()
                .ok()
                .filter(|u| (1..=1_000_000).contains(u))
                .ok_or_else(|| {
                    Error::BadInput(format!(
                        "source: sim:{n}: USERS must be an integer in 1..=1000000"
                    ))
                })?;
            return Ok(Source::Sim {
                users,
                days: 30,
                seed: 42,
            });
        }
        if let Some(p) = s.strip_prefix("csv:") {
            return Ok(Source::Csv(PathBuf::from(p)));
        }
        if s.ends_with(".csv") || s.ends_with(".csv.gz") {
            return Ok(Source::Csv(PathBuf::from(s)));
        }
        Err(Error::BadInput(format!(
            "source: {s:?} is not auto, log, sim[:USERS] or csv:PATH"
        )))
    }
}

/// Everything a run needs besides the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSpec {
    pub algo: Algo,
    pub factors: usize,
    /// Default: 15 for ALS, 100 for BPR.
    pub iterations: Option<usize>,
    /// Default: 0.05 for ALS, 0.01 for BPR.
    pub regularization: Option<f32>,
    pub alpha: f32,
    /// `alpha`, `one-plus-alpha`, `log[:EPSILON]`.
    pub confidence: String,
    pub learning_rate: f32,
    pub solver: Solver,
    pub cg_steps: usize,
    pub threads: usize,
    pub seed: u64,
    pub split: SplitSpec,
    pub k: usize,
    /// Evaluate every N iterations (0: only at the end).
    pub eval_every: usize,
    /// Compute the ALS training loss each iteration.
    pub loss: bool,
    pub min_user_items: usize,
    pub min_item_users: usize,
    pub weights: EventWeights,
    /// Days of history before `as_of` (default 548 ≈ 18 months).
    pub window_days: u32,
    /// Point-in-time cut (default: now).
    pub as_of: Option<DateTime<Utc>>,
}

impl Default for TrainSpec {
    fn default() -> Self {
        TrainSpec {
            algo: Algo::Als,
            factors: 64,
            iterations: None,
            regularization: None,
            alpha: 10.0,
            confidence: "alpha".into(),
            learning_rate: 0.05,
            solver: Solver::Cg,
            cg_steps: 3,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            seed: 1,
            split: SplitSpec::LeaveLastOut,
            k: 10,
            eval_every: 1,
            loss: false,
            min_user_items: 1,
            min_item_users: 1,
            weights: EventWeights::default(),
            window_days: 548,
            as_of: None,
        }
    }
}

impl TrainSpec {
    fn window(&self) -> Window {
        Window {
            as_of: self.as_of.unwrap_or_else(Utc::now),
            days: self.window_days,
        }
    }

    fn als(&self) -> AlsParams {
        AlsParams {
            factors: self.factors,
            regularization: self.regularization.unwrap_or(0.05),
            iterations: self.iterations.unwrap_or(15),
            solver: self.solver,
            cg_steps: self.cg_steps,
            threads: self.threads,
            seed: self.seed,
        }
    }

    fn bpr(&self) -> BprParams {
        BprParams {
            factors: self.factors,
            learning_rate: self.learning_rate,
            regularization: self.regularization.unwrap_or(0.01),
            iterations: self.iterations.unwrap_or(100),
            threads: self.threads,
            seed: self.seed,
            verify_negative: true,
        }
    }

    /// Checks every setting before any data is read.
    pub fn validate(&self) -> Result<()> {
        Confidence::parse(&self.confidence, self.alpha)?;
        if self.k == 0 || self.k > 1000 {
            return Err(Error::BadInput(format!(
                "k: {} is out of range (1..=1000)",
                self.k
            )));
        }
        if self.window_days == 0 {
            return Err(Error::BadInput("window_days: must be at least 1".into()));
        }
        match self.algo {
            Algo::Als => self.als().validate(),
            Algo::Bpr => self.bpr().validate(),
            Algo::Pop => als::check_threads(self.threads),
        }
    }
}

/// Reports from a run.
#[derive(Debug)]
pub enum Report<'a> {
    /// Events read from the log so far.
    Reading(u64),
    /// Data loaded and split: (users, items, training entries, test users).
    Prepared(usize, usize, usize, usize),
    /// The number of iterations about to run.
    Fitting(usize),
    Iteration(&'a IterationRecord),
}

/// Loads interactions from `source` (with the window and weights of `spec`); returns them and the source's
/// name for the registry.
pub async fn load(
    source: &Source,
    log: Option<&Arc<dyn EventLog>>,
    catalog_seed: u64,
    spec: &TrainSpec,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<(Interactions, String)> {
    let window = spec.window();
    match source {
        Source::Csv(p) => {
            let mut data = Interactions::from_csv(p)?;
            if let (true, Some(as_of)) = (data.timed, spec.as_of) {
                // The point-in-time cut applies to timed CSV rows too.
                let cut = as_of.timestamp_millis();
                data.rows.retain(|r| r.ts_ms <= cut);
            }
            Ok((data, format!("csv:{}", p.display())))
        }
        Source::Sim { users, days, seed } => Ok((
            simulate(*users, *days, *seed, catalog_seed, &window, &spec.weights)?,
            format!("sim:{users}"),
        )),
        Source::Log | Source::Auto => {
            let log =
                log.ok_or_else(|| Error::BadInput("source: no event log is configured".into()))?;
            let data = Interactions::from_log(log, &spec.weights, &window, &mut |n| {
                report(Report::Reading(n))
            })
            .await?;
            if data.rows.is_empty() && *source == Source::Auto {
                tracing::info!(log = %log.describe(), "the event log has no interactions in the window: training on the built-in simulator");
                let users = 2_000;
                return Ok((
                    simulate(users, 30, 42, catalog_seed, &window, &spec.weights)?,
                    format!("sim:{users}"),
                ));
            }
            Ok((data, format!("log:{}", log.describe())))
        }
    }
}

/// The simulator's events over `days` before the as-of instant, as interactions.
fn simulate(
    users: usize,
    days: u32,
    seed: u64,
    catalog_seed: u64,
    window: &Window,
    weights: &EventWeights,
) -> Result<Interactions> {
    let catalog = Arc::new(Catalog::generate(catalog_seed));
    let start = window.as_of - chrono::Duration::days(i64::from(days.min(window.days)));
    let mut sim = Simulator::new(SimConfig::new(seed, users, start), catalog);
    let mut data = Interactions::default();
    loop {
        let batch = sim.next_events_until(window.as_of, 10_000);
        if batch.is_empty() {
            break;
        }
        for v in &batch {
            let e = pipelines::validate::validate_event(v, window.as_of).map_err(|errs| {
                Error::Internal(format!("simulator produced an invalid event: {errs:?}"))
            })?;
            data.push_event(&e, weights, window);
        }
    }
    data.timed = true;
    Ok(data)
}

/// A finished run: the model and its (not yet registered) metadata.
pub struct Trained {
    pub model: Model,
    pub meta: ModelMeta,
    pub split: Split,
}

/// Filters, splits, fits and evaluates.
pub fn train(
    data: Interactions,
    source: String,
    spec: &TrainSpec,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<Trained> {
    spec.validate()?;
    let data = data.filtered(spec.min_user_items, spec.min_item_users);
    if data.rows.is_empty() {
        return Err(Error::BadInput(format!("source: {source} has no interactions to train on (after the window and minimum counts)")));
    }
    let span = if data.timed { data.span() } else { None };
    let split = eval::split(&data, spec.split)?;
    report(Report::Prepared(
        data.users.len(),
        data.items.len(),
        split.train.nnz(),
        split.test.len(),
    ));
    let Fitted {
        model,
        metrics,
        history,
        ..
    } = fit_split(&split, &data.users, &data.items, spec, report)?;
    let fit_seconds: f64 = history.iter().map(|h| h.seconds).sum();
    let to_time = |ms: i64| DateTime::from_timestamp_millis(ms);
    let meta = ModelMeta {
        version: String::new(),
        algo: spec.algo,
        created_at: Utc::now(),
        code_version: code_version(),
        params: serde_json::to_value(spec).map_err(|e| Error::Internal(e.to_string()))?,
        data: DataSummary {
            source,
            users: data.users.len(),
            items: data.items.len(),
            interactions: split.train.nnz(),
            hash: matrix_hash(&split.train, &data.users, &data.items),
            from: span.and_then(|(a, _)| to_time(a)),
            until: span.and_then(|(_, b)| to_time(b)),
            as_of: data.timed.then(|| spec.window().as_of),
        },
        split: spec.split.to_string(),
        metrics,
        seconds_per_iteration: if history.is_empty() {
            0.0
        } else {
            fit_seconds / history.len() as f64
        },
        history,
    };
    Ok(Trained { model, meta, split })
}

/// A fitted model with its evaluation.
pub struct Fitted {
    pub model: Model,
    /// Final metrics (when the split has test users).
    pub metrics: Option<Metrics>,
    pub history: Vec<IterationRecord>,
    /// Wall seconds of the whole fit (confidence scaling, transpose, every iteration; not the evaluation),
    /// which is what a library's `fit()` call costs.
    pub fit_seconds: f64,
}

/// Fits `spec.algo` on a prepared split (training weights in `split.train`), evaluating every
/// `spec.eval_every` iterations and at the end (when the split has test users).
pub fn fit_split(
    split: &Split,
    users: &IdIndex,
    items: &IdIndex,
    spec: &TrainSpec,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<Fitted> {
    spec.validate()?;
    let pool = als::pool(spec.threads)?;
    let conf = Confidence::parse(&spec.confidence, spec.alpha)?;
    let train = &split.train;
    // The confidence matrix, once (ALS trains on it; the per-iteration loss reads it).
    let started = std::time::Instant::now();
    let confidence = (spec.algo == Algo::Als).then(|| train.map_values(|w| conf.apply(w)));
    let mut history: Vec<IterationRecord> = Vec::new();
    let eval_seconds = std::cell::Cell::new(0.0f64);
    report(Report::Fitting(match spec.algo {
        Algo::Als => spec.als().iterations,
        Algo::Bpr => spec.bpr().iterations,
        Algo::Pop => 0,
    }));
    let mut on_iteration = |p: &Progress<'_>| {
        let evaluate = !split.test.is_empty()
            && spec.eval_every > 0
            && p.iteration.is_multiple_of(spec.eval_every);
        let eval_started = std::time::Instant::now();
        let m = evaluate
            .then(|| pool.install(|| eval_factors(p.user_factors, p.item_factors, split, spec.k)));
        let loss = confidence.as_ref().filter(|_| spec.loss).map(|c| {
            als::loss(
                c,
                p.user_factors,
                p.item_factors,
                spec.regularization.unwrap_or(0.05),
            )
        });
        eval_seconds.set(eval_seconds.get() + eval_started.elapsed().as_secs_f64());
        let rec = IterationRecord {
            iteration: p.iteration,
            seconds: p.seconds,
            loss,
            correct: p.train_stat.map(|(_, v)| v),
            ndcg_at_k: m.map(|m| m.ndcg_at_k),
            precision_at_k: m.map(|m| m.precision_at_k),
        };
        report(Report::Iteration(&rec));
        history.push(rec);
    };
    let (uf, itf, reg) = match spec.algo {
        Algo::Als => {
            let p = spec.als();
            let c = confidence.as_ref().expect("built above for ALS");
            let (u, i) = als::fit(c, &p, &mut on_iteration)?;
            (u, i, p.regularization)
        }
        Algo::Bpr => {
            let p = spec.bpr();
            let (u, i) = bpr::fit(&positive_pattern(train), &p, &mut on_iteration)?;
            (u, i, p.regularization)
        }
        Algo::Pop => (Factors::zeros(0, 0), Factors::zeros(0, 0), 0.0),
    };
    // Time spent evaluating during the fit is not fitting.
    let fit_seconds = started.elapsed().as_secs_f64() - eval_seconds.get();
    let model = Model::new(spec.algo, users.clone(), items.clone(), uf, itf, train, reg);
    let metrics =
        (!split.test.is_empty()).then(|| pool.install(|| eval::evaluate(&model, split, spec.k)));
    Ok(Fitted {
        model,
        metrics,
        history,
        fit_seconds,
    })
}

/// The positive entries only (BPR learns from what was liked; a returned item is not a positive).
pub fn positive_pattern(m: &crate::matrix::Csr) -> crate::matrix::Csr {
    let mut triples = Vec::with_capacity(m.nnz());
    for u in 0..m.rows {
        let (cols, vals) = m.row(u);
        for (c, v) in cols.iter().zip(vals) {
            if *v > 0.0 {
                triples.push((u as u32, *c, 1.0));
            }
        }
    }
    crate::matrix::Csr::from_triples(m.rows, m.cols, &triples)
}

/// Metrics of raw factors on a split (during training, before a [`Model`] exists).
pub fn eval_factors(users: &Factors, items: &Factors, split: &Split, k: usize) -> Metrics {
    let rows: Vec<u32> = split.test.iter().map(|(u, _)| *u).collect();
    let recs = crate::model::recommend_rows(users, items, &rows, &split.train, k);
    eval::metrics(&recs, &split.test, split.train.cols, k)
}
