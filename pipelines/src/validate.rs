//! Validation of untrusted JSON events against `lusso.event/v1`.
//!
//! [`validate_event`] reports *every* problem of an event, each with the field path
//! (`properties.lines[1].quantity`), a stable machine code (used as the metrics label) and a readable
//! reason. Only an event with no problem becomes a typed [`Event`]; the collector quarantines the rest.

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{Device, Event, EventType, Properties};
use crate::iso;

/// How far in the future a client timestamp may be (contract: 24 h), allowing for skewed device clocks.
pub const MAX_FUTURE_HOURS: i64 = 24;
/// Longest accepted string value in bytes; longer ones are abuse or bugs, not shopper behaviour.
pub const MAX_STRING_BYTES: usize = 2048;
/// Most items in a list property (order lines, impressed product ids). Wholesale orders reach ~1,100
/// lines (the largest UCI Online Retail invoice); the 1 MiB request bound caps the rest.
pub const MAX_LIST_ITEMS: usize = 5_000;

/// One problem with one field of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `properties.lines[0].quantity`; empty for the event as a whole.
    pub field: String,
    /// Stable code: `missing_field`, `wrong_type`, `unknown_field`, `unknown_type`, `malformed_uuid`,
    /// `no_identity`, `bad_timestamp`, `future_timestamp`, `out_of_range`, `unknown_currency`,
    /// `unknown_market`, `unknown_device`, `empty`, `too_long`, `not_an_object`.
    pub code: String,
    /// Readable explanation naming the offending value where useful.
    pub reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, code: &str, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code: code.to_string(),
            reason: reason.into(),
        }
    }
}

const ENVELOPE_FIELDS: [&str; 9] = [
    "event_id",
    "type",
    "ts",
    "user_id",
    "anonymous_id",
    "session_id",
    "market",
    "device",
    "properties",
];

#[derive(Clone, Copy)]
enum Kind {
    /// Non-empty string.
    Id,
    /// Any string (may be empty, e.g. a cleared search box).
    Text,
    /// Integer ≥ 1 that fits u32.
    Quantity,
    /// Finite number ≥ 0.
    Money,
    /// ISO 4217 code.
    Currency,
    /// Non-empty list of non-empty strings.
    IdList,
    /// Non-empty list of order lines.
    Lines,
}

fn spec(ty: EventType) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match ty {
        EventType::PageView => &[("path", Text)],
        EventType::ProductView => &[("product_id", Id)],
        EventType::Search => &[("query", Text)],
        EventType::AddToCart | EventType::RemoveFromCart => &[
            ("product_id", Id),
            ("variant_id", Id),
            ("size", Id),
            ("quantity", Quantity),
            ("price", Money),
        ],
        EventType::Purchase => &[
            ("order_id", Id),
            ("currency", Currency),
            ("total", Money),
            ("lines", Lines),
        ],
        EventType::Return => &[("order_id", Id), ("lines", Lines)],
        EventType::RecImpression => &[("request_id", Id), ("product_ids", IdList)],
        EventType::RecClick => &[("request_id", Id), ("product_id", Id)],
        EventType::BannerImpression => &[("decision_id", Id), ("slot", Id), ("arm_id", Id)],
        EventType::BannerClick => &[("decision_id", Id), ("arm_id", Id)],
        EventType::ExperimentExposure => &[("experiment", Id), ("variant", Id)],
    }
}

const LINE_SPEC: &[(&str, Kind)] = &[
    ("product_id", Kind::Id),
    ("variant_id", Kind::Id),
    ("quantity", Kind::Quantity),
    ("unit_price", Kind::Money),
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(path: &str, expected: &str, v: &Value) -> FieldError {
    FieldError::new(
        path,
        "wrong_type",
        format!("expected {expected}, got {}", type_name(v)),
    )
}

fn check_string(path: &str, v: &Value, allow_empty: bool, errs: &mut Vec<FieldError>) {
    match v {
        Value::String(s) if s.len() > MAX_STRING_BYTES => errs.push(FieldError::new(
            path,
            "too_long",
            format!("{} bytes, at most {MAX_STRING_BYTES}", s.len()),
        )),
        Value::String(s) if !allow_empty && s.trim().is_empty() => {
            errs.push(FieldError::new(path, "empty", "must not be empty"))
        }
        Value::String(_) => {}
        other => errs.push(wrong_type(path, "string", other)),
    }
}

fn check_kind(path: &str, kind: Kind, v: &Value, errs: &mut Vec<FieldError>) {
    match kind {
        Kind::Id => check_string(path, v, false, errs),
        Kind::Text => check_string(path, v, true, errs),
        Kind::Quantity => match v {
            Value::Number(n) => match n.as_i64() {
                Some(q) if (1..=i64::from(u32::MAX)).contains(&q) => {}
                Some(q) => errs.push(FieldError::new(
                    path,
                    "out_of_range",
                    format!("must be an integer ≥ 1, got {q}"),
                )),
                None => errs.push(FieldError::new(
                    path,
                    "wrong_type",
                    format!("expected an integer, got {n}"),
                )),
            },
            other => errs.push(wrong_type(path, "integer", other)),
        },
        Kind::Money => match v {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if !(x.is_finite() && x >= 0.0) {
                    errs.push(FieldError::new(
                        path,
                        "out_of_range",
                        format!("must be a number ≥ 0, got {n}"),
                    ));
                }
            }
            other => errs.push(wrong_type(path, "number", other)),
        },
        Kind::Currency => match v {
            Value::String(s) if iso::is_currency(s) => {}
            Value::String(s) => errs.push(FieldError::new(
                path,
                "unknown_currency",
                format!("`{}` is not an ISO 4217 currency code", truncate(s)),
            )),
            other => errs.push(wrong_type(path, "string (ISO 4217 code)", other)),
        },
        Kind::IdList => match v {
            Value::Array(items) => {
                check_list_len(path, items, errs);
                for (i, item) in items.iter().enumerate().take(MAX_LIST_ITEMS) {
                    check_string(&format!("{path}[{i}]"), item, false, errs);
                }
            }
            other => errs.push(wrong_type(path, "array of strings", other)),
        },
        Kind::Lines => match v {
            Value::Array(items) => {
                check_list_len(path, items, errs);
                for (i, item) in items.iter().enumerate().take(MAX_LIST_ITEMS) {
                    let p = format!("{path}[{i}]");
                    match item {
                        Value::Object(obj) => check_fields(&p, obj, LINE_SPEC, errs),
                        other => errs.push(wrong_type(&p, "object", other)),
                    }
                }
            }
            other => errs.push(wrong_type(path, "array of order lines", other)),
        },
    }
}

fn check_list_len(path: &str, items: &[Value], errs: &mut Vec<FieldError>) {
    if items.is_empty() {
        errs.push(FieldError::new(
            path,
            "empty",
            "must hold at least one item",
        ));
    } else if items.len() > MAX_LIST_ITEMS {
        errs.push(FieldError::new(
            path,
            "too_long",
            format!("{} items, at most {MAX_LIST_ITEMS}", items.len()),
        ));
    }
}

fn check_fields(
    prefix: &str,
    obj: &Map<String, Value>,
    spec: &[(&str, Kind)],
    errs: &mut Vec<FieldError>,
) {
    for (name, kind) in spec {
        let path = format!("{prefix}.{name}");
        match obj.get(*name) {
            None => errs.push(FieldError::new(path, "missing_field", "required")),
            Some(v) => check_kind(&path, *kind, v, errs),
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(v @ Value::String(s)) => {
            check_string(field, v, true, errs);
            Some(s.as_str())
        }
        Some(other) => {
            errs.push(wrong_type(field, "string or null", other));
            None
        }
    }
}

/// Validates one untrusted event at server time `now`, returning the typed event or every problem found.
pub fn validate_event(v: &Value, now: DateTime<Utc>) -> Result<Event, Vec<FieldError>> {
    let obj = match v {
        Value::Object(obj) => obj,
        other => {
            return Err(vec![FieldError::new(
                "",
                "not_an_object",
                format!("an event must be a JSON object, got {}", type_name(other)),
            )])
        }
    };
    let mut errs = Vec::new();
    for key in obj.keys() {
        if !ENVELOPE_FIELDS.contains(&key.as_str()) {
            let reason = if key == "received_at" {
                "set by the collector; clients must not send it".to_string()
            } else {
                format!("not part of {}", crate::event::SCHEMA_ID)
            };
            errs.push(FieldError::new(truncate(key), "unknown_field", reason));
        }
    }

    let event_id = match obj.get("event_id") {
        None => {
            errs.push(FieldError::new("event_id", "missing_field", "required"));
            None
        }
        Some(Value::String(s)) => match Uuid::parse_str(s) {
            Ok(id) => Some(id),
            Err(_) => {
                errs.push(FieldError::new(
                    "event_id",
                    "malformed_uuid",
                    format!("`{}` is not a UUID", truncate(s)),
                ));
                None
            }
        },
        Some(other) => {
            errs.push(wrong_type("event_id", "string (UUID)", other));
            None
        }
    };

    let ty = match obj.get("type") {
        None => {
            errs.push(FieldError::new("type", "missing_field", "required"));
            None
        }
        Some(Value::String(s)) => match EventType::parse(s) {
            Some(t) => Some(t),
            None => {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                errs.push(FieldError::new(
                    "type",
                    "unknown_type",
                    format!("`{}` is not one of {}", truncate(s), known.join(", ")),
                ));
                None
            }
        },
        Some(other) => {
            errs.push(wrong_type("type", "string", other));
            None
        }
    };

    let ts = match obj.get("ts") {
        None => {
            errs.push(FieldError::new("ts", "missing_field", "required"));
            None
        }
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                if t > now + Duration::hours(MAX_FUTURE_HOURS) {
                    errs.push(FieldError::new(
                        "ts",
                        "future_timestamp",
                        format!(
                            "{s} is more than {MAX_FUTURE_HOURS} h after the server time {now}"
                        ),
                    ));
                }
                Some(t)
            }
            Err(e) => {
                errs.push(FieldError::new(
                    "ts",
                    "bad_timestamp",
                    format!("`{}` is not an RFC 3339 timestamp ({e})", truncate(s)),
                ));
                None
            }
        },
        Some(other) => {
            errs.push(wrong_type("ts", "string (RFC 3339)", other));
            None
        }
    };

    let user_id = optional_string(obj, "user_id", &mut errs);
    let anonymous_id = optional_string(obj, "anonymous_id", &mut errs);
    let session_id = optional_string(obj, "session_id", &mut errs);
    let has_user = user_id.is_some_and(|u| !u.trim().is_empty());
    let has_anon = anonymous_id.is_some_and(|a| !a.trim().is_empty());
    if !has_user && !has_anon {
        errs.push(FieldError::new(
            "user_id",
            "no_identity",
            "either user_id or a non-empty anonymous_id is required",
        ));
    }
    if user_id.is_some_and(|u| u.trim().is_empty()) {
        errs.push(FieldError::new(
            "user_id",
            "empty",
            "must be null or non-empty",
        ));
    }

    let market = optional_string(obj, "market", &mut errs);
    if let Some(m) = market {
        if !iso::is_country(m) {
            errs.push(FieldError::new(
                "market",
                "unknown_market",
                format!(
                    "`{}` is not an ISO 3166-1 alpha-2 country code (upper case)",
                    truncate(m)
                ),
            ));
        }
    }
    let device = optional_string(obj, "device", &mut errs).and_then(|d| {
        let parsed = Device::parse(d);
        if parsed.is_none() {
            let known: Vec<&str> = Device::ALL.iter().map(|d| d.as_str()).collect();
            errs.push(FieldError::new(
                "device",
                "unknown_device",
                format!("`{}` is not one of {}", truncate(d), known.join(", ")),
            ));
        }
        parsed
    });

    match obj.get("properties") {
        None => errs.push(FieldError::new("properties", "missing_field", "required")),
        Some(Value::Object(props)) => {
            if let Some(ty) = ty {
                check_fields("properties", props, spec(ty), &mut errs);
            }
        }
        Some(other) => errs.push(wrong_type("properties", "object", other)),
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    // Every field was checked above, so these are present and well-typed.
    let (Some(event_id), Some(ty), Some(ts), Some(props)) =
        (event_id, ty, ts, obj.get("properties"))
    else {
        return Err(vec![FieldError::new("", "wrong_type", "incomplete event")]);
    };
    let properties = Properties::from_value(ty, props.clone()).map_err(|e| {
        vec![FieldError::new(
            "properties",
            "wrong_type",
            format!("does not match {}: {e}", ty.as_str()),
        )]
    })?;
    Ok(Event {
        event_id,
        ts,
        user_id: user_id.map(str::to_string),
        anonymous_id: anonymous_id.map(str::to_string),
        session_id: session_id.map(str::to_string),
        market: market.map(str::to_string),
        device,
        received_at: None,
        properties,
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
