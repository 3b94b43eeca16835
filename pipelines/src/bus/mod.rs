//! The event bus: topics of keyed records, consumer groups with committed offsets.
//!
//! Two implementations behind [`EventBus`], chosen by [`connect`]: Kafka ([`kafka`], any Kafka-protocol
//! broker such as tansu) and an embedded in-process log ([`memory`]) with the same semantics: records with
//! one key keep their order (one partition), a group member resumes from the group's committed offsets,
//! and nothing is committed until the consumer says its downstream write is durable (at-least-once).

pub mod kafka;
pub mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::BackendConfig;
use crate::Result;

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key (records with one key stay ordered).
    pub key: Option<Bytes>,
    /// The payload, usually canonical event JSON.
    pub payload: Bytes,
}

impl Record {
    /// A keyed record.
    pub fn new(key: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            payload: payload.into(),
        }
    }
}

/// A consumed record with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Key as produced.
    pub key: Option<Bytes>,
    /// Payload as produced.
    pub payload: Bytes,
}

/// Next offsets to commit, per partition (the offset *after* the last processed message, as Kafka does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offsets(pub BTreeMap<i32, i64>);

impl Offsets {
    /// The offsets that commit everything in `messages` (which may span partitions, in any order).
    pub fn after(messages: &[Message]) -> Offsets {
        let mut map = BTreeMap::new();
        for m in messages {
            let next = map.entry(m.partition).or_insert(m.offset + 1);
            *next = (*next).max(m.offset + 1);
        }
        Offsets(map)
    }

    /// Adds the positions of more messages.
    pub fn merge(&mut self, other: &Offsets) {
        for (p, o) in &other.0 {
            let next = self.0.entry(*p).or_insert(*o);
            *next = (*next).max(*o);
        }
    }

    /// True when there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A bus of topics.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Creates the topic with `partitions` partitions if it does not exist.
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()>;
    /// Produces every record or fails: on `Ok` all records are durable on the bus (acks=all);
    /// on `Err` the caller must treat the whole batch as not accepted (some may have landed: consumers
    /// are idempotent by event id, so a retry cannot double-count).
    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<()>;
    /// Joins consumer group `group` on `topic`, resuming from the group's committed offsets
    /// (earliest when the group has none).
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>>;
    /// Checks that the bus is reachable (for `/readyz`).
    async fn ping(&self) -> Result<()>;
    /// Human description, e.g. `kafka://127.0.0.1:9092`.
    fn describe(&self) -> String;
}

/// One member of a consumer group.
#[async_trait]
pub trait Subscription: Send {
    /// Waits until `max` messages are available or `wait` has passed; returns what it has (maybe none).
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>>;
    /// Commits the group's position; call only after the messages' effects are durable.
    async fn commit(&mut self, offsets: &Offsets) -> Result<()>;
    /// Messages on this member's partitions not yet returned by `poll` (`None` when the bus cannot tell).
    async fn lag(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Connects the bus named by the config: Kafka when `kafka_brokers` is set, else a new embedded bus.
pub fn connect(config: &BackendConfig) -> Result<Arc<dyn EventBus>> {
    match &config.kafka_brokers {
        Some(brokers) => Ok(Arc::new(kafka::KafkaBus::new(kafka::KafkaConfig::new(
            brokers.clone(),
        ))?)),
        None => Ok(Arc::new(memory::MemoryBus::new(
            memory::MemoryBusConfig::default(),
        ))),
    }
}

/// Partition of a key, the same function for every bus implementation (FNV-1a; stable across runs).
pub fn partition_for(key: Option<&[u8]>, partitions: i32, fallback: u64) -> i32 {
    let n = partitions.max(1) as u64;
    let h = match key {
        Some(k) if !k.is_empty() => k.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        }),
        _ => fallback,
    };
    (h % n) as i32
}
