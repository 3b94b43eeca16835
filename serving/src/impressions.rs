//! `rec_impression` and `experiment_exposure` events, produced to the events topic off the request path.
//!
//! The request hands its events to a bounded queue with `try_send` and returns; a background task drains it
//! in batches (≤ 500 events or 100 ms) into `EventBus::produce`. Bound and behaviour when full: the queue holds
//! `impression_queue` events (default 10,000); when it is full, or while the bus is down and the queue has
//! filled, new events are shed and counted in `lusso_serving_impressions_shed_total`, never waited for. A
//! failed produce is retried with backoff (100 ms → 5 s) while the queue keeps absorbing (and then shedding).

use std::sync::Arc;
use std::time::Duration;

use pipelines::bus::{EventBus, Record};
use pipelines::event::Event;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::ServingMetrics;

/// Events per produce call.
pub const IMPRESSION_BATCH: usize = 500;
/// Longest an event waits in the drainer before its batch is produced.
pub const IMPRESSION_LINGER: Duration = Duration::from_millis(100);

/// The sending side, cloned into every request.
#[derive(Clone)]
pub struct Impressions {
    tx: mpsc::Sender<Event>,
    metrics: ServingMetrics,
}

impl Impressions {
    /// A queue of `capacity` events and its receiving end (for [`run`]).
    pub fn new(capacity: usize, metrics: ServingMetrics) -> (Impressions, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Impressions { tx, metrics }, rx)
    }

    /// Queues `event` without waiting; `false` (and counted) when it was shed.
    pub fn offer(&self, event: Event) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.metrics.impressions_queued.inc();
                true
            }
            Err(_) => {
                self.metrics.impressions_shed.inc();
                false
            }
        }
    }
}

/// Drains the queue into `topic` until cancelled (then flushes what is queued, bounded by one retry round).
pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    bus: Arc<dyn EventBus>,
    topic: String,
    metrics: ServingMetrics,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Event> = Vec::with_capacity(IMPRESSION_BATCH);
    loop {
        let closed = tokio::select! {
            _ = shutdown.cancelled() => true,
            got = rx.recv() => match got {
                Some(e) => { batch.push(e); false }
                None => true,
            },
        };
        if !closed {
            let deadline = tokio::time::sleep(IMPRESSION_LINGER);
            tokio::pin!(deadline);
            while batch.len() < IMPRESSION_BATCH {
                tokio::select! {
                    _ = &mut deadline => break,
                    got = rx.recv() => match got { Some(e) => batch.push(e), None => break },
                }
            }
        } else {
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        let mut backoff = Duration::from_millis(100);
        while !batch.is_empty() {
            let records: Vec<Record> = batch
                .iter()
                .map(|e| Record::new(e.key().to_string(), e.to_json_bytes()))
                .collect();
            match bus.produce(&topic, records).await {
                Ok(()) => {
                    metrics.impressions_produced.inc_by(batch.len() as u64);
                    batch.clear();
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "impressions not produced; retrying");
                    if closed {
                        metrics.impressions_shed.inc_by(batch.len() as u64);
                        batch.clear();
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if closed {
            return;
        }
    }
}
