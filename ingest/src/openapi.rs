//! The OpenAPI 3.1 document of the collector's endpoints (`GET /openapi.json`); the event schema in it
//! is the one generated from the Rust types.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The document.
pub fn document() -> Value {
    let mut event = pipelines::event::json_schema();
    let defs = event
        .as_object_mut()
        .and_then(|o| o.remove("$defs"))
        .unwrap_or_else(|| json!({}));
    // Re-point the generated `$defs` references at OpenAPI components.
    let event_text = event
        .to_string()
        .replace("#/$defs/", "#/components/schemas/");
    let event: Value = serde_json::from_str(&event_text).unwrap_or(event);
    let mut schemas = json!({
        "Event": event,
        "Error": pipelines::openapi::error_schema(),
        "FieldError": {
            "type": "object", "required": ["field", "code", "reason"],
            "properties": {"field": {"type": "string"}, "code": {"type": "string"}, "reason": {"type": "string"}}
        },
        "IngestResponse": {
            "type": "object", "required": ["accepted", "rejected"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "rejected": {"type": "array", "items": {"type": "object", "required": ["index", "errors"],
                    "properties": {"index": {"type": "integer"},
                        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}}}}
            }
        },
        "BadRow": {
            "type": "object", "required": ["schema", "source", "received_at", "errors", "event"],
            "properties": {"schema": {"type": "string"}, "source": {"type": "string"},
                "received_at": {"type": "string", "format": "date-time"}, "index": {"type": ["integer", "null"]},
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}, "event": {}}
        }
    });
    if let (Some(target), Value::Object(defs)) = (schemas.as_object_mut(), defs) {
        for (k, v) in defs {
            let text = v.to_string().replace("#/$defs/", "#/components/schemas/");
            target.insert(k, serde_json::from_str(&text).unwrap_or(v));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Lusso API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Collector and operations endpoints of Lusso."},
        "paths": {
            "/v1/events": {"post": {
                "summary": "Collect a batch of behavioural events (≤ 500 events, ≤ 1 MiB)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["events"], "additionalProperties": false,
                    "properties": {"events": {"type": "array", "maxItems": 500,
                        "items": {"$ref": "#/components/schemas/Event"}}}}}}},
                "responses": {
                    "200": {"description": "Per-event outcome; rejected events are quarantined",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResponse"}}}},
                    "400": error_response("Body is not JSON or not {\"events\": [...]}"),
                    "413": error_response("More than 1 MiB or more than 500 events"),
                    "503": error_response("The bus cannot take the batch; nothing was accepted (see Retry-After)")
                }
            }},
            "/v1/schemas/events": {"get": {"summary": "JSON Schema of lusso.event/v1",
                "responses": {"200": {"description": "The schema", "content": {"application/json": {}}}}}},
            "/v1/quarantine": {"get": {"summary": "List bad rows",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
                "responses": {"200": {"description": "Bad rows", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"count": {"type": "integer"},
                    "bad_rows": {"type": "array", "items": {"$ref": "#/components/schemas/BadRow"}}}}}}},
                    "400": error_response("Bad limit")}}},
            "/v1/quarantine/replay": {"post": {"summary": "Re-validate bad rows and produce those that pass",
                "responses": {"200": {"description": "Replay report", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"scanned": {"type": "integer"}, "replayed": {"type": "integer"},
                    "still_invalid": {"type": "integer"}, "truncated": {"type": "boolean"}}}}}},
                    "409": error_response("Another replay is running"),
                    "503": error_response("Bus unavailable")}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {"get": {"summary": "Readiness (bus reachable)",
                "responses": {"200": {"description": "Ready"}, "503": error_response("Bus unreachable")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                "responses": {"200": {"description": "Text exposition", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}}
        },
        "components": {"schemas": schemas}
    })
}
