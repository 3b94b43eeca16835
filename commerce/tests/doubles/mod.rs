//! Local doubles of the payment providers that have no local server of their own (Klarna, Scalapay): small
//! stateful axum servers started in-process on `127.0.0.1:0` that follow the providers' documented
//! contracts, *validate* what the provider code sends (credentials, required fields, amount and tax sums,
//! currency, state transitions, refund ≤ capture) and answer the documented error shapes. Each has a
//! test-only hook to play the shopper (approve / decline), as a method on the double. The tests of the
//! Klarna and Scalapay providers live beside their double (`klarna::tests`, `scalapay::tests`).

pub(crate) mod klarna;
pub(crate) mod scalapay;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Serves `router` on a fresh loopback port for the rest of the test process; returns `http://127.0.0.1:port`.
pub(crate) async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("double server");
    });
    format!("http://{addr}")
}

/// A double's answer: status, JSON body (`Null`: none) and extra headers; kept as is for idempotent replays.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(crate) fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_string()));
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).expect("status");
        let mut response = if self.body.is_null() {
            status.into_response()
        } else {
            (status, axum::Json(self.body)).into_response()
        };
        for (name, value) in self.headers {
            response
                .headers_mut()
                .insert(name, value.parse().expect("header value"));
        }
        response
    }
}

/// Standard base64 (RFC 4648, padded): what HTTP Basic auth carries.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A request body as JSON, or `None` when it is not JSON.
pub(crate) fn parse(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return Some(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).ok()
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}
