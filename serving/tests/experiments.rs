//! Experiment stores (memory and PostgreSQL) through one scenario, and results computed from a real
//! Parquet event log with hand-computed expectations. The PostgreSQL tests read `LUSSO_DATABASE_URL` and
//! get a fresh database each.

use chrono::{DateTime, Duration, Utc};
use pipelines::event::{Event, OrderLine, Properties, Purchase};
use pipelines::log::parquet::ParquetLog;
use pipelines::log::EventLog;
use serving::experiments::results::{results, results_bounded};
use serving::experiments::{
    exposure_event, Assignment, AssignmentReason, ExperimentInput, ExperimentStatus,
    ExperimentStore, MemoryExperimentStore, PgExperimentStore, VariantSpec,
};
use serving::Error;
use uuid::Uuid;

fn input(key: &str) -> ExperimentInput {
    ExperimentInput {
        key: key.into(),
        name: format!("Experiment {key}"),
        salt: None,
        status: ExperimentStatus::Running,
        traffic: 1.0,
        variants: vec![
            VariantSpec {
                key: "control".into(),
                weight: 1.0,
                model_version: None,
                rule_set: None,
            },
            VariantSpec {
                key: "treatment".into(),
                weight: 1.0,
                model_version: Some("als-v7".into()),
                rule_set: Some("summer".into()),
            },
        ],
        placements: vec!["home".into()],
    }
}

/// `store` and `other` are two handles on the same experiments (the same object for memory).
async fn scenario(store: &dyn ExperimentStore, other: &dyn ExperimentStore) {
    let r0 = store.revision().await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert!(matches!(store.get("home").await, Err(Error::NotFound(_))));

    let created = store.create(input("home"), "alice").await.unwrap();
    assert_eq!(
        (
            created.version,
            created.salt.as_str(),
            created.updated_by.as_str()
        ),
        (1, "home", "alice")
    );
    assert_eq!(created.created_at, created.updated_at);
    let r1 = other.revision().await.unwrap();
    assert_ne!(r1, r0, "a create moves the revision");
    assert_eq!(other.get("home").await.unwrap(), created);

    // Duplicate key and invalid input change nothing.
    match other.create(input("home"), "bob").await {
        Err(Error::Conflict(m)) => assert!(m.contains("home"), "{m}"),
        x => panic!("{x:?}"),
    }
    let mut bad = input("other");
    bad.variants[1].weight = 0.0;
    match store.create(bad, "bob").await {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "variants[1].weight"),
        x => panic!("{x:?}"),
    }
    assert_eq!(store.revision().await.unwrap(), r1);

    // Update at the expected version, then a stale one, then an unconditional one.
    let mut half = input("home");
    half.traffic = 0.5;
    let v2 = other
        .update("home", half.clone(), Some(1), "bob")
        .await
        .unwrap();
    assert_eq!(
        (v2.version, v2.traffic, v2.updated_by.as_str()),
        (2, 0.5, "bob")
    );
    assert_eq!(v2.created_at, created.created_at);
    assert!(v2.updated_at >= created.updated_at);
    let r2 = store.revision().await.unwrap();
    assert_ne!(r2, r1);
    match store.update("home", half.clone(), Some(1), "carol").await {
        Err(Error::Conflict(m)) => assert!(m.contains("version 2"), "{m}"),
        x => panic!("{x:?}"),
    }
    assert_eq!(store.revision().await.unwrap(), r2);
    let mut stopped = half.clone();
    stopped.status = ExperimentStatus::Stopped;
    let v3 = store.update("home", stopped, None, "carol").await.unwrap();
    assert_eq!((v3.version, v3.status), (3, ExperimentStatus::Stopped));
    assert_eq!(other.get("home").await.unwrap(), v3);

    assert!(matches!(
        store.update("nope", input("nope"), None, "x").await,
        Err(Error::NotFound(_))
    ));
    match store.update("home", input("renamed"), None, "x").await {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "key"),
        x => panic!("{x:?}"),
    }

    // Listing is by key, on either handle.
    let abc = other.create(input("abc"), "dave").await.unwrap();
    let keys: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["abc", "home"]);
    assert_eq!(store.get("abc").await.unwrap(), abc);
    assert!(!store.describe().is_empty());
}

/// A store bounded at 2 experiments.
async fn capped(store: &dyn ExperimentStore) {
    store.create(input("one"), "a").await.unwrap();
    store.create(input("two"), "a").await.unwrap();
    match store.create(input("three"), "a").await {
        Err(Error::Conflict(m)) => assert!(m.contains("capped at 2"), "{m}"),
        x => panic!("{x:?}"),
    }
    store
        .update("two", input("two"), Some(1), "a")
        .await
        .unwrap();
}

mod memory {
    use super::*;

    #[tokio::test]
    async fn experiment_store() {
        let store = MemoryExperimentStore::new();
        scenario(&store, &store).await;
    }

    #[tokio::test]
    async fn experiment_store_bound() {
        capped(&MemoryExperimentStore::with_max(2)).await;
        let full = MemoryExperimentStore::new();
        for i in 0..serving::experiments::MAX_EXPERIMENTS {
            full.create(input(&format!("e{i}")), "bulk").await.unwrap();
        }
        match full.create(input("last"), "bulk").await {
            Err(Error::Conflict(m)) => assert!(m.contains("1000"), "{m}"),
            x => panic!("{x:?}"),
        }
    }
}

mod postgres {
    use super::*;

    async fn database() -> String {
        let base = std::env::var("LUSSO_DATABASE_URL").expect(
            "LUSSO_DATABASE_URL (scripts/services.sh up, then source ~/.local/share/lusso/services/env.sh)",
        );
        serving::pg::fresh_database(&base, "lusso_test_experiments")
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiment_store() {
        let url = database().await;
        let a = PgExperimentStore::new(serving::pg::connect(&url).await.unwrap())
            .await
            .unwrap();
        let b = PgExperimentStore::new(serving::pg::connect(&url).await.unwrap())
            .await
            .unwrap();
        scenario(&a, &b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiment_store_bound() {
        let url = database().await;
        let store = PgExperimentStore::new(serving::pg::connect(&url).await.unwrap())
            .await
            .unwrap()
            .with_max(2);
        capped(&store).await;
    }
}

fn at(t0: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    t0 + Duration::minutes(minutes)
}

/// An exposure of `unit` (a user id, or an anonymous id when `anonymous`) to `variant`, built as serving
/// builds it.
fn exposure(
    experiment: &str,
    variant: &str,
    unit: &str,
    anonymous: bool,
    ts: DateTime<Utc>,
) -> Event {
    let a = Assignment {
        experiment: experiment.into(),
        unit_id: unit.into(),
        variant: Some(variant.into()),
        enrolled: true,
        reason: AssignmentReason::Running,
        model_version: None,
        rule_set: None,
    };
    let (user, anon) = if anonymous {
        (None, Some(unit))
    } else {
        (Some(unit), None)
    };
    exposure_event(&a, user, anon, Some("IT"), ts).unwrap()
}

fn purchase(
    user: Option<&str>,
    anon: Option<&str>,
    currency: &str,
    total: f64,
    ts: DateTime<Utc>,
) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        ts,
        user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        session_id: None,
        market: Some("IT".into()),
        device: None,
        received_at: Some(ts),
        properties: Properties::Purchase(Purchase {
            order_id: format!("O-{}", Uuid::new_v4().simple()),
            currency: currency.into(),
            total,
            lines: vec![OrderLine {
                product_id: "P000001".into(),
                variant_id: "P000001-NER-42".into(),
                quantity: 1,
                unit_price: total,
                extra: Default::default(),
            }],
            extra: Default::default(),
        }),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// Control: u1 buys 200 EUR after exposure; u2 bought 500 EUR one minute BEFORE its exposure (not
/// counted: not converted); anonymous a3 bought 999 EUR before and 100 GBP (× 1.17 = 117 EUR) after its
/// exposure. Treatment: u4 buys 100 USD (× 0.92 = 92 EUR), its later exposure to control is ignored; u5
/// does not buy; u6 buys in BRL (converted, no EUR rate: no revenue). Ignored: an exposure of another
/// experiment, one to an unknown variant, one before the window, a purchase by a never-exposed user, a
/// repeated exposure of u1 in the same hour (same event id: stored once).
///
/// By hand (z = 1.96): control n = 3, 2 converted, CR 2/3, revenue [200, 0, 117] → RPV 105.666667,
/// s = √((94.33² + 105.67² + 11.33²) / 2) = 100.480512, interval 105.666667 ± 1.96 · 100.480512 / √3
/// = [−8.037737, 219.371070]. Treatment n = 3, 2 converted, revenue [92, 0, 0] → RPV 30.666667,
/// s = 53.116225; CR lift 0, p = 1 (equal rates: z = 0); RPV lift (30.67 − 105.67) / 105.67 = −0.709779.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_from_a_parquet_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = ParquetLog::open(dir.path().join("events")).await.unwrap();
    let store = MemoryExperimentStore::new();
    let exp = store.create(input("checkout"), "alice").await.unwrap();
    let t0: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
    let (since, until) = (at(t0, -60), at(t0, 600));
    let x =
        |v: &str, unit: &str, minutes: i64| exposure("checkout", v, unit, false, at(t0, minutes));
    let events = vec![
        x("control", "u1", 0),
        x("control", "u1", 15), // same hour: same event id, stored once
        purchase(Some("u1"), None, "EUR", 200.0, at(t0, 30)),
        purchase(Some("u2"), None, "EUR", 500.0, at(t0, 1)),
        x("control", "u2", 2),
        purchase(None, Some("a3"), "EUR", 999.0, at(t0, 1)),
        exposure("checkout", "control", "a3", true, at(t0, 10)),
        purchase(Some("u9"), Some("a3"), "GBP", 100.0, at(t0, 20)),
        x("treatment", "u4", 3),
        x("control", "u4", 40),
        purchase(Some("u4"), None, "USD", 100.0, at(t0, 50)),
        x("treatment", "u5", 4),
        x("treatment", "u6", 5),
        purchase(Some("u6"), None, "BRL", 300.0, at(t0, 55)),
        exposure("other-exp", "control", "u7", false, at(t0, 6)),
        x("retired", "u8", 7),
        x("treatment", "u10", -120),
        purchase(Some("u10"), None, "EUR", 50.0, at(t0, 70)),
        purchase(Some("u11"), None, "EUR", 70.0, at(t0, 80)),
        purchase(Some("u1"), None, "EUR", 1_000.0, at(t0, 700)), // after `until`
    ];
    log.append(&events).await.unwrap();

    let r = results(&log, &exp, since, until).await.unwrap();
    assert_eq!(r.control, "control");
    assert_eq!(
        (
            r.exposures,
            r.unknown_variant_exposures,
            r.purchases_attributed,
            r.purchases_unknown_currency
        ),
        (8, 1, 4, 1),
        "{r:?}"
    );
    // 20 appended, one repeated exposure de-duplicated, one exposure before and one purchase after the window.
    assert_eq!(r.events_scanned, 17);
    let (c, t) = (&r.variants[0], &r.variants[1]);
    assert_eq!(
        (c.variant.as_str(), c.exposed_units, c.converted_units),
        ("control", 3, 2)
    );
    assert!(close(c.conversion_rate.unwrap(), 2.0 / 3.0));
    assert!(close(c.revenue_eur, 317.0));
    assert!(close(c.revenue_per_visitor_eur.unwrap(), 105.666_666_667));
    assert!(close(c.revenue_per_visitor_sd.unwrap(), 100.480_512_207));
    let ci = c.revenue_per_visitor_interval.unwrap();
    assert!(
        close(ci.low, -8.037_736_844) && close(ci.high, 219.371_070_178),
        "{ci:?}"
    );
    assert_eq!(c.conversion_p_value, None);

    assert_eq!(
        (t.variant.as_str(), t.exposed_units, t.converted_units),
        ("treatment", 3, 2)
    );
    assert!(close(t.revenue_eur, 92.0));
    assert!(close(t.revenue_per_visitor_sd.unwrap(), 53.116_224_766));
    assert!(close(t.conversion_lift.unwrap(), 0.0));
    assert!(close(t.revenue_per_visitor_lift.unwrap(), -0.709_779_180));
    assert_eq!(t.conversion_p_value, Some(1.0));

    // The window starts at `since`: from t0 + 45 min there is no exposure, so no unit and no credit.
    let late = results(&log, &exp, at(t0, 45), until).await.unwrap();
    assert_eq!(late.variants[0].exposed_units, 0);
    assert_eq!(late.purchases_attributed, 0);

    // Bounded memory: 6 units do not fit in 5.
    match results_bounded(&log, &exp, since, until, 5).await {
        Err(Error::Unavailable(m)) => assert!(m.contains("shorter window"), "{m}"),
        x => panic!("{x:?}"),
    }
    assert!(matches!(
        results(&log, &exp, until, since).await,
        Err(Error::BadInput { .. })
    ));
}
