//! Stripe: card payments with PaymentIntents and 3-D Secure 2, refunds, signed webhooks.
//!
//! # Flow
//! 1. The storefront collects the card with Stripe.js (`stripe.createPaymentMethod`), so card data never
//!    reaches us; the checkout's `payment` is `{"provider":"stripe","payment_method":"pm_…",
//!    "return_url":"https://…"?}`. Only `pm_…` ids are accepted (`payment.payment_method`).
//! 2. [`PaymentProvider::create`]: `POST /v1/payment_intents` (form-encoded, `Authorization: Bearer`,
//!    `Idempotency-Key`) with `amount` (minor units), lower-case `currency`, `payment_method`, `confirm=true`,
//!    `capture_method=automatic`, `payment_method_types[0]=card`, `metadata[order_id]` and, when given,
//!    `return_url`. Status mapping: `succeeded` → captured; `requires_capture` → authorized;
//!    `requires_action` → requires action with [`NextAction`] `redirect` (`next_action.redirect_to_url.url`,
//!    when a `return_url` was sent) or `use_stripe_sdk` (Stripe.js `handleNextAction` with the
//!    `client_secret`); `requires_payment_method` after a decline → failed with
//!    `last_payment_error.message`; `processing` / `requires_confirmation` → pending; `canceled` → cancelled.
//!    A decline answers HTTP 402 whose `error.payment_intent` is mapped (failed, with the PaymentIntent as
//!    reference); [`Error::PaymentFailed`] only when no PaymentIntent can be found.
//! 3. [`PaymentProvider::confirm`] re-reads the PaymentIntent (`GET /v1/payment_intents/{id}`) after the
//!    challenge, checks it is this order's (`metadata[order_id]`, amount, currency), and captures a
//!    `requires_capture` one (`POST …/capture`).
//! 4. [`PaymentProvider::cancel`]: `POST /v1/payment_intents/{id}/cancel`; an already cancelled one is fine, a
//!    captured one is a [`Error::Conflict`].
//! 5. [`PaymentProvider::refund`]: reads the PaymentIntent with its `latest_charge` (must be `succeeded`, in
//!    the same currency, with enough left: `amount_captured − amount_refunded`, else [`Error::Conflict`]),
//!    then `POST /v1/refunds` with `payment_intent`, `amount` and the `Idempotency-Key`.
//! 6. [`PaymentProvider::webhook`]: `Stripe-Signature: t=…,v1=…[,v1=…]` is verified as Stripe documents it:
//!    HMAC-SHA256 keyed with the endpoint's `whsec_…` secret over `"{t}.{raw body}"`, compared in constant
//!    time against every `v1` (any match passes), with the timestamp within the tolerance (300 s) of now,
//!    either way. `payment_intent.succeeded | payment_failed | canceled | amount_capturable_updated` decode
//!    to captured / failed / cancelled / authorized; any other event whose `data.object` is a PaymentIntent
//!    takes the object's status; **any other event is returned with an empty reference**
//!    ([`WebhookEvent::is_ignorable`]): it is authentic, so the endpoint answers 2xx — an error would make
//!    Stripe retry it for three days — and ignores it.
//!
//! Requests pin `Stripe-Version: 2024-06-20`. Idempotency: every POST carries an `Idempotency-Key`; the
//! provider also keeps the answers of the last 24 h per key in memory (Stripe's own retention), so a key is
//! replayed even where the server ignores the header (localstripe) and a key reused with other parameters
//! is a [`Error::Conflict`], as Stripe's `idempotency_error`.
//!
//! Docs followed: <https://docs.stripe.com/api/payment_intents/create>,
//! <https://docs.stripe.com/payments/3d-secure/authentication-flow>,
//! <https://docs.stripe.com/api/payment_intents/object#payment_intent_object-status>,
//! <https://docs.stripe.com/api/errors> (`payment_intent` on card errors),
//! <https://docs.stripe.com/api/idempotent_requests>, <https://docs.stripe.com/api/refunds/create>,
//! <https://docs.stripe.com/webhooks#verify-manually>, <https://docs.stripe.com/testing>.
//!
//! # localstripe (the tests' Stripe, `localstripe==1.15.10`)
//! Read from its source (`localstripe/resources.py`, `server.py`, `webhooks.py`, `localstripe-v3.js`):
//! - Any `sk_…` key is accepted; there is one shared account. `POST /v1/payment_methods` needs the secret
//!   key (Stripe.js uses the publishable one).
//! - Test payment methods: `pm_card_visa` succeeds; `pm_card_chargeCustomerFail` (4000 0000 0000 0341) is
//!   declined at charge time (402 `card_declined`); cards 4000 0025 0000 3155, 4000 0027 6000 3184,
//!   4000 0000 0000 3220, 4000 0000 0000 3063 require 3-D Secure (create the PaymentMethod with
//!   `card[number]`); 4000 0082 6000 3178 / 4000 0084 0000 1629 require 3-D Secure and are then declined.
//!   Unlike Stripe, `pm_card_visa_chargeDeclined` (…0002) is declined only when attached to a customer.
//! - 3-D Secure: `next_action` is always `{"type":"use_stripe_sdk"}` (no `redirect_to_url`). The challenge is
//!   completed the way its Stripe.js shim's `confirmCardPayment` does:
//!   `POST /v1/payment_intents/{id}/_authenticate?success=true|false` with the JSON body
//!   `{"key":"pk_…","client_secret":"…"}` and no `Authorization`; `success=false` leaves the PaymentIntent
//!   `requires_payment_method` with `last_payment_error.code = payment_intent_authentication_failure`.
//! - Webhooks: `POST /_config/webhooks/{id}` with `{"url","secret","events"?}` registers an endpoint (kept in
//!   memory, for every request, whatever the key); events are POSTed ~1 s later, signed
//!   `t={created},v1=HMAC-SHA256(secret, "{created}.{body}")`. It sends `payment_intent.succeeded` and
//!   `payment_intent.payment_failed`, never `payment_intent.canceled`.
//! - Differences: the `Idempotency-Key` header is ignored (hence the replay cache); unknown parameters are
//!   rejected (`return_url`, `description` → 400 `Unexpected …`: send no `return_url` to it); a declined
//!   create answers 402 with `error.charge` but no `error.payment_intent` (the PaymentIntent is found through
//!   `GET /v1/charges/{id}`); a missing PaymentMethod is a 404, not Stripe's 400 `resource_missing`;
//!   refunds are not checked against the captured amount (our pre-check is what refuses); there is no
//!   `amount_received` / `amount_captured` (we fall back to `amount`); `latest_charge` is an embedded object.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::config::{join, Secret, StripeConfig};
use super::http::{self, form_encode, is_http_url, is_id, Reply};
use super::replay::Replay;
use super::{
    check_currency, method_str, PaymentOutcome, PaymentProvider, PaymentRequest, RefundOutcome,
    WebhookEvent,
};
use crate::model::{Cents, NextAction, PaymentStatus};
use crate::{Error, Result};

/// The API version every request pins.
pub const API_VERSION: &str = "2024-06-20";

/// The Stripe provider (see the module doc).
pub struct Stripe {
    client: reqwest::Client,
    api_base: String,
    secret_key: Secret,
    webhook_secret: Option<Secret>,
    tolerance: Duration,
    replay: Replay,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("api_base", &self.api_base)
            .field("webhooks", &self.webhook_secret.is_some())
            .finish()
    }
}

impl Stripe {
    pub fn new(config: &StripeConfig, secret_key: Secret, timeout: Duration) -> Result<Stripe> {
        Ok(Stripe {
            client: http::client(timeout)?,
            api_base: config.api_base.clone(),
            secret_key,
            webhook_secret: config.webhook_secret.clone(),
            tolerance: Duration::from_secs(config.webhook_tolerance_secs),
            replay: Replay::default(),
        })
    }

    async fn get(&self, path: &str) -> Result<Reply> {
        let request = self
            .client
            .get(join(&self.api_base, path))
            .bearer_auth(self.secret_key.expose())
            .header("Stripe-Version", API_VERSION);
        http::send("stripe", request).await
    }

    /// A form POST with `Idempotency-Key: key`, replayed from memory when the key was used before.
    async fn post(&self, path: &str, pairs: &[(String, String)], key: &str) -> Result<Reply> {
        let body = form_encode(pairs);
        let fingerprint = format!("POST {path}\n{body}");
        if let Some(reply) = self.replay.lookup(key, &fingerprint)? {
            return Ok(reply);
        }
        let request = self
            .client
            .post(join(&self.api_base, path))
            .bearer_auth(self.secret_key.expose())
            .header("Stripe-Version", API_VERSION)
            .header("Idempotency-Key", key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let reply = http::send("stripe", request).await?;
        // 409: another request with this key is in flight at Stripe; not an answer to remember.
        if reply.status != 409 {
            self.replay.store(key, fingerprint, &reply);
        }
        Ok(reply)
    }

    async fn intent(&self, id: &str, expand_charge: bool) -> Result<Value> {
        let path = if expand_charge {
            format!("/v1/payment_intents/{id}?expand%5B%5D=latest_charge")
        } else {
            format!("/v1/payment_intents/{id}")
        };
        let reply = self.get(&path).await?;
        match reply.status {
            200..=299 => Ok(reply.body),
            404 => Err(Error::NotFound(format!("stripe: no PaymentIntent `{id}`"))),
            _ => Err(failure("read PaymentIntent", &reply)),
        }
    }

    /// The outcome of a 402 (card declined) answer to a create.
    async fn declined(&self, reply: &Reply) -> Result<PaymentOutcome> {
        let err = &reply.body["error"];
        let reason = error_reason(err).unwrap_or_else(|| "card declined".into());
        let fail = |mut o: PaymentOutcome| {
            if o.status != PaymentStatus::Failed {
                o.status = PaymentStatus::Failed;
                o.next_action = None;
                o.captured = 0;
            }
            o.failure_reason = o.failure_reason.or_else(|| Some(reason.clone()));
            o
        };
        if err["payment_intent"].is_object() {
            return Ok(fail(
                map_intent(&err["payment_intent"]).map_err(Error::Internal)?,
            ));
        }
        // localstripe: the error names the charge, which names the PaymentIntent.
        if let Some(charge) = err["charge"].as_str().filter(|c| is_id(c)) {
            let charge = self.get(&format!("/v1/charges/{charge}")).await?;
            if let Some(pi) = charge.body["payment_intent"].as_str().filter(|p| is_id(p)) {
                let pi = self.intent(pi, false).await?;
                return Ok(fail(map_intent(&pi).map_err(Error::Internal)?));
            }
        }
        Err(Error::PaymentFailed {
            provider: "stripe".into(),
            reason,
        })
    }

    /// Errors when the PaymentIntent is not the one this request created.
    fn check_belongs(pi: &Value, request: &PaymentRequest) -> Result<()> {
        let id = pi["id"].as_str().unwrap_or("?");
        let order = request.order_id.to_string();
        if let Some(o) = pi["metadata"]["order_id"].as_str() {
            if o != order {
                return Err(Error::Internal(format!(
                    "stripe: PaymentIntent {id} belongs to order {o}, not {order}"
                )));
            }
        }
        let amount = pi["amount"].as_i64();
        let currency = pi["currency"].as_str().map(str::to_ascii_uppercase);
        if amount != Some(request.amount) || currency.as_deref() != Some(request.currency.as_str())
        {
            return Err(Error::Internal(format!(
                "stripe: PaymentIntent {id} is for {amount:?} {currency:?}, the order for {} {}",
                request.amount, request.currency
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn create(&self, request: &PaymentRequest) -> Result<PaymentOutcome> {
        let pm = method_str(&request.method, "payment_method")?.ok_or_else(|| {
            Error::bad(
                "payment.payment_method",
                "required: the PaymentMethod id (pm_…) Stripe.js created",
            )
        })?;
        if !pm.starts_with("pm_") || !is_id(pm) {
            return Err(Error::bad(
                "payment.payment_method",
                "must be a Stripe PaymentMethod id (pm_…) created by Stripe.js; card details are never accepted",
            ));
        }
        let return_url = method_str(&request.method, "return_url")?;
        if let Some(url) = return_url {
            if !is_http_url(url) {
                return Err(Error::bad(
                    "payment.return_url",
                    "must be an absolute http(s) URL",
                ));
            }
        }
        check_currency(&request.currency)?;
        if request.amount <= 0 {
            return Err(Error::bad("amount", "must be positive"));
        }
        let mut pairs = vec![
            ("amount".to_string(), request.amount.to_string()),
            ("currency".into(), request.currency.to_ascii_lowercase()),
            ("payment_method".into(), pm.to_string()),
            ("confirm".into(), "true".into()),
            ("capture_method".into(), "automatic".into()),
            ("payment_method_types[0]".into(), "card".into()),
            ("metadata[order_id]".into(), request.order_id.to_string()),
        ];
        if let Some(url) = return_url {
            pairs.push(("return_url".into(), url.to_string()));
        }
        let reply = self
            .post("/v1/payment_intents", &pairs, &request.idempotency_key)
            .await?;
        if reply.ok() {
            return map_intent(&reply.body).map_err(Error::Internal);
        }
        let err = &reply.body["error"];
        let missing_pm = err["code"] == "resource_missing" && err["param"] == "payment_method";
        match reply.status {
            402 => self.declined(&reply).await,
            400 | 404 if missing_pm || (reply.status == 404 && err.is_object()) => Err(Error::bad(
                "payment.payment_method",
                format!("no such PaymentMethod `{pm}`"),
            )),
            _ => Err(failure("create PaymentIntent", &reply)),
        }
    }

    async fn confirm(
        &self,
        reference: &str,
        request: &PaymentRequest,
        _params: &Value,
    ) -> Result<PaymentOutcome> {
        check_reference(reference)?;
        let pi = self.intent(reference, false).await?;
        Self::check_belongs(&pi, request)?;
        let outcome = map_intent(&pi).map_err(Error::Internal)?;
        if outcome.status != PaymentStatus::Authorized {
            return Ok(outcome);
        }
        let key = format!("{}:capture", request.idempotency_key);
        let reply = self
            .post(
                &format!("/v1/payment_intents/{reference}/capture"),
                &[],
                &key,
            )
            .await?;
        if !reply.ok() {
            return Err(failure("capture PaymentIntent", &reply));
        }
        map_intent(&reply.body).map_err(Error::Internal)
    }

    async fn cancel(&self, reference: &str) -> Result<()> {
        check_reference(reference)?;
        let path = format!("/v1/payment_intents/{reference}/cancel");
        let reply = self
            .post(&path, &[], &format!("cancel-{reference}"))
            .await?;
        if reply.ok() {
            return Ok(());
        }
        if reply.status == 404 {
            return Err(Error::NotFound(format!(
                "stripe: no PaymentIntent `{reference}`"
            )));
        }
        // Stripe: 400 payment_intent_unexpected_state; localstripe: 400 Bad request. Look at the state.
        let pi = self.intent(reference, false).await?;
        match pi["status"].as_str() {
            Some("canceled") => Ok(()),
            Some("succeeded") => Err(Error::Conflict(format!(
                "stripe: PaymentIntent {reference} is captured; refund it instead"
            ))),
            _ => Err(failure("cancel PaymentIntent", &reply)),
        }
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Cents,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<RefundOutcome> {
        check_reference(reference)?;
        check_currency(currency)?;
        if amount <= 0 {
            return Err(Error::bad("amount", "a refund is positive"));
        }
        let pairs = vec![
            ("payment_intent".to_string(), reference.to_string()),
            ("amount".into(), amount.to_string()),
        ];
        let fingerprint = format!("POST /v1/refunds\n{}", form_encode(&pairs));
        // A retried refund is answered as the first time, before the (now smaller) balance is checked.
        if self.replay.lookup(idempotency_key, &fingerprint)?.is_none() {
            let pi = self.intent(reference, true).await?;
            let status = pi["status"].as_str().unwrap_or("?");
            if status != "succeeded" {
                return Err(Error::Conflict(format!(
                    "stripe: PaymentIntent {reference} is {status}; only a captured payment is refunded"
                )));
            }
            let pi_currency = pi["currency"].as_str().unwrap_or("").to_ascii_uppercase();
            if pi_currency != currency {
                return Err(Error::bad(
                    "currency",
                    format!("the payment was in {pi_currency}, not {currency}"),
                ));
            }
            let charge = &pi["latest_charge"];
            let captured = charge["amount_captured"]
                .as_i64()
                .or_else(|| charge["amount"].as_i64())
                .or_else(|| pi["amount_received"].as_i64())
                .unwrap_or(0);
            let left = captured - charge["amount_refunded"].as_i64().unwrap_or(0);
            if amount > left {
                return Err(Error::Conflict(format!(
                    "stripe: a refund of {amount} exceeds the {left} left of payment {reference}"
                )));
            }
        }
        let reply = self.post("/v1/refunds", &pairs, idempotency_key).await?;
        if !reply.ok() {
            let message = error_reason(&reply.body["error"]).unwrap_or_default();
            if reply.status == 400 && message.contains("greater than") {
                return Err(Error::Conflict(format!("stripe: {message}")));
            }
            return Err(failure("create refund", &reply));
        }
        let refund = &reply.body;
        if refund["status"] == "failed" {
            return Err(Error::PaymentFailed {
                provider: "stripe".into(),
                reason: format!(
                    "refund failed: {}",
                    refund["failure_reason"]
                        .as_str()
                        .unwrap_or("unknown reason")
                ),
            });
        }
        Ok(RefundOutcome {
            reference: refund["id"].as_str().unwrap_or_default().to_string(),
            amount: refund["amount"].as_i64().unwrap_or(amount),
        })
    }

    fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<WebhookEvent> {
        let secret = self.webhook_secret.as_ref().ok_or_else(|| {
            Error::NotFound(
                "stripe webhooks are not configured (LUSSO_STRIPE_WEBHOOK_SECRET)".into(),
            )
        })?;
        let header = match headers.get("Stripe-Signature") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| Error::bad("Stripe-Signature", "not ASCII"))?,
            ),
        };
        verify_signature(
            header,
            body,
            secret.expose(),
            self.tolerance,
            chrono::Utc::now().timestamp(),
        )?;
        decode_event(body)
    }
}

fn check_reference(reference: &str) -> Result<()> {
    if reference.starts_with("pi_") && is_id(reference) {
        Ok(())
    } else {
        Err(Error::bad(
            "reference",
            format!("`{reference}` is not a PaymentIntent id"),
        ))
    }
}

/// `error.message (error.code)` of a Stripe error object.
fn error_reason(err: &Value) -> Option<String> {
    let message = err["message"].as_str()?;
    Some(
        match err["decline_code"].as_str().or(err["code"].as_str()) {
            Some(code) => format!("{message} ({code})"),
            None => message.to_string(),
        },
    )
}

/// A Stripe 4xx we did not expect: our request or our credentials are wrong.
fn failure(what: &str, reply: &Reply) -> Error {
    let err = &reply.body["error"];
    let message = error_reason(err).unwrap_or_else(|| http::short(&reply.body));
    match reply.status {
        401 | 403 => Error::Internal(format!(
            "stripe: {what}: authentication failed (check LUSSO_STRIPE_SECRET_KEY): {message}"
        )),
        409 => Error::Conflict(format!("stripe: {what}: {message}")),
        400 if err["type"] == "idempotency_error" => {
            Error::Conflict(format!("stripe: {what}: {message}"))
        }
        status => Error::Internal(format!("stripe: {what}: HTTP {status}: {message}")),
    }
}

/// The outcome a PaymentIntent object stands for (see the module doc for the mapping).
pub fn map_intent(pi: &Value) -> std::result::Result<PaymentOutcome, String> {
    let id = pi["id"].as_str().filter(|id| is_id(id)).ok_or_else(|| {
        format!(
            "stripe: a PaymentIntent without a valid id: {}",
            http::short(pi)
        )
    })?;
    let amount = pi["amount"].as_i64().unwrap_or(0);
    let mut outcome = PaymentOutcome {
        reference: id.to_string(),
        status: PaymentStatus::Pending,
        captured: 0,
        next_action: None,
        failure_reason: None,
    };
    match pi["status"].as_str().unwrap_or("") {
        "succeeded" => {
            outcome.status = PaymentStatus::Captured;
            outcome.captured = pi["amount_received"]
                .as_i64()
                .filter(|a| *a > 0)
                .unwrap_or(amount);
        }
        "requires_capture" => outcome.status = PaymentStatus::Authorized,
        "requires_action" | "requires_source_action" => {
            outcome.status = PaymentStatus::RequiresAction;
            let next = &pi["next_action"];
            let secret = pi["client_secret"].as_str().map(String::from);
            let redirect = next["redirect_to_url"]["url"].as_str();
            outcome.next_action = Some(match redirect {
                Some(url) if next["type"] == "redirect_to_url" => NextAction {
                    kind: "redirect".into(),
                    url: Some(url.to_string()),
                    client_secret: secret,
                    data: json!({"payment_intent": id}),
                },
                _ => NextAction {
                    kind: "use_stripe_sdk".into(),
                    url: None,
                    client_secret: secret,
                    data: json!({"payment_intent": id, "type": next["type"]}),
                },
            });
        }
        "requires_payment_method" | "requires_source" => {
            outcome.status = PaymentStatus::Failed;
            outcome.failure_reason = Some(
                error_reason(&pi["last_payment_error"])
                    .unwrap_or_else(|| "the payment method was not usable".into()),
            );
        }
        "canceled" => {
            outcome.status = PaymentStatus::Cancelled;
            outcome.failure_reason = pi["cancellation_reason"].as_str().map(String::from);
        }
        // processing, requires_confirmation and statuses newer than this code: wait for a webhook.
        _ => {}
    }
    Ok(outcome)
}

/// The `Stripe-Signature` header Stripe sends for `body` at `timestamp` (tests and tools sign with it).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let sig = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(nibble(*high)? << 4 | nibble(*low)?),
            _ => None,
        })
        .collect()
}

/// Verifies a `Stripe-Signature` header against `body` at time `now` (Unix seconds).
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    tolerance: Duration,
    now: i64,
) -> Result<()> {
    let bad = |reason: &str| Error::bad("Stripe-Signature", reason);
    let header = header.ok_or_else(|| bad("missing"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let t: i64 = timestamp
        .ok_or_else(|| bad("no timestamp (t=…)"))?
        .parse()
        .map_err(|_| bad("the timestamp is not a number"))?;
    if signatures.is_empty() {
        return Err(bad("no v1 signature"));
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(t) > tolerance {
        return Err(bad(&format!(
            "the timestamp is {}s old, beyond the {tolerance}s tolerance (replayed?)",
            now.saturating_sub(t)
        )));
    }
    if t.saturating_sub(now) > tolerance {
        return Err(bad("the timestamp is in the future"));
    }
    let expected = mac(secret, t, body);
    let matches = signatures
        .iter()
        .filter_map(|s| hex_decode(s))
        .any(|sig| expected.clone().verify_slice(&sig).is_ok());
    if matches {
        Ok(())
    } else {
        Err(bad(
            "no v1 signature matches (wrong webhook secret or altered body)",
        ))
    }
}

/// Decodes a verified event body (see the module doc for what is ignorable).
pub fn decode_event(body: &[u8]) -> Result<WebhookEvent> {
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad("body", format!("not a Stripe event: {e}")))?;
    let id = event["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("body", "an event without id"))?;
    let kind = event["type"].as_str().unwrap_or("");
    let object = &event["data"]["object"];
    if object["object"] != "payment_intent" {
        return Ok(WebhookEvent {
            id: id.to_string(),
            reference: String::new(),
            status: PaymentStatus::Pending,
            failure_reason: Some(format!("ignored: `{kind}` is not about a PaymentIntent")),
        });
    }
    let outcome = map_intent(object).map_err(|e| Error::bad("body", e))?;
    let status = match kind {
        "payment_intent.succeeded" => PaymentStatus::Captured,
        "payment_intent.payment_failed" => PaymentStatus::Failed,
        "payment_intent.canceled" => PaymentStatus::Cancelled,
        "payment_intent.amount_capturable_updated" => PaymentStatus::Authorized,
        _ => outcome.status,
    };
    let failure_reason = match status {
        PaymentStatus::Failed => outcome
            .failure_reason
            .or_else(|| error_reason(&object["last_payment_error"]))
            .or_else(|| Some("payment failed".into())),
        PaymentStatus::Cancelled => outcome.failure_reason,
        _ => None,
    };
    Ok(WebhookEvent {
        id: id.to_string(),
        reference: outcome.reference,
        status,
        failure_reason,
    })
}

#[cfg(test)]
#[path = "stripe_tests.rs"]
mod tests;
