//! The online feature store: a key → blob map with compare-and-set writes, behind [`FeatureStore`].
//!
//! Two implementations, chosen by [`open`]: Redis ([`redis`], the production store) and an in-process map
//! ([`memory`], embedded mode and unit tests) with the same semantics. Every read a request needs is one round
//! trip (a pipeline of `GET`s); every write is a compare-and-set on the blob's revision, so a stale writer (a
//! consumer that lost its partitions, a zombie past its session timeout) can never overwrite newer state. Keys are
//! Redis-Cluster safe: each entity's keys share a hash tag (`lusso:u:{u:42}`), and no command spans two tags.

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::FeaturesConfig;
use crate::Result;

/// One compare-and-set write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasWrite {
    pub key: String,
    /// Revision the writer read (0 = the key was absent).
    pub expected_rev: u64,
    /// New blob; its first 8 bytes are its (new) revision, big-endian.
    pub blob: Vec<u8>,
    /// Expiry after the write (`None` = keep).
    pub ttl: Option<Duration>,
    /// A second key written in the same atomic step when the compare-and-set succeeds (and left alone when it
    /// fails): a shopper's recent event ids, which expire sooner than the shopper. It must share the blob
    /// key's hash tag (Redis Cluster runs the step on one node).
    pub side: Option<SideWrite>,
}

/// The second key of a [`CasWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideWrite {
    pub key: String,
    /// New value, or `None` to delete the key.
    pub value: Option<Vec<u8>>,
    /// Expiry of the new value.
    pub ttl: Duration,
}

/// A key-value store of feature blobs.
#[async_trait]
pub trait FeatureStore: Send + Sync + 'static {
    /// Values of `keys` in one round trip (`None` for a missing key).
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>>;
    /// Applies the writes in one round trip; per write, `true` when stored and `false` on a revision conflict
    /// (someone else wrote the key since it was read). Writes are independent: no cross-key atomicity.
    async fn put_cas(&self, writes: Vec<CasWrite>) -> Result<Vec<bool>>;
    /// Unconditional write of a derived value (popularity lists, the cluster model).
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Adds members to a set (idempotent); used for the index of known products.
    async fn add_to_set(&self, key: &str, members: &[String]) -> Result<()>;
    /// Members of a set.
    async fn members(&self, key: &str) -> Result<Vec<String>>;
    /// Checks the store is reachable (for `/readyz` and the consumer's retry loop).
    async fn ping(&self) -> Result<()>;
    /// Bytes used by the store (Redis `used_memory`; the in-memory store's payload bytes).
    async fn memory_bytes(&self) -> Result<u64>;
    /// Human description, e.g. `redis://127.0.0.1:6379`.
    fn describe(&self) -> String;
}

/// Opens the store named by the config: Redis when `redis_url` is set, else a new in-memory store.
pub async fn open(config: &FeaturesConfig) -> Result<Arc<dyn FeatureStore>> {
    match &config.redis_url {
        Some(url) => Ok(Arc::new(redis::RedisStore::connect(url).await?)),
        None => Ok(Arc::new(memory::MemoryStore::new(
            memory::MEMORY_STORE_MAX_KEYS,
        ))),
    }
}

/// Key names. Every key starts with the configured prefix (contract: `lusso:`) and carries one hash tag.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// A shopper's state; `id` is `u:<user_id>` or `a:<anonymous_id>`.
    pub fn user(&self, id: &str) -> String {
        format!("{}u:{{{id}}}", self.prefix)
    }

    /// A shopper's recent event ids (duplicate detection; expires after the dedup horizon), same hash tag.
    pub fn recent_ids(&self, id: &str) -> String {
        format!("{}d:{{{id}}}", self.prefix)
    }

    /// The name dictionary of shopper blobs ([`crate::state::dict`]).
    pub fn dict(&self) -> String {
        format!("{}dict:{{dict}}", self.prefix)
    }

    /// A product's state.
    pub fn product(&self, id: &str) -> String {
        format!("{}p:{{{id}}}", self.prefix)
    }

    /// The set of product ids that have state.
    pub fn product_index(&self) -> String {
        format!("{}{{products}}:index", self.prefix)
    }

    /// The learned cluster model (JSON).
    pub fn cluster_model(&self) -> String {
        format!("{}{{segments}}:model", self.prefix)
    }

    /// Popularity ranking (JSON) of a scope: `global`, `market:IT`, `segment:New`.
    pub fn popularity(&self, scope: &str) -> String {
        format!("{}{{popularity}}:{scope}", self.prefix)
    }
}
