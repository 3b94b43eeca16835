//! # ingest — the collector and the event-log sink
//!
//! Layout:
//! - [`collector`]: the HTTP collector (`POST /v1/events`, schema, health, metrics, OpenAPI, quarantine
//!   admin), built as `fn app(state) -> Router`.
//! - [`metrics`]: the Prometheus registry and the collector/sink metrics.
//! - [`sink`]: the consumer group that writes `lusso.events.v1` into the event log, committing offsets only
//!   after the write is durable.
//! - [`quarantine`]: listing and replaying bad rows.
//! - [`openapi`]: the OpenAPI document.
//! - [`import`]: dataset importers (UCI Online Retail).

pub mod collector;
pub mod import;
pub mod metrics;
pub mod openapi;
pub mod quarantine;
pub mod sink;
