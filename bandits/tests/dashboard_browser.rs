//! The merchandiser dashboard end to end in a real headless Chromium behind the access-control edge, driven
//! through ChromeDriver's W3C WebDriver HTTP protocol by a small client over reqwest: the merchandiser logs
//! in with a key, the page's numbers equal the JSON API's, the winner is the API's, a Pause click reaches the
//! service (audited under the key's name) and the paused arm is no longer served, the off-policy section
//! shows the API's DR estimate, a cross-origin or token-less request with the session cookie is refused, and
//! logging out ends the session.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`: `bash scripts/browser.sh` installs them (a missing
//! one fails the test, it is never skipped). Time is a [`ManualClock`]; nothing waits on the wall clock
//! except bounded polls for the browser.
#![allow(unreachable_pub)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use bandits::service::ManualClock;
use bandits::slot::Objective;
use bandits::{api, dashboard, joiner};
use common::*;
use pipelines::access::{FileKeys, KeyKind, Keys, NewKey, Scope};
use pipelines::http::auth::{Access, Edge};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const ARMS: [&str; 3] = ["hero_sale", "hero_new", "hero_classic"];
const SEGMENT: &str = "At Risk";
/// The merchandiser's key name: the audit actor of what she does.
const ACTOR: &str = "giulia-rossi";

/// One browser at a time: two Chromiums on a two-core machine only make both runs slow.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A ChromeDriver child process and its browser session; dropping it (also while a test panics) ends the
/// session, which quits Chromium, then kills ChromeDriver.
struct Browser {
    child: Child,
    port: u16,
    session: Option<String>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            // Drop cannot await: a plain HTTP/1.1 request over a socket.
            let _ = delete_blocking(self.port, &format!("/session/{id}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn delete_blocking(port: u16, path: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // ChromeDriver answers once the browser has quit (and may keep the connection open): the first
    // bytes of the answer are all we wait for.
    let mut answer = [0u8; 1024];
    let _ = s.read(&mut answer)?;
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile.
    async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run `bash scripts/browser.sh` to install Chromium and ChromeDriver"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} ({e}): run `bash scripts/browser.sh`")
            });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut b = Browser {
            child,
            port,
            session: None,
            http,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = b
                .http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(r) = ready {
                if r.await.is_ok_and(|v| v["value"]["ready"] == true) {
                    break;
                }
            }
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!("{CHROMEDRIVER} exited ({status}): {}", b.log());
            }
            assert!(
                Instant::now() < deadline,
                "ChromeDriver not ready after 30 s: {}",
                b.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile: PathBuf = b.dir.path().join("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    "--disable-sync", format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let resp = b
            .http
            .post(format!("http://127.0.0.1:{port}/session"))
            .json(&caps)
            .send()
            .await
            .expect("POST /session");
        let v: Value = resp.json().await.expect("session JSON");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}\n{}", b.log()))
            .to_string();
        b.session = Some(id);
        b
    }

    fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// A WebDriver command on the session; `Err` carries the W3C error.
    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let id = self.session.as_deref().ok_or("no session")?;
        let url = format!("http://127.0.0.1:{}/session/{id}{path}", self.port);
        let mut req = self.http.request(method.clone(), url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if status.is_success() {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path}: {status} {}", v["value"]))
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_cmd(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver: {e}"),
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The current URL once it ends with `suffix`, waiting up to 10 s (a form post navigates after the
    /// click returns).
    async fn wait_url(&self, suffix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.current_url().await;
            if url.ends_with(suffix) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, wanted …{suffix}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn title(&self) -> String {
        self.cmd(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element matching `css`, waiting up to 10 s for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .try_cmd(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found {
                Ok(v) => return v[ELEMENT].as_str().expect("element reference").to_string(),
                Err(e) if Instant::now() > deadline => panic!("no element {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn testid(&self, id: &str) -> String {
        self.find(&format!(r#"[data-testid="{id}"]"#)).await
    }

    async fn text(&self, el: &str) -> String {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn attr(&self, el: &str, name: &str) -> Option<String> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{el}/attribute/{name}"),
                None,
            )
            .await;
        v.as_str().map(String::from)
    }

    async fn click(&self, el: &str) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, el: &str, text: &str) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn execute(&self, script: &str) -> Result<Value, String> {
        self.try_cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The raw number in `data-value` of the element with `data-testid` = `id`.
    async fn value(&self, id: &str) -> f64 {
        let el = self.testid(id).await;
        let raw = self
            .attr(&el, "data-value")
            .await
            .unwrap_or_else(|| panic!("{id}: no data-value"));
        raw.parse()
            .unwrap_or_else(|e| panic!("{id}: data-value `{raw}`: {e}"))
    }

    /// Ends the session (Chromium quits); ChromeDriver is killed on drop.
    async fn quit(mut self) {
        if self.session.is_some() {
            self.cmd(reqwest::Method::DELETE, "", None).await;
            self.session = None;
        }
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.unwrap()
}

fn segment<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["segments"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["segment"] == name))
        .unwrap_or_else(|| panic!("no segment {name} in {report}"))
}

fn close(page: f64, api: &Value, what: &str) {
    let api = api
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: API value {api} is not a number"));
    assert!((page - api).abs() < 1e-9, "{what}: page {page}, API {api}");
}

async fn dashboard_in_a_browser(backend: Backend) {
    let _one = ONE_BROWSER.lock().await;
    let clock = ManualClock::new(t("2026-12-01T00:00:00Z"));
    let b = service(store(backend).await, &clock);
    b.create_slot(slot("home_hero", Objective::Click, &ARMS), "setup")
        .await
        .unwrap();
    // 300 decisions over 50 hours in three segments; hero_sale is clicked every other time it is shown,
    // the others one time in ten. A click is a banner-click event (so the report counts it) and every
    // decision gets its explicit reward (1 when clicked, else 0).
    let segments = ["New", SEGMENT, "Lapsed"];
    for i in 0..300usize {
        let user = format!("u{i}");
        let d = b
            .decide(decide_req("home_hero", &user, segments[i % 3]))
            .await
            .unwrap();
        let k = i / 3;
        let clicked = if d.arm_id == "hero_sale" {
            k % 2 == 0
        } else {
            k % 10 == 0
        };
        if clicked {
            let ev = click(&user, d.decision_id, &d.arm_id, clock.now() + minutes(1));
            joiner::apply_events(&b, &[ev]).await.unwrap();
        }
        b.reward(d.decision_id, if clicked { 1.0 } else { 0.0 })
            .await
            .unwrap();
        clock.advance(minutes(10));
        if i % 10 == 9 {
            b.sync().await.unwrap();
        }
    }
    b.sync().await.unwrap();

    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::load(std::sync::Arc::new(FileKeys::in_dir(keys_dir.path())))
        .await
        .unwrap();
    let (key, _) = keys
        .create(NewKey {
            name: ACTOR.into(),
            kind: KeyKind::Secret,
            scopes: [Scope::SlotsWrite, Scope::DataRead].into_iter().collect(),
            origins: vec![],
        })
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = behind_the_edge(&b, keys);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .default_headers(auth)
        .build()
        .unwrap();

    // Error pages name what is wrong.
    let r = http
        .get(format!("{base}/dashboard/no_such_slot"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no_such_slot"));
    let r = http
        .get(format!("{base}/dashboard/home_hero?days=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("days: `abc`"));
    let r = http
        .get(format!("{base}/dashboard/home_hero?policy=arm:zzz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("policy: `zzz`"));

    let browser = Browser::start().await;

    // Without a session the dashboard sends the browser to the login form; a wrong key is refused there.
    browser.goto(&format!("{base}/dashboard")).await;
    assert!(
        browser.current_url().await.contains("/console/login"),
        "{}",
        browser.current_url().await
    );
    log_in(&browser, "sk_not_a_key").await;
    browser.testid("login-error").await;
    log_in(&browser, &key).await;
    browser.wait_url("/dashboard").await;

    // The slot list links to the slot's page.
    let link = browser.testid("slot-home_hero").await;
    browser.click(&link).await;
    let heading = browser.testid("slot-title").await;
    assert_eq!(browser.text(&heading).await, "home_hero");
    assert!(browser
        .current_url()
        .await
        .ends_with("/dashboard/home_hero"));

    // The segment's numbers are the API's.
    let page = format!("{base}/dashboard/home_hero?segment=At%20Risk");
    browser.goto(&page).await;
    assert!(
        browser.title().await.contains("home_hero"),
        "{}",
        browser.title().await
    );
    let who = browser.testid("signed-in").await;
    assert_eq!(browser.text(&who).await, ACTOR);
    let report = get_json(&http, &format!("{base}/v1/bandits/home_hero/report")).await;
    let seg = segment(&report, SEGMENT);
    assert!(seg["decisions"].as_u64().unwrap() > 0);
    let clicks: u64 = seg["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["clicks"].as_u64().unwrap())
        .sum();
    assert!(clicks > 0, "the banner clicks are counted: {seg}");
    for arm in ARMS {
        let a = seg["arms"]
            .as_array()
            .and_then(|v| v.iter().find(|a| a["arm_id"] == arm))
            .unwrap_or_else(|| panic!("no {arm} in {seg}"));
        let decisions = browser.value(&format!("decisions-{arm}")).await;
        assert_eq!(
            decisions as u64,
            a["decisions"].as_u64().unwrap(),
            "decisions-{arm}"
        );
        assert_eq!(decisions.fract(), 0.0);
        let clicks = browser.value(&format!("clicks-{arm}")).await;
        assert_eq!(clicks as u64, a["clicks"].as_u64().unwrap(), "clicks-{arm}");
        close(
            browser.value(&format!("share-{arm}")).await,
            &a["share"],
            &format!("share-{arm}"),
        );
        close(
            browser.value(&format!("ctr-{arm}")).await,
            &a["ctr"]["value"],
            &format!("ctr-{arm}"),
        );
        close(
            browser.value(&format!("prob-best-{arm}")).await,
            &a["prob_best"],
            &format!("prob-best-{arm}"),
        );
        let state = browser.testid(&format!("state-{arm}")).await;
        assert_eq!(browser.text(&state).await, "live");
    }
    let winner = seg["winner"].as_str().expect("a winner").to_string();
    let sentence = browser.text(&browser.testid("winner").await).await;
    assert!(
        sentence.contains(&winner),
        "{sentence} should name {winner}"
    );
    assert!(sentence.contains(SEGMENT), "{sentence}");
    // The charts are SVG the browser laid out: one stacked column per arm and bucket, one bar per arm.
    let columns = browser
        .execute("return document.querySelectorAll('[data-testid=share-columns] rect').length")
        .await
        .unwrap();
    assert!(columns.as_u64().unwrap() >= 3, "{columns}");
    let bars = browser
        .execute("return document.querySelectorAll('svg[data-testid=ctr-chart] circle').length")
        .await
        .unwrap();
    assert_eq!(bars, json!(3));

    // What always showing the winner would have earned: the API's DR estimate.
    browser.goto(&format!("{page}&policy=arm:{winner}")).await;
    let dr_page = browser.value("ope-dr").await;
    let ope = get_json(
        &http,
        &format!("{base}/v1/bandits/home_hero/ope?policy=arm:{winner}&bootstrap=500"),
    )
    .await;
    close(dr_page, &segment(&ope, SEGMENT)["dr"]["value"], "ope-dr");
    let dr_text = browser.text(&browser.testid("ope-dr").await).await;
    let shown: f64 = dr_text
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|e| panic!("`{dr_text}`: {e}"));
    assert!(
        (shown - dr_page * 100.0).abs() <= 0.005 + 1e-12,
        "{dr_text} vs {dr_page}"
    );

    // Pause the arm least likely to be best, as a named merchandiser.
    let loser = seg["arms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["arm_id"] != winner.as_str())
        .min_by(|a, b| {
            a["prob_best"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["prob_best"].as_f64().unwrap())
        })
        .and_then(|a| a["arm_id"].as_str())
        .unwrap()
        .to_string();
    browser.goto(&page).await;
    browser
        .execute("window.beforeTheClick = true; return true")
        .await
        .unwrap();
    let pause = browser.testid(&format!("pause-{loser}")).await;
    browser.click(&pause).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = get_json(&http, &format!("{base}/v1/slots/home_hero")).await;
        let paused = s["arms"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["arm_id"] == loser.as_str()))
            .map(|a| a["paused"] == true);
        if paused == Some(true) {
            break;
        }
        if Instant::now() > deadline {
            let status = browser
                .execute("var e = document.getElementById('action-status'); return e ? e.textContent : null")
                .await;
            panic!("{loser} not paused after 10 s; the page says {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The page reloaded itself after the change and shows the arm paused, with Resume instead of Pause.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reloaded = browser
            .execute(
                "return window.beforeTheClick === undefined && document.readyState === 'complete'",
            )
            .await;
        if reloaded == Ok(json!(true)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page did not reload after the change: {reloaded:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = browser.testid(&format!("state-{loser}")).await;
    assert_eq!(browser.text(&state).await, "paused");
    browser.testid(&format!("resume-{loser}")).await;
    // A fresh load agrees.
    browser.goto(&page).await;
    let state = browser.testid(&format!("state-{loser}")).await;
    assert_eq!(browser.text(&state).await, "paused");

    // The service no longer serves it.
    b.sync().await.unwrap();
    for i in 0..50usize {
        let d = b
            .decide(decide_req(
                "home_hero",
                &format!("after{i}"),
                segments[i % 3],
            ))
            .await
            .unwrap();
        assert_ne!(d.arm_id, loser, "a paused arm is never served");
    }
    // The audit trail names who did it.
    let audit = get_json(&http, &format!("{base}/v1/slots/home_hero/audit")).await;
    let entry = audit["audit"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["action"] == "pause"))
        .unwrap_or_else(|| panic!("no pause in {audit}"));
    assert_eq!(entry["actor"], ACTOR);
    assert_eq!(entry["detail"]["arm_id"], loser.as_str());
    let trail = browser.text(&browser.testid("audit").await).await;
    assert!(trail.contains(ACTOR) && trail.contains("pause"), "{trail}");

    session_cookie_needs_its_origin_and_token(&browser, &base, &loser).await;

    // Logging out ends the session: the dashboard asks for a key again.
    let logout = browser.testid("logout").await;
    browser.click(&logout).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.current_url().await.contains("/console/login") {
        assert!(
            Instant::now() < deadline,
            "logout did not land on the login page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.goto(&format!("{base}/dashboard")).await;
    assert!(
        browser.current_url().await.contains("/console/login"),
        "{}",
        browser.current_url().await
    );

    browser.quit().await;
    server.abort();
}

/// The dashboard and the API behind the edge, with the console's login: reads need `slots:write` or
/// `data:read`, changes `slots:write`.
fn behind_the_edge(b: &bandits::service::Bandits, keys: Keys) -> axum::Router {
    fn policy(method: &Method, path: &str) -> Access {
        const READ: &[Scope] = &[Scope::SlotsWrite, Scope::DataRead];
        match path {
            "/console/login" | "/console/logout" => Access::Public,
            _ if *method == Method::GET => Access::AnyOf(READ),
            _ => Access::Scope(Scope::SlotsWrite),
        }
    }
    let edge = Edge::new(keys, policy, vec![]);
    api::app(b.clone())
        .merge(dashboard::routes(b.clone()))
        .merge(pipelines::http::console::routes(edge.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            edge,
            pipelines::http::auth::authorize,
        ))
        .layer(axum::middleware::from_fn(pipelines::http::request_ids))
}

async fn log_in(browser: &Browser, key: &str) {
    let field = browser.testid("key").await;
    browser.type_into(&field, key).await;
    let button = browser.testid("login").await;
    browser.click(&button).await;
}

/// The browser's session cookie works with the page's CSRF token from the page's own origin, and is refused
/// from another origin or without the token (the request a hostile page could make).
async fn session_cookie_needs_its_origin_and_token(browser: &Browser, base: &str, arm: &str) {
    let cookie = browser
        .cmd(reqwest::Method::GET, "/cookie/lusso_session", None)
        .await;
    let cookie = format!("lusso_session={}", cookie["value"].as_str().unwrap());
    let csrf = browser
        .execute("return document.body.getAttribute('data-csrf')")
        .await
        .unwrap();
    let csrf = csrf.as_str().unwrap().to_string();
    assert!(csrf.len() > 20, "{csrf}");
    let plain = reqwest::Client::new();
    let resume = |origin: &str, token: Option<&str>| {
        let mut r = plain
            .post(format!("{base}/v1/slots/home_hero/actions"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({"action": "resume", "arm_id": arm}));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    let r = resume("https://evil.example", Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), 403, "cross-origin: {}", r.text().await.unwrap());
    let r = resume(base, None).await.unwrap();
    assert_eq!(r.status(), 403, "no token: {}", r.text().await.unwrap());
    let r = resume(base, Some("wrong")).await.unwrap();
    assert_eq!(r.status(), 403, "wrong token: {}", r.text().await.unwrap());
    let r = resume(base, Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A form post (what a hostile page can send without CORS) is not JSON: 415 even with cookie and token.
    let r = plain
        .post(format!("{base}/v1/slots/home_hero/actions"))
        .header("cookie", &cookie)
        .header("origin", base)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("action=pause")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

mod memory {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dashboard_in_a_browser() {
        super::dashboard_in_a_browser(Backend::Memory).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dashboard_in_a_browser() {
        super::dashboard_in_a_browser(Backend::Postgres).await;
    }
}
