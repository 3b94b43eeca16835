//! End-to-end tests of the payment providers through the [`PaymentProvider`] seam:
//! - Stripe against localstripe (`LUSSO_STRIPE_URL`, started by `bash scripts/services.sh up`): frictionless
//!   card, 3-D Secure 2 challenge completed as the browser does, decline, refunds, signed webhooks delivered
//!   by localstripe to a server in the test, idempotency keys, cancel, bad input and bad credentials;
//! - Klarna and Scalapay against the in-process doubles of `doubles/`, which validate what is sent (those
//!   tests live beside their double: `doubles/klarna.rs`, `doubles/scalapay.rs`).
//!
//! Every test uses fresh credentials (localstripe accepts any `sk_…`) and fresh order ids.

mod doubles;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use commerce::model::{Address, Buyer, BuyerKind, Cents, OrderLine, PaymentStatus, Totals};
use commerce::payments::stripe::{signature_header, Stripe};
use commerce::payments::{
    PaymentProvider, PaymentRequest, PaymentsConfig, Providers, Secret, StripeConfig,
};
use commerce::Error;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

fn stripe_url() -> String {
    match std::env::var("LUSSO_STRIPE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "LUSSO_STRIPE_URL is not set: the Stripe tests run against localstripe. Run `bash scripts/services.sh up` \
             and `source ~/.local/share/lusso/services/env.sh` first"
        ),
    }
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn address() -> Address {
    Address {
        name: "Giulia Bianchi".into(),
        street: "Corso Venezia 12".into(),
        city: "Milano".into(),
        postal_code: "20121".into(),
        province: Some("MI".into()),
        country: "IT".into(),
    }
}

/// An order of `units` × 189.00 (22 % IVA included) plus one 45.50 line, with a fresh id and key.
fn request(method: Value, units: u32) -> PaymentRequest {
    let line = |no: u32, sku: &str, qty: u32, unit: Cents| {
        let gross = unit * Cents::from(qty);
        let net = (gross * 10_000 + 6_100) / 12_200;
        OrderLine {
            line_no: no,
            sku: sku.into(),
            product_id: format!("prod-{sku}"),
            description: format!("Borsa {sku}"),
            size: "TU".into(),
            quantity: qty,
            tax_class: pipelines::catalog::TaxClass::Standard,
            unit_price: unit,
            gross,
            vat_rate_bp: 2200,
            net,
            vat: gross - net,
            natura: None,
        }
    };
    let lines = vec![
        line(1, "LX-100", units, 18_900),
        line(2, "LX-200", 1, 4_550),
    ];
    let gross: Cents = lines.iter().map(|l| l.gross).sum();
    let vat: Cents = lines.iter().map(|l| l.vat).sum();
    PaymentRequest {
        order_id: uuid::Uuid::new_v4(),
        amount: gross,
        currency: "EUR".into(),
        market: "IT".into(),
        locale: "it-IT".into(),
        idempotency_key: fresh("checkout-"),
        method,
        buyer: Buyer {
            kind: BuyerKind::Consumer,
            email: "giulia@example.it".into(),
            codice_fiscale: None,
            partita_iva: None,
            sdi_code: None,
            pec: None,
            billing: address(),
        },
        shipping: address(),
        lines,
        totals: Totals {
            net: gross - vat,
            vat,
            gross,
            vat_collected: vat,
            amount_due: gross,
        },
    }
}

fn stripe_at(api_base: &str, secret_key: &str, webhook_secret: Option<&str>) -> Stripe {
    let config = StripeConfig {
        api_base: api_base.into(),
        webhook_secret: webhook_secret.map(Secret::new),
        ..StripeConfig::default()
    };
    Stripe::new(&config, Secret::new(secret_key), TIMEOUT).unwrap()
}

fn stripe() -> Stripe {
    stripe_at(&stripe_url(), &fresh("sk_test_"), None)
}

fn pay_with(pm: &str) -> Value {
    json!({"provider": "stripe", "payment_method": pm})
}

/// What Stripe.js does in the browser: a PaymentMethod for a test card (localstripe wants the secret key).
async fn card_payment_method(number: &str) -> String {
    let body = format!(
        "type=card&card%5Bnumber%5D={number}&card%5Bexp_month%5D=12&card%5Bexp_year%5D=2031&card%5Bcvc%5D=123"
    );
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/v1/payment_methods", stripe_url()))
        .bearer_auth(fresh("sk_test_"))
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

/// The browser completes (or fails) the 3-D Secure challenge, as localstripe's Stripe.js shim does in
/// `confirmCardPayment`: publishable key and client secret, no secret key.
async fn complete_challenge(payment_intent: &str, client_secret: &str, success: bool) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/payment_intents/{payment_intent}/_authenticate?success={success}",
            stripe_url()
        ))
        .body(json!({"key": "pk_test_lusso", "client_secret": client_secret}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn stripe_frictionless_card_is_captured() {
    let stripe = stripe();
    let r = request(pay_with("pm_card_visa"), 2);
    let outcome = stripe.create(&r).await.unwrap();
    assert_eq!(outcome.status, PaymentStatus::Captured, "{outcome:?}");
    assert_eq!(outcome.captured, r.amount);
    assert!(outcome.reference.starts_with("pi_"));
    assert!(outcome.next_action.is_none() && outcome.failure_reason.is_none());
    let again = stripe
        .confirm(&outcome.reference, &r, &json!({}))
        .await
        .unwrap();
    assert_eq!(
        again, outcome,
        "confirm re-reads the same captured PaymentIntent"
    );
    let other_order = request(pay_with("pm_card_visa"), 2);
    assert!(matches!(
        stripe
            .confirm(&outcome.reference, &other_order, &json!({}))
            .await,
        Err(Error::Internal(_))
    ));
}

#[tokio::test]
async fn stripe_3ds2_challenge_then_confirm_captures() {
    let stripe = stripe();
    for card in ["4000002760003184", "4000002500003155"] {
        let pm = card_payment_method(card).await;
        let r = request(pay_with(&pm), 1);
        let outcome = stripe.create(&r).await.unwrap();
        assert_eq!(outcome.status, PaymentStatus::RequiresAction, "{outcome:?}");
        assert_eq!(outcome.captured, 0);
        let next = outcome.next_action.clone().unwrap();
        assert_eq!(next.kind, "use_stripe_sdk");
        let secret = next.client_secret.clone().unwrap();
        assert!(secret.starts_with(&format!("{}_secret_", outcome.reference)));

        let pending = stripe
            .confirm(&outcome.reference, &r, &json!({}))
            .await
            .unwrap();
        assert_eq!(
            pending.status,
            PaymentStatus::RequiresAction,
            "not yet authenticated"
        );

        complete_challenge(&outcome.reference, &secret, true).await;
        let done = stripe
            .confirm(&outcome.reference, &r, &json!({}))
            .await
            .unwrap();
        assert_eq!(
            (done.status, done.captured),
            (PaymentStatus::Captured, r.amount),
            "{done:?}"
        );
        assert_eq!(done.reference, outcome.reference);
    }

    // The shopper fails the challenge: the payment fails with Stripe's reason.
    let pm = card_payment_method("4000000000003220").await;
    let r = request(pay_with(&pm), 1);
    let outcome = stripe.create(&r).await.unwrap();
    let secret = outcome.next_action.unwrap().client_secret.unwrap();
    complete_challenge(&outcome.reference, &secret, false).await;
    let failed = stripe
        .confirm(&outcome.reference, &r, &json!({}))
        .await
        .unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    let reason = failed.failure_reason.unwrap();
    assert!(reason.contains("authentication"), "{reason}");
}

#[tokio::test]
async fn stripe_declined_card_fails_with_reason() {
    let stripe = stripe();
    let r = request(pay_with("pm_card_chargeCustomerFail"), 1);
    let outcome = stripe.create(&r).await.unwrap();
    assert_eq!(outcome.status, PaymentStatus::Failed, "{outcome:?}");
    assert!(
        outcome.reference.starts_with("pi_"),
        "the decline keeps its PaymentIntent"
    );
    assert_eq!(outcome.captured, 0);
    assert_eq!(
        outcome.failure_reason.as_deref(),
        Some("Your card was declined. (card_declined)")
    );
    // 3-D Secure passed, then the charge is declined.
    let pm = card_payment_method("4000008260003178").await;
    let r = request(pay_with(&pm), 1);
    let outcome = stripe.create(&r).await.unwrap();
    let secret = outcome.next_action.unwrap().client_secret.unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/payment_intents/{}/_authenticate?success=true",
            stripe_url(),
            outcome.reference
        ))
        .body(json!({"key": "pk_test_lusso", "client_secret": secret}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        402,
        "localstripe answers the charge's decline"
    );
    let failed = stripe
        .confirm(&outcome.reference, &r, &json!({}))
        .await
        .unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert!(failed.failure_reason.unwrap().contains("declined"));
}

#[tokio::test]
async fn stripe_refunds_partial_then_full_and_never_more() {
    let stripe = stripe();
    let r = request(pay_with("pm_card_visa"), 2);
    let paid = stripe.create(&r).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Captured);
    let first = stripe
        .refund(&paid.reference, 5_000, "EUR", &fresh("refund-"))
        .await
        .unwrap();
    assert!(first.reference.starts_with("re_"));
    assert_eq!(first.amount, 5_000);
    let retried_key = fresh("refund-");
    let rest = stripe
        .refund(&paid.reference, r.amount - 5_000, "EUR", &retried_key)
        .await
        .unwrap();
    assert_eq!(rest.amount, r.amount - 5_000);
    assert_ne!(rest.reference, first.reference);
    // A retry of the same refund is answered as the first time, not refused as an over-refund.
    let retry = stripe
        .refund(&paid.reference, r.amount - 5_000, "EUR", &retried_key)
        .await
        .unwrap();
    assert_eq!(retry, rest);
    let over = stripe
        .refund(&paid.reference, 1, "EUR", &fresh("refund-"))
        .await
        .unwrap_err();
    assert!(
        matches!(over, Error::Conflict(ref m) if m.contains("exceeds")),
        "{over:?}"
    );
    let wrong_currency = stripe
        .refund(&paid.reference, 1, "USD", &fresh("refund-"))
        .await
        .unwrap_err();
    assert!(matches!(wrong_currency, Error::BadInput { ref field, .. } if field == "currency"));

    // Nothing to refund on a declined payment.
    let declined = stripe
        .create(&request(pay_with("pm_card_chargeCustomerFail"), 1))
        .await
        .unwrap();
    let err = stripe
        .refund(&declined.reference, 100, "EUR", &fresh("refund-"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn stripe_cancel_releases_an_uncaptured_payment_intent() {
    let stripe = stripe();
    let pm = card_payment_method("4000002760003184").await;
    let r = request(pay_with(&pm), 1);
    let waiting = stripe.create(&r).await.unwrap();
    assert_eq!(waiting.status, PaymentStatus::RequiresAction);
    stripe.cancel(&waiting.reference).await.unwrap();
    stripe.cancel(&waiting.reference).await.unwrap();
    let cancelled = stripe
        .confirm(&waiting.reference, &r, &json!({}))
        .await
        .unwrap();
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);

    let paid = stripe
        .create(&request(pay_with("pm_card_visa"), 1))
        .await
        .unwrap();
    let err = stripe.cancel(&paid.reference).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains("refund")),
        "{err:?}"
    );
    assert!(matches!(
        stripe.cancel("pi_doesnotexist0").await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn stripe_rejects_bad_methods_and_bad_credentials() {
    let stripe = stripe();
    let field = |e: Error| match e {
        Error::BadInput { field, .. } => field,
        other => panic!("{other:?}"),
    };
    let card = request(pay_with("4242424242424242"), 1);
    assert_eq!(
        field(stripe.create(&card).await.unwrap_err()),
        "payment.payment_method"
    );
    let unknown = request(pay_with("pm_doesnotexist"), 1);
    assert_eq!(
        field(stripe.create(&unknown).await.unwrap_err()),
        "payment.payment_method"
    );

    let wrong_key = stripe_at(&stripe_url(), "not_a_secret_key", None);
    let err = wrong_key
        .create(&request(pay_with("pm_card_visa"), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Internal(ref m) if m.contains("authentication failed")),
        "{err:?}"
    );

    let down = stripe_at("http://127.0.0.1:9", &fresh("sk_test_"), None);
    let err = down
        .create(&request(pay_with("pm_card_visa"), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

/// Starts a loopback server that hands every POST it receives (headers, raw body) to the returned channel.
async fn webhook_sink() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let router = axum::Router::new().route(
        "/stripe/webhook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                StatusCode::OK
            }
        }),
    );
    let base = doubles::serve(router).await;
    (format!("{base}/stripe/webhook"), rx)
}

/// The next delivered event about `payment_intent` (other tests' events are skipped).
async fn event_for(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    payment_intent: &str,
    kind: &str,
) -> (HeaderMap, Bytes) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (headers, body) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} webhook for {payment_intent} within 30 s"))
            .expect("sink open");
        let event: Value = serde_json::from_slice(&body).unwrap();
        if event["data"]["object"]["id"] == payment_intent && event["type"] == kind {
            return (headers, body);
        }
    }
}

#[tokio::test]
async fn stripe_webhooks_from_localstripe_verify() {
    let secret = fresh("whsec_");
    let (url, mut rx) = webhook_sink().await;
    // One registration id for this test: re-registering replaces it, so old runs' endpoints do not pile up.
    let registered = reqwest::Client::new()
        .post(format!(
            "{}/_config/webhooks/lusso-commerce-payments-test",
            stripe_url()
        ))
        .json(&json!({"url": url, "secret": secret,
                      "events": ["payment_intent.succeeded", "payment_intent.payment_failed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let stripe = stripe_at(&stripe_url(), &fresh("sk_test_"), Some(&secret));

    let paid = stripe
        .create(&request(pay_with("pm_card_visa"), 1))
        .await
        .unwrap();
    let (headers, body) = event_for(&mut rx, &paid.reference, "payment_intent.succeeded").await;
    let event = stripe.webhook(&headers, &body).unwrap();
    assert!(event.id.starts_with("evt_"), "{event:?}");
    assert_eq!(event.reference, paid.reference);
    assert_eq!(event.status, PaymentStatus::Captured);
    assert!(!event.is_ignorable());

    let bad_field = |r: commerce::Result<commerce::payments::WebhookEvent>| match r {
        Err(Error::BadInput { field, reason }) => {
            assert_eq!(field, "Stripe-Signature");
            reason
        }
        other => panic!("{other:?}"),
    };
    // Tampered body.
    let tampered = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("succeeded", "succeedeD");
    assert!(bad_field(stripe.webhook(&headers, tampered.as_bytes()))
        .contains("no v1 signature matches"));
    // Wrong secret.
    let other = stripe_at(&stripe_url(), &fresh("sk_test_"), Some(&fresh("whsec_")));
    assert!(bad_field(other.webhook(&headers, &body)).contains("wrong webhook secret"));
    // Stale timestamp, correctly signed (a replay), and the same body freshly signed as a control.
    let now = chrono::Utc::now().timestamp();
    let mut stale = HeaderMap::new();
    stale.insert(
        "Stripe-Signature",
        signature_header(&secret, now - 600, &body).parse().unwrap(),
    );
    assert!(bad_field(stripe.webhook(&stale, &body)).contains("tolerance"));
    let mut fresh_headers = HeaderMap::new();
    fresh_headers.insert(
        "Stripe-Signature",
        signature_header(&secret, now, &body).parse().unwrap(),
    );
    assert_eq!(stripe.webhook(&fresh_headers, &body).unwrap(), event);
    // Missing header.
    assert_eq!(
        bad_field(stripe.webhook(&HeaderMap::new(), &body)),
        "missing"
    );

    let declined = stripe
        .create(&request(pay_with("pm_card_chargeCustomerFail"), 1))
        .await
        .unwrap();
    let (headers, body) = event_for(
        &mut rx,
        &declined.reference,
        "payment_intent.payment_failed",
    )
    .await;
    let event = stripe.webhook(&headers, &body).unwrap();
    assert_eq!(event.reference, declined.reference);
    assert_eq!(event.status, PaymentStatus::Failed);
    assert!(event.failure_reason.unwrap().contains("declined"));
}

/// A pass-through proxy in front of localstripe recording `(method, path, Idempotency-Key)` of each request.
/// `(method, path, Idempotency-Key)` of each request the proxy forwarded.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

async fn recording_proxy(target: String) -> (String, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = reqwest::Client::new();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (log, client, target) = (log.clone(), client.clone(), target.clone());
        async move {
            let key = headers
                .get("Idempotency-Key")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            log.lock()
                .unwrap()
                .push((method.to_string(), uri.path().to_string(), key));
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let mut forward = client
                .request(method, format!("{target}{path}"))
                .body(body.to_vec());
            for name in [
                "authorization",
                "content-type",
                "idempotency-key",
                "stripe-version",
            ] {
                if let Some(v) = headers.get(name) {
                    forward = forward.header(name, v.as_bytes());
                }
            }
            let reply = forward.send().await.unwrap();
            let status = StatusCode::from_u16(reply.status().as_u16()).unwrap();
            (
                status,
                [("content-type", "application/json")],
                reply.bytes().await.unwrap().to_vec(),
            )
        }
    };
    let url = doubles::serve(axum::Router::new().fallback(handler)).await;
    (url, seen)
}

#[tokio::test]
async fn stripe_same_idempotency_key_gives_the_same_payment_intent() {
    let (proxy, seen) = recording_proxy(stripe_url()).await;
    let stripe = stripe_at(&proxy, &fresh("sk_test_"), None);
    let r = request(pay_with("pm_card_visa"), 1);
    let first = stripe.create(&r).await.unwrap();
    let second = stripe.create(&r).await.unwrap();
    assert_eq!(first, second);
    let creates: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/v1/payment_intents")
        .cloned()
        .collect();
    assert_eq!(
        creates.len(),
        1,
        "the retry is answered from the key: {creates:?}"
    );
    assert_eq!(
        creates[0].2.as_deref(),
        Some(r.idempotency_key.as_str()),
        "the key is sent to Stripe"
    );

    let mut changed = r.clone();
    changed.amount += 100;
    let err = stripe.create(&changed).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains("idempotency key")),
        "{err:?}"
    );

    let mut other = r.clone();
    other.idempotency_key = fresh("checkout-");
    let third = stripe.create(&other).await.unwrap();
    assert_ne!(third.reference, first.reference);

    let refund_key = fresh("refund-");
    stripe
        .refund(&first.reference, 100, "EUR", &refund_key)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|(m, p, k)| m == "POST"
        && p == "/v1/refunds"
        && k.as_deref() == Some(refund_key.as_str())));
}

#[tokio::test]
async fn providers_from_config_register_by_credentials() {
    let env = |k: &str| match k {
        "LUSSO_STRIPE_URL" => Some(stripe_url()),
        "LUSSO_STRIPE_SECRET_KEY" => Some(fresh("sk_test_")),
        "LUSSO_SCALAPAY_API_KEY" => Some("key".into()),
        _ => None,
    };
    let config = PaymentsConfig::default().with_env(env).unwrap();
    let providers = Providers::from_config(&config)
        .unwrap()
        .with(Arc::new(commerce::payments::fake::Fake));
    assert_eq!(providers.names(), vec!["stripe", "scalapay", "fake"]);
    let stripe = providers.get("stripe").unwrap();
    let paid = stripe
        .create(&request(pay_with("pm_card_visa"), 1))
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Captured);
    let fake = providers.get("fake").unwrap();
    let demo = fake
        .create(&request(json!({"provider": "fake"}), 1))
        .await
        .unwrap();
    assert_eq!(demo.status, PaymentStatus::Captured);
    assert!(matches!(
        providers.get("klarna"),
        Err(Error::BadInput { .. })
    ));
}
