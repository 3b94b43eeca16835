//! The embedded bus: an in-process, bounded log with Kafka-like consumer groups.
//!
//! Bound: each partition holds at most [`MemoryBusConfig::max_messages_per_partition`] messages (size-based
//! retention, as in Kafka, so a group that joins later still reads the retained history). When a partition
//! is full, the messages every group on the topic has committed are dropped first; if it is still full,
//! `produce` fails with [`Error::Full`] and appends nothing (the collector turns that into
//! `503 + Retry-After`), so nothing accepted is ever dropped before its consumers have it. Until a topic has
//! a group, nothing is dropped.
//!
//! Groups: members of one group split the partitions (`partition % members == rank`, ranks by join
//! order); a member that is given a partition starts from the group's committed offset, like a Kafka
//! rebalance. Not durable across process restarts: this is the embedded/demo mode.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{partition_for, EventBus, Message, Offsets, Record, Subscription};
use crate::{Error, Result};

/// Bounds of the embedded bus.
#[derive(Debug, Clone)]
pub struct MemoryBusConfig {
    /// Partitions for topics created implicitly by `produce`/`subscribe`.
    pub default_partitions: i32,
    /// Most retained messages per partition (default 250,000: ~1M events per 4-partition topic, a few
    /// hundred MB at ~300 B/event, enough for minutes of demo traffic a consumer has not caught up with).
    pub max_messages_per_partition: usize,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        MemoryBusConfig {
            default_partitions: crate::topics::default_partitions(),
            max_messages_per_partition: 250_000,
        }
    }
}

#[derive(Default)]
struct Partition {
    /// Offset of `log[0]`.
    base: i64,
    log: VecDeque<(Option<bytes::Bytes>, bytes::Bytes)>,
}

impl Partition {
    fn end(&self) -> i64 {
        self.base + self.log.len() as i64
    }
}

#[derive(Default)]
struct Group {
    committed: BTreeMap<i32, i64>,
    /// Member ids in join order.
    members: Vec<u64>,
}

struct Topic {
    partitions: Vec<Partition>,
    groups: HashMap<String, Group>,
    round_robin: u64,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
    next_member: AtomicU64,
    config: MemoryBusConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The embedded bus. Cheap to clone; clones share the log.
#[derive(Clone)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

impl MemoryBus {
    /// A new, empty bus.
    pub fn new(config: MemoryBusConfig) -> Self {
        MemoryBus {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                next_member: AtomicU64::new(1),
                config,
            }),
        }
    }

    /// Messages of `topic` that group `group` has not committed yet (its lag); the whole topic for a
    /// group that does not exist.
    pub fn lag(&self, topic: &str, group: &str) -> usize {
        let state = self.shared.lock();
        let Some(t) = state.topics.get(topic) else {
            return 0;
        };
        let committed = t.groups.get(group).map(|g| &g.committed);
        t.partitions
            .iter()
            .enumerate()
            .map(|(p, part)| {
                let c = committed
                    .and_then(|c| c.get(&(p as i32)).copied())
                    .unwrap_or(0)
                    .max(part.base);
                (part.end() - c).max(0) as usize
            })
            .sum()
    }

    /// Messages currently retained in a topic (for metrics and tests).
    pub fn retained(&self, topic: &str) -> usize {
        let state = self.shared.lock();
        state
            .topics
            .get(topic)
            .map(|t| t.partitions.iter().map(|p| p.log.len()).sum())
            .unwrap_or(0)
    }
}

fn topic_entry<'a>(state: &'a mut State, name: &str, partitions: i32) -> &'a mut Topic {
    state
        .topics
        .entry(name.to_string())
        .or_insert_with(|| Topic {
            partitions: (0..partitions.max(1))
                .map(|_| Partition::default())
                .collect(),
            groups: HashMap::new(),
            round_robin: 0,
        })
}

/// Drops messages every group has committed.
fn trim(topic: &mut Topic) {
    if topic.groups.is_empty() {
        return;
    }
    for (idx, part) in topic.partitions.iter_mut().enumerate() {
        let p = idx as i32;
        let floor = topic
            .groups
            .values()
            .map(|g| g.committed.get(&p).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        while part.base < floor && !part.log.is_empty() {
            part.log.pop_front();
            part.base += 1;
        }
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let mut state = self.shared.lock();
        topic_entry(&mut state, topic, partitions);
        Ok(())
    }

    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let cap = self.shared.config.max_messages_per_partition;
        {
            let mut state = self.shared.lock();
            let t = topic_entry(&mut state, topic, self.shared.config.default_partitions);
            let n = t.partitions.len() as i32;
            let rr = t.round_robin;
            let targets: Vec<i32> = records
                .iter()
                .enumerate()
                .map(|(i, r)| partition_for(r.key.as_deref(), n, rr + i as u64))
                .collect();
            t.round_robin = rr + records.len() as u64;
            let mut needed = vec![0usize; n as usize];
            for p in &targets {
                needed[*p as usize] += 1;
            }
            if needed
                .iter()
                .zip(&t.partitions)
                .any(|(k, part)| part.log.len() + k > cap)
            {
                trim(t);
                if let Some((p, _)) = needed
                    .iter()
                    .zip(&t.partitions)
                    .enumerate()
                    .find(|(_, (k, part))| part.log.len() + **k > cap)
                {
                    return Err(Error::Full(format!(
                        "embedded bus topic {topic} partition {p} holds {cap} uncommitted messages"
                    )));
                }
            }
            for (r, p) in records.into_iter().zip(targets) {
                t.partitions[p as usize].log.push_back((r.key, r.payload));
            }
        }
        self.shared.notify.notify_waiters();
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        let id = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.shared.lock();
            let t = topic_entry(&mut state, topic, self.shared.config.default_partitions);
            t.groups
                .entry(group.to_string())
                .or_default()
                .members
                .push(id);
        }
        Ok(Box::new(MemorySubscription {
            shared: self.shared.clone(),
            topic: topic.to_string(),
            group: group.to_string(),
            member: id,
            positions: BTreeMap::new(),
        }))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "embedded (in-process bus)".to_string()
    }
}

struct MemorySubscription {
    shared: Arc<Shared>,
    topic: String,
    group: String,
    member: u64,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<i32, i64>,
}

impl MemorySubscription {
    fn take(&mut self, max: usize) -> Vec<Message> {
        let mut state = self.shared.lock();
        let Some(t) = state.topics.get_mut(&self.topic) else {
            return Vec::new();
        };
        let Some(g) = t.groups.get(&self.group) else {
            return Vec::new();
        };
        let members = g.members.len().max(1);
        let rank = g
            .members
            .iter()
            .position(|m| *m == self.member)
            .unwrap_or(0);
        let assigned: Vec<i32> = (0..t.partitions.len() as i32)
            .filter(|p| (*p as usize) % members == rank)
            .collect();
        self.positions.retain(|p, _| assigned.contains(p));
        for p in &assigned {
            let committed = g.committed.get(p).copied().unwrap_or(0);
            self.positions.entry(*p).or_insert(committed);
        }
        let mut out = Vec::new();
        for (p, pos) in self.positions.iter_mut() {
            let part = &t.partitions[*p as usize];
            *pos = (*pos).max(part.base);
            while *pos < part.end() && out.len() < max {
                let (key, payload) = &part.log[(*pos - part.base) as usize];
                out.push(Message {
                    topic: self.topic.clone(),
                    partition: *p,
                    offset: *pos,
                    key: key.clone(),
                    payload: payload.clone(),
                });
                *pos += 1;
            }
        }
        out
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        let shared = self.shared.clone();
        loop {
            let notified = shared.notify.notified();
            out.extend(self.take(max - out.len()));
            if out.len() >= max {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(out);
            }
        }
    }

    async fn commit(&mut self, offsets: &Offsets) -> Result<()> {
        let mut state = self.shared.lock();
        let t = state
            .topics
            .get_mut(&self.topic)
            .ok_or_else(|| Error::Internal(format!("topic {} vanished", self.topic)))?;
        let g = t.groups.entry(self.group.clone()).or_default();
        for (p, o) in &offsets.0 {
            let c = g.committed.entry(*p).or_insert(0);
            *c = (*c).max(*o);
        }
        Ok(())
    }

    async fn lag(&mut self) -> Result<Option<u64>> {
        let state = self.shared.lock();
        let Some(t) = state.topics.get(&self.topic) else {
            return Ok(Some(0));
        };
        let lag = self
            .positions
            .iter()
            .map(|(p, pos)| {
                let part = &t.partitions[*p as usize];
                (part.end() - (*pos).max(part.base)).max(0) as u64
            })
            .sum();
        Ok(Some(lag))
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(g) = state
            .topics
            .get_mut(&self.topic)
            .and_then(|t| t.groups.get_mut(&self.group))
        {
            g.members.retain(|m| *m != self.member);
        }
        // A group that never committed (e.g. a one-off reader) must not pin the log forever.
        if let Some(t) = state.topics.get_mut(&self.topic) {
            t.groups
                .retain(|_, g| !(g.members.is_empty() && g.committed.is_empty()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, n: usize) -> Record {
        Record::new(key.as_bytes().to_vec(), format!("m{n}").into_bytes())
    }

    #[tokio::test]
    async fn one_key_stays_in_order_and_groups_resume_from_commits() {
        let bus = MemoryBus::new(MemoryBusConfig::default());
        let records: Vec<Record> = (0..10).map(|i| rec("shopper-1", i)).collect();
        bus.produce("t", records).await.unwrap();
        let mut sub = bus.subscribe("t", "g").await.unwrap();
        let got = sub.poll(4, Duration::from_millis(50)).await.unwrap();
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_ref()).collect();
        assert_eq!(payloads, vec![b"m0" as &[u8], b"m1", b"m2", b"m3"]);
        sub.commit(&Offsets::after(&got)).await.unwrap();
        // Uncommitted messages 4.. are redelivered to the next member of the group.
        let _ = sub.poll(3, Duration::from_millis(50)).await.unwrap();
        drop(sub);
        let mut again = bus.subscribe("t", "g").await.unwrap();
        let rest = again.poll(100, Duration::from_millis(50)).await.unwrap();
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[0].payload.as_ref(), b"m4");
        // Another group starts from the beginning, independently.
        let mut other = bus.subscribe("t", "h").await.unwrap();
        assert_eq!(
            other
                .poll(100, Duration::from_millis(50))
                .await
                .unwrap()
                .len(),
            10
        );
    }

    #[tokio::test]
    async fn members_of_a_group_split_the_partitions() {
        let bus = MemoryBus::new(MemoryBusConfig {
            default_partitions: 4,
            ..Default::default()
        });
        let records: Vec<Record> = (0..400).map(|i| rec(&format!("k{i}"), i)).collect();
        bus.produce("t", records).await.unwrap();
        let mut a = bus.subscribe("t", "g").await.unwrap();
        let mut b = bus.subscribe("t", "g").await.unwrap();
        let got_a = a.poll(1000, Duration::from_millis(50)).await.unwrap();
        let got_b = b.poll(1000, Duration::from_millis(50)).await.unwrap();
        assert_eq!(got_a.len() + got_b.len(), 400);
        let parts = |m: &[Message]| {
            let mut p: Vec<i32> = m.iter().map(|m| m.partition).collect();
            p.sort();
            p.dedup();
            p
        };
        assert_eq!(parts(&got_a), vec![0, 2]);
        assert_eq!(parts(&got_b), vec![1, 3]);
    }

    #[tokio::test]
    async fn full_partition_rejects_the_whole_batch_until_committed() {
        let bus = MemoryBus::new(MemoryBusConfig {
            default_partitions: 1,
            max_messages_per_partition: 5,
        });
        let mut sub = bus.subscribe("t", "g").await.unwrap();
        bus.produce("t", (0..4).map(|i| rec("k", i)).collect())
            .await
            .unwrap();
        let err = bus
            .produce("t", (4..6).map(|i| rec("k", i)).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Full(_)), "{err}");
        assert_eq!(
            bus.retained("t"),
            4,
            "nothing of the refused batch was appended"
        );
        let got = sub.poll(10, Duration::from_millis(50)).await.unwrap();
        assert_eq!(bus.lag("t", "g"), 4);
        sub.commit(&Offsets::after(&got)).await.unwrap();
        assert_eq!(bus.lag("t", "g"), 0);
        assert_eq!(bus.retained("t"), 4, "retained until room is needed");
        bus.produce("t", (4..6).map(|i| rec("k", i)).collect())
            .await
            .unwrap();
        assert_eq!(bus.retained("t"), 2, "committed messages made room");
        let got = sub.poll(10, Duration::from_millis(50)).await.unwrap();
        assert_eq!(got[0].offset, 4);
    }
}
