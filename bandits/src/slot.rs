//! Slots and arms: what a merchandiser configures, validated, versioned.
//!
//! A slot (e.g. `home_hero`) has up to [`MAX_ARMS`] arms (banners), one policy, one reward definition, a
//! default per-arm traffic floor, optional stickiness per session, and per-segment forced winners. Every
//! change stores a new version of the whole slot (`version` + 1) and an audit entry; decisions name the
//! version they were made under.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most arms a slot may have (the bound; decide cost is linear in it).
pub const MAX_ARMS: usize = 50;
/// Most total traffic the floors may reserve: the rest is the policy's to allocate.
pub const MAX_FLOOR_TOTAL: f64 = 0.5;
/// Segment key used when the shopper's segment is unknown (anonymous, no features yet).
pub const UNKNOWN_SEGMENT: &str = "Unknown";

/// The learning policy of a slot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Beta-Bernoulli Thompson sampling, one posterior per (segment, arm).
    #[default]
    Thompson,
    /// LinUCB (disjoint, Li et al. 2010) over the context features.
    Linucb,
    /// Linear Thompson sampling (Agrawal & Goyal 2013) over the context features.
    LinTs,
    /// ε-greedy on the per-segment empirical means (baseline).
    EpsilonGreedy,
}

impl PolicyKind {
    /// Name used in the `policy` field of decisions.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Thompson => "thompson",
            PolicyKind::Linucb => "linucb",
            PolicyKind::LinTs => "lin_ts",
            PolicyKind::EpsilonGreedy => "epsilon_greedy",
        }
    }
}

const fn default_ucb_alpha() -> f64 {
    // Exploration width in posterior standard deviations; 1 is the usual starting point (Li et al. 2010 use 0.1–1.5).
    1.0
}
const fn default_ts_scale() -> f64 {
    // Posterior scale v of linear TS; CTRs are small, so a scale well below 1 explores enough.
    0.25
}
const fn default_epsilon() -> f64 {
    0.1
}
const fn default_ridge_lambda() -> f64 {
    1.0
}
const fn default_mc_draws() -> usize {
    // Monte-Carlo draws for Thompson propensities: standard error ≤ 0.5/√1000 ≈ 0.016 on a propensity.
    1000
}
const fn default_prior_strength() -> f64 {
    // Pseudo-observations behind an automatic warm-start prior: a new arm's own data outweighs it after ~50 shows.
    50.0
}

/// Policy settings (only those of the chosen kind matter; all have defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub kind: PolicyKind,
    /// LinUCB: width of the upper confidence bound (default 1.0).
    #[serde(default = "default_ucb_alpha")]
    pub alpha: f64,
    /// Linear TS: scale of the posterior covariance (default 0.25).
    #[serde(default = "default_ts_scale")]
    pub scale: f64,
    /// ε-greedy: exploration probability (default 0.1).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// LinUCB / linear TS: ridge regularisation λ (default 1.0).
    #[serde(default = "default_ridge_lambda")]
    pub lambda: f64,
    /// Thompson / linear TS: Monte-Carlo draws used to estimate the propensity (default 1000).
    #[serde(default = "default_mc_draws")]
    pub mc_draws: usize,
    /// Strength (pseudo-observations) of the automatic warm-start prior of a new arm (default 50).
    #[serde(default = "default_prior_strength")]
    pub prior_strength: f64,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            kind: PolicyKind::default(),
            alpha: default_ucb_alpha(),
            scale: default_ts_scale(),
            epsilon: default_epsilon(),
            lambda: default_ridge_lambda(),
            mc_draws: default_mc_draws(),
            prior_strength: default_prior_strength(),
        }
    }
}

/// What counts as a reward.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// 1 for a banner click within the click window.
    #[default]
    Click,
    /// 1 for an attributed purchase whose revenue is not fully returned.
    Conversion,
    /// Attributed net revenue (purchases − returns) divided by `revenue_cap_eur`, clipped to [0, 1].
    Revenue,
}

const fn default_click_window_secs() -> u64 {
    30 * 60
}
const fn default_attribution_window_secs() -> u64 {
    7 * 24 * 3600
}
const fn default_revenue_cap_eur() -> f64 {
    // About two average orders of the simulated catalogue; larger orders count as a full reward.
    1000.0
}

/// How rewards are joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    #[serde(default)]
    pub objective: Objective,
    /// A click counts when its event time is within this many seconds of the decision (default 1800).
    #[serde(default = "default_click_window_secs")]
    pub click_window_secs: u64,
    /// A purchase by the shopper within this many seconds after a clicked decision is attributed to it
    /// (default 7 days).
    #[serde(default = "default_attribution_window_secs")]
    pub attribution_window_secs: u64,
    /// Reward learned when the window closes with nothing better (default 0).
    #[serde(default)]
    pub default_value: f64,
    /// `revenue` objective: revenue that counts as a reward of 1 (default 1000 EUR).
    #[serde(default = "default_revenue_cap_eur")]
    pub revenue_cap_eur: f64,
}

impl Default for RewardSpec {
    fn default() -> Self {
        RewardSpec {
            objective: Objective::default(),
            click_window_secs: default_click_window_secs(),
            attribution_window_secs: default_attribution_window_secs(),
            default_value: 0.0,
            revenue_cap_eur: default_revenue_cap_eur(),
        }
    }
}

impl RewardSpec {
    /// Seconds after the decision at which its reward is final unless revised (returns, late events).
    pub fn window_secs(&self) -> u64 {
        match self.objective {
            Objective::Click => self.click_window_secs,
            Objective::Conversion | Objective::Revenue => self.attribution_window_secs,
        }
    }
}

/// A warm-start prior: the arm starts as if it had been shown `strength` times with mean reward `mean`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    pub mean: f64,
    pub strength: f64,
}

/// One banner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub arm_id: String,
    #[serde(default)]
    pub creative_url: String,
    #[serde(default)]
    pub collection_id: String,
    /// The arm is served from this instant (inclusive); `None` = already started.
    #[serde(default)]
    pub campaign_start: Option<DateTime<Utc>>,
    /// The arm retires at this instant (exclusive); `None` = open-ended.
    #[serde(default)]
    pub campaign_end: Option<DateTime<Utc>>,
    /// Paused by a merchandiser: never served.
    #[serde(default)]
    pub paused: bool,
    /// Minimum share of traffic (overrides the slot's default floor).
    #[serde(default)]
    pub traffic_floor: Option<f64>,
    /// Warm-start prior; filled in automatically when an arm is added without one (the slot's pooled mean
    /// with `policy.prior_strength`), so replicas replaying the same history agree.
    #[serde(default)]
    pub prior: Option<Prior>,
}

impl Arm {
    /// A live, open-ended arm with no creative, collection, floor or prior.
    pub fn new(arm_id: impl Into<String>) -> Arm {
        Arm {
            arm_id: arm_id.into(),
            creative_url: String::new(),
            collection_id: String::new(),
            campaign_start: None,
            campaign_end: None,
            paused: false,
            traffic_floor: None,
            prior: None,
        }
    }

    /// True when the arm may be served at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.paused
            && self.campaign_start.is_none_or(|s| s <= now)
            && self.campaign_end.is_none_or(|e| now < e)
    }
}

/// A slot as configured (the body of `POST /v1/slots` and `PUT /v1/slots/{slot}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    pub slot: String,
    /// Set by the service: 1 for a new slot, +1 on every change.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub policy: PolicySpec,
    #[serde(default)]
    pub reward: RewardSpec,
    /// Default minimum share of traffic per live arm (default 0).
    #[serde(default)]
    pub traffic_floor: f64,
    /// Keep showing a session the arm it saw first (by `context.session_id`).
    #[serde(default)]
    pub sticky: bool,
    /// Segment → arm id always shown to that segment (a merchandiser's override).
    #[serde(default)]
    pub forced: BTreeMap<String, String>,
    #[serde(default)]
    pub arms: Vec<Arm>,
}

fn check_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad(
            field.to_string(),
            format!("`{id}` must be 1–64 characters of letters, digits, `_`, `-` or `.`"),
        ))
    }
}

fn check_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(Error::bad(
            field.to_string(),
            format!("{v} must be between {lo} and {hi}"),
        ))
    }
}

impl Slot {
    /// Checks every field; the error names the first bad one and why.
    pub fn validate(&self) -> Result<()> {
        check_id("slot", &self.slot)?;
        let p = &self.policy;
        check_range("policy.alpha", p.alpha, 0.0, 100.0)?;
        check_range("policy.scale", p.scale, 0.0, 100.0)?;
        check_range("policy.epsilon", p.epsilon, 0.0, 1.0)?;
        check_range("policy.lambda", p.lambda, 1e-6, 1e6)?;
        if !(10..=100_000).contains(&p.mc_draws) {
            return Err(Error::bad(
                "policy.mc_draws",
                format!("{} must be between 10 and 100000", p.mc_draws),
            ));
        }
        check_range("policy.prior_strength", p.prior_strength, 0.0, 1e6)?;
        let r = &self.reward;
        if r.click_window_secs == 0 || r.click_window_secs > 30 * 86_400 {
            return Err(Error::bad(
                "reward.click_window_secs",
                format!(
                    "{} must be between 1 and 2592000 (30 days)",
                    r.click_window_secs
                ),
            ));
        }
        if r.attribution_window_secs == 0 || r.attribution_window_secs > 90 * 86_400 {
            return Err(Error::bad(
                "reward.attribution_window_secs",
                format!(
                    "{} must be between 1 and 7776000 (90 days)",
                    r.attribution_window_secs
                ),
            ));
        }
        check_range("reward.default_value", r.default_value, 0.0, 1.0)?;
        check_range("reward.revenue_cap_eur", r.revenue_cap_eur, 0.01, 1e9)?;
        check_range("traffic_floor", self.traffic_floor, 0.0, MAX_FLOOR_TOTAL)?;
        if self.arms.len() > MAX_ARMS {
            return Err(Error::bad(
                "arms",
                format!("{} arms, at most {MAX_ARMS} per slot", self.arms.len()),
            ));
        }
        let mut floors = 0.0;
        for (i, a) in self.arms.iter().enumerate() {
            check_id(&format!("arms[{i}].arm_id"), &a.arm_id)?;
            if self.arms[..i].iter().any(|b| b.arm_id == a.arm_id) {
                return Err(Error::bad(
                    format!("arms[{i}].arm_id"),
                    format!("`{}` appears twice", a.arm_id),
                ));
            }
            if let (Some(s), Some(e)) = (a.campaign_start, a.campaign_end) {
                if e <= s {
                    return Err(Error::bad(
                        format!("arms[{i}].campaign_end"),
                        format!("{e} is not after campaign_start {s}"),
                    ));
                }
            }
            if let Some(f) = a.traffic_floor {
                check_range(&format!("arms[{i}].traffic_floor"), f, 0.0, MAX_FLOOR_TOTAL)?;
            }
            if let Some(pr) = a.prior {
                check_range(&format!("arms[{i}].prior.mean"), pr.mean, 0.0, 1.0)?;
                check_range(&format!("arms[{i}].prior.strength"), pr.strength, 0.0, 1e6)?;
            }
            floors += self.floor_of(a);
        }
        if floors > MAX_FLOOR_TOTAL + 1e-12 {
            return Err(Error::bad(
                "traffic_floor",
                format!("the arms' floors add up to {floors:.3}, at most {MAX_FLOOR_TOTAL}"),
            ));
        }
        for (segment, arm) in &self.forced {
            if !self.arms.iter().any(|a| &a.arm_id == arm) {
                return Err(Error::bad(
                    format!("forced.{segment}"),
                    format!("arm `{arm}` is not an arm of slot `{}`", self.slot),
                ));
            }
        }
        Ok(())
    }

    /// The floor that applies to `arm`.
    pub fn floor_of(&self, arm: &Arm) -> f64 {
        arm.traffic_floor.unwrap_or(self.traffic_floor)
    }

    /// Index of an arm by id.
    pub fn arm_index(&self, arm_id: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.arm_id == arm_id)
    }

    /// The policy label carried by decisions: `kind@vVERSION.SEQ` (slot version, last learned ledger entry).
    pub fn policy_label(&self, ledger_seq: u64) -> String {
        format!(
            "{}@v{}.{}",
            self.policy.kind.name(),
            self.version,
            ledger_seq
        )
    }
}

/// A merchandiser's action on a slot, recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub slot: String,
    pub at: DateTime<Utc>,
    /// Who: the API key's name (the edge sets `x-lusso-user` from it; `anonymous` without the edge).
    pub actor: String,
    /// `create`, `update`, `delete`, `pause`, `resume`, `floor`, `force`, `unforce`.
    pub action: String,
    /// What changed, e.g. `{"arm_id": "hero_sale", "traffic_floor": 0.05}`.
    pub detail: serde_json::Value,
    /// The slot version the change produced.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(arms: &[&str]) -> Slot {
        Slot {
            slot: "home_hero".into(),
            version: 0,
            policy: PolicySpec::default(),
            reward: RewardSpec::default(),
            traffic_floor: 0.0,
            sticky: false,
            forced: BTreeMap::new(),
            arms: arms.iter().map(|a| Arm::new(*a)).collect(),
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(slot(&["a", "b"]).validate().is_ok());
        let e = slot(&["a", "a"]).validate().unwrap_err().to_string();
        assert!(e.contains("arms[1].arm_id"), "{e}");
        let names: Vec<String> = (0..51).map(|i| format!("a{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let e = slot(&refs).validate().unwrap_err().to_string();
        assert!(e.contains("at most 50"), "{e}");
        let mut s = slot(&["a", "b"]);
        s.traffic_floor = 0.3;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("add up to 0.600"), "{e}");
        let mut s = slot(&["a"]);
        s.forced.insert("New".into(), "zzz".into());
        assert!(s.validate().unwrap_err().to_string().contains("forced.New"));
        let mut s = slot(&["bad id"]);
        s.arms[0].arm_id = "bad id".into();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("arms[0].arm_id"));
    }

    #[test]
    fn campaign_dates_bound_the_arm() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut s = slot(&["a"]);
        s.arms[0].campaign_start = Some(t("2026-12-01T00:00:00Z"));
        s.arms[0].campaign_end = Some(t("2026-12-24T00:00:00Z"));
        let a = &s.arms[0];
        assert!(!a.is_live(t("2026-11-30T23:59:59Z")));
        assert!(a.is_live(t("2026-12-01T00:00:00Z")));
        assert!(!a.is_live(t("2026-12-24T00:00:00Z")));
        s.arms[0].campaign_end = Some(t("2026-11-01T00:00:00Z"));
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("campaign_end"));
    }
}
