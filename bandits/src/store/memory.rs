//! In-memory [`BanditStore`] for the embedded demo and tests: one process, nothing survives a restart.
//!
//! Bounds: at most `max_decisions` decisions (default 1,000,000, ≈ 2.5 KiB each with their 64 features and
//! context, so ≈ 2.5 GiB at the bound). When full, the oldest decision is dropped if its reward is learned
//! and it was published; otherwise the new decision is refused with [`Error::Unavailable`] (the caller gets
//! a 503 and shows its default banner). The ledger keeps the last `max_ledger` entries (default 2,000,000);
//! a reader further behind gets [`Error::Internal`]. Audit entries: the last 10,000.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{bucket_of, AggRow, BanditStore, Logged};
use crate::policy::LedgerEntry;
use crate::reward::{self, Applied, Decision, Outcome, Signal, SignalKind};
use crate::slot::{AuditEntry, Slot};
use crate::{Error, Result};

/// Bounds of the in-memory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    pub max_decisions: usize,
    pub max_ledger: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            max_decisions: 1_000_000,
            max_ledger: 2_000_000,
        }
    }
}

const MAX_AUDIT: usize = 10_000;
/// Decisions remembered per shopper for attribution (the latest clicked one wins anyway).
const PER_USER: usize = 64;

struct Rec {
    d: Decision,
    o: Outcome,
    published: bool,
    signals: HashSet<String>,
}

#[derive(Default)]
struct Inner {
    slots: BTreeMap<String, Slot>,
    audit: VecDeque<AuditEntry>,
    decisions: HashMap<Uuid, Rec>,
    order: VecDeque<Uuid>,
    by_user: HashMap<String, VecDeque<Uuid>>,
    sessions: HashMap<(String, String), Uuid>,
    orders: HashMap<String, Uuid>,
    /// Unlearned decisions by window end.
    open: BTreeSet<(DateTime<Utc>, Uuid)>,
    unpublished: BTreeSet<(DateTime<Utc>, Uuid)>,
    ledger: VecDeque<LedgerEntry>,
    next_seq: u64,
}

/// The in-memory store.
pub struct MemoryStore {
    config: MemoryStoreConfig,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new(config: MemoryStoreConfig) -> MemoryStore {
        MemoryStore {
            config,
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Default::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn user_keys(user_id: Option<&str>, anonymous_id: Option<&str>) -> Vec<String> {
    let mut k = Vec::new();
    if let Some(u) = user_id.filter(|s| !s.is_empty()) {
        k.push(format!("u:{u}"));
    }
    if let Some(a) = anonymous_id.filter(|s| !s.is_empty()) {
        k.push(format!("a:{a}"));
    }
    k
}

impl Inner {
    fn append_ledger(&mut self, d: &Decision, step: reward::Step, max: usize) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ledger.push_back(LedgerEntry {
            seq,
            slot: d.slot.clone(),
            decision_id: d.decision_id,
            arm_id: d.arm_id.clone(),
            segment: d.segment.clone(),
            features: d.features.clone(),
            delta: step.0,
            first: step.1,
        });
        while self.ledger.len() > max {
            self.ledger.pop_front();
        }
        seq
    }

    /// Drops the oldest decision if it is finished; false when it is not (the log is full).
    fn evict_oldest(&mut self) -> bool {
        let Some(id) = self.order.front().copied() else {
            return false;
        };
        let finished = self
            .decisions
            .get(&id)
            .is_none_or(|r| r.o.learned.is_some() && r.published);
        if !finished {
            return false;
        }
        self.order.pop_front();
        if let Some(r) = self.decisions.remove(&id) {
            for k in user_keys(r.d.user_id.as_deref(), r.d.anonymous_id.as_deref()) {
                if let Some(q) = self.by_user.get_mut(&k) {
                    q.retain(|x| *x != id);
                    if q.is_empty() {
                        self.by_user.remove(&k);
                    }
                }
            }
            if let Some(s) = &r.d.context.session_id {
                let key = (r.d.slot.clone(), s.clone());
                if self.sessions.get(&key) == Some(&id) {
                    self.sessions.remove(&key);
                }
            }
            for p in &r.o.purchases {
                self.orders.remove(&p.order_id);
            }
        }
        true
    }
}

#[async_trait]
impl BanditStore for MemoryStore {
    async fn put_slot(&self, slot: &Slot, expected: u64, audit: &AuditEntry) -> Result<()> {
        let mut g = self.lock();
        let current = g.slots.get(&slot.slot).map_or(0, |s| s.version);
        if current != expected {
            return Err(Error::Conflict(format!(
                "slot `{}` is at version {current}, not {expected}: reload and retry",
                slot.slot
            )));
        }
        let mut s = slot.clone();
        s.version = expected + 1;
        g.slots.insert(s.slot.clone(), s);
        g.audit.push_back(audit.clone());
        while g.audit.len() > MAX_AUDIT {
            g.audit.pop_front();
        }
        Ok(())
    }

    async fn delete_slot(&self, slot: &str, audit: &AuditEntry) -> Result<()> {
        let mut g = self.lock();
        if g.slots.remove(slot).is_none() {
            return Err(Error::NotFound(format!("slot `{slot}` does not exist")));
        }
        g.audit.push_back(audit.clone());
        Ok(())
    }

    async fn slots(&self) -> Result<Vec<Slot>> {
        Ok(self.lock().slots.values().cloned().collect())
    }

    async fn audit(&self, slot: &str, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(self
            .lock()
            .audit
            .iter()
            .rev()
            .filter(|a| a.slot == slot)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn insert_decision(&self, d: &Decision) -> Result<()> {
        let mut g = self.lock();
        if g.decisions.contains_key(&d.decision_id) {
            return Err(Error::Conflict(format!(
                "decision {} already exists",
                d.decision_id
            )));
        }
        while g.decisions.len() >= self.config.max_decisions {
            if !g.evict_oldest() {
                return Err(Error::Unavailable(format!(
                    "the in-memory decision log is full ({} decisions with rewards still open)",
                    self.config.max_decisions
                )));
            }
        }
        let id = d.decision_id;
        for k in user_keys(d.user_id.as_deref(), d.anonymous_id.as_deref()) {
            let q = g.by_user.entry(k).or_default();
            q.push_back(id);
            while q.len() > PER_USER {
                q.pop_front();
            }
        }
        if let Some(s) = &d.context.session_id {
            g.sessions.insert((d.slot.clone(), s.clone()), id);
        }
        g.open.insert((d.window_end(), id));
        g.unpublished.insert((d.ts, id));
        g.order.push_back(id);
        g.decisions.insert(
            id,
            Rec {
                d: d.clone(),
                o: Outcome::default(),
                published: false,
                signals: HashSet::new(),
            },
        );
        Ok(())
    }

    async fn decision(&self, id: Uuid) -> Result<Option<(Decision, Outcome)>> {
        Ok(self
            .lock()
            .decisions
            .get(&id)
            .map(|r| (r.d.clone(), r.o.clone())))
    }

    async fn sticky_arm(
        &self,
        slot: &str,
        session_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<(String, f64)>> {
        let g = self.lock();
        Ok(g.sessions
            .get(&(slot.to_string(), session_id.to_string()))
            .and_then(|id| g.decisions.get(id))
            .filter(|r| r.d.ts >= since)
            .map(|r| (r.d.arm_id.clone(), r.d.propensity)))
    }

    async fn attribute(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        ts: DateTime<Utc>,
    ) -> Result<Option<Uuid>> {
        let g = self.lock();
        let mut best: Option<(DateTime<Utc>, Uuid)> = None;
        for k in user_keys(user_id, anonymous_id) {
            for id in g.by_user.get(&k).into_iter().flatten() {
                let Some(r) = g.decisions.get(id) else {
                    continue;
                };
                let covered =
                    r.o.clicked_at.is_some_and(|c| c <= ts) && ts <= r.d.attribution_end();
                if covered && best.is_none_or(|(t, _)| r.d.ts > t) {
                    best = Some((r.d.ts, *id));
                }
            }
        }
        Ok(best.map(|(_, id)| id))
    }

    async fn decision_for_order(&self, order_id: &str) -> Result<Option<Uuid>> {
        Ok(self.lock().orders.get(order_id).copied())
    }

    async fn apply_signal(&self, signal: &Signal) -> Result<Option<Applied>> {
        let mut g = self.lock();
        let max_ledger = self.config.max_ledger;
        let Some(rec) = g.decisions.get(&signal.decision_id) else {
            return Ok(None);
        };
        if rec.signals.contains(&signal.signal_id) {
            return Ok(Some(reward::on_duplicate(&rec.o, signal)));
        }
        let (next, step) = match reward::transition(&rec.d, &rec.o, signal) {
            Ok(t) => t,
            Err(why) => return Ok(Some(why)),
        };
        let d = rec.d.clone();
        let was_open = rec.o.learned.is_none();
        if let SignalKind::Purchase(p) = &signal.kind {
            g.orders.insert(p.order_id.clone(), d.decision_id);
        }
        let seq = step.map(|s| g.append_ledger(&d, s, max_ledger));
        if was_open && next.learned.is_some() {
            g.open.remove(&(d.window_end(), d.decision_id));
        }
        let rec = g
            .decisions
            .get_mut(&signal.decision_id)
            .ok_or_else(|| Error::Internal("decision vanished under the lock".into()))?;
        rec.o = next;
        rec.signals.insert(signal.signal_id.clone());
        Ok(Some(Applied::Recorded { ledger_seq: seq }))
    }

    async fn expire(&self, now: DateTime<Utc>, limit: usize) -> Result<usize> {
        let mut g = self.lock();
        let due: Vec<(DateTime<Utc>, Uuid)> = g
            .open
            .iter()
            .take_while(|(end, _)| *end <= now)
            .take(limit)
            .copied()
            .collect();
        for key in &due {
            g.open.remove(key);
            let Some(rec) = g.decisions.get(&key.1) else {
                continue;
            };
            if rec.o.learned.is_some() {
                continue;
            }
            let (next, step) = reward::expire(&rec.d, &rec.o);
            let d = rec.d.clone();
            g.append_ledger(&d, step, self.config.max_ledger);
            if let Some(rec) = g.decisions.get_mut(&key.1) {
                rec.o = next;
            }
        }
        Ok(due.len())
    }

    async fn ledger_since(&self, after: u64, limit: usize) -> Result<Vec<LedgerEntry>> {
        let g = self.lock();
        if let Some(first) = g.ledger.front() {
            if after + 1 < first.seq {
                return Err(Error::Internal(format!(
                    "ledger entries {}..{} were dropped (in-memory bound); restart to rebuild",
                    after + 1,
                    first.seq
                )));
            }
        }
        Ok(g.ledger
            .iter()
            .skip_while(|e| e.seq <= after)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn unpublished(&self, limit: usize) -> Result<Vec<Decision>> {
        let g = self.lock();
        Ok(g.unpublished
            .iter()
            .take(limit)
            .filter_map(|(_, id)| g.decisions.get(id).map(|r| r.d.clone()))
            .collect())
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<()> {
        let mut g = self.lock();
        for id in ids {
            let Some(ts) = g.decisions.get(id).map(|r| r.d.ts) else {
                continue;
            };
            g.unpublished.remove(&(ts, *id));
            if let Some(r) = g.decisions.get_mut(id) {
                r.published = true;
            }
        }
        Ok(())
    }

    async fn aggregate(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        bucket_secs: i64,
    ) -> Result<Vec<AggRow>> {
        let g = self.lock();
        let mut rows: BTreeMap<(String, String, DateTime<Utc>), AggRow> = BTreeMap::new();
        for r in g.decisions.values() {
            if r.d.slot != slot || r.d.ts < since || r.d.ts >= until {
                continue;
            }
            let bucket = bucket_of(r.d.ts, bucket_secs);
            let row = rows
                .entry((r.d.segment.clone(), r.d.arm_id.clone(), bucket))
                .or_insert_with(|| AggRow {
                    segment: r.d.segment.clone(),
                    arm_id: r.d.arm_id.clone(),
                    bucket,
                    decisions: 0,
                    clicks: 0,
                    conversions: 0,
                    revenue: 0.0,
                });
            row.decisions += 1;
            row.clicks += u64::from(r.o.clicked_at.is_some());
            row.conversions += u64::from(r.o.converted());
            row.revenue += r.o.net_revenue();
        }
        Ok(rows.into_values().collect())
    }

    async fn logged(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Logged>> {
        let g = self.lock();
        let mut out: Vec<Logged> = g
            .decisions
            .values()
            .filter(|r| r.d.slot == slot && r.d.ts >= since && r.d.ts < until)
            .filter_map(|r| {
                r.o.learned.map(|reward| Logged {
                    decision_id: r.d.decision_id,
                    ts: r.d.ts,
                    segment: r.d.segment.clone(),
                    arm_id: r.d.arm_id.clone(),
                    propensity: r.d.propensity,
                    reward,
                    sticky: r.d.sticky,
                    forced: r.d.forced,
                })
            })
            .collect();
        out.sort_by_key(|a| (a.ts, a.decision_id));
        Ok(out)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "memory (≤ {} decisions, ≤ {} ledger entries)",
            self.config.max_decisions, self.config.max_ledger
        )
    }
}
