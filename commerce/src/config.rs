//! Commerce settings with documented defaults, overridable by `LUSSO_COMMERCE_*` variables. Payment
//! credentials come only from the environment ([`crate::payments::PaymentsConfig::from_env`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::invoice::Seller;
use crate::{Error, Result};

/// Reserved stock is held this long for an unpaid order (s): 15 minutes covers a 3-D Secure challenge or a
/// Klarna / Scalapay redirect with room to spare, and is what Stripe Checkout and most carts use.
pub const fn default_reservation_ttl_secs() -> u64 {
    900
}

/// Settings of the commerce role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommerceConfig {
    /// See [`default_reservation_ttl_secs`].
    pub reservation_ttl_secs: u64,
    /// How often expired reservations are released (s).
    pub expiry_sweep_secs: u64,
    /// How often the outbox relay looks for new messages when idle (ms).
    pub outbox_poll_ms: u64,
    /// Messages relayed per bus round trip.
    pub outbox_batch: usize,
    /// Most distinct lines a cart may hold.
    pub max_cart_lines: usize,
    /// Most units of one SKU per cart line (a luxury house's anti-reseller limit as well as a bound).
    pub max_line_quantity: u32,
    /// Largest request body accepted (bytes), before the card-number guard scans it.
    pub max_body_bytes: usize,
    /// Concurrent checkouts in flight per replica; more wait (bounded by the HTTP layer's own limit).
    pub max_concurrent_checkouts: usize,
    /// The house issuing the invoices (cedente prestatore).
    pub seller: Seller,
}

impl Default for CommerceConfig {
    fn default() -> Self {
        CommerceConfig {
            reservation_ttl_secs: default_reservation_ttl_secs(),
            expiry_sweep_secs: 10,
            outbox_poll_ms: 100,
            outbox_batch: 500,
            max_cart_lines: 50,
            max_line_quantity: 10,
            max_body_bytes: 64 * 1024,
            max_concurrent_checkouts: 64,
            seller: Seller::default(),
        }
    }
}

impl CommerceConfig {
    /// Defaults overridden by `LUSSO_COMMERCE_RESERVATION_TTL_SECS`, `LUSSO_COMMERCE_EXPIRY_SWEEP_SECS`,
    /// `LUSSO_COMMERCE_OUTBOX_POLL_MS`, `LUSSO_COMMERCE_MAX_LINE_QUANTITY`.
    pub fn from_env() -> Result<CommerceConfig> {
        let mut c = CommerceConfig::default();
        let num = |key: &str, into: &mut u64| {
            pipelines::config::env_number(key, into).map_err(|r| Error::bad(key, r))
        };
        num(
            "LUSSO_COMMERCE_RESERVATION_TTL_SECS",
            &mut c.reservation_ttl_secs,
        )?;
        num("LUSSO_COMMERCE_EXPIRY_SWEEP_SECS", &mut c.expiry_sweep_secs)?;
        num("LUSSO_COMMERCE_OUTBOX_POLL_MS", &mut c.outbox_poll_ms)?;
        pipelines::config::env_number("LUSSO_COMMERCE_MAX_LINE_QUANTITY", &mut c.max_line_quantity)
            .map_err(|r| Error::bad("LUSSO_COMMERCE_MAX_LINE_QUANTITY", r))?;
        c.validated()
    }

    /// Checks every value, naming the field and the reason.
    pub fn validated(self) -> Result<CommerceConfig> {
        if !(1..=86_400).contains(&self.reservation_ttl_secs) {
            return Err(Error::bad(
                "commerce.reservation_ttl_secs",
                "must be 1–86400",
            ));
        }
        if !(1..=3_600).contains(&self.expiry_sweep_secs) {
            return Err(Error::bad("commerce.expiry_sweep_secs", "must be 1–3600"));
        }
        if !(1..=60_000).contains(&self.outbox_poll_ms) {
            return Err(Error::bad("commerce.outbox_poll_ms", "must be 1–60000"));
        }
        for (name, v) in [
            ("outbox_batch", self.outbox_batch),
            ("max_cart_lines", self.max_cart_lines),
            ("max_body_bytes", self.max_body_bytes),
            ("max_concurrent_checkouts", self.max_concurrent_checkouts),
            ("max_line_quantity", self.max_line_quantity as usize),
        ] {
            if v == 0 {
                return Err(Error::bad(format!("commerce.{name}"), "must be ≥ 1"));
            }
        }
        self.seller.validate()?;
        Ok(self)
    }

    pub fn reservation_ttl(&self) -> Duration {
        Duration::from_secs(self.reservation_ttl_secs)
    }
}
