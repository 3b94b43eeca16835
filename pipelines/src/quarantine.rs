//! The "bad row": what a rejected event becomes on `lusso.events.quarantine`.
//!
//! It keeps the event exactly as received plus every reason it was rejected, so it can be inspected
//! (`lusso quarantine list`) and replayed (`lusso quarantine replay`) once the cause is fixed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validate::FieldError;

/// Schema id of a bad row.
pub const BAD_ROW_SCHEMA: &str = "lusso.bad_row/v1";

/// A rejected event with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    /// Always [`BAD_ROW_SCHEMA`].
    pub schema: String,
    /// Which component rejected it (`collector`, `sink`, `import`).
    pub source: String,
    /// Server time of rejection.
    pub received_at: DateTime<Utc>,
    /// Position in the request batch, when it came from one.
    pub index: Option<usize>,
    /// Every problem found.
    pub errors: Vec<FieldError>,
    /// The event as received (any JSON, possibly not even an object).
    pub event: Value,
}

impl BadRow {
    /// A bad row rejected by `source` now.
    pub fn new(source: &str, index: Option<usize>, errors: Vec<FieldError>, event: Value) -> Self {
        BadRow {
            schema: BAD_ROW_SCHEMA.to_string(),
            source: source.to_string(),
            received_at: Utc::now(),
            index,
            errors,
            event,
        }
    }

    /// Key on the quarantine topic: the event's identity when it has one, so replays keep order.
    pub fn key(&self) -> String {
        let field = |name: &str| {
            self.event
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        field("user_id")
            .or_else(|| field("anonymous_id"))
            .unwrap_or_default()
    }
}
