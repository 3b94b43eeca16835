//! `lusso`: the command line and composition root of every Lusso role.

mod access;
#[cfg(test)]
mod access_tests;
mod backends;
mod bandits_role;
mod commerce_role;
mod features_role;
mod ope_cmd;
mod server;
mod serving_demo;
mod serving_role;
mod simulate;
mod train_cmd;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use pipelines::bus::{memory::MemoryBus, memory::MemoryBusConfig, EventBus, Record};
use pipelines::config::BackendConfig;
use pipelines::topics;

/// Lusso: streaming data and ML personalization for fashion commerce.
///
/// Backends come from the environment: LUSSO_KAFKA_BROKERS (else the embedded bus),
/// LUSSO_CLICKHOUSE_URL (else Parquet files under LUSSO_DATA_DIR, default ./data),
/// LUSSO_HTTP_ADDR (default 127.0.0.1:8080).
#[derive(Parser)]
#[command(name = "lusso", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything embedded (no external service), the shopper simulator on, server on LUSSO_HTTP_ADDR.
    Demo {
        /// Simulated shoppers.
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// Simulated events per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Simulator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Address to listen on.
        #[arg(long, env = "LUSSO_HTTP_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Run one role (or all) with backends from the LUSSO_* environment.
    Serve {
        /// Which role this process plays.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
        /// Address to listen on (every role serves /healthz and /metrics).
        #[arg(long, env = "LUSSO_HTTP_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
        /// Use in-process stand-ins for every backend variable that is unset, and enable the `fake` payment
        /// provider (development). Without it, a role whose backends are not all configured refuses to start.
        #[arg(long)]
        embedded: bool,
    },
    /// Post simulated shopper events through a running collector over HTTP.
    Simulate(simulate::SimulateArgs),
    /// Import a public dataset as events through the bus.
    Import {
        #[command(subcommand)]
        dataset: ImportDataset,
    },
    /// Run SQL over the event log (ClickHouse when LUSSO_CLICKHOUSE_URL is set, else Parquet) and print a
    /// table. The table is `events`; in ClickHouse read it with `FINAL` for exactly one row per event_id.
    Query {
        /// The SQL statement.
        sql: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Offline features: point-in-time exports for training and reward models.
    Features {
        #[command(subcommand)]
        action: FeaturesAction,
    },
    /// Learned customer segments (k-means over RFM, behaviour and category affinities).
    Segments {
        #[command(subcommand)]
        action: SegmentsAction,
    },
    /// Train a recommendation model (ALS, BPR or popularity) and register it as a new version.
    Train(Box<train_cmd::TrainArgs>),
    /// The model registry: list, show, promote, rollback.
    Models {
        #[command(subcommand)]
        action: train_cmd::ModelsAction,
        #[command(flatten)]
        registry: train_cmd::RegistryArgs,
    },
    /// Offline evaluation protocols (Online Retail, any CSV split) for comparisons with other libraries.
    Eval {
        #[command(subcommand)]
        action: train_cmd::EvalAction,
    },
    /// Off-policy evaluation: IPW, SNIPW, DM and DR estimates (with bootstrap intervals) of a policy on a log.
    Ope(ope_cmd::OpeArgs),
    /// Inspect or replay rejected events ("bad rows").
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
        /// With the embedded bus the quarantine lives in the running server: reach it here.
        #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// With --url: an API key with `data:read` (list) or `data:admin` (replay); default: the demo's
        /// keys.json in LUSSO_DATA_DIR.
        #[arg(long, global = true, env = "LUSSO_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// API keys: list, create (printed once), revoke. Stored hashed in PostgreSQL (LUSSO_DATABASE_URL) or
    /// in LUSSO_DATA_DIR/api_keys.json.
    Keys {
        #[command(subcommand)]
        action: access::KeysAction,
    },
}

#[derive(Subcommand)]
enum ImportDataset {
    /// UCI Online Retail (`online_retail.csv.gz`): purchases and returns.
    OnlineRetail {
        /// Path to the .csv.gz (or .csv) file.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum FeaturesAction {
    /// Every shopper's features as they were at an instant (replayed from the event log; nothing after the instant
    /// is read). JSON lines on stdout or to --out.
    Export {
        /// RFC 3339 instant (e.g. 2026-11-01T00:00:00Z) or `now`.
        #[arg(long)]
        as_of: String,
        /// Write JSON lines to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also store the snapshot: ClickHouse `user_features` (LUSSO_CLICKHOUSE_URL) or Parquet under
        /// LUSSO_DATA_DIR/features.
        #[arg(long)]
        write: bool,
    },
    /// Compare the online store (LUSSO_REDIS_URL) with a from-scratch recomputation over the event log; exits 1 on
    /// any difference. Run it when the consumers have caught up.
    Verify {
        /// RFC 3339 instant or `now`.
        #[arg(long, default_value = "now")]
        as_of: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SegmentsAction {
    /// Train the clusters from the event log, store the model (LUSSO_REDIS_URL) and print the summaries.
    Train {
        /// Print the model as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Print bad rows with their reasons.
    List {
        /// Most rows to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-validate bad rows and send the ones that now pass to the events topic.
    Replay,
}

/// Roles a process can play.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// Collector, sink, features, bandits and the model registry in one process.
    All,
    /// HTTP collector only.
    Collector,
    /// Bus → event-log sink only.
    Sink,
    /// Feature consumers (bus → Redis / in-memory store) and the features API.
    Features,
    /// The bandit service: decisions, reward joining, slots, reports and the dashboard (state in
    /// PostgreSQL when LUSSO_DATABASE_URL is set).
    Bandits,
    /// Recommendations, similar items, merchandising rules, prices and A/B experiments, reading the
    /// feature store and the model registry (rules and experiments in PostgreSQL when LUSSO_DATABASE_URL is
    /// set).
    Serving,
    /// Carts, checkout, multi-location inventory, returns and e-invoices, with the outbox relay to
    /// lusso.commerce.v1 (state in PostgreSQL when LUSSO_DATABASE_URL is set; prices from serving's price
    /// book).
    Commerce,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LUSSO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// mimalloc rather than glibc's malloc: a serving process holds ~1M small catalogue strings, which mimalloc
/// keeps without per-chunk headers, and it returns freed pages (e.g. after catalogue generation) to the OS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    let config = BackendConfig::from_env();
    match cli.command {
        Command::Demo {
            users,
            rate,
            seed,
            addr,
        } => server::demo(config, &addr, users, rate, seed).await,
        Command::Serve {
            role,
            addr,
            embedded,
        } => server::serve(config, role, &addr, embedded).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Import {
            dataset: ImportDataset::OnlineRetail { path },
        } => import_online_retail(config, &path).await,
        Command::Query { sql, json } => {
            let log = pipelines::log::open(&config).await?;
            let result = log.query(&sql).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", result.to_table());
            }
            Ok(())
        }
        Command::Quarantine { action, url, key } => {
            quarantine(config, action, &url, key.as_deref()).await
        }
        Command::Keys { action } => access::keys(config, action).await,
        Command::Features {
            action: FeaturesAction::Export { as_of, out, write },
        } => features_role::export(config, &as_of, out, write).await,
        Command::Features {
            action: FeaturesAction::Verify { as_of, json },
        } => features_role::verify(config, &as_of, json).await,
        Command::Segments {
            action: SegmentsAction::Train { json },
        } => features_role::train(config, json).await,
        Command::Train(args) => train_cmd::train(config, *args).await,
        Command::Models { action, registry } => train_cmd::models(config, &registry, action),
        Command::Ope(args) => ope_cmd::run(config, args).await,
        Command::Eval { action } => tokio::task::block_in_place(|| train_cmd::eval(action)),
    }
}

async fn quarantine(
    config: BackendConfig,
    action: QuarantineAction,
    url: &str,
    key: Option<&str>,
) -> anyhow::Result<()> {
    let key = access::client_key(key, &config, false);
    let http = access::http_client(key.as_deref(), std::time::Duration::from_secs(60))?;
    let base = url.trim_end_matches('/');
    match action {
        QuarantineAction::List { limit, json } => {
            let rows = if config.kafka_brokers.is_some() {
                let bus = pipelines::bus::connect(&config)?;
                let rows = ingest::quarantine::list(
                    bus.as_ref(),
                    &config.topic(topics::QUARANTINE),
                    limit,
                )
                .await?;
                serde_json::to_value(rows)?
            } else {
                let resp = http
                    .get(format!("{base}/v1/quarantine?limit={limit}"))
                    .send()
                    .await
                    .with_context(|| format!("is a Lusso server running at {base}?"))?;
                if !resp.status().is_success() {
                    bail!("{}: {}", resp.status(), resp.text().await?);
                }
                resp.json::<serde_json::Value>().await?["bad_rows"].take()
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for row in rows.as_array().into_iter().flatten() {
                    println!(
                        "{}  {}  {}",
                        row["received_at"].as_str().unwrap_or_default(),
                        row["event"]["event_id"].as_str().unwrap_or("-"),
                        row["event"]["type"].as_str().unwrap_or("-"),
                    );
                    for e in row["errors"].as_array().into_iter().flatten() {
                        println!(
                            "    {:<32} {:<18} {}",
                            e["field"].as_str().unwrap_or_default(),
                            e["code"].as_str().unwrap_or_default(),
                            e["reason"].as_str().unwrap_or_default()
                        );
                    }
                }
                println!("{} bad rows", rows.as_array().map_or(0, Vec::len));
            }
        }
        QuarantineAction::Replay => {
            let report = if config.kafka_brokers.is_some() {
                let bus = pipelines::bus::connect(&config)?;
                serde_json::to_value(
                    ingest::quarantine::replay(
                        bus.as_ref(),
                        &config.topic(topics::QUARANTINE),
                        &config.topic(topics::EVENTS),
                    )
                    .await?,
                )?
            } else {
                let resp = http
                    .post(format!("{base}/v1/quarantine/replay"))
                    .send()
                    .await
                    .with_context(|| format!("is a Lusso server running at {base}?"))?;
                if !resp.status().is_success() {
                    bail!("{}: {}", resp.status(), resp.text().await?);
                }
                resp.json().await?
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

/// Imports through the bus. With Kafka the running sink picks the events up; embedded, this process runs
/// the bus and the sink itself until every imported event is in the Parquet log.
async fn import_online_retail(config: BackendConfig, path: &std::path::Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (raw, report) = ingest::import::online_retail::read_online_retail(path)
        .with_context(|| format!("reading {}", path.display()))?;
    eprintln!("{report}");
    let now = chrono::Utc::now();
    let mut records = Vec::with_capacity(raw.len());
    let mut bad = Vec::new();
    for (i, v) in raw.into_iter().enumerate() {
        match pipelines::validate::validate_event(&v, now) {
            Ok(mut e) => {
                e.received_at = Some(now);
                records.push(Record::new(e.key().as_bytes().to_vec(), e.to_json_bytes()));
            }
            Err(errs) => {
                let row = pipelines::quarantine::BadRow::new("import", Some(i), errs, v);
                bad.push(Record::new(row.key(), serde_json::to_vec(&row)?));
            }
        }
    }
    let total = records.len();
    let events_topic = config.topic(topics::EVENTS);
    let embedded = config.kafka_brokers.is_none();
    let memory = MemoryBus::new(MemoryBusConfig {
        max_messages_per_partition: total + 1,
        ..Default::default()
    });
    let bus: Arc<dyn EventBus> = if embedded {
        Arc::new(memory.clone())
    } else {
        pipelines::bus::connect(&config)?
    };
    let progress = server::progress_bar(total as u64, "importing");
    for chunk in records.chunks(500) {
        bus.produce(&events_topic, chunk.to_vec()).await?;
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    if !bad.is_empty() {
        eprintln!(
            "{} imported events failed validation and went to quarantine",
            bad.len()
        );
        for chunk in bad.chunks(500) {
            bus.produce(&config.topic(topics::QUARANTINE), chunk.to_vec())
                .await?;
        }
    }
    if embedded {
        let log = pipelines::log::open(&config).await?;
        server::drain_embedded(memory, log.clone(), &events_topic).await?;
        println!(
            "imported {total} events into {} in {:.1} s",
            log.describe(),
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "produced {total} events to {events_topic} on {} in {:.1} s",
            bus.describe(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
