//! Klarna: Klarna Payments API v1 (session → widget authorization → order) and the Order Management API
//! (capture, refund, cancel). HTTP Basic auth with the API username and password; JSON; amounts in minor
//! units.
//!
//! # Flow
//! 1. [`PaymentProvider::create`]: `POST /payments/v1/sessions` with the order (below) → `session_id` +
//!    `client_token`; outcome `requires_action`, reference = the session id, [`NextAction`]
//!    `klarna_widget` with `data = {client_token, session_id, payment_method_categories}`. The storefront
//!    loads the widget (`Klarna.Payments.init({client_token})`, `load`, `authorize`).
//! 2. `authorize()` yields `{approved, authorization_token}`; the storefront sends it back and
//!    [`PaymentProvider::confirm`] places the order: `POST /payments/v1/authorizations/{token}/order` (same
//!    order body) → `order_id`, `fraud_status`. `ACCEPTED` → `POST /ordermanagement/v1/orders/{order_id}/captures`
//!    of the whole amount (201, `Capture-Id`) → captured, reference = the Klarna order id. `PENDING` →
//!    authorized, not captured (Klarna decides later; capture then happens outside this seam). `REJECTED` or
//!    `{"approved": false}` → failed. An unknown or expired token (404) → failed. When the order cannot be
//!    placed for another 4xx, the authorization is released (`DELETE /payments/v1/authorizations/{token}`)
//!    before the error is returned; when the capture is refused (403), the order is cancelled and the
//!    outcome is failed.
//! 3. [`PaymentProvider::cancel`]: `POST /ordermanagement/v1/orders/{id}/cancel`. A reference that is still a
//!    session (404 `NO_SUCH_ORDER`) holds nothing: sessions expire by themselves (48 h).
//! 4. [`PaymentProvider::refund`]: `GET /ordermanagement/v1/orders/{id}` (currency, `captured_amount −
//!    refunded_amount` ≥ amount, else [`Error::Conflict`]) then `POST …/refunds` with `refunded_amount`
//!    (201, `Refund-Id`); 403 `REFUND_NOT_ALLOWED` → [`Error::Conflict`].
//!
//! Order Management POSTs carry `Klarna-Idempotency-Key` (derived from the checkout's key; the refund's key as
//! given). No webhooks here ([`Error::NotFound`]).
//!
//! # The order body
//! `purchase_country` (market), `purchase_currency`, `locale`, `order_amount` = Σ `total_amount`,
//! `order_tax_amount` = Σ `total_tax_amount`, `merchant_reference1` = our order id, `billing_address` /
//! `shipping_address` (`given_name`, `family_name`, `email`, `street_address`, `postal_code`, `city`,
//! `region`, `country`), and one `order_lines` entry per line: `type: physical`, `reference` (SKU),
//! `name`, `quantity`, `quantity_unit`, `unit_price` (VAT included), `tax_rate` (percent with two implicit
//! decimals: 2200 = 22 %, the same scale as our basis points), `total_amount` = `quantity × unit_price`, and
//! `total_tax_amount` = the line's VAT, which Klarna accepts within ±1 of
//! `total_amount − total_amount × 10000 / (10000 + tax_rate)`. A split-payment order (VAT not collected)
//! cannot be expressed this way and is refused (`payment.provider`).
//!
//! Errors: Klarna answers `{"error_code", "error_messages": […], "correlation_id"}`; 401/403 on auth →
//! [`Error::Internal`] (check the credentials); other 4xx from our own request → [`Error::Internal`].
//!
//! Docs followed: <https://docs.klarna.com/api/payments/#operation/createCreditSession>,
//! <https://docs.klarna.com/api/payments/#operation/createOrder>,
//! <https://docs.klarna.com/api/payments/#operation/cancelAuthorization>,
//! <https://docs.klarna.com/api/ordermanagement/#operation/captureOrder>,
//! <https://docs.klarna.com/api/ordermanagement/#operation/refundOrder>,
//! <https://docs.klarna.com/api/ordermanagement/#operation/cancelOrder>,
//! <https://docs.klarna.com/klarna-payments/in-depth-knowledge/tax-handling/>,
//! <https://docs.klarna.com/api/authentication/>.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::config::{join, Secret};
use super::http::{self, is_id, Reply};
use super::{
    check_currency, lines_must_match_amount, split_name, PaymentOutcome, PaymentProvider,
    PaymentRequest, RefundOutcome, WebhookEvent,
};
use crate::model::{Address, Cents, NextAction, PaymentStatus};
use crate::{Error, Result};

/// The Klarna provider (see the module doc).
pub struct Klarna {
    client: reqwest::Client,
    api_base: String,
    username: Secret,
    password: Secret,
}

impl std::fmt::Debug for Klarna {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Klarna")
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl Klarna {
    pub fn new(
        api_base: &str,
        username: Secret,
        password: Secret,
        timeout: Duration,
    ) -> Result<Klarna> {
        Ok(Klarna {
            client: http::client(timeout)?,
            api_base: api_base.to_string(),
            username,
            password,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Reply> {
        let mut request = self
            .client
            .request(method, join(&self.api_base, path))
            .basic_auth(self.username.expose(), Some(self.password.expose()));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Klarna-Idempotency-Key", key);
        }
        http::send("klarna", request).await
    }

    /// Releases an authorization we will not turn into an order (best effort: it expires anyway).
    async fn release(&self, token: &str) {
        let path = format!("/payments/v1/authorizations/{token}");
        if let Err(e) = self.call(Method::DELETE, &path, None, None).await {
            tracing::warn!(error = %e, "klarna: could not release an authorization");
        }
    }

    /// Captures the whole order; `Ok(None)` when Klarna refuses (403), after cancelling the order.
    async fn capture(
        &self,
        order_id: &str,
        request: &PaymentRequest,
        body: &Value,
    ) -> Result<Option<String>> {
        let capture = json!({
            "captured_amount": request.amount,
            "order_lines": body["order_lines"],
        });
        let key = format!("{}:capture", request.idempotency_key);
        let path = format!("/ordermanagement/v1/orders/{order_id}/captures");
        let reply = self
            .call(Method::POST, &path, Some(&capture), Some(&key))
            .await?;
        match reply.status {
            200..=299 => Ok(Some(
                reply.header("Capture-Id").unwrap_or_default().to_string(),
            )),
            403 if reply.body["error_code"] != "UNAUTHORIZED" => {
                tracing::warn!(order_id, error = %message(&reply), "klarna: capture refused; cancelling the order");
                let cancel = format!("/ordermanagement/v1/orders/{order_id}/cancel");
                let cancel_key = format!("{}:cancel", request.idempotency_key);
                if let Err(e) = self
                    .call(Method::POST, &cancel, None, Some(&cancel_key))
                    .await
                {
                    tracing::warn!(order_id, error = %e, "klarna: could not cancel the order");
                }
                Ok(None)
            }
            _ => Err(failure("capture", &reply)),
        }
    }
}

/// `error_code: message; message` of a Klarna error body.
fn message(reply: &Reply) -> String {
    let body = &reply.body;
    let code = body["error_code"].as_str();
    let messages: Vec<&str> = body["error_messages"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match (code, messages.is_empty()) {
        (Some(code), false) => format!("{code}: {}", messages.join("; ")),
        (Some(code), true) => code.to_string(),
        _ => format!("HTTP {}: {}", reply.status, http::short(body)),
    }
}

/// A Klarna 4xx we did not expect: our request or our credentials are wrong.
fn failure(what: &str, reply: &Reply) -> Error {
    match reply.status {
        401 => Error::Internal(format!(
            "klarna: {what}: authentication failed (check LUSSO_KLARNA_USERNAME / _PASSWORD): {}",
            message(reply)
        )),
        409 => Error::Conflict(format!("klarna: {what}: {}", message(reply))),
        _ => Error::Internal(format!("klarna: {what}: {}", message(reply))),
    }
}

fn address(a: &Address, email: &str) -> Value {
    let (given, family) = split_name(&a.name);
    let mut v = json!({
        "given_name": given,
        "family_name": family,
        "email": email,
        "street_address": a.street,
        "postal_code": a.postal_code,
        "city": a.city,
        "country": a.country,
    });
    if let Some(region) = &a.province {
        v["region"] = json!(region);
    }
    v
}

/// The order as the session and the order placement take it (see the module doc).
pub fn order_body(request: &PaymentRequest) -> Result<Value> {
    lines_must_match_amount("klarna", request)?;
    check_currency(&request.currency)?;
    let mut lines = Vec::with_capacity(request.lines.len());
    for l in &request.lines {
        let rate = Cents::from(l.vat_rate_bp);
        if rate > 10_000 {
            return Err(Error::Internal(format!(
                "klarna: line {} has a VAT rate above 100 %",
                l.line_no
            )));
        }
        let klarna_tax = l.gross - l.gross * 10_000 / (10_000 + rate);
        if (l.vat - klarna_tax).abs() > 1 || l.gross != l.unit_price * Cents::from(l.quantity) {
            return Err(Error::Internal(format!(
                "klarna: line {} does not reconcile: VAT {} vs Klarna's {klarna_tax}, gross {} vs {} × {}",
                l.line_no, l.vat, l.gross, l.quantity, l.unit_price
            )));
        }
        let name = if l.size.is_empty() {
            l.description.clone()
        } else {
            format!("{} ({})", l.description, l.size)
        };
        lines.push(json!({
            "type": "physical",
            "reference": l.sku,
            "name": name,
            "quantity": l.quantity,
            "quantity_unit": "pcs",
            "unit_price": l.unit_price,
            "tax_rate": l.vat_rate_bp,
            "total_amount": l.gross,
            "total_discount_amount": 0,
            "total_tax_amount": l.vat,
        }));
    }
    let tax: Cents = request.lines.iter().map(|l| l.vat).sum();
    Ok(json!({
        "purchase_country": request.market,
        "purchase_currency": request.currency,
        "locale": request.locale,
        "order_amount": request.amount,
        "order_tax_amount": tax,
        "order_lines": lines,
        "merchant_reference1": request.order_id.to_string(),
        "billing_address": address(&request.buyer.billing, &request.buyer.email),
        "shipping_address": address(&request.shipping, &request.buyer.email),
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

#[async_trait::async_trait]
impl PaymentProvider for Klarna {
    fn name(&self) -> &'static str {
        "klarna"
    }

    async fn create(&self, request: &PaymentRequest) -> Result<PaymentOutcome> {
        let mut body = order_body(request)?;
        body["intent"] = json!("buy");
        let reply = self
            .call(Method::POST, "/payments/v1/sessions", Some(&body), None)
            .await?;
        if !reply.ok() {
            return Err(failure("create session", &reply));
        }
        let session_id = reply.body["session_id"].as_str().filter(|s| is_id(s));
        let client_token = reply.body["client_token"].as_str();
        let (Some(session_id), Some(client_token)) = (session_id, client_token) else {
            return Err(Error::Internal(format!(
                "klarna: a session without session_id / client_token: {}",
                http::short(&reply.body)
            )));
        };
        Ok(PaymentOutcome {
            next_action: Some(NextAction {
                kind: "klarna_widget".into(),
                url: None,
                client_secret: None,
                data: json!({
                    "client_token": client_token,
                    "session_id": session_id,
                    "payment_method_categories": reply.body["payment_method_categories"],
                }),
            }),
            ..outcome(session_id, PaymentStatus::RequiresAction, 0, None)
        })
    }

    async fn confirm(
        &self,
        reference: &str,
        request: &PaymentRequest,
        params: &Value,
    ) -> Result<PaymentOutcome> {
        if params["approved"] == json!(false) {
            return Ok(outcome(
                reference,
                PaymentStatus::Failed,
                0,
                Some(
                    "the shopper did not complete the Klarna authorization (approved: false)"
                        .into(),
                ),
            ));
        }
        let token = match &params["authorization_token"] {
            Value::String(t) if is_id(t) => t.as_str(),
            Value::Null => {
                return Err(Error::bad(
                    "payment.authorization_token",
                    "required: the token Klarna.Payments.authorize() returned",
                ))
            }
            _ => {
                return Err(Error::bad(
                    "payment.authorization_token",
                    "not a Klarna authorization token",
                ))
            }
        };
        let body = order_body(request)?;
        let path = format!("/payments/v1/authorizations/{token}/order");
        let reply = self.call(Method::POST, &path, Some(&body), None).await?;
        match reply.status {
            200..=299 => {}
            404 => {
                return Ok(outcome(
                    reference,
                    PaymentStatus::Failed,
                    0,
                    Some(format!(
                        "the Klarna authorization is unknown or expired ({})",
                        message(&reply)
                    )),
                ))
            }
            401 => return Err(failure("place order", &reply)),
            _ => {
                self.release(token).await;
                return Err(failure("place order", &reply));
            }
        }
        let Some(order_id) = reply.body["order_id"].as_str().filter(|s| is_id(s)) else {
            return Err(Error::Internal(format!(
                "klarna: an order without order_id: {}",
                http::short(&reply.body)
            )));
        };
        match reply.body["fraud_status"].as_str().unwrap_or("") {
            "ACCEPTED" => match self.capture(order_id, request, &body).await? {
                Some(_) => Ok(outcome(
                    order_id,
                    PaymentStatus::Captured,
                    request.amount,
                    None,
                )),
                None => Ok(outcome(
                    order_id,
                    PaymentStatus::Failed,
                    0,
                    Some("Klarna refused the capture; the order was cancelled".into()),
                )),
            },
            "PENDING" => Ok(outcome(order_id, PaymentStatus::Authorized, 0, None)),
            other => Ok(outcome(
                order_id,
                PaymentStatus::Failed,
                0,
                Some(format!("declined by Klarna (fraud_status {other})")),
            )),
        }
    }

    async fn cancel(&self, reference: &str) -> Result<()> {
        if !is_id(reference) {
            return Err(Error::bad(
                "reference",
                format!("`{reference}` is not a Klarna id"),
            ));
        }
        let path = format!("/ordermanagement/v1/orders/{reference}/cancel");
        let key = format!("cancel-{reference}");
        let reply = self.call(Method::POST, &path, None, Some(&key)).await?;
        match reply.status {
            200..=299 | 404 => Ok(()),
            403 if reply.body["error_code"] != "UNAUTHORIZED" => Err(Error::Conflict(format!(
                "klarna: order {reference} cannot be cancelled: {}",
                message(&reply)
            ))),
            _ => Err(failure("cancel order", &reply)),
        }
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Cents,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<RefundOutcome> {
        if !is_id(reference) {
            return Err(Error::bad(
                "reference",
                format!("`{reference}` is not a Klarna order id"),
            ));
        }
        check_currency(currency)?;
        if amount <= 0 {
            return Err(Error::bad("amount", "a refund is positive"));
        }
        let path = format!("/ordermanagement/v1/orders/{reference}");
        let order = self.call(Method::GET, &path, None, None).await?;
        match order.status {
            200..=299 => {}
            404 => return Err(Error::NotFound(format!("klarna: no order `{reference}`"))),
            _ => return Err(failure("read order", &order)),
        }
        let order_currency = order.body["purchase_currency"].as_str().unwrap_or("");
        if order_currency != currency {
            return Err(Error::bad(
                "currency",
                format!("the Klarna order is in {order_currency}, not {currency}"),
            ));
        }
        let left = order.body["captured_amount"].as_i64().unwrap_or(0)
            - order.body["refunded_amount"].as_i64().unwrap_or(0);
        if amount > left {
            return Err(Error::Conflict(format!(
                "klarna: a refund of {amount} exceeds the {left} left of order {reference}"
            )));
        }
        let body = json!({"refunded_amount": amount, "reference": idempotency_key});
        let reply = self
            .call(
                Method::POST,
                &format!("{path}/refunds"),
                Some(&body),
                Some(idempotency_key),
            )
            .await?;
        match reply.status {
            200..=299 => {
                let id = reply
                    .header("Refund-Id")
                    .map(String::from)
                    .or_else(|| {
                        reply
                            .header("Location")
                            .and_then(|l| l.rsplit('/').next())
                            .map(String::from)
                    })
                    .unwrap_or_default();
                Ok(RefundOutcome {
                    reference: id,
                    amount,
                })
            }
            403 if reply.body["error_code"] != "UNAUTHORIZED" => Err(Error::Conflict(format!(
                "klarna: refund refused: {}",
                message(&reply)
            ))),
            _ => Err(failure("refund", &reply)),
        }
    }

    fn webhook(&self, _headers: &axum::http::HeaderMap, _body: &[u8]) -> Result<WebhookEvent> {
        Err(Error::NotFound(
            "klarna notifications are not handled here".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::testing::request;

    #[test]
    fn payments_klarna_order_body_reconciles() {
        let r = request(json!({"provider": "klarna"}));
        let body = order_body(&r).unwrap();
        let lines = body["order_lines"].as_array().unwrap();
        let total: i64 = lines
            .iter()
            .map(|l| l["total_amount"].as_i64().unwrap())
            .sum();
        let tax: i64 = lines
            .iter()
            .map(|l| l["total_tax_amount"].as_i64().unwrap())
            .sum();
        assert_eq!(body["order_amount"], json!(total));
        assert_eq!(body["order_tax_amount"], json!(tax));
        assert_eq!(body["order_amount"], json!(r.amount));
        assert_eq!(lines[0]["tax_rate"], json!(2200));
        assert_eq!(lines[0]["unit_price"], json!(35_000));
        assert_eq!(lines[0]["quantity"], json!(2));
        assert_eq!(lines[0]["name"], json!("Article SKU-1 (M)"));
        assert_eq!(body["purchase_country"], json!("IT"));
        assert_eq!(body["billing_address"]["given_name"], json!("Maria Grazia"));
        assert_eq!(body["billing_address"]["family_name"], json!("Rossi"));
        assert_eq!(body["merchant_reference1"], json!(r.order_id.to_string()));
    }

    #[test]
    fn payments_klarna_refuses_what_it_cannot_express() {
        let mut split = request(json!({}));
        split.amount -= split.totals.vat;
        assert!(
            matches!(order_body(&split), Err(Error::BadInput { ref field, .. }) if field == "payment.provider")
        );
        let mut wrong_vat = request(json!({}));
        wrong_vat.lines[0].vat += 5;
        assert!(matches!(order_body(&wrong_vat), Err(Error::Internal(_))));
    }

    #[tokio::test]
    async fn payments_klarna_confirm_validates_params_first() {
        let k = Klarna::new(
            "http://127.0.0.1:9",
            Secret::new("u"),
            Secret::new("p"),
            Duration::from_secs(2),
        )
        .unwrap();
        let r = request(json!({"provider": "klarna"}));
        let declined = k
            .confirm("sess", &r, &json!({"approved": false}))
            .await
            .unwrap();
        assert_eq!(declined.status, PaymentStatus::Failed);
        assert_eq!(declined.reference, "sess");
        let missing = k.confirm("sess", &r, &json!({})).await.unwrap_err();
        assert!(
            matches!(missing, Error::BadInput { ref field, .. } if field == "payment.authorization_token")
        );
        let bad = k
            .confirm("sess", &r, &json!({"authorization_token": "../x"}))
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::BadInput { .. }));
        assert!(matches!(k.create(&r).await, Err(Error::Unavailable(_))));
    }
}
