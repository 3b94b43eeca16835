//! Behaviour of the bandit service, each scenario run on the in-memory store and on PostgreSQL.
//!
//! Time is a [`ManualClock`]: reward windows close when the test advances it, never by waiting.

mod common;

use bandits::context::SEGMENTS;
use bandits::joiner;
use bandits::reward::Applied;
use bandits::service::{Action, ManualClock};
use bandits::slot::Objective;
use common::*;
use uuid::Uuid;

fn seg(name: &str) -> usize {
    SEGMENTS.iter().position(|s| *s == name).unwrap()
}

/// Delayed clicks, purchases, returns, duplicates, expired windows, late clicks, explicit rewards.
async fn reward_joining(backend: Backend) {
    let clock = ManualClock::new(t("2026-12-01T10:00:00Z"));
    let b = service(store(backend).await, &clock);
    b.create_slot(slot("conv", Objective::Conversion, &["a", "b"]), "test")
        .await
        .unwrap();
    b.create_slot(slot("clicks", Objective::Click, &["x", "y"]), "test")
        .await
        .unwrap();

    // Conversion: click → purchase → partial return → full return.
    let d1 = b.decide(decide_req("conv", "u1", "New")).await.unwrap();
    let c1 = click("u1", d1.decision_id, &d1.arm_id, clock.now() + minutes(5));
    joiner::apply_events(&b, &[c1.clone(), c1.clone()])
        .await
        .unwrap();
    let (_, o) = b.store().decision(d1.decision_id).await.unwrap().unwrap();
    assert!(o.clicked_at.is_some());
    assert_eq!(o.learned, None, "a click alone is not a conversion");
    let buy = purchase(
        "u1",
        "o-1",
        &[("p1", 120.0), ("p2", 80.0)],
        clock.now() + minutes(60),
    );
    joiner::apply_events(&b, &[buy.clone(), buy]).await.unwrap(); // redelivered
    let (_, o) = b.store().decision(d1.decision_id).await.unwrap().unwrap();
    assert_eq!(o.learned, Some(1.0));
    assert_eq!(o.net_revenue(), 200.0);
    let r1 = return_of("u1", "o-1", &["p1"], clock.now() + minutes(60 * 24 * 9));
    joiner::apply_events(&b, &[r1]).await.unwrap();
    let (_, o) = b.store().decision(d1.decision_id).await.unwrap().unwrap();
    assert_eq!((o.learned, o.net_revenue()), (Some(1.0), 80.0));
    let r2 = return_of("u1", "o-1", &["p2"], clock.now() + minutes(60 * 24 * 10));
    joiner::apply_events(&b, &[r2.clone(), r2]).await.unwrap();
    let (_, o) = b.store().decision(d1.decision_id).await.unwrap().unwrap();
    assert_eq!(o.learned, Some(0.0), "the return revised the reward");

    // Conversion without a purchase: nothing until the window closes, then the default.
    let d2 = b.decide(decide_req("conv", "u2", "New")).await.unwrap();
    assert_eq!(b.expire().await.unwrap(), 0);
    clock.advance(chrono::Duration::days(7) + minutes(1));
    assert_eq!(b.expire().await.unwrap(), 1);
    let (_, o) = b.store().decision(d2.decision_id).await.unwrap().unwrap();
    assert_eq!(o.learned, Some(0.0));
    // A purchase after the attribution window is not attributed to it.
    joiner::apply_events(&b, &[click("u2", d2.decision_id, &d2.arm_id, clock.now())])
        .await
        .unwrap();
    let late = purchase("u2", "o-2", &[("p3", 50.0)], clock.now() + minutes(1));
    joiner::apply_events(&b, &[late]).await.unwrap();
    let (_, o) = b.store().decision(d2.decision_id).await.unwrap().unwrap();
    assert!(o.purchases.is_empty() && o.clicked_at.is_none());

    // Click objective: a click outside the window is ignored; a late-delivered click inside it revises.
    let d3 = b
        .decide(decide_req("clicks", "u3", "Lapsed"))
        .await
        .unwrap();
    let t3 = clock.now();
    let outside = click("u3", d3.decision_id, &d3.arm_id, t3 + minutes(31));
    let applied = b
        .apply(&joiner::signals_of(&b, &outside).await.unwrap()[0])
        .await
        .unwrap();
    assert!(
        matches!(applied, Some(Applied::Ignored { .. })),
        "{applied:?}"
    );
    clock.advance(minutes(31));
    assert_eq!(b.expire().await.unwrap(), 1);
    let inside = click("u3", d3.decision_id, &d3.arm_id, t3 + minutes(10));
    joiner::apply_events(&b, &[inside]).await.unwrap();
    let (_, o) = b.store().decision(d3.decision_id).await.unwrap().unwrap();
    assert_eq!(o.learned, Some(1.0), "the late click revised the default");

    // Explicit rewards: recorded once; the same again is a duplicate, another value a conflict.
    let d4 = b
        .decide(decide_req("clicks", "u4", "Lapsed"))
        .await
        .unwrap();
    let r = b.reward(d4.decision_id, 0.7).await.unwrap();
    assert!(
        matches!(
            r,
            Applied::Recorded {
                ledger_seq: Some(_)
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        b.reward(d4.decision_id, 0.7).await.unwrap(),
        Applied::Duplicate
    );
    assert!(matches!(
        b.reward(d4.decision_id, 0.2).await.unwrap(),
        Applied::Conflict { .. }
    ));
    assert!(b.reward(Uuid::new_v4(), 1.0).await.is_err());
    assert!(b.reward(d4.decision_id, 1.5).await.is_err());

    // What was learned: conv/New: d1 (1 then −1) and d2 (0) → 0 of 2; clicks/Lapsed: d3 (0 then +1), d4 0.7.
    b.sync().await.unwrap();
    let conv = b.model("conv").unwrap();
    let learned: Vec<(f64, f64)> = ["a", "b"]
        .iter()
        .map(|a| {
            let p = conv.posterior(seg("New"), a);
            (p.rewards, p.trials)
        })
        .collect();
    let (r, n) = learned
        .iter()
        .fold((0.0, 0.0), |(r, n), (a, b)| (r + a, n + b));
    assert_eq!((r, n), (0.0, 2.0), "{learned:?}");
    let clicks = b.model("clicks").unwrap();
    let (r, n) = ["x", "y"].iter().fold((0.0, 0.0), |(r, n), a| {
        let p = clicks.posterior(seg("Lapsed"), a);
        (r + p.rewards, n + p.trials)
    });
    assert!((r - 1.7).abs() < 1e-9 && n == 2.0, "{r} of {n}");
}

/// Two replicas over one store agree after syncing; a restarted replica rebuilds the same state; a
/// merchandiser's action on one replica reaches the other.
async fn replicas_and_restart(backend: Backend) {
    let clock = ManualClock::new(t("2026-12-01T10:00:00Z"));
    let store = store(backend).await;
    let a = service(store.clone(), &clock);
    let b = service(store.clone(), &clock);
    let mut s = slot("hero", Objective::Click, &["h1", "h2", "h3"]);
    s.policy.kind = bandits::slot::PolicyKind::LinTs;
    a.create_slot(s, "alice").await.unwrap();
    b.sync().await.unwrap();
    for i in 0..60 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let segment = SEGMENTS[i % 3];
        let d = replica
            .decide(decide_req("hero", &format!("u{i}"), segment))
            .await
            .unwrap();
        if i % 3 == 0 {
            let c = click(&format!("u{i}"), d.decision_id, &d.arm_id, clock.now());
            joiner::apply_events(if i % 2 == 0 { &b } else { &a }, &[c])
                .await
                .unwrap();
        }
    }
    clock.advance(minutes(45));
    a.expire().await.unwrap();
    let seq_a = a.sync().await.unwrap();
    let seq_b = b.sync().await.unwrap();
    assert_eq!(seq_a, seq_b);
    assert_eq!(seq_a, 60, "every decision learned exactly once");
    let restarted = service(store.clone(), &clock);
    assert_eq!(restarted.sync().await.unwrap(), seq_a);
    let (ma, mb, mr) = (
        a.model("hero").unwrap(),
        b.model("hero").unwrap(),
        restarted.model("hero").unwrap(),
    );
    let mut clicks = 0.0;
    for s in 0..SEGMENTS.len() {
        for arm in ["h1", "h2", "h3"] {
            let (pa, pb, pr) = (
                ma.posterior(s, arm),
                mb.posterior(s, arm),
                mr.posterior(s, arm),
            );
            assert_eq!(pa, pb);
            assert_eq!(pa, pr);
            clicks += pa.rewards;
        }
    }
    assert_eq!(clicks, 20.0);
    // The linear models agree too: the same choice distribution for the same context.
    let x = bandits::context::ContextInput {
        segment: Some("New".into()),
        ..Default::default()
    }
    .resolve(None, true, clock.now())
    .features();
    use rand::SeedableRng;
    let pick = |m: &bandits::policy::SlotModel| {
        m.choose(
            0,
            &x,
            clock.now(),
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
        )
        .unwrap()
    };
    assert_eq!(pick(&ma), pick(&mr));

    a.act(
        "hero",
        Action::Pause {
            arm_id: "h2".into(),
        },
        "bob",
    )
    .await
    .unwrap();
    b.sync().await.unwrap();
    for i in 0..30 {
        let d = b
            .decide(decide_req("hero", &format!("v{i}"), "New"))
            .await
            .unwrap();
        assert_ne!(d.arm_id, "h2", "a paused arm is never served");
    }
    let audit = b.store().audit("hero", 10).await.unwrap();
    assert_eq!(audit[0].action, "pause");
    assert_eq!(audit[0].actor, "bob");
    assert_eq!(audit[1].action, "create");
    // A stale edit is refused.
    let stale = b
        .update_slot(slot("hero", Objective::Click, &["h1"]), Some(1), "carol")
        .await;
    assert!(
        matches!(stale, Err(bandits::Error::Conflict(_))),
        "{stale:?}"
    );
}

/// Forced winners, stickiness, campaign dates and warm-start priors.
async fn merchandising(backend: Backend) {
    let clock = ManualClock::new(t("2026-12-01T10:00:00Z"));
    let b = service(store(backend).await, &clock);
    let mut s = slot("hero", Objective::Click, &["a", "b"]);
    s.sticky = true;
    s.arms[1].campaign_start = Some(t("2026-12-02T00:00:00Z"));
    b.create_slot(s, "t").await.unwrap();
    for i in 0..10 {
        let d = b
            .decide(decide_req("hero", &format!("u{i}"), "New"))
            .await
            .unwrap();
        assert_eq!(d.arm_id, "a", "b's campaign has not started");
        assert_eq!(d.propensity, 1.0);
    }
    clock.advance(chrono::Duration::days(1));
    b.act(
        "hero",
        Action::Force {
            segment: "At Risk".into(),
            arm_id: "b".into(),
        },
        "m",
    )
    .await
    .unwrap();
    let d = b.decide(decide_req("hero", "r1", "At Risk")).await.unwrap();
    assert_eq!(
        (d.arm_id.as_str(), d.reason.as_str(), d.propensity),
        ("b", "forced", 1.0)
    );
    // Stickiness: the same session keeps its arm.
    let mut req = decide_req("hero", "s1", "New");
    req.context.session_id = Some("sess-1".into());
    let first = b.decide(req.clone()).await.unwrap();
    for _ in 0..5 {
        let again = b.decide(req.clone()).await.unwrap();
        assert_eq!(
            (again.arm_id.as_str(), again.reason.as_str()),
            (first.arm_id.as_str(), "sticky")
        );
    }
    // A new arm gets the pooled mean as its prior: learn some clicks, then add `c`.
    for i in 0..20 {
        let d = b
            .decide(decide_req("hero", &format!("w{i}"), "New"))
            .await
            .unwrap();
        if i % 4 == 0 {
            b.reward(d.decision_id, 1.0).await.unwrap();
        } else {
            b.reward(d.decision_id, 0.0).await.unwrap();
        }
    }
    b.sync().await.unwrap();
    let mut s = b.model("hero").unwrap().slot().clone();
    s.arms.push(arm("c"));
    let s = b.update_slot(s, None, "m").await.unwrap();
    let prior = s.arms[2].prior.expect("warm-start prior filled in");
    assert!(prior.mean > 0.1 && prior.mean < 0.5, "{prior:?}");
    assert_eq!(prior.strength, 50.0);
    assert_eq!(s.arms[0].prior, None, "existing arms keep theirs");
    // Bad changes are refused with the field named.
    let e = b
        .act(
            "hero",
            Action::Floor {
                arm_id: "a".into(),
                traffic_floor: Some(0.9),
            },
            "m",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("arms[0].traffic_floor"), "{e}");
    let e = b
        .act(
            "hero",
            Action::Pause {
                arm_id: "zz".into(),
            },
            "m",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, bandits::Error::NotFound(_)));
}

/// The outbox puts every decision on `lusso.decisions.v1` and in the event log exactly once per
/// publish, and a second round finds nothing left to publish. Memory: embedded bus + Parquet log;
/// PostgreSQL: the Kafka-protocol broker + ClickHouse.
async fn outbox(backend: Backend) {
    use pipelines::bus::EventBus;
    use pipelines::log::EventLog;
    let clock = ManualClock::new(t("2026-12-01T10:00:00Z"));
    let b = service(store(backend).await, &clock);
    b.create_slot(slot("hero", Objective::Click, &["a", "b"]), "t")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suffix = Uuid::new_v4().simple().to_string();
    let (bus, log): (std::sync::Arc<dyn EventBus>, std::sync::Arc<dyn EventLog>) = match backend {
        Backend::Memory => (
            std::sync::Arc::new(pipelines::bus::memory::MemoryBus::new(Default::default())),
            std::sync::Arc::new(
                pipelines::log::parquet::ParquetLog::open(dir.path())
                    .await
                    .unwrap(),
            ),
        ),
        Backend::Postgres => {
            let env = |k: &str| {
                std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set (scripts/test.sh)"))
            };
            let config = pipelines::config::BackendConfig {
                kafka_brokers: Some(env("LUSSO_KAFKA_BROKERS")),
                ..pipelines::config::BackendConfig::embedded(dir.path())
            };
            let log = pipelines::log::clickhouse::ClickHouseLog::connect(
                &env("LUSSO_CLICKHOUSE_URL"),
                "lusso_test",
                &format!("outbox_{suffix}"),
            )
            .await
            .unwrap();
            (
                pipelines::bus::connect(&config).unwrap(),
                std::sync::Arc::new(log),
            )
        }
    };
    let topic = format!("outbox-{suffix}.lusso.decisions.v1");
    bus.ensure_topic(&topic, 2).await.unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..30 {
        let mut req = decide_req("hero", &format!("u{i}"), "New");
        req.context.market = Some("IT".into());
        ids.insert(b.decide(req).await.unwrap().decision_id);
    }
    assert_eq!(
        joiner::publish_once(&b, bus.as_ref(), Some(log.as_ref()), &topic)
            .await
            .unwrap(),
        30
    );
    assert_eq!(
        joiner::publish_once(&b, bus.as_ref(), Some(log.as_ref()), &topic)
            .await
            .unwrap(),
        0
    );
    let mut sub = bus.subscribe(&topic, "check").await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        for m in sub
            .poll(100, std::time::Duration::from_millis(250))
            .await
            .unwrap()
        {
            let d: bandits::reward::Decision = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(
                d.context.market.as_deref(),
                Some("IT"),
                "the context used is logged"
            );
            seen.insert(d.decision_id);
        }
        if seen.len() == ids.len() {
            break;
        }
    }
    assert_eq!(seen, ids);
    let logged = log
        .query(&match backend {
            Backend::Memory => "SELECT count(*) FROM events WHERE type = 'banner_impression'".to_string(),
            Backend::Postgres => format!(
                "SELECT count() FROM lusso_test.outbox_{suffix} FINAL WHERE type = 'banner_impression'"
            ),
        })
        .await
        .unwrap();
    assert_eq!(logged.scalar_i64(), Some(30));
}

mod memory {
    use super::*;

    #[tokio::test]
    async fn outbox() {
        super::outbox(Backend::Memory).await;
    }

    #[tokio::test]
    async fn reward_joining() {
        super::reward_joining(Backend::Memory).await;
    }

    #[tokio::test]
    async fn replicas_and_restart() {
        super::replicas_and_restart(Backend::Memory).await;
    }

    #[tokio::test]
    async fn merchandising() {
        super::merchandising(Backend::Memory).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn outbox() {
        super::outbox(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn reward_joining() {
        super::reward_joining(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn replicas_and_restart() {
        super::replicas_and_restart(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn merchandising() {
        super::merchandising(Backend::Postgres).await;
    }
}
