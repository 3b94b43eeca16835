//! Lusso commerce: where money and stock must be right.
//!
//! # Layout
//! - [`model`]: money in minor units, buyers, carts, orders, payments, returns and their states.
//! - [`catalog`]: the catalogue indexed by SKU and the [`catalog::PriceList`] seam (serving's price book in
//!   the `lusso` binary).
//! - [`inventory`]: stock per SKU per location, the allocation policy across the four locations,
//!   reservations.
//! - [`tax`]: Italian IVA by tax class on tax-inclusive prices, split payment, exports; Partita IVA and
//!   Codice Fiscale validation.
//! - [`invoice`]: FatturaPA 1.2 XML (`FPR12` / `FPA12`), SDI file names, the transmission state machine.
//! - [`payments`]: the [`payments::PaymentProvider`] seam with Stripe (PaymentIntents, 3-D Secure 2,
//!   signed webhooks), Klarna, Scalapay and a fake provider for the demo.
//! - [`store`]: the [`store::CommerceStore`] seam (PostgreSQL, memory) with transactions and the outbox.
//! - [`service`] (carts, inventory admin), [`checkout`] (checkout, payments, webhooks, reservation expiry),
//!   [`aftersale`] (returns, invoices, SDI receipts): the operations, written once over the store seam.
//! - [`outbox`]: the relay to `lusso.commerce.v1` and the background loops.
//! - [`api`]: the HTTP routes, the card-number guard ([`pci`]) and the one error → HTTP mapping.
//! - [`order_token`]: the access token the checkout gives a shopper for their own order.
//! - [`openapi`]: the endpoints' OpenAPI document (merged into the process's `/openapi.json`).
//! - [`config`], [`metrics`], [`error`].

pub mod aftersale;
pub mod api;
pub mod catalog;
pub mod checkout;
pub mod config;
pub mod error;
pub mod inventory;
pub mod invoice;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod order_token;
pub mod outbox;
pub mod payments;
pub mod pci;
pub mod service;
pub mod store;
pub mod tax;

pub use config::CommerceConfig;
pub use error::{Error, Result};
pub use service::{Commerce, CommerceParts};
