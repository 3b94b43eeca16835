//! Stripe 3-D Secure 2 end to end through Lusso's HTTP API on a real socket, against localstripe: checkout →
//! `requires_action` (stock held) → the shopper's challenge → localstripe's signed webhook to
//! `POST /v1/payments/stripe/webhook` → order paid, stock sold; a forged or tampered webhook is refused with
//! 400 and changes nothing; a failed challenge releases the stock. On the in-memory store and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use commerce::payments::stripe::Stripe;
use commerce::payments::{Providers, Secret, StripeConfig};
use common::{listed, milano, require_env, Backend};
use serde_json::{json, Value};

fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// What Stripe.js does in the browser: card data goes to Stripe (here localstripe), never to Lusso.
async fn payment_method(stripe: &str, key: &str, number: &str) -> String {
    let body = format!("type=card&card%5Bnumber%5D={number}&card%5Bexp_month%5D=12&card%5Bexp_year%5D=2031&card%5Bcvc%5D=123");
    let reply: Value = reqwest::Client::new()
        .post(format!("{stripe}/v1/payment_methods"))
        .bearer_auth(key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["id"]
        .as_str()
        .expect("a PaymentMethod id")
        .to_string()
}

/// The browser's 3-D Secure challenge, as localstripe's Stripe.js stand-in completes it.
async fn challenge(stripe: &str, pi: &str, client_secret: &str, success: bool) {
    let r = reqwest::Client::new()
        .post(format!(
            "{stripe}/v1/payment_intents/{pi}/_authenticate?success={success}"
        ))
        .body(json!({"key": "pk_test_lusso", "client_secret": client_secret}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn scenario(backend: Backend) {
    let stripe = require_env("LUSSO_STRIPE_URL");
    let (secret_key, webhook_secret) = (fresh("sk_test_"), fresh("whsec_"));
    let config = StripeConfig {
        api_base: stripe.clone(),
        webhook_secret: Some(Secret::new(webhook_secret.clone())),
        ..StripeConfig::default()
    };
    let provider = Stripe::new(
        &config,
        Secret::new(secret_key.clone()),
        Duration::from_secs(10),
    )
    .unwrap();
    let f = common::fixture_with(
        backend,
        commerce::CommerceConfig::default(),
        Providers::fake_only().with(Arc::new(provider)),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = f.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    // localstripe delivers this account's payment_intent events, signed, to our webhook endpoint.
    let hook = format!("lusso-commerce-e2e-{}", uuid::Uuid::new_v4().simple());
    let r = http
        .post(format!("{stripe}/_config/webhooks/{hook}"))
        .json(
            &json!({"url": format!("{base}/v1/payments/stripe/webhook"), "secret": webhook_secret,
                      "events": ["payment_intent.succeeded", "payment_intent.payment_failed"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let sku = listed()[10].variants[0].id.clone();
    f.stock(&sku, &[("online", 2)]).await;
    let checkout = |pm: String, key: &'static str, cart: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body = json!({"cart_id": cart, "email": "giulia@example.com", "shipping": milano(),
                "payment": {"provider": "stripe", "payment_method": pm}});
            let r = http
                .post(format!("{base}/v1/checkouts"))
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // 3-D Secure required → the order waits with its stock held.
    let pm = payment_method(&stripe, &secret_key, "4000002760003184").await;
    let cart = f.cart("IT", &[(&sku, 1)]).await;
    let (s, order) = checkout(pm, "k-3ds-ok", cart).await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "requires_action");
    let next = &order["next_action"];
    assert!(next["client_secret"].as_str().is_some(), "{order}");
    assert_eq!(f.levels(&sku).await, (2, 1, 1));
    let id = order["order_id"].as_str().unwrap().to_string();
    let pi = order["order"]["payment"]["reference"]
        .as_str()
        .unwrap()
        .to_string();

    // A forged webhook (wrong secret) and a tampered one are refused; the order does not move.
    let payload = json!({"id": "evt_forged", "type": "payment_intent.succeeded",
        "data": {"object": {"id": pi, "object": "payment_intent", "status": "succeeded"}}})
    .to_string();
    let t = chrono::Utc::now().timestamp();
    for signature in [
        format!("t={t},v1={}", "0".repeat(64)),
        "garbage".to_string(),
        String::new(),
    ] {
        let r = http
            .post(format!("{base}/v1/payments/stripe/webhook"))
            .header("Stripe-Signature", signature)
            .body(payload.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], "Stripe-Signature", "{e}");
    }
    let (_, o) = f.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(o["status"], "requires_action");

    // The shopper passes the challenge; localstripe's signed webhook pays the order.
    challenge(&stripe, &pi, next["client_secret"].as_str().unwrap(), true).await;
    let start = Instant::now();
    loop {
        let (_, o) = f.get(&format!("/v1/orders/{id}")).await;
        if o["status"] == "paid" {
            assert_eq!(o["payment"]["status"], "captured");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no webhook paid the order: {o}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(f.levels(&sku).await, (1, 0, 1), "sold");
    let applied = f
        .commerce
        .metrics()
        .webhooks
        .with_label_values(&["applied"])
        .get();
    assert!(applied >= 1);

    // A failed challenge: confirming reads the PaymentIntent back, the order fails and its stock returns.
    let pm = payment_method(&stripe, &secret_key, "4000002760003184").await;
    let cart = f.cart("IT", &[(&sku, 1)]).await;
    let (s, order) = checkout(pm, "k-3ds-fail", cart).await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(f.levels(&sku).await, (1, 1, 0));
    let id = order["order_id"].as_str().unwrap();
    let pi = order["order"]["payment"]["reference"].as_str().unwrap();
    challenge(
        &stripe,
        pi,
        order["next_action"]["client_secret"].as_str().unwrap(),
        false,
    )
    .await;
    let (s, c) = f
        .post(&format!("/v1/orders/{id}/payment/confirm"), json!({}))
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "payment_failed", "{c}");
    assert_eq!(f.levels(&sku).await, (1, 0, 1), "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    scenario(Backend::Memory).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    scenario(Backend::Postgres).await
}
