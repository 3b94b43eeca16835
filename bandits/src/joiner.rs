//! The service's background work: reward joining from the event stream, the decision outbox, window
//! expiry, and replica sync.
//!
//! **Joining** (consumer group `lusso-bandits` on `lusso.events.v1`): `banner_click` → a click signal for
//! its `decision_id`; `purchase` → a purchase signal for the shopper's latest clicked decision whose
//! attribution window covers it (revenue in EUR); `return` → a return signal for the decision its order was
//! attributed to. Each signal's id is the event id, so redelivery is harmless. Checkpoint contract: offsets
//! are committed only after every signal of the batch is durable in the store; when the store is down the
//! batch is retried with backoff (100 ms → 5 s) and nothing is committed, so a `kill -9` at any point
//! loses no joined reward (the redelivered events are duplicates or not yet applied).
//!
//! **Outbox**: decisions are durable in the store before the response; the publisher sends them, oldest
//! first in batches of 500, to `lusso.decisions.v1` (the [`Decision`] JSON, keyed by shopper) and to the
//! event log (as `banner_impression` events with `properties.logged_by = "bandits"`, the event id a UUIDv5
//! of the decision id), then marks them published. At-least-once; both sinks are idempotent by id.

use std::sync::Arc;
use std::time::Duration;

use pipelines::bus::{EventBus, Offsets, Record};
use pipelines::event::{BannerImpression, Device, Event, Properties};
use pipelines::log::EventLog;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::reward::{to_eur, Decision, Line, Purchase, Signal, SignalKind};
use crate::service::Bandits;
use crate::Result;

/// Consumer group of the reward joiner.
pub const GROUP: &str = "lusso-bandits";
/// Namespace of the event ids given to decisions in the event log.
pub const DECISION_EVENT_NAMESPACE: Uuid =
    Uuid::from_u128(0x6c75_7373_6f2d_6465_6369_7369_6f6e_7331);
/// Decisions per outbox batch.
const PUBLISH_BATCH: usize = 500;

/// The signals an event carries for this service (none for most event types).
pub async fn signals_of(bandits: &Bandits, ev: &Event) -> Result<Vec<Signal>> {
    let signal_id = ev.event_id.to_string();
    match &ev.properties {
        Properties::BannerClick(c) => match Uuid::parse_str(&c.decision_id) {
            Ok(decision_id) => Ok(vec![Signal {
                signal_id,
                decision_id,
                ts: ev.ts,
                kind: SignalKind::Click,
            }]),
            Err(_) => {
                unattributed(bandits, "click");
                Ok(Vec::new())
            }
        },
        Properties::Purchase(p) => {
            let Some(decision_id) = bandits
                .store()
                .attribute(ev.user_id.as_deref(), ev.anonymous_id.as_deref(), ev.ts)
                .await?
            else {
                unattributed(bandits, "purchase");
                return Ok(Vec::new());
            };
            let lines = p
                .lines
                .iter()
                .map(|l| line(l, to_eur(l.unit_price, &p.currency)))
                .collect();
            Ok(vec![Signal {
                signal_id,
                decision_id,
                ts: ev.ts,
                kind: SignalKind::Purchase(Purchase {
                    order_id: p.order_id.clone(),
                    revenue: to_eur(p.total, &p.currency),
                    lines,
                }),
            }])
        }
        Properties::Return(r) => {
            let Some(decision_id) = bandits.store().decision_for_order(&r.order_id).await? else {
                // Most orders were never attributed to a banner: nothing to revise.
                return Ok(Vec::new());
            };
            Ok(vec![Signal {
                signal_id,
                decision_id,
                ts: ev.ts,
                kind: SignalKind::Return {
                    order_id: r.order_id.clone(),
                    // Returned lines are valued at the attributed purchase's prices.
                    lines: r.lines.iter().map(|l| line(l, 0.0)).collect(),
                },
            }])
        }
        _ => Ok(Vec::new()),
    }
}

fn line(l: &pipelines::event::OrderLine, unit_price_eur: f64) -> Line {
    Line {
        product_id: l.product_id.clone(),
        variant_id: Some(l.variant_id.clone()),
        quantity: f64::from(l.quantity),
        unit_price: unit_price_eur,
    }
}

fn unattributed(bandits: &Bandits, kind: &str) {
    bandits
        .metrics()
        .signals
        .with_label_values(&[kind, "unattributed"])
        .inc();
}

/// Applies every signal of `events` (in order); an error means nothing after it was applied.
pub async fn apply_events(bandits: &Bandits, events: &[Event]) -> Result<()> {
    for ev in events {
        for s in signals_of(bandits, ev).await? {
            bandits.apply(&s).await?;
        }
    }
    Ok(())
}

/// Backoff for retries: 100 ms doubling to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// The reward joiner: consumes `topic` as group [`GROUP`] until cancelled.
pub async fn run_joiner(
    bandits: Bandits,
    bus: Arc<dyn EventBus>,
    topic: String,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut sub = bus.subscribe(&topic, GROUP).await?;
    loop {
        let messages = tokio::select! {
            r = sub.poll(500, Duration::from_millis(500)) => r?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        if messages.is_empty() {
            continue;
        }
        let events: Vec<Event> = messages
            .iter()
            .filter_map(|m| match serde_json::from_slice::<Event>(&m.payload) {
                Ok(e) => Some(e),
                Err(e) => {
                    // The collector only produces valid events; anything else stays in the log untouched.
                    tracing::warn!(partition = m.partition, offset = m.offset, error = %e,
                        "undecodable event on the bus; skipped by the reward joiner");
                    None
                }
            })
            .collect();
        let mut attempt = 0;
        while let Err(e) = apply_events(&bandits, &events).await {
            bandits.metrics().retries.inc();
            tracing::warn!(error = %e, attempt, "reward joining failed; retrying the batch");
            tokio::select! {
                _ = tokio::time::sleep(backoff(attempt)) => {},
                _ = shutdown.cancelled() => return Ok(()),
            }
            attempt += 1;
        }
        sub.commit(&Offsets::after(&messages)).await?;
    }
}

/// The event-log form of a decision.
pub fn decision_event(d: &Decision) -> Event {
    let mut extra = serde_json::Map::new();
    extra.insert("logged_by".into(), "bandits".into());
    extra.insert("propensity".into(), d.propensity.into());
    extra.insert("policy".into(), d.policy.clone().into());
    extra.insert("segment".into(), d.segment.clone().into());
    extra.insert(
        "context".into(),
        serde_json::to_value(&d.context).unwrap_or_default(),
    );
    Event {
        event_id: Uuid::new_v5(&DECISION_EVENT_NAMESPACE, d.decision_id.as_bytes()),
        ts: d.ts,
        user_id: d.user_id.clone(),
        anonymous_id: d.anonymous_id.clone(),
        session_id: d.context.session_id.clone(),
        market: d.context.market.clone(),
        device: d.context.device.as_deref().and_then(Device::parse),
        received_at: Some(d.ts),
        properties: Properties::BannerImpression(BannerImpression {
            decision_id: d.decision_id.to_string(),
            slot: d.slot.clone(),
            arm_id: d.arm_id.clone(),
            extra,
        }),
    }
}

/// Publishes one outbox batch; returns how many decisions it published.
pub async fn publish_once(
    bandits: &Bandits,
    bus: &dyn EventBus,
    log: Option<&dyn EventLog>,
    topic: &str,
) -> Result<usize> {
    let batch = bandits.store().unpublished(PUBLISH_BATCH).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let records = batch
        .iter()
        .map(|d| {
            let key = d
                .user_id
                .clone()
                .or_else(|| d.anonymous_id.clone())
                .unwrap_or_default();
            Record::new(key, serde_json::to_vec(d).unwrap_or_default())
        })
        .collect();
    bus.produce(topic, records).await?;
    if let Some(log) = log {
        let events: Vec<Event> = batch.iter().map(decision_event).collect();
        log.append(&events).await?;
    }
    let ids: Vec<Uuid> = batch.iter().map(|d| d.decision_id).collect();
    bandits.store().mark_published(&ids).await?;
    bandits.metrics().published.inc_by(ids.len() as u64);
    Ok(ids.len())
}

/// The outbox publisher, until cancelled.
pub async fn run_publisher(
    bandits: Bandits,
    bus: Arc<dyn EventBus>,
    log: Option<Arc<dyn EventLog>>,
    topic: String,
    shutdown: CancellationToken,
) {
    let mut attempt = 0;
    loop {
        let wait = match publish_once(&bandits, bus.as_ref(), log.as_deref(), &topic).await {
            Ok(n) if n == PUBLISH_BATCH => Duration::ZERO,
            Ok(_) => {
                attempt = 0;
                Duration::from_millis(100)
            }
            Err(e) => {
                bandits.metrics().retries.inc();
                tracing::warn!(error = %e, "publishing decisions failed; retrying");
                attempt += 1;
                backoff(attempt)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Replica sync and window expiry, until cancelled.
pub async fn run_housekeeping(bandits: Bandits, shutdown: CancellationToken) {
    let mut sync = tokio::time::interval(bandits.config().sync_interval());
    let mut expire = tokio::time::interval(bandits.config().expire_interval());
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sync.tick() => {
                if let Err(e) = bandits.sync().await {
                    tracing::warn!(error = %e, "bandit sync failed; retrying");
                }
            }
            _ = expire.tick() => {
                if let Err(e) = bandits.expire().await {
                    tracing::warn!(error = %e, "reward window expiry failed; retrying");
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}
