//! # pipelines — Lusso's event spine
//!
//! Layout:
//! - [`access`]: API keys (publishable `pk_`, secret `sk_` with scopes), stored hashed in a file or PostgreSQL.
//! - [`event`]: the `lusso.event/v1` contract as typed structs, its JSON codec and the generated JSON Schema.
//! - [`validate`]: turns untrusted JSON into an [`event::Event`] or *every* problem with its field path.
//! - [`bus`]: the [`bus::EventBus`] trait with Kafka ([`bus::kafka`], rdkafka) and embedded
//!   ([`bus::memory`], bounded, in-process) implementations, chosen by URL; topic names live in [`topics`].
//! - [`log`]: the [`log::EventLog`] trait with ClickHouse ([`log::clickhouse`]) and embedded Parquet
//!   ([`log::parquet`], queried through DataFusion) implementations.
//! - [`quarantine`]: the "bad row" record rejected events become.
//! - [`openapi`]: OpenAPI building blocks shared by the roles' documents.
//! - [`pg`]: PostgreSQL pools and schema creation shared by the durable stores.
//! - [`config`]: backend selection from `LUSSO_*` environment variables.
//! - [`catalog`] and [`sim`]: the built-in synthetic catalogue and the seeded shopper simulator (with ground truth).
//! - [`error`]: the crate's error enum.
//! - [`http`]: the HTTP edge shared by every role's router: the one caller-facing error and its mapping to
//!   HTTP, request ids, JSON bodies parsed with the offending field named.

pub mod access;
pub mod bus;
pub mod catalog;
pub mod commerce;
pub mod config;
pub mod error;
pub mod event;
pub mod http;
pub mod iso;
pub mod log;
pub mod openapi;
pub mod pg;
pub mod quarantine;
pub mod sim;
pub mod topics;
pub mod validate;

pub use error::{Error, Result};
