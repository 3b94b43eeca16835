//! The serving state every request reads, and the loops that keep it current.
//!
//! Rules, experiments and price overrides live in durable stores (PostgreSQL when `LUSSO_DATABASE_URL` is
//! set, else in memory). Each replica keeps a snapshot (`Arc` swapped under a short lock) and re-reads a
//! store when its revision moves, polled every `reload_poll_ms` (500 ms): a change made through any replica
//! is live on every replica within one poll plus the read, well under the 1 s promise. A write through this
//! replica reloads at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use pipelines::catalog::Catalog;
use pipelines::log::EventLog;
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogIndex;
use crate::config::ServingConfig;
use crate::experiments::postgres::PgExperimentStore;
use crate::experiments::store::{ExperimentStore, MemoryExperimentStore};
use crate::experiments::Experiment;
use crate::impressions::Impressions;
use crate::lookups::Lookups;
use crate::metrics::ServingMetrics;
use crate::models::Models;
use crate::pricing::postgres::PgOverrideStore;
use crate::pricing::store::{MemoryOverrideStore, OverrideStore};
use crate::pricing::PriceBook;
use crate::rules::postgres::PgRuleStore;
use crate::rules::store::{MemoryRuleStore, RuleStore};
use crate::rules::Rule;
use crate::Result;

/// The durable stores.
#[derive(Clone)]
pub struct Stores {
    pub rules: Arc<dyn RuleStore>,
    pub experiments: Arc<dyn ExperimentStore>,
    pub overrides: Arc<dyn OverrideStore>,
}

impl Stores {
    /// In-memory stores (embedded mode, one process).
    pub fn memory() -> Stores {
        Stores {
            rules: Arc::new(MemoryRuleStore::new()),
            experiments: Arc::new(MemoryExperimentStore::new()),
            overrides: Arc::new(MemoryOverrideStore::new()),
        }
    }

    /// PostgreSQL stores on `url` (one pool), or memory when `None`.
    pub async fn open(database_url: Option<&str>) -> Result<Stores> {
        let Some(url) = database_url else {
            return Ok(Stores::memory());
        };
        let pool = crate::pg::connect(url).await?;
        Ok(Stores {
            rules: Arc::new(PgRuleStore::new(pool.clone()).await?),
            experiments: Arc::new(PgExperimentStore::new(pool.clone()).await?),
            overrides: Arc::new(PgOverrideStore::new(pool).await?),
        })
    }
}

/// What [`Serving::new`] is built from.
pub struct ServingParts {
    pub config: ServingConfig,
    pub catalog: Arc<Catalog>,
    pub models: Arc<Models>,
    pub lookups: Lookups,
    pub stores: Stores,
    pub prices: PriceBook,
    pub impressions: Impressions,
    pub metrics: ServingMetrics,
    /// The event log experiment results are computed from (`None`: results unavailable).
    pub log: Option<Arc<dyn EventLog>>,
}

pub(crate) struct Inner {
    pub(crate) config: ServingConfig,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) models: Arc<Models>,
    pub(crate) lookups: Lookups,
    pub(crate) stores: Stores,
    pub(crate) prices: PriceBook,
    pub(crate) impressions: Impressions,
    pub(crate) metrics: ServingMetrics,
    pub(crate) log: Option<Arc<dyn EventLog>>,
    /// What the request's filters read of `catalog`, by position.
    catalog_index: CatalogIndex,
    rules: RwLock<Arc<Vec<Rule>>>,
    rules_rev: AtomicI64,
    experiments: RwLock<Arc<Vec<Experiment>>>,
    experiments_rev: AtomicI64,
    overrides_rev: AtomicI64,
    /// Experiment results (a scan of the log) run one at a time; identical requests share the run.
    pub(crate) results_flight: pipelines::http::flight::SingleFlight<serde_json::Value>,
}

/// The serving service (cheap to clone).
#[derive(Clone)]
pub struct Serving {
    pub(crate) inner: Arc<Inner>,
}

impl Serving {
    pub fn new(p: ServingParts) -> Serving {
        Serving {
            inner: Arc::new(Inner {
                config: p.config,
                catalog_index: CatalogIndex::new(&p.catalog),
                catalog: p.catalog,
                models: p.models,
                lookups: p.lookups,
                stores: p.stores,
                prices: p.prices,
                impressions: p.impressions,
                metrics: p.metrics,
                log: p.log,
                rules: RwLock::new(Arc::new(Vec::new())),
                rules_rev: AtomicI64::new(-1),
                experiments: RwLock::new(Arc::new(Vec::new())),
                experiments_rev: AtomicI64::new(-1),
                overrides_rev: AtomicI64::new(-1),
                results_flight: pipelines::http::flight::SingleFlight::new("experiment report"),
            }),
        }
    }

    pub fn config(&self) -> &ServingConfig {
        &self.inner.config
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// What the request's filters read of the catalogue, by position.
    pub fn catalog_index(&self) -> &CatalogIndex {
        &self.inner.catalog_index
    }

    pub fn models(&self) -> &Arc<Models> {
        &self.inner.models
    }

    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    pub fn prices(&self) -> &PriceBook {
        &self.inner.prices
    }

    pub fn metrics(&self) -> &ServingMetrics {
        &self.inner.metrics
    }

    pub fn lookups(&self) -> &Lookups {
        &self.inner.lookups
    }

    pub fn log(&self) -> Option<&Arc<dyn EventLog>> {
        self.inner.log.as_ref()
    }

    pub(crate) fn impressions(&self) -> &Impressions {
        &self.inner.impressions
    }

    /// The rules now (all of them; the engine picks the matching ones).
    pub fn rules(&self) -> Arc<Vec<Rule>> {
        self.inner
            .rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The experiments now.
    pub fn experiments(&self) -> Arc<Vec<Experiment>> {
        self.inner
            .experiments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads every store whose revision moved since the last read (`force`: re-read regardless).
    pub async fn reload(&self, force: bool) -> Result<()> {
        let i = &self.inner;
        let rev = i.stores.rules.revision().await?;
        if force || rev != i.rules_rev.load(Ordering::Acquire) {
            let mut rules = i.stores.rules.list().await?;
            rules.sort_by(|a, b| {
                b.input
                    .priority
                    .cmp(&a.input.priority)
                    .then(a.id.cmp(&b.id))
            });
            i.metrics.rules_loaded.set(rules.len() as i64);
            *i.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
            i.rules_rev.store(rev, Ordering::Release);
            i.metrics.rules_reloads.inc();
        }
        let rev = i.stores.experiments.revision().await?;
        if force || rev != i.experiments_rev.load(Ordering::Acquire) {
            let list = i.stores.experiments.list().await?;
            let versions: Vec<String> = list
                .iter()
                .flat_map(|e| e.variants.iter().filter_map(|v| v.model_version.clone()))
                .collect();
            *i.experiments.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
            i.experiments_rev.store(rev, Ordering::Release);
            if let Err(e) = i.models.preload(&versions).await {
                tracing::warn!(error = %e, "a model version an experiment routes to cannot be loaded");
            }
        }
        let rev = i.stores.overrides.revision().await?;
        if force || rev != i.overrides_rev.load(Ordering::Acquire) {
            i.prices.set_overrides(i.stores.overrides.list().await?);
            i.overrides_rev.store(rev, Ordering::Release);
        }
        Ok(())
    }

    /// Polls the stores every `reload_poll_ms` and the registry every `model_poll_ms` until cancelled.
    pub async fn run_reloader(self, shutdown: CancellationToken) {
        let models = self.inner.models.clone();
        let every = std::time::Duration::from_millis(self.inner.config.model_poll_ms);
        let (metrics, token) = (self.inner.metrics.clone(), shutdown.clone());
        let model_task = tokio::spawn(async move {
            loop {
                match models.refresh().await {
                    Ok(true) => metrics.model_swaps.inc(),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "model reload failed; the previous model keeps serving")
                    }
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
        let poll = std::time::Duration::from_millis(self.inner.config.reload_poll_ms);
        loop {
            if let Err(e) = self.reload(false).await {
                tracing::warn!(error = %e, "rules / experiments / overrides not reloaded; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
            }
        }
        let _ = model_task.await;
    }
}
