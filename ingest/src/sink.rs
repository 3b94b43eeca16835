//! The event-log sink: consumer group `lusso-event-log-sink` on `lusso.events.v1` → [`EventLog`].
//!
//! Checkpoint contract: a batch is flushed when it reaches [`SinkConfig::batch_max_events`] or
//! [`SinkConfig::flush_interval`] has passed; its offsets are committed only after `EventLog::append`
//! returned `Ok` (the rows are durable). A crash between append and commit redelivers the batch, which
//! the log absorbs because it is idempotent by `event_id`; so the log ends up with every accepted event
//! exactly once. A failed append is retried with capped exponential backoff and nothing is committed
//! meanwhile. A payload that is not a valid event (it cannot come from our collector) goes to the
//! quarantine topic before its offset is committed, so nothing is dropped silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipelines::bus::{EventBus, Message, Offsets, Record};
use pipelines::event::Event;
use pipelines::log::EventLog;
use pipelines::quarantine::BadRow;
use pipelines::validate::FieldError;
use pipelines::Result;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Sink settings.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Consumer group id.
    pub group: String,
    /// Topic to read.
    pub events_topic: String,
    /// Where undecodable payloads go.
    pub quarantine_topic: String,
    /// Flush at this many events (10,000: one ClickHouse insert per ~3 MB, well within its sweet spot).
    pub batch_max_events: usize,
    /// Flush at least this often (1 s: events are queryable within ~1 s of arriving).
    pub flush_interval: Duration,
    /// Longest wait between retries of a failed write.
    pub max_backoff: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            group: "lusso-event-log-sink".into(),
            events_topic: pipelines::topics::EVENTS.into(),
            quarantine_topic: pipelines::topics::QUARANTINE.into(),
            batch_max_events: 10_000,
            flush_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Decodes a batch; undecodable payloads become bad rows.
fn decode(messages: &[Message]) -> (Vec<Event>, Vec<Record>) {
    let mut events = Vec::with_capacity(messages.len());
    let mut bad = Vec::new();
    for m in messages {
        match serde_json::from_slice::<Event>(&m.payload) {
            Ok(e) => events.push(e),
            Err(e) => {
                let raw = serde_json::from_slice(&m.payload).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&m.payload).into_owned())
                });
                let row = BadRow::new(
                    "sink",
                    None,
                    vec![FieldError {
                        field: String::new(),
                        code: "undecodable".into(),
                        reason: format!("partition {} offset {}: {e}", m.partition, m.offset),
                    }],
                    raw,
                );
                bad.push(Record::new(
                    row.key(),
                    serde_json::to_vec(&row).unwrap_or_default(),
                ));
            }
        }
    }
    (events, bad)
}

/// Retries `op` with capped exponential backoff until it succeeds or shutdown is requested
/// (then `None`: the caller must not commit).
async fn retry<F, Fut>(
    what: &str,
    config: &SinkConfig,
    shutdown: &CancellationToken,
    metrics: &Metrics,
    mut op: F,
) -> Option<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(()) => return Some(()),
            Err(e) => {
                metrics.sink_failures.inc();
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "{what} failed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// Runs the sink until `shutdown` is cancelled (then returns after the in-progress batch is flushed or
/// abandoned uncommitted).
pub async fn run(
    bus: Arc<dyn EventBus>,
    log: Arc<dyn EventLog>,
    config: SinkConfig,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut sub = loop {
        match bus.subscribe(&config.events_topic, &config.group).await {
            Ok(sub) => break sub,
            Err(e) => {
                tracing::warn!(error = %e, "sink cannot subscribe yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    tracing::info!(topic = %config.events_topic, group = %config.group, log = %log.describe(), "sink running");
    while !shutdown.is_cancelled() {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = sub.poll(config.batch_max_events, config.flush_interval) => r,
        };
        let messages = match polled {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "sink poll failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let (events, bad) = decode(&messages);
        if !bad.is_empty() {
            let n = bad.len() as u64;
            let topic = config.quarantine_topic.clone();
            if retry("quarantine produce", &config, &shutdown, &metrics, || {
                bus.produce(&topic, bad.clone())
            })
            .await
            .is_none()
            {
                break;
            }
            metrics.quarantined.inc_by(n);
        }
        let started = Instant::now();
        if retry("event-log append", &config, &shutdown, &metrics, || {
            log.append(&events)
        })
        .await
        .is_none()
        {
            break;
        }
        metrics
            .sink_append_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.sink_rows.inc_by(events.len() as u64);
        metrics.sink_batch_size.set(events.len() as i64);
        // A failed commit only means redelivery later, which the idempotent log absorbs.
        if let Err(e) = sub.commit(&Offsets::after(&messages)).await {
            tracing::warn!(error = %e, "sink commit failed; the batch will be redelivered");
        }
    }
    tracing::info!("sink stopped");
    Ok(())
}
