//! Prometheus metrics of the commerce role (registered on the process registry by
//! [`Metrics::register`], rendered at `/metrics`).

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::store::StoredResponse;
use crate::{Error, Result};

/// Handles to the commerce metrics (cheap to clone).
#[derive(Clone)]
pub struct Metrics {
    /// Checkout answers by outcome (`created`, `declined`, `replayed`, `stock_short`, `bad_input`, `error`).
    pub checkouts: IntCounterVec,
    /// Seconds per checkout, whole request (both transactions and the provider call).
    pub checkout_seconds: Histogram,
    /// Orders entering a status (`paid`, `payment_failed`, `cancelled`, …).
    pub orders: IntCounterVec,
    pub idempotent_replays: IntCounter,
    pub stock_conflicts: IntCounter,
    /// Requests refused because they carried a card-number-like value.
    pub card_numbers_refused: IntCounter,
    /// Webhooks by result (`applied`, `duplicate`, `unknown`, `rejected`).
    pub webhooks: IntCounterVec,
    pub returns: IntCounter,
    pub invoices: IntCounter,
    /// Messages relayed from the outbox to the bus.
    pub outbox_relayed: IntCounter,
    /// Messages waiting in the outbox (sampled by the relay).
    pub outbox_pending: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid counter");
        let vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid counter")
        };
        Metrics {
            checkouts: vec(
                "lusso_commerce_checkouts_total",
                "Checkout answers by outcome",
                "outcome",
            ),
            checkout_seconds: Histogram::with_opts(
                HistogramOpts::new("lusso_commerce_checkout_seconds", "Checkout latency").buckets(
                    vec![
                        0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                ),
            )
            .expect("valid histogram"),
            orders: vec(
                "lusso_commerce_orders_total",
                "Orders entering a status",
                "status",
            ),
            idempotent_replays: counter(
                "lusso_commerce_idempotent_replays_total",
                "Checkouts answered from a stored Idempotency-Key response",
            ),
            stock_conflicts: counter(
                "lusso_commerce_stock_conflicts_total",
                "Checkouts refused for short stock",
            ),
            card_numbers_refused: counter(
                "lusso_commerce_card_numbers_refused_total",
                "Requests refused because they carried a card-number-like value",
            ),
            webhooks: vec(
                "lusso_commerce_webhooks_total",
                "Payment webhooks by result",
                "result",
            ),
            returns: counter("lusso_commerce_returns_total", "Returns refunded"),
            invoices: counter("lusso_commerce_invoices_total", "E-invoices issued"),
            outbox_relayed: counter(
                "lusso_commerce_outbox_relayed_total",
                "Outbox messages produced to the bus",
            ),
            outbox_pending: IntGauge::new(
                "lusso_commerce_outbox_pending",
                "Outbox messages waiting to be relayed",
            )
            .expect("valid gauge"),
        }
    }

    /// Registers on `registry` (a second registration of a name is tolerated: the handles still work).
    pub fn register(&self, registry: &Registry) {
        let _ = registry.register(Box::new(self.checkouts.clone()));
        let _ = registry.register(Box::new(self.checkout_seconds.clone()));
        let _ = registry.register(Box::new(self.orders.clone()));
        let _ = registry.register(Box::new(self.webhooks.clone()));
        for c in [
            &self.idempotent_replays,
            &self.stock_conflicts,
            &self.card_numbers_refused,
            &self.returns,
            &self.invoices,
            &self.outbox_relayed,
        ] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(self.outbox_pending.clone()));
    }

    pub(crate) fn observe_checkout(&self, result: &Result<StoredResponse>, took: Duration) {
        self.checkout_seconds.observe(took.as_secs_f64());
        let outcome = match result {
            Ok(r) if r.status == 402 => "declined",
            Ok(_) => "created",
            Err(Error::Conflict(m)) if m.contains("stock") => "stock_short",
            Err(Error::BadInput { .. }) => "bad_input",
            Err(_) => "error",
        };
        self.checkouts.with_label_values(&[outcome]).inc();
    }
}
