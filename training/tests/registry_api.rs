//! The model registry through the library and over HTTP (`training::api::app`): register → list →
//! promote → rollback, the audit log, the file a serving process loads, and errors with their status codes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use training::job::{self, Source, TrainSpec};
use training::model::Algo;
use training::registry::{ModelMeta, Registry};

async fn trained(algo: Algo, registry: &Registry) -> ModelMeta {
    let spec = TrainSpec {
        algo,
        factors: 8,
        iterations: Some(3),
        threads: 2,
        ..TrainSpec::default()
    };
    let source = Source::Sim {
        users: 200,
        days: 7,
        seed: 3,
    };
    let (data, name) = job::load(&source, None, 42, &spec, &mut |_| {})
        .await
        .unwrap();
    let t = tokio::task::block_in_place(|| job::train(data, name, &spec, &mut |_| {})).unwrap();
    assert_eq!(t.meta.history.len(), if algo == Algo::Pop { 0 } else { 3 });
    registry.register(&t.model, t.meta).unwrap()
}

async fn call(app: &axum::Router, method: &str, path: &str) -> (StatusCode, Value) {
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_promote_rollback_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let v1 = trained(Algo::Als, &registry).await;
    let v2 = trained(Algo::Bpr, &registry).await;
    let v3 = trained(Algo::Pop, &registry).await;
    assert_ne!(v1.version, v2.version);
    assert!(
        v1.metrics.is_some() && !v1.data.hash.is_empty() && v1.code_version.starts_with("lusso ")
    );
    let app = training::api::app(Arc::new(registry.clone()));

    let (s, body) = call(&app, "GET", "/v1/models").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["promoted"], Value::Null);
    let versions: Vec<&str> = body["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 3);
    for v in [&v1, &v2, &v3] {
        assert!(versions.contains(&v.version.as_str()));
    }

    // Nothing to roll back to yet.
    assert_eq!(
        call(&app, "POST", "/v1/models/rollback").await.0,
        StatusCode::CONFLICT
    );
    for v in [&v1, &v2, &v3] {
        let (s, body) = call(&app, "POST", &format!("/v1/models/{}/promote", v.version)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["promoted"], v.version.as_str());
    }
    // Promoting the promoted one again changes nothing.
    let before = registry.state().unwrap();
    call(&app, "POST", &format!("/v1/models/{}/promote", v3.version)).await;
    assert_eq!(registry.state().unwrap(), before);

    let (s, body) = call(&app, "POST", "/v1/models/rollback").await;
    assert_eq!(
        (s, body["promoted"].as_str()),
        (StatusCode::OK, Some(v2.version.as_str()))
    );
    let (_, body) = call(&app, "GET", "/v1/models").await;
    assert_eq!(body["promoted"], v2.version.as_str());
    let flagged: Vec<&Value> = body["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["promoted"] == true)
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["version"], v2.version.as_str());

    // What serving loads is the promoted version's model.
    let (meta, model) = registry.promoted().unwrap().unwrap();
    assert_eq!(meta.version, v2.version);
    assert_eq!(model, registry.load(&v2.version).unwrap());
    assert_eq!(model.algo, Algo::Bpr);

    // The audit log has every change, in order.
    let actions: Vec<(String, String)> = registry
        .state()
        .unwrap()
        .log
        .into_iter()
        .map(|e| (e.action, e.version))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("promote".into(), v1.version.clone()),
            ("promote".into(), v2.version.clone()),
            ("promote".into(), v3.version.clone()),
            ("rollback".into(), v2.version.clone()),
        ]
    );

    let (s, body) = call(&app, "GET", &format!("/v1/models/{}", v1.version)).await;
    assert_eq!((s, body["algo"].as_str()), (StatusCode::OK, Some("als")));
    let (s, body) = call(
        &app,
        "POST",
        "/v1/models/20990101T000000Z-als-nothere/promote",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not in the registry"));
    let (s, body) = call(&app, "POST", "/v1/models/..hidden/promote").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_shopper_is_folded_in_and_gets_recommendations() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let v = trained(Algo::Als, &registry).await;
    let model = registry.load(&v.version).unwrap();
    // The items one known shopper interacted with, given to the model as a "new" shopper.
    let items: Vec<(String, f32)> = model
        .items
        .ids()
        .iter()
        .take(5)
        .map(|i| (i.clone(), 10.0))
        .collect();
    let x = model.fold_in(&items).expect("known items fold in");
    let recs = model.recommend(Some(&x), 10, |i| i < 5);
    assert_eq!(recs.len(), 10);
    assert!(recs.iter().all(|(i, _)| *i >= 5));
    let similar = model.similar_items(0, 5);
    assert_eq!(similar.len(), 5);
    assert!(similar.iter().all(|(i, s)| *i != 0 && *s <= 1.0 + 1e-5));
}
