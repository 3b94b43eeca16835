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
