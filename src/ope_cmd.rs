//! `lusso ope`: off-policy evaluation of a policy CSV on a logged-feedback CSV (Open Bandit Dataset format),
//! or of a candidate policy on our own decision log (`--slot`), overall and per segment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use bandits::metrics::BanditMetrics;
use bandits::ope::{evaluate, Feedback, IntervalSpec, Policy, RewardModel};
use bandits::service::{Bandits, BanditsConfig, SystemClock};
use clap::Args;
use pipelines::config::BackendConfig;

/// `lusso ope` arguments.
#[derive(Args, Debug)]
pub(crate) struct OpeArgs {
    /// Logged feedback: an Open Bandit Dataset CSV (`item_id`, 1-based `position`, `click`,
    /// `propensity_score`).
    #[arg(long, conflicts_with = "slot", required_unless_present = "slot")]
    log: Option<PathBuf>,
    /// Instead of --log: our decision log of this bandit slot (PostgreSQL from LUSSO_DATABASE_URL, or
    /// the running server at --url when it is unset), evaluated overall and per segment.
    #[arg(long)]
    slot: Option<String>,
    /// With --log: CSV `action,position,prob` (0-based positions; each position sums to 1).
    /// With --slot: `uniform`, `greedy`, `thompson` or `arm:ARM_ID`.
    #[arg(long)]
    policy: String,
    /// With --slot: decisions of the last DAYS days.
    #[arg(long, default_value_t = 7.0)]
    days: f64,
    /// With --slot and no LUSSO_DATABASE_URL: the Lusso server to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// With --url: an API key with `data:read` (default: the demo's keys.json in LUSSO_DATA_DIR).
    #[arg(long, env = "LUSSO_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Interval level: 1 − alpha.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 10_000)]
    bootstrap: usize,
    /// Bootstrap seed (MT19937, as NumPy's RandomState).
    #[arg(long, default_value_t = 12345)]
    seed: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(config: BackendConfig, args: OpeArgs) -> anyhow::Result<()> {
    let spec = IntervalSpec {
        alpha: args.alpha,
        n_bootstrap_samples: args.bootstrap,
        seed: args.seed,
    };
    if !(args.days.is_finite() && args.days > 0.0 && args.days <= 400.0) {
        bail!("--days {}: must be between 0 and 400", args.days);
    }
    match (&args.log, &args.slot) {
        (Some(log), _) => tokio::task::block_in_place(|| run_obd(log, &args, spec)),
        (None, Some(slot)) => run_slot(config, slot, &args, spec).await,
        (None, None) => bail!("give --log OBD_LOG_CSV or --slot SLOT"),
    }
}

/// Our decision log: directly from PostgreSQL, or from the server's `/v1/bandits/{slot}/ope`.
async fn run_slot(
    config: BackendConfig,
    slot: &str,
    args: &OpeArgs,
    spec: IntervalSpec,
) -> anyhow::Result<()> {
    let report: serde_json::Value = match &config.database_url {
        Some(url) => {
            let store = bandits::store::open(Some(url)).await?;
            let service = Bandits::new(
                store,
                None,
                Arc::new(SystemClock),
                BanditMetrics::new(&prometheus::Registry::new()),
                BanditsConfig::default(),
            );
            service.sync().await?;
            let (since, until) = bandits::api::window(service.now(), args.days);
            serde_json::to_value(service.ope(slot, &args.policy, since, until, spec).await?)?
        }
        None => {
            let base = args.url.trim_end_matches('/');
            let key = crate::access::client_key(args.key.as_deref(), &config, false);
            let resp =
                crate::access::http_client(key.as_deref(), std::time::Duration::from_secs(120))?
                    .get(format!(
                        "{base}/v1/bandits/{}/ope?policy={}&days={}&bootstrap={}&seed={}",
                        encode(slot),
                        encode(&args.policy),
                        args.days,
                        args.bootstrap,
                        args.seed
                    ))
                    .send()
                    .await
                    .with_context(|| {
                        format!(
                            "LUSSO_DATABASE_URL is not set; is a Lusso server running at {base}?"
                        )
                    })?;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await?;
            if !status.is_success() {
                bail!("{status}: {}", body["error"]["message"]);
            }
            body
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "slot {slot}, policy {}: {} to {}",
        report["policy"], report["since"], report["until"]
    );
    println!(
        "{:<22} {:>7} {:>9} {:>28} {:>28}",
        "segment", "rounds", "logged", "DR [95% interval]", "SNIPW [95% interval]"
    );
    for s in report["segments"].as_array().into_iter().flatten() {
        let est = |k: &str| {
            format!(
                "{:.4} [{:.4}, {:.4}]",
                s[k]["value"].as_f64().unwrap_or(f64::NAN),
                s[k]["interval"]["lower"].as_f64().unwrap_or(f64::NAN),
                s[k]["interval"]["upper"].as_f64().unwrap_or(f64::NAN)
            )
        };
        println!(
            "{:<22} {:>7} {:>9.4} {:>28} {:>28}",
            s["segment"].as_str().unwrap_or(""),
            s["rounds"],
            s["logged_value"].as_f64().unwrap_or(f64::NAN),
            est("dr"),
            est("snipw")
        );
    }
    Ok(())
}

/// Percent-encodes a query or path value (unreserved characters kept).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run_obd(log: &Path, args: &OpeArgs, spec: IntervalSpec) -> anyhow::Result<()> {
    let fb = Feedback::read_obd_csv(log)
        .with_context(|| format!("reading the log {}", log.display()))?;
    let policy = Policy::read_csv(Path::new(&args.policy), fb.n_actions, fb.len_list)?;
    let report = evaluate(&fb, &policy, &RewardModel::empirical(&fb), spec)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} rounds, {} actions × {} positions; logged policy earned {:.6} per impression",
        report.n_rounds, report.n_actions, report.len_list, report.on_policy_value
    );
    println!(
        "{:<6} {:>12} {:>12} {:>12}",
        "", "estimate", "lower", "upper"
    );
    for (name, e) in [
        ("ipw", report.ipw),
        ("snipw", report.snipw),
        ("dm", report.dm),
        ("dr", report.dr),
    ] {
        println!(
            "{name:<6} {:>12.6} {:>12.6} {:>12.6}",
            e.value, e.interval.lower, e.interval.upper
        );
    }
    println!(
        "({:.0}% bootstrap intervals, {} resamples)",
        (1.0 - spec.alpha) * 100.0,
        spec.n_bootstrap_samples
    );
    Ok(())
}
