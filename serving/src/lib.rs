//! Lusso serving: what the storefront asks on every page.
//!
//! # Layout
//! - [`config`]: settings with documented defaults (`LUSSO_SERVING_*`), per-placement behaviour.
//! - [`models`]: the promoted model, hot-reloaded and swapped atomically; scoring with a bounded heap.
//! - [`lookups`]: feature-store reads under a deadline, with popularity and stock caches.
//! - [`recommend`]: the recommendation pipeline (candidates, filters, diversity, rules, prices), request
//!   parsing and the response types.
//! - [`rules`]: merchandising rules (types and validation), the engine that applies them, their durable
//!   store (PostgreSQL or memory) with versions and an audit trail.
//! - [`pricing`]: price lists per market (currency, FX, price-point rounding, VAT-inclusive display,
//!   overrides).
//! - [`checkout_prices`]: the price book as commerce's price list (checkout charges what the storefront shows).
//! - [`experiments`]: A/B experiments, deterministic sticky bucketing, exposures, results per variant.
//! - [`service`]: the state requests read ([`service::Serving`]) and the reload loops.
//! - [`impressions`]: the bounded queue of `rec_impression` / exposure events to the bus.
//! - [`api`]: the HTTP routes and the one error → HTTP mapping; [`openapi`]: their OpenAPI document.
//! - [`storefront`]: the demo storefront page; [`metrics`]: Prometheus metrics; [`pg`]: PostgreSQL pools.

pub mod api;
pub mod catalog;
pub mod checkout_prices;
pub mod config;
pub mod error;
pub mod experiments;
pub mod impressions;
pub mod lookups;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod pg;
pub mod pricing;
pub mod recommend;
pub mod rules;
pub mod service;
pub mod storefront;

pub use config::ServingConfig;
pub use error::{Error, Result};
pub use service::{Serving, ServingParts, Stores};
