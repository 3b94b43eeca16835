//! The HTTP contract of the bandit service: status codes and field-naming errors, on both stores.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bandits::service::ManualClock;
use common::*;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("x-lusso-user", "tester")
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

async fn contract(backend: Backend) {
    let clock = ManualClock::new(t("2026-12-01T10:00:00Z"));
    let b = service(store(backend).await, &clock);
    let app = bandits::api::app(b.clone());

    // Slots.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/slots",
        Some(json!({"slot": "home_hero", "arms": "x"})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "arms"), "{v}");
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"arm_id": format!("a{i}")}))
        .collect();
    let (s, v) = call(
        &app,
        "POST",
        "/v1/slots",
        Some(json!({"slot": "big", "arms": many})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "arms"), "{v}");
    let slot = json!({"slot": "home_hero", "reward": {"objective": "click"},
        "arms": [{"arm_id": "a"}, {"arm_id": "b"}]});
    let (s, v) = call(&app, "POST", "/v1/slots", Some(slot.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["version"], 1);
    let (s, _) = call(&app, "POST", "/v1/slots", Some(slot)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = call(
        &app,
        "PUT",
        "/v1/slots/home_hero",
        Some(json!({"slot": "other", "arms": []})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "slot"), "{v}");
    let (s, _) = call(
        &app,
        "PUT",
        "/v1/slots/home_hero",
        Some(json!({"slot": "home_hero", "version": 7, "arms": [{"arm_id": "a"}]})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "a stale version is refused");
    let (s, v) = call(
        &app,
        "POST",
        "/v1/slots/home_hero/actions",
        Some(json!({"action": "pause", "arm_id": "zz"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = call(
        &app,
        "POST",
        "/v1/slots/home_hero/actions",
        Some(json!({"action": "explode"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = call(&app, "GET", "/v1/slots/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Decisions.
    let (s, _) = call(
        &app,
        "POST",
        "/v1/decisions",
        Some(json!({"slot": "nope", "user_id": "u"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/decisions",
        Some(json!({"slot": "home_hero"})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "user_id"), "{v}");
    let (s, v) = call(
        &app,
        "POST",
        "/v1/decisions",
        Some(json!({"slot": "home_hero", "user_id": "u", "context": {"hour": 30}})),
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::BAD_REQUEST, "context.hour"),
        "{v}"
    );
    let (s, v) = call(
        &app,
        "POST",
        "/v1/decisions",
        Some(json!({"slot": "home_hero", "user_id": "u", "context": {"colour": "red"}})),
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::BAD_REQUEST, "context.colour"),
        "{v}"
    );
    let (s, v) = call(
        &app,
        "POST",
        "/v1/decisions",
        Some(json!({"slot": "home_hero", "user_id": "u1", "context": {"segment": "New"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let decision = v["decision_id"].as_str().unwrap().to_string();
    let p = v["propensity"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0, "{v}");
    assert!(
        v["policy"].as_str().unwrap().starts_with("thompson@v1."),
        "{v}"
    );
    let (s, v) = call(&app, "GET", &format!("/v1/decisions/{decision}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["decision"]["context"]["segment"], "New");

    // Rewards.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/rewards",
        Some(json!({"decision_id": "x", "value": 1})),
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::BAD_REQUEST, "decision_id"),
        "{v}"
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    let (s, _) = call(
        &app,
        "POST",
        "/v1/rewards",
        Some(json!({"decision_id": unknown, "value": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/rewards",
        Some(json!({"decision_id": decision, "value": 2})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "value"), "{v}");
    let (s, v) = call(
        &app,
        "POST",
        "/v1/rewards",
        Some(json!({"decision_id": decision, "value": 1})),
    )
    .await;
    assert_eq!(
        (s, v["result"].as_str()),
        (StatusCode::OK, Some("recorded")),
        "{v}"
    );
    let (s, v) = call(
        &app,
        "POST",
        "/v1/rewards",
        Some(json!({"decision_id": decision, "value": 1})),
    )
    .await;
    assert_eq!(
        (s, v["result"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "{v}"
    );
    let (s, _) = call(
        &app,
        "POST",
        "/v1/rewards",
        Some(json!({"decision_id": decision, "value": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Reports and OPE.
    let (s, v) = call(&app, "GET", "/v1/bandits/home_hero/report?days=1", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["segments"][0]["segment"], "All");
    assert_eq!(v["segments"][0]["decisions"], 1);
    let (s, v) = call(&app, "GET", "/v1/bandits/home_hero/report?days=abc", None).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "days"), "{v}");
    let (s, v) = call(&app, "GET", "/v1/bandits/home_hero/ope?policy=best", None).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "policy"), "{v}");
    let (s, v) = call(
        &app,
        "GET",
        "/v1/bandits/home_hero/ope?policy=arm:a&bootstrap=100",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["segments"][0]["rounds"], 1);
    let (s, v) = call(&app, "GET", "/v1/slots/home_hero/audit", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["audit"][0]["actor"], "tester");

    // Deleting the slot: decisions for it are 404, its log stays readable.
    let (s, _) = call(&app, "DELETE", "/v1/slots/home_hero", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/decisions",
        Some(json!({"slot": "home_hero", "user_id": "u"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, "GET", &format!("/v1/decisions/{decision}"), None).await;
    assert_eq!(s, StatusCode::OK);
}

mod memory {
    #[tokio::test]
    async fn contract() {
        super::contract(super::Backend::Memory).await;
    }
}

mod postgres {
    #[tokio::test]
    async fn contract() {
        super::contract(super::Backend::Postgres).await;
    }
}
