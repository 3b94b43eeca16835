//! Redis goes down in the middle of a stream: the consumer stops committing, retries with backoff, and when Redis
//! is back (a private `redis-server` with an fsynced append-only file, restarted on the same data) it catches up
//! with no event lost or counted twice. Redis-only: the in-memory store cannot go away.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use features::consumer::{self, ConsumerConfig};
use features::metrics::FeatureMetrics;
use features::processor::Processor;
use features::state::stream_id;
use features::store::memory::MemoryStore;
use features::store::redis::RedisStore;
use pipelines::bus::memory::MemoryBus;
use pipelines::bus::{EventBus, Record};
use tokio_util::sync::CancellationToken;

struct Redis(Child);

impl Redis {
    fn start(dir: &std::path::Path, port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (installed with Redis; scripts/services.sh checks it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "private redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_then_catch_up_without_loss_or_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Redis::start(dir.path(), port);
    let (events, _, now) = simulate(300, 10, 17);
    let (first, second) = events.split_at(events.len() / 2);

    let bus = Arc::new(MemoryBus::new(Default::default()));
    let topic = fresh("lusso.events.outage");
    bus.ensure_topic(&topic, 4).await.unwrap();
    let produce = |part: &[pipelines::event::Event]| {
        let records: Vec<Record> = part
            .iter()
            .map(|e| Record::new(e.key().to_string(), e.to_json_bytes()))
            .collect();
        let (bus, topic) = (bus.clone(), topic.clone());
        async move { bus.produce(&topic, records).await.unwrap() }
    };
    let (ctx, _, _keys) = context_and_store(false).await;
    let store = RedisStore::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap();
    let p = Processor::new(ctx.clone(), Arc::new(store));
    let metrics = FeatureMetrics::new(&prometheus::Registry::new());
    let cfg = ConsumerConfig {
        events_topic: topic.clone(),
        commerce_topic: format!("{topic}.c"),
        partitions: 4,
    };
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        bus.clone(),
        p.clone(),
        metrics.clone(),
        cfg,
        token.clone(),
    ));

    produce(first).await;
    wait_for("the first half", Duration::from_secs(60), || {
        metrics.applied.get() == first.len() as u64
    })
    .await;
    redis.kill9();
    produce(second).await;
    wait_for(
        "failed writes while redis is down",
        Duration::from_secs(30),
        || metrics.store_failures.get() >= 2,
    )
    .await;
    let group = &ctx.config.group;
    assert!(
        bus.lag(&topic, group) > 0,
        "nothing of the second half may be committed while redis is down"
    );
    assert_eq!(metrics.applied.get(), first.len() as u64);

    let _redis = Redis::start(dir.path(), port);
    wait_for("catch-up", Duration::from_secs(60), || {
        bus.lag(&topic, group) == 0
    })
    .await;
    token.cancel();
    task.await.unwrap().unwrap();

    // Exactly the features of processing every event once.
    let reference = Processor::new(ctx, Arc::new(MemoryStore::new(1_000_000)));
    reference
        .process(&incoming(&events, stream_id(0, 0), 0))
        .await
        .unwrap();
    assert_snapshots_equal(
        &snapshot(&reference, &events, now).await,
        &snapshot(&p, &events, now).await,
    );
    println!(
        "{} batches failed while redis was down; {} events applied, {} redelivered and fenced",
        metrics.store_failures.get(),
        metrics.applied.get(),
        metrics.redelivered.get()
    );
}
