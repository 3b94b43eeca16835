//! `lusso simulate`: the seeded shopper simulator posting through a real collector over HTTP.
//!
//! The simulator's clock starts `--history-hours` before now and replays that history at `--rate`
//! events/s, then keeps pace with the wall clock (it never stamps an event in the future). A batch the
//! collector answers with 503 is retried after `Retry-After` until accepted, so no simulated event is
//! lost to back-pressure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Args;
use pipelines::catalog::Catalog;
use pipelines::sim::{SimConfig, Simulator};
use serde_json::{json, Value};

/// Options of `lusso simulate`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SimulateArgs {
    /// Number of simulated shoppers.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) users: usize,
    /// Events per second to post.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) rate: f64,
    /// Base URL of the collector.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// API key for the collector (a publishable key is enough); default: the demo's keys.json in
    /// LUSSO_DATA_DIR.
    #[arg(long, env = "LUSSO_API_KEY", hide_env_values = true)]
    pub(crate) key: Option<String>,
    /// Seed of the shoppers: the same seed gives the same shoppers and events.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Seed of the built-in catalogue (must match the server's LUSSO_CATALOG_SEED).
    #[arg(long, env = "LUSSO_CATALOG_SEED", default_value_t = pipelines::config::DEFAULT_CATALOG_SEED)]
    pub(crate) catalog_seed: u64,
    /// Events per request (the collector takes at most 500).
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Hours of history to replay before keeping pace with the clock.
    #[arg(long, default_value_t = 48)]
    pub(crate) history_hours: i64,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long)]
    pub(crate) max_events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Write the ground truth (true segments, tastes, banner click rates) as JSON here.
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
    /// Instead of posting events: the bandit regret check. Every policy chooses the home_hero banner
    /// for simulated shoppers with the simulator's true click rates; prints cumulative regret against
    /// the best single banner and the per-segment oracle.
    #[arg(long)]
    pub(crate) bandit: bool,
    /// With --bandit: decisions per policy.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) decisions: usize,
    /// With --bandit: rewards reach the learner in batches of this many decisions (delayed feedback).
    #[arg(long, default_value_t = 100)]
    pub(crate) feedback_batch: usize,
    /// With --bandit: print JSON instead of the Markdown table.
    #[arg(long)]
    pub(crate) json: bool,
}

impl SimulateArgs {
    /// The demo's simulator: runs until the demo stops.
    pub(crate) fn for_demo(users: usize, rate: f64, seed: u64, url: String) -> Self {
        SimulateArgs {
            users,
            rate,
            url,
            key: None,
            seed,
            catalog_seed: pipelines::config::DEFAULT_CATALOG_SEED,
            batch: 100,
            history_hours: 48,
            max_events: None,
            duration: None,
            truth: None,
            bandit: false,
            decisions: 100_000,
            feedback_batch: 100,
            json: false,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.users == 0 {
            bail!("--users must be at least 1");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!(
                "--rate must be a positive number of events per second, got {}",
                self.rate
            );
        }
        if !(1..=500).contains(&self.batch) {
            bail!(
                "--batch must be in 1..=500 (the collector's limit), got {}",
                self.batch
            );
        }
        if self.history_hours < 0 {
            bail!("--history-hours must be ≥ 0, got {}", self.history_hours);
        }
        Ok(())
    }
}

/// Namespace of re-keyed simulator event ids.
const RUN_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c75_7373_6f2d_7369_6d2d_7275_6e00_0001);

/// Derives each event's id from the run (its start time) and the simulator's own id: reproducible for the
/// same seed and start, distinct across runs.
fn rekey(events: &mut [Value], run_id: i64) {
    for e in events {
        if let Some(id) = e["event_id"].as_str() {
            let fresh = uuid::Uuid::new_v5(&RUN_NAMESPACE, format!("{run_id}:{id}").as_bytes());
            e["event_id"] = Value::String(fresh.to_string());
        }
    }
}

/// Posts one batch until the collector accepts it; returns how many events it rejected.
async fn post(http: &reqwest::Client, url: &str, events: &[Value]) -> anyhow::Result<usize> {
    let body = json!({ "events": events });
    for attempt in 0..120u32 {
        let wait = match http.post(url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                let v: Value = resp.json().await?;
                let rejected = v["rejected"].as_array().map_or(0, Vec::len);
                if rejected > 0 {
                    tracing::warn!(rejected, first = %v["rejected"][0], "collector rejected simulated events");
                }
                return Ok(rejected);
            }
            Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1),
            Ok(resp) => {
                let status = resp.status();
                bail!(
                    "collector answered {status}: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            Err(e) => {
                if attempt % 10 == 0 {
                    tracing::warn!(error = %e, "collector unreachable; retrying");
                }
                1
            }
        };
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    bail!("collector at {url} did not accept a batch for 2 minutes")
}

/// Runs the simulator until `max_events`/`duration` (or forever).
pub(crate) async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if args.bandit {
        return bandit_regret(&args).await;
    }
    args.validate()?;
    let catalog = Arc::new(Catalog::generate(args.catalog_seed));
    let start = Utc::now() - chrono::Duration::hours(args.history_hours);
    let mut sim = Simulator::new(SimConfig::new(args.seed, args.users, start), catalog);
    if let Some(path) = &args.truth {
        sim.truth()
            .write_json(path)
            .with_context(|| format!("writing ground truth to {}", path.display()))?;
    }
    // The simulator's ids depend only on the seed; a run starting at another time produces different
    // events and must not collide with an earlier run's ids in the (deduplicating) event log.
    let run_id = start.timestamp_millis();
    let url = format!("{}/v1/events", args.url.trim_end_matches('/'));
    let config = pipelines::config::BackendConfig::from_env();
    let key = crate::access::client_key(args.key.as_deref(), &config, true);
    let http = crate::access::http_client(key.as_deref(), Duration::from_secs(30))?;
    let started = Instant::now();
    let mut next_send = Instant::now();
    let (mut sent, mut rejected) = (0u64, 0u64);
    let mut last_log = Instant::now();
    loop {
        if args.max_events.is_some_and(|m| sent >= m)
            || args
                .duration
                .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        let want = args
            .max_events
            .map_or(args.batch, |m| args.batch.min((m - sent) as usize));
        let mut events = sim.next_events_until(Utc::now(), want);
        rekey(&mut events, run_id);
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        tokio::time::sleep_until(next_send.into()).await;
        rejected += post(&http, &url, &events).await? as u64;
        sent += events.len() as u64;
        next_send += Duration::from_secs_f64(events.len() as f64 / args.rate);
        // Do not bank unused rate after a stall: at most one second of burst.
        next_send = next_send.max(Instant::now() - Duration::from_secs(1));
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            tracing::info!(sent, rejected, eps = sent as f64 / started.elapsed().as_secs_f64(),
                sim_clock = %sim.clock(), "simulator progress");
        }
    }
    println!(
        "simulated {sent} events ({rejected} rejected) in {:.1} s to {url}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `lusso simulate --bandit`: the regret table of every policy on the simulator's true banner CTRs.
async fn bandit_regret(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.decisions == 0 || args.decisions > 10_000_000 {
        bail!("--decisions must be between 1 and 10000000");
    }
    if args.feedback_batch == 0 || args.feedback_batch > args.decisions {
        bail!("--feedback-batch must be between 1 and --decisions");
    }
    let config = bandits::sim::SimConfig::new(args.decisions, args.seed, args.feedback_batch);
    let total = (args.decisions * bandits::sim::SimPolicy::ALL.len()) as u64;
    let bar = crate::server::progress_bar(total, "bandit regret");
    let report = tokio::task::spawn_blocking(move || {
        let mut done_before = 0u64;
        let mut current = String::new();
        bandits::sim::run(&config, |policy, n| {
            if policy != current {
                if !current.is_empty() {
                    done_before += config.decisions as u64;
                }
                current = policy.to_string();
            }
            bar.set_position(done_before + n as u64);
            if n % 50_000 == 0 {
                tracing::info!(policy, decisions = n, "bandit regret simulation");
            }
        })
    })
    .await??;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rekeyed_ids_are_stable_per_run_and_distinct_across_runs() {
        let original = json!({"event_id": "6f1c1a8e-6a55-4c1b-9a8e-2f4d3c2b1a00"});
        let ids = |run| {
            let mut e = vec![original.clone()];
            rekey(&mut e, run);
            e[0]["event_id"].as_str().unwrap().to_string()
        };
        assert_eq!(ids(1), ids(1));
        assert_ne!(ids(1), ids(2));
        assert_ne!(ids(1), original["event_id"].as_str().unwrap());
        assert!(uuid::Uuid::parse_str(&ids(1)).is_ok());
    }
}
