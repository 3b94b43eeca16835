//! Prometheus metrics of the feature pipeline (names prefixed `lusso_features_`), registered into the process's
//! registry so one `/metrics` shows every role.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Every metric of the feature pipeline.
#[derive(Clone)]
pub struct FeatureMetrics {
    /// Events applied to shopper state.
    pub applied: IntCounter,
    /// Re-sent copies of an already applied event (skipped).
    pub duplicates: IntCounter,
    /// Messages already covered by the state's fences (redelivery / replay; skipped).
    pub redelivered: IntCounter,
    /// Compare-and-set conflicts resolved by re-reading.
    pub conflicts: IntCounter,
    /// Messages that could not be decoded (they stay in the event log; logged with their offset).
    pub undecodable: IntCounter,
    /// Batches that failed to write (retried with backoff; offsets not committed).
    pub store_failures: IntCounter,
    /// Time to apply one batch, seconds.
    pub batch_seconds: Histogram,
    /// Event received by the collector (or event time when absent) → its features visible in the store, seconds.
    pub freshness_seconds: Histogram,
    /// Messages on the consumer's partitions not yet read (when the bus can tell).
    pub lag_messages: IntGauge,
    /// Now minus the receive time of the newest applied event, milliseconds.
    pub lag_millis: IntGauge,
    /// Messages in the last batch.
    pub batch_messages: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: T) -> T {
    // Registering twice (two pipelines in one process, e.g. tests) keeps the first; the clone still counts.
    let _ = registry.register(Box::new(m.clone()));
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).expect("valid metric name"))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).expect("valid metric name"))
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid histogram"),
    )
}

impl FeatureMetrics {
    /// Creates the metrics in `registry`.
    pub fn new(registry: &Registry) -> FeatureMetrics {
        let secs = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        FeatureMetrics {
            applied: counter(
                registry,
                "lusso_features_events_applied_total",
                "Events applied to shopper state",
            ),
            duplicates: counter(
                registry,
                "lusso_features_duplicates_total",
                "Re-sent copies of applied events, skipped",
            ),
            redelivered: counter(
                registry,
                "lusso_features_redelivered_total",
                "Messages already covered by state fences (redelivery/replay), skipped",
            ),
            conflicts: counter(
                registry,
                "lusso_features_cas_conflicts_total",
                "Compare-and-set conflicts resolved",
            ),
            undecodable: counter(
                registry,
                "lusso_features_undecodable_total",
                "Messages that could not be decoded",
            ),
            store_failures: counter(
                registry,
                "lusso_features_store_failures_total",
                "Batches that failed to write (retried, offsets not committed)",
            ),
            batch_seconds: histogram(
                registry,
                "lusso_features_batch_seconds",
                "Time to apply one batch",
                secs.clone(),
            ),
            freshness_seconds: histogram(
                registry,
                "lusso_features_freshness_seconds",
                "Event received (or event time) to features visible",
                secs,
            ),
            lag_messages: gauge(
                registry,
                "lusso_features_lag_messages",
                "Messages not yet read by this consumer",
            ),
            lag_millis: gauge(
                registry,
                "lusso_features_lag_millis",
                "Now minus receive time of the newest applied event",
            ),
            batch_messages: gauge(
                registry,
                "lusso_features_batch_messages",
                "Messages in the last batch",
            ),
        }
    }
}
