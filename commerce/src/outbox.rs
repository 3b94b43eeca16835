//! The outbox relay and the commerce background loops.
//!
//! # Outbox contract
//! State changes and their messages are committed together in the store ([`crate::store`]). The relay reads
//! the oldest messages in id order, produces them to `lusso.commerce.v1` under their key (the order id, or
//! the product id for stock levels), and deletes them only after the bus acknowledged the batch. A crash
//! between the produce and the delete re-sends the batch: delivery is **at least once**, each message carries
//! a unique `event_id` for consumers to de-duplicate, and stock levels carry `seq`. Messages of one key are
//! produced in id order in one batch and batches are sequential, so one order's history stays ordered on its
//! partition. While the bus is down the relay retries with backoff (100 ms → 5 s) and the outbox grows (the
//! memory store refuses new changes past its bound; PostgreSQL keeps them on disk).

use std::sync::Arc;
use std::time::Duration;

use pipelines::bus::{EventBus, Record};
use tokio_util::sync::CancellationToken;

use crate::service::Commerce;
use crate::Result;

/// Relays one batch; returns how many messages were produced.
pub async fn relay_once(commerce: &Commerce, bus: &dyn EventBus, topic: &str) -> Result<usize> {
    let batch = commerce
        .store
        .outbox_batch(commerce.config.outbox_batch)
        .await?;
    if batch.is_empty() {
        commerce.metrics.outbox_pending.set(0);
        return Ok(0);
    }
    let records: Vec<Record> = batch
        .iter()
        .map(|m| Record::new(m.key.clone().into_bytes(), m.payload.clone()))
        .collect();
    bus.produce(topic, records).await?;
    let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
    commerce.store.outbox_ack(&ids).await?;
    commerce.metrics.outbox_relayed.inc_by(ids.len() as u64);
    commerce
        .metrics
        .outbox_pending
        .set(commerce.store.outbox_len().await.unwrap_or(0) as i64);
    Ok(ids.len())
}

/// Relays until cancelled, then drains what is left (one attempt).
pub async fn run_relay(
    commerce: Arc<Commerce>,
    bus: Arc<dyn EventBus>,
    topic: String,
    shutdown: CancellationToken,
) {
    let idle = Duration::from_millis(commerce.config.outbox_poll_ms);
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_once(&commerce, bus.as_ref(), &topic).await {
            Ok(n) => {
                backoff = Duration::from_millis(100);
                if n > 0 {
                    continue;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(idle) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "commerce: outbox relay failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    while let Ok(n) = relay_once(&commerce, bus.as_ref(), &topic).await {
        if n == 0 {
            break;
        }
    }
}

/// Releases expired reservations every `expiry_sweep_secs` until cancelled.
pub async fn run_expiry(commerce: Arc<Commerce>, shutdown: CancellationToken) {
    let every = Duration::from_secs(commerce.config.expiry_sweep_secs);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        match commerce.expire_reservations().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cancelled = n, "commerce: released expired reservations"),
            Err(e) => tracing::warn!(error = %e, "commerce: reservation sweep failed; retrying"),
        }
    }
}
