//! Helpers for tests that drive the real `lusso` binary as separate processes.
#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with scripts/test.sh, which starts the real services"
        )
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `lusso` with a clean environment of our choosing (no inherited LUSSO_*).
pub fn lusso(envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lusso"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LUSSO_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.env("LUSSO_LOG", "warn");
    cmd
}

/// A background `lusso` process, killed with SIGKILL when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        Proc(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn lusso"),
        )
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run lusso");
    assert!(
        out.status.success(),
        "lusso failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `lusso query SQL --json`, first cell as an integer.
pub fn query_count(envs: &[(&str, String)], sql: &str) -> Option<i64> {
    let mut cmd = lusso(envs);
    cmd.args(["query", sql, "--json"]);
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    match &v["rows"][0][0] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Plain HTTP/1.1 GET over a real socket; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path)
}

/// Plain HTTP/1.1 request without a body over a real socket; returns (status, body).
pub fn http_request(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    http_call(addr, method, path, None, &[])
}

/// Plain HTTP/1.1 request with an optional JSON body and extra headers over a real socket; returns
/// (status, body).
pub fn http_call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    http_exchange(addr, method, path, body, headers).map(|(status, _, body)| (status, body))
}

/// Plain HTTP/1.1 request over a real socket; returns (status, response head, body).
pub fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    Some((status, head.to_string(), body.to_string()))
}

/// A new admin key in the key store `envs` point at (`LUSSO_DATABASE_URL`, else the data dir), made with
/// `lusso keys create`, as an operator would.
pub fn admin_key(envs: &[(&str, String)]) -> String {
    let out = run_ok({
        let mut c = lusso(envs);
        c.args([
            "keys",
            "create",
            "--name",
            &fresh("test-admin-"),
            "--scopes",
            "admin",
        ]);
        c
    });
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("sk_"), "{key}");
    key
}

/// `Authorization: Bearer KEY` for [`http_call`].
pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A reqwest client that sends `key` on every request.
pub fn client_with(key: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&bearer(key)).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// The demo's keys from `keys.json` in its data dir: (publishable, admin).
pub fn demo_keys(data_dir: &std::path::Path) -> (String, String) {
    let v: Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("keys.json")).unwrap()).unwrap();
    (
        v["publishable_key"].as_str().unwrap().to_string(),
        v["admin_key"].as_str().unwrap().to_string(),
    )
}
