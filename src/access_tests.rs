//! Every route of [`crate::access::ROUTES`] on the whole process router (every role, behind the edge) with four
//! callers: no key, a publishable key, a secret key without the route's scope, a key with it, and a CORS
//! preflight from the publishable key's origin and from another. Run on the
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

/// The storefront origin the publishable key allows.
const SHOP_ORIGIN: &str = "https://shop.example";

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
        origins: match kind {
            KeyKind::Publishable => vec![SHOP_ORIGIN.to_string()],
            KeyKind::Secret => vec![],
        },
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
        Access::Scope(s) | Access::Owner(s) => (c.by_scope[&s].clone(), lacking(&|x| x == s)),
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
    let body = (method != "GET" && method != "DELETE").then(|| serde_json::json!({}));
    send(router, method, path, key, &[], body).await
}

/// One request with a key, extra headers and a JSON body: the status and the JSON answer.
async fn send(
    router: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
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

/// A shopper's browser (the publishable key) checks out and gets the order's access token: with it, the
/// order's own routes open; without it, or with another order's, they do not. The shop's `orders:manage`
/// key needs no token.
async fn an_order_opens_to_its_access_token(router: &Router, c: &Callers) {
    let pk = Some(c.publishable.as_str());
    let (s, products) = send(router, "GET", "/v1/products?limit=1", pk, &[], None).await;
    assert_eq!(s, StatusCode::OK, "{products}");
    let sku = products["products"][0]["variants"][0]["sku"]
        .as_str()
        .unwrap()
        .to_string();
    let stock = serde_json::json!({"locations": {"online": 3}});
    let (s, body) = send(
        router,
        "PUT",
        &format!("/v1/inventory/{sku}"),
        Some(&c.admin),
        &[],
        Some(stock),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let lines = serde_json::json!({"market": "IT", "lines": [{"sku": sku, "quantity": 1}]});
    let (s, cart) = send(router, "POST", "/v1/carts", pk, &[], Some(lines)).await;
    assert_eq!(s, StatusCode::CREATED, "{cart}");
    let address = serde_json::json!({"name": "Giulia Rossi", "street": "Via Montenapoleone 8",
        "city": "Milano", "postal_code": "20121", "province": "MI", "country": "IT"});
    let checkout = serde_json::json!({"cart_id": cart["id"], "email": "giulia@example.com",
        "shipping": address, "payment": {"provider": "fake"},
        "buyer": {"kind": "consumer", "email": "giulia@example.com", "codice_fiscale": "RSSMRA85T10A562S",
                  "billing": address}});
    let key = [("idempotency-key", "access-token-1")];
    let (s, order) = send(
        router,
        "POST",
        "/v1/checkouts",
        pk,
        &key,
        Some(checkout.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let token = order["access_token"].as_str().unwrap().to_string();
    let (_, replay) = send(router, "POST", "/v1/checkouts", pk, &key, Some(checkout)).await;
    assert_eq!(
        replay["access_token"],
        token.as_str(),
        "a replay answers the same token"
    );
    let path = format!("/v1/orders/{}", order["order_id"].as_str().unwrap());
    let (s, body) = send(router, "GET", &path, pk, &[("x-order-token", &token)], None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = send(
        router,
        "GET",
        &format!("{path}/returns"),
        pk,
        &[("x-order-token", &token)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = send(router, "GET", &path, pk, &[], None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-order-token"),
        "{body}"
    );
    let forged = format!("{}0", &token[..token.len() - 1]);
    let (s, body) = send(
        router,
        "GET",
        &path,
        pk,
        &[("x-order-token", &forged)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let other = "/v1/orders/00000000-0000-4000-8000-000000000000";
    let (s, body) = send(router, "GET", other, pk, &[("x-order-token", &token)], None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another order's token: {body}");
    let manage = Some(c.by_scope[&Scope::OrdersManage].as_str());
    let (s, body) = send(router, "GET", &path, manage, &[], None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

/// A browser's CORS preflight for `method path` from `origin`: the status and `Access-Control-Allow-Origin`.
async fn preflight(
    router: &Router,
    method: &str,
    path: &str,
    origin: &str,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method("OPTIONS")
        .uri(path)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let allowed = resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (resp.status(), allowed)
}

/// CORS: every publishable route answers a preflight from the publishable key's origin, no other route does,
/// and no route answers another origin.
async fn cors_check(router: &Router, m: &str, path: &str, access: Access) -> Option<String> {
    let (s, allowed) = preflight(router, m, path, SHOP_ORIGIN).await;
    let open = access.storefront();
    if open && (s != StatusCode::NO_CONTENT || allowed != SHOP_ORIGIN) {
        return Some(format!(
            "{m} {path}: preflight from the shop: {s} `{allowed}`"
        ));
    }
    if !open && (s != StatusCode::FORBIDDEN || !allowed.is_empty()) {
        return Some(format!(
            "{m} {path}: preflight for a secret route: {s} `{allowed}`"
        ));
    }
    let (s, allowed) = preflight(router, m, path, "https://elsewhere.example").await;
    (s != StatusCode::FORBIDDEN || !allowed.is_empty())
        .then(|| format!("{m} {path}: preflight from another origin: {s} `{allowed}`"))
}

fn refused(s: StatusCode) -> bool {
    s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN
}

/// Whether the OpenAPI document describes `status` for `method path`.
fn documented(doc: &Value, method: &str, path: &str, status: StatusCode) -> bool {
    doc["paths"][path][method.to_ascii_lowercase()]["responses"]
        .get(status.as_str())
        .is_some()
}

/// The process's `/openapi.json` holds exactly the route table: every route documented (with its security),
/// nothing documented that is not served.
fn openapi_matches_the_route_table(doc: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        if !op.is_object() {
            failures.push(format!(
                "{} {} is not in /openapi.json",
                route.method, route.path
            ));
        } else if op["security"].is_null() {
            failures.push(format!(
                "{} {}: no security in /openapi.json",
                route.method, route.path
            ));
        }
    }
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in paths {
        for method in item
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let served = ROUTES
                .iter()
                .any(|r| r.path == path && r.method.eq_ignore_ascii_case(&method));
            if !served {
                failures.push(format!(
                    "{method} {path} is documented but not in the route table"
                ));
            }
        }
    }
    failures
}

/// The scenario: each route × four callers, every expectation checked, all failures reported at once.
async fn every_route_with_four_callers(router: Router, keys: Keys) {
    let c = callers(&keys).await;
    let (s, doc) = call(&router, "GET", "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut failures = openapi_matches_the_route_table(&doc);
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
        if !documented(&doc, m, route.path, s) {
            failures.push(format!(
                "{m} {path} answered {s}, which /openapi.json does not list: {body}"
            ));
        }
        failures.extend(cors_check(&router, m, &path, route.access).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} routes × callers failed:\n{}",
        failures.len(),
        ROUTES.len() * 4,
        failures.join("\n")
    );
    an_order_opens_to_its_access_token(&router, &c).await;
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
        crate::server::Mode::Demo,
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
