//! Access control at the edge: who calls (a `Bearer` key, or the session cookie of a console login) and whether
//! the route lets them, before any handler runs.
//!
//! - Each route's requirement comes from one [`Policy`] (the process's route table); a route it does not know
//!   needs every scope (deny by default).
//! - No key → 401, a key without the scope → 403 naming the scope, both in the error shape of
//!   [`super::ApiError`]. A browser asking for a page without a session is sent to `/console/login`.
//! - State-changing requests (anything but `GET`, `HEAD`, `OPTIONS`): with a session cookie they must carry the
//!   session's CSRF token in `x-csrf-token`; an `Origin` that is neither this server, one of the configured
//!   console origins, nor (for a publishable key) one of the key's origins is refused with 403; a body that says
//!   it is not JSON gets 415.
//! - CORS: publishable routes answer browsers on the origins their publishable keys allow (preflights
//!   included; `*` only for a key created with it); every other route is closed to other origins.
//! - Publishable keys are rate limited, one token bucket per key ([`RateLimit`]): over it, 429 with
//!   `Retry-After`.
//! - The handler sees the caller as a [`Principal`] in the request's extensions and its name in the
//!   [`ACTOR_HEADER`]; a caller's own value of that header is dropped, so audit trails name keys, not claims.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::ApiError;
use crate::access::{hash, KeyKind, Keys, Principal, Scope};

/// The header handlers read the audit actor from; the edge sets it to the key's name.
pub const ACTOR_HEADER: &str = "x-lusso-user";
/// The console's session cookie.
pub const SESSION_COOKIE: &str = "lusso_session";
/// The header a console page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A console session lasts this long after login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most live console sessions; a login beyond it drops the oldest session.
pub const MAX_SESSIONS: usize = 10_000;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics, the OpenAPI document, signed webhooks, login).
    Public,
    /// Any valid key: publishable or secret.
    Publishable,
    /// A secret key with this scope.
    Scope(Scope),
    /// One resource's own routes (an order's): any key passes the edge, and the handler lets through a
    /// secret key with this scope or a caller presenting the resource's access token.
    Owner(Scope),
    /// A secret key with any of these scopes (reads of what those scopes write).
    AnyOf(&'static [Scope]),
    /// A secret key with every scope (routes the policy does not know).
    Admin,
}

impl Access {
    /// Whether a storefront (a browser with a publishable key) may call the route: CORS is answered for it.
    pub fn storefront(self) -> bool {
        matches!(self, Access::Publishable | Access::Owner(_))
    }
}

/// The route table: what `(method, matched path)` needs.
pub type Policy = fn(&Method, &str) -> Access;

/// The state of the access-control middleware: keys, the policy, console sessions, trusted origins, and the
/// publishable keys' rate buckets.
#[derive(Clone)]
pub struct Edge {
    keys: Keys,
    policy: Policy,
    sessions: Arc<Mutex<Sessions>>,
    origins: Arc<[String]>,
    rate: RateLimit,
    buckets: Arc<Mutex<HashMap<Arc<str>, Bucket>>>,
}

/// The token bucket every publishable key gets: `per_second` requests sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    /// A whole storefront's browsers share one publishable key: 2,000 requests a second (bursts of 4,000)
    /// is far above a shop's traffic and stops a leaked key from flooding the API.
    fn default() -> Self {
        RateLimit {
            per_second: 2_000.0,
            burst: 4_000.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Sessions {
    /// By the SHA-256 of the session id.
    live: HashMap<String, Session>,
}

#[derive(Clone)]
struct Session {
    key_hash: String,
    csrf: String,
    created: Instant,
}

/// The CSRF token of the caller's console session (in the request's extensions for console pages).
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

impl Edge {
    /// `origins`: browser origins trusted for the console besides this server's own.
    pub fn new(keys: Keys, policy: Policy, origins: Vec<String>) -> Edge {
        Edge {
            keys,
            policy,
            sessions: Arc::new(Mutex::new(Sessions::default())),
            origins: origins.into(),
            rate: RateLimit::default(),
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The same edge with another publishable-key rate limit.
    pub fn with_rate_limit(mut self, rate: RateLimit) -> Edge {
        self.rate = rate;
        self
    }

    /// Takes one token from `key`'s bucket; `Err(seconds until one is back)` when it is empty. One bucket per
    /// key in force (bounded by the key store's size).
    fn take(&self, key: &Arc<str>) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.rate.per_second;
        b.tokens = (b.tokens + refill).min(self.rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - b.tokens) / self.rate.per_second.max(f64::MIN_POSITIVE);
        Err(wait.ceil().max(1.0) as u64)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Starts a console session for `key`: `(session id, csrf token)`, or `None` when the key is not valid.
    pub fn login(&self, key: &str) -> Option<(Principal, String, String)> {
        let principal = self.keys.lookup(key)?;
        let id = crate::access::generate(KeyKind::Secret);
        let csrf = crate::access::generate(KeyKind::Secret);
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.live.retain(|_, v| v.created.elapsed() < SESSION_TTL);
        if s.live.len() >= MAX_SESSIONS {
            if let Some(oldest) = s
                .live
                .iter()
                .min_by_key(|(_, v)| v.created)
                .map(|(k, _)| k.clone())
            {
                s.live.remove(&oldest);
            }
        }
        s.live.insert(
            hash(&id),
            Session {
                key_hash: hash(key),
                csrf: csrf.clone(),
                created: Instant::now(),
            },
        );
        Some((principal, id, csrf))
    }

    /// Ends the session `id` (logout).
    pub fn logout(&self, id: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.live.remove(&hash(id));
    }

    /// The session behind a cookie, when it is live and its key still valid: `(principal, csrf)`.
    fn session(&self, id: &str) -> Option<(Principal, String)> {
        let session = {
            let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            s.live.get(&hash(id)).cloned()?
        };
        if session.created.elapsed() >= SESSION_TTL {
            return None;
        }
        let principal = self.keys.lookup_hash(&session.key_hash)?;
        Some((principal, session.csrf))
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let v = v.to_str().unwrap_or_default();
    Some(match v.strip_prefix("Bearer ") {
        Some(k) if !k.trim().is_empty() => Ok(k.trim()),
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <key>`".into(),
        )),
    })
}

fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Who the request comes from: `(principal, csrf of the session when it came by cookie)`.
fn identify(edge: &Edge, headers: &HeaderMap) -> Result<(Principal, Option<String>), ApiError> {
    if let Some(key) = bearer(headers) {
        let p = edge.keys.lookup(key?).ok_or_else(|| {
            ApiError::Unauthorized("the API key is not valid or was revoked".into())
        })?;
        return Ok((p, None));
    }
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        let (p, csrf) = edge.session(id).ok_or_else(|| {
            ApiError::Unauthorized("the console session expired; log in again".into())
        })?;
        return Ok((p, Some(csrf)));
    }
    Err(ApiError::Unauthorized(
        "this route needs an API key: send `Authorization: Bearer <key>`".into(),
    ))
}

fn permit(p: &Principal, need: Access) -> Result<(), ApiError> {
    let missing = match need {
        Access::Public | Access::Publishable | Access::Owner(_) => return Ok(()),
        Access::Scope(s) if p.has(s) => return Ok(()),
        Access::AnyOf(any) if any.iter().any(|s| p.has(*s)) => return Ok(()),
        Access::Admin if Scope::ALL.iter().all(|s| p.has(*s)) => return Ok(()),
        Access::Scope(s) => s.as_str().to_string(),
        Access::AnyOf(any) => any
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        Access::Admin => "admin".to_string(),
    };
    let kind = match p.kind {
        KeyKind::Publishable => "a publishable key may call the storefront routes only; this one needs a secret key with",
        KeyKind::Secret => "the key lacks the scope this route needs:",
    };
    Err(ApiError::Forbidden(format!("{kind} {missing}")))
}

/// `scheme://host[:port]` of this server as the browser sees it.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority == host)
}

fn check_origin(
    edge: &Edge,
    p: &Principal,
    headers: &HeaderMap,
    m: &Method,
) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let trusted = same_origin(origin, headers)
        || edge.origins.iter().any(|o| o == origin)
        || (p.kind == KeyKind::Publishable && p.allows_origin(origin));
    // A browser on another site may read storefront routes with a key that allows it; it may change
    // nothing unless its origin is trusted.
    if trusted || (!changes_state(m) && p.kind == KeyKind::Secret) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "requests from origin `{origin}` are not allowed for this key"
    )))
}

fn check_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "the body must be JSON (Content-Type: application/json), not `{essence}`"
    )))
}

fn wants_page(headers: &HeaderMap, m: &Method) -> bool {
    *m == Method::GET
        && headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The access-control middleware, for `Router::route_layer` (it needs the matched route). It also answers
/// CORS for the publishable routes.
pub async fn authorize(State(edge): State<Edge>, mut req: Request, next: Next) -> Response {
    req.headers_mut().remove(ACTOR_HEADER);
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return match preflight(&edge, req.headers(), &path) {
            Some(answer) => answer,
            None => next.run(req).await,
        };
    }
    let need = (edge.policy)(&method, &path);
    let cors = cors_origin(&edge, need, req.headers());
    let mut resp = admit(&edge, need, req, next).await;
    if let Some(origin) = cors {
        allow_origin(resp.headers_mut(), origin);
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, retry-after"),
        );
    }
    resp
}

/// Identifies the caller and checks the route's need, then runs the handler.
async fn admit(edge: &Edge, need: Access, mut req: Request, next: Next) -> Response {
    if need == Access::Public {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let (principal, csrf) = match identify(edge, req.headers()) {
        Ok(who) => who,
        Err(_) if wants_page(req.headers(), &method) => {
            let back = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            return Redirect::to(&format!("/console/login?next={}", encode(back))).into_response();
        }
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check(
        edge,
        &principal,
        csrf.as_deref(),
        req.headers(),
        &method,
        need,
    ) {
        return e.into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&principal.name) {
        req.headers_mut().insert(ACTOR_HEADER, v);
    }
    if let Some(token) = csrf {
        req.extensions_mut().insert(Csrf(token));
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";
/// The request headers a storefront on another origin may send.
const CORS_REQUEST_HEADERS: &str =
    "authorization, content-type, x-request-id, idempotency-key, x-order-token";

/// The `Origin` of a cross-origin browser request to a publishable route that some publishable key allows:
/// the value to answer in `Access-Control-Allow-Origin`. Whether the presented key itself allows the origin is
/// checked by [`check_origin`]; its refusal carries the header too, so the page can read why.
fn cors_origin(edge: &Edge, need: Access, headers: &HeaderMap) -> Option<HeaderValue> {
    if !need.storefront() {
        return None;
    }
    let value = headers.get(header::ORIGIN)?;
    let origin = value.to_str().ok()?;
    (!same_origin(origin, headers) && edge.keys.browser_origin_allowed(origin))
        .then(|| value.clone())
}

fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), `None` for
/// any other `OPTIONS` request. Only publishable routes are open to other origins, and only to an origin that
/// some publishable key in force allows (a preflight carries no key); anything else gets 403 naming why.
fn preflight(edge: &Edge, headers: &HeaderMap, path: &str) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?.clone();
    let asked = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let Ok(method) = Method::from_bytes(asked.as_bytes()) else {
        return Some(
            ApiError::bad("access-control-request-method", "is not an HTTP method").into_response(),
        );
    };
    let name = origin.to_str().unwrap_or_default();
    let refusal = if !(edge.policy)(&method, path).storefront() {
        Some(format!(
            "{method} {path} is not a storefront route; browsers on other origins cannot call it"
        ))
    } else if !edge.keys.browser_origin_allowed(name) {
        Some(format!(
            "no publishable key allows origin `{name}`; add it with `lusso keys create --origins`"
        ))
    } else {
        None
    };
    if let Some(why) = refusal {
        return Some(ApiError::Forbidden(why).into_response());
    }
    let mut answer = axum::http::StatusCode::NO_CONTENT.into_response();
    let h = answer.headers_mut();
    allow_origin(h, origin);
    h.append(
        header::VARY,
        HeaderValue::from_static("access-control-request-method, access-control-request-headers"),
    );
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, asked.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_REQUEST_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    Some(answer)
}

fn check(
    edge: &Edge,
    p: &Principal,
    csrf: Option<&str>,
    headers: &HeaderMap,
    method: &Method,
    need: Access,
) -> Result<(), ApiError> {
    permit(p, need)?;
    if p.kind == KeyKind::Publishable {
        edge.take(&p.name)
            .map_err(|secs| ApiError::TooManyRequests {
                retry_after_secs: secs,
            })?;
    }
    check_origin(edge, p, headers, method)?;
    if changes_state(method) {
        if let Some(expected) = csrf {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent != Some(expected) {
                return Err(ApiError::Forbidden(format!(
                    "a console request that changes state needs the page's CSRF token in {CSRF_HEADER}"
                )));
            }
        }
        check_json(headers)?;
    }
    Ok(())
}

/// Percent-encodes a path for a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
