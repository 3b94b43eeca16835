//! The bandits role: the service over its store, the reward joiner, the decision outbox, housekeeping,
//! and the API + dashboard routes.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use bandits::joiner;
use bandits::metrics::BanditMetrics;
use bandits::service::{Bandits, BanditsConfig, SystemClock};
use bandits::slot::{Arm, PolicySpec, RewardSpec, Slot};
use features::api::FeaturesApi;
use pipelines::bus::EventBus;
use pipelines::config::BackendConfig;
use pipelines::log::EventLog;
use pipelines::topics;
use tokio_util::sync::CancellationToken;

/// The role's router and background tasks.
pub(crate) struct BanditsRole {
    pub(crate) router: Router,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The demo's `home_hero` slot: the simulator's five banners, Thompson sampling per segment.
pub(crate) fn demo_slot() -> Slot {
    Slot {
        slot: pipelines::sim::HOME_HERO_SLOT.to_string(),
        version: 0,
        policy: PolicySpec::default(),
        reward: RewardSpec::default(),
        traffic_floor: 0.02,
        sticky: false,
        forced: Default::default(),
        arms: pipelines::sim::home_hero_arms()
            .into_iter()
            .map(|a| Arm {
                arm_id: a.arm_id,
                creative_url: a.creative_url,
                collection_id: a.collection_id,
                campaign_start: Some(a.campaign_start),
                campaign_end: Some(a.campaign_end),
                paused: false,
                traffic_floor: None,
                prior: None,
            })
            .collect(),
    }
}

/// Starts the bandit service; `seed_demo` creates the `home_hero` slot when it does not exist.
pub(crate) async fn start(
    config: &BackendConfig,
    bus: Arc<dyn EventBus>,
    log: Option<Arc<dyn EventLog>>,
    features: Option<FeaturesApi>,
    registry: &prometheus::Registry,
    seed_demo: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<BanditsRole> {
    let store = bandits::store::open(config.database_url.as_deref())
        .await
        .context("opening the bandit store (LUSSO_DATABASE_URL)")?;
    tracing::info!(store = %store.describe(), "bandits store");
    let service = Bandits::new(
        store,
        features,
        Arc::new(SystemClock),
        BanditMetrics::new(registry),
        BanditsConfig::from_env()?,
    );
    service.sync().await.context("loading bandit state")?;
    if seed_demo && service.model(pipelines::sim::HOME_HERO_SLOT).is_none() {
        if let Err(e) = service.create_slot(demo_slot(), "demo").await {
            // Another replica may have created it at the same moment.
            tracing::info!(error = %e, "demo slot not created");
        }
    }
    let decisions_topic = config.topic(topics::DECISIONS);
    if let Err(e) = bus
        .ensure_topic(&decisions_topic, topics::default_partitions())
        .await
    {
        tracing::warn!(error = %e, "cannot create the decisions topic yet; the publisher retries");
    }
    let mut tasks = Vec::new();
    let (b, bus2, token) = (service.clone(), bus.clone(), shutdown.clone());
    let events_topic = config.topic(topics::EVENTS);
    tasks.push(tokio::spawn(async move {
        if let Err(e) = joiner::run_joiner(b, bus2, events_topic, token).await {
            tracing::error!(error = %e, "reward joiner stopped with an error");
        }
    }));
    tasks.push(tokio::spawn(joiner::run_publisher(
        service.clone(),
        bus,
        log,
        decisions_topic,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(joiner::run_housekeeping(
        service.clone(),
        shutdown,
    )));
    Ok(BanditsRole {
        router: bandits::api::app(service.clone()).merge(bandits::dashboard::routes(service)),
        tasks,
    })
}
