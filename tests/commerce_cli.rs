//! `lusso serve` (all roles) on the real backends, end to end through HTTP: the checkout charges the price
//! serving shows (including a merchandiser's override, live within a reload poll), orders are durable in
//! PostgreSQL, the outbox reaches `lusso.commerce.v1` on the Kafka-protocol broker, and the paid order's
//! e-invoice is served. Paid by card through the Stripe provider against localstripe (production `serve` has
//! no `fake` provider).

mod common;

use std::time::Duration;

use common::*;
use pipelines::bus::kafka::{KafkaBus, KafkaConfig};
use pipelines::bus::EventBus;
use serde_json::{json, Value};

fn call(
    addr: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let auth = bearer(key);
    let mut headers = headers.to_vec();
    headers.push(("authorization", &auth));
    let (status, text) = http_call(addr, method, path, body.as_deref(), &headers)
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn all_roles_check_out_at_serving_prices_and_publish_to_the_commerce_topic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let database = rt
        .block_on(pipelines::pg::fresh_database(
            &require_env("LUSSO_DATABASE_URL"),
            "lusso_cli_commerce",
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let prefix = fresh("cli.commerce.");
    let envs = vec![
        ("LUSSO_KAFKA_BROKERS", require_env("LUSSO_KAFKA_BROKERS")),
        ("LUSSO_CLICKHOUSE_URL", require_env("LUSSO_CLICKHOUSE_URL")),
        ("LUSSO_CLICKHOUSE_DATABASE", "lusso_test".to_string()),
        ("LUSSO_CLICKHOUSE_TABLE", fresh("events_commerce_")),
        ("LUSSO_REDIS_URL", require_env("LUSSO_REDIS_URL")),
        (
            "LUSSO_FEATURES_KEY_PREFIX",
            format!("{}:", fresh("commerce")),
        ),
        ("LUSSO_DATABASE_URL", database),
        // Production serve has no `fake` provider: Stripe, against localstripe.
        ("LUSSO_STRIPE_URL", require_env("LUSSO_STRIPE_URL")),
        ("LUSSO_STRIPE_SECRET_KEY", fresh("sk_test_")),
        (
            "LUSSO_ORDER_TOKEN_SECRET",
            fresh("order-token-secret-of-this-test-"),
        ),
        ("LUSSO_TOPIC_PREFIX", prefix.clone()),
        ("LUSSO_DATA_DIR", dir.path().display().to_string()),
        ("LUSSO_HTTP_ADDR", addr.clone()),
    ];
    let key = admin_key(&envs);
    let mut cmd = lusso(&envs);
    cmd.args(["serve"]);
    let _server = Proc::spawn(cmd);
    wait_until(Duration::from_secs(90), "lusso serve /healthz", || {
        http_get(&addr, "/healthz").is_some_and(|(s, _)| s == 200)
    });

    // A listed product with a variant, stocked online.
    let (s, products) = call(&addr, &key, "GET", "/v1/products?limit=5", None, &[]);
    assert_eq!(s, 200, "{products}");
    let product = &products["products"][0];
    let pid = product["id"].as_str().unwrap().to_string();
    let sku = product["variants"][0]["sku"].as_str().unwrap().to_string();
    let (s, inv) = call(
        &addr,
        &key,
        "PUT",
        &format!("/v1/inventory/{sku}"),
        Some(json!({"locations": {"online": 4}})),
        &[],
    );
    assert_eq!(s, 200, "{inv}");

    // A merchandiser overrides the GB price; the cart shows it once serving's reloader has it.
    let (s, o) = call(
        &addr,
        &key,
        "PUT",
        "/v1/prices/overrides",
        Some(json!({"product_id": pid, "market": "GB", "amount": 1234.0, "currency": "GBP"})),
        &[],
    );
    assert!(s == 200 || s == 201, "{o}");
    wait_until(
        Duration::from_secs(10),
        "the override in /v1/prices",
        || {
            let (_, p) = call(
                &addr,
                &key,
                "GET",
                &format!("/v1/prices?product_id={pid}&market=GB"),
                None,
                &[],
            );
            p["amount"].as_f64() == Some(1234.0)
        },
    );
    let (s, cart) = call(
        &addr,
        &key,
        "POST",
        "/v1/carts",
        Some(json!({"market": "GB", "lines": [{"sku": sku, "quantity": 1}]})),
        &[],
    );
    assert_eq!(s, 201, "{cart}");
    assert_eq!(cart["currency"], "GBP");
    assert_eq!(cart["lines"][0]["unit_price"], 123_400);
    // The IT cart is priced like /v1/prices in IT.
    let (_, it_price) = call(
        &addr,
        &key,
        "GET",
        &format!("/v1/prices?product_id={pid}&market=IT"),
        None,
        &[],
    );
    let (_, it_cart) = call(
        &addr,
        &key,
        "POST",
        "/v1/carts",
        Some(json!({"market": "IT", "lines": [{"sku": sku, "quantity": 1}]})),
        &[],
    );
    let shown = (it_price["amount"].as_f64().unwrap() * 100.0).round() as i64;
    assert_eq!(it_cart["lines"][0]["unit_price"].as_i64(), Some(shown));

    // Check the Italian cart out (durable in PostgreSQL), download the e-invoice.
    let address = json!({"name": "Giulia Rossi", "street": "Via Montenapoleone 8", "city": "Milano",
        "postal_code": "20121", "province": "MI", "country": "IT"});
    let body = json!({"cart_id": it_cart["id"], "email": "giulia@example.com", "user_id": "U0000001",
        "shipping": address,
        "buyer": {"kind": "consumer", "email": "giulia@example.com", "codice_fiscale": "RSSMRA85T10A562S", "billing": address},
        "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}});
    let (s, order) = call(
        &addr,
        &key,
        "POST",
        "/v1/checkouts",
        Some(body.clone()),
        &[("Idempotency-Key", "cli-1")],
    );
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "paid");
    assert_eq!(order["amount_due"].as_i64(), Some(shown));
    let (s2, again) = call(
        &addr,
        &key,
        "POST",
        "/v1/checkouts",
        Some(body),
        &[("Idempotency-Key", "cli-1")],
    );
    assert_eq!((s2, &again["order_id"]), (201, &order["order_id"]));
    let id = order["order_id"].as_str().unwrap().to_string();
    let auth = bearer(&key);
    let (s, xml) = http_call(
        &addr,
        "GET",
        &format!("/v1/orders/{id}/invoice.xml"),
        None,
        &[("authorization", &auth)],
    )
    .unwrap();
    assert_eq!(s, 200, "{xml}");
    assert!(
        xml.contains("FatturaElettronica") && xml.contains("RSSMRA85T10A562S"),
        "{xml}"
    );
    let (_, inv) = call(
        &addr,
        &key,
        "GET",
        &format!("/v1/inventory/{sku}"),
        None,
        &[],
    );
    assert_eq!(inv["locations"]["online"]["on_hand"], 3);

    // The outbox reached the commerce topic: this order's placement and payment, in order.
    let bus = KafkaBus::new(KafkaConfig::new(require_env("LUSSO_KAFKA_BROKERS"))).unwrap();
    let topic = format!("{prefix}{}", pipelines::topics::COMMERCE);
    let kinds = rt.block_on(async {
        let mut sub = bus.subscribe(&topic, "cli-commerce-test").await.unwrap();
        let mut kinds = Vec::new();
        for _ in 0..60 {
            for m in sub.poll(500, Duration::from_millis(500)).await.unwrap() {
                if m.key.as_deref() == Some(id.as_bytes()) {
                    let v: Value = serde_json::from_slice(&m.payload).unwrap();
                    kinds.push(v["type"].as_str().unwrap().to_string());
                }
            }
            if kinds.len() >= 2 {
                break;
            }
        }
        kinds
    });
    assert_eq!(kinds, vec!["order_placed", "order_status"]);

    let (_, metrics) = http_get(&addr, "/metrics").unwrap();
    assert!(
        metrics.contains("lusso_commerce_checkouts_total"),
        "commerce metrics are exposed"
    );
    let (_, doc) = http_get(&addr, "/openapi.json").unwrap();
    assert!(doc.contains("/v1/checkouts") && doc.contains("/v1/recommendations"));
}
