//! When the bus cannot take a batch the collector answers 503 + Retry-After and accepts nothing; once the
//! bus is back the same batch is accepted, and the event log ends up with every accepted event once.
//! Embedded: the bounded in-process bus is full. Real: a private tansu broker (own port, own SQLite file)
//! is killed with SIGKILL and started again.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use pipelines::bus::memory::MemoryBusConfig;
use pipelines::bus::Record;
use serde_json::{json, Value};

/// A way to take the bus away and give it back.
trait Outage {
    /// Makes the bus unable to take a batch; returns events it put on the bus itself.
    async fn begin(&mut self, b: &Backends) -> usize;
    /// Gives the bus back.
    async fn end(&mut self, b: &Backends);
    /// Whether the bus still answers a ping during the outage (a full bus does; a dead broker does not).
    fn reachable_during(&self) -> bool;
}

async fn bus_outage(b: Backends, mut outage: impl Outage) {
    let app = b.app();
    let first: Vec<Value> = (0..50).map(valid_event).collect();
    let (status, _, body) = post_events(&app, &first).await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (StatusCode::OK, json!(50)),
        "{body}"
    );

    let extra = outage.begin(&b).await;
    let second: Vec<Value> = (50..120).map(valid_event).collect();
    let (status, headers, body) = post_events(&app, &second).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    // A bus that is down is `unavailable`; the embedded bus, full, is `full`: both 503 with Retry-After.
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(["unavailable", "full"].contains(&code), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    assert!(body.get("accepted").is_none());
    let want_ready = if outage.reachable_during() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    assert_eq!(get(&app, "/readyz").await.0, want_ready);

    outage.end(&b).await;
    let start = Instant::now();
    loop {
        let (status, _, body) = post_events(&app, &second).await;
        if status == StatusCode::OK {
            assert_eq!(body["accepted"], 70, "{body}");
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "bus never came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (token, sink) = b.start_sink(b.sink_config());
    let want = (120 + extra) as i64;
    let counts = b.wait_for_count(want, Duration::from_secs(90)).await;
    assert_eq!(counts, (want, want));
    let ids = b.log.query(&b.ids_sql).await.unwrap();
    let stored: std::collections::HashSet<&str> =
        ids.rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    for e in first.iter().chain(&second) {
        assert!(stored.contains(e["event_id"].as_str().unwrap()));
    }
    token.cancel();
    sink.await.unwrap().unwrap();
}

/// Embedded: fill the bounded bus while the sink group has not committed anything yet.
struct FullBus {
    sub: Option<Box<dyn pipelines::bus::Subscription>>,
}

impl Outage for FullBus {
    async fn begin(&mut self, b: &Backends) -> usize {
        let mut n = 0;
        loop {
            let e = pipelines::validate::validate_event(&valid_event(1000 + n), chrono::Utc::now())
                .unwrap();
            match b
                .bus
                .produce(
                    &b.events_topic,
                    vec![Record::new(e.key().as_bytes().to_vec(), e.to_json_bytes())],
                )
                .await
            {
                Ok(()) => n += 1,
                Err(pipelines::Error::Full(_)) => return n,
                Err(other) => panic!("{other}"),
            }
        }
    }

    async fn end(&mut self, b: &Backends) {
        // A consumer catches up and commits: the bus trims and has room again.
        let sub = self.sub.as_mut().unwrap();
        let msgs = sub.poll(100_000, Duration::from_millis(200)).await.unwrap();
        let events: Vec<pipelines::event::Event> = msgs
            .iter()
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect();
        b.log.append(&events).await.unwrap();
        sub.commit(&pipelines::bus::Offsets::after(&msgs))
            .await
            .unwrap();
        self.sub = None;
    }

    fn reachable_during(&self) -> bool {
        true
    }
}

struct PrivateBroker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateBroker {
    fn start_new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut broker = PrivateBroker {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        broker.start();
        broker
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let bin = require_env("LUSSO_TANSU_BIN");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = format!("sqlite:///{}/tansu.db", self.dir.path().display());
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &storage])
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

struct KilledBroker(PrivateBroker);

impl Outage for KilledBroker {
    async fn begin(&mut self, _: &Backends) -> usize {
        self.0.kill();
        0
    }

    async fn end(&mut self, _: &Backends) {
        self.0.start();
    }

    fn reachable_during(&self) -> bool {
        false
    }
}

mod embedded {
    use super::*;

    #[tokio::test]
    async fn bus_outage() {
        let b = Backends::embedded_with(MemoryBusConfig {
            default_partitions: 2,
            max_messages_per_partition: 200,
        })
        .await;
        // The sink's group exists (it has started) but has not committed yet.
        let group = b.sink_config().group;
        let sub = b.bus.subscribe(&b.events_topic, &group).await.unwrap();
        super::bus_outage(b, FullBus { sub: Some(sub) }).await;
    }
}

mod real {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bus_outage() {
        let broker = PrivateBroker::start_new();
        let b = Backends::real_with_brokers(&broker.brokers()).await;
        super::bus_outage(b, KilledBroker(broker)).await;
    }
}
