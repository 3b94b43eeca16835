//! The bandit service: decisions, explicit rewards, slot administration, reports; replicas kept in step.
//!
//! Every replica holds the slots' models in memory and decides without a database round trip for the
//! policy. Writes go to the shared [`BanditStore`]: the decision (before the response), signals and ledger
//! steps, slot versions. [`Bandits::sync`] (every `sync_interval`, and after each local change) reloads
//! slot versions and applies new ledger entries in sequence order, so two replicas that have synced hold
//! identical numbers, and a restarted replica rebuilds exactly the state it lost.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use features::api::FeaturesApi;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::{ContextInput, StoredFeatures};
use crate::metrics::BanditMetrics;
use crate::policy::SlotModel;
use crate::report::{self, Candidate, OpeReport, SlotReport};
use crate::reward::{Applied, Decision, Signal, SignalKind};
use crate::slot::{AuditEntry, Slot};
use crate::store::BanditStore;
use crate::{ope, Error, Result};

/// Where "now" comes from (a seam so reward windows can be tested with a controlled clock).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set and advance.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<std::sync::Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(std::sync::Mutex::new(at)))
    }
    /// The clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn advance(&self, by: chrono::Duration) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        ManualClock::now(self)
    }
}

const fn default_sync_interval_ms() -> u64 {
    200
}
const fn default_expire_interval_ms() -> u64 {
    1000
}
const fn default_thompson_refresh_ms() -> u64 {
    // Fresh enough for banners (rewards arrive minutes after decisions); bounds the background cost to
    // one estimate per slot and segment per second.
    1000
}
const fn default_sticky_ttl_secs() -> u64 {
    // A web-analytics session.
    30 * 60
}

/// Service settings (`LUSSO_BANDITS_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanditsConfig {
    /// How often a replica applies new ledger entries and slot versions (default 200 ms).
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// How often closed reward windows are learned (default 1 s).
    #[serde(default = "default_expire_interval_ms")]
    pub expire_interval_ms: u64,
    /// A sticky session keeps its arm this long (default 1800 s).
    #[serde(default = "default_sticky_ttl_secs")]
    pub sticky_ttl_secs: u64,
    /// Thompson P(best) distributions are recomputed at most this often per slot (default 1000 ms).
    #[serde(default = "default_thompson_refresh_ms")]
    pub thompson_refresh_ms: u64,
}

impl Default for BanditsConfig {
    fn default() -> Self {
        BanditsConfig {
            sync_interval_ms: default_sync_interval_ms(),
            expire_interval_ms: default_expire_interval_ms(),
            sticky_ttl_secs: default_sticky_ttl_secs(),
            thompson_refresh_ms: default_thompson_refresh_ms(),
        }
    }
}

impl BanditsConfig {
    /// Defaults overridden by `LUSSO_BANDITS_SYNC_INTERVAL_MS`, `LUSSO_BANDITS_EXPIRE_INTERVAL_MS`,
    /// `LUSSO_BANDITS_STICKY_TTL_SECS`, `LUSSO_BANDITS_THOMPSON_REFRESH_MS`.
    pub fn from_env() -> Result<BanditsConfig> {
        let mut c = BanditsConfig::default();
        for (name, field) in [
            ("LUSSO_BANDITS_SYNC_INTERVAL_MS", &mut c.sync_interval_ms),
            (
                "LUSSO_BANDITS_EXPIRE_INTERVAL_MS",
                &mut c.expire_interval_ms,
            ),
            ("LUSSO_BANDITS_STICKY_TTL_SECS", &mut c.sticky_ttl_secs),
            (
                "LUSSO_BANDITS_THOMPSON_REFRESH_MS",
                &mut c.thompson_refresh_ms,
            ),
        ] {
            if let Ok(v) = std::env::var(name) {
                *field = v.trim().parse().map_err(|_| {
                    Error::bad(name.to_string(), format!("`{v}` is not a whole number"))
                })?;
                if *field == 0 {
                    return Err(Error::bad(name.to_string(), "must be at least 1"));
                }
            }
        }
        Ok(c)
    }

    pub fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.sync_interval_ms)
    }

    pub fn expire_interval(&self) -> Duration {
        Duration::from_millis(self.expire_interval_ms)
    }
}

/// `POST /v1/decisions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub slot: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub anonymous_id: Option<String>,
    #[serde(default)]
    pub context: ContextInput,
}

/// The answer to `POST /v1/decisions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DecideResponse {
    pub decision_id: Uuid,
    pub slot: String,
    pub arm_id: String,
    pub propensity: f64,
    pub policy: String,
    pub segment: String,
    pub creative_url: String,
    pub collection_id: String,
    /// `policy`, `forced` or `sticky`.
    pub reason: String,
}

/// A merchandiser's action (`POST /v1/slots/{slot}/actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Pause {
        arm_id: String,
    },
    Resume {
        arm_id: String,
    },
    /// `traffic_floor` = null returns the arm to the slot's default floor.
    Floor {
        arm_id: String,
        traffic_floor: Option<f64>,
    },
    Force {
        segment: String,
        arm_id: String,
    },
    Unforce {
        segment: String,
    },
}

/// The bandit service (cheap to clone; replicas are separate instances over one store).
#[derive(Clone)]
pub struct Bandits {
    store: Arc<dyn BanditStore>,
    models: Arc<RwLock<BTreeMap<String, SlotModel>>>,
    applied: Arc<tokio::sync::Mutex<u64>>,
    /// When each slot's Thompson distributions were last refreshed.
    refreshed: Arc<std::sync::Mutex<BTreeMap<String, std::time::Instant>>>,
    features: Option<FeaturesApi>,
    clock: Arc<dyn Clock>,
    metrics: BanditMetrics,
    config: BanditsConfig,
    /// Off-policy evaluations run one at a time; identical requests share the run.
    ope_flight: pipelines::http::flight::SingleFlight<serde_json::Value>,
}

fn check_id(field: &str, v: &Option<String>) -> Result<()> {
    match v {
        Some(s) if s.is_empty() || s.len() > 128 => {
            Err(Error::bad(field.to_string(), "must be 1–128 characters"))
        }
        _ => Ok(()),
    }
}

impl Bandits {
    pub fn new(
        store: Arc<dyn BanditStore>,
        features: Option<FeaturesApi>,
        clock: Arc<dyn Clock>,
        metrics: BanditMetrics,
        config: BanditsConfig,
    ) -> Bandits {
        Bandits {
            store,
            models: Arc::new(RwLock::new(BTreeMap::new())),
            applied: Arc::new(tokio::sync::Mutex::new(0)),
            refreshed: Arc::new(std::sync::Mutex::new(BTreeMap::new())),
            features,
            clock,
            metrics,
            config,
            ope_flight: pipelines::http::flight::SingleFlight::new("off-policy evaluation"),
        }
    }

    /// The single-flight gate of `GET /v1/bandits/{slot}/ope`.
    pub fn ope_flight(&self) -> &pipelines::http::flight::SingleFlight<serde_json::Value> {
        &self.ope_flight
    }

    pub fn store(&self) -> &Arc<dyn BanditStore> {
        &self.store
    }

    pub fn config(&self) -> &BanditsConfig {
        &self.config
    }

    pub fn metrics(&self) -> &BanditMetrics {
        &self.metrics
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn read_models(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, SlotModel>> {
        self.models.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_models(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, SlotModel>> {
        self.models.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings this replica up to date with the store: slot versions, then ledger entries in order.
    /// Returns the last ledger sequence applied.
    pub async fn sync(&self) -> Result<u64> {
        let mut applied = self.applied.lock().await;
        let slots = self.store.slots().await?;
        {
            let mut models = self.write_models();
            models.retain(|name, _| slots.iter().any(|s| &s.slot == name));
            for s in slots {
                match models.get_mut(&s.slot) {
                    Some(m) if m.slot().version == s.version => {}
                    Some(m) => m.reconfigure(s),
                    None => {
                        models.insert(s.slot.clone(), SlotModel::new(s));
                    }
                }
            }
        }
        loop {
            let entries = self.store.ledger_since(*applied, 5_000).await?;
            if entries.is_empty() {
                break;
            }
            let mut models = self.write_models();
            for e in &entries {
                if let Some(m) = models.get_mut(&e.slot) {
                    m.apply(e)?;
                }
                *applied = e.seq;
            }
            self.metrics.ledger_applied.set(*applied as i64);
        }
        self.refresh_thompson().await?;
        Ok(*applied)
    }

    /// Recomputes stale Thompson P(best) distributions off the request path: at most once per
    /// `thompson_refresh_ms` per slot, immediately for a slot that has none yet.
    async fn refresh_thompson(&self) -> Result<()> {
        let now = self.now();
        let every = Duration::from_millis(self.config.thompson_refresh_ms);
        let jobs: Vec<_> = {
            let models = self.read_models();
            let refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            models
                .values()
                .filter(|m| {
                    refreshed
                        .get(&m.slot().slot)
                        .is_none_or(|t| t.elapsed() >= every)
                })
                .flat_map(|m| m.thompson_jobs(now))
                .collect()
        };
        if jobs.is_empty() {
            return Ok(());
        }
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|j| {
                    let d = j.run();
                    (j, d)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Internal(format!("Thompson refresh task: {e}")))?;
        let mut models = self.write_models();
        let mut refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        for (job, dist) in done {
            if let Some(m) = models.get_mut(&job.slot) {
                m.install(&job, dist);
            }
            refreshed.insert(job.slot.clone(), std::time::Instant::now());
        }
        Ok(())
    }

    /// A copy of a slot's model (for reports and tests).
    pub fn model(&self, slot: &str) -> Option<SlotModel> {
        self.read_models().get(slot).cloned()
    }

    /// Every slot as configured.
    pub fn slots(&self) -> Vec<Slot> {
        self.read_models()
            .values()
            .map(|m| m.slot().clone())
            .collect()
    }

    fn slot_of(&self, slot: &str) -> Result<Slot> {
        self.read_models()
            .get(slot)
            .map(|m| m.slot().clone())
            .ok_or_else(|| Error::NotFound(format!("slot `{slot}` does not exist")))
    }

    /// Chooses an arm and logs the decision (durable before this returns).
    pub async fn decide(&self, req: DecideRequest) -> Result<DecideResponse> {
        let started = std::time::Instant::now();
        check_id("user_id", &req.user_id)?;
        check_id("anonymous_id", &req.anonymous_id)?;
        if req.user_id.is_none() && req.anonymous_id.is_none() {
            return Err(Error::bad(
                "user_id",
                "a user_id or an anonymous_id is required",
            ));
        }
        req.context.validate()?;
        let now = self.now();
        let slot = self.slot_of(&req.slot)?;
        let stored = match (
            &self.features,
            req.user_id.as_ref().or(req.anonymous_id.as_ref()),
        ) {
            (Some(f), Some(id)) if req.context.segment.is_none() => {
                match f.user_features(id).await {
                    Ok(u) => u.as_ref().map(StoredFeatures::from),
                    Err(e) => {
                        // Features are an enrichment: decide without them rather than fail the page.
                        self.metrics.feature_lookup_errors.inc();
                        tracing::warn!(error = %e, "feature lookup failed; deciding without stored features");
                        None
                    }
                }
            }
            _ => None,
        };
        let context = req
            .context
            .resolve(stored.as_ref(), req.user_id.is_some(), now);
        let x = context.features();
        let segment = context.segment_index();
        let sticky = match (&context.session_id, slot.sticky) {
            (Some(s), true) => {
                let since = now - chrono::Duration::seconds(self.config.sticky_ttl_secs as i64);
                self.store
                    .sticky_arm(&slot.slot, s, since)
                    .await?
                    .filter(|(arm, _)| slot.arms.iter().any(|a| &a.arm_id == arm && a.is_live(now)))
            }
            _ => None,
        };
        let (arm_id, propensity, policy, reason) = {
            let models = self.read_models();
            let model = models
                .get(&slot.slot)
                .ok_or_else(|| Error::NotFound(format!("slot `{}` does not exist", slot.slot)))?;
            let policy = model.slot().policy_label(model.ledger_seq());
            match sticky {
                Some((arm, p)) => (arm, p, policy, "sticky"),
                None => {
                    let c = model.choose(segment, &x, now, &mut rand::rng())?;
                    let reason = if c.forced { "forced" } else { "policy" };
                    (c.arm_id, c.propensity, policy, reason)
                }
            }
        };
        let arm = slot
            .arms
            .iter()
            .find(|a| a.arm_id == arm_id)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("chosen arm `{arm_id}` vanished")))?;
        let d = Decision {
            decision_id: Uuid::new_v4(),
            slot: slot.slot.clone(),
            slot_version: slot.version,
            arm_id: arm_id.clone(),
            ts: now,
            user_id: req.user_id,
            anonymous_id: req.anonymous_id,
            segment: context.segment.clone(),
            propensity,
            policy: policy.clone(),
            context,
            features: x,
            reward: slot.reward.clone(),
            sticky: reason == "sticky",
            forced: reason == "forced",
        };
        self.store.insert_decision(&d).await?;
        self.metrics
            .decisions
            .with_label_values(&[&d.slot, reason])
            .inc();
        self.metrics
            .decide_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(DecideResponse {
            decision_id: d.decision_id,
            slot: d.slot,
            arm_id,
            propensity,
            policy,
            segment: d.segment,
            creative_url: arm.creative_url,
            collection_id: arm.collection_id,
            reason: reason.to_string(),
        })
    }

    /// Records an explicit reward (`value` in [0, 1]).
    pub async fn reward(&self, decision_id: Uuid, value: f64) -> Result<Applied> {
        if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
            return Err(Error::bad(
                "value",
                format!("{value} must be between 0 and 1"),
            ));
        }
        let signal = Signal {
            signal_id: "explicit".into(),
            decision_id,
            ts: self.now(),
            kind: SignalKind::Explicit { value },
        };
        let applied = self
            .apply(&signal)
            .await?
            .ok_or_else(|| Error::NotFound(format!("decision {decision_id} does not exist")))?;
        Ok(applied)
    }

    /// Applies a signal and counts the result.
    pub async fn apply(&self, signal: &Signal) -> Result<Option<Applied>> {
        let r = self.store.apply_signal(signal).await?;
        let kind = match &signal.kind {
            SignalKind::Click => "click",
            SignalKind::Purchase(_) => "purchase",
            SignalKind::Return { .. } => "return",
            SignalKind::Explicit { .. } => "explicit",
        };
        let result = match &r {
            None => "unknown_decision",
            Some(Applied::Recorded {
                ledger_seq: Some(_),
            }) => "learned",
            Some(Applied::Recorded { ledger_seq: None }) => "recorded",
            Some(Applied::Duplicate) => "duplicate",
            Some(Applied::Ignored { .. }) => "ignored",
            Some(Applied::Conflict { .. }) => "conflict",
        };
        self.metrics
            .signals
            .with_label_values(&[kind, result])
            .inc();
        Ok(r)
    }

    /// Learns the default reward of decisions whose window closed; returns how many.
    pub async fn expire(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.store.expire(self.now(), 1_000).await?;
            total += n;
            if n < 1_000 {
                break;
            }
        }
        self.metrics.expired.inc_by(total as u64);
        Ok(total)
    }

    /// Creates a slot (version 1); new arms get their warm-start prior.
    pub async fn create_slot(&self, mut slot: Slot, actor: &str) -> Result<Slot> {
        slot.version = 0;
        self.fill_priors(&mut slot, None);
        slot.validate()?;
        let detail = serde_json::to_value(&slot).unwrap_or_default();
        self.commit(slot, 0, actor, "create", detail).await
    }

    /// Replaces a slot's configuration (`expected` = the version the caller read, for optimistic locking;
    /// `None` = the current one).
    pub async fn update_slot(
        &self,
        mut slot: Slot,
        expected: Option<u64>,
        actor: &str,
    ) -> Result<Slot> {
        self.sync().await?;
        let current = self.slot_of(&slot.slot)?;
        let expected = expected.unwrap_or(current.version);
        self.fill_priors(&mut slot, Some(&current));
        slot.validate()?;
        let detail = serde_json::json!({ "before": current, "after": slot });
        self.commit(slot, expected, actor, "update", detail).await
    }

    /// Deletes a slot (its decision log stays).
    pub async fn delete_slot(&self, slot: &str, actor: &str) -> Result<()> {
        self.sync().await?;
        let current = self.slot_of(slot)?;
        let audit = AuditEntry {
            slot: slot.to_string(),
            at: self.now(),
            actor: actor.to_string(),
            action: "delete".into(),
            detail: serde_json::to_value(&current).unwrap_or_default(),
            version: current.version,
        };
        self.store.delete_slot(slot, &audit).await?;
        self.sync().await?;
        Ok(())
    }

    /// Applies a merchandiser's action.
    pub async fn act(&self, slot: &str, action: Action, actor: &str) -> Result<Slot> {
        self.sync().await?;
        let mut s = self.slot_of(slot)?;
        let expected = s.version;
        let arm_mut = |s: &mut Slot, id: &str| -> Result<usize> {
            s.arm_index(id).ok_or_else(|| {
                Error::NotFound(format!("arm_id: `{id}` is not an arm of slot `{slot}`"))
            })
        };
        let name = match &action {
            Action::Pause { arm_id } => {
                let i = arm_mut(&mut s, arm_id)?;
                s.arms[i].paused = true;
                "pause"
            }
            Action::Resume { arm_id } => {
                let i = arm_mut(&mut s, arm_id)?;
                s.arms[i].paused = false;
                "resume"
            }
            Action::Floor {
                arm_id,
                traffic_floor,
            } => {
                let i = arm_mut(&mut s, arm_id)?;
                s.arms[i].traffic_floor = *traffic_floor;
                "floor"
            }
            Action::Force { segment, arm_id } => {
                if !crate::context::SEGMENTS.contains(&segment.as_str()) {
                    return Err(Error::bad(
                        "segment",
                        format!(
                            "`{segment}` is not a known segment ({})",
                            crate::context::SEGMENTS.join(", ")
                        ),
                    ));
                }
                arm_mut(&mut s, arm_id)?;
                s.forced.insert(segment.clone(), arm_id.clone());
                "force"
            }
            Action::Unforce { segment } => {
                if s.forced.remove(segment).is_none() {
                    return Err(Error::NotFound(format!(
                        "segment: no forced winner for `{segment}`"
                    )));
                }
                "unforce"
            }
        };
        s.validate()?;
        let detail = serde_json::to_value(&action).unwrap_or_default();
        self.commit(s, expected, actor, name, detail).await
    }

    async fn commit(
        &self,
        mut slot: Slot,
        expected: u64,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<Slot> {
        let audit = AuditEntry {
            slot: slot.slot.clone(),
            at: self.now(),
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
            version: expected + 1,
        };
        self.store.put_slot(&slot, expected, &audit).await?;
        slot.version = expected + 1;
        self.sync().await?;
        Ok(slot)
    }

    /// Arms new to the slot without an explicit prior get the current pooled mean as their prior.
    fn fill_priors(&self, slot: &mut Slot, previous: Option<&Slot>) {
        let auto = self
            .read_models()
            .get(&slot.slot)
            .map(|m| m.auto_prior())
            .unwrap_or(crate::slot::Prior {
                mean: 0.5,
                strength: 0.0,
            });
        for arm in &mut slot.arms {
            let known = previous.and_then(|p| p.arms.iter().find(|a| a.arm_id == arm.arm_id));
            match (known, arm.prior) {
                (Some(old), None) => arm.prior = old.prior,
                (None, None) if previous.is_some() => {
                    arm.prior = Some(crate::slot::Prior {
                        mean: auto.mean,
                        strength: slot.policy.prior_strength,
                    })
                }
                _ => {}
            }
        }
    }

    /// The report of a slot over `[since, until)`.
    pub async fn report(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        bucket_secs: i64,
    ) -> Result<SlotReport> {
        let model = self
            .model(slot)
            .ok_or_else(|| Error::NotFound(format!("slot `{slot}` does not exist")))?;
        let rows = self
            .store
            .aggregate(slot, since, until, bucket_secs)
            .await?;
        let audit = self.store.audit(slot, 20).await?;
        let now = self.now();
        // P(best) takes 10,000 posterior draws per segment: off the async workers.
        tokio::task::spawn_blocking(move || {
            report::build(&model, &rows, audit, now, since, until, bucket_secs)
        })
        .await
        .map_err(|e| Error::Internal(format!("report task: {e}")))
    }

    /// Off-policy estimates of `candidate` on the slot's learned decisions in `[since, until)`.
    pub async fn ope(
        &self,
        slot: &str,
        candidate: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        spec: ope::IntervalSpec,
    ) -> Result<OpeReport> {
        let model = self
            .model(slot)
            .ok_or_else(|| Error::NotFound(format!("slot `{slot}` does not exist")))?;
        let candidate = Candidate::parse(candidate, model.slot())?;
        let logged = self.store.logged(slot, since, until).await?;
        if logged.is_empty() {
            return Err(Error::Conflict(format!(
                "slot `{slot}` has no decision with a learned reward between {since} and {until}"
            )));
        }
        tokio::task::spawn_blocking(move || {
            report::off_policy(&model, &candidate, &logged, since, until, spec)
        })
        .await
        .map_err(|e| Error::Internal(format!("OPE task: {e}")))?
    }
}
