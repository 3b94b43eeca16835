//! Lusso bandits: hero-banner decisions learned from rewards, and their off-policy evaluation.
//!
//! # Layout
//! - [`slot`]: slots and arms as merchandisers configure them (policy, reward windows, floors, stickiness,
//!   forced winners, campaign dates, warm-start priors), validated and versioned, with the audit entry type.
//! - [`context`]: the decision context (request fields completed from the feature store) and its 64 features.
//! - [`policy`]: a slot's learned state as a fold over the reward ledger, and Thompson sampling, LinUCB,
//!   linear TS and ε-greedy choosing from it, with traffic floors and logged propensities.
//! - [`reward`]: decisions, outcomes, and how clicks, attributed purchases, returns and explicit rewards
//!   become ledger steps (first observations and revisions).
//! - [`store`]: the durable state (slots, audit, decision log, signals, ledger) behind a trait, in PostgreSQL
//!   or in memory.
//! - [`report`]: per-segment arm statistics with intervals, P(best), and off-policy estimates per segment.
//! - [`service`]: decisions, explicit rewards, slot administration with audit, reports; replica sync.
//! - [`joiner`]: reward joining from `lusso.events.v1`, the decision outbox to `lusso.decisions.v1` and the
//!   event log, window expiry.
//! - [`api`]: the HTTP routes and their error mapping; [`metrics`]: Prometheus metrics; [`openapi`]: their
//!   OpenAPI document.
//! - [`dashboard`]: the merchandiser dashboard at `/dashboard` (server-rendered HTML with inline SVG charts and audited actions).
//! - [`sim`]: the simulator check: each policy's cumulative regret on the shopper simulator's true CTRs.
//! - [`propensity`]: exact linear-TS propensities by quadrature and the cached Thompson P(best).
//! - [`ope`]: logged bandit feedback (our decision log or an Open Bandit Dataset CSV), evaluation policies
//!   (`action,position,prob` CSV), and the IPW, SNIPW, DM and DR estimators with bootstrap intervals, equal to
//!   Open Bandit Pipeline 0.5.7's (tested against `tools/obp/golden`).
//! - [`mt`]: the MT19937 generator and bounded draws exactly as NumPy's legacy `RandomState`, so bootstrap
//!   intervals are reproducible against obp.

pub mod api;
pub mod context;
pub mod dashboard;
pub mod error;
pub mod joiner;
pub mod metrics;
pub mod mt;
pub mod ope;
pub mod openapi;
pub mod policy;
pub mod propensity;
pub mod report;
pub mod reward;
pub mod service;
pub mod sim;
pub mod slot;
pub mod store;

pub use error::{Error, Result};
