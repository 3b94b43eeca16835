//! A Klarna double: Payments API v1 (sessions, order placement from an authorization token, releasing an
//! authorization) and the Order Management API (read, capture, refund, cancel), HTTP Basic auth.
//!
//! It validates as Klarna documents: the order (`purchase_country`, `purchase_currency`, `locale`,
//! `order_amount` = Σ `total_amount`, `order_tax_amount` = Σ `total_tax_amount`, each line's
//! `total_amount = quantity × unit_price − total_discount_amount` and `total_tax_amount` within ±1 of
//! `total_amount − total_amount × 10000 / (10000 + tax_rate)`), addresses on order placement, an order that
//! matches its session, single-use authorization tokens, captures only of an authorized order and at most
//! the order amount, refunds at most the captured amount, cancels only without captures,
//! `Klarna-Idempotency-Key` replays. Errors are `{"error_code", "error_messages", "correlation_id"}`
//! (`BAD_VALUE` 400, `UNAUTHORIZED` 401, `CAPTURE_NOT_ALLOWED` / `REFUND_NOT_ALLOWED` / `CANCEL_NOT_ALLOWED`
//! 403, `NOT_FOUND` / `NO_SUCH_ORDER` 404).
//!
//! The shopper is played by [`KlarnaDouble::authorize`], what `Klarna.Payments.authorize()` does in the
//! browser: it mints the authorization token of a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{base64, parse, serve, Answer};

/// A running Klarna double.
#[derive(Clone)]
pub(crate) struct KlarnaDouble {
    pub(crate) url: String,
    state: Arc<Mutex<Klarna>>,
}

struct Klarna {
    authorization: String,
    sessions: HashMap<String, Value>,
    /// token → (session id, fraud status, used)
    tokens: HashMap<String, (String, String, bool)>,
    orders: HashMap<String, Order>,
    /// Klarna-Idempotency-Key → the first answer.
    replies: HashMap<String, Answer>,
}

struct Order {
    session_id: String,
    status: &'static str,
    fraud_status: String,
    currency: String,
    amount: i64,
    captured: i64,
    refunded: i64,
    merchant_reference1: Value,
}

fn error(status: u16, code: &str, message: String) -> Answer {
    Answer::new(
        status,
        json!({"error_code": code, "error_messages": [message], "correlation_id": uuid::Uuid::new_v4()}),
    )
}

fn bad(field: &str) -> Answer {
    error(400, "BAD_VALUE", format!("Bad value: {field}"))
}

impl KlarnaDouble {
    /// Starts a double that accepts `username` / `password`.
    pub(crate) async fn start(username: &str, password: &str) -> KlarnaDouble {
        let state = Arc::new(Mutex::new(Klarna {
            authorization: format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            ),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            orders: HashMap::new(),
            replies: HashMap::new(),
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        KlarnaDouble {
            url: serve(router).await,
            state,
        }
    }

    /// The shopper approves in the widget: the authorization token Klarna returns to the browser, with the
    /// `fraud_status` the order will get (`ACCEPTED`, `PENDING`, `REJECTED`).
    pub(crate) fn authorize(&self, session_id: &str, fraud_status: &str) -> String {
        let mut k = self.state.lock().unwrap();
        assert!(
            k.sessions.contains_key(session_id),
            "no session {session_id}"
        );
        let token = uuid::Uuid::new_v4().to_string();
        k.tokens.insert(
            token.clone(),
            (session_id.into(), fraud_status.into(), false),
        );
        token
    }

    /// What Order Management shows for an order: (status, captured, refunded).
    pub(crate) fn order(&self, order_id: &str) -> Option<(&'static str, i64, i64)> {
        let k = self.state.lock().unwrap();
        k.orders
            .get(order_id)
            .map(|o| (o.status, o.captured, o.refunded))
    }
}

/// Validates an order body; `Err(field)` names the first bad field.
fn validate_order(body: &Value, placing: bool) -> Result<(), String> {
    let upper = |v: &Value, n: usize| {
        v.as_str()
            .is_some_and(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_uppercase()))
    };
    if !upper(&body["purchase_country"], 2) {
        return Err("purchase_country".into());
    }
    if !upper(&body["purchase_currency"], 3) {
        return Err("purchase_currency".into());
    }
    let locale = body["locale"].as_str().unwrap_or("");
    if locale.len() != 5 || locale.as_bytes()[2] != b'-' {
        return Err("locale".into());
    }
    let lines = body["order_lines"].as_array().filter(|l| !l.is_empty());
    let lines = lines.ok_or("order_lines")?;
    let (mut total, mut tax) = (0i64, 0i64);
    for (i, l) in lines.iter().enumerate() {
        let int = |f: &str| l[f].as_i64().ok_or_else(|| format!("order_lines[{i}].{f}"));
        if l["name"].as_str().is_none_or(str::is_empty) {
            return Err(format!("order_lines[{i}].name"));
        }
        let (quantity, unit, amount) = (int("quantity")?, int("unit_price")?, int("total_amount")?);
        let discount = l["total_discount_amount"].as_i64().unwrap_or(0);
        if quantity < 1 || amount != quantity * unit - discount {
            return Err(format!("order_lines[{i}].total_amount"));
        }
        let rate = int("tax_rate")?;
        if !(0..=10_000).contains(&rate) {
            return Err(format!("order_lines[{i}].tax_rate"));
        }
        let line_tax = int("total_tax_amount")?;
        if (line_tax - (amount - amount * 10_000 / (10_000 + rate))).abs() > 1 {
            return Err(format!("order_lines[{i}].total_tax_amount"));
        }
        total += amount;
        tax += line_tax;
    }
    if body["order_amount"].as_i64() != Some(total) {
        return Err("order_amount".into());
    }
    if body["order_tax_amount"].as_i64() != Some(tax) {
        return Err("order_tax_amount".into());
    }
    if placing {
        for field in [
            "given_name",
            "family_name",
            "email",
            "street_address",
            "postal_code",
            "city",
            "country",
        ] {
            if body["billing_address"][field]
                .as_str()
                .is_none_or(str::is_empty)
            {
                return Err(format!("billing_address.{field}"));
            }
        }
    }
    Ok(())
}

async fn handle(
    State(state): State<Arc<Mutex<Klarna>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut k = state.lock().unwrap();
    route(&mut k, &method, &uri, &headers, &body).into_response()
}

fn route(k: &mut Klarna, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Answer {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(k.authorization.as_str())
    {
        return error(401, "UNAUTHORIZED", "Invalid credentials".into());
    }
    let Some(body) = parse(body) else {
        return bad("body (not JSON)");
    };
    let key = headers
        .get("Klarna-Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(first) = key.as_ref().and_then(|key| k.replies.get(key)) {
        return first.clone();
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let answer = match (method.as_str(), segments.as_slice()) {
        ("POST", ["payments", "v1", "sessions"]) => {
            if let Err(field) = validate_order(&body, false) {
                return bad(&field);
            }
            let id = uuid::Uuid::new_v4().to_string();
            k.sessions.insert(id.clone(), body);
            Answer::new(
                200,
                json!({
                    "session_id": id,
                    "client_token": format!("eyJhbGciOiJSUzI1NiJ9.{}", base64(id.as_bytes())),
                    "payment_method_categories": [{"identifier": "pay_later", "name": "Paga dopo 30 giorni"}],
                }),
            )
        }
        ("POST", ["payments", "v1", "authorizations", token, "order"]) => place(k, token, &body),
        ("DELETE", ["payments", "v1", "authorizations", token]) => match k.tokens.remove(*token) {
            Some(_) => Answer::new(204, Value::Null),
            None => error(404, "NOT_FOUND", "Invalid authorization token".into()),
        },
        (_, ["ordermanagement", "v1", "orders", id, rest @ ..]) => {
            let Some(order) = k.orders.get_mut(*id) else {
                return error(404, "NO_SUCH_ORDER", format!("Order {id} not found"));
            };
            manage(order, id, method.as_str(), rest, &body)
        }
        _ => error(
            404,
            "NOT_FOUND",
            format!("{method} {} is not a Klarna API", uri.path()),
        ),
    };
    if let Some(key) = key {
        // Only the key matters (input values are disregarded), as Klarna documents.
        if answer.status < 500 && answer.status != 401 {
            k.replies.insert(key, answer.clone());
        }
    }
    answer
}

fn place(k: &mut Klarna, token: &str, body: &Value) -> Answer {
    let Some((session_id, fraud, used)) = k.tokens.get(token).cloned() else {
        return error(404, "NOT_FOUND", "Invalid authorization token".into());
    };
    if used {
        return error(
            404,
            "NOT_FOUND",
            "The authorization token was already used".into(),
        );
    }
    if let Err(field) = validate_order(body, true) {
        return bad(&field);
    }
    let session = &k.sessions[&session_id];
    for field in ["order_amount", "purchase_currency", "purchase_country"] {
        if session[field] != body[field] {
            return bad(&format!("{field} (differs from the authorized session)"));
        }
    }
    k.tokens.get_mut(token).unwrap().2 = true;
    let order_id = uuid::Uuid::new_v4().to_string();
    let status = if fraud == "REJECTED" {
        "CANCELLED"
    } else {
        "AUTHORIZED"
    };
    k.orders.insert(
        order_id.clone(),
        Order {
            session_id,
            status,
            fraud_status: fraud.clone(),
            currency: body["purchase_currency"].as_str().unwrap().to_string(),
            amount: body["order_amount"].as_i64().unwrap(),
            captured: 0,
            refunded: 0,
            merchant_reference1: body["merchant_reference1"].clone(),
        },
    );
    Answer::new(
        200,
        json!({
            "order_id": order_id,
            "redirect_url": format!("https://payments.klarna.com/redirect/{order_id}"),
            "fraud_status": fraud,
            "authorized_payment_method": {"type": "invoice", "number_of_days": 30},
        }),
    )
}

fn manage(order: &mut Order, id: &str, method: &str, rest: &[&str], body: &Value) -> Answer {
    let location = |kind: &str, sub: &str| format!("/ordermanagement/v1/orders/{id}/{kind}/{sub}");
    match (method, rest) {
        ("GET", []) => Answer::new(
            200,
            json!({
                "order_id": id,
                "status": order.status,
                "fraud_status": order.fraud_status,
                "order_amount": order.amount,
                "original_order_amount": order.amount,
                "captured_amount": order.captured,
                "refunded_amount": order.refunded,
                "remaining_authorized_amount": if order.status == "CANCELLED" { 0 } else { order.amount - order.captured },
                "purchase_currency": order.currency,
                "merchant_reference1": order.merchant_reference1,
                "klarna_reference": format!("K{}", &order.session_id[..6]),
            }),
        ),
        ("POST", ["captures"]) => {
            let Some(amount) = body["captured_amount"].as_i64().filter(|a| *a > 0) else {
                return bad("captured_amount");
            };
            if !matches!(order.status, "AUTHORIZED" | "PART_CAPTURED")
                || order.fraud_status != "ACCEPTED"
            {
                return error(
                    403,
                    "CAPTURE_NOT_ALLOWED",
                    format!("Order is {}", order.status),
                );
            }
            if order.captured + amount > order.amount {
                return error(
                    403,
                    "CAPTURE_NOT_ALLOWED",
                    "Captured amount is higher than the remaining authorized amount".into(),
                );
            }
            order.captured += amount;
            order.status = if order.captured == order.amount {
                "CAPTURED"
            } else {
                "PART_CAPTURED"
            };
            let capture_id = uuid::Uuid::new_v4().to_string();
            Answer::new(201, Value::Null)
                .header("Capture-Id", &capture_id)
                .header("Location", &location("captures", &capture_id))
        }
        ("POST", ["refunds"]) => {
            let Some(amount) = body["refunded_amount"].as_i64().filter(|a| *a > 0) else {
                return bad("refunded_amount");
            };
            if order.refunded + amount > order.captured {
                return error(
                    403,
                    "REFUND_NOT_ALLOWED",
                    "Refunded amount is higher than the captured amount".into(),
                );
            }
            order.refunded += amount;
            let refund_id = uuid::Uuid::new_v4().to_string();
            Answer::new(201, Value::Null)
                .header("Refund-Id", &refund_id)
                .header("Location", &location("refunds", &refund_id))
        }
        ("POST", ["cancel"]) => {
            if order.status != "AUTHORIZED" {
                return error(
                    403,
                    "CANCEL_NOT_ALLOWED",
                    format!("Order is {}", order.status),
                );
            }
            order.status = "CANCELLED";
            Answer::new(204, Value::Null)
        }
        _ => error(
            404,
            "NOT_FOUND",
            format!(
                "{method} …/{} is not an Order Management API",
                rest.join("/")
            ),
        ),
    }
}

/// The Klarna provider end to end against this double.
mod tests {
    use super::KlarnaDouble;
    use crate::{fresh, request, TIMEOUT};
    use commerce::model::PaymentStatus;
    use commerce::payments::klarna::Klarna;
    use commerce::payments::{PaymentOutcome, PaymentProvider, PaymentRequest, Secret};
    use commerce::Error;
    use serde_json::json;

    async fn klarna() -> (KlarnaDouble, Klarna) {
        let (user, password) = (fresh("PK"), fresh("pw"));
        let double = KlarnaDouble::start(&user, &password).await;
        let klarna = Klarna::new(
            &double.url,
            Secret::new(user),
            Secret::new(password),
            TIMEOUT,
        )
        .unwrap();
        (double, klarna)
    }

    /// create → widget data → the shopper authorizes with `fraud` → the order's outcome.
    async fn klarna_pay(
        double: &KlarnaDouble,
        klarna: &Klarna,
        r: &PaymentRequest,
        fraud: &str,
    ) -> PaymentOutcome {
        let started = klarna.create(r).await.unwrap();
        assert_eq!(started.status, PaymentStatus::RequiresAction);
        let next = started.next_action.clone().unwrap();
        assert_eq!(next.kind, "klarna_widget");
        assert_eq!(next.data["session_id"], json!(started.reference));
        assert!(next.data["client_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        let token = double.authorize(&started.reference, fraud);
        klarna
            .confirm(
                &started.reference,
                r,
                &json!({"authorization_token": token, "approved": true}),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn klarna_session_widget_order_capture() {
        let (double, klarna) = klarna().await;
        let r = request(json!({"provider": "klarna"}), 3);
        let paid = klarna_pay(&double, &klarna, &r, "ACCEPTED").await;
        assert_eq!(
            (paid.status, paid.captured),
            (PaymentStatus::Captured, r.amount),
            "{paid:?}"
        );
        assert_eq!(
            double.order(&paid.reference),
            Some(("CAPTURED", r.amount, 0))
        );
        klarna.cancel(&paid.reference).await.unwrap_err();
    }

    #[tokio::test]
    async fn klarna_shopper_not_approving_or_declined() {
        let (double, klarna) = klarna().await;
        let r = request(json!({"provider": "klarna"}), 1);
        let started = klarna.create(&r).await.unwrap();
        let no = klarna
            .confirm(&started.reference, &r, &json!({"approved": false}))
            .await
            .unwrap();
        assert_eq!(no.status, PaymentStatus::Failed);
        assert_eq!(no.reference, started.reference);
        let forged = klarna
            .confirm(
                &started.reference,
                &r,
                &json!({"authorization_token": uuid::Uuid::new_v4().to_string()}),
            )
            .await
            .unwrap();
        assert_eq!(forged.status, PaymentStatus::Failed);
        assert!(forged
            .failure_reason
            .unwrap()
            .contains("unknown or expired"));
        klarna.cancel(&started.reference).await.unwrap();

        let rejected = klarna_pay(&double, &klarna, &request(json!({}), 1), "REJECTED").await;
        assert_eq!(rejected.status, PaymentStatus::Failed);
        assert!(rejected.failure_reason.unwrap().contains("REJECTED"));

        let pending = klarna_pay(&double, &klarna, &request(json!({}), 1), "PENDING").await;
        assert_eq!(
            (pending.status, pending.captured),
            (PaymentStatus::Authorized, 0)
        );
        klarna.cancel(&pending.reference).await.unwrap();
        assert_eq!(double.order(&pending.reference), Some(("CANCELLED", 0, 0)));

        // The token is single-use.
        let r = request(json!({}), 1);
        let started = klarna.create(&r).await.unwrap();
        let token = double.authorize(&started.reference, "ACCEPTED");
        let params = json!({"authorization_token": token});
        assert_eq!(
            klarna
                .confirm(&started.reference, &r, &params)
                .await
                .unwrap()
                .status,
            PaymentStatus::Captured
        );
        assert_eq!(
            klarna
                .confirm(&started.reference, &r, &params)
                .await
                .unwrap()
                .status,
            PaymentStatus::Failed
        );

        // An order whose amount changed after the authorization is refused by Klarna: our bug, not a decline.
        let r = request(json!({}), 1);
        let started = klarna.create(&r).await.unwrap();
        let token = double.authorize(&started.reference, "ACCEPTED");
        let changed = PaymentRequest {
            order_id: r.order_id,
            ..request(json!({}), 2)
        };
        let err = klarna
            .confirm(
                &started.reference,
                &changed,
                &json!({"authorization_token": token}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Internal(ref m) if m.contains("BAD_VALUE")),
            "{err:?}"
        );
        // …and the authorization was released (DELETE), so it cannot be placed any more.
        let released = klarna
            .confirm(
                &started.reference,
                &r,
                &json!({"authorization_token": token}),
            )
            .await
            .unwrap();
        assert_eq!(released.status, PaymentStatus::Failed);
    }

    #[tokio::test]
    async fn klarna_refund_partial_then_full_then_over_refund_rejected() {
        let (double, klarna) = klarna().await;
        let r = request(json!({"provider": "klarna"}), 2);
        let paid = klarna_pay(&double, &klarna, &r, "ACCEPTED").await;
        let part = klarna
            .refund(&paid.reference, 18_900, "EUR", &fresh("refund-"))
            .await
            .unwrap();
        assert_eq!(part.amount, 18_900);
        assert!(!part.reference.is_empty());
        let key = fresh("refund-");
        let rest = klarna
            .refund(&paid.reference, r.amount - 18_900, "EUR", &key)
            .await
            .unwrap();
        assert_ne!(rest.reference, part.reference);
        assert_eq!(
            double.order(&paid.reference),
            Some(("CAPTURED", r.amount, r.amount))
        );
        let over = klarna
            .refund(&paid.reference, 1, "EUR", &fresh("refund-"))
            .await
            .unwrap_err();
        assert!(matches!(over, Error::Conflict(_)), "{over:?}");
        let usd = klarna
            .refund(&paid.reference, 1, "USD", &fresh("refund-"))
            .await
            .unwrap_err();
        assert!(matches!(usd, Error::BadInput { .. }), "{usd:?}");
        assert!(matches!(
            klarna
                .refund(&uuid::Uuid::new_v4().to_string(), 1, "EUR", "k")
                .await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn klarna_wrong_credentials_are_our_error() {
        let (double, _) = klarna().await;
        let wrong = Klarna::new(
            &double.url,
            Secret::new("PK_wrong"),
            Secret::new("nope"),
            TIMEOUT,
        )
        .unwrap();
        let err = wrong.create(&request(json!({}), 1)).await.unwrap_err();
        assert!(
            matches!(err, Error::Internal(ref m) if m.contains("authentication failed")),
            "{err:?}"
        );
        let mut split = request(json!({}), 1);
        split.amount -= split.totals.vat;
        let err = wrong.create(&split).await.unwrap_err();
        assert!(matches!(err, Error::BadInput { ref field, .. } if field == "payment.provider"));
    }

    /// The double itself refuses what Klarna refuses (so the provider tests prove something).
    #[tokio::test]
    async fn klarna_double_validates_what_it_is_sent() {
        let double = KlarnaDouble::start("PK_x", "pw").await;
        let client = reqwest::Client::new();
        let send = |method: reqwest::Method, path: &str, body: serde_json::Value| {
            client
                .request(method, format!("{}{path}", double.url))
                .basic_auth("PK_x", Some("pw"))
                .json(&body)
                .send()
        };
        let line = json!({"type": "physical", "name": "Borsa", "quantity": 2, "unit_price": 18_900,
                          "tax_rate": 2200, "total_amount": 37_800, "total_tax_amount": 6_816});
        let order = json!({"purchase_country": "IT", "purchase_currency": "EUR", "locale": "it-IT",
                           "order_amount": 37_800, "order_tax_amount": 6_816, "order_lines": [line]});
        let ok = send(
            reqwest::Method::POST,
            "/payments/v1/sessions",
            order.clone(),
        )
        .await
        .unwrap();
        assert_eq!(ok.status(), 200);
        for (field, value, named) in [
            ("order_tax_amount", json!(6_800), "order_tax_amount"),
            ("order_amount", json!(37_801), "order_amount"),
            ("purchase_currency", json!("eur"), "purchase_currency"),
        ] {
            let mut bad = order.clone();
            bad[field] = value;
            let reply = send(reqwest::Method::POST, "/payments/v1/sessions", bad)
                .await
                .unwrap();
            assert_eq!(reply.status(), 400);
            let body: serde_json::Value = reply.json().await.unwrap();
            assert_eq!(body["error_code"], "BAD_VALUE");
            assert!(
                body["error_messages"][0].as_str().unwrap().contains(named),
                "{body}"
            );
        }
        let mut off_by_two = order.clone();
        off_by_two["order_lines"][0]["total_tax_amount"] = json!(6_819);
        off_by_two["order_tax_amount"] = json!(6_819);
        let reply = send(reqwest::Method::POST, "/payments/v1/sessions", off_by_two)
            .await
            .unwrap();
        assert_eq!(reply.status(), 400, "Klarna's tax formula allows ±1 only");
        let order_id = uuid::Uuid::new_v4();
        let capture = send(
            reqwest::Method::POST,
            &format!("/ordermanagement/v1/orders/{order_id}/captures"),
            json!({"captured_amount": 1}),
        )
        .await
        .unwrap();
        assert_eq!(capture.status(), 404);
        let unauthorized = client
            .post(format!("{}/payments/v1/sessions", double.url))
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorized.status(), 401);
    }
}
