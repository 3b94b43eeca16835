//! Console login: a secret key exchanged for a session cookie (`HttpOnly`, `SameSite=Strict`, expiring after
//! [`super::auth::SESSION_TTL`]), so merchandisers use the dashboard in a browser without pasting keys into
//! requests. `GET /console/login` shows the form, `POST /console/login` (form field `key`, optional `next`)
//! sets the cookie and goes on to `next` (a local path; default `/dashboard`), `POST /console/logout` ends it.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::auth::{cookie, Edge, SESSION_COOKIE, SESSION_TTL};
use crate::access::KeyKind;

/// The login and logout routes (public in every policy: they check the key themselves).
pub fn routes(edge: Edge) -> Router {
    Router::new()
        .route("/console/login", get(form).post(login))
        .route("/console/logout", post(logout))
        .with_state(edge)
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

/// `next` when it is a path on this server, else the dashboard (no open redirect).
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/dashboard".to_string(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, message: &str, next: &str) -> Response {
    let note = if message.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p role="alert" data-testid="login-error">{}</p>"#,
            escape(message)
        )
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Log in · Lusso</title>
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}input{{width:100%;font:inherit;padding:.4rem}}button{{font:inherit;margin-top:1rem;padding:.4rem 1rem}}[role=alert]{{color:#a40000}}</style></head>
<body><main><h1>Lusso console</h1><p>Log in with a secret API key (<code>lusso keys create --name NAME --scopes slots:write</code>, or the <code>admin_key</code> of the demo's <code>keys.json</code>).</p>{note}
<form method="post" action="/console/login"><label for="key">API key</label><input id="key" name="key" type="password" autocomplete="off" required data-testid="key">
<input type="hidden" name="next" value="{}"><button type="submit" data-testid="login">Log in</button></form></main></body></html>
"#,
        escape(next)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn form(Query(q): Query<Next>) -> Response {
    page(StatusCode::OK, "", &local(q.next.as_deref()))
}

async fn login(State(edge): State<Edge>, Form(f): Form<LoginForm>) -> Response {
    let next = local(f.next.as_deref());
    let Some((principal, id, _csrf)) = edge.login(f.key.trim()) else {
        return page(
            StatusCode::UNAUTHORIZED,
            "That key is not valid or was revoked.",
            &next,
        );
    };
    if principal.kind == KeyKind::Publishable {
        edge.logout(&id);
        return page(
            StatusCode::FORBIDDEN,
            "A publishable key cannot log in: use a secret key.",
            &next,
        );
    }
    tracing::info!(key = %principal.name, "console login");
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

async fn logout(State(edge): State<Edge>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        edge.logout(id);
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        [(header::SET_COOKIE, clear)],
        Redirect::to("/console/login"),
    )
        .into_response()
}
