//! The `lusso.commerce.v1` contract: what the commerce service publishes (through its outbox) for the rest of the
//! platform. Messages are JSON objects tagged by `type`. Stock levels are keyed on the bus by `product_id`, so
//! the changes to one product's stock stay ordered; order, payment and return messages are keyed by
//! `order_id`, so one order's history stays ordered. Delivery is at least once: `event_id` identifies a
//! message, and consumers de-duplicate on it. Types this version of a consumer does not know decode as
//! [`CommerceEvent::Other`] and are skipped (forward compatible).
//!
//! Amounts are integer minor units of `currency` (cents), as the commerce service keeps them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One commerce message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommerceEvent {
    /// The sellable quantity of a variant at a location after a change (absolute, not a delta: applying it twice
    /// is harmless). `seq` increases with every change of that variant at that location, so an older level
    /// arriving late never overwrites a newer one.
    StockLevel {
        event_id: Uuid,
        ts: DateTime<Utc>,
        product_id: String,
        variant_id: String,
        size: String,
        location: String,
        available: i64,
        seq: u64,
    },
    /// An order was placed: its stock is reserved and its payment started.
    OrderPlaced {
        event_id: Uuid,
        ts: DateTime<Utc>,
        order_id: Uuid,
        /// The shopper's storefront id when signed in.
        user_id: Option<String>,
        market: String,
        currency: String,
        lines: Vec<CommerceLine>,
        /// VAT-inclusive total (`gross`), minor units.
        total: i64,
        /// What the payment provider is asked to charge (less than `total` under split payment).
        amount_due: i64,
    },
    /// An order's status changed (paid, payment failed, cancelled on reservation timeout, returned…).
    OrderStatus {
        event_id: Uuid,
        ts: DateTime<Utc>,
        order_id: Uuid,
        user_id: Option<String>,
        /// The order status after the change (`paid`, `payment_failed`, `cancelled`, …).
        status: String,
        /// The payment status at the provider (`captured`, `failed`, …).
        payment_status: String,
        provider: String,
        /// Captured so far, minor units.
        captured: i64,
    },
    /// Returned units were refunded and put back in stock.
    ReturnCompleted {
        event_id: Uuid,
        ts: DateTime<Utc>,
        order_id: Uuid,
        return_id: Uuid,
        user_id: Option<String>,
        lines: Vec<CommerceLine>,
        /// Where the goods went back.
        location: String,
        currency: String,
        /// Refunded, minor units.
        refund: i64,
    },
    /// Any type added later.
    #[serde(other)]
    Other,
}

/// One order or return line in a commerce message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommerceLine {
    pub product_id: String,
    pub variant_id: String,
    pub quantity: u32,
    /// Price per unit as charged, minor units.
    pub unit_price: i64,
}

impl CommerceEvent {
    /// The bus key: the product id of a stock level. Order messages are keyed by [`CommerceEvent::order_id`].
    pub fn key(&self) -> Option<&str> {
        match self {
            CommerceEvent::StockLevel { product_id, .. } => Some(product_id),
            CommerceEvent::OrderPlaced { .. }
            | CommerceEvent::OrderStatus { .. }
            | CommerceEvent::ReturnCompleted { .. } => None,
            CommerceEvent::Other => None,
        }
    }
}

impl CommerceEvent {
    /// The order a message belongs to (the bus key of order, payment and return messages).
    pub fn order_id(&self) -> Option<Uuid> {
        match self {
            CommerceEvent::OrderPlaced { order_id, .. }
            | CommerceEvent::OrderStatus { order_id, .. }
            | CommerceEvent::ReturnCompleted { order_id, .. } => Some(*order_id),
            CommerceEvent::StockLevel { .. } | CommerceEvent::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_levels_round_trip_and_unknown_types_are_other() {
        let json = r#"{"type":"stock_level","event_id":"5f0c2a4e-8d0e-4a53-9f5c-2f1a3b4c5d6e","ts":"2026-11-25T10:00:00Z",
            "product_id":"P000001","variant_id":"P000001-NER-42","size":"42","location":"MI01","available":3,"seq":7}"#;
        let e: CommerceEvent = serde_json::from_str(json).unwrap();
        assert_eq!(e.key(), Some("P000001"));
        let back: CommerceEvent =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let other: CommerceEvent =
            serde_json::from_str(r#"{"type":"gift_card_issued","card_id":"X"}"#).unwrap();
        assert_eq!(other, CommerceEvent::Other);
    }

    #[test]
    fn order_messages_round_trip_and_name_their_order() {
        let json = r#"{"type":"order_placed","event_id":"5f0c2a4e-8d0e-4a53-9f5c-2f1a3b4c5d6e",
            "ts":"2026-11-25T10:00:00Z","order_id":"0b7e2c1a-1111-4c2d-9e3f-222233334444","user_id":"U1",
            "market":"IT","currency":"EUR","lines":[{"product_id":"P000001","variant_id":"P000001-NER-42",
            "quantity":2,"unit_price":129000}],"total":258000,"amount_due":258000}"#;
        let e: CommerceEvent = serde_json::from_str(json).unwrap();
        assert_eq!(
            e.order_id().map(|u| u.to_string()).as_deref(),
            Some("0b7e2c1a-1111-4c2d-9e3f-222233334444")
        );
        assert_eq!(e.key(), None);
        let back: CommerceEvent =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
