//! The Kafka bus (rdkafka; any Kafka-protocol broker such as tansu).
//!
//! Producer: idempotent, `acks=all`, key = shopper identity; `produce` waits for every delivery report
//! and fails the whole batch if one fails. While the broker is unreachable the bus fails fast (a circuit
//! that re-checks the broker at most every [`KafkaConfig::recheck_ms`]) instead of holding requests for the
//! full delivery timeout. Topics are created with the configured partition count when missing — also
//! again after a broker came back without them.
//!
//! Consumer: a consumer group with `enable.auto.commit=false`; offsets are committed only by
//! [`Subscription::commit`], i.e. after the caller's write is durable.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

use super::{EventBus, Message, Offsets, Record, Subscription};
use crate::{Error, Result};

/// Kafka client settings (defaults suit a single local broker; documented per field).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Partitions for topics we create.
    pub partitions: i32,
    /// Per-message delivery timeout (`message.timeout.ms`): how long a produce may wait for a broker
    /// before the batch fails (5 s: well under a storefront's retry budget).
    pub delivery_timeout_ms: u64,
    /// `linger.ms`: batching delay of the producer (5 ms trades a little latency for throughput).
    pub linger_ms: u64,
    /// After a failure, how often the broker is re-checked before producing again (1 s).
    pub recheck_ms: i64,
    /// Consumer `session.timeout.ms` (6 s, the usual broker minimum: a killed member is replaced fast).
    pub session_timeout_ms: u64,
}

impl KafkaConfig {
    /// Defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            partitions: crate::topics::default_partitions(),
            delivery_timeout_ms: 5_000,
            linger_ms: 5,
            recheck_ms: 1_000,
            session_timeout_ms: 6_000,
        }
    }
}

/// The Kafka implementation of [`EventBus`].
pub struct KafkaBus {
    config: KafkaConfig,
    producer: Mutex<FutureProducer>,
    admin: AdminClient<DefaultClientContext>,
    known_topics: Mutex<HashSet<String>>,
    down: AtomicBool,
    last_check_ms: AtomicI64,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("kafka {what}: {e}"))
}

fn producer(config: &KafkaConfig) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", config.linger_ms.to_string())
        .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
        .set("request.timeout.ms", config.delivery_timeout_ms.to_string())
        // Bound of the client-side queue; past it `produce` waits for deliveries instead of growing.
        .set("queue.buffering.max.messages", "200000")
        .create()
        .map_err(|e| Error::BadInput(format!("kafka producer for {}: {e}", config.brokers)))
}

impl KafkaBus {
    /// Creates the clients (no network round trip yet).
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .create()
            .map_err(|e| Error::BadInput(format!("kafka admin for {}: {e}", config.brokers)))?;
        Ok(KafkaBus {
            producer: Mutex::new(producer(&config)?),
            admin,
            config,
            known_topics: Mutex::new(HashSet::new()),
            down: AtomicBool::new(false),
            last_check_ms: AtomicI64::new(0),
        })
    }

    fn producer(&self) -> FutureProducer {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Fails fast while the broker is known down; re-checks it at most every `recheck_ms`.
    async fn check_circuit(&self) -> Result<()> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = Self::now_ms();
        let last = self.last_check_ms.load(Ordering::Acquire);
        if now - last < self.config.recheck_ms {
            return Err(Error::Unavailable(format!(
                "kafka broker {} is unreachable",
                self.config.brokers
            )));
        }
        self.last_check_ms.store(now, Ordering::Release);
        self.ping().await?;
        // The broker is back; it may have lost topics or our producer id, so start clean.
        self.known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.producer.lock().unwrap_or_else(|p| p.into_inner()) = producer(&self.config)?;
        self.down.store(false, Ordering::Release);
        Ok(())
    }

    fn trip(&self) {
        self.last_check_ms.store(Self::now_ms(), Ordering::Release);
        self.down.store(true, Ordering::Release);
    }

    async fn produce_once(&self, topic: &str, records: &[Record]) -> Result<()> {
        let producer = self.producer();
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut rec: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(topic).payload(r.payload.as_ref());
            if let Some(k) = &r.key {
                rec = rec.key(k.as_ref());
            }
            loop {
                match producer.send_result(rec) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Bounded client queue is full: wait for deliveries to drain, then retry.
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(unavailable("enqueue", e)),
                }
            }
        }
        let mut first_err = None;
        for f in pending {
            let outcome = match f.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => e,
                Err(_) => KafkaError::Canceled,
            };
            first_err.get_or_insert(outcome);
        }
        match first_err {
            None => Ok(()),
            Some(KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                Err(Error::Internal(format!("unknown topic {topic}")))
            }
            Some(e) => Err(unavailable("produce", e)),
        }
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        if self
            .known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(topic)
        {
            return Ok(());
        }
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| unavailable("create topic", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(unavailable(&format!("create topic {name}"), code))
                }
            }
        }
        self.known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string());
        Ok(())
    }

    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.check_circuit().await?;
        self.ensure_topic(topic, self.config.partitions)
            .await
            .inspect_err(|_| self.trip())?;
        match self.produce_once(topic, &records).await {
            Ok(()) => Ok(()),
            Err(Error::Internal(_)) => {
                // The broker lost the topic (e.g. restarted in-memory broker): recreate once and retry.
                self.known_topics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(topic);
                self.ensure_topic(topic, self.config.partitions).await?;
                self.produce_once(topic, &records)
                    .await
                    .inspect_err(|_| self.trip())
            }
            Err(e) => {
                self.trip();
                Err(e)
            }
        }
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        self.ensure_topic(topic, self.config.partitions).await?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                self.config.session_timeout_ms.to_string(),
            )
            .set("heartbeat.interval.ms", "1000")
            .create()
            .map_err(|e| Error::BadInput(format!("kafka consumer: {e}")))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| unavailable("subscribe", e))?;
        Ok(Box::new(KafkaSubscription {
            consumer: Arc::new(consumer),
            topic: topic.to_string(),
        }))
    }

    async fn ping(&self) -> Result<()> {
        let producer = self.producer();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_millis(1500))
                .map(|_| ())
        })
        .await
        .map_err(|e| Error::Internal(format!("ping task: {e}")))?
        .map_err(|e| unavailable("metadata", e))
    }

    fn describe(&self) -> String {
        format!("kafka://{}", self.config.brokers)
    }
}

struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    topic: String,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max {
            let m = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    if out.is_empty() {
                        return Err(unavailable("consume", e));
                    }
                    break;
                }
                Ok(Ok(m)) => m,
            };
            out.push(Message {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(Bytes::copy_from_slice),
                payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
            });
        }
        Ok(out)
    }

    async fn commit(&mut self, offsets: &Offsets) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets.0 {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                .map_err(|e| Error::Internal(format!("offset list: {e}")))?;
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Internal(format!("commit task: {e}")))?
            .map_err(|e| unavailable("commit", e))
    }

    async fn lag(&mut self) -> Result<Option<u64>> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let positions = consumer
                .position()
                .map_err(|e| unavailable("position", e))?;
            let mut lag = None;
            for e in positions.elements_for_topic(&topic) {
                if let Offset::Offset(pos) = e.offset() {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, e.partition(), Duration::from_secs(2))
                        .map_err(|e| unavailable("watermarks", e))?;
                    *lag.get_or_insert(0u64) += (high - pos).max(0) as u64;
                }
            }
            Ok(lag)
        })
        .await
        .map_err(|e| Error::Internal(format!("lag task: {e}")))?
    }
}
