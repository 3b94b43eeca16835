//! Composition of the roles into running processes: `serve`, `demo`, and embedded draining.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use indicatif::{ProgressBar, ProgressStyle};
use ingest::collector::{self, CollectorConfig, CollectorState};
use ingest::metrics::Metrics;
use ingest::sink::{self, SinkConfig};
use pipelines::bus::memory::MemoryBus;
use pipelines::bus::EventBus;
use pipelines::config::BackendConfig;
use pipelines::log::EventLog;
use pipelines::topics;
use tokio_util::sync::CancellationToken;

use features::FeaturesConfig;
use pipelines::access::Keys;
use pipelines::http::auth::Edge;

use crate::Role;

/// A progress bar on a TTY; hidden otherwise (callers also log).
pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn collector_config(config: &BackendConfig) -> CollectorConfig {
    CollectorConfig {
        events_topic: config.topic(topics::EVENTS),
        quarantine_topic: config.topic(topics::QUARANTINE),
        ..Default::default()
    }
}

fn sink_config(config: &BackendConfig) -> SinkConfig {
    SinkConfig {
        events_topic: config.topic(topics::EVENTS),
        quarantine_topic: config.topic(topics::QUARANTINE),
        ..Default::default()
    }
}

/// Ctrl-C / SIGTERM → cancel.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// A running set of roles over shared backends.
pub(crate) struct Running {
    pub(crate) router: Router,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The bandit service, when this process runs it.
    pub(crate) bandits: Option<bandits::service::Bandits>,
}

/// Builds the roles of `role` over `bus` and `log`.
/// How the process was started: what it seeds and which stand-ins it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `lusso demo`: embedded backends, the demo slot and data seeded, the `fake` payment provider on.
    Demo,
    /// `lusso serve --embedded`: in-process backends for whatever is unset, the `fake` payment provider on
    /// (development and tests).
    Embedded,
    /// `lusso serve`: every backend the role needs is configured (checked at start); no `fake` provider.
    Production,
}

pub(crate) async fn build(
    config: &BackendConfig,
    role: Role,
    bus: Arc<dyn EventBus>,
    log: Option<Arc<dyn EventLog>>,
    features: FeaturesConfig,
    mode: Mode,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let seed_demo = mode == Mode::Demo;
    let metrics = Metrics::new();
    let mut tasks = Vec::new();
    let bandits_log = log.clone();
    if let (Role::All | Role::Sink, Some(log)) = (role, log.clone()) {
        let (bus, metrics, token) = (bus.clone(), metrics.clone(), shutdown.clone());
        let cfg = sink_config(config);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = sink::run(bus, log, cfg, metrics, token).await {
                tracing::error!(error = %e, "sink stopped with an error");
            }
        }));
    }
    let features_cfg = features.clone();
    let (features_router, features_api) = match role {
        Role::All | Role::Features => {
            let f = crate::features_role::start(
                config,
                features,
                bus.clone(),
                log,
                metrics.registry(),
                shutdown.clone(),
            )
            .await?;
            tasks.extend(f.tasks);
            (Some(f.router), Some(f.api))
        }
        Role::Collector | Role::Sink | Role::Bandits | Role::Serving | Role::Commerce => {
            (None, None)
        }
    };
    // Bandits and serving read shoppers through the features role's API, or a read-only view of the store.
    let lookups = match (role, features_api) {
        (_, Some(api)) => Some(api),
        (Role::Bandits | Role::Serving, None) => {
            Some(crate::features_role::lookup_api(config, features_cfg).await?)
        }
        _ => None,
    };
    let mut serving_service = None;
    let serving_router = match (role, &lookups) {
        (Role::All | Role::Serving, Some(api)) => {
            let s = crate::serving_role::start(
                config,
                bus.clone(),
                bandits_log.clone(),
                api.clone(),
                metrics.registry(),
                seed_demo,
                shutdown.clone(),
            )
            .await?;
            tasks.extend(s.tasks);
            serving_service = Some(s.service);
            Some(s.router)
        }
        _ => None,
    };
    // Commerce charges what serving shows: its price book when serving runs here, else its own copy.
    let commerce_router = match role {
        Role::All | Role::Commerce => {
            let (catalog, prices): (_, Arc<dyn commerce::catalog::PriceList>) =
                match &serving_service {
                    Some(s) => (
                        s.catalog().clone(),
                        Arc::new(serving::checkout_prices::ServingPrices(s.clone())),
                    ),
                    None => {
                        let catalog =
                            Arc::new(pipelines::catalog::Catalog::generate(config.catalog_seed));
                        let (prices, task) = crate::commerce_role::standalone_prices(
                            config,
                            catalog.clone(),
                            shutdown.clone(),
                        )
                        .await?;
                        tasks.push(task);
                        (catalog, prices)
                    }
                };
            let c = crate::commerce_role::start(
                config,
                bus.clone(),
                catalog,
                prices,
                metrics.registry(),
                mode != Mode::Production,
                shutdown.clone(),
            )
            .await?;
            tasks.extend(c.tasks);
            Some(c.router)
        }
        _ => None,
    };
    let mut bandits_service = None;
    let bandits_router = match role {
        Role::All | Role::Bandits => {
            let b = crate::bandits_role::start(
                config,
                bus.clone(),
                bandits_log,
                lookups,
                metrics.registry(),
                seed_demo,
                shutdown.clone(),
            )
            .await?;
            tasks.extend(b.tasks);
            bandits_service = Some(b.service);
            Some(b.router)
        }
        _ => None,
    };
    // One OpenAPI document for every endpoint this process serves, secured from the route table.
    let mut openapi = ingest::openapi::document();
    let parts = [
        (
            serving_router.is_some(),
            serving::openapi::document as fn() -> serde_json::Value,
        ),
        (commerce_router.is_some(), commerce::openapi::document),
        (features_router.is_some(), features::openapi::document),
        (bandits_router.is_some(), bandits::openapi::document),
        (role == Role::All, training::api::openapi),
        (true, pipelines::openapi::console_document),
    ];
    for (_, part) in parts.into_iter().filter(|(mounted, _)| *mounted) {
        pipelines::openapi::merge_into(&mut openapi, part());
    }
    pipelines::openapi::secure(&mut openapi, crate::access::requirement);
    let router = match role {
        Role::All | Role::Collector => collector::app(
            CollectorState::new(bus, collector_config(config), metrics).with_openapi(openapi),
        ),
        Role::Sink | Role::Features | Role::Bandits | Role::Serving | Role::Commerce => {
            let m = metrics;
            let doc = Arc::new(openapi);
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/metrics", get(move || async move { m.render() }))
                .route(
                    "/openapi.json",
                    get(move || async move { axum::Json((*doc).clone()) }),
                )
        }
    };
    let router = match serving_router {
        Some(r) => router.merge(r),
        None => router,
    };
    let router = match commerce_router {
        Some(c) => router.merge(c),
        None => router,
    };
    let router = match features_router {
        Some(f) => router.merge(f),
        None => router,
    };
    let router = match bandits_router {
        Some(b) => router.merge(b),
        None => router,
    };
    // The model registry (`/v1/models`) is served by the all-in-one process.
    let router = if role == Role::All {
        let registry = crate::train_cmd::open_registry(config, None)?;
        router.merge(training::api::app(Arc::new(registry)))
    } else {
        router
    };
    Ok(Running {
        router,
        tasks,
        bandits: bandits_service,
    })
}

/// The edge every role's routes go through: the console login, access control on every matched route (it
/// needs the route's template, hence a route layer added after every route), a deadline on every request,
/// then request ids and the one error shape for everything, unmatched routes included.
pub(crate) fn with_edge(router: Router, edge: Edge) -> Router {
    pipelines::http::behind_edge(router, edge)
}

async fn listen(addr: &str, router: Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (LUSSO_HTTP_ADDR)"))?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The API keys of this process, reloaded from their store every second until `shutdown`.
async fn start_keys(config: &BackendConfig, shutdown: &CancellationToken) -> anyhow::Result<Keys> {
    let keys = Keys::load(crate::access::open_store(config).await?).await?;
    tokio::spawn(keys.clone().run_refresh(shutdown.clone()));
    Ok(keys)
}

/// The access-control edge: this process's keys, the route table, and the browser origins trusted for the
/// console besides the server's own (`LUSSO_CONSOLE_ORIGINS`, a comma list).
fn edge(keys: Keys) -> Edge {
    let origins = pipelines::config::env_nonempty("LUSSO_CONSOLE_ORIGINS")
        .map(|v| {
            v.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Edge::new(keys, crate::access::required, origins)
}

/// The bus (topics created when missing) and, for the roles that read or write it, the event log.
pub(crate) async fn open_backends(
    config: &BackendConfig,
    role: Role,
) -> anyhow::Result<(Arc<dyn EventBus>, Option<Arc<dyn EventLog>>)> {
    let bus = pipelines::bus::connect(config)?;
    for t in [topics::EVENTS, topics::QUARANTINE, topics::COMMERCE] {
        if let Err(e) = bus
            .ensure_topic(&config.topic(t), topics::default_partitions())
            .await
        {
            tracing::warn!(error = %e, topic = t, "cannot create topic yet; will retry on use");
        }
    }
    let log = match role {
        Role::All | Role::Sink | Role::Features | Role::Bandits | Role::Serving => {
            Some(pipelines::log::open(config).await?)
        }
        Role::Collector | Role::Commerce => None,
    };
    Ok((bus, log))
}

/// `lusso serve --role …`.
pub(crate) async fn serve(
    config: BackendConfig,
    role: Role,
    addr: &str,
    embedded: bool,
) -> anyhow::Result<()> {
    let features = FeaturesConfig::from_env()?;
    let mode = if embedded {
        Mode::Embedded
    } else {
        crate::backends::require(role, &config, &features)?;
        Mode::Production
    };
    let shutdown = shutdown_on_signal();
    let (bus, log) = open_backends(&config, role).await?;
    let keys = start_keys(&config, &shutdown).await?;
    tracing::info!(?role, %addr, bus = %bus.describe(),
        log = %log.as_ref().map(|l| l.describe()).unwrap_or_default(),
        keys = %keys.store().describe(), "serving");
    let running = build(&config, role, bus, log, features, mode, shutdown.clone()).await?;
    listen(
        addr,
        with_edge(running.router, edge(keys)),
        shutdown.clone(),
    )
    .await?;
    for t in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(())
}

/// `lusso demo`: embedded backends, server, simulator.
pub(crate) async fn demo(
    mut config: BackendConfig,
    addr: &str,
    users: usize,
    rate: f64,
    seed: u64,
) -> anyhow::Result<()> {
    config.kafka_brokers = None;
    config.clickhouse_url = None;
    config.database_url = None;
    let shutdown = shutdown_on_signal();
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new(Default::default()));
    let log = pipelines::log::open(&config).await?;
    // Embedded: the in-memory feature store, whatever LUSSO_REDIS_URL says.
    let features = FeaturesConfig {
        redis_url: None,
        ..FeaturesConfig::from_env()?
    };
    let keys = start_keys(&config, &shutdown).await?;
    let demo_keys = crate::access::demo_keys(&keys, &config.data_dir).await?;
    let running = build(
        &config,
        Role::All,
        bus,
        Some(log.clone()),
        features,
        Mode::Demo,
        shutdown.clone(),
    )
    .await?;
    let router = with_edge(running.router, edge(keys));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set LUSSO_HTTP_ADDR or --addr)"))?;
    let url = format!("http://{addr}");
    println!("Lusso demo (embedded: in-process bus, Parquet event log, no external service)");
    println!("  collector     POST {url}/v1/events   schema {url}/v1/schemas/events");
    println!("  health        {url}/healthz  {url}/readyz  {url}/metrics  {url}/openapi.json");
    println!("  quarantine    {url}/v1/quarantine   (lusso quarantine list)");
    println!("  bandits       POST {url}/v1/decisions  POST {url}/v1/rewards  {url}/v1/slots  {url}/v1/bandits/home_hero/report");
    println!(
        "  keys          publishable {}  admin {}  (also in {}; send `Authorization: Bearer KEY`)",
        demo_keys.publishable_key,
        demo_keys.admin_key,
        config.data_dir.join("keys.json").display()
    );
    println!("  dashboard     {url}/dashboard   (log in with the admin key)");
    println!(
        "  storefront    {url}/storefront?key={}   (home recommendations, hero banner, prices; switch segment / market)",
        demo_keys.publishable_key
    );
    println!("  serving       {url}/v1/recommendations?user_id=U0000001  {url}/v1/rules  {url}/v1/prices?product_id=P000001&market=GB  {url}/v1/experiments");
    println!("  commerce      POST {url}/v1/carts  POST {url}/v1/checkouts (Idempotency-Key)  {url}/v1/orders/{{id}}  {url}/v1/orders/{{id}}/invoice.xml  {url}/v1/inventory/{{sku}}  {url}/v1/locations");
    println!("  features      {url}/v1/users/{{id}}/features  {url}/v1/users/{{id}}/segment  {url}/v1/products/{{id}}/features  {url}/v1/segments");
    println!(
        "  event log     {}   (lusso query \"SELECT type, count(*) FROM events GROUP BY type\")",
        log.describe()
    );
    println!("  simulator     {users} shoppers, {rate} events/s, seed {seed}, posting to {url}/v1/events");
    println!("Press Ctrl-C to stop.");
    println!(
        "  storefront    home_hero decisions at 4/s, clicks drawn with the simulator's true CTRs"
    );
    if let Some(b) = running.bandits.clone() {
        let (url, token) = (url.clone(), shutdown.clone());
        let key = demo_keys.publishable_key.clone();
        tokio::spawn(crate::bandits_role::demo_storefront(
            b, url, key, seed, token,
        ));
    }
    println!("  shopper       buys a recommended product every 20 s with the fake provider and downloads its e-invoice (logged)");
    {
        let (url, token) = (url.clone(), shutdown.clone());
        tokio::spawn(crate::commerce_role::demo_shopper(
            url,
            demo_keys.clone(),
            Duration::from_secs(20),
            token,
        ));
    }
    let mut sim_args = crate::simulate::SimulateArgs::for_demo(users, rate, seed, url);
    sim_args.key = Some(demo_keys.publishable_key.clone());
    let sim_token = shutdown.clone();
    let sim = tokio::spawn(async move {
        // Give the listener a moment; the simulator retries anyway.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::select! {
            r = crate::simulate::run(sim_args) => if let Err(e) = r { tracing::error!(error = %e, "simulator stopped"); },
            _ = sim_token.cancelled() => {}
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    sim.abort();
    for t in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(())
}

/// Runs the sink over an embedded bus until every produced event is committed to `log`.
pub(crate) async fn drain_embedded(
    bus: MemoryBus,
    log: Arc<dyn EventLog>,
    topic: &str,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let cfg = SinkConfig {
        events_topic: topic.to_string(),
        flush_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let group = cfg.group.clone();
    let sink_bus: Arc<dyn EventBus> = Arc::new(bus.clone());
    let task = tokio::spawn(sink::run(sink_bus, log, cfg, Metrics::new(), token.clone()));
    while bus.lag(topic, &group) > 0 {
        if task.is_finished() {
            anyhow::bail!("sink stopped before the import was written");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    task.await??;
    Ok(())
}
