//! The feature consumers: one consumer-group member per topic (`lusso.events.v1`, `lusso.commerce.v1`), each
//! polling a bounded batch, applying it through the [`Processor`], and only then committing its offsets.
//!
//! Checkpoint contract: offsets are committed after the store acknowledged every write of the batch. If the
//! store is down, the batch is retried with exponential backoff (100 ms → 5 s) and nothing is committed, so the
//! consumer catches up without loss when the store returns; the fences in each blob make the retried and any
//! redelivered messages harmless. Memory is bounded by one batch (`batch_max` messages) per topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pipelines::bus::{EventBus, Message, Offsets};
use pipelines::commerce::CommerceEvent;
use pipelines::event::Event;
use tokio_util::sync::CancellationToken;

use crate::metrics::FeatureMetrics;
use crate::processor::{Incoming, Item, Processor};
use crate::segment::RULE_SEGMENTS as RULE_SEGMENT_NAMES;
use crate::state::product::{ProductState, StockLevel};
use crate::state::stream_id;
use crate::Result;

/// Topic index of the events topic in [`stream_id`].
pub const EVENTS_STREAM: u16 = 0;
/// Topic index of the commerce topic in [`stream_id`].
pub const COMMERCE_STREAM: u16 = 1;

/// Where to consume from.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub events_topic: String,
    pub commerce_topic: String,
    pub partitions: i32,
}

/// Runs both consumers until `shutdown`; returns after the batch in flight is stored and committed.
pub async fn run(
    bus: Arc<dyn EventBus>,
    processor: Processor,
    metrics: FeatureMetrics,
    cfg: ConsumerConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    let events = consume(
        bus.clone(),
        processor.clone(),
        metrics.clone(),
        cfg.events_topic.clone(),
        EVENTS_STREAM,
        cfg.partitions,
        shutdown.clone(),
    );
    let commerce = consume(
        bus,
        processor,
        metrics,
        cfg.commerce_topic,
        COMMERCE_STREAM,
        cfg.partitions,
        shutdown,
    );
    let (a, b) = tokio::join!(events, commerce);
    a.and(b)
}

/// Sleeps `backoff` (doubling it up to 5 s) unless shut down; false when shut down.
async fn wait(backoff: &mut Duration, shutdown: &CancellationToken) -> bool {
    let d = *backoff;
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.cancelled() => false,
    }
}

async fn consume(
    bus: Arc<dyn EventBus>,
    processor: Processor,
    metrics: FeatureMetrics,
    topic: String,
    stream: u16,
    partitions: i32,
    shutdown: CancellationToken,
) -> Result<()> {
    let config = processor.context().config.clone();
    let mut backoff = Duration::from_millis(100);
    let mut sub = loop {
        let attempt = async {
            bus.ensure_topic(&topic, partitions).await?;
            bus.subscribe(&topic, &config.group).await
        };
        match attempt.await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, %topic, "features: cannot subscribe yet; retrying");
                if !wait(&mut backoff, &shutdown).await {
                    return Ok(());
                }
            }
        }
    };
    let mut last_lag = Instant::now();
    while !shutdown.is_cancelled() {
        let messages = tokio::select! {
            r = sub.poll(config.batch_max, config.batch_wait()) => r,
            _ = shutdown.cancelled() => break,
        };
        let messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, %topic, "features: poll failed; retrying");
                if !wait(&mut backoff, &shutdown).await {
                    break;
                }
                continue;
            }
        };
        if last_lag.elapsed() > Duration::from_secs(5) {
            last_lag = Instant::now();
            if let Ok(Some(lag)) = sub.lag().await {
                metrics.lag_messages.set(lag as i64);
            }
        }
        if messages.is_empty() {
            continue;
        }
        let (batch, received) = decode(&messages, stream, &metrics);
        let started = Instant::now();
        // Retry the same batch until it is stored: never commit past unstored messages.
        loop {
            match processor.process(&batch).await {
                Ok(stats) => {
                    backoff = Duration::from_millis(100);
                    metrics.applied.inc_by(stats.applied);
                    metrics.duplicates.inc_by(stats.duplicates);
                    metrics.redelivered.inc_by(stats.redelivered);
                    metrics.conflicts.inc_by(stats.conflicts);
                    break;
                }
                Err(e) => {
                    metrics.store_failures.inc();
                    tracing::warn!(error = %e, %topic, messages = batch.len(), "features: batch not stored; retrying");
                    if !wait(&mut backoff, &shutdown).await {
                        // Shut down with the batch unstored: nothing committed, it is redelivered on restart.
                        return Ok(());
                    }
                }
            }
        }
        let visible_ms = Utc::now().timestamp_millis();
        metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.batch_messages.set(messages.len() as i64);
        for r in &received {
            metrics
                .freshness_seconds
                .observe(((visible_ms - r).max(0) as f64) / 1000.0);
        }
        if let Some(newest) = received.iter().max() {
            metrics.lag_millis.set(visible_ms - newest);
        }
        if let Err(e) = sub.commit(&Offsets::after(&messages)).await {
            // Harmless: the next commit covers these offsets, and a redelivery is fenced.
            tracing::warn!(error = %e, %topic, "features: commit failed; will be covered by the next commit");
        }
    }
    Ok(())
}

/// Decodes messages; returns the batch and each event's receive time (ms). Undecodable messages are counted and
/// logged with their position (they remain in the event log and on the bus).
fn decode(
    messages: &[Message],
    stream: u16,
    metrics: &FeatureMetrics,
) -> (Vec<Incoming>, Vec<i64>) {
    let mut batch = Vec::with_capacity(messages.len());
    let mut received = Vec::with_capacity(messages.len());
    for m in messages {
        let sid = stream_id(stream, m.partition);
        let offset = m.offset.max(0) as u64;
        let item = if stream == EVENTS_STREAM {
            match serde_json::from_slice::<Event>(&m.payload) {
                Ok(ev) => {
                    received.push(ev.received_at.unwrap_or(ev.ts).timestamp_millis());
                    Some(Item::Event(Box::new(ev)))
                }
                Err(e) => {
                    tracing::error!(error = %e, partition = m.partition, offset = m.offset, "features: undecodable event");
                    metrics.undecodable.inc();
                    None
                }
            }
        } else {
            match serde_json::from_slice::<CommerceEvent>(&m.payload) {
                Ok(CommerceEvent::StockLevel {
                    product_id,
                    variant_id,
                    size,
                    location,
                    available,
                    seq,
                    ..
                }) => Some(Item::Stock {
                    product_id,
                    level: StockLevel {
                        variant_id,
                        size,
                        location,
                        available,
                        seq,
                    },
                }),
                // Orders and returns are counted from the storefront's `purchase` / `return` events;
                // the commerce messages are the ledger other consumers (finance, reward audits) read.
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(error = %e, partition = m.partition, offset = m.offset, "features: undecodable commerce message");
                    metrics.undecodable.inc();
                    None
                }
            }
        };
        if let Some(item) = item {
            batch.push(Incoming {
                stream: sid,
                offset,
                item,
            });
        }
    }
    (batch, received)
}

/// Popularity lists served to the recommenders: per scope (`global`, `market:IT`, `segment:New`, …) the top
/// products by decayed popularity (views 1, add-to-cart units 3, purchased units 5; half-life in config).
pub const POPULARITY_TOP: usize = 200;

/// Recomputes the popularity lists from every product blob (derived data: idempotent) and stores them.
pub async fn refresh_popularity(processor: &Processor) -> Result<usize> {
    let ctx = processor.context();
    let store = processor.store();
    let ids = store.members(&ctx.keys.product_index()).await?;
    let keys: Vec<String> = ids.iter().map(|p| ctx.keys.product(p)).collect();
    let blobs = store.get(&keys).await?;
    let now = Utc::now().timestamp_millis();
    let hl = ctx.config.popularity_half_life_ms();
    let mut scopes: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for (id, blob) in ids.iter().zip(blobs) {
        let Some(blob) = blob else { continue };
        let p = ProductState::decode(&blob)?;
        if ctx.catalog.product(id).is_some_and(|c| !c.is_listed()) {
            continue;
        }
        let mut total = 0.0;
        for (m, s) in p.markets.at(now, hl) {
            scopes
                .entry(format!("market:{m}"))
                .or_default()
                .push((id.clone(), s));
        }
        for (seg, s) in p.segments.at(now, hl) {
            total += s;
            scopes
                .entry(format!("segment:{seg}"))
                .or_default()
                .push((id.clone(), s));
        }
        scopes
            .entry("global".into())
            .or_default()
            .push((id.clone(), total));
    }
    for seg in RULE_SEGMENT_NAMES {
        scopes.entry(format!("segment:{seg}")).or_default();
    }
    let n = scopes.len();
    for (scope, mut list) in scopes {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(POPULARITY_TOP);
        let json = serde_json::json!({
            "scope": scope,
            "computed_at": Utc::now(),
            "items": list.iter().map(|(p, s)| serde_json::json!({"product_id": p, "score": (s * 1e4).round() / 1e4})).collect::<Vec<_>>(),
        });
        store
            .put(&ctx.keys.popularity(&scope), json.to_string().into_bytes())
            .await?;
    }
    Ok(n)
}
