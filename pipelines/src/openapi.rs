//! OpenAPI 3.1 building blocks shared by the roles' documents (every role's crate has one), which the process
//! merges into one `/openapi.json`: schema generators (schemars), the common response shapes, the console's
//! routes, and the security of every operation from the process's route table ([`secure`]).

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

/// The console's login and logout (`pipelines::http::console`).
pub fn console_document() -> Value {
    let form = json!({"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["key"], "properties": {
            "key": {"type": "string", "description": "A secret key (sk_…)"},
            "next": {"type": "string", "description": "A local path to go on to (default /dashboard)"}}}}}});
    let page = json!({"description": "The login form", "content": {"text/html": {"schema": {"type": "string"}}}});
    json!({"paths": {
        "/console/login": {
            "get": {"summary": "The console's login form", "parameters": [query("next", "Where to go after login", false, json!({"type": "string"}))],
                "responses": {"200": page}},
            "post": {"summary": "Exchange a secret key for a session cookie (HttpOnly, SameSite=Strict, 8 h)",
                "requestBody": form,
                "responses": {"303": {"description": "Logged in: on to `next`"}, "401": page}}},
        "/console/logout": {"post": {"summary": "End the console session",
            "responses": {"303": {"description": "Logged out: to the login form"}}}}
    }, "components": {"schemas": {"Error": error_schema()}}})
}

/// How an operation may be called, for [`secure`]: `None` = public, else the requirement's description
/// (`publishable key`, `scope rules:write`, …) and whether a storefront (publishable key) may call it.
pub type Requirement = Option<(String, bool)>;

/// Sets `components.securitySchemes` (bearer API keys, the console's session cookie) and each operation's
/// `security` from `requirement(method, path)`, and adds the edge's own answers to every operation that lacks
/// them: 401/403 where a key is needed, 429 where a publishable key may call, and on every operation the
/// statuses any request can get (400, 408, 413, 415, 500, 503).
pub fn secure(doc: &mut Value, requirement: impl Fn(&str, &str) -> Requirement) {
    let schemes = json!({
        "apiKey": {"type": "http", "scheme": "bearer",
            "description": "An API key: `pk_…` (publishable, storefront routes) or `sk_…` (secret, with scopes)"},
        "consoleSession": {"type": "apiKey", "in": "cookie", "name": "lusso_session",
            "description": "A console session from POST /console/login (state changes also send x-csrf-token)"}});
    if let Some(c) = doc.get_mut("components").and_then(Value::as_object_mut) {
        c.insert("securitySchemes".into(), schemes);
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            let need = requirement(&method.to_ascii_uppercase(), path);
            secure_operation(op, need);
        }
    }
}

fn secure_operation(op: &mut Value, need: Requirement) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    let mut add = vec![
        ("400", "Bad input (the field is named)"),
        ("408", "The body was not read in time"),
        ("413", "The body is too large"),
        ("415", "The body is not JSON"),
        ("500", "Our bug (the body names the request id)"),
        (
            "503",
            "A backend is unavailable, or the request passed its deadline",
        ),
    ];
    match &need {
        None => {
            op.insert("security".into(), json!([]));
        }
        Some((what, storefront)) => {
            op.insert(
                "security".into(),
                json!([{"apiKey": []}, {"consoleSession": []}]),
            );
            op.insert("x-lusso-access".into(), json!(what));
            add.push(("401", "No key, or a key that is not valid"));
            add.push((
                "403",
                "The key lacks what the route needs, or the origin is not allowed",
            ));
            if *storefront {
                add.push(("429", "Over the publishable key's rate (Retry-After)"));
            }
        }
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(r) = responses {
        for (code, what) in add {
            r.entry(code.to_string()).or_insert_with(|| err(what));
        }
    }
}
