//! `/openapi.json` covers every serving endpoint, and every response the API gives (successes and errors)
//! validates against the schema the document states for that path, method and status.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

/// Validates `body` against the document's schema for (`path`, `method`, `status`).
fn check(doc: &Value, path: &str, method: &str, status: StatusCode, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let resp = &op["responses"][status.as_str()];
    assert!(
        resp.is_object(),
        "{method} {path} → {status} is not documented"
    );
    let Some(schema) = resp.pointer("/content/application~1json/schema") else {
        assert!(
            body.is_null(),
            "{method} {path} → {status}: documented without a body: {body}"
        );
        return;
    };
    let mut root = schema.clone();
    if let Some(o) = root.as_object_mut() {
        o.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("{method} {path}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} → {status}: {errors:?}\n{body}"
    );
}

async fn responses_match_the_document(real: bool) {
    let fx = fixture(real).await;
    let doc = serving::openapi::document();
    let id = item(3);
    let mut covered = std::collections::BTreeSet::new();
    let mut call = |path: &'static str, method: &'static str| {
        covered.insert((path, method));
    };

    let (s, b) = fx.send("POST", "/v1/rules", Some(json!({"name": "pin", "priority": 3,
        "conditions": {"segment": ["New"]}, "actions": [{"type": "pin", "product_id": id, "position": 1}]}))).await;
    check(&doc, "/v1/rules", "post", s, &b);
    call("/v1/rules", "post");
    let rule_id = b["id"].as_str().unwrap().to_string();
    let (s, e) = fx
        .send(
            "POST",
            "/v1/rules",
            Some(json!({"name": "", "priority": 1, "actions": []})),
        )
        .await;
    check(&doc, "/v1/rules", "post", s, &e);

    let calls: Vec<(&'static str, &'static str, String, Option<Value>)> = vec![
        (
            "/v1/recommendations",
            "get",
            "/v1/recommendations?user_id=U1&n=5&market=GB".into(),
            None,
        ),
        (
            "/v1/recommendations",
            "get",
            "/v1/recommendations?anonymous_id=zz&placement=pdp".into(),
            None,
        ),
        (
            "/v1/recommendations",
            "get",
            "/v1/recommendations?n=0".into(),
            None,
        ),
        (
            "/v1/products/{id}/similar",
            "get",
            format!("/v1/products/{id}/similar?n=4"),
            None,
        ),
        (
            "/v1/products/{id}/similar",
            "get",
            "/v1/products/NOPE/similar".into(),
            None,
        ),
        ("/v1/rules", "get", "/v1/rules".into(), None),
        (
            "/v1/rules/{id}",
            "get",
            format!("/v1/rules/{rule_id}"),
            None,
        ),
        (
            "/v1/rules/{id}",
            "put",
            format!("/v1/rules/{rule_id}"),
            Some(
                json!({"version": 1, "name": "pin", "priority": 4, "actions": [{"type": "pin", "product_id": id, "position": 2}]}),
            ),
        ),
        (
            "/v1/rules/{id}",
            "put",
            format!("/v1/rules/{rule_id}"),
            Some(
                json!({"version": 1, "name": "pin", "priority": 4, "actions": [{"type": "pin", "product_id": id, "position": 2}]}),
            ),
        ),
        (
            "/v1/rules/{id}/audit",
            "get",
            format!("/v1/rules/{rule_id}/audit"),
            None,
        ),
        (
            "/v1/rules/audit",
            "get",
            "/v1/rules/audit?limit=5".into(),
            None,
        ),
        (
            "/v1/rules/preview",
            "post",
            "/v1/rules/preview".into(),
            Some(json!({"segment": "New", "user_id": "U1", "n": 5})),
        ),
        (
            "/v1/rules/preview",
            "post",
            "/v1/rules/preview".into(),
            Some(json!({"segment": "VIP"})),
        ),
        (
            "/v1/prices",
            "get",
            format!("/v1/prices?product_id={id}&market=CH"),
            None,
        ),
        (
            "/v1/prices",
            "get",
            "/v1/prices?product_id=NOPE".into(),
            None,
        ),
        ("/v1/markets", "get", "/v1/markets".into(), None),
        (
            "/v1/prices/overrides",
            "put",
            "/v1/prices/overrides".into(),
            Some(json!({"product_id": id, "market": "CH", "amount": 1234.0, "currency": "CHF"})),
        ),
        (
            "/v1/prices/overrides",
            "get",
            "/v1/prices/overrides".into(),
            None,
        ),
        (
            "/v1/prices/overrides/{product_id}/{market}",
            "delete",
            format!("/v1/prices/overrides/{id}/CH"),
            None,
        ),
        (
            "/v1/experiments",
            "post",
            "/v1/experiments".into(),
            Some(json!({"key": "e1", "name": "e1", "status": "running",
            "variants": [{"key": "a", "weight": 1.0}, {"key": "b", "weight": 1.0}]})),
        ),
        ("/v1/experiments", "get", "/v1/experiments".into(), None),
        (
            "/v1/experiments/{key}",
            "get",
            "/v1/experiments/e1".into(),
            None,
        ),
        (
            "/v1/experiments/{key}",
            "put",
            "/v1/experiments/e1".into(),
            Some(
                json!({"key": "e1", "name": "e1 renamed", "status": "running",
            "variants": [{"key": "a", "weight": 1.0}, {"key": "b", "weight": 3.0}]}),
            ),
        ),
        (
            "/v1/experiments/{key}/assignment",
            "get",
            "/v1/experiments/e1/assignment?unit_id=U1".into(),
            None,
        ),
        (
            "/v1/experiments/{key}/assignment",
            "get",
            "/v1/experiments/e1/assignment".into(),
            None,
        ),
        (
            "/v1/experiments/{key}/results",
            "get",
            "/v1/experiments/e1/results?days=7".into(),
            None,
        ),
        (
            "/v1/rules/{id}",
            "delete",
            format!("/v1/rules/{rule_id}"),
            None,
        ),
    ];
    for (path, method, uri, body) in calls {
        let (status, v) = fx.send(&method.to_uppercase(), &uri, body).await;
        assert!(
            status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE,
            "{uri}: {status} {v}"
        );
        check(&doc, path, method, status, &v);
        call(path, method);
    }
    // The storefront page is HTML.
    let (status, page) = fx.get("/storefront").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("/v1/recommendations"));
    call("/storefront", "get");

    // Every documented operation was exercised, and every route is documented.
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    let exercised: std::collections::BTreeSet<(String, String)> = covered
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(documented, exercised);
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn responses_match_the_document() {
        super::responses_match_the_document(false).await;
    }
}

mod real {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn responses_match_the_document() {
        super::responses_match_the_document(true).await;
    }
}
