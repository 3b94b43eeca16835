//! The fake provider, for the demo and the tests: no network, no state, deterministic references.
//!
//! `payment.outcome` decides what happens:
//! - `succeed` (default) → `captured` at once;
//! - `decline` → `failed`, reason `card declined (fake)`;
//! - `requires_action` → `requires_action` with a `redirect` [`NextAction`] to
//!   `/v1/payments/fake/challenge?ref=<reference>` (the demo's stand-in for a 3-D Secure page); then
//!   [`PaymentProvider::confirm`] → `captured`, or `failed` when the challenge page sends
//!   `{"outcome": "decline"}` back.
//!
//! The reference is `fake_<order id>`; a refund always succeeds with reference
//! `fake_re_<UUID v5 of reference + idempotency key>`, so a retried refund has the same reference. Cancel
//! always succeeds. There are no webhooks ([`Error::NotFound`]).

use super::{
    method_str, PaymentOutcome, PaymentProvider, PaymentRequest, RefundOutcome, WebhookEvent,
};
use crate::model::{Cents, NextAction, PaymentStatus};
use crate::{Error, Result};

/// The failure reason of `outcome: decline`.
pub const DECLINE_REASON: &str = "card declined (fake)";

/// See the module doc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fake;

/// The reference of an order's fake payment.
pub fn reference(order_id: uuid::Uuid) -> String {
    format!("fake_{order_id}")
}

fn outcome(reference: String, status: PaymentStatus, captured: Cents) -> PaymentOutcome {
    PaymentOutcome {
        reference,
        status,
        captured,
        next_action: None,
        failure_reason: (status == PaymentStatus::Failed).then(|| DECLINE_REASON.to_string()),
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn create(&self, request: &PaymentRequest) -> Result<PaymentOutcome> {
        if request.amount <= 0 {
            return Err(Error::bad("amount", "must be positive"));
        }
        let reference = reference(request.order_id);
        match method_str(&request.method, "outcome")?.unwrap_or("succeed") {
            "succeed" => Ok(outcome(reference, PaymentStatus::Captured, request.amount)),
            "decline" => Ok(outcome(reference, PaymentStatus::Failed, 0)),
            "requires_action" => Ok(PaymentOutcome {
                next_action: Some(NextAction {
                    kind: "redirect".into(),
                    url: Some(format!("/v1/payments/fake/challenge?ref={reference}")),
                    client_secret: None,
                    data: serde_json::Value::Null,
                }),
                ..outcome(reference, PaymentStatus::RequiresAction, 0)
            }),
            other => Err(Error::bad(
                "payment.outcome",
                format!("`{other}` is not one of succeed, decline, requires_action"),
            )),
        }
    }

    async fn confirm(
        &self,
        reference: &str,
        request: &PaymentRequest,
        params: &serde_json::Value,
    ) -> Result<PaymentOutcome> {
        if reference != self::reference(request.order_id) {
            return Err(Error::bad(
                "reference",
                format!("`{reference}` is not this order's fake payment"),
            ));
        }
        match params.get("outcome").and_then(|v| v.as_str()) {
            Some("decline") => Ok(outcome(reference.into(), PaymentStatus::Failed, 0)),
            _ => Ok(outcome(
                reference.into(),
                PaymentStatus::Captured,
                request.amount,
            )),
        }
    }

    async fn cancel(&self, _reference: &str) -> Result<()> {
        Ok(())
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Cents,
        _currency: &str,
        idempotency_key: &str,
    ) -> Result<RefundOutcome> {
        if amount <= 0 {
            return Err(Error::bad("amount", "a refund is positive"));
        }
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{reference}\n{idempotency_key}").as_bytes(),
        );
        Ok(RefundOutcome {
            reference: format!("fake_re_{}", id.simple()),
            amount,
        })
    }

    fn webhook(&self, _headers: &axum::http::HeaderMap, _body: &[u8]) -> Result<WebhookEvent> {
        Err(Error::NotFound(
            "the fake provider sends no webhooks".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::testing::request;
    use serde_json::json;

    #[tokio::test]
    async fn payments_fake_outcomes() {
        let r = request(json!({"provider": "fake"}));
        let ok = Fake.create(&r).await.unwrap();
        assert_eq!(ok.status, PaymentStatus::Captured);
        assert_eq!(ok.captured, r.amount);
        assert_eq!(ok.reference, format!("fake_{}", r.order_id));

        let r = request(json!({"provider": "fake", "outcome": "decline"}));
        let no = Fake.create(&r).await.unwrap();
        assert_eq!(no.status, PaymentStatus::Failed);
        assert_eq!(no.failure_reason.as_deref(), Some("card declined (fake)"));
        assert_eq!(no.captured, 0);

        let r = request(json!({"provider": "fake", "outcome": "requires_action"}));
        let ra = Fake.create(&r).await.unwrap();
        assert_eq!(ra.status, PaymentStatus::RequiresAction);
        let next = ra.next_action.clone().unwrap();
        assert_eq!(next.kind, "redirect");
        assert_eq!(
            next.url.as_deref(),
            Some(format!("/v1/payments/fake/challenge?ref={}", ra.reference).as_str())
        );
        let done = Fake.confirm(&ra.reference, &r, &json!({})).await.unwrap();
        assert_eq!(
            (done.status, done.captured),
            (PaymentStatus::Captured, r.amount)
        );
        let failed = Fake
            .confirm(&ra.reference, &r, &json!({"outcome": "decline"}))
            .await
            .unwrap();
        assert_eq!(failed.status, PaymentStatus::Failed);
        assert!(Fake.confirm("fake_other", &r, &json!({})).await.is_err());

        let bad = Fake
            .create(&request(json!({"outcome": "maybe"})))
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::BadInput { ref field, .. } if field == "payment.outcome"));
    }

    #[tokio::test]
    async fn payments_fake_refund_cancel_webhook() {
        let a = Fake.refund("fake_x", 500, "EUR", "k1").await.unwrap();
        let b = Fake.refund("fake_x", 500, "EUR", "k1").await.unwrap();
        let c = Fake.refund("fake_x", 500, "EUR", "k2").await.unwrap();
        assert_eq!(a, b, "deterministic per idempotency key");
        assert_ne!(a.reference, c.reference);
        assert!(a.reference.starts_with("fake_re_"));
        assert!(Fake.refund("fake_x", 0, "EUR", "k3").await.is_err());
        Fake.cancel("fake_x").await.unwrap();
        let err = Fake
            .webhook(&axum::http::HeaderMap::new(), b"{}")
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
    }
}
