//! Prometheus metrics of the bandit service (names prefixed `lusso_bandits_`), registered into the
//! process's registry so one `/metrics` shows every role.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric of the bandit service.
#[derive(Clone)]
pub struct BanditMetrics {
    /// Decisions by slot and reason (`policy`, `forced`, `sticky`).
    pub decisions: IntCounterVec,
    /// Server time of one decision (features lookup, policy, durable log write), seconds.
    pub decide_seconds: Histogram,
    /// Reward signals by kind (`click`, `purchase`, `return`, `explicit`) and result (`learned`,
    /// `recorded`, `duplicate`, `ignored`, `conflict`, `unknown_decision`, `unattributed`).
    pub signals: IntCounterVec,
    /// Decisions whose window closed and whose reward was learned then.
    pub expired: IntCounter,
    /// Last ledger sequence this replica applied.
    pub ledger_applied: IntGauge,
    /// Feature-store lookups that failed (the decision went ahead without stored features).
    pub feature_lookup_errors: IntCounter,
    /// Decisions published to `lusso.decisions.v1` and the event log.
    pub published: IntCounter,
    /// Failed publish or consume rounds (retried).
    pub retries: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: T) -> T {
    // Registering twice (two replicas in one test process) keeps the first; the clone still counts.
    let _ = registry.register(Box::new(m.clone()));
    m
}

impl BanditMetrics {
    /// Creates the metrics in `registry`.
    pub fn new(registry: &Registry) -> BanditMetrics {
        let counter = |name: &str, help: &str| {
            register(
                registry,
                IntCounter::new(name, help).expect("valid metric name"),
            )
        };
        let vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name"),
            )
        };
        BanditMetrics {
            decisions: vec(
                "lusso_bandits_decisions_total",
                "Decisions by slot and reason",
                &["slot", "reason"],
            ),
            decide_seconds: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "lusso_bandits_decide_seconds",
                        "Server time of one decision, seconds",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    ]),
                )
                .expect("valid histogram"),
            ),
            signals: vec(
                "lusso_bandits_signals_total",
                "Reward signals by kind and result",
                &["kind", "result"],
            ),
            expired: counter(
                "lusso_bandits_expired_total",
                "Decisions learned when their reward window closed",
            ),
            ledger_applied: register(
                registry,
                IntGauge::new(
                    "lusso_bandits_ledger_applied",
                    "Last ledger sequence applied by this replica",
                )
                .expect("valid metric name"),
            ),
            feature_lookup_errors: counter(
                "lusso_bandits_feature_lookup_errors_total",
                "Feature lookups that failed during a decision",
            ),
            published: counter(
                "lusso_bandits_published_total",
                "Decisions published to the bus and the event log",
            ),
            retries: counter(
                "lusso_bandits_retries_total",
                "Failed publish or consume rounds, retried",
            ),
        }
    }
}
