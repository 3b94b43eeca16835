//! HTTP plumbing shared by the providers: one `reqwest` client per provider with the configured timeout,
//! transport failures, timeouts, 429 and 5xx → [`Error::Unavailable`] (retrying later may work), JSON replies,
//! and `application/x-www-form-urlencoded` bodies for Stripe. Provider 4xx answers are returned to the
//! provider, which knows what they mean.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::{Error, Result};

/// A provider's answer below 500 (and not 429).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    /// The JSON body; `Null` when empty, a string when it was not JSON.
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A response header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client whose every request gives up after `timeout`.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| Error::Internal(format!("payments: http client: {e}")))
}

/// Sends `request`; `provider` prefixes every error message.
pub(crate) async fn send(provider: &str, request: reqwest::RequestBuilder) -> Result<Reply> {
    let response = request.send().await.map_err(|e| transport(provider, &e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport(provider, &e))?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&bytes).chars().take(300).collect())
        })
    };
    if status >= 500 || status == 429 {
        return Err(Error::Unavailable(format!(
            "{provider}: HTTP {status}: {}",
            short(&body)
        )));
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn transport(provider: &str, e: &reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Error::Unavailable(format!("{provider}: {what}: {e}"))
}

/// A body trimmed for an error message.
pub(crate) fn short(body: &Value) -> String {
    let s = match body {
        Value::String(s) => s.clone(),
        Value::Null => "(empty body)".into(),
        other => other.to_string(),
    };
    s.chars().take(300).collect()
}

/// `application/x-www-form-urlencoded` encoding of `pairs` (WHATWG URL standard: `*-._` and alphanumerics
/// as is, space as `+`, everything else `%XX` of its UTF-8 bytes).
pub(crate) fn form_encode(pairs: &[(String, String)]) -> String {
    fn enc(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(&mut out, k);
        out.push('=');
        enc(&mut out, v);
    }
    out
}

/// Whether `s` is safe as one URL path segment of a provider id (letters, digits, `_`, `-`), 1–255 chars.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is an absolute `http(s)://host…` URL (what a provider redirects a browser to).
pub(crate) fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
        && s.len() <= 2048
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_brackets_and_unicode() {
        let pairs = vec![
            ("metadata[order_id]".to_string(), "a b&c=d".to_string()),
            ("currency".to_string(), "eur".to_string()),
            ("x".to_string(), "è".to_string()),
        ];
        assert_eq!(
            form_encode(&pairs),
            "metadata%5Border_id%5D=a+b%26c%3Dd&currency=eur&x=%C3%A8"
        );
    }

    #[test]
    fn ids_and_urls() {
        assert!(is_id("pi_3MtwBwLkdIwHu7ix28a3tqPa"));
        assert!(is_id("0b1d9815-165e-42e2-8867-35bc03789e00"));
        assert!(!is_id("pi_1/../refunds"));
        assert!(!is_id(""));
        assert!(is_http_url("https://shop.example/checkout/return?x=1"));
        assert!(is_http_url("http://localhost:3000/return"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("https:///path"));
        assert!(!is_http_url("https://a b"));
    }
}
