//! Prometheus metrics of the serving role (registered on the process registry, rendered at `/metrics`).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Handles to the serving metrics (cheap to clone).
#[derive(Clone)]
pub struct ServingMetrics {
    /// Seconds per request by endpoint (`recommendations`, `similar`, `prices`, `assignment`, …).
    pub latency: HistogramVec,
    /// Recommendation answers by where they came from (`model`, `fold_in`, `session`, `segment_popularity`,
    /// `global_popularity`, `catalogue`).
    pub sources: IntCounterVec,
    /// Answers served without a dependency (`features`, `model`, `stock`).
    pub degraded: IntCounterVec,
    pub impressions_queued: IntCounter,
    pub impressions_produced: IntCounter,
    pub impressions_shed: IntCounter,
    pub model_swaps: IntCounter,
    pub rules_reloads: IntCounter,
    pub rules_loaded: IntGauge,
}

impl ServingMetrics {
    /// Registers on `registry` (a second registration of the same name is tolerated: the handles still work).
    pub fn new(registry: &Registry) -> ServingMetrics {
        let latency = HistogramVec::new(
            HistogramOpts::new("lusso_serving_request_seconds", "Serving request latency").buckets(
                vec![
                    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25,
                ],
            ),
            &["endpoint"],
        )
        .expect("valid histogram");
        let sources = IntCounterVec::new(
            Opts::new(
                "lusso_serving_recommendations_total",
                "Recommendation answers by candidate source",
            ),
            &["source"],
        )
        .expect("valid counter");
        let degraded = IntCounterVec::new(
            Opts::new(
                "lusso_serving_degraded_total",
                "Answers served without a dependency",
            ),
            &["dependency"],
        )
        .expect("valid counter");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid counter");
        let m = ServingMetrics {
            latency,
            sources,
            degraded,
            impressions_queued: counter(
                "lusso_serving_impressions_queued_total",
                "Impression / exposure events queued",
            ),
            impressions_produced: counter(
                "lusso_serving_impressions_produced_total",
                "Impression / exposure events produced to the bus",
            ),
            impressions_shed: counter(
                "lusso_serving_impressions_shed_total",
                "Impression / exposure events shed (queue full)",
            ),
            model_swaps: counter(
                "lusso_serving_model_swaps_total",
                "Promoted models swapped in",
            ),
            rules_reloads: counter("lusso_serving_rules_reloads_total", "Rule set reloads"),
            rules_loaded: IntGauge::new("lusso_serving_rules", "Rules loaded")
                .expect("valid gauge"),
        };
        let _ = registry.register(Box::new(m.latency.clone()));
        let _ = registry.register(Box::new(m.sources.clone()));
        let _ = registry.register(Box::new(m.degraded.clone()));
        for c in [
            &m.impressions_queued,
            &m.impressions_produced,
            &m.impressions_shed,
            &m.model_swaps,
            &m.rules_reloads,
        ] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(m.rules_loaded.clone()));
        m
    }
}
