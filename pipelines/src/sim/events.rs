//! Builders for `lusso.event/v1` JSON envelopes.
//!
//! Envelope keys are exactly: `event_id`, `type`, `ts`, `user_id`,
//! `anonymous_id`, `session_id`, `market`, `device`, `properties`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::params::Device;

/// Schema identifier of the emitted events.
pub const EVENT_SCHEMA: &str = "lusso.event/v1";

/// Every event type the simulator emits.
pub const EVENT_TYPES: [&str; 11] = [
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "return",
    "rec_impression",
    "rec_click",
    "banner_impression",
    "banner_click",
];

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision,
/// e.g. `2026-11-25T10:00:00.123Z`.
pub fn format_ts(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Identity and context shared by all events of one session.
#[derive(Debug, Clone)]
pub(crate) struct Envelope<'a> {
    pub user_id: Option<&'a str>,
    pub anonymous_id: &'a str,
    pub session_id: &'a str,
    pub market: &'a str,
    pub device: Device,
}

impl Envelope<'_> {
    /// Full event JSON.
    pub(crate) fn event(&self, event_id: Uuid, kind: &str, ts_ms: i64, properties: Value) -> Value {
        let mut m = Map::with_capacity(9);
        m.insert("event_id".into(), Value::String(event_id.to_string()));
        m.insert("type".into(), Value::String(kind.to_string()));
        m.insert("ts".into(), Value::String(format_ts(ts_ms)));
        m.insert(
            "user_id".into(),
            self.user_id
                .map_or(Value::Null, |u| Value::String(u.into())),
        );
        m.insert("anonymous_id".into(), self.anonymous_id.into());
        m.insert("session_id".into(), self.session_id.into());
        m.insert("market".into(), self.market.into());
        m.insert("device".into(), self.device.as_str().into());
        m.insert("properties".into(), properties);
        Value::Object(m)
    }
}

/// One order or return line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderLine {
    pub product_id: String,
    pub variant_id: String,
    pub quantity: u32,
    pub unit_price: f64,
}

/// `lines` array of `purchase` / `return`.
pub(crate) fn lines_json(lines: &[OrderLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                json!({
                    "product_id": l.product_id,
                    "variant_id": l.variant_id,
                    "quantity": l.quantity,
                    "unit_price": l.unit_price,
                })
            })
            .collect(),
    )
}

/// Strict check of one event against the contract, used by the tests: the collector's own validator
/// (at a server time far in the future, as simulated clocks run ahead) plus "every envelope key present".
#[cfg(test)]
pub(crate) fn validate_event(e: &Value) -> Result<(), String> {
    let o = e.as_object().ok_or("not an object")?;
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let want = [
        "anonymous_id",
        "device",
        "event_id",
        "market",
        "properties",
        "session_id",
        "ts",
        "type",
        "user_id",
    ];
    if keys != want {
        return Err(format!("envelope keys {keys:?}"));
    }
    let server_time = DateTime::<chrono::Utc>::MAX_UTC - chrono::Duration::days(2);
    crate::validate::validate_event(e, server_time)
        .map(|_| ())
        .map_err(|errs| format!("{errs:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape_and_ts_format() {
        let env = Envelope {
            user_id: None,
            anonymous_id: "a",
            session_id: "s",
            market: "IT",
            device: Device::Mobile,
        };
        let e = env.event(
            Uuid::nil(),
            "search",
            1_795_600_800_123,
            json!({"query": "abito"}),
        );
        assert_eq!(e["ts"], "2026-11-25T10:00:00.123Z");
        assert!(e["user_id"].is_null());
        validate_event(&e).unwrap();
        let bad = env.event(Uuid::nil(), "search", 0, json!({"q": "x"}));
        assert!(validate_event(&bad).is_err());
        let mut extra = e;
        extra["extra"] = json!(1);
        assert!(validate_event(&extra).is_err());
    }
}
