//! The OpenAPI 3.1 document of the features endpoints; the process merges it into its one `/openapi.json`.

use pipelines::openapi::{err, error_schema, ok, path_param};
use serde_json::{json, Value};

/// The `paths` and `components.schemas` of the features endpoints.
pub fn document() -> Value {
    let user = json!({"type": "object", "description":
        "A shopper's streaming features: counts and recency per event type, spend, RFM, segment, learned cluster, \
         last-N products, category affinities"});
    let segment = json!({"type": "object", "required": ["user_id", "segment", "known"], "properties": {
        "user_id": {"type": "string"}, "segment": {"type": "string"},
        "cluster": {"type": ["integer", "null"]}, "rfm": {"type": ["object", "null"]},
        "known": {"type": "boolean", "description": "false: never seen, the segment is New"}}});
    let product = json!({"type": "object", "description":
        "A product's streaming features: views, carts, purchases and returns over windows, conversion, stock, `listed`"});
    let segments = json!({"type": "object", "properties": {
        "rule_based": {"type": "object"}, "learned": {"type": ["object", "null"]}}});
    let trained = json!({"type": "object", "properties": {
        "trained_at": {"type": "string", "format": "date-time"}, "k": {"type": "integer"},
        "trained_on": {"type": "integer"}, "clusters": {"type": "array", "items": {"type": "object"}}}});
    let paths = json!({
        "/v1/users/{id}/features": {"get": {"summary": "A shopper's features (registered or anonymous id)",
            "parameters": [path_param("id")],
            "responses": {"200": ok(user), "404": err("No events seen for the shopper"),
                "503": err("The feature store is unreachable")}}},
        "/v1/users/{id}/segment": {"get": {"summary": "A shopper's segment (New when never seen)",
            "parameters": [path_param("id")],
            "responses": {"200": ok(segment), "503": err("The feature store is unreachable")}}},
        "/v1/products/{id}/features": {"get": {"summary": "A product's features",
            "parameters": [path_param("id")],
            "responses": {"200": ok(product), "404": err("Unknown product"),
                "503": err("The feature store is unreachable")}}},
        "/v1/segments": {"get": {"summary": "The rule-based segments and the learned clusters",
            "responses": {"200": ok(segments)}}},
        "/v1/segments/train": {"post": {"summary": "Train the learned segments from the event log now (single-flight)",
            "responses": {"200": ok(trained), "404": err("This process has no event log"),
                "409": err("A training is running")}}}
    });
    json!({"paths": paths, "components": {"schemas": {"Error": error_schema()}}})
}
