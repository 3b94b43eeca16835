//! The `lusso.commerce.v1` contract: what the commerce service publishes (through its outbox) for the rest of the
//! platform. Messages are JSON objects tagged by `type`, keyed on the bus by `product_id`, so the changes to one
//! product's stock stay ordered. Types this version of a consumer does not know decode as
//! [`CommerceEvent::Other`] and are skipped (forward compatible).

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
    /// Any type added later.
    #[serde(other)]
    Other,
}

impl CommerceEvent {
    /// The bus key (the product id), when the message has one.
    pub fn key(&self) -> Option<&str> {
        match self {
            CommerceEvent::StockLevel { product_id, .. } => Some(product_id),
            CommerceEvent::Other => None,
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
            serde_json::from_str(r#"{"type":"order_placed","order_id":"X"}"#).unwrap();
        assert_eq!(other, CommerceEvent::Other);
    }
}
