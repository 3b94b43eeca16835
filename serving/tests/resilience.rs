//! The answer survives its dependencies: Redis stopped mid-test (a private `redis-server`, killed) still gets
//! `200` from the model and the fallbacks; a promoted model is swapped in while requests run, and none fails.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use serving::models::Models;
use training::registry::Registry;

struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (installed with Redis; scripts/services.sh checks it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "private redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Redis-only: the in-memory store cannot go away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_still_answers_200_from_the_fallbacks() {
    let port = free_port();
    let redis = Redis::start(port);
    let models = Models::fixed(model("v1"), catalog());
    let fx = fixture_with(
        true,
        models,
        stores(true).await,
        Some(format!("redis://127.0.0.1:{port}")),
    )
    .await;
    fx.apply(&[purchase("U1", &item(1), 10)]).await;
    let (status, v) = fx
        .get("/v1/recommendations?user_id=U1&n=3&diversity=none")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["degraded"], json!([]));
    assert_eq!(ids(&v), [2, 3, 4].map(item).to_vec(), "item 1 was bought");

    drop(redis);
    for uri in [
        "/v1/recommendations?user_id=U1&n=3&diversity=none",
        "/v1/recommendations?anonymous_id=a1&n=3",
        "/v1/recommendations?n=3&size=M",
        &format!("/v1/products/{}/similar?n=3&size=M", item(5)),
    ] {
        let (status, v) = fx.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {v}");
        assert_eq!(ids(&v).len(), 3, "{uri}: {v}");
        if uri.contains("user_id") || uri.contains("anonymous_id") {
            assert!(
                v["degraded"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("features")),
                "{uri}: {v}"
            );
        }
    }
    // The model still answers a known shopper (the purchase filter needs the store: item 1 may come back).
    let (_, v) = fx
        .get("/v1/recommendations?user_id=U1&n=3&diversity=none")
        .await;
    assert_eq!(v["fallback"], serde_json::Value::Null);
    assert_eq!(v["segment"], "Unknown");
    // Anonymous shoppers: the model's popularity.
    let (_, v) = fx.get("/v1/recommendations?anonymous_id=a1&n=3").await;
    assert_eq!(v["fallback"], "global_popularity", "{v}");
}

async fn hot_reload_swaps_without_failing_a_request(real: bool) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let v1 = registry.register(&model("x").model, meta("x")).unwrap();
    registry.promote(&v1.version).unwrap();
    let models = Models::new(Some(registry.clone()), catalog(), 2);
    assert!(models.refresh().await.unwrap());
    let fx = Arc::new(fixture_with(real, models, stores(real).await, None).await);
    let (_, v) = fx.get("/v1/recommendations?user_id=U1&n=3").await;
    assert_eq!(v["model_version"], v1.version.as_str());

    // Requests run while v2 is registered, promoted and swapped in.
    let mut workers = Vec::new();
    for w in 0..4 {
        let fx = fx.clone();
        workers.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..150 {
                let (status, v) = fx
                    .get(&format!(
                        "/v1/recommendations?user_id=U{}&n=5",
                        1 + (w + i) % 2
                    ))
                    .await;
                assert_eq!(status, StatusCode::OK, "{v}");
                assert_eq!(ids(&v).len(), 5);
                versions.push(v["model_version"].as_str().unwrap().to_string());
                tokio::task::yield_now().await;
            }
            versions
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2 = registry.register(&model("y").model, meta("y")).unwrap();
    registry.promote(&v2.version).unwrap();
    assert!(fx.serving.models().refresh().await.unwrap());
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    assert!(seen.iter().all(|v| *v == v1.version || *v == v2.version));
    let (_, v) = fx.get("/v1/recommendations?user_id=U1&n=3").await;
    assert_eq!(v["model_version"], v2.version.as_str());
    // Rolling back swaps the previous version in again.
    registry.rollback().unwrap();
    assert!(fx.serving.models().refresh().await.unwrap());
    let (_, v) = fx.get("/v1/recommendations?user_id=U1&n=3").await;
    assert_eq!(v["model_version"], v1.version.as_str());
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hot_reload_swaps_without_failing_a_request() {
        super::hot_reload_swaps_without_failing_a_request(false).await;
    }
}

mod real {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hot_reload_swaps_without_failing_a_request() {
        super::hot_reload_swaps_without_failing_a_request(true).await;
    }
}
