//! Scalapay (pay in 3 / 4): API v2 orders, capture, refund and void. `Authorization: Bearer <api key>`,
//! JSON, amounts as decimal strings (`{"amount": "829.90", "currency": "EUR"}`); euro only.
//!
//! # Flow
//! 1. [`PaymentProvider::create`]: `POST /v2/orders` (with `Idempotency-Key`) → `token` + `checkoutUrl`;
//!    outcome `requires_action` with a `redirect` [`NextAction`] to the `checkoutUrl`, reference = the
//!    token. The checkout's `payment` object carries `return_url` (required: Scalapay's
//!    `merchant.redirectConfirmUrl`), `cancel_url` (optional `redirectCancelUrl`, default `return_url`),
//!    `phone` (required: Scalapay needs `consumer.phoneNumber` and `shipping.phoneNumber`, which the order
//!    model does not hold) and `product` (`pay-in-3` default, `pay-in-4`, `later`).
//! 2. Scalapay sends the shopper back to `return_url?orderToken=…&status=SUCCESS` (or to the cancel URL);
//!    the storefront passes `{"order_token": …, "status": …}` (`orderToken` accepted too) and
//!    [`PaymentProvider::confirm`] captures: `POST /v2/payments/capture {token, merchantReference}` →
//!    `status: APPROVED` → captured; any other status, or a refusal (4xx with an `errorCode`), → failed with
//!    Scalapay's message. `status: FAILURE` from the redirect → failed without a capture attempt. A token
//!    that is not this order's → `payment.order_token`.
//! 3. [`PaymentProvider::cancel`]: `POST /v2/payments/{token}/void`; an order Scalapay does not know any more
//!    (422 `invalid_token`) holds nothing.
//! 4. [`PaymentProvider::refund`]: `POST /v2/payments/{token}/refund {refundAmount, merchantRefundReference}`
//!    with `Idempotency-Key` → `refundToken`; a refusal (4xx with an `errorCode` other than a validation
//!    error) → [`Error::Conflict`].
//!
//! The order: `totalAmount` (= Σ lines; a split-payment order is refused), `taxAmount` (Σ VAT),
//! `consumer {givenNames, surname, email, phoneNumber}`, `billing` / `shipping {name, line1, suburb,
//! postcode, countryCode, phoneNumber}`, `items [{name, category, sku, quantity, price}]`,
//! `merchant {redirectConfirmUrl, redirectCancelUrl}`, `merchantReference` (our order id), `type: online`,
//! `product`.
//!
//! Errors: Scalapay answers `{"errorCode", "errorId", "message", "httpStatusCode"}`, and a bare
//! `"Unauthorized"` with 401 → [`Error::Internal`] (check the key); `api_validationerror` (our request) →
//! [`Error::Internal`]; 409 `conflicting_operation_in_progress` → [`Error::Unavailable`] (retry). No
//! webhooks here ([`Error::NotFound`]).
//!
//! Docs followed: <https://developers.scalapay.com/reference/post_v2-orders>,
//! <https://developers.scalapay.com/reference/post_v2-payments-capture>,
//! <https://developers.scalapay.com/reference/post_v2-payments-token-refund>,
//! <https://developers.scalapay.com/reference/post_v2-payments-token-void>,
//! <https://developers.scalapay.com/reference/api-architecture> (error envelope),
//! <https://developers.scalapay.com/docs/test-the-order-flow>.

use std::time::Duration;

use serde_json::{json, Value};

use super::config::{join, Secret};
use super::http::{self, is_http_url, is_id, Reply};
use super::{
    lines_must_match_amount, method_str, split_name, PaymentOutcome, PaymentProvider,
    PaymentRequest, RefundOutcome, WebhookEvent,
};
use crate::model::{Address, Cents, NextAction, PaymentStatus};
use crate::{Error, Result};

/// The Scalapay provider (see the module doc).
pub struct Scalapay {
    client: reqwest::Client,
    api_base: String,
    api_key: Secret,
}

impl std::fmt::Debug for Scalapay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scalapay")
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// `12345` → `"123.45"` (Scalapay's amount strings, two decimals).
pub fn decimal(cents: Cents) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

impl Scalapay {
    pub fn new(api_base: &str, api_key: Secret, timeout: Duration) -> Result<Scalapay> {
        Ok(Scalapay {
            client: http::client(timeout)?,
            api_base: api_base.to_string(),
            api_key,
        })
    }

    async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> Result<Reply> {
        let mut request = self
            .client
            .post(join(&self.api_base, path))
            .bearer_auth(self.api_key.expose())
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        http::send("scalapay", request).await
    }
}

fn error_code(reply: &Reply) -> &str {
    reply.body["errorCode"].as_str().unwrap_or("")
}

/// `errorCode: message` of a Scalapay error body (the message may be a string or a validation object).
fn message(reply: &Reply) -> String {
    let body = &reply.body;
    let text = match &body["message"] {
        Value::String(s) => s.clone(),
        Value::Null => http::short(body),
        other => http::short(other),
    };
    match body["errorCode"].as_str() {
        Some(code) => format!("{code}: {text}"),
        None => format!("HTTP {}: {text}", reply.status),
    }
}

/// A Scalapay 4xx we did not expect: our request or our key is wrong.
fn failure(what: &str, reply: &Reply) -> Error {
    match reply.status {
        401 | 403 => Error::Internal(format!(
            "scalapay: {what}: unauthorized (check LUSSO_SCALAPAY_API_KEY): {}",
            message(reply)
        )),
        409 => Error::Unavailable(format!("scalapay: {what}: {}", message(reply))),
        _ => Error::Internal(format!("scalapay: {what}: {}", message(reply))),
    }
}

/// A refusal of the operation itself (not our request's shape, not our key, not a busy order).
fn refused(reply: &Reply) -> bool {
    matches!(reply.status, 400..=499)
        && !matches!(reply.status, 401 | 403 | 409)
        && !matches!(error_code(reply), "" | "api_validationerror")
}

fn money(cents: Cents, currency: &str) -> Value {
    json!({"amount": decimal(cents), "currency": currency})
}

fn address(a: &Address, phone: &str) -> Value {
    json!({
        "name": a.name,
        "line1": a.street,
        "suburb": a.city,
        "postcode": a.postal_code,
        "countryCode": a.country,
        "phoneNumber": phone,
    })
}

/// The `POST /v2/orders` body (see the module doc); validates the `payment` fields it needs.
pub fn order_body(request: &PaymentRequest) -> Result<Value> {
    lines_must_match_amount("scalapay", request)?;
    if request.currency != "EUR" {
        return Err(Error::bad(
            "payment.provider",
            format!("scalapay charges EUR only, not {}", request.currency),
        ));
    }
    fn url<'a>(method: &'a Value, field: &str) -> Result<Option<&'a str>> {
        match method_str(method, field)? {
            Some(u) if !is_http_url(u) => Err(Error::bad(
                format!("payment.{field}"),
                "must be an absolute http(s) URL",
            )),
            other => Ok(other),
        }
    }
    let confirm_url = url(&request.method, "return_url")?.ok_or_else(|| {
        Error::bad(
            "payment.return_url",
            "required: where Scalapay sends the shopper back",
        )
    })?;
    let cancel_url = url(&request.method, "cancel_url")?.unwrap_or(confirm_url);
    let phone = method_str(&request.method, "phone")?
        .map(str::trim)
        .ok_or_else(|| {
            Error::bad(
                "payment.phone",
                "required by Scalapay: the shopper's phone number",
            )
        })?;
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if !(6..=15).contains(&digits)
        || !phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c))
    {
        return Err(Error::bad(
            "payment.phone",
            "must be a phone number, e.g. +39 02 1234567",
        ));
    }
    let product = method_str(&request.method, "product")?.unwrap_or("pay-in-3");
    if !["pay-in-3", "pay-in-4", "later"].contains(&product) {
        return Err(Error::bad(
            "payment.product",
            "one of pay-in-3, pay-in-4, later",
        ));
    }
    let (given, surname) = split_name(&request.buyer.billing.name);
    let items: Vec<Value> = request
        .lines
        .iter()
        .map(|l| {
            json!({
                "name": l.description,
                "category": "clothing",
                "sku": l.sku,
                "quantity": l.quantity,
                "price": money(l.unit_price, &request.currency),
            })
        })
        .collect();
    let tax: Cents = request.lines.iter().map(|l| l.vat).sum();
    Ok(json!({
        "totalAmount": money(request.amount, &request.currency),
        "taxAmount": money(tax, &request.currency),
        "consumer": {
            "givenNames": given,
            "surname": surname,
            "email": request.buyer.email,
            "phoneNumber": phone,
        },
        "billing": address(&request.buyer.billing, phone),
        "shipping": address(&request.shipping, phone),
        "items": items,
        "merchant": {"redirectConfirmUrl": confirm_url, "redirectCancelUrl": cancel_url},
        "merchantReference": request.order_id.to_string(),
        "type": "online",
        "product": product,
    }))
}

fn outcome(
    reference: &str,
    status: PaymentStatus,
    captured: Cents,
    reason: Option<String>,
) -> PaymentOutcome {
    PaymentOutcome {
        reference: reference.to_string(),
        status,
        captured,
        next_action: None,
        failure_reason: reason,
    }
}

fn check_token(token: &str) -> Result<()> {
    if is_id(token) {
        Ok(())
    } else {
        Err(Error::bad(
            "reference",
            format!("`{token}` is not a Scalapay token"),
        ))
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Scalapay {
    fn name(&self) -> &'static str {
        "scalapay"
    }

    async fn create(&self, request: &PaymentRequest) -> Result<PaymentOutcome> {
        let body = order_body(request)?;
        let reply = self
            .post("/v2/orders", &body, Some(&request.idempotency_key))
            .await?;
        if !reply.ok() {
            if refused(&reply) {
                return Err(Error::PaymentFailed {
                    provider: "scalapay".into(),
                    reason: message(&reply),
                });
            }
            return Err(failure("create order", &reply));
        }
        let token = reply.body["token"].as_str().filter(|t| is_id(t));
        let checkout = reply.body["checkoutUrl"]
            .as_str()
            .filter(|u| is_http_url(u));
        let (Some(token), Some(checkout)) = (token, checkout) else {
            return Err(Error::Internal(format!(
                "scalapay: an order without token / checkoutUrl: {}",
                http::short(&reply.body)
            )));
        };
        Ok(PaymentOutcome {
            next_action: Some(NextAction {
                kind: "redirect".into(),
                url: Some(checkout.to_string()),
                client_secret: None,
                data: json!({"token": token, "expires": reply.body["expires"]}),
            }),
            ..outcome(token, PaymentStatus::RequiresAction, 0, None)
        })
    }

    async fn confirm(
        &self,
        reference: &str,
        request: &PaymentRequest,
        params: &Value,
    ) -> Result<PaymentOutcome> {
        check_token(reference)?;
        let returned = params["order_token"]
            .as_str()
            .or(params["orderToken"].as_str());
        if let Some(t) = returned {
            if t != reference {
                return Err(Error::bad(
                    "payment.order_token",
                    "is not the Scalapay token of this order",
                ));
            }
        }
        if params["status"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("FAILURE"))
        {
            return Ok(outcome(
                reference,
                PaymentStatus::Failed,
                0,
                Some("the shopper cancelled or was declined at Scalapay".into()),
            ));
        }
        let body = json!({"token": reference, "merchantReference": request.order_id.to_string()});
        let key = format!("{}:capture", request.idempotency_key);
        let reply = self.post("/v2/payments/capture", &body, Some(&key)).await?;
        if reply.ok() {
            return Ok(match reply.body["status"].as_str().unwrap_or("") {
                "APPROVED" => outcome(reference, PaymentStatus::Captured, request.amount, None),
                other => outcome(
                    reference,
                    PaymentStatus::Failed,
                    0,
                    Some(format!(
                        "Scalapay did not approve the capture (status {other})"
                    )),
                ),
            });
        }
        if refused(&reply) {
            return Ok(outcome(
                reference,
                PaymentStatus::Failed,
                0,
                Some(message(&reply)),
            ));
        }
        Err(failure("capture", &reply))
    }

    async fn cancel(&self, reference: &str) -> Result<()> {
        check_token(reference)?;
        let body = json!({});
        let key = format!("void-{reference}");
        let reply = self
            .post(&format!("/v2/payments/{reference}/void"), &body, Some(&key))
            .await?;
        if reply.ok() || (reply.status == 422 && error_code(&reply) == "invalid_token") {
            return Ok(());
        }
        if refused(&reply) {
            return Err(Error::Conflict(format!(
                "scalapay: order {reference} cannot be voided: {}",
                message(&reply)
            )));
        }
        Err(failure("void", &reply))
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Cents,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<RefundOutcome> {
        check_token(reference)?;
        if currency != "EUR" {
            return Err(Error::bad("currency", "scalapay payments are in EUR"));
        }
        if amount <= 0 {
            return Err(Error::bad("amount", "a refund is positive"));
        }
        let body = json!({
            "refundAmount": money(amount, currency),
            "merchantRefundReference": idempotency_key,
        });
        let path = format!("/v2/payments/{reference}/refund");
        let reply = self.post(&path, &body, Some(idempotency_key)).await?;
        if reply.ok() {
            return Ok(RefundOutcome {
                reference: reply.body["refundToken"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                amount,
            });
        }
        if reply.status == 422 && error_code(&reply) == "invalid_token" {
            return Err(Error::NotFound(format!("scalapay: no order `{reference}`")));
        }
        if refused(&reply) {
            return Err(Error::Conflict(format!(
                "scalapay: refund refused: {}",
                message(&reply)
            )));
        }
        Err(failure("refund", &reply))
    }

    fn webhook(&self, _headers: &axum::http::HeaderMap, _body: &[u8]) -> Result<WebhookEvent> {
        Err(Error::NotFound(
            "scalapay webhooks are not handled here".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::testing::request;

    fn method() -> Value {
        json!({"provider": "scalapay", "return_url": "https://shop.example/return", "phone": "+39 02 1234567"})
    }

    #[test]
    fn payments_scalapay_amounts_are_two_decimal_strings() {
        assert_eq!(decimal(82_990), "829.90");
        assert_eq!(decimal(5), "0.05");
        assert_eq!(decimal(100), "1.00");
        assert_eq!(decimal(-250), "-2.50");
    }

    #[test]
    fn payments_scalapay_order_body() {
        let r = request(method());
        let body = order_body(&r).unwrap();
        assert_eq!(
            body["totalAmount"],
            json!({"amount": "829.90", "currency": "EUR"})
        );
        assert_eq!(
            body["items"][0]["price"],
            json!({"amount": "350.00", "currency": "EUR"})
        );
        assert_eq!(body["items"][0]["quantity"], json!(2));
        assert_eq!(body["consumer"]["givenNames"], json!("Maria Grazia"));
        assert_eq!(body["consumer"]["surname"], json!("Rossi"));
        assert_eq!(body["shipping"]["countryCode"], json!("IT"));
        assert_eq!(
            body["merchant"]["redirectCancelUrl"],
            json!("https://shop.example/return")
        );
        assert_eq!(body["product"], json!("pay-in-3"));
        assert_eq!(body["merchantReference"], json!(r.order_id.to_string()));
    }

    #[test]
    fn payments_scalapay_validates_the_payment_object() {
        let field = |m: Value| match order_body(&request(m)) {
            Err(Error::BadInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(json!({"phone": "+39 333 1234567"})),
            "payment.return_url"
        );
        assert_eq!(
            field(json!({"return_url": "ftp://x", "phone": "+39 333 1234567"})),
            "payment.return_url"
        );
        assert_eq!(field(json!({"return_url": "https://s/r"})), "payment.phone");
        assert_eq!(
            field(json!({"return_url": "https://s/r", "phone": "call me"})),
            "payment.phone"
        );
        let mut m = method();
        m["product"] = json!("pay-in-12");
        assert_eq!(field(m), "payment.product");
        let mut usd = request(method());
        usd.currency = "USD".into();
        assert!(
            matches!(order_body(&usd), Err(Error::BadInput { ref field, .. }) if field == "payment.provider")
        );
    }

    #[tokio::test]
    async fn payments_scalapay_confirm_checks_the_returned_token_first() {
        let s = Scalapay::new(
            "http://127.0.0.1:9",
            Secret::new("k"),
            Duration::from_secs(2),
        )
        .unwrap();
        let r = request(method());
        let err = s
            .confirm("TOKEN1", &r, &json!({"order_token": "OTHER"}))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadInput { ref field, .. } if field == "payment.order_token"));
        let failed = s
            .confirm(
                "TOKEN1",
                &r,
                &json!({"orderToken": "TOKEN1", "status": "FAILURE"}),
            )
            .await
            .unwrap();
        assert_eq!(failed.status, PaymentStatus::Failed);
        assert!(matches!(
            s.confirm("TOKEN1", &r, &json!({})).await,
            Err(Error::Unavailable(_))
        ));
    }
}
