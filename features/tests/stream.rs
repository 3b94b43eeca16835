//! Stream scenarios, each run against the in-memory store and against real Redis (+ real Kafka-protocol broker
//! where a bus is involved): redelivery, replays and re-sent duplicates change nothing; the segment of a
//! simulated high-value shopper is served over HTTP.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use features::api::{app, FeaturesApi};
use features::consumer::{self, ConsumerConfig};
use features::metrics::FeatureMetrics;
use features::processor::{state_id, Incoming, Item, Processor};
use features::state::product::StockLevel;
use features::state::stream_id;
use pipelines::bus::{EventBus, Record};
use pipelines::event::{Event, EventType};
use pipelines::sim::params::Segment;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Sum of a lifetime total over shoppers.
fn total(users: &[serde_json::Value], kind: &str) -> u64 {
    users
        .iter()
        .map(|u| u["totals"][kind].as_u64().unwrap())
        .sum()
}

async fn redelivery_and_resends_change_nothing(redis: bool) {
    let (events, _, now) = simulate(400, 20, 11);
    let (ctx, store, _keys) = context_and_store(redis).await;
    let p = Processor::new(ctx, store);
    let stream = stream_id(0, 2);
    let batch = incoming(&events, stream, 0);
    for chunk in batch.chunks(3_000) {
        p.process(chunk).await.unwrap();
    }
    let once = snapshot(&p, &events, now).await;
    let views = events
        .iter()
        .filter(|e| e.event_type() == EventType::ProductView)
        .count() as u64;
    let orders = events
        .iter()
        .filter(|e| e.event_type() == EventType::Purchase)
        .count() as u64;
    assert!(
        views > 1_000 && orders > 10,
        "simulation too small: {views} views, {orders} orders"
    );
    assert_eq!(
        total(&once.0, "views"),
        views,
        "every view counted once per shopper"
    );
    assert_eq!(total(&once.0, "purchases"), orders);
    assert_eq!(
        total(&once.1, "views"),
        views,
        "every view counted once per product"
    );

    // Redelivery of everything, cut into different batches: fenced, nothing applied.
    for chunk in batch.chunks(7_777) {
        let stats = p.process(chunk).await.unwrap();
        assert_eq!(stats.applied, 0);
        assert_eq!(stats.redelivered, chunk.len() as u64);
    }
    assert_snapshots_equal(&once, &snapshot(&p, &events, now).await);

    // Re-sent copies (a client retry) at new offsets: per shopper, its newest events within the dedup horizon
    // (the last half hour) and the id cap (at most 40 of them).
    let mut per_user: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        per_user.entry(state_id(e)).or_default().push(e);
    }
    let mut resent: Vec<Event> = Vec::new();
    for list in per_user.values_mut() {
        list.sort_by_key(|e| std::cmp::Reverse(e.ts));
        let newest = list[0].ts.timestamp_millis();
        resent.extend(
            list.iter()
                .take(40)
                .filter(|e| newest - e.ts.timestamp_millis() <= 30 * 60_000)
                .map(|e| (*e).clone()),
        );
    }
    assert!(resent.len() > 100, "{} re-sent events", resent.len());
    let copies = incoming(&resent, stream, batch.len() as u64 + 1_000);
    let stats = p.process(&copies).await.unwrap();
    assert_eq!((stats.applied, stats.duplicates), (0, resent.len() as u64));
    assert_snapshots_equal(&once, &snapshot(&p, &events, now).await);
}

async fn get(router: &axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

async fn high_value_returning_shopper_over_http(redis: bool) {
    let (events, truth, _) = simulate(800, 150, 23);
    let (ctx, store, _keys) = context_and_store(redis).await;
    let p = Processor::new(ctx, store);
    for chunk in incoming(&events, stream_id(0, 0), 0).chunks(10_000) {
        p.process(chunk).await.unwrap();
    }
    let router = app(FeaturesApi::new(p));
    // Classify every registered shopper through the API and compare with the simulator's latent segment.
    let mut hvr_as = BTreeMap::<String, usize>::new();
    let mut others_as_hvr = 0;
    let mut others = 0;
    let mut example = None;
    for u in truth.users.iter().filter(|u| u.user_id.is_some()) {
        let id = u.user_id.as_deref().unwrap();
        let (status, body) = get(&router, &format!("/v1/users/{id}/segment")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seg = body["segment"].as_str().unwrap().to_string();
        if u.segment == Segment::HighValueReturning {
            if seg == "High-Value Returning" && example.is_none() {
                example = Some(id.to_string());
            }
            *hvr_as.entry(seg).or_default() += 1;
        } else if body["known"] == true {
            others += 1;
            others_as_hvr += usize::from(seg == "High-Value Returning");
        }
    }
    let hvr_total: usize = hvr_as.values().sum();
    let hit = hvr_as.get("High-Value Returning").copied().unwrap_or(0);
    println!("simulated high-value returning shoppers classified as {hvr_as:?}; {others_as_hvr}/{others} others as HVR");
    assert!(
        hit * 2 > hvr_total,
        "most simulated HVR shoppers are High-Value Returning: {hvr_as:?}"
    );
    assert!(
        others_as_hvr * 10 < others,
        "few other shoppers are: {others_as_hvr}/{others}"
    );
    let id = example.unwrap();
    let (status, f) = get(&router, &format!("/v1/users/{id}/features")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f["segment"], "High-Value Returning");
    assert!(
        f["rfm"]["frequency"].as_u64().unwrap() >= 2
            && f["rfm"]["monetary_eur"].as_f64().unwrap() >= 1000.0
    );
    // The API validates and reports unknowns.
    let (status, body) = get(&router, "/v1/users/nobody-here/features").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody-here"),
        "{body}"
    );
    let (status, body) = get(&router, "/v1/users/nobody-here/segment").await;
    assert_eq!(
        (status, body["segment"].as_str()),
        (StatusCode::OK, Some("New"))
    );
    let (status, body) = get(&router, "/v1/products/NOPE/features").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&router, "/v1/users/%7Bx%7D/features").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let viewed = events
        .iter()
        .find_map(|e| e.product_id().map(str::to_string))
        .unwrap();
    let (status, body) = get(&router, &format!("/v1/products/{viewed}/features")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["totals"]["views"].as_u64().unwrap() > 0, "{body}");
}

/// Runs the consumer group `group` until `expect` events are applied or skipped, then stops it.
async fn consume_all(
    bus: Arc<dyn EventBus>,
    p: Processor,
    topic: &str,
    group: &str,
    expect: u64,
) -> FeatureMetrics {
    let metrics = FeatureMetrics::new(&prometheus::Registry::new());
    let mut ctx = (**p.context()).clone();
    ctx.config.group = group.to_string();
    let p = Processor::new(Arc::new(ctx), p.store().clone());
    let cfg = ConsumerConfig {
        events_topic: topic.to_string(),
        commerce_topic: format!("{topic}.commerce"),
        partitions: 4,
    };
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer::run(bus, p, metrics.clone(), cfg, token.clone()));
    let start = Instant::now();
    while metrics.applied.get() + metrics.redelivered.get() + metrics.duplicates.get() < expect {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "consumer stalled at {}",
            metrics.applied.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    task.await.unwrap().unwrap();
    metrics
}

/// Messages in `topic` (at least `at_least`): read by a one-off group until it has caught up.
async fn log_length(bus: &dyn EventBus, topic: &str, at_least: u64) -> u64 {
    let mut sub = bus.subscribe(topic, &fresh("count")).await.unwrap();
    let (start, mut seen) = (Instant::now(), 0u64);
    loop {
        seen += sub
            .poll(5_000, Duration::from_millis(200))
            .await
            .unwrap()
            .len() as u64;
        if seen >= at_least && sub.lag().await.unwrap() == Some(0) {
            return seen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "read only {seen} of at least {at_least} messages"
        );
    }
}

async fn replaying_the_topic_changes_nothing(bus: Arc<dyn EventBus>, redis: bool) {
    let (events, _, now) = simulate(300, 10, 5);
    let topic = fresh("lusso.events.test");
    bus.ensure_topic(&topic, 4).await.unwrap();
    let records: Vec<Record> = events
        .iter()
        .map(|e| Record::new(e.key().to_string(), e.to_json_bytes()))
        .collect();
    for chunk in records.chunks(5_000) {
        bus.produce(&topic, chunk.to_vec()).await.unwrap();
    }
    let (ctx, store, _keys) = context_and_store(redis).await;
    let p = Processor::new(ctx, store);
    let n = events.len() as u64;
    // The log may hold more than `n` messages: a producer retry the broker did not de-duplicate writes a
    // batch twice at new offsets. Those copies carry the same event ids and must count as duplicates.
    let logged = log_length(bus.as_ref(), &topic, n).await;
    let first = consume_all(bus.clone(), p.clone(), &topic, &fresh("g1"), logged).await;
    assert_eq!(first.applied.get(), n);
    assert!(
        first.applied.get() + first.duplicates.get() + first.redelivered.get() >= logged,
        "the first group stopped before the end of the log ({logged} messages)"
    );
    let once = snapshot(&p, &events, now).await;
    assert_eq!(
        total(&once.0, "views"),
        events
            .iter()
            .filter(|e| e.event_type() == EventType::ProductView)
            .count() as u64
    );
    // A new group replays the whole topic from the start: every message is fenced.
    let second = consume_all(bus, p.clone(), &topic, &fresh("g2"), logged).await;
    assert_eq!(
        (second.applied.get(), second.duplicates.get()),
        (0, 0),
        "replay of {logged} logged messages ({n} events): {} fenced",
        second.redelivered.get()
    );
    assert!(second.redelivered.get() >= logged);
    assert_snapshots_equal(&once, &snapshot(&p, &events, now).await);
}

/// Stock levels from `lusso.commerce.v1`: absolute levels, the newest `seq` wins whatever the arrival order, and a
/// redelivery changes nothing.
async fn stock_levels_are_last_writer_wins(redis: bool) {
    let (ctx, store, _keys) = context_and_store(redis).await;
    let p = Processor::new(ctx.clone(), store);
    let product = ctx.catalog.products()[0].clone();
    let v = &product.variants[0];
    let level = |location: &str, available: i64, seq: u64| Item::Stock {
        product_id: product.id.clone(),
        level: StockLevel {
            variant_id: v.id.clone(),
            size: v.size.clone(),
            location: location.to_string(),
            available,
            seq,
        },
    };
    let stream = stream_id(consumer::COMMERCE_STREAM, 1);
    let batch: Vec<Incoming> = [
        level("online", 5, 2),
        level("MI01", 1, 1),
        level("online", 9, 1),
        level("online", 0, 3),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, item)| Incoming {
        stream,
        offset: i as u64,
        item,
    })
    .collect();
    p.process(&batch).await.unwrap();
    p.process(&batch).await.unwrap();
    let router = app(FeaturesApi::new(p));
    let (status, f) = get(&router, &format!("/v1/products/{}/features", product.id)).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    let s = &f["stock"][&v.id];
    assert_eq!(s["size"], v.size.as_str());
    assert_eq!(
        s["locations"]["online"], 0,
        "seq 3 is the newest online level: {f}"
    );
    assert_eq!(s["locations"]["MI01"], 1);
    assert_eq!(s["available"], 1);
}

mod memory {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stock_levels_are_last_writer_wins() {
        super::stock_levels_are_last_writer_wins(false).await;
    }
    use pipelines::bus::memory::MemoryBus;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redelivery_and_resends_change_nothing() {
        super::redelivery_and_resends_change_nothing(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn high_value_returning_shopper_over_http() {
        super::high_value_returning_shopper_over_http(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replaying_the_topic_changes_nothing() {
        super::replaying_the_topic_changes_nothing(
            Arc::new(MemoryBus::new(Default::default())),
            false,
        )
        .await;
    }
}

mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stock_levels_are_last_writer_wins() {
        super::stock_levels_are_last_writer_wins(true).await;
    }
    use pipelines::bus::kafka::{KafkaBus, KafkaConfig};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redelivery_and_resends_change_nothing() {
        super::redelivery_and_resends_change_nothing(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn high_value_returning_shopper_over_http() {
        super::high_value_returning_shopper_over_http(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replaying_the_topic_changes_nothing() {
        let bus = KafkaBus::new(KafkaConfig::new(require_env("LUSSO_KAFKA_BROKERS"))).unwrap();
        super::replaying_the_topic_changes_nothing(Arc::new(bus), true).await;
    }
}
