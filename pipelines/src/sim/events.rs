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

/// Strict check of one event against the contract; used by the tests.
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
    let s = |k: &str| o[k].as_str().ok_or(format!("{k} not a string"));
    Uuid::parse_str(s("event_id")?).map_err(|e| e.to_string())?;
    let ts = s("ts")?;
    if !ts.ends_with('Z') || DateTime::parse_from_rfc3339(ts).is_err() {
        return Err(format!("bad ts {ts}"));
    }
    if !(o["user_id"].is_null() || o["user_id"].as_str().is_some_and(|u| !u.is_empty())) {
        return Err("user_id".into());
    }
    if s("anonymous_id")?.is_empty() || s("session_id")?.is_empty() {
        return Err("empty id".into());
    }
    let market = s("market")?;
    if market.len() != 2 || !market.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!("market {market}"));
    }
    if !["desktop", "mobile", "tablet", "app", "other"].contains(&s("device")?) {
        return Err("device".into());
    }
    let p = o["properties"].as_object().ok_or("properties")?;
    let str_ = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    let num = |v: Option<&Value>| v.and_then(Value::as_f64).is_some_and(|x| x >= 0.0);
    let qty = |v: Option<&Value>| v.and_then(Value::as_u64).is_some_and(|q| q >= 1);
    let lines_ok = |v: Option<&Value>| {
        v.and_then(Value::as_array).is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|l| {
                    l["product_id"].is_string()
                        && l["variant_id"].is_string()
                        && qty(l.get("quantity"))
                        && num(l.get("unit_price"))
                })
        })
    };
    let ok = match s("type")? {
        "page_view" => str_("path") && p["path"].as_str().is_some_and(|x| x.starts_with('/')),
        "product_view" => str_("product_id"),
        "search" => str_("query"),
        "add_to_cart" | "remove_from_cart" => {
            str_("product_id")
                && str_("variant_id")
                && str_("size")
                && qty(p.get("quantity"))
                && num(p.get("price"))
        }
        "purchase" => {
            str_("order_id")
                && p.get("currency") == Some(&json!("EUR"))
                && num(p.get("total"))
                && lines_ok(p.get("lines"))
        }
        "return" => str_("order_id") && lines_ok(p.get("lines")),
        "rec_impression" => {
            str_("request_id")
                && p.get("product_ids")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
        }
        "rec_click" => str_("request_id") && str_("product_id"),
        "banner_impression" => str_("decision_id") && str_("slot") && str_("arm_id"),
        "banner_click" => str_("decision_id") && str_("arm_id"),
        other => return Err(format!("unknown type {other}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad properties for {e}"))
    }
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
