//! Inspecting and replaying bad rows on the quarantine topic.
//!
//! Listing reads the topic from the start with a throw-away consumer group that never commits. Replay
//! re-validates every bad row with today's rules and produces the ones that now pass to the events topic
//! (with their original `event_id`, so replaying twice is harmless downstream); rows that still fail stay
//! in quarantine and are reported with their current reasons.

use std::time::Duration;

use chrono::Utc;
use pipelines::bus::{EventBus, Record};
use pipelines::quarantine::BadRow;
use pipelines::validate::validate_event;
use pipelines::Result;
use serde::{Deserialize, Serialize};

/// How long a reader waits for more messages before deciding it reached the end of the topic.
const END_OF_TOPIC_WAIT: Duration = Duration::from_millis(1500);

/// Reads up to `limit` bad rows from the start of the quarantine topic.
pub async fn list(bus: &dyn EventBus, topic: &str, limit: usize) -> Result<Vec<BadRow>> {
    let group = format!("lusso-quarantine-reader-{}", uuid::Uuid::new_v4());
    let mut sub = bus.subscribe(topic, &group).await?;
    let mut rows = Vec::new();
    while rows.len() < limit {
        let batch = sub.poll(limit - rows.len(), END_OF_TOPIC_WAIT).await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            match serde_json::from_slice::<BadRow>(&m.payload) {
                Ok(row) => rows.push(row),
                Err(e) => tracing::warn!(offset = m.offset, partition = m.partition, error = %e,
                    "quarantine message is not a bad row; skipped in listing"),
            }
        }
    }
    Ok(rows)
}

/// Outcome of a replay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplayReport {
    /// Bad rows read.
    pub scanned: usize,
    /// Rows that now validate and were produced to the events topic.
    pub replayed: usize,
    /// Rows that still fail, with their current reasons.
    pub still_invalid: usize,
    /// The quarantine holds more than [`REPLAY_MAX_ROWS`]; only the first ones were read.
    #[serde(default)]
    pub truncated: bool,
}

/// Most bad rows one replay reads (and holds in memory), from the start of the topic.
pub const REPLAY_MAX_ROWS: usize = 100_000;

/// Re-validates the bad rows (up to [`REPLAY_MAX_ROWS`]) and produces the ones that pass to `events_topic`.
pub async fn replay(
    bus: &dyn EventBus,
    quarantine_topic: &str,
    events_topic: &str,
) -> Result<ReplayReport> {
    let rows = list(bus, quarantine_topic, REPLAY_MAX_ROWS).await?;
    let now = Utc::now();
    let mut report = ReplayReport {
        scanned: rows.len(),
        truncated: rows.len() >= REPLAY_MAX_ROWS,
        ..Default::default()
    };
    let mut records = Vec::new();
    for row in rows {
        match validate_event(&row.event, now) {
            Ok(mut event) => {
                event.received_at = Some(now);
                records.push(Record::new(
                    event.key().as_bytes().to_vec(),
                    event.to_json_bytes(),
                ));
            }
            Err(_) => report.still_invalid += 1,
        }
    }
    report.replayed = records.len();
    for chunk in records.chunks(500) {
        bus.produce(events_topic, chunk.to_vec()).await?;
    }
    Ok(report)
}
