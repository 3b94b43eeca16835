//! Shared test helpers: services over a chosen store, events, a controlled clock.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use bandits::metrics::BanditMetrics;
use bandits::service::{Bandits, BanditsConfig, DecideRequest, ManualClock};
use bandits::slot::{Arm, Objective, PolicySpec, RewardSpec, Slot};
use bandits::store::BanditStore;
use chrono::{DateTime, Duration, Utc};
use pipelines::event::{
    BannerClick, Event, OrderLine, Properties, Purchase as PurchaseProps, Return as ReturnProps,
};
use uuid::Uuid;

/// Which store a scenario runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Postgres,
}

/// The PostgreSQL URL from the environment (set by `scripts/test.sh`); a missing variable fails the test.
pub fn database_url() -> String {
    std::env::var("LUSSO_DATABASE_URL")
        .expect("LUSSO_DATABASE_URL must be set for the PostgreSQL tests (scripts/test.sh sets it)")
}

/// A fresh store: a new in-memory one, or a new PostgreSQL database `lusso_test_bandits_…`.
pub async fn store(backend: Backend) -> Arc<dyn BanditStore> {
    match backend {
        Backend::Memory => bandits::store::open(None).await.unwrap(),
        Backend::Postgres => {
            let url =
                bandits::store::postgres::fresh_database(&database_url(), "lusso_test_bandits")
                    .await
                    .unwrap();
            bandits::store::open(Some(&url)).await.unwrap()
        }
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A service replica over `store` with its own metrics registry.
pub fn service(store: Arc<dyn BanditStore>, clock: &ManualClock) -> Bandits {
    Bandits::new(
        store,
        None,
        Arc::new(clock.clone()),
        BanditMetrics::new(&prometheus::Registry::new()),
        BanditsConfig::default(),
    )
}

pub fn arm(id: &str) -> Arm {
    Arm {
        arm_id: id.into(),
        creative_url: format!("https://cdn.example/{id}.jpg"),
        collection_id: format!("c-{id}"),
        campaign_start: None,
        campaign_end: None,
        paused: false,
        traffic_floor: None,
        prior: None,
    }
}

pub fn slot(name: &str, objective: Objective, arms: &[&str]) -> Slot {
    Slot {
        slot: name.into(),
        version: 0,
        policy: PolicySpec::default(),
        reward: RewardSpec {
            objective,
            ..Default::default()
        },
        traffic_floor: 0.0,
        sticky: false,
        forced: Default::default(),
        arms: arms.iter().map(|a| arm(a)).collect(),
    }
}

pub fn decide_req(slot: &str, user: &str, segment: &str) -> DecideRequest {
    DecideRequest {
        slot: slot.into(),
        user_id: Some(user.into()),
        anonymous_id: None,
        context: bandits::context::ContextInput {
            segment: Some(segment.into()),
            ..Default::default()
        },
    }
}

fn envelope(user: &str, ts: DateTime<Utc>, properties: Properties) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        ts,
        user_id: Some(user.into()),
        anonymous_id: None,
        session_id: None,
        market: Some("IT".into()),
        device: None,
        received_at: Some(ts),
        properties,
    }
}

pub fn click(user: &str, decision: Uuid, arm: &str, ts: DateTime<Utc>) -> Event {
    envelope(
        user,
        ts,
        Properties::BannerClick(BannerClick {
            decision_id: decision.to_string(),
            arm_id: arm.into(),
            extra: Default::default(),
        }),
    )
}

fn line(product: &str, price: f64) -> OrderLine {
    OrderLine {
        product_id: product.into(),
        variant_id: format!("{product}-m"),
        quantity: 1,
        unit_price: price,
        extra: Default::default(),
    }
}

/// A purchase of one unit of each `(product, price)`.
pub fn purchase(user: &str, order: &str, lines: &[(&str, f64)], ts: DateTime<Utc>) -> Event {
    envelope(
        user,
        ts,
        Properties::Purchase(PurchaseProps {
            order_id: order.into(),
            currency: "EUR".into(),
            total: lines.iter().map(|l| l.1).sum(),
            lines: lines.iter().map(|(p, v)| line(p, *v)).collect(),
            extra: Default::default(),
        }),
    )
}

pub fn return_of(user: &str, order: &str, products: &[&str], ts: DateTime<Utc>) -> Event {
    envelope(
        user,
        ts,
        Properties::Return(ReturnProps {
            order_id: order.into(),
            lines: products.iter().map(|p| line(p, 0.0)).collect(),
            extra: Default::default(),
        }),
    )
}

pub fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}
