//! Deterministic shopper simulator emitting `lusso.event/v1` events.
//!
//! # Time model
//! The simulator owns a *simulated* clock starting at [`SimConfig::start`].
//! Each shopper's sessions start as a Poisson process (rate from the
//! segment, modulated by local time of day); a session is expanded into all
//! of its events when the clock reaches its start, and its events (and any
//! `return` days later) wait in a time-ordered queue. Events come out in
//! non-decreasing `ts`, independent of how the caller chunks the calls.
//!
//! * Replay: [`Simulator::next_events`] advances the clock as fast as the
//!   caller pulls (weeks of traffic in seconds).
//! * Live: [`Simulator::next_events_until`]`(now, max)` never returns an event
//!   with `ts > now`. Start at e.g. `Utc::now() - 1 day` and poll with
//!   `Utc::now()`: the backlog is replayed, then events trickle in at the
//!   simulated rate and no event is ever in the future (the collector rejects
//!   `ts` more than 24 h ahead). Future `return`s simply stay queued.
//!
//! The stream depends only on the seeds, user count, start and catalogue,
//! never on wall-clock time or chunk sizes.

pub mod events;
pub mod params;
mod session;
pub mod shopper;
pub mod truth;
mod world;

#[cfg(test)]
mod tests;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::Catalog;
pub use events::{format_ts, EVENT_SCHEMA, EVENT_TYPES};
pub use params::{
    category_return_rate, home_hero_arms, true_banner_ctr, BannerArm, Device, Segment,
    SegmentParams, ARM_IDS, HOME_HERO_SLOT, TRUE_BANNER_CTR,
};
pub use shopper::EMBED_DIM;
pub use truth::{GroundTruth, SegmentTruth, UserTruth};

use params::{HOURLY_WEIGHTS, MARKETS};
use session::run_session;
use shopper::{Embeddings, Shopper};
use world::World;

/// Minimum inactivity between two sessions of a shopper (the usual 30-minute
/// session timeout of web analytics).
const SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// Simulation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Seed for shoppers and behaviour (the catalogue has its own seed).
    pub seed: u64,
    /// Number of shoppers (registered and anonymous-only).
    pub users: usize,
    /// Start of the simulated clock.
    pub start: DateTime<Utc>,
}

impl SimConfig {
    /// Convenience constructor.
    pub fn new(seed: u64, users: usize, start: DateTime<Utc>) -> SimConfig {
        SimConfig { seed, users, start }
    }
}

/// A queued event ordered by `(ts, seq)`; `seq` keeps generation order on ties.
struct Pending {
    ts: i64,
    seq: u64,
    event: Value,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// The shopper simulator. See the module docs for the time model.
pub struct Simulator {
    config: SimConfig,
    world: World,
    rng: ChaCha8Rng,
    /// Next session start per shopper: `(ts_ms, shopper index)`.
    sessions: BinaryHeap<Reverse<(i64, u32)>>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    order_seq: u64,
    clock_ms: i64,
    emitted: u64,
}

impl Simulator {
    /// Builds the shopper population and schedules every first session.
    pub fn new(config: SimConfig, catalog: Arc<Catalog>) -> Simulator {
        let mut pop_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5348_4f50_5045_5253);
        let emb = Embeddings::build(&catalog, &mut pop_rng);
        let shoppers: Vec<Shopper> = (0..config.users)
            .map(|i| Shopper::generate(i, &catalog, &emb, &mut pop_rng))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let start = config.start.timestamp_millis();
        let sessions = shoppers
            .iter()
            .enumerate()
            .map(|(i, s)| Reverse((next_session_start(&mut rng, start, s), i as u32)))
            .collect();
        Simulator {
            world: World::new(catalog, emb, shoppers),
            config,
            rng,
            sessions,
            pending: BinaryHeap::new(),
            seq: 0,
            order_seq: 0,
            clock_ms: start,
            emitted: 0,
        }
    }

    /// Up to `max` next events (replay mode: the simulated clock is unbounded).
    pub fn next_events(&mut self, max: usize) -> Vec<Value> {
        self.pull(i64::MAX, max)
    }

    /// Up to `max` next events with `ts <= now` (live mode); may return fewer
    /// or none when the simulation has caught up with `now`.
    pub fn next_events_until(&mut self, now: DateTime<Utc>, max: usize) -> Vec<Value> {
        self.pull(now.timestamp_millis(), max)
    }

    fn pull(&mut self, limit_ms: i64, max: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(max.min(4096));
        while out.len() < max {
            let next_event = self.pending.peek().map(|p| p.0.ts);
            let next_session = self.sessions.peek().map(|s| s.0);
            match (next_event, next_session) {
                // Expand a session before emitting anything later than its start.
                (e, Some((ts, user))) if e.is_none_or(|e| ts <= e) => {
                    if ts > limit_ms {
                        break;
                    }
                    self.sessions.pop();
                    self.expand(user as usize, ts);
                }
                (Some(ts), _) => {
                    if ts > limit_ms {
                        break;
                    }
                    let Some(Reverse(p)) = self.pending.pop() else {
                        break;
                    };
                    self.clock_ms = p.ts;
                    self.emitted += 1;
                    out.push(p.event);
                }
                (None, _) => break,
            }
        }
        out
    }

    fn expand(&mut self, user: usize, start_ms: i64) {
        let w = &self.world;
        let out = run_session(w, &mut self.rng, &mut self.order_seq, user, start_ms);
        for (ts, event) in out.events {
            self.seq += 1;
            self.pending.push(Reverse(Pending {
                ts,
                seq: self.seq,
                event,
            }));
        }
        let from = out.end_ms + SESSION_TIMEOUT_MS;
        let next = next_session_start(&mut self.rng, from, &w.shoppers[user]);
        self.sessions.push(Reverse((next, user as u32)));
    }

    /// Timestamp of the last emitted event (`start` before the first).
    pub fn clock(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock_ms).unwrap_or(self.config.start)
    }

    /// Number of events emitted so far.
    pub fn events_emitted(&self) -> u64 {
        self.emitted
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The catalogue the simulation runs on.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.world.catalog
    }

    /// Ground truth (segments, tastes, CTRs, embeddings); independent of progress.
    pub fn truth(&self) -> GroundTruth {
        truth::build(&self.world, self.config.seed, self.config.start)
    }
}

/// Next session start after `from_ms`: exponential gaps at the shopper's
/// rate, thinned by the local time-of-day profile (mean intensity preserved).
fn next_session_start(rng: &mut ChaCha8Rng, from_ms: i64, s: &Shopper) -> i64 {
    let mean_w = HOURLY_WEIGHTS.iter().sum::<f64>() / 24.0;
    let max_w = HOURLY_WEIGHTS.iter().copied().fold(0.0, f64::max) / mean_w;
    let mean_gap = s.mean_gap.num_milliseconds() as f64 / max_w;
    let offset_h = MARKETS[s.market].3;
    let mut t = from_ms as f64;
    loop {
        let u: f64 = rng.random();
        t += -(1.0 - u).ln() * mean_gap;
        let hour = ((t as i64).div_euclid(3_600_000) + offset_h).rem_euclid(24) as usize;
        if rng.random::<f64>() * max_w < HOURLY_WEIGHTS[hour] / mean_w {
            return t as i64;
        }
    }
}
