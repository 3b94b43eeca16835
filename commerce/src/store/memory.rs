//! The in-memory store (embedded mode, unit tests): one mutex held for a whole transaction, writes staged
//! and applied at commit. Lost on exit.
//!
//! Bound: the outbox holds at most [`MAX_OUTBOX`] unrelayed messages (the bus is down long enough to fill it:
//! ~15 minutes of a busy shop); a transaction that would go past it fails with `Unavailable` and changes
//! nothing, so no state change ever happens without its message.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pipelines::commerce::CommerceEvent;
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::{encode, Claim, CommerceStore, IdempotencyRecord, OutboxRecord, StoredResponse, Tx};
use crate::inventory::StockRow;
use crate::model::{Cart, Order, Return};
use crate::{Error, Result};

/// Most unrelayed outbox messages the memory store keeps.
pub const MAX_OUTBOX: usize = 100_000;

type StockKey = (String, String);

#[derive(Default)]
struct State {
    stock: BTreeMap<StockKey, StockRow>,
    carts: HashMap<Uuid, Cart>,
    orders: HashMap<Uuid, Order>,
    idempotency: HashMap<String, IdempotencyRecord>,
    counters: HashMap<i32, u64>,
    returns: HashMap<Uuid, Return>,
    webhooks: HashSet<(String, String)>,
    outbox: VecDeque<OutboxRecord>,
    next_outbox_id: i64,
}

/// The in-memory [`CommerceStore`].
#[derive(Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct Staged {
    stock: BTreeMap<StockKey, StockRow>,
    carts: HashMap<Uuid, Cart>,
    orders: HashMap<Uuid, Order>,
    idempotency: HashMap<String, IdempotencyRecord>,
    counters: HashMap<i32, u64>,
    returns: HashMap<Uuid, Return>,
    webhooks: HashSet<(String, String)>,
    outbox: Vec<(String, Vec<u8>)>,
}

struct MemoryTx {
    state: OwnedMutexGuard<State>,
    staged: Staged,
}

#[async_trait]
impl CommerceStore for MemoryStore {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(MemoryTx {
            state: self.state.clone().lock_owned().await,
            staged: Staged::default(),
        }))
    }

    async fn cart(&self, id: Uuid) -> Result<Option<Cart>> {
        Ok(self.state.lock().await.carts.get(&id).cloned())
    }

    async fn order(&self, id: Uuid) -> Result<Option<Order>> {
        Ok(self.state.lock().await.orders.get(&id).cloned())
    }

    async fn stock(&self, sku: &str) -> Result<Vec<StockRow>> {
        let s = self.state.lock().await;
        Ok(rows_of(&s.stock, sku).cloned().collect())
    }

    async fn returns_of(&self, order_id: Uuid) -> Result<Vec<Return>> {
        let s = self.state.lock().await;
        let mut v: Vec<Return> = s
            .returns
            .values()
            .filter(|r| r.order_id == order_id)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.created_at);
        Ok(v)
    }

    async fn order_by_payment(&self, provider: &str, reference: &str) -> Result<Option<Uuid>> {
        let s = self.state.lock().await;
        Ok(s.orders
            .values()
            .find(|o| {
                o.payment.provider == provider && o.payment.reference.as_deref() == Some(reference)
            })
            .map(|o| o.id))
    }

    async fn seed_stock(&self, rows: &[StockRow]) -> Result<u64> {
        let mut s = self.state.lock().await;
        let mut n = 0;
        for r in rows {
            let key = (r.sku.clone(), r.location.clone());
            if let std::collections::btree_map::Entry::Vacant(e) = s.stock.entry(key) {
                e.insert(r.clone());
                n += 1;
            }
        }
        Ok(n)
    }

    async fn expired_orders(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>> {
        let s = self.state.lock().await;
        let mut v: Vec<&Order> = s
            .orders
            .values()
            .filter(|o| o.status.holds_reservation() && o.reservation_expires_at < now)
            .collect();
        v.sort_by_key(|o| o.reservation_expires_at);
        Ok(v.into_iter().take(limit).map(|o| o.id).collect())
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut s = self.state.lock().await;
        let n = s.idempotency.len();
        s.idempotency.retain(|_, r| r.created_at >= before);
        Ok((n - s.idempotency.len()) as u64)
    }

    async fn outbox_batch(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let s = self.state.lock().await;
        Ok(s.outbox.iter().take(limit).cloned().collect())
    }

    async fn outbox_ack(&self, ids: &[i64]) -> Result<()> {
        let mut s = self.state.lock().await;
        let ids: HashSet<i64> = ids.iter().copied().collect();
        s.outbox.retain(|r| !ids.contains(&r.id));
        Ok(())
    }

    async fn outbox_len(&self) -> Result<u64> {
        Ok(self.state.lock().await.outbox.len() as u64)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

fn rows_of<'a>(
    stock: &'a BTreeMap<StockKey, StockRow>,
    sku: &'a str,
) -> impl Iterator<Item = &'a StockRow> {
    stock
        .range((sku.to_string(), String::new())..)
        .take_while(move |((s, _), _)| s == sku)
        .map(|(_, r)| r)
}

/// A value as this transaction sees it: its own staged write, else the committed one.
fn read<K: std::hash::Hash + Eq, V: Clone>(
    staged: &HashMap<K, V>,
    committed: &HashMap<K, V>,
    key: &K,
) -> Option<V> {
    staged.get(key).or_else(|| committed.get(key)).cloned()
}

#[async_trait]
impl Tx for MemoryTx {
    async fn lock_stock(&mut self, skus: &[String]) -> Result<Vec<StockRow>> {
        let mut wanted: Vec<&String> = skus.iter().collect();
        wanted.sort();
        wanted.dedup();
        let mut out = Vec::new();
        for sku in wanted {
            let mut rows: BTreeMap<StockKey, StockRow> = rows_of(&self.state.stock, sku)
                .map(|r| ((r.sku.clone(), r.location.clone()), r.clone()))
                .collect();
            for (k, r) in self.staged.stock.iter().filter(|((s, _), _)| s == sku) {
                rows.insert(k.clone(), r.clone());
            }
            out.extend(rows.into_values());
        }
        Ok(out)
    }

    async fn put_stock(&mut self, row: &StockRow) -> Result<()> {
        self.staged
            .stock
            .insert((row.sku.clone(), row.location.clone()), row.clone());
        Ok(())
    }

    async fn cart_for_update(&mut self, id: Uuid) -> Result<Option<Cart>> {
        Ok(read(&self.staged.carts, &self.state.carts, &id))
    }

    async fn put_cart(&mut self, cart: &Cart) -> Result<()> {
        self.staged.carts.insert(cart.id, cart.clone());
        Ok(())
    }

    async fn order_for_update(&mut self, id: Uuid) -> Result<Option<Order>> {
        Ok(read(&self.staged.orders, &self.state.orders, &id))
    }

    async fn put_order(&mut self, order: &Order) -> Result<()> {
        self.staged.orders.insert(order.id, order.clone());
        Ok(())
    }

    async fn claim_idempotency(&mut self, record: &IdempotencyRecord) -> Result<Claim> {
        if let Some(r) = self
            .staged
            .idempotency
            .get(&record.key)
            .or_else(|| self.state.idempotency.get(&record.key))
        {
            return Ok(Claim::Existing(r.clone()));
        }
        self.staged
            .idempotency
            .insert(record.key.clone(), record.clone());
        Ok(Claim::New)
    }

    async fn finish_idempotency(&mut self, key: &str, response: &StoredResponse) -> Result<()> {
        let mut r = self
            .staged
            .idempotency
            .get(key)
            .or_else(|| self.state.idempotency.get(key))
            .cloned()
            .ok_or_else(|| Error::Internal(format!("idempotency key `{key}` not claimed")))?;
        r.response = Some(response.clone());
        self.staged.idempotency.insert(key.to_string(), r);
        Ok(())
    }

    async fn next_invoice_progressive(&mut self, year: i32) -> Result<u64> {
        let last = self
            .staged
            .counters
            .get(&year)
            .or_else(|| self.state.counters.get(&year))
            .copied()
            .unwrap_or(0);
        self.staged.counters.insert(year, last + 1);
        Ok(last + 1)
    }

    async fn return_for_update(&mut self, id: Uuid) -> Result<Option<Return>> {
        Ok(read(&self.staged.returns, &self.state.returns, &id))
    }

    async fn put_return(&mut self, ret: &Return) -> Result<()> {
        self.staged.returns.insert(ret.id, ret.clone());
        Ok(())
    }

    async fn returns_of(&mut self, order_id: Uuid) -> Result<Vec<Return>> {
        let mut by_id: HashMap<Uuid, Return> = self
            .state
            .returns
            .values()
            .filter(|r| r.order_id == order_id)
            .map(|r| (r.id, r.clone()))
            .collect();
        for r in self
            .staged
            .returns
            .values()
            .filter(|r| r.order_id == order_id)
        {
            by_id.insert(r.id, r.clone());
        }
        let mut v: Vec<Return> = by_id.into_values().collect();
        v.sort_by_key(|r| r.created_at);
        Ok(v)
    }

    async fn first_webhook(&mut self, provider: &str, event_id: &str) -> Result<bool> {
        let key = (provider.to_string(), event_id.to_string());
        if self.state.webhooks.contains(&key) || self.staged.webhooks.contains(&key) {
            return Ok(false);
        }
        self.staged.webhooks.insert(key);
        Ok(true)
    }

    async fn push_outbox(&mut self, key: &str, event: &CommerceEvent) -> Result<()> {
        if self.state.outbox.len() + self.staged.outbox.len() >= MAX_OUTBOX {
            return Err(Error::Unavailable(format!(
                "the outbox holds {MAX_OUTBOX} unrelayed messages (is the bus down?); try again later"
            )));
        }
        self.staged.outbox.push((key.to_string(), encode(event)?));
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let MemoryTx { mut state, staged } = *self;
        state.stock.extend(staged.stock);
        state.carts.extend(staged.carts);
        state.orders.extend(staged.orders);
        state.idempotency.extend(staged.idempotency);
        state.counters.extend(staged.counters);
        state.returns.extend(staged.returns);
        state.webhooks.extend(staged.webhooks);
        for (key, payload) in staged.outbox {
            state.next_outbox_id += 1;
            let id = state.next_outbox_id;
            state.outbox.push_back(OutboxRecord { id, key, payload });
        }
        Ok(())
    }
}
