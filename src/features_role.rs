//! The features role (stream consumers, popularity refresher, scheduled segment training, API) and the
//! `lusso features …` / `lusso segments …` commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::Router;
use chrono::{DateTime, Utc};
use features::api::{self, FeaturesApi};
use features::consumer::{self, ConsumerConfig};
use features::metrics::FeatureMetrics;
use features::offline::{self, SnapshotSink};
use features::processor::Processor;
use features::{Context, FeaturesConfig};
use pipelines::bus::EventBus;
use pipelines::catalog::Catalog;
use pipelines::config::BackendConfig;
use pipelines::log::EventLog;
use pipelines::topics;
use tokio_util::sync::CancellationToken;

/// The features role's router and background tasks.
pub(crate) struct FeaturesRole {
    pub(crate) router: Router,
    /// The API state, also used by the bandits role to read a shopper's features.
    pub(crate) api: FeaturesApi,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the consumers and the periodic jobs; returns the API router.
pub(crate) async fn start(
    config: &BackendConfig,
    fcfg: FeaturesConfig,
    bus: Arc<dyn EventBus>,
    log: Option<Arc<dyn EventLog>>,
    registry: &prometheus::Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<FeaturesRole> {
    let store = features::store::open(&fcfg).await?;
    let ctx = Arc::new(Context::new(
        Arc::new(Catalog::generate(config.catalog_seed)),
        fcfg,
    ));
    let processor = Processor::new(ctx.clone(), store);
    let metrics = FeatureMetrics::new(registry);
    let mut tasks = Vec::new();
    let cfg = ConsumerConfig {
        events_topic: config.topic(topics::EVENTS),
        commerce_topic: config.topic(topics::COMMERCE),
        partitions: topics::default_partitions(),
    };
    let (p, token) = (processor.clone(), shutdown.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = consumer::run(bus, p, metrics, cfg, token).await {
            tracing::error!(error = %e, "features consumer stopped with an error");
        }
    }));
    let (p, token) = (processor.clone(), shutdown.clone());
    let every = Duration::from_secs(ctx.config.popularity_refresh_secs);
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! { _ = tokio::time::sleep(every) => {}, _ = token.cancelled() => return }
            if let Err(e) = consumer::refresh_popularity(&p).await {
                tracing::warn!(error = %e, "popularity refresh failed; retrying next period");
            }
        }
    }));
    let mut api = FeaturesApi::new(processor.clone());
    if let Some(log) = log {
        api = api.with_log(log.clone());
        let minutes = ctx.config.segments_refresh_minutes;
        if minutes > 0 {
            let (p, token) = (processor, shutdown);
            tasks.push(tokio::spawn(async move {
                // First run soon after start (the demo has history by then), then on the schedule.
                let mut wait = Duration::from_secs(120);
                loop {
                    tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = token.cancelled() => return }
                    wait = Duration::from_secs(minutes * 60);
                    match offline::train_segments(log.as_ref(), &p, Utc::now(), |_| {}).await {
                        Ok(m) => tracing::info!(k = m.k, shoppers = m.trained_on, "learned segments retrained"),
                        Err(e) => tracing::warn!(error = %e, "segment training failed; retrying next period"),
                    }
                }
            }));
        }
    }
    Ok(FeaturesRole {
        router: api::app(api.clone()),
        api,
        tasks,
    })
}

/// A read-only view of the feature store (no consumers), for roles that look shoppers up.
pub(crate) async fn lookup_api(
    config: &BackendConfig,
    fcfg: FeaturesConfig,
) -> anyhow::Result<FeaturesApi> {
    let store = features::store::open(&fcfg).await?;
    let ctx = Arc::new(Context::new(
        Arc::new(Catalog::generate(config.catalog_seed)),
        fcfg,
    ));
    Ok(FeaturesApi::new(Processor::new(ctx, store)))
}

/// Replay progress: the bar on a TTY, a log line every 500,000 events otherwise (pages are 50,000 events).
fn progress(bar: &indicatif::ProgressBar, events: u64) {
    bar.set_position(events);
    if events.is_multiple_of(500_000) {
        tracing::info!(events, "replaying the event log");
    }
}

/// Parses an `--as-of` instant: RFC 3339, or `now`.
pub(crate) fn parse_as_of(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if s == "now" {
        return Ok(Utc::now());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!(
                "--as-of `{s}`: expected an RFC 3339 time such as 2026-11-01T00:00:00Z, or `now`"
            )
        })
}

fn context(config: &BackendConfig) -> anyhow::Result<Arc<Context>> {
    let fcfg = FeaturesConfig::from_env()?;
    Ok(Arc::new(Context::new(
        Arc::new(Catalog::generate(config.catalog_seed)),
        fcfg,
    )))
}

/// `lusso features export --as-of T`.
pub(crate) async fn export(
    config: BackendConfig,
    as_of: &str,
    out: Option<PathBuf>,
    write: bool,
) -> anyhow::Result<()> {
    let as_of = parse_as_of(as_of)?;
    if as_of > Utc::now() + chrono::Duration::minutes(5) {
        bail!("--as-of {as_of} is in the future: features are only known up to now");
    }
    let log = pipelines::log::open(&config).await?;
    let ctx = context(&config)?;
    let bar = crate::server::progress_bar(0, "replaying events");
    let rows = offline::export_as_of(log.as_ref(), ctx, as_of, |n| progress(&bar, n)).await?;
    bar.finish_and_clear();
    tracing::info!(shoppers = rows.len(), %as_of, "export done");
    let mut text = String::new();
    for r in &rows {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    match out {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("--out {}", path.display()))?;
            eprintln!(
                "{} shoppers as of {as_of} written to {}",
                rows.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    if write {
        let sink = match &config.clickhouse_url {
            Some(url) => SnapshotSink::ClickHouse {
                url: url.clone(),
                database: config.clickhouse_database.clone(),
            },
            None => SnapshotSink::Parquet(config.data_dir.join("features")),
        };
        let at = offline::write_snapshot(&sink, as_of, &rows).await?;
        eprintln!("snapshot written to {at}");
    }
    Ok(())
}

/// `lusso segments train`.
pub(crate) async fn train(config: BackendConfig, json: bool) -> anyhow::Result<()> {
    let log = pipelines::log::open(&config).await?;
    let ctx = context(&config)?;
    let store = features::store::open(&ctx.config).await?;
    let embedded = ctx.config.redis_url.is_none();
    let processor = Processor::new(ctx, store);
    let bar = crate::server::progress_bar(0, "replaying events");
    let model = offline::train_segments(log.as_ref(), &processor, Utc::now(), |n| {
        bar.set_position(n)
    })
    .await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&model)?);
    } else {
        println!(
            "{} clusters over {} shoppers (trained {})",
            model.k, model.trained_on, model.trained_at
        );
        println!(
            "{:>7} {:>7} {:>10} {:>9} {:>11} {:>8}  {:<22} top categories",
            "cluster", "size", "recency_d", "orders", "spend_eur", "views30", "dominant segment"
        );
        for s in &model.summaries {
            let top: Vec<String> = s
                .top_categories
                .iter()
                .filter(|(_, v)| *v > 0.0)
                .take(3)
                .map(|(c, v)| format!("{c} {:.0}%", v * 100.0))
                .collect();
            let top = if top.is_empty() {
                "- (no catalogue categories)".to_string()
            } else {
                top.join(", ")
            };
            println!(
                "{:>7} {:>7} {:>10} {:>9.2} {:>11.2} {:>8.1}  {:<22} {}",
                s.cluster,
                s.size,
                s.mean_recency_days
                    .map_or("-".into(), |d| format!("{d:.1}")),
                s.mean_frequency,
                s.mean_monetary_eur,
                s.mean_views_30d,
                s.dominant_segment,
                top
            );
        }
    }
    if embedded {
        eprintln!(
            "note: no LUSSO_REDIS_URL, so the model was stored in this process only; a running demo retrains on its \
             own schedule, or POST /v1/segments/train to it"
        );
    }
    Ok(())
}

/// `lusso features verify`.
pub(crate) async fn verify(config: BackendConfig, as_of: &str, json: bool) -> anyhow::Result<()> {
    let as_of = parse_as_of(as_of)?;
    let ctx = context(&config)?;
    if ctx.config.redis_url.is_none() {
        bail!(
            "LUSSO_REDIS_URL is not set: verify compares a shared online store with the event log"
        );
    }
    let log = pipelines::log::open(&config).await?;
    let store = features::store::open(&ctx.config).await?;
    let online = Processor::new(ctx, store);
    let bar = crate::server::progress_bar(0, "replaying events");
    let report = offline::verify(&online, log.as_ref(), as_of, |n| progress(&bar, n)).await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} events replayed; {} shoppers and {} products checked; {} differences",
            report.events, report.users_checked, report.products_checked, report.mismatch_count
        );
        for m in &report.mismatches {
            println!("  {m}");
        }
    }
    if report.mismatch_count > 0 {
        std::process::exit(1);
    }
    Ok(())
}
