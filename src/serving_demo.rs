//! What `lusso demo` seeds for serving: two merchandising rules, a rule set for an A/B experiment, the
//! experiment itself, and a first model (trained on the built-in simulator and promoted, so the hot reload
//! is visible: the storefront starts on the fallbacks and switches to the model a few seconds later).

use pipelines::config::BackendConfig;
use serving::experiments::ExperimentInput;
use serving::rules::RuleInput;
use serving::Serving;
use training::eval::SplitSpec;
use training::job::{self, Source, TrainSpec};

/// The demo's rules (JSON as a merchandiser would post them).
fn demo_rules() -> Vec<serde_json::Value> {
    serde_json::json!([
        {"name": "High-Value Returning: Capsule Venezia above the fold", "priority": 100,
         "conditions": {"segment": ["High-Value Returning"], "placement": ["home"]},
         "actions": [{"type": "pin_collection", "collection": "CAPSULE-VENEZIA", "above_the_fold": 3}]},
        {"name": "New shoppers: sale items lower", "priority": 50,
         "conditions": {"segment": ["New"]},
         "actions": [{"type": "bury", "attribute": "on_sale", "value": "true", "factor": 2.0}]},
        {"name": "UK and Switzerland: at most 2 per category", "priority": 10,
         "conditions": {"market": ["GB", "CH"]},
         "actions": [{"type": "quota", "attribute": "category", "max": 2}]},
        {"name": "Experiment B: new-in first", "priority": 60, "rule_set": "new_in_first",
         "conditions": {"placement": ["home"]},
         "actions": [{"type": "pin_collection", "collection": "SS27", "positions": [1, 2]}]}
    ])
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// Creates the demo rules and experiment when the stores have none (another replica may race: harmless).
pub(crate) async fn seed(serving: &Serving) {
    let stores = serving.stores();
    if stores
        .rules
        .list()
        .await
        .map(|r| r.is_empty())
        .unwrap_or(false)
    {
        for v in demo_rules() {
            let input: RuleInput = match serde_json::from_value(v) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(error = %e, "demo rule does not parse");
                    continue;
                }
            };
            if let Err(e) = input.validate(serving.catalog()) {
                tracing::warn!(error = %e, "demo rule rejected");
                continue;
            }
            if let Err(e) = stores.rules.create(input, "demo").await {
                tracing::warn!(error = %e, "demo rule not stored");
            }
        }
    }
    if stores
        .experiments
        .list()
        .await
        .map(|e| e.is_empty())
        .unwrap_or(false)
    {
        let exp = serde_json::json!({
            "key": "home_new_in_first", "name": "Home: new-in collection first vs. model order",
            "status": "running", "traffic": 1.0, "placements": ["home"],
            "variants": [{"key": "control", "weight": 0.5},
                         {"key": "new_in_first", "weight": 0.5, "rule_set": "new_in_first"}]
        });
        match serde_json::from_value::<ExperimentInput>(exp) {
            Ok(input) => {
                if let Err(e) = serving::experiments::validate(&input) {
                    tracing::warn!(error = %e, "demo experiment rejected");
                } else if let Err(e) = stores.experiments.create(input, "demo").await {
                    tracing::warn!(error = %e, "demo experiment not stored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "demo experiment does not parse"),
        }
    }
}

/// Trains ALS on the built-in simulator and promotes it when the registry has no promoted model.
pub(crate) async fn train_if_missing(config: BackendConfig) -> anyhow::Result<()> {
    let registry = crate::train_cmd::open_registry(&config, None)?;
    if registry.state()?.promoted.is_some() {
        return Ok(());
    }
    let spec = TrainSpec {
        split: SplitSpec::None,
        ..TrainSpec::default()
    };
    let source = Source::Sim {
        users: 2_000,
        days: 60,
        seed: 42,
    };
    let seed = config.catalog_seed;
    let handle = tokio::runtime::Handle::current();
    // The simulator and the solver are CPU work: both on the blocking pool (the progress callbacks are not
    // `Send`, so the whole job runs there).
    let trained = tokio::task::spawn_blocking(move || {
        let (data, name) = handle.block_on(job::load(&source, None, seed, &spec, &mut |_| {}))?;
        job::train(data, name, &spec, &mut |_| {})
    })
    .await??;
    let meta = registry.register(&trained.model, trained.meta)?;
    registry.promote(&meta.version)?;
    tracing::info!(version = %meta.version, "demo model trained and promoted; serving swaps it in");
    Ok(())
}
