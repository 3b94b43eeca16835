//! Checkout behaviour through the HTTP API, each scenario run on the in-memory store and on PostgreSQL:
//! reservations and no oversell under concurrency, allocation across locations, idempotency, declines,
//! 3-D-Secure-style confirmation, reservation expiry, the outbox messages, and input validation.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::{checkout_body, fixture, listed, milano, Backend};
use serde_json::{json, Value};

/// The fake provider under another name, recording the idempotency key of every payment it is asked for.
#[derive(Default)]
struct CountingProvider {
    keys: std::sync::Mutex<Vec<String>>,
}

impl CountingProvider {
    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl commerce::payments::PaymentProvider for CountingProvider {
    fn name(&self) -> &'static str {
        "counting"
    }
    async fn create(
        &self,
        r: &commerce::payments::PaymentRequest,
    ) -> commerce::Result<commerce::payments::PaymentOutcome> {
        self.keys.lock().unwrap().push(r.idempotency_key.clone());
        commerce::payments::fake::Fake.create(r).await
    }
    async fn confirm(
        &self,
        reference: &str,
        r: &commerce::payments::PaymentRequest,
        p: &Value,
    ) -> commerce::Result<commerce::payments::PaymentOutcome> {
        commerce::payments::fake::Fake
            .confirm(reference, r, p)
            .await
    }
    async fn cancel(&self, reference: &str) -> commerce::Result<()> {
        commerce::payments::fake::Fake.cancel(reference).await
    }
    async fn refund(
        &self,
        reference: &str,
        amount: i64,
        currency: &str,
        key: &str,
    ) -> commerce::Result<commerce::payments::RefundOutcome> {
        commerce::payments::fake::Fake
            .refund(reference, amount, currency, key)
            .await
    }
    fn webhook(
        &self,
        h: &axum::http::HeaderMap,
        b: &[u8],
    ) -> commerce::Result<commerce::payments::WebhookEvent> {
        commerce::payments::fake::Fake.webhook(h, b)
    }
}

fn sku(i: usize) -> String {
    listed()[i].variants[0].id.clone()
}

fn types(outbox: &[Value]) -> Vec<String> {
    outbox
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect()
}

async fn paid_checkout_commits_stock_and_writes_the_outbox(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(0);
    f.stock(&a, &[("online", 3)]).await;
    let cart = f.cart("IT", &[(&a, 2)]).await;
    let (s, b) = f.checkout("k-paid", checkout_body(&cart, "succeed")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["status"], "paid");
    let order_id = b["order_id"].as_str().unwrap().to_string();
    let order = &b["order"];
    assert_eq!(order["payment"]["status"], "captured");
    let totals = &order["tax"]["totals"];
    assert_eq!(
        totals["net"].as_i64().unwrap() + totals["vat"].as_i64().unwrap(),
        totals["gross"].as_i64().unwrap()
    );
    assert_eq!(totals["amount_due"], totals["gross"]);
    assert_eq!(order["tax"]["lines"][0]["vat_rate_bp"], 2200);
    assert_eq!(f.levels(&a).await, (1, 0, 1));
    // The order is readable, the cart is closed.
    let (s, got) = f.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["status"], "paid");
    let (s, e) = f
        .post(
            &format!("/v1/carts/{cart}/lines"),
            json!({"sku": a, "quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    // Outbox: the stock set, order placed, the reservation, the commit, the status change.
    let out = f.outbox().await;
    let t = types(&out);
    assert!(t.contains(&"order_placed".to_string()), "{t:?}");
    let status: Vec<&Value> = out.iter().filter(|m| m["type"] == "order_status").collect();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0]["status"], "paid");
    assert_eq!(status[0]["order_id"], order_id.as_str());
    let levels: Vec<i64> = out
        .iter()
        .filter(|m| {
            m["type"] == "stock_level" && m["variant_id"] == a.as_str() && m["location"] == "online"
        })
        .map(|m| m["available"].as_i64().unwrap())
        .collect();
    assert_eq!(levels, vec![3, 1, 1], "set, reserved, committed");
    let seqs: Vec<u64> = out
        .iter()
        .filter(|m| {
            m["type"] == "stock_level" && m["variant_id"] == a.as_str() && m["location"] == "online"
        })
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

async fn short_stock_is_409_and_reserves_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let (a, b2) = (sku(1), sku(2));
    f.stock(&a, &[("online", 5)]).await;
    f.stock(&b2, &[("milano-montenapoleone", 1)]).await;
    let cart = f.cart("IT", &[(&a, 2), (&b2, 2)]).await;
    let (s, e) = f.checkout("k-short", checkout_body(&cart, "succeed")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains(&b2), "{e}");
    assert_eq!(f.levels(&a).await, (5, 0, 5));
    assert_eq!(f.levels(&b2).await, (1, 0, 1));
    // The key was not consumed: after a restock the same key checks out.
    f.stock(&b2, &[("milano-montenapoleone", 2)]).await;
    let (s, b) = f.checkout("k-short", checkout_body(&cart, "succeed")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn allocation_prefers_one_location_then_splits_online_first(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(3);
    // Online 1, Milano 1, Roma 5: three units ship from Roma alone.
    f.stock(
        &a,
        &[
            ("online", 1),
            ("milano-montenapoleone", 1),
            ("roma-condotti", 5),
        ],
    )
    .await;
    let cart = f.cart("IT", &[(&a, 3)]).await;
    let (s, b) = f.checkout("k-one", checkout_body(&cart, "succeed")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let alloc = &b["order"]["allocations"];
    assert_eq!(alloc.as_array().unwrap().len(), 1, "{alloc}");
    assert_eq!(alloc[0]["location"], "roma-condotti");
    // Four more: no single location has them; online first, then the shipping city (Milano), then Roma.
    f.stock(
        &a,
        &[
            ("online", 1),
            ("milano-montenapoleone", 1),
            ("roma-condotti", 2),
            ("firenze-tornabuoni", 3),
        ],
    )
    .await;
    let cart = f.cart("IT", &[(&a, 4)]).await;
    let (s, b) = f.checkout("k-split", checkout_body(&cart, "succeed")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let got: BTreeMap<String, u64> = b["order"]["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["location"].as_str().unwrap().to_string(),
                a["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = [
        ("online", 1),
        ("milano-montenapoleone", 1),
        ("roma-condotti", 2),
    ]
    .into_iter()
    .map(|(l, q)| (l.to_string(), q))
    .collect();
    assert_eq!(got, want);
    assert_eq!(f.levels(&a).await, (3, 0, 3));
}

/// The acceptance: 1,000 concurrent checkouts of a variant with 10 units spread over the 4
/// locations → exactly 10 orders, stock 0, never negative, every other checkout a clear 409.
async fn concurrent_checkouts_never_oversell(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(4);
    f.stock(
        &a,
        &[
            ("online", 4),
            ("milano-montenapoleone", 3),
            ("roma-condotti", 2),
            ("firenze-tornabuoni", 1),
        ],
    )
    .await;
    let mut carts = Vec::new();
    for _ in 0..1_000 {
        carts.push(f.cart("IT", &[(&a, 1)]).await);
    }
    let f = std::sync::Arc::new(f);
    let mut tasks = Vec::new();
    for (i, cart) in carts.into_iter().enumerate() {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.checkout(&format!("k-race-{i}"), checkout_body(&cart, "succeed"))
                .await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                let reason = b["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    reason.contains("insufficient stock") && reason.contains(&a),
                    "{b}"
                );
                conflicts += 1
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert_eq!((created, conflicts), (10, 990));
    let (_, inv) = f.get(&format!("/v1/inventory/{a}")).await;
    for l in inv["locations"].as_object().unwrap().values() {
        assert_eq!(
            (l["on_hand"].as_i64(), l["reserved"].as_i64()),
            (Some(0), Some(0)),
            "{inv}"
        );
    }
    let placed = f
        .outbox()
        .await
        .into_iter()
        .filter(|m| m["type"] == "order_placed")
        .count();
    assert_eq!(placed, 10);
}

/// The acceptance: the same checkout retried 20 times (concurrently, then one after another) with
/// one Idempotency-Key → one order, one charge.
async fn idempotency_key_replays_and_refuses_another_body(backend: Backend) {
    let counter = std::sync::Arc::new(CountingProvider::default());
    let f = common::fixture_with(
        backend,
        commerce::CommerceConfig::default(),
        commerce::payments::Providers::fake_only().with(counter.clone()),
    )
    .await;
    let a = sku(5);
    f.stock(&a, &[("online", 4)]).await;
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let mut body = checkout_body(&cart, "succeed");
    body["payment"]["provider"] = json!("counting");
    let f = std::sync::Arc::new(f);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (f, body) = (f.clone(), body.clone());
        tasks.push(tokio::spawn(
            async move { f.checkout("k-same", body).await },
        ));
    }
    let mut orders = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, b) = t.await.unwrap();
        assert!(
            s == StatusCode::CREATED || s == StatusCode::CONFLICT,
            "{s} {b}"
        );
        if s == StatusCode::CREATED {
            orders.insert(b["order_id"].as_str().unwrap().to_string());
        }
    }
    let (s1, b1) = f.checkout("k-same", body.clone()).await;
    assert_eq!(s1, StatusCode::CREATED, "{b1}");
    assert_eq!(b1["status"], "paid");
    for _ in 0..20 {
        let (s2, b2) = f.checkout("k-same", body.clone()).await;
        assert_eq!((s2, &b2), (s1, &b1), "the same response");
    }
    orders.insert(b1["order_id"].as_str().unwrap().to_string());
    assert_eq!(orders.len(), 1, "one order: {orders:?}");
    // One charge: every provider call carried the order's idempotency key (the provider charges a key once),
    // and once the first answer was stored no retry reached the provider.
    let keys = counter.keys();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k == &keys[0]),
        "{keys:?}"
    );
    let calls = keys.len();
    let _ = f.checkout("k-same", body.clone()).await;
    assert_eq!(counter.keys().len(), calls);
    assert_eq!(f.levels(&a).await, (3, 0, 3), "charged and reserved once");
    let placed = f
        .outbox()
        .await
        .into_iter()
        .filter(|m| m["type"] == "order_placed")
        .count();
    assert_eq!(placed, 1);
    let body = checkout_body(&cart, "succeed");
    let mut other = body.clone();
    other["email"] = json!("someone@example.com");
    let (s, e) = f.checkout("k-same", other).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let mut other = body.clone();
    other["payment"]["provider"] = json!("counting");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    // A new key on the same (already ordered) cart is a conflict, not a second order.
    let (s, e) = f.checkout("k-new", body).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    // No key at all.
    let (s, e) = f
        .call(
            "POST",
            "/v1/checkouts",
            Some(checkout_body(&cart, "succeed")),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["field"], "Idempotency-Key");
}

async fn declined_payment_is_402_and_releases_stock(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(6);
    f.stock(&a, &[("online", 2)]).await;
    let cart = f.cart("IT", &[(&a, 2)]).await;
    let (s, b) = f
        .checkout("k-decline", checkout_body(&cart, "decline"))
        .await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{b}");
    assert_eq!(b["status"], "payment_failed");
    assert!(b["order"]["payment"]["failure_reason"].as_str().is_some());
    assert_eq!(f.levels(&a).await, (2, 0, 2));
    // Replayed as it was.
    let (s, again) = f
        .checkout("k-decline", checkout_body(&cart, "decline"))
        .await;
    assert_eq!((s, again), (StatusCode::PAYMENT_REQUIRED, b));
}

async fn requires_action_then_confirm_or_expire(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(7);
    f.stock(&a, &[("online", 2)]).await;
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let (s, b) = f
        .checkout("k-3ds", checkout_body(&cart, "requires_action"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["status"], "requires_action");
    assert!(b["next_action"]["kind"].as_str().is_some(), "{b}");
    assert_eq!(f.levels(&a).await, (2, 1, 1), "held while the shopper acts");
    let id = b["order_id"].as_str().unwrap().to_string();
    let (s, c) = f
        .post(&format!("/v1/orders/{id}/payment/confirm"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "paid");
    assert_eq!(f.levels(&a).await, (1, 0, 1));

    // Another one that the shopper abandons: released when the reservation expires.
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let (_, b) = f
        .checkout("k-3ds-2", checkout_body(&cart, "requires_action"))
        .await;
    let id = b["order_id"].as_str().unwrap().to_string();
    assert_eq!(f.levels(&a).await, (1, 1, 0));
    assert_eq!(
        f.commerce.expire_reservations().await.unwrap(),
        0,
        "not yet"
    );
    f.clock
        .advance(f.commerce.config().reservation_ttl_secs as i64 + 1);
    assert_eq!(f.commerce.expire_reservations().await.unwrap(), 1);
    assert_eq!(f.levels(&a).await, (1, 0, 1));
    let (_, o) = f.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(o["status"], "cancelled");
    // Confirming after expiry changes nothing.
    let (s, c) = f
        .post(&format!("/v1/orders/{id}/payment/confirm"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["status"], "cancelled");
}

async fn bad_input_names_the_field(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(8);
    let inv = format!("/v1/inventory/{a}");
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("POST", "/v1/carts", json!({"market": "XX"}), "market"),
        (
            "POST",
            "/v1/carts",
            json!({"lines": [{"sku": "NOPE", "quantity": 1}]}),
            "lines[0].sku",
        ),
        (
            "POST",
            "/v1/carts",
            json!({"lines": [{"sku": a, "quantity": 0}]}),
            "lines[0].quantity",
        ),
        ("POST", "/v1/carts", json!({"colour": "red"}), "colour"),
        (
            "PUT",
            &inv,
            json!({"locations": {"NOWHERE": 1}}),
            "locations.NOWHERE",
        ),
        (
            "PUT",
            &inv,
            json!({"locations": {"online": -1}}),
            "locations.online",
        ),
    ];
    for (method, uri, body, field) in cases {
        let (s, e) = f.call(method, uri, Some(body.clone()), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri} {body}: {e}");
        assert!(
            e["error"]["field"].as_str().unwrap().starts_with(field),
            "{uri} {body}: {e}"
        );
    }
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let mut body = checkout_body(&cart, "succeed");
    body["shipping"]["country"] = json!("ZZ");
    let (s, e) = f.checkout("k-bad-1", body).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("shipping.country"))
    );
    let mut body = checkout_body(&cart, "succeed");
    body["payment"] = json!({"provider": "cash"});
    let (s, e) = f.checkout("k-bad-2", body).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("payment.provider"))
    );
    let mut body = checkout_body(&cart, "succeed");
    body["buyer"] = json!({"kind": "business", "email": "giulia@example.com", "partita_iva": "12345678901",
                           "billing": milano()});
    let (s, e) = f.checkout("k-bad-3", body).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("buyer.partita_iva")),
        "{e}"
    );
    let (s, _) = f.get("/v1/orders/not-a-uuid").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = f.get(&format!("/v1/orders/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f.get("/v1/inventory/NOPE").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing was reserved by the refused checkouts.
    let (_, inv) = f.get(&format!("/v1/inventory/{a}")).await;
    assert!(inv["locations"]
        .as_object()
        .unwrap()
        .values()
        .all(|l| l["reserved"] == 0));
}

async fn exports_and_split_payment_change_what_is_charged(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(9);
    f.stock(&a, &[("online", 5)]).await;
    // An export to GB: no IVA, the net price is charged.
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let mut body = checkout_body(&cart, "succeed");
    body["shipping"] = json!({"name": "Jane Doe", "street": "1 Sloane St", "city": "London",
                              "postal_code": "SW1X 9LA", "country": "GB"});
    let (s, b) = f.checkout("k-gb", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let t = &b["order"]["tax"];
    assert_eq!(t["regime"], "export");
    assert_eq!(t["totals"]["vat"], 0);
    assert_eq!(t["lines"][0]["natura"], "N3.1");
    let gross = listed()[9].effective_price();
    let net = (gross * 100.0 / 1.22).round() as i64;
    assert_eq!(t["totals"]["amount_due"].as_i64().unwrap(), net);
    // A public administration: IVA shown, not collected.
    let cart = f.cart("IT", &[(&a, 2)]).await;
    let mut body = checkout_body(&cart, "succeed");
    body["email"] = json!("acquisti@comune.example.it");
    body["buyer"] = json!({"kind": "public_administration", "email": "acquisti@comune.example.it",
        "codice_fiscale": "80016350821", "sdi_code": "UF7XQ2",
        "billing": {"name": "Comune di Esempio", "street": "Piazza Pretoria 1", "city": "Palermo",
                    "postal_code": "90133", "province": "PA", "country": "IT"}});
    let (s, b) = f.checkout("k-pa", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let t = &b["order"]["tax"];
    assert_eq!(t["split_payment"], true);
    assert_eq!(t["totals"]["vat_collected"], 0);
    assert_eq!(t["totals"]["amount_due"], t["totals"]["net"]);
    assert_eq!(b["order"]["payment"]["captured"], t["totals"]["net"]);
}

macro_rules! scenarios {
    ($backend:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn paid_checkout_commits_stock_and_writes_the_outbox() {
            super::paid_checkout_commits_stock_and_writes_the_outbox($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn short_stock_is_409_and_reserves_nothing() {
            super::short_stock_is_409_and_reserves_nothing($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn allocation_prefers_one_location_then_splits_online_first() {
            super::allocation_prefers_one_location_then_splits_online_first($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_checkouts_never_oversell() {
            super::concurrent_checkouts_never_oversell($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn idempotency_key_replays_and_refuses_another_body() {
            super::idempotency_key_replays_and_refuses_another_body($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn declined_payment_is_402_and_releases_stock() {
            super::declined_payment_is_402_and_releases_stock($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn requires_action_then_confirm_or_expire() {
            super::requires_action_then_confirm_or_expire($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn bad_input_names_the_field() {
            super::bad_input_names_the_field($backend).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn exports_and_split_payment_change_what_is_charged() {
            super::exports_and_split_payment_change_what_is_charged($backend).await
        }
    };
}

mod memory {
    scenarios!(super::Backend::Memory);
}

mod postgres {
    scenarios!(super::Backend::Postgres);
}
