//! `lusso ope`: off-policy evaluation of a policy CSV on a logged-feedback CSV (Open Bandit Dataset format).

use std::path::PathBuf;

use anyhow::Context as _;
use bandits::ope::{evaluate, Feedback, IntervalSpec, Policy, RewardModel};
use clap::Args;

/// `lusso ope` arguments.
#[derive(Args, Debug)]
pub(crate) struct OpeArgs {
    /// Logged feedback: an Open Bandit Dataset CSV (`item_id`, 1-based `position`, `click`,
    /// `propensity_score`).
    #[arg(long)]
    log: PathBuf,
    /// The evaluation policy: CSV `action,position,prob` (0-based positions; each position sums to 1).
    #[arg(long)]
    policy: PathBuf,
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

pub(crate) fn run(args: OpeArgs) -> anyhow::Result<()> {
    let fb = Feedback::read_obd_csv(&args.log)
        .with_context(|| format!("reading the log {}", args.log.display()))?;
    let policy = Policy::read_csv(&args.policy, fb.n_actions, fb.len_list)?;
    let spec = IntervalSpec {
        alpha: args.alpha,
        n_bootstrap_samples: args.bootstrap,
        seed: args.seed,
    };
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
