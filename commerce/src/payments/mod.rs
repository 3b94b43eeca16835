//! Payment providers behind one seam, [`PaymentProvider`], chosen per checkout by the `payment.provider`
//! field of the checkout body through [`Providers`].
//!
//! # Flow
//! 1. [`PaymentProvider::create`] validates the checkout's `payment` object ([`PaymentRequest::method`]) and
//!    starts the payment. The outcome is final (`captured`, `failed`) or asks the shopper to act
//!    (`requires_action` with a [`NextAction`]: a 3-D Secure challenge, the Klarna widget, the Scalapay
//!    redirect).
//! 2. After the shopper acted, [`PaymentProvider::confirm`] gets what the storefront got back, finishes the
//!    payment and captures it when authorized.
//! 3. [`PaymentProvider::cancel`] releases an uncaptured payment when the order's reservation expires;
//!    [`PaymentProvider::refund`] gives money back for returns (partial refunds add up to at most the capture).
//! 4. [`PaymentProvider::webhook`] verifies and decodes the provider's asynchronous notifications (Stripe).
//!
//! # Providers
//! - [`fake`]: deterministic, for the demo and the tests; always registered.
//! - [`stripe`]: PaymentIntents with 3-D Secure 2 and signed webhooks (tested against localstripe).
//! - [`klarna`]: Klarna Payments v1 sessions + Order Management captures and refunds.
//! - [`scalapay`]: Scalapay v2 orders, capture, refund and void.
//!
//! # Errors
//! Transport failures, timeouts, 429 and 5xx → [`Error::Unavailable`]; a decline is an outcome with status
//! `failed` and a `failure_reason` whenever the provider gave a reference (so the order records it), and
//! [`Error::PaymentFailed`] only when it did not; a provider 4xx caused by our own request (bad credentials,
//! a field the provider rejects) → [`Error::Internal`] with the provider's message; the caller's invalid
//! `payment.*` fields → [`Error::BadInput`]; a refund above what is left, or an operation the payment's
//! state forbids → [`Error::Conflict`].

pub mod config;
pub mod fake;
mod http;
pub mod klarna;
mod replay;
pub mod scalapay;
pub mod stripe;

use std::sync::Arc;

pub use config::{KlarnaConfig, PaymentsConfig, ScalapayConfig, Secret, StripeConfig};

use crate::model::{Address, Buyer, Cents, NextAction, OrderLine, PaymentStatus, Totals};
use crate::{Error, Result};

/// Everything a provider needs to start the payment of one order.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub order_id: uuid::Uuid,
    /// What to charge ([`Totals::amount_due`]), minor units.
    pub amount: Cents,
    /// ISO 4217, upper case.
    pub currency: String,
    /// ISO 3166-1 alpha-2 (Klarna `purchase_country`).
    pub market: String,
    /// e.g. `it-IT`.
    pub locale: String,
    /// Derived from the checkout's `Idempotency-Key`; sent to the provider where it supports one.
    pub idempotency_key: String,
    /// The checkout body's `payment` object, e.g.
    /// `{"provider":"stripe","payment_method":"pm_card_visa","return_url":"https://…"}`.
    pub method: serde_json::Value,
    pub buyer: Buyer,
    pub shipping: Address,
    pub lines: Vec<OrderLine>,
    pub totals: Totals,
}

/// Where a payment stands after a provider call.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentOutcome {
    /// The provider's id: PaymentIntent id, Klarna order id (the session id before authorization),
    /// Scalapay token, `fake_<order id>`.
    pub reference: String,
    pub status: PaymentStatus,
    /// Minor units taken (0 unless `captured`).
    pub captured: Cents,
    pub next_action: Option<NextAction>,
    pub failure_reason: Option<String>,
}

/// A refund the provider accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundOutcome {
    /// The provider's refund id (`re_…`, Klarna `Refund-Id`, Scalapay `refundToken`).
    pub reference: String,
    pub amount: Cents,
}

/// A verified provider notification about a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The provider's event id (deduplicate on it: providers deliver at least once).
    pub id: String,
    /// The payment's reference; **empty** for an event about something else, which the caller acknowledges
    /// (2xx, so the provider stops retrying) and ignores: see [`WebhookEvent::is_ignorable`].
    pub reference: String,
    pub status: PaymentStatus,
    pub failure_reason: Option<String>,
}

impl WebhookEvent {
    /// An authentic event that concerns no payment of ours (e.g. Stripe `customer.created`): answer 2xx, do
    /// nothing.
    pub fn is_ignorable(&self) -> bool {
        self.reference.is_empty()
    }
}

/// One payment provider.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Validates `request.method` (`Error::bad("payment.<field>", reason)` for the caller's mistakes) and
    /// starts the payment.
    async fn create(&self, request: &PaymentRequest) -> Result<PaymentOutcome>;
    /// After the shopper's action (3-D Secure challenge, Klarna widget, Scalapay redirect): `params` is what
    /// the storefront got back (Klarna `{"authorization_token": …}`, Scalapay `{"order_token": …}`, Stripe
    /// nothing: the PaymentIntent is re-read). Captures when authorized.
    async fn confirm(
        &self,
        reference: &str,
        request: &PaymentRequest,
        params: &serde_json::Value,
    ) -> Result<PaymentOutcome>;
    /// Releases an uncaptured payment (reservation timeout).
    async fn cancel(&self, reference: &str) -> Result<()>;
    /// Gives back `amount` (≤ what is left of the capture) in `currency`.
    async fn refund(
        &self,
        reference: &str,
        amount: Cents,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<RefundOutcome>;
    /// Verifies the webhook's signature and decodes it. A bad / missing / stale signature →
    /// `Error::bad("Stripe-Signature", reason)` (400). Providers without webhooks → [`Error::NotFound`].
    fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<WebhookEvent>;
}

/// The configured providers by name; `fake` is always there.
#[derive(Clone)]
pub struct Providers {
    registered: Vec<(&'static str, Arc<dyn PaymentProvider>)>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("names", &self.names())
            .finish()
    }
}

/// Every provider this crate implements, in registration order.
pub const ALL_PROVIDERS: [&str; 4] = ["fake", "stripe", "klarna", "scalapay"];

impl Providers {
    /// Each provider whose credentials are set in `config`. The `fake` provider is never among them: only
    /// `lusso demo`, `lusso serve --embedded` and tests add it ([`Providers::with`]).
    pub fn from_config(config: &PaymentsConfig) -> Result<Providers> {
        let config = config.clone().validated()?;
        let timeout = config.request_timeout();
        let mut providers = Providers {
            registered: Vec::new(),
        };
        if let Some(key) = &config.stripe.secret_key {
            providers = providers.with(Arc::new(stripe::Stripe::new(
                &config.stripe,
                key.clone(),
                timeout,
            )?));
        }
        if let (Some(user), Some(password)) = (&config.klarna.username, &config.klarna.password) {
            providers = providers.with(Arc::new(klarna::Klarna::new(
                &config.klarna.api_base,
                user.clone(),
                password.clone(),
                timeout,
            )?));
        }
        if let Some(key) = &config.scalapay.api_key {
            providers = providers.with(Arc::new(scalapay::Scalapay::new(
                &config.scalapay.api_base,
                key.clone(),
                timeout,
            )?));
        }
        Ok(providers)
    }

    /// Only the fake provider.
    pub fn fake_only() -> Providers {
        Providers {
            registered: vec![("fake", Arc::new(fake::Fake) as Arc<dyn PaymentProvider>)],
        }
    }

    /// Registers `provider` under its name, replacing one of the same name (tests inject doubles this way).
    pub fn with(mut self, provider: Arc<dyn PaymentProvider>) -> Providers {
        let name = provider.name();
        match self.registered.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = provider,
            None => self.registered.push((name, provider)),
        }
        self
    }

    /// The provider called `name`; an unknown or unconfigured one is the caller's mistake.
    pub fn get(&self, name: &str) -> Result<Arc<dyn PaymentProvider>> {
        if let Some((_, p)) = self.registered.iter().find(|(n, _)| *n == name) {
            return Ok(p.clone());
        }
        let known = self.names().join(", ");
        let reason = if known.is_empty() {
            "no payment provider is configured on this server".to_string()
        } else if ALL_PROVIDERS.contains(&name) {
            format!("`{name}` is not configured here; one of {known}")
        } else {
            format!("unknown provider `{name}`; one of {known}")
        };
        Err(Error::bad("payment.provider", reason))
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.registered.iter().map(|(n, _)| *n).collect()
    }
}

/// An optional string field of `request.method`: absent or `null` → `None`; another type → bad input.
pub(crate) fn method_str<'a>(
    method: &'a serde_json::Value,
    field: &str,
) -> Result<Option<&'a str>> {
    match method.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(Error::bad(format!("payment.{field}"), "must be a string")),
    }
}

/// Splits a full name into (given names, surname) at the last space: `Maria Grazia Rossi` →
/// (`Maria Grazia`, `Rossi`). A single word is both.
pub(crate) fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((given, family)) if !given.trim().is_empty() => {
            (given.trim().to_string(), family.trim().to_string())
        }
        _ => (name.to_string(), name.to_string()),
    }
}

/// Checks that the amount to charge is what the lines add up to: the line-item providers (Klarna, Scalapay)
/// need `order_amount == Σ lines`, which a split-payment order (VAT not collected) does not satisfy.
pub(crate) fn lines_must_match_amount(provider: &str, request: &PaymentRequest) -> Result<()> {
    if request.lines.is_empty() {
        return Err(Error::bad("lines", "an order has at least one line"));
    }
    let sum: Cents = request.lines.iter().map(|l| l.gross).sum();
    if request.amount <= 0 {
        return Err(Error::bad("amount", "must be positive"));
    }
    if sum != request.amount {
        return Err(Error::bad(
            "payment.provider",
            format!(
                "{provider} charges the sum of the order lines ({sum}) but {} is due (split payment?); \
                 use stripe or fake",
                request.amount
            ),
        ));
    }
    Ok(())
}

/// ISO 4217 code check: three ASCII letters, upper case.
pub(crate) fn check_currency(currency: &str) -> Result<()> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Error::bad(
            "currency",
            format!("`{currency}` is not an upper-case ISO 4217 code"),
        ))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A request fixture shared by the providers' unit tests.
    use super::*;
    use crate::model::BuyerKind;
    use pipelines::catalog::TaxClass;

    pub(crate) fn address() -> Address {
        Address {
            name: "Maria Grazia Rossi".into(),
            street: "Via Montenapoleone 8".into(),
            city: "Milano".into(),
            postal_code: "20121".into(),
            province: Some("MI".into()),
            country: "IT".into(),
        }
    }

    /// Two lines at 22 % IVA: 2 × 350.00 and 1 × 129.90, 829.90 in all.
    pub(crate) fn request(method: serde_json::Value) -> PaymentRequest {
        let line = |no: u32, sku: &str, qty: u32, unit: Cents| {
            let gross = unit * Cents::from(qty);
            let net = (gross * 10_000 + 6_100) / 12_200;
            OrderLine {
                line_no: no,
                sku: sku.into(),
                product_id: format!("p-{sku}"),
                description: format!("Article {sku}"),
                size: "M".into(),
                quantity: qty,
                tax_class: TaxClass::Standard,
                unit_price: unit,
                gross,
                vat_rate_bp: 2200,
                net,
                vat: gross - net,
                natura: None,
            }
        };
        let lines = vec![line(1, "SKU-1", 2, 35_000), line(2, "SKU-2", 1, 12_990)];
        let gross: Cents = lines.iter().map(|l| l.gross).sum();
        let vat: Cents = lines.iter().map(|l| l.vat).sum();
        PaymentRequest {
            order_id: uuid::Uuid::from_u128(0x1234),
            amount: gross,
            currency: "EUR".into(),
            market: "IT".into(),
            locale: "it-IT".into(),
            idempotency_key: "checkout-key-1".into(),
            method,
            buyer: Buyer {
                kind: BuyerKind::Consumer,
                email: "maria@example.it".into(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_is_never_configured_and_unknown_names_list_the_known() {
        let none = Providers::from_config(&PaymentsConfig::default()).unwrap();
        assert!(none.names().is_empty());
        let err = none.get("fake").err().unwrap().to_string();
        assert!(err.contains("no payment provider is configured"), "{err}");
        let p = Providers::fake_only();
        assert_eq!(p.names(), vec!["fake"]);
        assert_eq!(p.get("fake").unwrap().name(), "fake");
        match p.get("paypal") {
            Err(Error::BadInput { field, reason }) => {
                assert_eq!(field, "payment.provider");
                assert!(
                    reason.contains("unknown provider `paypal`; one of fake"),
                    "{reason}"
                );
            }
            other => panic!("{:?}", other.map(|p| p.name())),
        }
        let err = p.get("stripe").err().unwrap().to_string();
        assert!(err.contains("not configured"), "{err}");
    }

    #[test]
    fn providers_register_only_with_credentials() {
        let mut c = PaymentsConfig::default();
        c.stripe.secret_key = Some(Secret::new("sk_test_x"));
        c.scalapay.api_key = Some(Secret::new("key"));
        let p = Providers::from_config(&c).unwrap();
        assert_eq!(p.names(), vec!["stripe", "scalapay"]);
        c.klarna.username = Some(Secret::new("PK_1"));
        c.klarna.password = Some(Secret::new("pw"));
        let p = Providers::from_config(&c).unwrap();
        assert_eq!(p.names(), vec!["stripe", "klarna", "scalapay"]);
        assert_eq!(p.get("klarna").unwrap().name(), "klarna");
        let p = p.with(Arc::new(fake::Fake));
        assert_eq!(p.names(), vec!["stripe", "klarna", "scalapay", "fake"]);
        let p = p.with(Arc::new(fake::Fake));
        assert_eq!(
            p.names().len(),
            4,
            "with() replaces a provider of the same name"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            split_name("Maria Grazia Rossi"),
            ("Maria Grazia".into(), "Rossi".into())
        );
        assert_eq!(
            split_name(" Comune di Milano "),
            ("Comune di".into(), "Milano".into())
        );
        assert_eq!(split_name("Cher"), ("Cher".into(), "Cher".into()));
        assert!(check_currency("EUR").is_ok());
        assert!(check_currency("eur").is_err());
        let mut r = testing::request(serde_json::json!({}));
        assert!(lines_must_match_amount("klarna", &r).is_ok());
        r.amount -= r.totals.vat;
        let err = lines_must_match_amount("klarna", &r)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("payment.provider: klarna"), "{err}");
        let m = serde_json::json!({"a": "x", "b": 1});
        assert_eq!(method_str(&m, "a").unwrap(), Some("x"));
        assert_eq!(method_str(&m, "c").unwrap(), None);
        assert!(method_str(&m, "b").is_err());
    }
}
