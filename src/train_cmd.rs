//! `lusso train`, `lusso models …` and `lusso eval …`: training runs with a progress bar per iteration, the
//! model registry, and the Online Retail comparison protocol.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pipelines::config::BackendConfig;
use serde_json::json;
use training::data::{EventWeights, Interactions};
use training::eval::{Split, SplitSpec};
use training::job::{self, Report, Source, TrainSpec};
use training::matrix::IdIndex;
use training::model::Algo;
use training::registry::{IterationRecord, Registry};

/// Where models are stored.
#[derive(Args, Debug, Clone)]
pub(crate) struct RegistryArgs {
    /// Model registry directory (default: $LUSSO_DATA_DIR/models).
    #[arg(long, env = "LUSSO_MODELS_DIR", global = true)]
    models_dir: Option<PathBuf>,
}

impl RegistryArgs {
    pub(crate) fn open(&self, config: &BackendConfig) -> anyhow::Result<Registry> {
        open_registry(config, self.models_dir.clone())
    }
}

/// The registry at `dir`, else `LUSSO_MODELS_DIR`, else `$LUSSO_DATA_DIR/models`.
pub(crate) fn open_registry(
    config: &BackendConfig,
    dir: Option<PathBuf>,
) -> anyhow::Result<Registry> {
    let dir = dir
        .or_else(|| std::env::var_os("LUSSO_MODELS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| config.data_dir.join("models"));
    Registry::open(&dir).with_context(|| format!("opening the model registry at {}", dir.display()))
}

/// What data to read.
#[derive(Args, Debug, Clone)]
pub(crate) struct DataArgs {
    /// `auto` (the event log, or the built-in simulator when the log is empty), `log`, `sim[:USERS]`, or
    /// `csv:PATH` (`user,item,weight[,ts]`).
    #[arg(long, default_value = "auto")]
    source: String,
    /// Point-in-time cut: nothing after this RFC 3339 instant is read (default: now).
    #[arg(long)]
    as_of: Option<String>,
    /// Days of history before the cut.
    #[arg(long, default_value_t = 548)]
    window_days: u32,
    /// Weight of a product view.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    weight_view: f32,
    /// Weight of an add-to-cart.
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true)]
    weight_cart: f32,
    /// Weight of a purchased line.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    weight_purchase: f32,
    /// Weight of a returned line (negative: returns subtract).
    #[arg(long, default_value_t = -10.0, allow_negative_numbers = true)]
    weight_return: f32,
    /// Drop shoppers with fewer distinct items.
    #[arg(long, default_value_t = 1)]
    min_user_items: usize,
    /// Drop items with fewer distinct shoppers.
    #[arg(long, default_value_t = 1)]
    min_item_users: usize,
}

/// Hyperparameters shared by `train` and `eval`.
#[derive(Args, Debug, Clone)]
pub(crate) struct FitArgs {
    /// Algorithm: als, bpr or pop.
    #[arg(long, default_value = "als")]
    algo: String,
    /// Latent factors.
    #[arg(long, default_value_t = 64)]
    factors: usize,
    /// Iterations (default: 15 for ALS, 100 for BPR).
    #[arg(long)]
    iterations: Option<usize>,
    /// λ (default: 0.05 for ALS, 0.01 for BPR).
    #[arg(long)]
    regularization: Option<f32>,
    /// Confidence scale α.
    #[arg(long, default_value_t = 10.0)]
    alpha: f32,
    /// Confidence: `alpha` (α·w, as implicit), `one-plus-alpha` (1 + α·w) or `log[:EPSILON]`.
    #[arg(long, default_value = "alpha")]
    confidence: String,
    /// BPR learning rate.
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f32,
    /// ALS solver: cg or cholesky.
    #[arg(long, default_value = "cg")]
    solver: String,
    /// CG steps per solve.
    #[arg(long, default_value_t = 3)]
    cg_steps: usize,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl FitArgs {
    fn spec(&self) -> anyhow::Result<TrainSpec> {
        let solver = match self.solver.as_str() {
            "cg" => training::als::Solver::Cg,
            "cholesky" => training::als::Solver::Cholesky,
            other => bail!("solver: {other:?} is not cg or cholesky"),
        };
        let d = TrainSpec::default();
        Ok(TrainSpec {
            algo: self.algo.parse::<Algo>()?,
            factors: self.factors,
            iterations: self.iterations,
            regularization: self.regularization,
            alpha: self.alpha,
            confidence: self.confidence.clone(),
            learning_rate: self.learning_rate,
            solver,
            cg_steps: self.cg_steps,
            threads: self.threads.unwrap_or(d.threads),
            seed: self.seed,
            ..d
        })
    }
}

/// `lusso train`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct TrainArgs {
    #[command(subcommand)]
    action: Option<TrainAction>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    fit: FitArgs,
    /// Hold-out: `time:DAYS`, `leave-last-out` or `none` (train on everything, no metrics).
    #[arg(long, default_value = "leave-last-out")]
    split: String,
    /// Cut-off of the ranking metrics.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Evaluate on the hold-out every N iterations (0: only at the end).
    #[arg(long, default_value_t = 1)]
    eval_every: usize,
    /// Also compute the ALS training loss each iteration.
    #[arg(long)]
    loss: bool,
    /// Promote the new version right away.
    #[arg(long)]
    promote: bool,
    /// Print the result as JSON (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Subcommand, Debug)]
enum TrainAction {
    /// Write the training interactions (`user,item,weight`, aggregated per pair) as CSV.
    Data {
        #[command(flatten)]
        data: DataArgs,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn data_spec(d: &DataArgs, mut spec: TrainSpec) -> anyhow::Result<(Source, TrainSpec)> {
    spec.weights = EventWeights {
        view: d.weight_view,
        add_to_cart: d.weight_cart,
        purchase: d.weight_purchase,
        return_: d.weight_return,
    };
    spec.window_days = d.window_days;
    spec.as_of = d
        .as_of
        .as_deref()
        .map(crate::features_role::parse_as_of)
        .transpose()?;
    spec.min_user_items = d.min_user_items;
    spec.min_item_users = d.min_item_users;
    Ok((d.source.parse::<Source>()?, spec))
}

async fn load(
    config: &BackendConfig,
    source: &Source,
    spec: &TrainSpec,
) -> anyhow::Result<(Interactions, String)> {
    let log = match source {
        Source::Log | Source::Auto => Some(pipelines::log::open(config).await?),
        _ => None,
    };
    let bar = spinner("reading events");
    let out = job::load(source, log.as_ref(), config.catalog_seed, spec, &mut |r| {
        if let Report::Reading(n) = r {
            bar.set_position(n);
        }
    })
    .await?;
    bar.finish_and_clear();
    Ok(out)
}

fn spinner(what: &str) -> ProgressBar {
    let bar = crate::server::progress_bar(0, what);
    bar.set_style(
        ProgressStyle::with_template("{msg} {pos} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// `lusso train [data]`.
pub(crate) async fn train(config: BackendConfig, args: TrainArgs) -> anyhow::Result<()> {
    if let Some(TrainAction::Data { data, out }) = &args.action {
        let (source, spec) = data_spec(data, TrainSpec::default())?;
        let (interactions, name) = load(&config, &source, &spec).await?;
        let n = write_interactions(
            &interactions.filtered(spec.min_user_items, spec.min_item_users),
            out,
        )?;
        eprintln!(
            "wrote {n} (user, item) rows from {name} to {}",
            out.display()
        );
        return Ok(());
    }
    let mut spec = args.fit.spec()?;
    spec.split = args.split.parse::<SplitSpec>()?;
    spec.k = args.k;
    spec.eval_every = args.eval_every;
    spec.loss = args.loss;
    let (source, spec) = data_spec(&args.data, spec)?;
    spec.validate()?;
    let registry = args.registry.open(&config)?;
    let (interactions, name) = load(&config, &source, &spec).await?;
    let started = Instant::now();
    let trained = tokio::task::block_in_place(|| {
        let mut bar: Option<ProgressBar> = None;
        let out = job::train(interactions, name, &spec, &mut |r| {
            on_report(r, &mut bar, spec.k)
        });
        if let Some(b) = bar {
            b.finish();
        }
        out
    })?;
    let meta = registry.register(&trained.model, trained.meta)?;
    if args.promote {
        registry.promote(&meta.version)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&meta)?);
        return Ok(());
    }
    let d = &meta.data;
    println!(
        "{} on {} shoppers × {} items ({} entries) from {}, split {}, {:.3} s/iteration, {:.1} s in all",
        meta.algo.as_str(),
        d.users,
        d.items,
        d.interactions,
        d.source,
        meta.split,
        meta.seconds_per_iteration,
        started.elapsed().as_secs_f64()
    );
    match &meta.metrics {
        Some(m) => {
            println!("{:<14} {:>8}", "metric", format!("@{}", m.k));
            for (name, v) in [
                ("precision", m.precision_at_k),
                ("recall", m.recall_at_k),
                ("map", m.map_at_k),
                ("ndcg", m.ndcg_at_k),
                ("auc", m.auc_at_k),
                ("hit rate", m.hit_rate_at_k),
                ("coverage", m.coverage),
            ] {
                println!("{name:<14} {v:>8.4}");
            }
            println!(
                "({} test shoppers, {} held-out pairs)",
                m.test_users, m.test_pairs
            );
        }
        None => println!("no hold-out (split none): no metrics"),
    }
    println!(
        "registered version {}{}",
        meta.version,
        if args.promote { " (promoted)" } else { "" }
    );
    Ok(())
}

fn on_report(r: Report<'_>, bar: &mut Option<ProgressBar>, k: usize) {
    match r {
        Report::Reading(_) => {}
        Report::Prepared(users, items, entries, test) => {
            tracing::info!(
                users,
                items,
                entries,
                test_users = test,
                "training data ready"
            );
        }
        Report::Fitting(n) if n > 0 => {
            let b = crate::server::progress_bar(n as u64, "training");
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} it {msg} (eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix("training");
            *bar = Some(b);
        }
        Report::Fitting(_) => {}
        Report::Iteration(rec) => {
            let msg = iteration_message(rec, k);
            match bar {
                Some(b) if !b.is_hidden() => {
                    b.set_message(msg);
                    b.inc(1);
                }
                _ => tracing::info!(iteration = rec.iteration, "{msg}"),
            }
        }
    }
}

fn iteration_message(rec: &IterationRecord, k: usize) -> String {
    let mut parts = vec![format!("{:.3} s", rec.seconds)];
    if let Some(l) = rec.loss {
        parts.push(format!("loss {l:.6}"));
    }
    if let Some(c) = rec.correct {
        parts.push(format!("correct {:.1}%", c * 100.0));
    }
    if let Some(n) = rec.ndcg_at_k {
        parts.push(format!("ndcg@{k} {n:.4}"));
    }
    if let Some(p) = rec.precision_at_k {
        parts.push(format!("precision@{k} {p:.4}"));
    }
    parts.join(", ")
}

/// Writes aggregated `user,item,weight` rows; returns how many.
fn write_interactions(data: &Interactions, out: &Path) -> anyhow::Result<usize> {
    let m = data.matrix(|_| true);
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "user,item,weight")?;
    let mut csv = csv_writer_row_escape();
    for u in 0..m.rows {
        let (cols, vals) = m.row(u);
        for (c, v) in cols.iter().zip(vals) {
            writeln!(
                w,
                "{},{},{}",
                csv(data.users.id(u as u32)),
                csv(data.items.id(*c)),
                v
            )?;
        }
    }
    w.flush()?;
    Ok(m.nnz())
}

/// Quotes a CSV field when it needs it.
fn csv_writer_row_escape() -> impl FnMut(&str) -> String {
    |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
}

/// `lusso models …`.
#[derive(Subcommand, Debug)]
pub(crate) enum ModelsAction {
    /// Every version, newest first, with its metrics; the promoted one is marked.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One version's full metadata (JSON).
    Show { version: String },
    /// Make VERSION the model serving uses.
    Promote { version: String },
    /// Return to the version promoted before the current one.
    Rollback,
}

pub(crate) fn models(
    config: BackendConfig,
    registry: &RegistryArgs,
    action: ModelsAction,
) -> anyhow::Result<()> {
    let registry = registry.open(&config)?;
    match action {
        ModelsAction::List { json } => {
            let listing = training::api::listing(&registry)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
                return Ok(());
            }
            println!(
                "{:<2} {:<40} {:<4} {:<20} {:>8} {:>8} {:>9}",
                "", "version", "algo", "created", "ndcg", "prec", "entries"
            );
            for m in listing["models"].as_array().into_iter().flatten() {
                let metric = |k: &str| {
                    m["metrics"][k]
                        .as_f64()
                        .map_or("-".to_string(), |v| format!("{v:.4}"))
                };
                println!(
                    "{:<2} {:<40} {:<4} {:<20} {:>8} {:>8} {:>9}",
                    if m["promoted"] == json!(true) {
                        "*"
                    } else {
                        ""
                    },
                    m["version"].as_str().unwrap_or_default(),
                    m["algo"].as_str().unwrap_or_default(),
                    m["created_at"]
                        .as_str()
                        .unwrap_or_default()
                        .get(..19)
                        .unwrap_or_default(),
                    metric("ndcg_at_k"),
                    metric("precision_at_k"),
                    m["data"]["interactions"],
                );
            }
        }
        ModelsAction::Show { version } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&registry.meta(&version)?)?
            );
        }
        ModelsAction::Promote { version } => {
            let s = registry.promote(&version)?;
            println!("promoted {}", s.promoted.unwrap_or_default());
        }
        ModelsAction::Rollback => {
            let s = registry.rollback()?;
            println!("rolled back to {}", s.promoted.unwrap_or_default());
        }
    }
    Ok(())
}

/// `lusso eval …`.
#[derive(Subcommand, Debug)]
pub(crate) enum EvalAction {
    /// The Online Retail comparison protocol (see ARCHITECTURE) on the UCI CSV(.gz).
    OnlineRetail {
        path: PathBuf,
        #[command(flatten)]
        fit: FitArgs,
        /// Also write the split as train.csv / test.csv into this directory.
        #[arg(long)]
        write_split: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate on a given split: `user,item,weight` CSVs; test users = training users with test rows.
    Split {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        #[command(flatten)]
        fit: FitArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn eval(action: EvalAction) -> anyhow::Result<()> {
    let (split, users, items, fit, json_out, extra) = match action {
        EvalAction::OnlineRetail {
            path,
            fit,
            write_split,
            json,
        } => {
            let r = training::retail::load(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if let Some(dir) = write_split {
                r.write_csv(&dir)?;
            }
            let extra = json!({"rows_kept": r.rows_kept});
            (r.split, r.users, r.items, fit, json, extra)
        }
        EvalAction::Split {
            train,
            test,
            fit,
            json,
        } => {
            let (split, users, items) = csv_split(&train, &test)?;
            (split, users, items, fit, json, json!({}))
        }
    };
    let mut spec = fit.spec()?;
    spec.k = 10;
    spec.eval_every = 0;
    let mut bar = None;
    let fitted = training::job::fit_split(&split, &users, &items, &spec, &mut |r| {
        on_report(r, &mut bar, 10)
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let m = fitted.metrics.context("the split has no test users")?;
    let secs: Vec<f64> = fitted.history.iter().map(|h| h.seconds).collect();
    // Whole-fit wall time per iteration (setup included), as the implicit side measures `fit()`.
    let per_iteration = if secs.is_empty() {
        0.0
    } else {
        fitted.fit_seconds / secs.len() as f64
    };
    let out = json!({
        "algo": spec.algo.as_str(),
        "params": spec,
        "precision_at_10": m.precision_at_k,
        "recall_at_10": m.recall_at_k,
        "map_at_10": m.map_at_k,
        "ndcg_at_10": m.ndcg_at_k,
        "auc_at_10": m.auc_at_k,
        "hit_rate_at_10": m.hit_rate_at_k,
        "coverage": m.coverage,
        "seconds_per_iteration": per_iteration,
        "fit_seconds": fitted.fit_seconds,
        "iteration_seconds": secs,
        "train_users": users.len(),
        "train_items": items.len(),
        "train_entries": split.train.nnz(),
        "test_users": m.test_users,
        "test_pairs": m.test_pairs,
        "extra": extra,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for key in [
            "precision_at_10",
            "recall_at_10",
            "map_at_10",
            "ndcg_at_10",
            "coverage",
            "seconds_per_iteration",
        ] {
            println!("{key:<22} {:.4}", out[key].as_f64().unwrap_or_default());
        }
        println!("{} test users, {} pairs", m.test_users, m.test_pairs);
    }
    Ok(())
}

/// A split from two CSVs: ids in natural order from the training file; test rows of unknown users/items
/// are ignored.
fn csv_split(train: &Path, test: &Path) -> anyhow::Result<(Split, IdIndex, IdIndex)> {
    let tr = Interactions::from_csv(train)?.filtered(1, 1);
    let te = Interactions::from_csv(test)?;
    let m = tr.matrix(|_| true);
    let triples: Vec<(u32, u32, f32)> = te
        .rows
        .iter()
        .filter_map(|r| {
            let u = tr.users.get(te.users.id(r.user))?;
            let i = tr.items.get(te.items.id(r.item))?;
            Some((u, i, r.weight))
        })
        .collect();
    let held = training::matrix::Csr::from_triples(m.rows, m.cols, &triples);
    Ok((Split::new(m, &held), tr.users, tr.items))
}
