//! OpenAPI 3.1 building blocks shared by the roles' documents (serving, commerce, the collector), which the
//! process merges into one `/openapi.json`: schema generators (schemars) and the common response shapes.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Schema generators for one document: responses as `$ref`s into `components.schemas`, request bodies inlined.
pub struct Doc {
    responses: SchemaGenerator,
    requests: SchemaGenerator,
}

impl Default for Doc {
    fn default() -> Self {
        Doc::new()
    }
}

impl Doc {
    pub fn new() -> Doc {
        let mut out = SchemaSettings::draft2020_12();
        out.definitions_path = "/components/schemas/".into();
        out.contract = Contract::Serialize;
        out.meta_schema = None;
        let mut inp = SchemaSettings::draft2020_12();
        inp.inline_subschemas = true;
        inp.meta_schema = None;
        Doc {
            responses: out.into_generator(),
            requests: inp.into_generator(),
        }
    }

    /// A response schema (a `$ref` when `T` is a named type).
    pub fn out<T: JsonSchema>(&mut self) -> Value {
        self.responses.subschema_for::<T>().to_value()
    }

    /// The named response schemas collected so far (for `components.schemas`).
    pub fn take_definitions(&mut self) -> Map<String, Value> {
        self.responses.take_definitions(true)
    }

    /// A request-body schema, inlined.
    pub fn inp<T: JsonSchema>(&mut self) -> Value {
        let mut v = self.requests.subschema_for::<T>().to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
        }
        v
    }
}

pub fn ok(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

pub fn err(description: &str) -> Value {
    json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

pub fn query(name: &str, description: &str, required: bool, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
}

pub fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

pub fn list_of(key: &str, item: Value) -> Value {
    json!({"type": "object", "required": [key], "properties": {key: {"type": "array", "items": item}}})
}

pub fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// Every `error.code` an error body can carry (`pipelines::http`).
pub const ERROR_CODES: [&str; 14] = [
    "bad_input",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payment_declined",
    "too_large",
    "unsupported_media_type",
    "unauthorized",
    "forbidden",
    "too_many_requests",
    "timeout",
    "unavailable",
    "full",
    "internal",
];

/// The `Error` component every role answers errors with.
pub fn error_schema() -> Value {
    json!({"type": "object", "required": ["error", "request_id"],
        "properties": {
            "error": {"type": "object", "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": ERROR_CODES},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The parameter, header or JSON path at fault"}}},
            "request_id": {"type": "string", "description": "Also in the x-request-id header and in our logs"}}})
}

/// Merges `part` (`paths`, `components.schemas`) into `doc`.
pub fn merge_into(doc: &mut Value, part: Value) {
    for key in ["paths"] {
        if let (Some(dst), Some(src)) = (
            doc.get_mut(key).and_then(Value::as_object_mut),
            part.get(key).and_then(Value::as_object),
        ) {
            for (k, v) in src {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
    if let (Some(dst), Some(src)) = (
        doc.pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut),
        part.pointer("/components/schemas")
            .and_then(Value::as_object),
    ) {
        for (k, v) in src {
            dst.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}
