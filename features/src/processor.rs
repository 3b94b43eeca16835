//! Applies a batch of bus messages to the feature store, exactly once in effect.
//!
//! Per batch: read every touched shopper blob and its recent event ids (one round trip), walk the messages in bus
//! order computing each shopper's new state and the effects on products, write the product blobs (compare-and-set,
//! one round trip, re-read and re-applied on conflict), then the shopper blobs, each with its ids in the same atomic
//! step. Each blob skips messages its fences already cover, and a shopper's recent event ids catch re-sent copies
//! of an event at another offset, so any redelivery, replay or duplicate changes nothing. Products are written before shoppers so that, after a crash between the two, the
//! redelivered messages meet the same shopper state and recompute the same product effects.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pipelines::event::{Event, Properties};

use crate::state::dict::{Dict, DictCell};
use crate::state::product::{Effect, ProductState, StockLevel, POP_CART, POP_PURCHASE, POP_VIEW};
use crate::state::user::{fingerprint, UserState};
use crate::state::{revision_of, StreamId};
use crate::store::{CasWrite, FeatureStore, SideWrite};
use crate::windows::Kind;
use crate::{Context, Error, Result};

/// A decoded bus message.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(Box<Event>),
    /// A stock level of one of `product_id`'s variants (from `lusso.commerce.v1`).
    Stock {
        product_id: String,
        level: StockLevel,
    },
}

/// A message with its position on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub stream: StreamId,
    pub offset: u64,
    pub item: Item,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Events applied to shopper state.
    pub applied: u64,
    /// Re-sent copies of an already applied event id (skipped).
    pub duplicates: u64,
    /// Messages the shopper's fences already covered (redelivery or replay; skipped).
    pub redelivered: u64,
    /// Compare-and-set conflicts resolved by re-reading.
    pub conflicts: u64,
    pub users_written: u64,
    pub products_written: u64,
}

/// Compare-and-set rounds before a batch gives up (and is retried whole by the consumer).
const MAX_CAS_ROUNDS: usize = 20;

/// The state id of an event's shopper: `u:<user_id>`, else `a:<anonymous_id>`.
pub fn state_id(ev: &Event) -> String {
    match (&ev.user_id, &ev.anonymous_id) {
        (Some(u), _) => format!("u:{u}"),
        (None, Some(a)) => format!("a:{a}"),
        (None, None) => "a:".into(),
    }
}

/// Applies batches to a store.
#[derive(Clone)]
pub struct Processor {
    ctx: Arc<Context>,
    store: Arc<dyn FeatureStore>,
    /// Product ids this process has added to the product index (bounded by [`INDEXED_CACHE_MAX`]; cleared when
    /// full, which only costs re-adding ids the store already has).
    indexed: Arc<std::sync::Mutex<HashSet<String>>>,
    /// The store's name dictionary (loaded before the first read or write of a shopper blob).
    dict: Arc<DictCell>,
}

/// Bound of the per-process cache of indexed product ids (a catalogue is far smaller).
const INDEXED_CACHE_MAX: usize = 1_000_000;

type ProductEffects = HashMap<String, Vec<(StreamId, u64, Effect)>>;

impl Processor {
    pub fn new(ctx: Arc<Context>, store: Arc<dyn FeatureStore>) -> Processor {
        Processor {
            ctx,
            store,
            indexed: Arc::default(),
            dict: Arc::default(),
        }
    }

    /// The store's name dictionary, loaded on first use with the catalogue's missing names appended.
    pub async fn dict(&self) -> Result<Arc<Dict>> {
        self.dict
            .get(
                self.store.as_ref(),
                &self.ctx.keys.dict(),
                &self.ctx.catalog,
            )
            .await
    }

    /// Decodes a shopper blob of this store (reloading the dictionary once when the blob names a code this
    /// process has not seen: another process appended it).
    pub async fn decode_user(&self, blob: &[u8]) -> Result<UserState> {
        let dict = self.dict().await?;
        let misses = dict.misses();
        let state = UserState::decode(blob, &dict)?;
        if dict.misses() == misses {
            return Ok(state);
        }
        let newer = self
            .dict
            .reload(
                self.store.as_ref(),
                &self.ctx.keys.dict(),
                &self.ctx.catalog,
            )
            .await?;
        UserState::decode(blob, &newer)
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    pub fn store(&self) -> &Arc<dyn FeatureStore> {
        &self.store
    }

    /// Applies `batch` (in bus order). On `Ok` every effect is stored; on `Err` some may be, and retrying the same
    /// messages is safe.
    pub async fn process(&self, batch: &[Incoming]) -> Result<BatchStats> {
        let mut stats = BatchStats::default();
        let mut by_user: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, inc) in batch.iter().enumerate() {
            if let Item::Event(ev) = &inc.item {
                by_user.entry(state_id(ev)).or_default().push(i);
            }
        }
        let ids: Vec<String> = by_user.keys().cloned().collect();
        let mut users = self.load_users(&ids).await?;
        let mut effects: ProductEffects = HashMap::new();
        let mut dirty = HashSet::new();
        for inc in batch {
            match &inc.item {
                Item::Event(ev) => {
                    let id = state_id(ev);
                    let user = users.entry(id.clone()).or_default();
                    if self.apply_event(user, inc, ev, Some(&mut effects), &mut stats) {
                        dirty.insert(id);
                    }
                }
                Item::Stock { product_id, level } => {
                    let effect = Effect::Stock(level.clone());
                    effects
                        .entry(product_id.clone())
                        .or_default()
                        .push((inc.stream, inc.offset, effect));
                }
            }
        }
        stats.products_written = self.write_products(effects, &mut stats).await?;
        stats.users_written = self
            .write_users(batch, &by_user, users, dirty, &mut stats)
            .await?;
        Ok(stats)
    }

    /// Applies one event to its shopper unless fenced or a duplicate; collects product effects when asked.
    /// Returns true when the shopper state changed.
    fn apply_event(
        &self,
        user: &mut UserState,
        inc: &Incoming,
        ev: &Event,
        effects: Option<&mut ProductEffects>,
        stats: &mut BatchStats,
    ) -> bool {
        if user.fences.covers(inc.stream, inc.offset) {
            stats.redelivered += 1;
            return false;
        }
        let fp = fingerprint(&ev.event_id);
        if user.is_duplicate(fp) {
            stats.duplicates += 1;
            user.fences.advance(inc.stream, inc.offset);
            return true;
        }
        if let Some(effects) = effects {
            for (product, effect) in product_effects(user, ev, &self.ctx) {
                effects
                    .entry(product)
                    .or_default()
                    .push((inc.stream, inc.offset, effect));
            }
        }
        user.apply(ev, inc.stream, inc.offset, &self.ctx);
        user.remember(fp, ev.ts.timestamp_millis(), &self.ctx);
        stats.applied += 1;
        true
    }

    /// Each shopper's blob and recent event ids (one round trip).
    async fn load_users(&self, ids: &[String]) -> Result<HashMap<String, UserState>> {
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| [self.ctx.keys.user(id), self.ctx.keys.recent_ids(id)])
            .collect();
        let mut blobs = self.store.get(&keys).await?.into_iter();
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            let (blob, recent) = (blobs.next().flatten(), blobs.next().flatten());
            let mut state = match blob {
                Some(b) => self.decode_user(&b).await?,
                None => UserState::default(),
            };
            // A blob of an older format carries its ids; from format 3 on they are under their own key.
            if let Some(r) = recent {
                state.recent_ids = UserState::decode_recent_ids(&r)?;
            }
            out.insert(id.clone(), state);
        }
        Ok(out)
    }

    async fn write_products(
        &self,
        mut pending: ProductEffects,
        stats: &mut BatchStats,
    ) -> Result<u64> {
        // The index only grows: add just the ids this process has not added yet (one round trip saved per batch).
        let new: Vec<String> = {
            let known = self.indexed.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .keys()
                .filter(|id| !known.contains(*id))
                .cloned()
                .collect()
        };
        if !new.is_empty() {
            self.store
                .add_to_set(&self.ctx.keys.product_index(), &new)
                .await?;
            let mut known = self.indexed.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() + new.len() > INDEXED_CACHE_MAX {
                known.clear();
            }
            known.extend(new);
        }
        let mut written = 0;
        for _ in 0..MAX_CAS_ROUNDS {
            if pending.is_empty() {
                return Ok(written);
            }
            let ids: Vec<String> = pending.keys().cloned().collect();
            let keys: Vec<String> = ids.iter().map(|p| self.ctx.keys.product(p)).collect();
            let blobs = self.store.get(&keys).await?;
            let mut writes = Vec::with_capacity(ids.len());
            let mut unchanged = Vec::new();
            for ((id, key), blob) in ids.iter().zip(keys).zip(blobs) {
                let rev = revision_of(blob.as_deref());
                let mut state = match &blob {
                    Some(b) => ProductState::decode(b)?,
                    None => ProductState::default(),
                };
                let list = &pending[id];
                let mut changed = false;
                for (stream, offset, effect) in list {
                    if !state.fences.covers(*stream, *offset) {
                        state.apply(effect, &self.ctx);
                        changed = true;
                    }
                }
                if !changed {
                    unchanged.push(id.clone());
                    continue;
                }
                for (stream, offset, _) in list {
                    state.advance(*stream, *offset);
                }
                writes.push((
                    id.clone(),
                    CasWrite {
                        key,
                        expected_rev: rev,
                        blob: state.encode(rev + 1),
                        ttl: None,
                        side: None,
                    },
                ));
            }
            for id in unchanged {
                pending.remove(&id);
            }
            let (ids, writes): (Vec<String>, Vec<CasWrite>) = writes.into_iter().unzip();
            let ok = self.store.put_cas(writes).await?;
            for (id, ok) in ids.into_iter().zip(ok) {
                if ok {
                    pending.remove(&id);
                    written += 1;
                } else {
                    stats.conflicts += 1;
                }
            }
        }
        Err(Error::Unavailable(format!(
            "{} product blobs still conflict after {MAX_CAS_ROUNDS} compare-and-set rounds",
            pending.len()
        )))
    }

    async fn write_users(
        &self,
        batch: &[Incoming],
        by_user: &HashMap<String, Vec<usize>>,
        mut users: HashMap<String, UserState>,
        mut dirty: HashSet<String>,
        stats: &mut BatchStats,
    ) -> Result<u64> {
        let ttl = Some(Duration::from_secs(self.ctx.config.user_ttl_days * 86_400));
        // The ids expire with the dedup horizon, counted from the shopper's last write: copies of an event
        // arrive within minutes of it, and a shopper who went quiet then stops paying for them.
        let ids_ttl = Duration::from_secs(
            u64::try_from(self.ctx.config.dedup_horizon_minutes.max(0)).unwrap_or(0) * 60,
        );
        let dict = self.dict().await?;
        let mut written = 0;
        for _ in 0..MAX_CAS_ROUNDS {
            if dirty.is_empty() {
                return Ok(written);
            }
            let ids: Vec<String> = dirty.iter().cloned().collect();
            let writes: Vec<CasWrite> = ids
                .iter()
                .map(|id| {
                    let s = &users[id];
                    CasWrite {
                        key: self.ctx.keys.user(id),
                        expected_rev: s.rev,
                        blob: s.encode(s.rev + 1, &dict),
                        ttl,
                        side: Some(SideWrite {
                            key: self.ctx.keys.recent_ids(id),
                            value: s.encode_recent_ids(),
                            ttl: ids_ttl,
                        }),
                    }
                })
                .collect();
            let ok = self.store.put_cas(writes).await?;
            let mut conflicted = Vec::new();
            for (id, ok) in ids.into_iter().zip(ok) {
                if ok {
                    dirty.remove(&id);
                    written += 1;
                } else {
                    stats.conflicts += 1;
                    conflicted.push(id);
                }
            }
            if conflicted.is_empty() {
                continue;
            }
            // Someone else wrote these shoppers (a rebalance overlap): start again from their state. Product
            // effects are not recomputed: the products already hold them (they were written first), and
            // messages past the other writer's fences are re-applied to the shopper only.
            let fresh = self.load_users(&conflicted).await?;
            let mut scratch = BatchStats::default();
            for (id, mut state) in fresh {
                for i in &by_user[&id] {
                    if let Item::Event(ev) = &batch[*i].item {
                        self.apply_event(&mut state, &batch[*i], ev, None, &mut scratch);
                    }
                }
                users.insert(id, state);
            }
        }
        Err(Error::Unavailable(format!(
            "{} shopper blobs still conflict after {MAX_CAS_ROUNDS} compare-and-set rounds",
            dirty.len()
        )))
    }
}

/// The product effects of `ev`, computed from the shopper state *before* it.
fn product_effects(user: &UserState, ev: &Event, ctx: &Context) -> Vec<(String, Effect)> {
    let ts_ms = ev.ts.timestamp_millis();
    let segment = user.segment_at(ts_ms, ctx).to_string();
    let window = ctx.config.co_window_minutes * 60_000;
    let mut out: Vec<(String, Effect)> = Vec::new();
    // `n` of `kind` for `product`, and its popularity (`weight` per unit) in the event's market and segment.
    let count =
        |out: &mut Vec<(String, Effect)>, product: &str, kind: Kind, n: u32, weight: f64| {
            out.push((product.to_string(), Effect::Count { kind, ts_ms, n }));
            if weight > 0.0 {
                let (market, segment) = (ev.market.clone(), segment.clone());
                let weight = weight * f64::from(n);
                out.push((
                    product.to_string(),
                    Effect::Popularity {
                        market,
                        segment,
                        weight,
                        ts_ms,
                    },
                ));
            }
        };
    // Both directions of an unordered pair.
    let pair = |out: &mut Vec<(String, Effect)>, a: &str, b: &str, make: fn(String) -> Effect| {
        out.push((a.to_string(), make(b.to_string())));
        out.push((b.to_string(), make(a.to_string())));
    };
    let co_view = |other| Effect::CoView { other };
    let co_purchase = |other| Effect::CoPurchase { other };
    match &ev.properties {
        Properties::ProductView(p) => {
            let id = &p.product_id;
            count(&mut out, id, Kind::View, 1, POP_VIEW);
            // Pair with products this shopper viewed within the window on either side: each unordered pair is
            // counted when its second view arrives, whatever the arrival order.
            for (other, t) in &user.viewed {
                if other != id && (t - ts_ms).abs() <= window {
                    pair(&mut out, id, other, co_view);
                }
            }
        }
        Properties::AddToCart(c) => count(
            &mut out,
            &c.product_id,
            Kind::Cart,
            c.quantity.max(1),
            POP_CART,
        ),
        Properties::Purchase(p) => {
            let mut in_order: Vec<&str> = Vec::new();
            for l in &p.lines {
                count(
                    &mut out,
                    &l.product_id,
                    Kind::Purchase,
                    l.quantity.max(1),
                    POP_PURCHASE,
                );
                if !in_order.contains(&l.product_id.as_str()) {
                    in_order.push(&l.product_id);
                }
            }
            for (i, a) in in_order.iter().enumerate() {
                for b in &in_order[i + 1..] {
                    pair(&mut out, a, b, co_purchase);
                }
            }
            let buy_window = window * 48;
            for (other, t) in &user.purchased {
                if (t - ts_ms).abs() <= buy_window && !in_order.contains(&other.as_str()) {
                    for a in &in_order {
                        pair(&mut out, a, other, co_purchase);
                    }
                }
            }
        }
        Properties::Return(r) => {
            for l in &r.lines {
                // Returns count units; they do not add popularity.
                count(
                    &mut out,
                    &l.product_id,
                    Kind::Return,
                    l.quantity.max(1),
                    0.0,
                );
            }
        }
        _ => {}
    }
    out
}
