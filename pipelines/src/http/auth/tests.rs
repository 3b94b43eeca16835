use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceExt;

use super::*;
use crate::access::{FileKeys, NewKey};

fn policy(method: &Method, path: &str) -> Access {
    match (method.as_str(), path) {
        ("GET", "/open") => Access::Public,
        ("GET", "/shop") | ("POST", "/shop") => Access::Publishable,
        ("POST", "/rules") => Access::Scope(Scope::RulesWrite),
        _ => Access::Admin,
    }
}

async fn setup(rate: RateLimit) -> (Router, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::load(Arc::new(FileKeys::in_dir(dir.path())))
        .await
        .unwrap();
    let (pk, _) = keys
        .create(NewKey {
            name: "shop".into(),
            kind: KeyKind::Publishable,
            scopes: Default::default(),
            origins: vec!["https://shop.example".into()],
        })
        .await
        .unwrap();
    let (sk, _) = keys
        .create(NewKey {
            name: "merch".into(),
            kind: KeyKind::Secret,
            scopes: [Scope::RulesWrite].into_iter().collect(),
            origins: vec![],
        })
        .await
        .unwrap();
    let edge =
        Edge::new(keys, policy, vec!["https://console.example".into()]).with_rate_limit(rate);
    let actor = |h: HeaderMap| async move {
        h.get(ACTOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string()
    };
    let app = Router::new()
        .route("/open", get(|| async { "open" }))
        .route("/shop", get(actor).post(actor))
        .route("/rules", post(actor))
        .route("/admin", get(actor))
        .route_layer(axum::middleware::from_fn_with_state(edge, authorize))
        .layer(axum::middleware::from_fn(super::super::request_ids));
    (app, pk, sk, dir)
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).to_string(),
    )
}

fn req(method: &str, uri: &str, key: Option<&str>) -> axum::http::request::Builder {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "lusso.local");
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    r
}

#[tokio::test]
async fn keys_scopes_and_the_audit_actor() {
    let (app, pk, sk, _dir) = setup(RateLimit::default()).await;
    let (s, _, _) = call(&app, req("GET", "/open", None).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, h, body) = call(&app, req("GET", "/shop", None).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(h["www-authenticate"], "Bearer");
    assert!(body.contains(r#""code":"unauthorized""#), "{body}");
    let (s, _, body) = call(
        &app,
        req("GET", "/shop", Some("sk_0123"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    // A publishable key: storefront routes only.
    let (s, _, body) = call(
        &app,
        req("GET", "/shop", Some(&pk)).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "shop"));
    let (s, _, body) = call(
        &app,
        req("POST", "/rules", Some(&pk))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("rules:write"), "{body}");
    // A secret key: its scope, the storefront routes, not the rest; the actor is the key's name whatever
    // the caller claims.
    let (s, _, body) = call(
        &app,
        req("POST", "/rules", Some(&sk))
            .header(ACTOR_HEADER, "someone else")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "merch"));
    let (s, _, _) = call(
        &app,
        req("GET", "/shop", Some(&sk)).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, body) = call(
        &app,
        req("GET", "/admin", Some(&sk)).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a route the policy does not list needs every scope: {body}"
    );
}

#[tokio::test]
async fn origins_and_content_types() {
    let (app, pk, sk, _dir) = setup(RateLimit::default()).await;
    let post = |key: &str, origin: Option<&str>, ct: &str| {
        let mut r = req(
            "POST",
            if key.starts_with("pk_") {
                "/shop"
            } else {
                "/rules"
            },
            Some(key),
        )
        .header("content-type", ct);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.body(Body::from("{}")).unwrap()
    };
    let json = "application/json";
    let cases = [
        (
            post(&pk, Some("https://shop.example"), json),
            StatusCode::OK,
        ),
        (
            post(&pk, Some("https://evil.example"), json),
            StatusCode::FORBIDDEN,
        ),
        (
            post(&sk, Some("https://evil.example"), json),
            StatusCode::FORBIDDEN,
        ),
        (
            post(&sk, Some("https://console.example"), json),
            StatusCode::OK,
        ),
        (post(&sk, Some("http://lusso.local"), json), StatusCode::OK),
        (post(&sk, None, json), StatusCode::OK),
        (
            post(&sk, None, "application/json; charset=utf-8"),
            StatusCode::OK,
        ),
        (
            post(&sk, None, "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            post(&sk, None, "application/x-www-form-urlencoded"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (i, (r, want)) in cases.into_iter().enumerate() {
        let (s, _, body) = call(&app, r).await;
        assert_eq!(s, want, "case {i}: {body}");
    }
    // Reads from another site with a publishable key that does not list it: refused too.
    let (s, _, _) = call(
        &app,
        req("GET", "/shop", Some(&pk))
            .header("origin", "https://evil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

fn preflight(uri: &str, origin: &str, method: &str) -> Request<Body> {
    req("OPTIONS", uri, None)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_opens_publishable_routes_to_the_keys_origins_only() {
    let (app, pk, sk, _dir) = setup(RateLimit::default()).await;
    // A preflight from an origin a publishable key lists, for a publishable route: allowed, for that origin.
    let (s, h, body) = call(&app, preflight("/shop", "https://shop.example", "POST")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(h.get_all("vary").iter().any(|v| v == "origin"));
    // Another origin, or a secret route, or a method that is not one: refused with the reason.
    let (s, h, body) = call(&app, preflight("/shop", "https://evil.example", "POST")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(h.get("access-control-allow-origin").is_none());
    assert!(body.contains("https://evil.example"), "{body}");
    let (s, _, body) = call(&app, preflight("/rules", "https://shop.example", "POST")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("not a storefront route"), "{body}");
    let (s, _, body) = call(&app, preflight("/shop", "https://shop.example", "P O")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("access-control-request-method"), "{body}");
    // The request itself: the allowed origin gets its own origin back and the exposed request id; an error
    // (here 401) carries the header too, so the page can read it.
    let from = |key: Option<&str>, origin: &str| {
        req("POST", "/shop", key)
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    };
    let (s, h, _) = call(&app, from(Some(&pk), "https://shop.example")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    assert!(h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-request-id"));
    let (s, h, _) = call(&app, from(None, "https://shop.example")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    let (s, h, _) = call(&app, from(Some(&pk), "https://evil.example")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("access-control-allow-origin").is_none());
    // A secret route never answers CORS, even to an origin a publishable key lists.
    let (s, h, _) = call(
        &app,
        req("POST", "/rules", Some(&sk))
            .header("origin", "https://shop.example")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_wildcard_origin_needs_a_key_that_says_so() {
    let (app, _pk, _sk, dir) = setup(RateLimit::default()).await;
    let (s, _, _) = call(&app, preflight("/shop", "https://any.example", "GET")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let keys = Keys::load(Arc::new(FileKeys::in_dir(dir.path())))
        .await
        .unwrap();
    let (open, _) = keys
        .create(NewKey {
            name: "open-shop".into(),
            kind: KeyKind::Publishable,
            scopes: Default::default(),
            origins: vec!["*".into()],
        })
        .await
        .unwrap();
    let edge = Edge::new(keys, policy, vec![]);
    let app = Router::new()
        .route("/shop", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn_with_state(edge, authorize));
    let (s, h, _) = call(&app, preflight("/shop", "https://any.example", "GET")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "https://any.example");
    let (s, h, _) = call(
        &app,
        req("GET", "/shop", Some(&open))
            .header("origin", "https://any.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "https://any.example");
}

#[tokio::test]
async fn a_publishable_key_over_its_rate_gets_429() {
    let (app, pk, sk, _dir) = setup(RateLimit {
        per_second: 0.5,
        burst: 3.0,
    })
    .await;
    for _ in 0..3 {
        let (s, _, _) = call(
            &app,
            req("GET", "/shop", Some(&pk)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, h, body) = call(
        &app,
        req("GET", "/shop", Some(&pk)).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(h["retry-after"], "2");
    assert!(body.contains(r#""code":"too_many_requests""#), "{body}");
    // Secret keys (server-to-server) are not limited.
    for _ in 0..5 {
        let (s, _, _) = call(
            &app,
            req("GET", "/shop", Some(&sk)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn sessions_need_their_csrf_token_and_end_at_logout() {
    let (app, _pk, sk, dir) = setup(RateLimit::default()).await;
    drop(app);
    let keys = Keys::load(Arc::new(FileKeys::in_dir(dir.path())))
        .await
        .unwrap();
    let edge = Edge::new(keys, policy, vec![]);
    let (_, id, csrf) = edge.login(&sk).expect("a valid key logs in");
    let routes = Router::new()
        .route(
            "/rules",
            post(|h: HeaderMap| async move {
                h.get(ACTOR_HEADER).unwrap().to_str().unwrap().to_string()
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            edge.clone(),
            authorize,
        ));
    let with_cookie = |token: Option<&str>| {
        let mut r = Request::post("/rules")
            .header("cookie", format!("other=1; {SESSION_COOKIE}={id}"))
            .header("content-type", "application/json");
        if let Some(t) = token {
            r = r.header(CSRF_HEADER, t);
        }
        r.body(Body::from("{}")).unwrap()
    };
    let (s, _, _) = call(&routes, with_cookie(None)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = call(&routes, with_cookie(Some("nope"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, body) = call(&routes, with_cookie(Some(&csrf))).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "merch"));
    edge.logout(&id);
    let (s, _, _) = call(&routes, with_cookie(Some(&csrf))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(edge.login("sk_not_a_key").is_none());
}
