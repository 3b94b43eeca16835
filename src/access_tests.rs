//! Every route of [`crate::access::ROUTES`] on the whole process router (every role, behind the edge) with four
//! callers: no key, a publishable key, a secret key without the route's scope, a key with it. Run on the
//! embedded backends and on the production ones (tansu, ClickHouse, Redis, PostgreSQL).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use features::FeaturesConfig;
use pipelines::access::{FileKeys, KeyKind, KeyStore, Keys, NewKey, PgKeys, Scope};
use pipelines::config::BackendConfig;
use pipelines::http::auth::Access;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::access::ROUTES;
use crate::Role;

struct Callers {
    publishable: String,
    admin: String,
    by_scope: HashMap<Scope, String>,
}

async fn callers(keys: &Keys) -> Callers {
    let new = |name: &str, kind, scopes: &[Scope]| NewKey {
        name: name.to_string(),
        kind,
        scopes: scopes.iter().copied().collect(),
        origins: vec![],
    };
    let (publishable, _) = keys
        .create(new("shop", KeyKind::Publishable, &[]))
        .await
        .unwrap();
    let (admin, _) = keys
        .create(new("admin", KeyKind::Secret, &Scope::ALL))
        .await
        .unwrap();
    let mut by_scope = HashMap::new();
    for s in Scope::ALL {
        let name = s.as_str().replace(':', "-");
        let (k, _) = keys
            .create(new(&name, KeyKind::Secret, &[s]))
            .await
            .unwrap();
        by_scope.insert(s, k);
    }
    Callers {
        publishable,
        admin,
        by_scope,
    }
}

/// A secret key that has the access `need` asks for, and one that has not (`None` when any key has it).
fn secret_keys(c: &Callers, need: Access) -> (String, Option<String>) {
    let lacking = |ok: &dyn Fn(Scope) -> bool| {
        Scope::ALL
            .into_iter()
            .find(|s| !ok(*s))
            .map(|s| c.by_scope[&s].clone())
    };
    match need {
        Access::Public | Access::Publishable => (c.by_scope[&Scope::DataRead].clone(), None),
        Access::Scope(s) => (c.by_scope[&s].clone(), lacking(&|x| x == s)),
        Access::AnyOf(any) => (c.by_scope[&any[0]].clone(), lacking(&|x| any.contains(&x))),
        Access::Admin => (c.admin.clone(), Some(c.by_scope[&Scope::DataRead].clone())),
    }
}

fn concrete(template: &str) -> String {
    template
        .replace("{slot}", "home_hero")
        .replace("{provider}", "stripe")
        .replace("{product_id}", "P000001")
        .replace("{market}", "IT")
        .replace("{id}", "x")
        .replace("{key}", "x")
        .replace("{version}", "x")
        .replace("{sku}", "x")
}

async fn call(router: &Router, method: &str, path: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let body = if method == "GET" || method == "DELETE" {
        Body::empty()
    } else {
        req = req.header(header::CONTENT_TYPE, "application/json");
        Body::from("{}")
    };
    let resp = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn refused(s: StatusCode) -> bool {
    s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN
}

/// The scenario: each route × four callers, every expectation checked, all failures reported at once.
async fn every_route_with_four_callers(router: Router, keys: Keys) {
    let c = callers(&keys).await;
    let mut failures = Vec::new();
    for route in ROUTES {
        let path = concrete(route.path);
        let m = route.method;
        let open = route.access == Access::Public;
        let storefront = open || route.access == Access::Publishable;
        let (with, without) = secret_keys(&c, route.access);

        let (s, body) = call(&router, m, &path, None).await;
        if open == refused(s) || (!open && s != StatusCode::UNAUTHORIZED) {
            failures.push(format!("{m} {path} without a key: {s} {body}"));
        }
        let (s, body) = call(&router, m, &path, Some(&c.publishable)).await;
        if storefront == refused(s) || (!storefront && s != StatusCode::FORBIDDEN) {
            failures.push(format!("{m} {path} with a publishable key: {s} {body}"));
        }
        if let Some(k) = without {
            let (s, body) = call(&router, m, &path, Some(&k)).await;
            if s != StatusCode::FORBIDDEN {
                failures.push(format!(
                    "{m} {path} with a secret key without the scope: {s} {body}"
                ));
            }
        }
        let (s, body) = call(&router, m, &path, Some(&with)).await;
        let unmatched = s == StatusCode::METHOD_NOT_ALLOWED
            || (s == StatusCode::NOT_FOUND && body["error"]["field"] == "path");
        if refused(s) || s.is_server_error() || unmatched {
            failures.push(format!("{m} {path} with the scope: {s} {body}"));
        }
        if s.is_client_error() && body["request_id"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{m} {path}: error without a request id: {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} routes × callers failed:\n{}",
        failures.len(),
        ROUTES.len() * 4,
        failures.join("\n")
    );
}

async fn process_router(
    config: &BackendConfig,
    features: FeaturesConfig,
    store: Arc<dyn KeyStore>,
    shutdown: &CancellationToken,
) -> (Router, Keys) {
    let (bus, log) = crate::server::open_backends(config, Role::All)
        .await
        .unwrap();
    let running = crate::server::build(
        config,
        Role::All,
        bus,
        log,
        features,
        true,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let keys = Keys::load(store).await.unwrap();
    let edge = pipelines::http::auth::Edge::new(keys.clone(), crate::access::required, vec![]);
    (crate::server::with_edge(running.router, edge), keys)
}

mod embedded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_with_four_callers() {
        let dir = tempfile::tempdir().unwrap();
        let config = BackendConfig::embedded(dir.path());
        let features = FeaturesConfig {
            redis_url: None,
            ..FeaturesConfig::default()
        };
        let shutdown = CancellationToken::new();
        let store: Arc<dyn KeyStore> = Arc::new(FileKeys::in_dir(dir.path()));
        let (router, keys) = process_router(&config, features, store, &shutdown).await;
        super::every_route_with_four_callers(router, keys).await;
        shutdown.cancel();
    }
}

mod production {
    use super::*;

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the suite with scripts/test.sh, which starts the real services")
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_with_four_callers() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let database =
            pipelines::pg::fresh_database(&env("LUSSO_DATABASE_URL"), "lusso_test_access")
                .await
                .unwrap();
        let config = BackendConfig {
            kafka_brokers: Some(env("LUSSO_KAFKA_BROKERS")),
            clickhouse_url: Some(env("LUSSO_CLICKHOUSE_URL")),
            clickhouse_database: "lusso_test".into(),
            clickhouse_table: format!("events_access_{fresh}"),
            topic_prefix: format!("access.{fresh}."),
            database_url: Some(database.clone()),
            ..BackendConfig::embedded(dir.path())
        };
        let features = FeaturesConfig {
            redis_url: Some(env("LUSSO_REDIS_URL")),
            key_prefix: format!("access{fresh}:"),
            group: format!("access-{fresh}"),
            ..FeaturesConfig::default()
        };
        let shutdown = CancellationToken::new();
        let store: Arc<dyn KeyStore> = Arc::new(PgKeys::connect(&database).await.unwrap());
        let (router, keys) = process_router(&config, features, store, &shutdown).await;
        super::every_route_with_four_callers(router, keys).await;
        shutdown.cancel();
    }
}
