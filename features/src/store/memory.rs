//! In-process [`FeatureStore`]: a map behind a mutex, with Redis's semantics (compare-and-set on the revision
//! prefix, expiry on write). Bounded: at most `max_keys` keys; a write that would add a key beyond the bound fails
//! with [`Error::Full`] (the consumer then keeps its offsets uncommitted and retries: nothing is dropped).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{CasWrite, FeatureStore};
use crate::state::revision_of;
use crate::{Error, Result};

/// Default bound: 5 million keys ≈ a few GiB at the blob sizes measured in BENCHMARKS.md; embedded mode is for
/// demos and single-node trials, production uses Redis.
pub const MEMORY_STORE_MAX_KEYS: usize = 5_000_000;

#[derive(Default)]
struct Inner {
    blobs: HashMap<String, (Bytes, Option<Instant>)>,
    sets: HashMap<String, BTreeSet<String>>,
}

/// The in-memory store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_keys: usize,
}

impl MemoryStore {
    pub fn new(max_keys: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max_keys,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn live(entry: Option<&(Bytes, Option<Instant>)>, now: Instant) -> Option<&Bytes> {
    entry
        .filter(|(_, exp)| exp.is_none_or(|e| e > now))
        .map(|(b, _)| b)
}

#[async_trait]
impl FeatureStore for MemoryStore {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let inner = self.lock();
        let now = Instant::now();
        Ok(keys
            .iter()
            .map(|k| live(inner.blobs.get(k), now).cloned())
            .collect())
    }

    async fn put_cas(&self, writes: Vec<CasWrite>) -> Result<Vec<bool>> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            let current = revision_of(live(inner.blobs.get(&w.key), now).map(|b| b.as_ref()));
            if current != w.expected_rev {
                out.push(false);
                continue;
            }
            let adds = |inner: &Inner| {
                usize::from(!inner.blobs.contains_key(&w.key))
                    + w.side.as_ref().map_or(0, |s| {
                        usize::from(s.value.is_some() && !inner.blobs.contains_key(&s.key))
                    })
            };
            if adds(&inner) > 0 && inner.blobs.len() + adds(&inner) > self.max_keys {
                inner
                    .blobs
                    .retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
                if inner.blobs.len() + adds(&inner) > self.max_keys {
                    return Err(Error::Full(format!(
                        "in-memory feature store holds its maximum of {} keys",
                        self.max_keys
                    )));
                }
            }
            let expiry = w.ttl.map(|t: Duration| now + t);
            inner.blobs.insert(w.key, (Bytes::from(w.blob), expiry));
            if let Some(side) = w.side {
                match side.value {
                    Some(v) => {
                        inner
                            .blobs
                            .insert(side.key, (Bytes::from(v), Some(now + side.ttl)));
                    }
                    None => {
                        inner.blobs.remove(&side.key);
                    }
                }
            }
            out.push(true);
        }
        Ok(out)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.lock()
            .blobs
            .insert(key.to_string(), (Bytes::from(value), None));
        Ok(())
    }

    async fn add_to_set(&self, key: &str, members: &[String]) -> Result<()> {
        self.lock()
            .sets
            .entry(key.to_string())
            .or_default()
            .extend(members.iter().cloned());
        Ok(())
    }

    async fn members(&self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .sets
            .get(key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn memory_bytes(&self) -> Result<u64> {
        let inner = self.lock();
        Ok(inner
            .blobs
            .iter()
            .map(|(k, (v, _))| (k.len() + v.len()) as u64)
            .sum())
    }

    fn describe(&self) -> String {
        "memory://".into()
    }
}
