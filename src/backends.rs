//! What each role needs configured to run in production (`lusso serve` without `--embedded`): a role never
//! falls back silently to an in-process stand-in (a memory bus, a Parquet log, an in-memory feature store or
//! order book, the `fake` payment provider) when a shop meant to run it on real services.

use anyhow::bail;
use commerce::payments::{PaymentsConfig, Providers};
use features::FeaturesConfig;
use pipelines::config::BackendConfig;

use crate::Role;

/// A backend a role can need, with its variable and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Bus,
    Log,
    Database,
    Redis,
    Payments,
    OrderSecret,
}

impl Need {
    fn variable(self) -> &'static str {
        match self {
            Need::Bus => "LUSSO_KAFKA_BROKERS (the event bus)",
            Need::Log => "LUSSO_CLICKHOUSE_URL (the event log)",
            Need::Database => "LUSSO_DATABASE_URL (PostgreSQL: keys, rules, slots, orders)",
            Need::Redis => "LUSSO_REDIS_URL (the feature store)",
            Need::OrderSecret => {
                "LUSSO_ORDER_TOKEN_SECRET (32+ bytes, shared by every commerce replica: signs the order \
                 access tokens)"
            }
            Need::Payments => {
                "a payment provider's credentials (LUSSO_STRIPE_SECRET_KEY, LUSSO_KLARNA_USERNAME and \
                 LUSSO_KLARNA_PASSWORD, or LUSSO_SCALAPAY_API_KEY)"
            }
        }
    }
}

/// The backends `role` needs (the README's table of roles).
fn needs(role: Role) -> &'static [Need] {
    use Need::*;
    match role {
        Role::Collector => &[Bus],
        Role::Sink => &[Bus, Log],
        Role::Features => &[Bus, Redis],
        Role::Bandits | Role::Serving => &[Bus, Log, Database, Redis],
        Role::Commerce => &[Bus, Database, Payments, OrderSecret],
        Role::All => &[Bus, Log, Database, Redis, Payments, OrderSecret],
    }
}

/// The backends `role` needs that the configuration leaves unset.
fn missing(
    role: Role,
    config: &BackendConfig,
    features: &FeaturesConfig,
    payments: bool,
    order_secret: bool,
) -> Vec<Need> {
    needs(role)
        .iter()
        .copied()
        .filter(|n| match n {
            Need::Bus => config.kafka_brokers.is_none(),
            Need::Log => config.clickhouse_url.is_none(),
            Need::Database => config.database_url.is_none(),
            Need::Redis => features.redis_url.is_none(),
            Need::Payments => !payments,
            Need::OrderSecret => !order_secret,
        })
        .collect()
}

/// Refuses to start `role` when a backend it needs is not configured, naming every missing variable.
pub(crate) fn require(
    role: Role,
    config: &BackendConfig,
    features: &FeaturesConfig,
) -> anyhow::Result<()> {
    let payments = needs(role).contains(&Need::Payments)
        && !Providers::from_config(&PaymentsConfig::from_env()?)?
            .names()
            .is_empty();
    let order_secret = pipelines::config::env_nonempty("LUSSO_ORDER_TOKEN_SECRET").is_some();
    let missing = missing(role, config, features, payments, order_secret);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = missing.iter().map(|n| n.variable()).collect();
    bail!(
        "lusso serve --role {}: not configured: {}. Set them, or pass --embedded to run on in-process \
         stand-ins (development only)",
        role_name(role),
        list.join("; ")
    )
}

fn role_name(role: Role) -> String {
    clap::ValueEnum::to_possible_value(&role)
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{role:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> (BackendConfig, FeaturesConfig) {
        let config = BackendConfig {
            kafka_brokers: Some("127.0.0.1:9092".into()),
            clickhouse_url: Some("http://127.0.0.1:8123".into()),
            database_url: Some("postgres://localhost/lusso".into()),
            ..BackendConfig::embedded("/tmp/lusso-unused")
        };
        let features = FeaturesConfig {
            redis_url: Some("redis://127.0.0.1/".into()),
            ..FeaturesConfig::default()
        };
        (config, features)
    }

    #[test]
    fn every_role_names_what_it_lacks() {
        let (config, features) = configured();
        for role in [
            Role::All,
            Role::Collector,
            Role::Sink,
            Role::Features,
            Role::Bandits,
            Role::Serving,
            Role::Commerce,
        ] {
            assert!(
                missing(role, &config, &features, true, true).is_empty(),
                "{role:?}"
            );
        }
        let bare = BackendConfig::embedded("/tmp/lusso-unused");
        let no_redis = FeaturesConfig {
            redis_url: None,
            ..FeaturesConfig::default()
        };
        assert_eq!(
            missing(Role::Collector, &bare, &no_redis, false, false),
            vec![Need::Bus]
        );
        assert_eq!(
            missing(Role::Sink, &bare, &features, false, false),
            vec![Need::Bus, Need::Log]
        );
        assert_eq!(
            missing(Role::Serving, &config, &no_redis, false, false),
            vec![Need::Redis]
        );
        assert_eq!(
            missing(Role::Commerce, &config, &features, false, true),
            vec![Need::Payments]
        );
        assert_eq!(
            missing(Role::Commerce, &config, &features, true, false),
            vec![Need::OrderSecret]
        );
        assert_eq!(
            missing(Role::All, &bare, &no_redis, false, false).len(),
            6,
            "all roles need all six"
        );
    }

    #[test]
    fn the_refusal_names_the_role_and_the_variables() {
        let bare = BackendConfig::embedded("/tmp/lusso-unused");
        let e = require(Role::Sink, &bare, &FeaturesConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--role sink"), "{e}");
        assert!(
            e.contains("LUSSO_KAFKA_BROKERS") && e.contains("LUSSO_CLICKHOUSE_URL"),
            "{e}"
        );
        assert!(e.contains("--embedded"), "{e}");
    }
}
