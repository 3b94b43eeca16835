//! Payment provider settings: serde structs with documented defaults (`#[serde(deny_unknown_fields)]`).
//!
//! Secrets never have a default and cannot come from a config file (`#[serde(skip)]`): they are read from the
//! environment by [`PaymentsConfig::from_env`] only, and print as `***` in `Debug`. A provider is registered
//! by [`super::Providers::from_config`] only when its credentials are set.
//!
//! | variable | field |
//! | --- | --- |
//! | `LUSSO_STRIPE_SECRET_KEY` | `stripe.secret_key` (secret) |
//! | `LUSSO_STRIPE_WEBHOOK_SECRET` | `stripe.webhook_secret` (secret, `whsec_…`) |
//! | `LUSSO_STRIPE_URL` | `stripe.api_base` (e.g. localstripe `http://127.0.0.1:8420`) |
//! | `LUSSO_STRIPE_WEBHOOK_TOLERANCE_SECS` | `stripe.webhook_tolerance_secs` |
//! | `LUSSO_KLARNA_USERNAME`, `LUSSO_KLARNA_PASSWORD` | `klarna.username`, `klarna.password` (secrets) |
//! | `LUSSO_KLARNA_URL` | `klarna.api_base` |
//! | `LUSSO_SCALAPAY_API_KEY` | `scalapay.api_key` (secret) |
//! | `LUSSO_SCALAPAY_URL` | `scalapay.api_base` |
//! | `LUSSO_PAYMENTS_TIMEOUT_SECS` | `request_timeout_secs` |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A credential: compared and sent, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Per-request timeout towards every provider, seconds.
pub const fn default_request_timeout_secs() -> u64 {
    10
}

/// How old a Stripe webhook signature's timestamp may be, seconds (Stripe's own libraries use 300).
pub const fn default_webhook_tolerance_secs() -> u64 {
    300
}

/// Settings of every payment provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    pub stripe: StripeConfig,
    pub klarna: KlarnaConfig,
    pub scalapay: ScalapayConfig,
    /// See [`default_request_timeout_secs`].
    pub request_timeout_secs: u64,
}

/// Stripe (PaymentIntents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StripeConfig {
    /// Default `https://api.stripe.com`.
    pub api_base: String,
    /// `sk_…`; env `LUSSO_STRIPE_SECRET_KEY` only.
    #[serde(skip)]
    pub secret_key: Option<Secret>,
    /// `whsec_…` of the webhook endpoint; env `LUSSO_STRIPE_WEBHOOK_SECRET` only. Without it webhooks 404.
    #[serde(skip)]
    pub webhook_secret: Option<Secret>,
    /// See [`default_webhook_tolerance_secs`].
    pub webhook_tolerance_secs: u64,
}

/// Klarna (Payments API v1 + Order Management API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KlarnaConfig {
    /// Default `https://api.klarna.com` (Europe, live); the playground is `https://api.playground.klarna.com`.
    pub api_base: String,
    /// API username (`PK…` / UID); env `LUSSO_KLARNA_USERNAME` only.
    #[serde(skip)]
    pub username: Option<Secret>,
    /// API password; env `LUSSO_KLARNA_PASSWORD` only.
    #[serde(skip)]
    pub password: Option<Secret>,
}

/// Scalapay (API v2 orders and payments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalapayConfig {
    /// Default `https://api.scalapay.com`; the sandbox is `https://integration.api.scalapay.com`.
    pub api_base: String,
    /// Bearer API key; env `LUSSO_SCALAPAY_API_KEY` only.
    #[serde(skip)]
    pub api_key: Option<Secret>,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            stripe: StripeConfig::default(),
            klarna: KlarnaConfig::default(),
            scalapay: ScalapayConfig::default(),
            request_timeout_secs: default_request_timeout_secs(),
        }
    }
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            api_base: "https://api.stripe.com".into(),
            secret_key: None,
            webhook_secret: None,
            webhook_tolerance_secs: default_webhook_tolerance_secs(),
        }
    }
}

impl Default for KlarnaConfig {
    fn default() -> Self {
        KlarnaConfig {
            api_base: "https://api.klarna.com".into(),
            username: None,
            password: None,
        }
    }
}

impl Default for ScalapayConfig {
    fn default() -> Self {
        ScalapayConfig {
            api_base: "https://api.scalapay.com".into(),
            api_key: None,
        }
    }
}

impl PaymentsConfig {
    /// Defaults overridden by the process environment (see the module doc for the variables).
    pub fn from_env() -> Result<PaymentsConfig> {
        PaymentsConfig::default().with_env(|k| std::env::var(k).ok())
    }

    /// `self` overridden by the variables `lookup` returns (blank values count as unset), then validated.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<PaymentsConfig> {
        let var = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secret = |k: &str| var(k).map(Secret);
        if let Some(v) = var("LUSSO_STRIPE_URL") {
            self.stripe.api_base = v;
        }
        if let Some(v) = secret("LUSSO_STRIPE_SECRET_KEY") {
            self.stripe.secret_key = Some(v);
        }
        if let Some(v) = secret("LUSSO_STRIPE_WEBHOOK_SECRET") {
            self.stripe.webhook_secret = Some(v);
        }
        if let Some(v) = var("LUSSO_STRIPE_WEBHOOK_TOLERANCE_SECS") {
            self.stripe.webhook_tolerance_secs = number("LUSSO_STRIPE_WEBHOOK_TOLERANCE_SECS", &v)?;
        }
        if let Some(v) = var("LUSSO_KLARNA_URL") {
            self.klarna.api_base = v;
        }
        if let Some(v) = secret("LUSSO_KLARNA_USERNAME") {
            self.klarna.username = Some(v);
        }
        if let Some(v) = secret("LUSSO_KLARNA_PASSWORD") {
            self.klarna.password = Some(v);
        }
        if let Some(v) = var("LUSSO_SCALAPAY_URL") {
            self.scalapay.api_base = v;
        }
        if let Some(v) = secret("LUSSO_SCALAPAY_API_KEY") {
            self.scalapay.api_key = Some(v);
        }
        if let Some(v) = var("LUSSO_PAYMENTS_TIMEOUT_SECS") {
            self.request_timeout_secs = number("LUSSO_PAYMENTS_TIMEOUT_SECS", &v)?;
        }
        self.validated()
    }

    /// Checks every value, naming the field and the reason.
    pub fn validated(self) -> Result<PaymentsConfig> {
        if !(1..=120).contains(&self.request_timeout_secs) {
            return Err(Error::bad("payments.request_timeout_secs", "must be 1–120"));
        }
        if !(1..=86_400).contains(&self.stripe.webhook_tolerance_secs) {
            return Err(Error::bad(
                "payments.stripe.webhook_tolerance_secs",
                "must be 1–86400",
            ));
        }
        for (field, base) in [
            ("payments.stripe.api_base", &self.stripe.api_base),
            ("payments.klarna.api_base", &self.klarna.api_base),
            ("payments.scalapay.api_base", &self.scalapay.api_base),
        ] {
            check_base(field, base)?;
        }
        if self.klarna.username.is_some() != self.klarna.password.is_some() {
            return Err(Error::bad(
                "payments.klarna",
                "set both LUSSO_KLARNA_USERNAME and LUSSO_KLARNA_PASSWORD, or neither",
            ));
        }
        Ok(self)
    }

    /// [`Self::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

fn number(key: &str, v: &str) -> Result<u64> {
    v.parse()
        .map_err(|_| Error::bad(key, format!("`{v}` is not a number")))
}

/// An API base is an absolute http(s) URL without a query; a trailing `/` is tolerated.
fn check_base(field: &str, base: &str) -> Result<()> {
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !host.starts_with('/') && !base.contains(['?', '#', ' ']) =>
        {
            Ok(())
        }
        _ => Err(Error::bad(
            field,
            format!("`{base}` is not an absolute http(s) URL"),
        )),
    }
}

/// `base` + `path` without a doubled `/`.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let c = PaymentsConfig::default();
        assert_eq!(c.stripe.api_base, "https://api.stripe.com");
        assert_eq!(c.stripe.webhook_tolerance_secs, 300);
        assert_eq!(c.klarna.api_base, "https://api.klarna.com");
        assert_eq!(c.scalapay.api_base, "https://api.scalapay.com");
        assert_eq!(c.request_timeout(), Duration::from_secs(10));
        assert!(c.stripe.secret_key.is_none() && c.klarna.username.is_none());
        assert!(c.scalapay.api_key.is_none());
    }

    #[test]
    fn serde_rejects_unknown_fields_and_never_reads_secrets() {
        let c: PaymentsConfig =
            serde_json::from_str(r#"{"stripe":{"api_base":"http://127.0.0.1:8420"}}"#).unwrap();
        assert_eq!(c.stripe.api_base, "http://127.0.0.1:8420");
        assert_eq!(c.stripe.webhook_tolerance_secs, 300);
        let err = serde_json::from_str::<PaymentsConfig>(r#"{"stripe":{"secret_key":"sk_x"}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(serde_json::from_str::<PaymentsConfig>(r#"{"paypal":{}}"#).is_err());
    }

    #[test]
    fn env_overrides_and_blank_is_unset() {
        let env = |k: &str| {
            match k {
                "LUSSO_STRIPE_URL" => Some("http://127.0.0.1:8420/"),
                "LUSSO_STRIPE_SECRET_KEY" => Some("sk_test_1"),
                "LUSSO_STRIPE_WEBHOOK_SECRET" => Some("  "),
                "LUSSO_KLARNA_USERNAME" => Some("PK1"),
                "LUSSO_KLARNA_PASSWORD" => Some("pw"),
                "LUSSO_PAYMENTS_TIMEOUT_SECS" => Some("3"),
                _ => None,
            }
            .map(String::from)
        };
        let c = PaymentsConfig::default().with_env(env).unwrap();
        assert_eq!(c.stripe.api_base, "http://127.0.0.1:8420/");
        assert_eq!(c.stripe.secret_key, Some(Secret::new("sk_test_1")));
        assert_eq!(c.stripe.webhook_secret, None);
        assert_eq!(c.klarna.username.as_ref().map(Secret::expose), Some("PK1"));
        assert_eq!(c.request_timeout_secs, 3);
        assert_eq!(
            join(&c.stripe.api_base, "/v1/refunds"),
            "http://127.0.0.1:8420/v1/refunds"
        );
        assert!(
            !format!("{c:?}").contains("sk_test_1"),
            "secrets must not print"
        );
    }

    #[test]
    fn invalid_values_name_the_field() {
        let bad = |k: &'static str, v: &'static str| {
            PaymentsConfig::default()
                .with_env(move |q| (q == k).then(|| v.to_string()))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("LUSSO_PAYMENTS_TIMEOUT_SECS", "ten").contains("LUSSO_PAYMENTS_TIMEOUT_SECS"));
        assert!(bad("LUSSO_PAYMENTS_TIMEOUT_SECS", "0").contains("request_timeout_secs"));
        assert!(bad("LUSSO_STRIPE_URL", "api.stripe.com").contains("payments.stripe.api_base"));
        assert!(bad("LUSSO_KLARNA_USERNAME", "PK1").contains("LUSSO_KLARNA_PASSWORD"));
    }
}
