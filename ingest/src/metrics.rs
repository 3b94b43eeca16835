//! Prometheus metrics of the collector and the sink (names prefixed `lusso_`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric this crate exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Events accepted and produced to the events topic.
    pub accepted: IntCounter,
    /// Rejected events.
    pub rejected: IntCounter,
    /// Problems found in rejected events, by reason code.
    pub rejected_by_reason: IntCounterVec,
    /// Bad rows written to the quarantine topic.
    pub quarantined: IntCounter,
    /// Collector requests by outcome status.
    pub requests: IntCounterVec,
    /// Time to produce one request's batch to the bus, seconds.
    pub produce_seconds: Histogram,
    /// Rows the sink wrote to the event log.
    pub sink_rows: IntCounter,
    /// Sink write failures (retried; offsets not committed).
    pub sink_failures: IntCounter,
    /// Events in the sink's last batch.
    pub sink_batch_size: IntGauge,
    /// Time of one sink append, seconds.
    pub sink_append_seconds: Histogram,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric name");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let buckets = vec![
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let sink_batch_size =
            IntGauge::new("lusso_sink_batch_events", "Events in the sink's last batch")
                .expect("valid metric");
        registry
            .register(Box::new(sink_batch_size.clone()))
            .expect("unique metric");
        Metrics {
            accepted: counter(
                &registry,
                "lusso_events_accepted_total",
                "Events accepted by the collector",
            ),
            rejected: counter(
                &registry,
                "lusso_events_rejected_total",
                "Events rejected by the collector",
            ),
            rejected_by_reason: counter_vec(
                &registry,
                "lusso_event_problems_total",
                "Problems found in rejected events, by reason code",
                "reason",
            ),
            quarantined: counter(
                &registry,
                "lusso_events_quarantined_total",
                "Bad rows written to quarantine",
            ),
            requests: counter_vec(
                &registry,
                "lusso_collector_requests_total",
                "Collector requests by status",
                "status",
            ),
            produce_seconds: histogram(
                &registry,
                "lusso_collector_produce_seconds",
                "Time to produce a request's events to the bus",
            ),
            sink_rows: counter(
                &registry,
                "lusso_sink_rows_total",
                "Rows written to the event log by the sink",
            ),
            sink_failures: counter(
                &registry,
                "lusso_sink_write_failures_total",
                "Failed event-log writes (retried)",
            ),
            sink_append_seconds: histogram(
                &registry,
                "lusso_sink_append_seconds",
                "Time of one event-log append",
            ),
            sink_batch_size,
            registry,
        }
    }

    /// The registry, for other components to add their metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
