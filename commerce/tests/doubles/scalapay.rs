//! A Scalapay double: API v2 `POST /v2/orders`, `GET /v2/payments/{token}`, `POST /v2/payments/capture`,
//! `POST /v2/payments/{token}/refund`, `POST /v2/payments/{token}/void`; `Authorization: Bearer <key>`.
//!
//! It validates as Scalapay documents: the order's required fields (`totalAmount`, `consumer` with
//! `givenNames` / `surname` / `email` / `phoneNumber`, `shipping` with `name` / `line1` / `suburb` /
//! `postcode` / `countryCode` / `phoneNumber`, `items` with `name` / `category` / `sku` / `quantity` /
//! `price`, `merchant.redirectConfirmUrl` / `redirectCancelUrl`), amounts as two-decimal strings in EUR, and
//! — our own invariant — Σ items = `totalAmount` and `taxAmount` ≤ `totalAmount`. `Idempotency-Key` replays
//! the first answer. Errors use the documented envelope `{"errorCode", "errorId", "message",
//! "httpStatusCode"}` (`api_validationerror` 400, `invalid_token` 422) and a bare `"Unauthorized"` with 401.
//!
//! Where Scalapay publishes no contract, the double assumes (and the provider is written to tolerate
//! either): capturing an order the shopper declined answers 200 with `status: DECLINED`; one the shopper
//! never authorized answers 400 `order_not_authorized`; refunding beyond the capture answers 400
//! `refund_amount_exceeded`; voiding or capturing a captured order answers 400 `order_already_captured`.
//!
//! The shopper is played by [`ScalapayDouble::approve`] / [`ScalapayDouble::decline`] (what happens on the
//! `checkoutUrl` page).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{parse, serve, Answer};

/// A running Scalapay double.
#[derive(Clone)]
pub(crate) struct ScalapayDouble {
    pub(crate) url: String,
    state: Arc<Mutex<Scalapay>>,
}

struct Scalapay {
    authorization: String,
    base: String,
    orders: HashMap<String, Order>,
    replies: HashMap<String, (String, Answer)>,
}

struct Order {
    /// `created`, `authorized`, `declined`, `charged`, `voided`.
    status: &'static str,
    total: i64,
    refunded: i64,
    merchant_reference: Value,
}

fn error(status: u16, code: &str, message: Value) -> Answer {
    Answer::new(
        status,
        json!({
            "errorCode": code,
            "errorId": format!("error-{}", &uuid::Uuid::new_v4().simple().to_string()[..13]),
            "message": message,
            "httpStatusCode": status,
        }),
    )
}

fn invalid(field: &str, why: &str) -> Answer {
    let path: Vec<&str> = field.split('.').collect();
    error(
        400,
        "api_validationerror",
        json!({"status": 400, "statusText": "Bad Request", "errors": [
            {"field": path, "location": "body", "messages": [format!("\"{field}\" {why}")], "types": ["any.invalid"]}
        ]}),
    )
}

/// `"829.90"` → 82990; `None` unless digits, a dot and exactly two decimals.
fn cents(s: &str) -> Option<i64> {
    let (units, decimals) = s.split_once('.')?;
    if units.is_empty()
        || decimals.len() != 2
        || !units
            .bytes()
            .chain(decimals.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(units.parse::<i64>().ok()? * 100 + decimals.parse::<i64>().ok()?)
}

/// An `{amount, currency}` object in EUR, as cents.
fn money(v: &Value, field: &str) -> Result<i64, Answer> {
    let amount = v["amount"].as_str().and_then(cents);
    let amount = amount.ok_or_else(|| {
        invalid(
            &format!("{field}.amount"),
            "must be a decimal string like 12.34",
        )
    })?;
    if v["currency"] != "EUR" {
        return Err(invalid(&format!("{field}.currency"), "must be EUR"));
    }
    Ok(amount)
}

impl ScalapayDouble {
    /// Starts a double that accepts the API key `key`.
    pub(crate) async fn start(key: &str) -> ScalapayDouble {
        let state = Arc::new(Mutex::new(Scalapay {
            authorization: format!("Bearer {key}"),
            base: String::new(),
            orders: HashMap::new(),
            replies: HashMap::new(),
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let url = serve(router).await;
        state.lock().unwrap().base = url.clone();
        ScalapayDouble { url, state }
    }

    fn shopper(&self, token: &str, status: &'static str) {
        let mut s = self.state.lock().unwrap();
        let order = s.orders.get_mut(token).expect("no such order token");
        assert_eq!(order.status, "created", "the shopper acts once");
        order.status = status;
    }

    /// The shopper completes the Scalapay checkout.
    pub(crate) fn approve(&self, token: &str) {
        self.shopper(token, "authorized");
    }

    /// Scalapay declines the shopper on the checkout page.
    pub(crate) fn decline(&self, token: &str) {
        self.shopper(token, "declined");
    }

    /// (status, refunded cents) of an order.
    pub(crate) fn order(&self, token: &str) -> Option<(&'static str, i64)> {
        let s = self.state.lock().unwrap();
        s.orders.get(token).map(|o| (o.status, o.refunded))
    }
}

async fn handle(
    State(state): State<Arc<Mutex<Scalapay>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(s.authorization.as_str())
    {
        return Answer::new(401, json!("Unauthorized")).into_response();
    }
    let Some(body) = parse(&body) else {
        return invalid("body", "must be JSON").into_response();
    };
    let key = headers
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let route = format!("{method} {}", uri.path());
    if let Some((first_route, answer)) = key.as_ref().and_then(|k| s.replies.get(k)) {
        if *first_route == route {
            return answer
                .clone()
                .header("Request-Idempotency", "true")
                .into_response();
        }
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let answer = match (method.as_str(), segments.as_slice()) {
        ("POST", ["v2", "orders"]) => create(&mut s, &body).unwrap_or_else(|e| e),
        ("POST", ["v2", "payments", "capture"]) => capture(&mut s, &body),
        ("GET", ["v2", "payments", token]) => match s.orders.get(*token) {
            Some(o) => Answer::new(
                200,
                json!({"token": token, "status": o.status, "totalAmount": {"amount": format!("{}.{:02}", o.total / 100, o.total % 100), "currency": "EUR"}}),
            ),
            None => error(
                422,
                "invalid_token",
                json!(format!("Order {token} not found.")),
            ),
        },
        ("POST", ["v2", "payments", token, "refund"]) => {
            refund(&mut s, token, &body).unwrap_or_else(|e| e)
        }
        ("POST", ["v2", "payments", token, "void"]) => match s.orders.get_mut(*token) {
            None => error(
                422,
                "invalid_token",
                json!(format!("Order {token} not found.")),
            ),
            Some(o) if o.status == "charged" => error(
                400,
                "order_already_captured",
                json!("A captured order cannot be voided; refund it"),
            ),
            Some(o) => {
                o.status = "voided";
                Answer::new(
                    200,
                    json!({"token": token, "merchantReference": o.merchant_reference, "voidedAt": chrono::Utc::now().to_rfc3339()}),
                )
            }
        },
        _ => error(
            404,
            "not_found",
            json!(format!("{route} is not a Scalapay API")),
        ),
    };
    if let Some(key) = key {
        if answer.status < 500 {
            s.replies.insert(key, (route, answer.clone()));
        }
    }
    answer.into_response()
}

fn create(s: &mut Scalapay, body: &Value) -> Result<Answer, Answer> {
    let text = |path: &str| {
        let mut v = body;
        for p in path.split('.') {
            v = &v[p];
        }
        v.as_str()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| invalid(path, "is required"))
    };
    let total = money(&body["totalAmount"], "totalAmount")?;
    for field in [
        "consumer.givenNames",
        "consumer.surname",
        "consumer.email",
        "consumer.phoneNumber",
    ] {
        text(field)?;
    }
    for field in [
        "name",
        "line1",
        "suburb",
        "postcode",
        "countryCode",
        "phoneNumber",
    ] {
        text(&format!("shipping.{field}"))?;
    }
    for field in ["merchant.redirectConfirmUrl", "merchant.redirectCancelUrl"] {
        if !text(field)?.starts_with("http") {
            return Err(invalid(field, "must be a URL"));
        }
    }
    let items = body["items"].as_array().filter(|i| !i.is_empty());
    let items = items.ok_or_else(|| invalid("items", "must contain at least 1 item"))?;
    let mut sum = 0;
    for (i, item) in items.iter().enumerate() {
        for field in ["name", "category", "sku"] {
            if item[field].as_str().is_none_or(str::is_empty) {
                return Err(invalid(&format!("items.{i}.{field}"), "is required"));
            }
        }
        let quantity = item["quantity"].as_i64().filter(|q| *q > 0);
        let quantity = quantity
            .ok_or_else(|| invalid(&format!("items.{i}.quantity"), "must be a positive integer"))?;
        sum += quantity * money(&item["price"], &format!("items.{i}.price"))?;
    }
    if sum != total {
        return Err(invalid(
            "totalAmount.amount",
            "must equal the sum of the items",
        ));
    }
    if !body["taxAmount"].is_null() && money(&body["taxAmount"], "taxAmount")? > total {
        return Err(invalid("taxAmount.amount", "must not exceed totalAmount"));
    }
    let token: String = uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase();
    s.orders.insert(
        token.clone(),
        Order {
            status: "created",
            total,
            refunded: 0,
            merchant_reference: body["merchantReference"].clone(),
        },
    );
    Ok(Answer::new(
        200,
        json!({
            "token": token,
            "expires": (chrono::Utc::now() + chrono::Duration::minutes(40)).to_rfc3339(),
            "checkoutUrl": format!("{}/checkout/{token}", s.base),
        }),
    ))
}

fn capture(s: &mut Scalapay, body: &Value) -> Answer {
    let Some(token) = body["token"].as_str() else {
        return invalid("token", "is required");
    };
    let Some(order) = s.orders.get_mut(token) else {
        return error(
            422,
            "invalid_token",
            json!(format!("Order {token} not found.")),
        );
    };
    match order.status {
        "authorized" => {
            order.status = "charged";
            if !body["merchantReference"].is_null() {
                order.merchant_reference = body["merchantReference"].clone();
            }
            let total = format!("{}.{:02}", order.total / 100, order.total % 100);
            Answer::new(
                200,
                json!({"token": token, "status": "APPROVED", "totalAmount": {"amount": total, "currency": "EUR"},
                       "capturedAt": chrono::Utc::now().to_rfc3339()}),
            )
        }
        "declined" => Answer::new(200, json!({"token": token, "status": "DECLINED"})),
        "charged" => error(
            400,
            "order_already_captured",
            json!(format!("Order {token} is already captured")),
        ),
        other => error(
            400,
            "order_not_authorized",
            json!(format!(
                "Order {token} has not been authorized by the consumer (status {other})"
            )),
        ),
    }
}

fn refund(s: &mut Scalapay, token: &str, body: &Value) -> Result<Answer, Answer> {
    let amount = money(&body["refundAmount"], "refundAmount")?;
    if amount <= 0 {
        return Err(invalid("refundAmount.amount", "must be positive"));
    }
    let Some(order) = s.orders.get_mut(token) else {
        return Err(error(
            422,
            "invalid_token",
            json!(format!("Order {token} not found.")),
        ));
    };
    if order.status != "charged" {
        return Err(error(
            400,
            "order_not_captured",
            json!(format!("Order {token} is {}", order.status)),
        ));
    }
    if order.refunded + amount > order.total {
        return Err(error(
            400,
            "refund_amount_exceeded",
            json!(format!(
                "The refund exceeds the {} cents left",
                order.total - order.refunded
            )),
        ));
    }
    order.refunded += amount;
    Ok(Answer::new(
        200,
        json!({
            "token": token,
            "amount": body["refundAmount"],
            "merchantReference": order.merchant_reference,
            "merchantRefundReference": body["merchantRefundReference"],
            "refundToken": format!("RF{}", &uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase()),
            "refundedAt": chrono::Utc::now().to_rfc3339(),
        }),
    ))
}

/// The Scalapay provider end to end against this double.
mod tests {
    use super::ScalapayDouble;
    use crate::{fresh, request, TIMEOUT};
    use commerce::model::PaymentStatus;
    use commerce::payments::scalapay::Scalapay;
    use commerce::payments::{PaymentProvider, Secret};
    use commerce::Error;
    use serde_json::{json, Value};

    async fn scalapay() -> (ScalapayDouble, Scalapay) {
        let key = fresh("sp_");
        let double = ScalapayDouble::start(&key).await;
        let scalapay = Scalapay::new(&double.url, Secret::new(key), TIMEOUT).unwrap();
        (double, scalapay)
    }

    fn scalapay_method() -> Value {
        json!({"provider": "scalapay", "return_url": "https://lusso.example/checkout/return", "phone": "+39 02 7654321"})
    }

    #[tokio::test]
    async fn scalapay_redirect_then_capture() {
        let (double, scalapay) = scalapay().await;
        let r = request(scalapay_method(), 1);
        let started = scalapay.create(&r).await.unwrap();
        assert_eq!(started.status, PaymentStatus::RequiresAction);
        let next = started.next_action.clone().unwrap();
        assert_eq!(next.kind, "redirect");
        assert_eq!(
            next.url,
            Some(format!("{}/checkout/{}", double.url, started.reference))
        );
        double.approve(&started.reference);
        let params = json!({"orderToken": started.reference, "status": "SUCCESS"});
        let paid = scalapay
            .confirm(&started.reference, &r, &params)
            .await
            .unwrap();
        assert_eq!(
            (paid.status, paid.captured),
            (PaymentStatus::Captured, r.amount),
            "{paid:?}"
        );
        // A retried confirm replays the capture (same idempotency key).
        let again = scalapay
            .confirm(&started.reference, &r, &params)
            .await
            .unwrap();
        assert_eq!(again, paid);
        assert_eq!(double.order(&started.reference), Some(("charged", 0)));
        // Idempotent create: the same key gives the same token.
        let twice = scalapay.create(&r).await.unwrap();
        assert_eq!(twice.reference, started.reference);
    }

    #[tokio::test]
    async fn scalapay_declined_or_abandoned_fails() {
        let (double, scalapay) = scalapay().await;
        let r = request(scalapay_method(), 1);
        let declined = scalapay.create(&r).await.unwrap();
        double.decline(&declined.reference);
        let out = scalapay
            .confirm(
                &declined.reference,
                &r,
                &json!({"order_token": declined.reference}),
            )
            .await
            .unwrap();
        assert_eq!(out.status, PaymentStatus::Failed);
        assert!(out.failure_reason.unwrap().contains("DECLINED"));

        let r = request(scalapay_method(), 1);
        let abandoned = scalapay.create(&r).await.unwrap();
        let out = scalapay
            .confirm(&abandoned.reference, &r, &json!({}))
            .await
            .unwrap();
        assert_eq!(out.status, PaymentStatus::Failed);
        assert!(out.failure_reason.unwrap().contains("order_not_authorized"));
        scalapay.cancel(&abandoned.reference).await.unwrap();
        assert_eq!(double.order(&abandoned.reference), Some(("voided", 0)));

        let r = request(scalapay_method(), 1);
        let cancelled = scalapay.create(&r).await.unwrap();
        let params = json!({"orderToken": cancelled.reference, "status": "FAILURE"});
        let out = scalapay
            .confirm(&cancelled.reference, &r, &params)
            .await
            .unwrap();
        assert_eq!(out.status, PaymentStatus::Failed);
        assert_eq!(
            double.order(&cancelled.reference),
            Some(("created", 0)),
            "no capture attempted"
        );
    }

    #[tokio::test]
    async fn scalapay_refund_partial_then_full_then_over_refund_rejected() {
        let (double, scalapay) = scalapay().await;
        let r = request(scalapay_method(), 2);
        let started = scalapay.create(&r).await.unwrap();
        double.approve(&started.reference);
        let paid = scalapay
            .confirm(&started.reference, &r, &json!({}))
            .await
            .unwrap();
        assert_eq!(paid.status, PaymentStatus::Captured);
        let part = scalapay
            .refund(&paid.reference, 4_550, "EUR", &fresh("refund-"))
            .await
            .unwrap();
        assert_eq!(part.amount, 4_550);
        assert!(part.reference.starts_with("RF"));
        scalapay
            .refund(&paid.reference, r.amount - 4_550, "EUR", &fresh("refund-"))
            .await
            .unwrap();
        assert_eq!(double.order(&paid.reference), Some(("charged", r.amount)));
        let over = scalapay
            .refund(&paid.reference, 1, "EUR", &fresh("refund-"))
            .await
            .unwrap_err();
        assert!(
            matches!(over, Error::Conflict(ref m) if m.contains("refund_amount_exceeded")),
            "{over:?}"
        );
        let err = scalapay.cancel(&paid.reference).await.unwrap_err();
        assert!(
            matches!(err, Error::Conflict(_)),
            "a captured order is not voided: {err:?}"
        );
    }

    #[tokio::test]
    async fn scalapay_wrong_key_is_our_error() {
        let (double, _) = scalapay().await;
        let wrong = Scalapay::new(&double.url, Secret::new("not-the-key"), TIMEOUT).unwrap();
        let err = wrong
            .create(&request(scalapay_method(), 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Internal(ref m) if m.contains("unauthorized")),
            "{err:?}"
        );
        let no_phone = request(
            json!({"provider": "scalapay", "return_url": "https://lusso.example/r"}),
            1,
        );
        let err = wrong.create(&no_phone).await.unwrap_err();
        assert!(matches!(err, Error::BadInput { ref field, .. } if field == "payment.phone"));
    }

    /// The double itself refuses what Scalapay refuses (so the provider tests prove something).
    #[tokio::test]
    async fn scalapay_double_validates_what_it_is_sent() {
        let double = ScalapayDouble::start("sp_key").await;
        let money = |a: &str| json!({"amount": a, "currency": "EUR"});
        let place = json!({"name": "G B", "line1": "Corso Venezia 12", "suburb": "Milano", "postcode": "20121",
                           "countryCode": "IT", "phoneNumber": "+39 02 1"});
        let order = json!({
            "totalAmount": money("378.00"),
            "consumer": {"givenNames": "G", "surname": "B", "email": "g@example.it", "phoneNumber": "+39 02 1"},
            "shipping": place,
            "items": [{"name": "Borsa", "category": "clothing", "sku": "LX", "quantity": 2, "price": money("189.00")}],
            "merchant": {"redirectConfirmUrl": "https://s/ok", "redirectCancelUrl": "https://s/ko"},
        });
        let client = reqwest::Client::new();
        let post = |body: Value| {
            client
                .post(format!("{}/v2/orders", double.url))
                .bearer_auth("sp_key")
                .json(&body)
                .send()
        };
        assert_eq!(post(order.clone()).await.unwrap().status(), 200);
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut bad = order.clone();
        bad["totalAmount"] = money("378.0");
        cases.push((bad, "totalAmount"));
        let mut bad = order.clone();
        bad["totalAmount"] = money("377.99");
        cases.push((bad, "totalAmount"));
        let mut bad = order.clone();
        bad["consumer"]["phoneNumber"] = Value::Null;
        cases.push((bad, "phoneNumber"));
        let mut bad = order.clone();
        bad["items"][0]["price"]["currency"] = json!("USD");
        cases.push((bad, "currency"));
        for (body, field) in cases {
            let reply = post(body).await.unwrap();
            assert_eq!(reply.status(), 400);
            let body: Value = reply.json().await.unwrap();
            assert_eq!(body["errorCode"], "api_validationerror");
            assert!(
                body["message"]["errors"][0]["field"]
                    .to_string()
                    .contains(field),
                "{body}"
            );
        }
        let unauthorized = client
            .post(format!("{}/v2/orders", double.url))
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorized.status(), 401);
        assert_eq!(
            unauthorized.json::<Value>().await.unwrap(),
            json!("Unauthorized")
        );
    }
}
