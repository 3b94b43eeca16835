//! The serving role: recommendations, rules, prices and experiments over the feature store and the model
//! registry, with its reload loops and impression queue; in the demo it also seeds rules and an experiment
//! and trains a first model when the registry has none.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use features::api::FeaturesApi;
use pipelines::bus::EventBus;
use pipelines::config::BackendConfig;
use pipelines::log::EventLog;
use pipelines::topics;
use serving::impressions::{self, Impressions};
use serving::lookups::Lookups;
use serving::metrics::ServingMetrics;
use serving::models::Models;
use serving::pricing::PriceBook;
use serving::{Serving, ServingConfig, ServingParts, Stores};
use tokio_util::sync::CancellationToken;

/// The role's router and background tasks.
pub(crate) struct ServingRole {
    pub(crate) router: Router,
    /// The running service (its price book is the checkout's price list).
    pub(crate) service: Serving,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts serving over `features` (the store it reads shoppers and products from).
pub(crate) async fn start(
    config: &BackendConfig,
    bus: Arc<dyn EventBus>,
    log: Option<Arc<dyn EventLog>>,
    features: FeaturesApi,
    registry: &prometheus::Registry,
    seed_demo: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<ServingRole> {
    let cfg = ServingConfig::from_env()?;
    let processor = features.processor().clone();
    let catalog = processor.context().catalog.clone();
    let model_registry = crate::train_cmd::open_registry(config, None)?;
    let models = Arc::new(Models::new(
        Some(model_registry.clone()),
        catalog.clone(),
        cfg.extra_models_max,
    ));
    if let Err(e) = models.refresh().await {
        tracing::warn!(error = %e, "no model loaded at start; serving from the fallbacks");
    }
    let stores = Stores::open(config.database_url.as_deref())
        .await
        .context("opening the serving stores (LUSSO_DATABASE_URL)")?;
    let metrics = ServingMetrics::new(registry);
    let (impressions, queue) = Impressions::new(cfg.impression_queue, metrics.clone());
    let lookups = Lookups::new(
        processor,
        cfg.features_timeout(),
        cfg.cache_ttl(),
        cfg.stock_cache_max,
    );
    let service = Serving::new(ServingParts {
        prices: PriceBook::new(catalog.clone(), PriceBook::default_markets())?,
        config: cfg,
        catalog,
        models,
        lookups,
        stores,
        impressions,
        metrics: metrics.clone(),
        log,
    });
    if seed_demo {
        crate::serving_demo::seed(&service).await;
    }
    service
        .reload(true)
        .await
        .context("loading rules, experiments and prices")?;
    let mut tasks = Vec::new();
    let topic = config.topic(topics::EVENTS);
    tasks.push(tokio::spawn(impressions::run(
        queue,
        bus,
        topic,
        metrics,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(service.clone().run_reloader(shutdown.clone())));
    if seed_demo {
        let (config, token) = (config.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                r = crate::serving_demo::train_if_missing(config) => if let Err(e) = r {
                    tracing::warn!(error = %e, "demo model not trained; recommendations use the fallbacks");
                },
                _ = token.cancelled() => {}
            }
        }));
    }
    Ok(ServingRole {
        router: serving::api::app(service.clone()),
        service,
        tasks,
    })
}
