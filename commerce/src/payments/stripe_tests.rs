//! Unit tests of the Stripe provider that need no server: status mapping, signature verification, event
//! decoding, method validation, the idempotency replay. The end-to-end tests against localstripe are in
//! `commerce/tests/payments.rs`.

use super::*;
use crate::payments::testing::request;

fn provider(api_base: &str) -> Stripe {
    let config = StripeConfig {
        api_base: api_base.into(),
        webhook_secret: Some(Secret::new("whsec_test")),
        ..StripeConfig::default()
    };
    Stripe::new(&config, Secret::new("sk_test_unit"), Duration::from_secs(2)).unwrap()
}

#[test]
fn intent_status_mapping() {
    let ok = map_intent(&json!({"id": "pi_1", "status": "succeeded", "amount": 1000})).unwrap();
    assert_eq!((ok.status, ok.captured), (PaymentStatus::Captured, 1000));
    let ok = map_intent(
        &json!({"id": "pi_1", "status": "succeeded", "amount": 1000, "amount_received": 900}),
    )
    .unwrap();
    assert_eq!(ok.captured, 900);
    let auth = map_intent(&json!({"id": "pi_1", "status": "requires_capture"})).unwrap();
    assert_eq!(auth.status, PaymentStatus::Authorized);

    let sdk = map_intent(
        &json!({"id": "pi_1", "status": "requires_action", "client_secret": "pi_1_secret_x",
        "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}}}),
    )
    .unwrap();
    assert_eq!(sdk.status, PaymentStatus::RequiresAction);
    let next = sdk.next_action.unwrap();
    assert_eq!(next.kind, "use_stripe_sdk");
    assert_eq!(next.client_secret.as_deref(), Some("pi_1_secret_x"));
    assert_eq!(next.url, None);

    let redirect = map_intent(&json!({"id": "pi_1", "status": "requires_action", "client_secret": "s",
        "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds", "return_url": "https://shop/r"}}}))
    .unwrap();
    let next = redirect.next_action.unwrap();
    assert_eq!(
        (next.kind.as_str(), next.url.as_deref()),
        ("redirect", Some("https://hooks.stripe.com/3ds"))
    );

    let failed = map_intent(&json!({"id": "pi_1", "status": "requires_payment_method",
        "last_payment_error": {"message": "Your card was declined.", "code": "card_declined", "decline_code": "insufficient_funds"}}))
    .unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("Your card was declined. (insufficient_funds)")
    );
    for (status, expected) in [
        ("processing", PaymentStatus::Pending),
        ("requires_confirmation", PaymentStatus::Pending),
        ("something_new", PaymentStatus::Pending),
        ("canceled", PaymentStatus::Cancelled),
    ] {
        let o = map_intent(&json!({"id": "pi_1", "status": status})).unwrap();
        assert_eq!(o.status, expected, "{status}");
        assert_eq!(o.captured, 0);
    }
    assert!(map_intent(&json!({"status": "succeeded"})).is_err());
    assert!(map_intent(&json!({"id": "pi_1/../x", "status": "succeeded"})).is_err());
}

#[test]
fn signatures_verify_as_stripe_documents() {
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let tol = Duration::from_secs(300);
    let now = 1_700_000_000;
    let header = signature_header("whsec_a", now - 10, body);
    assert!(verify_signature(Some(&header), body, "whsec_a", tol, now).is_ok());

    let reason = |r: Result<()>| match r {
        Err(Error::BadInput { field, reason }) => {
            assert_eq!(field, "Stripe-Signature");
            reason
        }
        other => panic!("{other:?}"),
    };
    let tampered = br#"{"id":"evt_1","type":"payment_intent.succeedeD"}"#;
    assert!(reason(verify_signature(
        Some(&header),
        tampered,
        "whsec_a",
        tol,
        now
    ))
    .contains("no v1 signature matches"));
    assert!(
        reason(verify_signature(Some(&header), body, "whsec_b", tol, now))
            .contains("wrong webhook secret")
    );
    let stale = signature_header("whsec_a", now - 301, body);
    assert!(
        reason(verify_signature(Some(&stale), body, "whsec_a", tol, now))
            .contains("beyond the 300s tolerance")
    );
    let future = signature_header("whsec_a", now + 301, body);
    assert!(reason(verify_signature(Some(&future), body, "whsec_a", tol, now)).contains("future"));
    assert_eq!(
        reason(verify_signature(None, body, "whsec_a", tol, now)),
        "missing"
    );
    assert!(
        reason(verify_signature(Some("v1=abcd"), body, "whsec_a", tol, now))
            .contains("no timestamp")
    );
    assert!(reason(verify_signature(
        Some("t=x,v1=ab"),
        body,
        "whsec_a",
        tol,
        now
    ))
    .contains("not a number"));
    assert!(reason(verify_signature(
        Some(&format!("t={now}")),
        body,
        "whsec_a",
        tol,
        now
    ))
    .contains("no v1"));

    // Several signatures (secret rotation) and a v0 scheme: any v1 matching passes.
    let good = header.split_once(",v1=").unwrap().1;
    let rotated = format!(
        "t={},v1={},v0=deadbeef,v1={good}",
        now - 10,
        "00".repeat(32)
    );
    assert!(verify_signature(Some(&rotated), body, "whsec_a", tol, now).is_ok());
    let odd = format!("t={},v1=zz{}", now - 10, &good[2..]);
    assert!(verify_signature(Some(&odd), body, "whsec_a", tol, now).is_err());
}

#[test]
fn events_decode_to_payment_states_or_ignorable() {
    let event = |kind: &str, object: Value| {
        serde_json::to_vec(
            &json!({"id": "evt_9", "object": "event", "type": kind, "data": {"object": object}}),
        )
        .unwrap()
    };
    let pi = |status: &str| json!({"id": "pi_7", "object": "payment_intent", "status": status, "amount": 500});
    let e = decode_event(&event("payment_intent.succeeded", pi("succeeded"))).unwrap();
    assert_eq!(
        (e.id.as_str(), e.reference.as_str(), e.status),
        ("evt_9", "pi_7", PaymentStatus::Captured)
    );
    assert!(!e.is_ignorable());

    let mut failed = pi("requires_payment_method");
    failed["last_payment_error"] =
        json!({"message": "Your card was declined.", "code": "card_declined"});
    let e = decode_event(&event("payment_intent.payment_failed", failed)).unwrap();
    assert_eq!(e.status, PaymentStatus::Failed);
    assert_eq!(
        e.failure_reason.as_deref(),
        Some("Your card was declined. (card_declined)")
    );

    let e = decode_event(&event("payment_intent.canceled", pi("canceled"))).unwrap();
    assert_eq!(e.status, PaymentStatus::Cancelled);
    let e = decode_event(&event(
        "payment_intent.amount_capturable_updated",
        pi("requires_capture"),
    ))
    .unwrap();
    assert_eq!(e.status, PaymentStatus::Authorized);
    let e = decode_event(&event("payment_intent.processing", pi("processing"))).unwrap();
    assert_eq!(e.status, PaymentStatus::Pending);
    let e = decode_event(&event(
        "payment_intent.requires_action",
        pi("requires_action"),
    ))
    .unwrap();
    assert_eq!(e.status, PaymentStatus::RequiresAction);

    let e = decode_event(&event(
        "customer.created",
        json!({"id": "cus_1", "object": "customer"}),
    ))
    .unwrap();
    assert!(e.is_ignorable(), "{e:?}");
    assert_eq!(e.id, "evt_9");
    assert!(decode_event(b"not json").is_err());
    assert!(decode_event(br#"{"type":"payment_intent.succeeded"}"#).is_err());
}

#[test]
fn webhook_needs_the_secret_and_the_header() {
    let body = event_body();
    let p = provider("http://127.0.0.1:9");
    let mut headers = axum::http::HeaderMap::new();
    assert!(matches!(
        p.webhook(&headers, &body),
        Err(Error::BadInput { .. })
    ));
    let now = chrono::Utc::now().timestamp();
    headers.insert(
        "Stripe-Signature",
        signature_header("whsec_test", now, &body).parse().unwrap(),
    );
    let e = p.webhook(&headers, &body).unwrap();
    assert_eq!(
        (e.reference.as_str(), e.status),
        ("pi_7", PaymentStatus::Captured)
    );

    let unconfigured = Stripe::new(
        &StripeConfig::default(),
        Secret::new("sk_test_unit"),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(matches!(
        unconfigured.webhook(&headers, &body),
        Err(Error::NotFound(_))
    ));
}

fn event_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"id": "evt_1", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_7", "object": "payment_intent", "status": "succeeded", "amount": 5}}}))
    .unwrap()
}

#[tokio::test]
async fn payments_stripe_method_validation_precedes_any_request() {
    let p = provider("http://127.0.0.1:9");
    let field = |r: Result<PaymentOutcome>| match r {
        Err(Error::BadInput { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let card = request(json!({"provider": "stripe", "payment_method": "4242424242424242"}));
    assert_eq!(field(p.create(&card).await), "payment.payment_method");
    let none = request(json!({"provider": "stripe"}));
    assert_eq!(field(p.create(&none).await), "payment.payment_method");
    let path = request(json!({"payment_method": "pm_x/../../v1/refunds"}));
    assert_eq!(field(p.create(&path).await), "payment.payment_method");
    let url = request(json!({"payment_method": "pm_card_visa", "return_url": "javascript:x"}));
    assert_eq!(field(p.create(&url).await), "payment.return_url");
    let mut lower = request(json!({"payment_method": "pm_card_visa"}));
    lower.currency = "eur".into();
    assert_eq!(field(p.create(&lower).await), "currency");

    // Valid input reaches the network: nothing listens on port 9 → unavailable, not a panic.
    let ok = request(json!({"payment_method": "pm_card_visa"}));
    assert!(matches!(p.create(&ok).await, Err(Error::Unavailable(_))));
    assert!(matches!(
        p.cancel("ch_1").await,
        Err(Error::BadInput { .. })
    ));
    assert!(matches!(
        p.refund("pi_1", 0, "EUR", "k").await,
        Err(Error::BadInput { .. })
    ));
}
