//! `GET /v1/recommendations`, `GET /v1/products/{id}/similar` and the rules preview: one pipeline.
//!
//! 1. **Shopper**: features read under a deadline (degrades to "unknown" when the store is slow or down).
//! 2. **Experiments**: running experiments covering the placement assign the unit (sticky hash); a variant
//!    may route to another model version (if loaded) and rule set. Exposures are logged.
//! 3. **Candidates** (pool `3n + 20`, `6n + 40` with a size filter, ≤ 400): trained vector → fold-in from recent
//!    purchases and views → session (viewed products: item factors + co-view) → segment popularity → global
//!    popularity (store, else the model's) → catalogue. Short lists are filled down the same chain.
//! 4. **Filters** (never bypassed, see [`filters`]), **diversity** (placement default or `diversity=`),
//!    **rules** (the engine, with the filters as its eligibility), a final stock check of what rules added.
//! 5. **Prices** in the shopper's market, and a `rec_impression` event queued without waiting.

pub mod candidates;
pub mod diversity;
pub mod filters;
pub mod request;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use pipelines::event::{Device, Event, Properties, RecImpression};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::experiments::{assign, exposure_event};
use crate::models::LoadedModel;
use crate::rules::engine::{self, Applied, Candidate, Inputs, RuleContext};
use crate::rules::Rule;
use crate::service::Serving;
use crate::{Error, Result};
use candidates::{Eligible, Source};
use filters::Filters;
use request::{Diversity, RecRequest};

/// A price as shown next to a recommended item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemPrice {
    pub amount: f64,
    pub currency: String,
    /// The undiscounted price when the product is on sale.
    pub compare_at: Option<f64>,
}

/// One recommended product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecItem {
    pub product_id: String,
    pub score: f32,
    /// Why it is here: `model`, `fold_in`, `similar`, `co_view`, `segment_popularity`, `global_popularity`,
    /// `catalogue`, `fallback:<source>` (a short list filled), `rule:<name>`.
    pub reasons: Vec<String>,
    /// In the response's market (absent when the market is not priced).
    pub price: Option<ItemPrice>,
}

/// The recommendations response (contract in ARCHITECTURE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recommendations {
    pub request_id: Uuid,
    /// The model version that produced the candidates (`null`: no model).
    pub model_version: Option<String>,
    pub segment: String,
    pub market: String,
    pub placement: String,
    /// `null` when the model (or fold-in / session) produced the head of the list, else the fallback used:
    /// `segment_popularity`, `global_popularity`, `catalogue`.
    pub fallback: Option<String>,
    /// Dependencies that could not be used for this answer (`features`, `model`).
    pub degraded: Vec<String>,
    /// Experiment key → variant, for the experiments this request was enrolled in.
    pub experiments: BTreeMap<String, String>,
    pub items: Vec<RecItem>,
}

/// What the pipeline produced, before it becomes a response.
pub(crate) struct Outcome {
    pub(crate) request_id: Uuid,
    pub(crate) model_version: Option<String>,
    pub(crate) segment: String,
    pub(crate) market: String,
    pub(crate) source: Source,
    pub(crate) degraded: Vec<String>,
    pub(crate) experiments: BTreeMap<String, String>,
    /// The list before rules (after filters and diversity), at most `n`.
    pub(crate) before: Vec<Candidate>,
    pub(crate) after: Vec<Candidate>,
    pub(crate) applied: Vec<Applied>,
}

/// Extra knobs of the preview.
#[derive(Default)]
pub(crate) struct Options {
    /// Rules to apply instead of the stored ones (a draft being previewed).
    pub(crate) rules: Option<Vec<Rule>>,
    /// Skip exposure and impression logging (previews are not shown to shoppers).
    pub(crate) silent: bool,
}

impl Serving {
    /// Recommendations for a validated request. Errors only for the caller's input (unknown market for
    /// pricing); a missing dependency degrades the answer instead.
    pub async fn recommend(&self, req: &RecRequest) -> Result<Recommendations> {
        let timer = self
            .metrics()
            .latency
            .with_label_values(&["recommendations"])
            .start_timer();
        let out = self.pipeline(req, Options::default()).await?;
        let r = self.respond(req, out);
        timer.observe_duration();
        r
    }

    /// Items similar to `product_id` (item factors + co-view; popularity fallback).
    pub async fn similar(&self, product_id: &str, mut req: RecRequest) -> Result<Recommendations> {
        let timer = self
            .metrics()
            .latency
            .with_label_values(&["similar"])
            .start_timer();
        if self.catalog().product(product_id).is_none() {
            return Err(Error::NotFound(format!(
                "product `{product_id}` is not in the catalogue"
            )));
        }
        req.placement = "pdp".into();
        req.context_products = vec![product_id.to_string()];
        let out = self.pipeline(&req, Options::default()).await?;
        let r = self.respond(&req, out);
        timer.observe_duration();
        r
    }

    pub(crate) fn check_market(&self, market: &str) -> Result<()> {
        if self.prices().markets().iter().any(|m| m.market == market) {
            Ok(())
        } else {
            let known: Vec<&str> = self
                .prices()
                .markets()
                .iter()
                .map(|m| m.market.as_str())
                .collect();
            Err(Error::bad(
                "market",
                format!(
                    "`{market}` has no price list (priced markets: {})",
                    known.join(", ")
                ),
            ))
        }
    }

    fn respond(&self, req: &RecRequest, out: Outcome) -> Result<Recommendations> {
        let items: Vec<RecItem> = out
            .after
            .into_iter()
            .map(|c| {
                let price = self
                    .prices()
                    .price(&c.product_id, &out.market)
                    .ok()
                    .map(|p| ItemPrice {
                        amount: p.amount,
                        currency: p.currency.clone(),
                        compare_at: p.compare_at,
                    });
                RecItem {
                    product_id: c.product_id,
                    score: c.score,
                    reasons: c.reasons,
                    price,
                }
            })
            .collect();
        let resp = Recommendations {
            request_id: out.request_id,
            model_version: out.model_version,
            segment: out.segment,
            market: out.market,
            placement: req.placement.clone(),
            fallback: out.source.fallback().map(str::to_string),
            degraded: out.degraded,
            experiments: out.experiments,
            items,
        };
        self.metrics()
            .sources
            .with_label_values(&[out.source.as_str()])
            .inc();
        for d in &resp.degraded {
            self.metrics()
                .degraded
                .with_label_values(&[d.as_str()])
                .inc();
        }
        if let Some(e) = impression_event(req, &resp, Utc::now()) {
            self.impressions().offer(e);
        }
        Ok(resp)
    }

    pub(crate) async fn pipeline(&self, req: &RecRequest, opts: Options) -> Result<Outcome> {
        let now = Utc::now();
        let cfg = self.config();
        if let Some(m) = &req.market {
            self.check_market(m)?;
        }
        let mut degraded = Vec::new();
        let shopper = match req.unit() {
            None => None,
            Some(u) => match self.lookups().shopper(u).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(error = %e, "serving without the shopper's features");
                    degraded.push("features".to_string());
                    None
                }
            },
        };
        let segment = req
            .segment
            .clone()
            .or_else(|| shopper.as_ref().map(|f| f.segment.clone()))
            .unwrap_or_else(|| {
                if degraded.is_empty() {
                    "New"
                } else {
                    "Unknown"
                }
                .to_string()
            });
        let market = req
            .market
            .clone()
            .or_else(|| {
                shopper
                    .as_ref()
                    .and_then(|f| f.market.clone())
                    .filter(|m| self.check_market(m).is_ok())
            })
            .unwrap_or_else(|| cfg.default_market.clone());
        let device = req
            .device
            .clone()
            .or_else(|| shopper.as_ref().and_then(|f| f.device.clone()));

        // Experiments: sticky assignment of the unit; a variant may route the model and the rule set.
        let mut variants = BTreeMap::new();
        let (mut model_version, mut rule_set) = (None, None);
        if let Some(unit) = req.unit() {
            for exp in self.experiments().iter() {
                if !exp.applies_to(&req.placement) {
                    continue;
                }
                let a = assign(exp, unit);
                let Some(v) = a.variant.clone() else { continue };
                if model_version.is_none() {
                    model_version = a.model_version.clone();
                }
                if rule_set.is_none() {
                    rule_set = a.rule_set.clone();
                }
                if !opts.silent {
                    if let Some(e) = exposure_event(
                        &a,
                        req.user_id.as_deref(),
                        req.anonymous_id.as_deref(),
                        Some(&market),
                        now,
                    ) {
                        self.impressions().offer(e);
                    }
                }
                variants.insert(exp.key.clone(), v);
            }
        }
        let model = model_version
            .as_deref()
            .and_then(|v| self.models().loaded(v))
            .or_else(|| self.models().current());
        if model.is_none() {
            degraded.push("model".to_string());
        }

        // Filters: the caller's exclusions, purchases (per placement), the page's own products.
        let placement = cfg.placement(&req.placement);
        let mut exclude: Vec<String> = req.exclude.clone();
        exclude.extend(req.context_products.iter().cloned());
        if placement.exclude_purchased {
            if let Some(f) = &shopper {
                exclude.extend(f.last_purchased.iter().cloned());
            }
        }
        let catalog = self.catalog().clone();
        let mut filters = Filters::new(&catalog, self.catalog_index(), exclude, req.size.clone());
        let pool = if req.size.is_some() {
            6 * req.n + 40
        } else {
            3 * req.n + 20
        }
        .min(400);

        let (mut list, source) = self
            .generate(
                req,
                shopper.as_ref(),
                &segment,
                model.as_deref(),
                &mut filters,
                pool,
            )
            .await;
        list = filters.keep_in_stock(self.lookups(), list).await;
        if list.len() < pool {
            self.fill(
                &mut list,
                &segment,
                model.as_deref(),
                &mut filters,
                pool,
                source,
            )
            .await;
        }

        // Diversity: the request's choice, else the placement's default.
        let diversity = req.diversity.clone().unwrap_or_else(|| {
            match (placement.mmr_lambda, placement.max_per_category) {
                (Some(lambda), _) => Diversity::Mmr { lambda },
                (None, Some(max)) => Diversity::PerAttribute {
                    attribute: "category".into(),
                    max,
                },
                (None, None) => Diversity::None,
            }
        });
        list = match diversity {
            Diversity::None => list,
            Diversity::PerAttribute { attribute, max } => {
                diversity::per_attribute(list, &catalog, &attribute, max)
            }
            Diversity::Mmr { lambda } => diversity::mmr(list, model.as_deref(), lambda, req.n),
        };
        let before: Vec<Candidate> = list.iter().take(req.n).cloned().collect();

        // Rules, with the filters as eligibility so that no pin brings back a filtered product.
        let stored;
        let rules: &[Rule] = match &opts.rules {
            Some(r) => r,
            None => {
                stored = self.rules();
                &stored
            }
        };
        let rule_set = rule_set.unwrap_or_else(|| "default".to_string());
        let ctx = RuleContext {
            segment: &segment,
            market: &market,
            placement: &req.placement,
            device: device.as_deref(),
            variants: &variants,
            rule_set: &rule_set,
            now,
        };
        // Pinned products are read before the rules run so their stock is known.
        let pins: Vec<&str> = engine::matching(rules, &ctx)
            .iter()
            .flat_map(|r| r.input.actions.iter())
            .filter_map(|a| match a {
                crate::rules::Action::Pin { product_id, .. } => Some(product_id.as_str()),
                _ => None,
            })
            .collect();
        if filters.size.is_some() && !pins.is_empty() {
            filters.read_views(self.lookups(), pins.into_iter()).await;
        }
        let popularity = |p: &str| -> f64 { model.as_deref().map_or(0.0, |m| m.popularity(p)) };
        let ranking = |c: &str| match model.as_deref() {
            Some(m) => m.collection_ranking(&catalog, c),
            None => engine::rank_collection(&catalog, c, &popularity),
        };
        let leftovers: Vec<Candidate> = list.iter().skip(req.n).cloned().collect();
        let (mut after, mut applied) = {
            let eligible = |p: &str| filters.eligible(p);
            let inputs = Inputs {
                catalog: &catalog,
                eligible: &eligible,
                popularity: &popularity,
                ranking: Some(&ranking),
            };
            engine::apply(rules, &ctx, &inputs, list, req.n)
        };
        // Collection pins may have added products whose stock view was not read: check them now.
        if filters.size.is_some() {
            filters
                .read_views(self.lookups(), after.iter().map(|c| c.product_id.as_str()))
                .await;
            let dropped: Vec<String> = after
                .iter()
                .filter(|c| !filters.in_stock(&c.product_id))
                .map(|c| c.product_id.clone())
                .collect();
            if !dropped.is_empty() {
                after.retain(|c| !dropped.contains(&c.product_id));
                applied.retain(|a| !dropped.contains(&a.product_id));
                let have: HashSet<String> = after.iter().map(|c| c.product_id.clone()).collect();
                let refill = leftovers
                    .into_iter()
                    .filter(|c| !have.contains(&c.product_id) && filters.eligible(&c.product_id));
                after.extend(refill.take(req.n.saturating_sub(after.len())));
            }
        }
        Ok(Outcome {
            request_id: Uuid::new_v4(),
            model_version: model.as_ref().map(|m| m.version().to_string()),
            segment,
            market,
            source,
            degraded,
            experiments: variants,
            before,
            after,
            applied,
        })
    }

    /// The head of the list and where it came from.
    async fn generate(
        &self,
        req: &RecRequest,
        shopper: Option<&crate::lookups::Shopper>,
        segment: &str,
        model: Option<&LoadedModel>,
        filters: &mut Filters<'_>,
        pool: usize,
    ) -> (Vec<Candidate>, Source) {
        let (id, at) = (|p: &str| filters.ok(p), |pos: usize| filters.ok_at(pos));
        let ok = Eligible { id: &id, at: &at };
        // Page products (pdp, cart) first: item-to-item is what those placements are for.
        let mut context: Vec<String> = req.context_products.clone();
        let mut source = Source::Session;
        if context.is_empty() {
            if let (Some(m), Some(u)) = (model, req.user_id.as_deref()) {
                if let Some(list) = candidates::from_user(m, u, pool, ok) {
                    return (list, Source::Model);
                }
            }
            if let (Some(m), Some(f)) = (model, shopper) {
                if !f.last_purchased.is_empty() {
                    if let Some(list) =
                        candidates::from_history(m, &f.last_viewed, &f.last_purchased, pool, ok)
                    {
                        return (list, Source::FoldIn);
                    }
                }
            }
            // Anonymous or browse-only: the session's viewed products.
            context = shopper
                .map(|f| {
                    f.last_viewed
                        .iter()
                        .take(candidates::FOLD_IN_ITEMS)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
        } else {
            source = Source::Session;
        }
        if !context.is_empty() {
            let look: Vec<&str> = context.iter().take(5).map(String::as_str).collect();
            let views = self.lookups().products(&look).await;
            let list = candidates::from_products(model, &context, &views, pool, ok);
            if !list.is_empty() {
                return (list, source);
            }
        }
        self.popular(segment, model, filters, pool).await
    }

    /// Segment popularity → global popularity (store, else the model's) → catalogue.
    async fn popular(
        &self,
        segment: &str,
        model: Option<&LoadedModel>,
        filters: &Filters<'_>,
        pool: usize,
    ) -> (Vec<Candidate>, Source) {
        let (id, at) = (|p: &str| filters.ok(p), |pos: usize| filters.ok_at(pos));
        let ok = Eligible { id: &id, at: &at };
        if let Some(list) = self
            .lookups()
            .popularity(&format!("segment:{segment}"))
            .await
        {
            let c = candidates::from_list(&list, pool, "segment_popularity", &id);
            if !c.is_empty() {
                return (c, Source::SegmentPopularity);
            }
        }
        if let Some(list) = self.lookups().popularity("global").await {
            let c = candidates::from_list(&list, pool, "global_popularity", &id);
            if !c.is_empty() {
                return (c, Source::GlobalPopularity);
            }
        }
        if let Some(m) = model {
            let c = candidates::from_model_popularity(m, pool, ok);
            if !c.is_empty() {
                return (c, Source::GlobalPopularity);
            }
        }
        (
            candidates::from_catalogue(filters.catalog, filters.index.newest_first(), pool, ok),
            Source::Catalogue,
        )
    }

    /// Tops up a short list down the fallback chain (items marked `fallback:<source>`).
    async fn fill(
        &self,
        list: &mut Vec<Candidate>,
        segment: &str,
        model: Option<&LoadedModel>,
        filters: &mut Filters<'_>,
        pool: usize,
        head: Source,
    ) {
        let mut have: foldhash::HashSet<String> =
            list.iter().map(|c| c.product_id.clone()).collect();
        for step in [
            Source::SegmentPopularity,
            Source::GlobalPopularity,
            Source::Catalogue,
        ] {
            if list.len() >= pool {
                return;
            }
            if step == head {
                continue;
            }
            let extra = {
                let id = |p: &str| filters.ok(p) && !have.contains(p);
                let at = |pos: usize| {
                    filters.ok_at(pos) && !have.contains(&filters.catalog.products()[pos].id)
                };
                let ok = Eligible { id: &id, at: &at };
                match step {
                    Source::SegmentPopularity => match self
                        .lookups()
                        .popularity(&format!("segment:{segment}"))
                        .await
                    {
                        Some(l) => candidates::from_list(&l, pool, "", &id),
                        None => Vec::new(),
                    },
                    Source::GlobalPopularity => match self.lookups().popularity("global").await {
                        Some(l) => candidates::from_list(&l, pool, "", &id),
                        None => model
                            .map(|m| candidates::from_model_popularity(m, pool, ok))
                            .unwrap_or_default(),
                    },
                    _ => candidates::from_catalogue(
                        filters.catalog,
                        filters.index.newest_first(),
                        pool,
                        ok,
                    ),
                }
            };
            let extra = filters.keep_in_stock(self.lookups(), extra).await;
            let floor = list.iter().map(|c| c.score).fold(f32::INFINITY, f32::min);
            for (rank, mut c) in extra.into_iter().enumerate() {
                if list.len() >= pool {
                    break;
                }
                have.insert(c.product_id.clone());
                // Below everything the head produced, in the fallback's own order.
                c.score = if floor.is_finite() {
                    floor - 1.0 - rank as f32
                } else {
                    -(rank as f32)
                };
                c.reasons = vec![format!("fallback:{}", step.as_str())];
                list.push(c);
            }
        }
    }
}

/// The `rec_impression` event of an answer (`None` without a shopper id: the contract needs one).
fn impression_event(req: &RecRequest, resp: &Recommendations, now: DateTime<Utc>) -> Option<Event> {
    req.unit()?;
    let mut extra = serde_json::Map::new();
    extra.insert("logged_by".into(), "serving".into());
    extra.insert("placement".into(), resp.placement.clone().into());
    extra.insert("segment".into(), resp.segment.clone().into());
    extra.insert(
        "model_version".into(),
        resp.model_version
            .clone()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
    );
    extra.insert(
        "fallback".into(),
        resp.fallback
            .clone()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
    );
    extra.insert(
        "experiments".into(),
        serde_json::to_value(&resp.experiments).unwrap_or_default(),
    );
    Some(Event {
        event_id: Uuid::new_v4(),
        ts: now,
        user_id: req.user_id.clone(),
        anonymous_id: req.anonymous_id.clone(),
        session_id: req.session_id.clone(),
        market: Some(resp.market.clone()),
        device: req.device.as_deref().and_then(Device::parse),
        received_at: Some(now),
        properties: Properties::RecImpression(RecImpression {
            request_id: resp.request_id.to_string(),
            product_ids: resp.items.iter().map(|i| i.product_id.clone()).collect(),
            extra,
        }),
    })
}
