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
    pub(crate) service: Bandits,
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
        router: bandits::api::app(service.clone())
            .merge(bandits::dashboard::routes(service.clone())),
        tasks,
        service,
    })
}

/// The demo's storefront for the hero banner: 4 decisions a second for shoppers drawn with the simulator's
/// session shares per segment; each banner is clicked with the simulator's true CTR for (segment, arm), and
/// the click goes through the collector like a real storefront's, so the whole loop (bus, reward joiner,
/// ledger, dashboard) runs.
pub(crate) async fn demo_storefront(
    service: Bandits,
    url: String,
    publishable_key: String,
    seed: u64,
    shutdown: CancellationToken,
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6865_726f);
    let http = match crate::access::http_client(
        Some(&publishable_key),
        std::time::Duration::from_secs(30),
    ) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "demo storefront: no HTTP client");
            return;
        }
    };
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {},
            _ = shutdown.cancelled() => return,
        }
        n += 1;
        let segment = bandits::sim::sample_segment(&mut rng);
        let shopper = format!("demo-hero-{}", n % 5_000);
        let req = bandits::service::DecideRequest {
            slot: pipelines::sim::HOME_HERO_SLOT.to_string(),
            user_id: None,
            anonymous_id: Some(shopper.clone()),
            context: bandits::context::ContextInput {
                segment: Some(segment.label().to_string()),
                device: Some(["mobile", "desktop", "app"][rng.random_range(0..3)].to_string()),
                ..Default::default()
            },
        };
        let d = match service.decide(req).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "demo storefront: no decision");
                continue;
            }
        };
        let ctr = pipelines::sim::true_banner_ctr(segment, &d.arm_id).unwrap_or(0.0);
        if !rng.random_bool(ctr) {
            continue;
        }
        let click = serde_json::json!({"events": [{
            "event_id": uuid::Uuid::new_v4(), "type": "banner_click",
            "ts": chrono::Utc::now().to_rfc3339(), "anonymous_id": shopper,
            "properties": {"decision_id": d.decision_id, "arm_id": d.arm_id}}]});
        if let Err(e) = http
            .post(format!("{url}/v1/events"))
            .json(&click)
            .send()
            .await
        {
            tracing::debug!(error = %e, "demo storefront: click not posted");
        }
    }
}
