//! Collector + sink behaviour, each scenario written once and run per backend
//! (`mod embedded`: in-process bus + Parquet; `mod real`: tansu over Kafka protocol + ClickHouse).

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use pipelines::bus::Record;
use serde_json::{json, Value};

/// A batch mixing valid and invalid events: per-index reasons, invalid ones in quarantine, valid ones in
/// the log exactly once even when the same batch is posted again.
async fn mixed_batch(b: Backends) {
    let app = b.app();
    let mut events: Vec<Value> = (0..6).map(valid_event).collect();
    events[1]["event_id"] = json!("nope");
    events[3] = json!({"type": "teleport", "ts": "2026-01-01T00:00:00Z", "anonymous_id": "a", "properties": {}});
    events[4]["properties"] = json!({"product_id": ""});
    events[4]["colour"] = json!("red");
    let (status, _, body) = post_events(&app, &events).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 3);
    let rejected = body["rejected"].as_array().unwrap();
    let indexes: Vec<u64> = rejected
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 3, 4]);
    let fields = |i: usize| -> Vec<String> {
        rejected[i]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["field"].as_str().unwrap(),
                    e["code"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(fields(0), vec!["event_id:malformed_uuid"]);
    assert!(
        fields(1).contains(&"type:unknown_type".to_string()),
        "{:?}",
        fields(1)
    );
    assert!(fields(1).contains(&"event_id:missing_field".to_string()));
    assert_eq!(
        fields(2),
        vec!["colour:unknown_field", "properties.product_id:empty"]
    );

    let bad = ingest::quarantine::list(b.bus.as_ref(), &b.quarantine_topic, 100)
        .await
        .unwrap();
    assert_eq!(bad.len(), 3, "{bad:?}");
    let mut quarantined: Vec<usize> = bad.iter().map(|r| r.index.unwrap()).collect();
    quarantined.sort();
    assert_eq!(quarantined, vec![1, 3, 4]);
    assert!(bad
        .iter()
        .all(|r| !r.errors.is_empty() && r.source == "collector"));

    let (token, sink) = b.start_sink(b.sink_config());
    let (rows, distinct) = b.wait_for_count(3, Duration::from_secs(60)).await;
    assert_eq!((rows, distinct), (3, 3));
    // The storefront retries the whole batch (e.g. after a timeout): nothing is counted twice.
    let (status, _, body) = post_events(&app, &events).await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (StatusCode::OK, json!(3))
    );
    let more: Vec<Value> = (10..12).map(valid_event).collect();
    post_events(&app, &more).await;
    let counts = b.wait_for_count(5, Duration::from_secs(60)).await;
    assert_eq!(counts, (5, 5));
    let stored = b.log.query(&b.ids_sql).await.unwrap();
    let ids: Vec<&str> = stored.rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    for i in [0, 2, 5] {
        assert!(
            ids.contains(&events[i]["event_id"].as_str().unwrap()),
            "{ids:?}"
        );
    }
    token.cancel();
    sink.await.unwrap().unwrap();
}

/// Size and shape limits: 413 over 1 MiB or 500 events, 400 for non-JSON or a wrong shape.
async fn limits(b: Backends) {
    let app = b.app();
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, _, body) = post(&app, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["field"], "body");
    let (status, _, body) = post(&app, "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "body");
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    let (status, _, body) = post(&app, r#"{"evnts": []}"#).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("evnts"))
    );
    let (status, _, body) = post(&app, r#"{"events": 3}"#).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("events"))
    );
    let many: Vec<Value> = (0..501).map(valid_event).collect();
    let (status, _, body) = post_events(&app, &many).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("events"))
    );
    let (status, _, body) = post_events(&app, &[]).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"accepted": 0, "rejected": []}))
    );
    // Nothing of the refused requests reached the bus.
    let bad = ingest::quarantine::list(b.bus.as_ref(), &b.quarantine_topic, 10)
        .await
        .unwrap();
    assert!(bad.is_empty());
}

/// Health, readiness, schema, OpenAPI and metrics endpoints.
async fn ops_endpoints(b: Backends) {
    let app = b.app();
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, schema) = get(&app, "/v1/schemas/events").await;
    assert_eq!(status, StatusCode::OK);
    assert!(schema.contains("lusso.event/v1") && schema.contains("banner_click"));
    let (status, openapi) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&openapi).unwrap();
    assert!(doc["paths"]["/v1/events"]["post"]["responses"]["503"].is_object());
    assert!(!openapi.contains("#/$defs/"), "dangling refs in OpenAPI");
    let mut events: Vec<Value> = (0..3).map(valid_event).collect();
    events[0]["market"] = json!("ZZ");
    post_events(&app, &events).await;
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("lusso_events_accepted_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("lusso_events_rejected_total 1"));
    assert!(metrics.contains(r#"lusso_event_problems_total{reason="unknown_market"} 1"#));
    assert!(metrics.contains("lusso_collector_produce_seconds_bucket"));
}

/// A sink that dies mid-stream without committing (task aborted) and is restarted leaves the log with
/// every event exactly once.
async fn sink_crash_and_restart(b: Backends) {
    let total = 5_000usize;
    let records: Vec<Record> = (0..total)
        .map(|i| {
            let v = valid_event(i);
            let e = pipelines::validate::validate_event(&v, chrono::Utc::now()).unwrap();
            Record::new(e.key().as_bytes().to_vec(), e.to_json_bytes())
        })
        .collect();
    for chunk in records.chunks(500) {
        b.bus
            .produce(&b.events_topic, chunk.to_vec())
            .await
            .unwrap();
    }
    let mut cfg = b.sink_config();
    cfg.batch_max_events = 400;
    let (_token, first) = b.start_sink(cfg.clone());
    b.wait_for_count(1, Duration::from_secs(60)).await;
    first.abort();
    let _ = first.await;
    let (token, second) = b.start_sink(cfg);
    let (_, distinct) = b
        .wait_for_count(total as i64, Duration::from_secs(120))
        .await;
    assert_eq!(distinct, total as i64);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.counts().await, (total as i64, total as i64));
    token.cancel();
    second.await.unwrap().unwrap();
}

/// Replay: a bad row fixed by a rule change is not possible here, but a row whose timestamp was too far in
/// the future becomes valid once that time has come; here we replay rows that are still invalid and check
/// nothing bogus reaches the events topic, then replay a valid one written to quarantine by hand.
async fn quarantine_replay(b: Backends) {
    let app = b.app();
    let mut bad = valid_event(1);
    bad["device"] = json!("fridge");
    post_events(&app, &[bad]).await;
    let fixed = valid_event(2);
    let row = pipelines::quarantine::BadRow::new("collector", Some(0), vec![], fixed.clone());
    b.bus
        .produce(
            &b.quarantine_topic,
            vec![Record::new(row.key(), serde_json::to_vec(&row).unwrap())],
        )
        .await
        .unwrap();
    let report = ingest::quarantine::replay(b.bus.as_ref(), &b.quarantine_topic, &b.events_topic)
        .await
        .unwrap();
    assert_eq!(
        (report.scanned, report.replayed, report.still_invalid),
        (2, 1, 1)
    );
    let (token, sink) = b.start_sink(b.sink_config());
    assert_eq!(b.wait_for_count(1, Duration::from_secs(60)).await, (1, 1));
    token.cancel();
    sink.await.unwrap().unwrap();
}

/// 300 clients that send headers and part of a body, then stall, hold no processing permit: a normal client
/// still gets 200 at once over a real socket, and the stalled ones get 408 when their read time is up.
async fn slow_clients(b: Backends) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ingest::collector::CollectorConfig {
        body_read_timeout: Duration::from_secs(3),
        ..b.collector_config()
    };
    let app = ingest::collector::app(ingest::collector::CollectorState::new(
        b.bus.clone(),
        config,
        ingest::metrics::Metrics::new(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"events\": [",
        )
        .await
        .unwrap();
        slow.push(s);
    }
    // Let the server start reading every stalled body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json!({"events": [valid_event(1)]}).to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut answer))
        .await
        .expect("the normal client is answered while 300 others stall")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""accepted":1"#), "{answer}");
    // The stalled ones are cut off after their read timeout, with 408.
    let mut first = slow.swap_remove(0);
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), first.read_to_string(&mut answer))
        .await
        .expect("a stalled body is timed out")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");
}

mod embedded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients() {
        super::slow_clients(Backends::embedded().await).await;
    }

    #[tokio::test]
    async fn mixed_batch() {
        super::mixed_batch(Backends::embedded().await).await;
    }
    #[tokio::test]
    async fn limits() {
        super::limits(Backends::embedded().await).await;
    }
    #[tokio::test]
    async fn ops_endpoints() {
        super::ops_endpoints(Backends::embedded().await).await;
    }
    #[tokio::test]
    async fn sink_crash_and_restart() {
        super::sink_crash_and_restart(Backends::embedded().await).await;
    }
    #[tokio::test]
    async fn quarantine_replay() {
        super::quarantine_replay(Backends::embedded().await).await;
    }
}

mod real {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients() {
        super::slow_clients(Backends::real().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mixed_batch() {
        super::mixed_batch(Backends::real().await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn limits() {
        super::limits(Backends::real().await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ops_endpoints() {
        super::ops_endpoints(Backends::real().await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sink_crash_and_restart() {
        super::sink_crash_and_restart(Backends::real().await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quarantine_replay() {
        super::quarantine_replay(Backends::real().await).await;
    }
}
