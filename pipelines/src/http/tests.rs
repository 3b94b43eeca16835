use axum::body::Body;
use axum::extract::Query;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

fn app() -> Router {
    Router::new()
        .route(
            "/bad",
            get(|| async { Err::<(), _>(ApiError::bad("n", "must be 1–100")) }),
        )
        .route(
            "/boom",
            get(|| async {
                Err::<(), _>(ApiError::Internal(
                    "pool timed out at 10.0.0.7:5432 (secret detail)".into(),
                ))
            }),
        )
        .route(
            "/down",
            get(|| async { Err::<(), _>(ApiError::unavailable("redis: connection refused")) }),
        )
        .route(
            "/query",
            get(
                |Query(q): Query<std::collections::HashMap<String, u32>>| async move {
                    q.len().to_string()
                },
            ),
        )
        .route("/ok", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(request_ids))
}

async fn call(uri: &str, request_id: Option<&str>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::get(uri);
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let resp = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn bad_input_names_the_field_and_carries_the_request_id() {
    let (status, headers, body) = call("/bad", Some("req-123")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-request-id"], "req-123");
    assert_eq!(body["error"]["code"], "bad_input");
    assert_eq!(body["error"]["field"], "n");
    assert_eq!(body["error"]["message"], "must be 1–100");
    assert_eq!(body["request_id"], "req-123");
}

#[tokio::test]
async fn a_500_hides_the_cause_and_names_the_request_id() {
    let (status, headers, body) = call("/boom", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let id = headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(body["error"]["code"], "internal");
    let text = body.to_string();
    assert!(
        !text.contains("10.0.0.7") && !text.contains("secret"),
        "{text}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains(&id));
    assert!(body["error"].get("field").is_none());
}

#[tokio::test]
async fn a_503_says_when_to_retry_and_hides_the_backend() {
    let (status, headers, body) = call("/down", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(!body.to_string().contains("redis"), "{body}");
}

#[tokio::test]
async fn an_insane_request_id_is_replaced() {
    let long = "x".repeat(65);
    for bad in ["has space", "semi;colon", long.as_str()] {
        let (_, headers, _) = call("/ok", Some(bad)).await;
        let id = headers["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36);
    }
    let (status, headers, _) = call("/ok", Some("abc.DEF_1:2-3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-request-id"], "abc.DEF_1:2-3");
}

#[tokio::test]
async fn rejections_and_unknown_routes_get_the_error_shape() {
    let (status, headers, body) = call("/query?n=minus", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_input");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("n"),
        "{body}"
    );
    assert_eq!(
        body["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );

    let (status, _, body) = call("/nowhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["field"], "path");
}

#[test]
fn json_body_names_the_path_of_the_bad_field() {
    #[derive(serde::Deserialize, Debug)]
    struct Inner {
        #[allow(dead_code)]
        qty: u32,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Outer {
        #[allow(dead_code)]
        lines: Vec<Inner>,
    }
    let e = json_body::<Outer>(br#"{"lines":[{"qty":1},{"qty":-4}]}"#).unwrap_err();
    match e {
        ApiError::BadInput { field, .. } => assert_eq!(field, "lines[1].qty"),
        other => panic!("{other:?}"),
    }
    let e = json_body::<Outer>(b"not json").unwrap_err();
    assert!(
        matches!(e, ApiError::BadInput { ref field, .. } if field == "body"),
        "{e:?}"
    );
}

#[test]
fn every_code_is_in_the_documented_list() {
    let errors = [
        ApiError::bad("f", "r"),
        ApiError::NotFound("x".into()),
        ApiError::conflict("version", "stale"),
        ApiError::PaymentDeclined("no".into()),
        ApiError::TooLarge {
            field: "body".into(),
            reason: "big".into(),
        },
        ApiError::UnsupportedMediaType("xml".into()),
        ApiError::Timeout("slow".into()),
        ApiError::Unauthorized("no key".into()),
        ApiError::Forbidden("scope".into()),
        ApiError::TooManyRequests {
            retry_after_secs: 2,
        },
        ApiError::unavailable("down"),
        ApiError::Full("queue".into()),
        ApiError::Internal("bug".into()),
    ];
    let documented = crate::openapi::ERROR_CODES;
    for e in &errors {
        assert!(documented.contains(&e.code()), "{}", e.code());
    }
    for status in 400..600u16 {
        let s = StatusCode::from_u16(status).unwrap();
        assert!(documented.contains(&code_for_status(s)), "{status}");
    }
}
