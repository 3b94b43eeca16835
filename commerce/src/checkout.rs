//! Checkout and payments: `POST /v1/checkouts`, payment confirmation, provider webhooks, reservation expiry.
//!
//! # Checkout, step by step
//! 1. **Validate** the body (every error names its field), price the cart in its market through the
//!    [`crate::catalog::PriceList`], decide the tax regime from the shipping country and compute IVA
//!    ([`crate::tax`]).
//! 2. **Transaction 1**: claim the `Idempotency-Key`, lock the cart and the stock rows of its SKUs, allocate
//!    across the locations ([`crate::inventory`]), reserve, write the order (`pending_payment`), mark the
//!    cart checked out, append `order_placed` and `stock_level` messages to the outbox; commit. Short
//!    stock → `409` and nothing is kept (the key is free again).
//! 3. **Provider call** (outside any transaction, so no lock is held across the network), with an
//!    idempotency key derived from the order id: a retry never creates a second charge.
//! 4. **Transaction 2**: apply the outcome to the order (paid → stock committed; failed → released;
//!    requires action → kept until confirmation or expiry), append `order_status` / `stock_level`
//!    messages, store the response under the key; commit.
//!
//! # Idempotency
//! The key is remembered 24 h with a SHA-256 of the body. The same key and body replays the stored status
//! and body (never a second order or charge); the same key with another body is `409`. If the first attempt
//! died between steps 2 and 4 (crash, provider down), a retry with the key resumes at step 3 for the same
//! order.
//!
//! # Late outcomes
//! A webhook or confirmation for an order that was already settled changes nothing, except a capture
//! arriving after the reservation expired: the money is refunded at once and the order stays cancelled
//! (its stock may have been sold meanwhile).

use chrono::Duration as ChronoDuration;
use pipelines::commerce::{CommerceEvent, CommerceLine};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::inventory::{self, AllocationPolicy, Reservation, StockEffect};
use crate::model::{
    Address, Buyer, BuyerKind, NextAction, Order, OrderStatus, Payment, PaymentStatus, PricedItem,
};
use crate::payments::{PaymentOutcome, PaymentRequest};
use crate::service::Commerce;
use crate::store::{Claim, IdempotencyRecord, StoredResponse, Tx};
use crate::{tax, Error, Result};

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Body of `POST /v1/checkouts`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutInput {
    pub cart_id: Uuid,
    pub email: String,
    /// The shopper's storefront id when signed in.
    #[serde(default)]
    pub user_id: Option<String>,
    pub shipping: Address,
    /// Invoice data; default: a consumer billed at the shipping address.
    #[serde(default)]
    pub buyer: Option<Buyer>,
    /// `{"provider": "fake"|"stripe"|"klarna"|"scalapay", …provider fields}` — provider tokens and ids
    /// only, never card data.
    pub payment: serde_json::Value,
    /// BCP 47 locale for the provider's pages (default `it-IT`).
    #[serde(default)]
    pub locale: Option<String>,
}

/// What `POST /v1/checkouts` and the payment endpoints answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckoutResponse {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub currency: String,
    pub amount_due: i64,
    /// What the shopper's browser must do next, when the payment needs it.
    pub next_action: Option<NextAction>,
    pub order: Order,
    /// The order's access token (`POST /v1/checkouts` only): sent as `X-Order-Token` with a publishable key,
    /// it opens this order's reads, payment confirmation, returns and invoice. Derived, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

impl CheckoutResponse {
    pub fn of(order: Order) -> CheckoutResponse {
        CheckoutResponse {
            order_id: order.id,
            status: order.status,
            currency: order.currency.clone(),
            amount_due: order.tax.totals.amount_due,
            next_action: order.payment.next_action.clone(),
            order,
            access_token: None,
        }
    }
}

/// Validates an `Idempotency-Key` header value.
pub fn check_idempotency_key(key: Option<&str>) -> Result<String> {
    let key = key.map(str::trim).unwrap_or("");
    if key.is_empty() {
        return Err(Error::bad(
            "Idempotency-Key",
            "header required: a unique value per checkout attempt (e.g. a UUID), reused on retries",
        ));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::bad(
            "Idempotency-Key",
            format!("must be 1–{MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(key.to_string())
}

/// The order's new state for a provider outcome, and what it does to the reserved stock.
pub fn apply_outcome(order: &mut Order, outcome: &PaymentOutcome) -> StockEffect {
    if !order.status.holds_reservation() {
        return StockEffect::Keep;
    }
    order.payment.reference = Some(outcome.reference.clone());
    order.payment.next_action = outcome.next_action.clone();
    order.payment.failure_reason = outcome.failure_reason.clone();
    order.payment.status = outcome.status;
    match outcome.status {
        PaymentStatus::Captured => {
            order.payment.captured = if outcome.captured > 0 {
                outcome.captured
            } else {
                order.payment.amount
            };
            order.payment.next_action = None;
            order.status = OrderStatus::Paid;
            StockEffect::Commit
        }
        PaymentStatus::Authorized => {
            order.status = OrderStatus::Authorized;
            StockEffect::Keep
        }
        PaymentStatus::RequiresAction => {
            order.status = OrderStatus::RequiresAction;
            StockEffect::Keep
        }
        PaymentStatus::Pending => StockEffect::Keep,
        PaymentStatus::Failed => {
            order.status = OrderStatus::PaymentFailed;
            order.payment.next_action = None;
            StockEffect::Release
        }
        PaymentStatus::Cancelled => {
            order.status = OrderStatus::Cancelled;
            order.payment.next_action = None;
            StockEffect::Release
        }
    }
}

/// The `order_status` message for the order's current state.
pub(crate) fn status_event(order: &Order, ts: chrono::DateTime<chrono::Utc>) -> CommerceEvent {
    CommerceEvent::OrderStatus {
        event_id: Uuid::new_v4(),
        ts,
        order_id: order.id,
        user_id: order.user_id.clone(),
        status: order.status.as_str().to_string(),
        payment_status: serde_json::to_value(order.payment.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        provider: order.payment.provider.clone(),
        captured: order.payment.captured,
    }
}

pub(crate) fn order_lines(order: &Order) -> Vec<CommerceLine> {
    order
        .tax
        .lines
        .iter()
        .map(|l| CommerceLine {
            product_id: l.product_id.clone(),
            variant_id: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
        })
        .collect()
}

/// Applies a reservation change for `order`'s allocations inside `tx`, with its `stock_level` messages.
pub(crate) async fn change_stock(
    tx: &mut dyn Tx,
    order: &Order,
    change: Reservation,
    ts: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let mut skus: Vec<String> = order.allocations.iter().map(|a| a.sku.clone()).collect();
    skus.sort();
    skus.dedup();
    let mut rows = tx.lock_stock(&skus).await?;
    for i in inventory::apply(&mut rows, &order.allocations, change)? {
        tx.put_stock(&rows[i]).await?;
        tx.push_outbox(&rows[i].product_id, &rows[i].event(ts))
            .await?;
    }
    Ok(())
}

impl Commerce {
    /// `POST /v1/checkouts` with its `Idempotency-Key`: the HTTP status and the body to answer.
    pub async fn checkout(&self, key: &str, body: serde_json::Value) -> Result<StoredResponse> {
        // Bounded: at most `max_concurrent_checkouts` in flight; a request waits ≤ 5 s for a slot, then 503.
        let _permit =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.checkouts.acquire())
                .await
                .map_err(|_| {
                    Error::Unavailable(
                        "too many checkouts in flight; retry with the same Idempotency-Key".into(),
                    )
                })?
                .map_err(|_| Error::Unavailable("checkout is shutting down".into()))?;
        let started = std::time::Instant::now();
        let result = self.checkout_inner(key, body).await;
        self.metrics.observe_checkout(&result, started.elapsed());
        result
    }

    async fn checkout_inner(&self, key: &str, body: serde_json::Value) -> Result<StoredResponse> {
        let request_hash = hex(&Sha256::digest(
            serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?,
        ));
        let input: CheckoutInput = crate::api::from_value(body)?;
        let provider_name = input
            .payment
            .get("provider")
            .and_then(|p| p.as_str())
            .ok_or_else(|| Error::bad("payment.provider", "required: the payment provider's name"))?
            .to_string();
        let provider = self.providers.get(&provider_name)?;
        let draft = self.draft_order(&input, &provider_name).await?;
        let now = self.now();

        let mut tx = self.store.begin().await?;
        let claim = tx
            .claim_idempotency(&IdempotencyRecord {
                key: key.to_string(),
                request_hash: request_hash.clone(),
                order_id: draft.id,
                response: None,
                created_at: now,
            })
            .await?;
        let order = match claim {
            Claim::Existing(rec) => {
                drop(tx);
                if rec.request_hash != request_hash {
                    return Err(Error::Conflict(
                        "Idempotency-Key was already used for a different checkout request".into(),
                    ));
                }
                if let Some(stored) = rec.response {
                    self.metrics.idempotent_replays.inc();
                    return Ok(stored);
                }
                // The first attempt stopped before settling: resume it for the same order.
                let order = self.store.order(rec.order_id).await?.ok_or_else(|| {
                    Error::Internal(format!(
                        "order `{}` of a claimed key is missing",
                        rec.order_id
                    ))
                })?;
                if !order.status.holds_reservation() || order.payment.reference.is_some() {
                    let response = StoredResponse {
                        status: 201,
                        body: to_body(&CheckoutResponse::of(order))?,
                    };
                    return Ok(response);
                }
                order
            }
            Claim::New => {
                let order = self.reserve(&mut *tx, draft, &input).await?;
                tx.commit().await?;
                order
            }
        };

        let request = self.payment_request(&order, input.payment.clone(), input.locale.clone());
        let outcome = match provider.create(&request).await {
            Ok(o) => o,
            Err(Error::BadInput { field, reason }) => PaymentOutcome {
                reference: String::new(),
                status: PaymentStatus::Failed,
                captured: 0,
                next_action: None,
                failure_reason: Some(format!("{field}: {reason}")),
            },
            Err(Error::PaymentFailed { reason, .. }) => PaymentOutcome {
                reference: String::new(),
                status: PaymentStatus::Failed,
                captured: 0,
                next_action: None,
                failure_reason: Some(reason),
            },
            // Unavailable / internal: the order keeps its reservation until expiry; a retry with the same
            // key resumes here.
            Err(e) => return Err(e),
        };
        let (order, _) = self.settle(order.id, &outcome, Some(key), None).await?;
        response_for(&order)
    }

    /// Prices the cart and computes its taxes: the order as it will be placed (no allocation yet).
    async fn draft_order(&self, input: &CheckoutInput, provider: &str) -> Result<Order> {
        let cart = self.store.cart(input.cart_id).await?.ok_or_else(|| {
            Error::bad(
                "cart_id",
                format!("cart `{}` does not exist", input.cart_id),
            )
        })?;
        if cart.lines.is_empty() {
            return Err(Error::bad("cart_id", "the cart is empty"));
        }
        let buyer = match &input.buyer {
            Some(b) => {
                if !b.email.eq_ignore_ascii_case(input.email.trim()) {
                    return Err(Error::bad("buyer.email", "must equal `email`"));
                }
                b.clone()
            }
            None => Buyer {
                kind: BuyerKind::Consumer,
                email: input.email.trim().to_string(),
                codice_fiscale: None,
                partita_iva: None,
                sdi_code: None,
                pec: None,
                billing: input.shipping.clone(),
            },
        };
        if let Some(u) = &input.user_id {
            if u.trim().is_empty() || u.len() > 128 {
                return Err(Error::bad("user_id", "must be 1–128 characters"));
            }
        }
        let shipping = &input.shipping;
        if !pipelines::iso::is_country(&shipping.country) {
            return Err(Error::bad(
                "shipping.country",
                format!(
                    "`{}` is not an ISO 3166-1 alpha-2 country",
                    shipping.country
                ),
            ));
        }
        for (field, v) in [
            ("shipping.name", &shipping.name),
            ("shipping.street", &shipping.street),
            ("shipping.city", &shipping.city),
            ("shipping.postal_code", &shipping.postal_code),
        ] {
            if v.trim().is_empty() || v.len() > 200 {
                return Err(Error::bad(field, "required, at most 200 characters"));
            }
        }
        let regime = tax::regime_for(&shipping.country);
        tax::validate_buyer(&buyer, regime)?;
        let mut items = Vec::with_capacity(cart.lines.len());
        let mut currency = None::<String>;
        for (i, l) in cart.lines.iter().enumerate() {
            let (p, v) = self.catalog.variant(&l.sku).ok_or_else(|| {
                Error::Conflict(format!("cart line {i}: `{}` left the catalogue", l.sku))
            })?;
            if !p.is_listed() {
                return Err(Error::Conflict(format!(
                    "cart line {i}: `{}` is no longer on sale",
                    l.sku
                )));
            }
            let price = self.prices.unit_price(p, &cart.market)?;
            if currency.get_or_insert_with(|| price.currency.clone()) != &price.currency {
                return Err(Error::Internal(format!(
                    "market {} prices in two currencies",
                    cart.market
                )));
            }
            items.push(PricedItem {
                sku: l.sku.clone(),
                product_id: p.id.clone(),
                description: p.name.clone(),
                size: v.size.clone(),
                quantity: l.quantity,
                tax_class: p.tax_class,
                unit_gross: price.gross,
                unit_net: price.net,
                price_vat_rate_bp: price.vat_rate_bp,
            });
        }
        let breakdown = tax::compute(&items, regime, buyer.kind)?;
        let now = self.now();
        let ttl = ChronoDuration::seconds(self.config.reservation_ttl_secs as i64);
        Ok(Order {
            id: Uuid::new_v4(),
            cart_id: cart.id,
            user_id: input.user_id.clone(),
            created_at: now,
            updated_at: now,
            market: cart.market,
            currency: currency.unwrap_or_else(|| "EUR".into()),
            status: OrderStatus::PendingPayment,
            buyer,
            shipping: input.shipping.clone(),
            payment: Payment {
                provider: provider.to_string(),
                reference: None,
                status: PaymentStatus::Pending,
                amount: breakdown.totals.amount_due,
                captured: 0,
                refunded: 0,
                next_action: None,
                failure_reason: None,
            },
            tax: breakdown,
            allocations: Vec::new(),
            reservation_expires_at: now + ttl,
            invoice: None,
        })
    }

    /// Transaction 1's work after the key is claimed: allocate, reserve, write the order and the cart.
    async fn reserve(
        &self,
        tx: &mut dyn Tx,
        mut order: Order,
        input: &CheckoutInput,
    ) -> Result<Order> {
        let mut cart = tx
            .cart_for_update(input.cart_id)
            .await?
            .ok_or_else(|| Error::bad("cart_id", "the cart disappeared"))?;
        if let Some(existing) = cart.order_id {
            return Err(Error::Conflict(format!(
                "cart `{}` was already checked out as order `{existing}`",
                cart.id
            )));
        }
        let wanted: Vec<(String, u32)> = cart
            .lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity))
            .collect();
        let skus: Vec<String> = wanted.iter().map(|(s, _)| s.clone()).collect();
        let rows = tx.lock_stock(&skus).await?;
        let policy =
            AllocationPolicy::for_shipping(self.catalog.catalog().locations(), &order.shipping);
        order.allocations = inventory::allocate(&rows, &wanted, &policy).inspect_err(|e| {
            if matches!(e, Error::Conflict(_)) {
                self.metrics.stock_conflicts.inc();
            }
        })?;
        let now = self.now();
        change_stock(tx, &order, Reservation::Reserve, now).await?;
        tx.put_order(&order).await?;
        cart.order_id = Some(order.id);
        tx.put_cart(&cart).await?;
        tx.push_outbox(
            &order.id.to_string(),
            &CommerceEvent::OrderPlaced {
                event_id: Uuid::new_v4(),
                ts: now,
                order_id: order.id,
                user_id: order.user_id.clone(),
                market: order.market.clone(),
                currency: order.currency.clone(),
                lines: order_lines(&order),
                total: order.tax.totals.gross,
                amount_due: order.tax.totals.amount_due,
            },
        )
        .await?;
        Ok(order)
    }

    pub(crate) fn payment_request(
        &self,
        order: &Order,
        method: serde_json::Value,
        locale: Option<String>,
    ) -> PaymentRequest {
        PaymentRequest {
            order_id: order.id,
            amount: order.tax.totals.amount_due,
            currency: order.currency.clone(),
            market: order.market.clone(),
            locale: locale.unwrap_or_else(|| "it-IT".into()),
            idempotency_key: format!("lusso-order-{}", order.id),
            method,
            buyer: order.buyer.clone(),
            shipping: order.shipping.clone(),
            lines: order.tax.lines.clone(),
            totals: order.tax.totals,
        }
    }

    /// Applies a provider outcome to an order in one transaction (stock, messages, the idempotent
    /// response of `key`, the webhook id). Returns the order and whether the outcome was a capture arriving
    /// after the order had been released (the caller refunds it).
    pub(crate) async fn settle(
        &self,
        order_id: Uuid,
        outcome: &PaymentOutcome,
        key: Option<&str>,
        webhook: Option<(&str, &str)>,
    ) -> Result<(Order, bool)> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if let Some((provider, event_id)) = webhook {
            if !tx.first_webhook(provider, event_id).await? {
                drop(tx);
                self.metrics
                    .webhooks
                    .with_label_values(&["duplicate"])
                    .inc();
                let order = self.order(order_id).await?;
                return Ok((order, false));
            }
        }
        let mut order = tx
            .order_for_update(order_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order `{order_id}` does not exist")))?;
        let before = order.status;
        let late_capture = !before.holds_reservation()
            && matches!(before, OrderStatus::Cancelled | OrderStatus::PaymentFailed)
            && outcome.status == PaymentStatus::Captured
            && order.payment.status != PaymentStatus::Captured;
        let effect = apply_outcome(&mut order, outcome);
        if let Some(change) = effect.reservation() {
            change_stock(&mut *tx, &order, change, now).await?;
        }
        if late_capture {
            order.payment.status = PaymentStatus::Captured;
            order.payment.captured = order.payment.amount;
            order.payment.reference = Some(outcome.reference.clone());
        }
        order.updated_at = now;
        tx.put_order(&order).await?;
        if order.status != before || late_capture {
            tx.push_outbox(&order.id.to_string(), &status_event(&order, now))
                .await?;
        }
        if let Some(key) = key {
            tx.finish_idempotency(key, &response_for(&order)?).await?;
        }
        tx.commit().await?;
        if before != order.status {
            self.metrics
                .orders
                .with_label_values(&[order.status.as_str()])
                .inc();
        }
        Ok((order, late_capture))
    }

    /// `GET /v1/orders/{id}`.
    pub async fn order(&self, id: Uuid) -> Result<Order> {
        self.store
            .order(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order `{id}` does not exist")))
    }

    /// `POST /v1/orders/{id}/payment/confirm`: after the shopper's action (3-D Secure, Klarna widget,
    /// Scalapay redirect), `params` as the provider's page returned them.
    pub async fn confirm_payment(
        &self,
        id: Uuid,
        params: serde_json::Value,
    ) -> Result<CheckoutResponse> {
        let order = self.order(id).await?;
        if !order.status.holds_reservation() {
            return Ok(CheckoutResponse::of(order));
        }
        let reference = order.payment.reference.clone().ok_or_else(|| {
            Error::Conflict(format!("order `{id}` has no payment to confirm yet"))
        })?;
        let provider = self.providers.get(&order.payment.provider)?;
        let request = self.payment_request(
            &order,
            serde_json::json!({ "provider": order.payment.provider }),
            None,
        );
        let outcome = match provider.confirm(&reference, &request, &params).await {
            Ok(o) => o,
            Err(Error::PaymentFailed { reason, .. }) => PaymentOutcome {
                reference: reference.clone(),
                status: PaymentStatus::Failed,
                captured: 0,
                next_action: None,
                failure_reason: Some(reason),
            },
            Err(e) => return Err(e),
        };
        let (order, late) = self.settle(id, &outcome, None, None).await?;
        let order = if late {
            self.refund_late_capture(order).await?
        } else {
            order
        };
        Ok(CheckoutResponse::of(order))
    }

    /// `POST /v1/payments/{provider}/webhook`: verified by the provider, de-duplicated by event id.
    pub async fn webhook(
        &self,
        provider_name: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Option<Uuid>> {
        let provider = self
            .providers
            .get(provider_name)
            .map_err(|_| Error::NotFound(format!("no payment provider `{provider_name}`")))?;
        let event = provider.webhook(headers, body).inspect_err(|_| {
            self.metrics.webhooks.with_label_values(&["rejected"]).inc();
        })?;
        if event.is_ignorable() {
            self.metrics.webhooks.with_label_values(&["ignored"]).inc();
            return Ok(None);
        }
        let Some(order_id) = self
            .store
            .order_by_payment(provider.name(), &event.reference)
            .await?
        else {
            // A payment we did not start (another integration on the same account): acknowledged, ignored.
            self.metrics.webhooks.with_label_values(&["unknown"]).inc();
            return Ok(None);
        };
        let outcome = PaymentOutcome {
            reference: event.reference.clone(),
            status: event.status,
            captured: 0,
            next_action: None,
            failure_reason: event.failure_reason.clone(),
        };
        let (order, late) = self
            .settle(order_id, &outcome, None, Some((provider.name(), &event.id)))
            .await?;
        self.metrics.webhooks.with_label_values(&["applied"]).inc();
        if late {
            self.refund_late_capture(order).await?;
        }
        Ok(Some(order_id))
    }

    /// Refunds a capture that arrived after the order's stock was released.
    async fn refund_late_capture(&self, order: Order) -> Result<Order> {
        let provider = self.providers.get(&order.payment.provider)?;
        let reference = order.payment.reference.clone().unwrap_or_default();
        let refund = provider
            .refund(
                &reference,
                order.payment.captured,
                &order.currency,
                &format!("lusso-late-{}", order.id),
            )
            .await?;
        tracing::warn!(order = %order.id, amount = refund.amount, "commerce: refunded a capture that arrived after the reservation expired");
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut order = tx
            .order_for_update(order.id)
            .await?
            .ok_or_else(|| Error::Internal("order vanished".into()))?;
        order.payment.refunded = refund.amount;
        order.payment.failure_reason =
            Some("captured after the reservation expired; refunded in full".into());
        order.updated_at = now;
        tx.put_order(&order).await?;
        tx.push_outbox(&order.id.to_string(), &status_event(&order, now))
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Releases the stock of unpaid orders past their reservation time (and cancels their payments at the
    /// provider); returns how many orders were cancelled.
    pub async fn expire_reservations(&self) -> Result<usize> {
        let now = self.now();
        let ids = self.store.expired_orders(now, 500).await?;
        let mut cancelled = 0;
        for id in ids {
            let mut tx = self.store.begin().await?;
            let Some(mut order) = tx.order_for_update(id).await? else {
                continue;
            };
            if !(order.status.holds_reservation() && order.reservation_expires_at < now) {
                continue;
            }
            order.status = OrderStatus::Cancelled;
            order.payment.status = PaymentStatus::Cancelled;
            order.payment.next_action = None;
            order.payment.failure_reason = Some("reservation expired before payment".into());
            order.updated_at = now;
            change_stock(&mut *tx, &order, Reservation::Release, now).await?;
            tx.put_order(&order).await?;
            tx.push_outbox(&order.id.to_string(), &status_event(&order, now))
                .await?;
            tx.commit().await?;
            cancelled += 1;
            self.metrics.orders.with_label_values(&["cancelled"]).inc();
            if let Some(reference) = &order.payment.reference {
                if let Ok(p) = self.providers.get(&order.payment.provider) {
                    if let Err(e) = p.cancel(reference).await {
                        tracing::warn!(order = %order.id, error = %e, "commerce: cancelling an expired payment failed; a late capture will be refunded");
                    }
                }
            }
        }
        let purged = self
            .store
            .purge_idempotency(now - ChronoDuration::hours(crate::store::IDEMPOTENCY_TTL_HOURS))
            .await?;
        if purged > 0 {
            tracing::debug!(purged, "commerce: idempotency keys forgotten");
        }
        Ok(cancelled)
    }
}

/// The stored response for an order's current state: `201` for an order whose payment went through or
/// waits for the shopper, `402` for a declined payment.
fn response_for(order: &Order) -> Result<StoredResponse> {
    let status = match order.status {
        OrderStatus::PaymentFailed => 402,
        _ => 201,
    };
    Ok(StoredResponse {
        status,
        body: to_body(&CheckoutResponse::of(order.clone()))?,
    })
}

fn to_body<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("encode response: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
