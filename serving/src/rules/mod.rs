//! Merchandising rules: how merchandisers steer recommendation lists ("in segment High-Value Returning,
//! show collection FW26 above the fold").
//!
//! A rule is a set of [`Conditions`] (segment, market, placement, device, a date range, an experiment
//! variant; a missing or empty list means "any") and 1–50 [`Action`]s: `pin`, `pin_collection`, `boost`,
//! `bury`, `filter` and `quota`. Rules live in a [`RuleStore`] (PostgreSQL or memory) with versions and an
//! audit trail; the HTTP layer calls [`RuleInput::validate`] against the catalogue before storing, and the
//! [`engine`] applies the rules matching a request to its candidate list.
//!
//! # Conflict resolution
//! [`apply`] runs these steps, in this order, over the rules [`matching`] the request (enabled, same
//! `rule_set`, every condition met, `starts_at <= now < ends_at`), taken highest `priority` first, ties by
//! rule id:
//! 1. **Scores.** The candidates' model scores (any real numbers, possibly negative) are mapped to a
//!    positive base `0.01 + 0.99·(s − min)/(max − min)` in (0, 1] (all 1 when `max = min`), so that a
//!    boost (`× factor`) always raises and a bury (`÷ factor`) always lowers an item, whatever the sign of
//!    its model score. The mapping is rank-independent and preserves the order; a non-finite score gets
//!    the lowest base (0.01). Boosts and buries of all matching rules multiply. The returned `score` stays
//!    the model's (rules change the order only). A product listed twice keeps its first occurrence.
//! 2. **Filters** of every matching rule remove the products they match, and they also bind the later
//!    steps: no pin or collection fill brings a rule-filtered product back.
//! 3. **Boosts and buries**, then a stable re-sort by adjusted score (only when one applied, so a
//!    caller's own order survives rules that do not touch scores).
//! 4. **Quotas.** Per attribute the smallest `max` among the matching rules wins; walking the list best
//!    first, an item that would exceed a quota for its value is dropped.
//! 5. **Pins**, highest-priority rule first. A pin puts a product at its 1-based position of the final
//!    list of `n`: moved if it is already in the list, inserted if the catalogue has it and the request's
//!    `eligible` filter accepts it, skipped (`pin_conflict`) otherwise. A position already taken by an
//!    earlier (higher-priority) pin, or a product already pinned elsewhere, makes the later pin a
//!    `pin_conflict`. `pin_collection` fills its positions (ascending) with the collection's top items:
//!    its members among the candidates in list order, then other eligible catalogue products of the
//!    collection by popularity; at a position a higher-priority pin holds (`pin_conflict`) the item waits
//!    for the action's next position. Pins override quotas (a pin brings back an item a quota dropped,
//!    and pinned items are not counted) and ignore boosts. Pins beyond `n` do nothing; when the list is
//!    too short to reach a pin's position, the pinned item follows the last one.
//!
//! The output is truncated to `n`. Items a rule moved (pinned, boosted, buried) get `rule:<name>` in
//! their reasons, and every effect is reported as an [`Applied`] with 1-based positions before and after.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use features::segment::RULE_SEGMENTS;
use pipelines::catalog::Catalog;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::ATTRIBUTES;
use crate::{Error, Result};

pub mod engine;
pub mod postgres;
pub mod store;

pub use engine::{apply, matching, Applied, Candidate, Inputs, RuleContext};
pub use postgres::PgRuleStore;
pub use store::{diff, AuditEntry, MemoryRuleStore, RuleStore};

/// Where a list is shown.
pub const PLACEMENTS: &[&str] = &["home", "pdp", "cart", "email"];
/// The client's device class.
pub const DEVICES: &[&str] = &["desktop", "mobile", "tablet", "app", "other"];
/// Highest accepted priority (priorities are 0..=this; higher wins).
pub const MAX_PRIORITY: i64 = 1_000_000;
/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Values per condition list.
pub const MAX_CONDITION_VALUES: usize = 100;
/// Actions per rule.
pub const MAX_ACTIONS: usize = 50;
/// Deepest position a pin may target (lists are at most 100 long).
pub const MAX_POSITION: u32 = 100;
/// Largest boost or bury factor.
pub const MAX_FACTOR: f64 = 100.0;
/// Largest quota.
pub const MAX_QUOTA: u32 = 100;
/// Rules a store holds at most; creating more is a [`Error::Conflict`].
pub const MAX_RULES: usize = 10_000;

fn yes() -> bool {
    true
}

fn default_rule_set() -> String {
    "default".to_string()
}

/// A rule as a client sends it (create and update).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// Display name (1–200 characters), also shown in item reasons as `rule:<name>`.
    pub name: String,
    /// 0–1,000,000; when rules conflict the higher priority wins.
    pub priority: i64,
    /// A disabled rule is stored but never applied.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Which set of rules this belongs to (`^[a-z0-9_-]{1,64}$`); a request applies one set.
    #[serde(default = "default_rule_set")]
    pub rule_set: String,
    /// When the rule applies; everything omitted = always.
    #[serde(default)]
    pub conditions: Conditions,
    /// What the rule does (1–50 actions).
    pub actions: Vec<Action>,
}

/// When a rule applies: every given condition must hold; a missing or empty list means "any".
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Customer segments (`New`, `Lapsed`, `At Risk`, `High-Value Returning`, `Active Browser`,
    /// `Occasional`).
    #[serde(default)]
    pub segment: Vec<String>,
    /// Markets, ISO 3166-1 alpha-2 (`IT`, `FR`…).
    #[serde(default)]
    pub market: Vec<String>,
    /// Placements (`home`, `pdp`, `cart`, `email`).
    #[serde(default)]
    pub placement: Vec<String>,
    /// Devices (`desktop`, `mobile`, `tablet`, `app`, `other`); a request without a device matches only
    /// rules without a device condition.
    #[serde(default)]
    pub device: Vec<String>,
    /// Applies from this instant (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// Applies until this instant (exclusive); must be after `starts_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Applies only to callers assigned one of these variants of an experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentCondition>,
}

/// A rule restricted to some variants of an A/B experiment (the rule is the treatment).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentCondition {
    /// Experiment key.
    pub key: String,
    /// Variant keys the rule applies to (at least one).
    pub variants: Vec<String>,
}

/// One thing a rule does to a list. Positions are 1-based; attributes are those of
/// [`crate::catalog::ATTRIBUTES`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Puts one product at a position (1–100).
    Pin { product_id: String, position: u32 },
    /// Puts a collection's top items at positions: exactly one of `positions` (distinct, 1–100) and
    /// `above_the_fold` (K = positions 1..=K).
    PinCollection {
        collection: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        positions: Option<Vec<u32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above_the_fold: Option<u32>,
    },
    /// Multiplies the score of matching items by `factor` (> 1, ≤ 100).
    Boost {
        attribute: String,
        value: String,
        factor: f64,
    },
    /// Divides the score of matching items by `factor` (> 1, ≤ 100).
    Bury {
        attribute: String,
        value: String,
        factor: f64,
    },
    /// Removes matching items.
    Filter { attribute: String, value: String },
    /// At most `max` (1–100) items per value of `attribute`.
    Quota { attribute: String, max: u32 },
}

impl Action {
    /// The action's `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Pin { .. } => "pin",
            Action::PinCollection { .. } => "pin_collection",
            Action::Boost { .. } => "boost",
            Action::Bury { .. } => "bury",
            Action::Filter { .. } => "filter",
            Action::Quota { .. } => "quota",
        }
    }

    /// The positions a pin or collection pin targets, ascending (`above_the_fold: K` → 1..=K); empty for
    /// other actions. A collection pin giving both forms uses `positions`.
    pub fn pin_positions(&self) -> Vec<u32> {
        match self {
            Action::Pin { position, .. } => vec![*position],
            Action::PinCollection {
                positions: Some(p), ..
            } => {
                let mut p = p.clone();
                p.sort_unstable();
                p.dedup();
                p
            }
            Action::PinCollection {
                above_the_fold: Some(k),
                ..
            } => (1..=*k).collect(),
            _ => Vec::new(),
        }
    }
}

/// A stored rule: the client's input plus identity, version and provenance.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct Rule {
    pub id: Uuid,
    #[serde(flatten)]
    pub input: RuleInput,
    /// 1 at creation, +1 on every update; clients send it back as `expected_version`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The actor of the last write.
    pub updated_by: String,
}

fn valid_rule_set(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks each value of a condition list against `known`.
fn check_list(field: &str, values: &[String], known: impl Fn(&str) -> bool) -> Result<()> {
    if values.len() > MAX_CONDITION_VALUES {
        return Err(Error::bad(
            format!("conditions.{field}"),
            format!("at most {MAX_CONDITION_VALUES} values"),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        if !known(v) {
            return Err(Error::bad(
                format!("conditions.{field}[{i}]"),
                format!("unknown {field} `{v}`"),
            ));
        }
    }
    Ok(())
}

impl Conditions {
    fn validate(&self) -> Result<()> {
        check_list("segment", &self.segment, |s| RULE_SEGMENTS.contains(&s))?;
        check_list("market", &self.market, pipelines::iso::is_country)?;
        check_list("placement", &self.placement, |s| PLACEMENTS.contains(&s))?;
        check_list("device", &self.device, |s| DEVICES.contains(&s))?;
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at) {
            if e <= s {
                return Err(Error::bad("conditions.ends_at", "must be after starts_at"));
            }
        }
        if let Some(x) = &self.experiment {
            if x.key.trim().is_empty() {
                return Err(Error::bad("conditions.experiment.key", "must not be empty"));
            }
            if x.variants.is_empty() {
                return Err(Error::bad(
                    "conditions.experiment.variants",
                    "at least one variant",
                ));
            }
            if x.variants.len() > MAX_CONDITION_VALUES {
                return Err(Error::bad(
                    "conditions.experiment.variants",
                    format!("at most {MAX_CONDITION_VALUES} values"),
                ));
            }
            if let Some(i) = x.variants.iter().position(|v| v.trim().is_empty()) {
                return Err(Error::bad(
                    format!("conditions.experiment.variants[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

fn check_attribute(at: &str, attribute: &str) -> Result<()> {
    if ATTRIBUTES.contains(&attribute) {
        Ok(())
    } else {
        Err(Error::bad(
            format!("{at}.attribute"),
            format!(
                "unknown attribute `{attribute}` (one of {})",
                ATTRIBUTES.join(", ")
            ),
        ))
    }
}

fn check_value(at: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::bad(format!("{at}.value"), "must not be empty"));
    }
    Ok(())
}

fn check_factor(at: &str, factor: f64) -> Result<()> {
    if factor.is_finite() && factor > 1.0 && factor <= MAX_FACTOR {
        Ok(())
    } else {
        Err(Error::bad(
            format!("{at}.factor"),
            format!("must be greater than 1 and at most {MAX_FACTOR}"),
        ))
    }
}

fn check_position(field: String, p: u32) -> Result<()> {
    if (1..=MAX_POSITION).contains(&p) {
        Ok(())
    } else {
        Err(Error::bad(
            field,
            format!("must be between 1 and {MAX_POSITION}"),
        ))
    }
}

impl RuleInput {
    /// The first problem of the rule, as [`Error::BadInput`] naming its JSON path (`name`,
    /// `conditions.market[0]`, `actions[2].factor`…). Products and collections must exist in `catalog`.
    pub fn validate(&self, catalog: &Catalog) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::bad("name", "must not be empty"));
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::bad(
                "name",
                format!("at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            return Err(Error::bad(
                "priority",
                format!("must be between 0 and {MAX_PRIORITY}"),
            ));
        }
        if !valid_rule_set(&self.rule_set) {
            return Err(Error::bad("rule_set", "must match ^[a-z0-9_-]{1,64}$"));
        }
        self.conditions.validate()?;
        if self.actions.is_empty() || self.actions.len() > MAX_ACTIONS {
            return Err(Error::bad(
                "actions",
                format!("between 1 and {MAX_ACTIONS} actions"),
            ));
        }
        // Position → the action of this rule pinning it.
        let mut pinned: HashMap<u32, usize> = HashMap::new();
        for (i, action) in self.actions.iter().enumerate() {
            let at = format!("actions[{i}]");
            match action {
                Action::Pin {
                    product_id,
                    position,
                } => {
                    if catalog.product(product_id).is_none() {
                        return Err(Error::bad(
                            format!("{at}.product_id"),
                            format!("unknown product `{product_id}`"),
                        ));
                    }
                    check_position(format!("{at}.position"), *position)?;
                    claim(&mut pinned, *position, i, format!("{at}.position"))?;
                }
                Action::PinCollection {
                    collection,
                    positions,
                    above_the_fold,
                } => {
                    if !catalog.collections().iter().any(|c| &c.id == collection) {
                        return Err(Error::bad(
                            format!("{at}.collection"),
                            format!("unknown collection `{collection}`"),
                        ));
                    }
                    match (positions, above_the_fold) {
                        (Some(ps), None) => {
                            if ps.is_empty() {
                                return Err(Error::bad(
                                    format!("{at}.positions"),
                                    "at least one position",
                                ));
                            }
                            for (j, p) in ps.iter().enumerate() {
                                let field = format!("{at}.positions[{j}]");
                                check_position(field.clone(), *p)?;
                                if ps[..j].contains(p) {
                                    return Err(Error::bad(
                                        field,
                                        format!("duplicate position {p}"),
                                    ));
                                }
                                claim(&mut pinned, *p, i, field)?;
                            }
                        }
                        (None, Some(k)) => {
                            check_position(format!("{at}.above_the_fold"), *k)?;
                            for p in 1..=*k {
                                claim(&mut pinned, p, i, format!("{at}.above_the_fold"))?;
                            }
                        }
                        _ => {
                            return Err(Error::bad(
                                at,
                                "exactly one of `positions` and `above_the_fold`",
                            ))
                        }
                    }
                }
                Action::Boost {
                    attribute,
                    value,
                    factor,
                }
                | Action::Bury {
                    attribute,
                    value,
                    factor,
                } => {
                    check_attribute(&at, attribute)?;
                    check_value(&at, value)?;
                    check_factor(&at, *factor)?;
                }
                Action::Filter { attribute, value } => {
                    check_attribute(&at, attribute)?;
                    check_value(&at, value)?;
                }
                Action::Quota { attribute, max } => {
                    check_attribute(&at, attribute)?;
                    if !(1..=MAX_QUOTA).contains(max) {
                        return Err(Error::bad(
                            format!("{at}.max"),
                            format!("must be between 1 and {MAX_QUOTA}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Records that action `i` pins `position`; two pins of one rule on one position are an error.
fn claim(pinned: &mut HashMap<u32, usize>, position: u32, i: usize, field: String) -> Result<()> {
    match pinned.insert(position, i) {
        Some(j) if j != i => Err(Error::bad(
            field,
            format!("position {position} is already pinned by actions[{j}]"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> &'static Catalog {
        static C: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        C.get_or_init(|| Catalog::generate(7))
    }

    fn field_of(v: serde_json::Value) -> String {
        let input: RuleInput = serde_json::from_value(v).expect("parses");
        match input.validate(catalog()) {
            Ok(()) => "ok".to_string(),
            Err(Error::BadInput { field, .. }) => field,
            Err(e) => panic!("{e}"),
        }
    }

    fn base() -> serde_json::Value {
        let c = catalog();
        json!({"name": "FW26 for VIPs", "priority": 10,
            "conditions": {"segment": ["High-Value Returning"], "market": ["IT", "FR"],
                "placement": ["home"], "device": ["mobile"],
                "starts_at": "2026-09-01T00:00:00Z", "ends_at": "2026-10-01T00:00:00Z",
                "experiment": {"key": "merch-fw26", "variants": ["treatment"]}},
            "actions": [
                {"type": "pin", "product_id": c.products()[0].id, "position": 1},
                {"type": "pin_collection", "collection": c.collections()[0].id, "positions": [2, 3]},
                {"type": "boost", "attribute": "line", "value": "milano", "factor": 1.5},
                {"type": "bury", "attribute": "on_sale", "value": "true", "factor": 2.0},
                {"type": "filter", "attribute": "category", "value": "belts"},
                {"type": "quota", "attribute": "category", "max": 2}]})
    }

    fn with(path: &[&str], v: serde_json::Value) -> serde_json::Value {
        let mut b = base();
        let mut at = &mut b;
        for p in path {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        *at = v;
        b
    }

    #[test]
    fn defaults_and_round_trip() {
        let r: RuleInput = serde_json::from_value(json!({"name": "x", "priority": 1,
            "actions": [{"type": "quota", "attribute": "line", "max": 3}]}))
        .unwrap();
        assert!(r.enabled);
        assert_eq!(r.rule_set, "default");
        assert_eq!(r.conditions, Conditions::default());
        let full: RuleInput = serde_json::from_value(base()).unwrap();
        let back: RuleInput = serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap();
        assert_eq!(back, full);
        assert_eq!(field_of(base()), "ok");
        let rule = Rule {
            id: Uuid::new_v4(),
            input: full,
            version: 3,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            updated_by: "giulia".into(),
        };
        let v = serde_json::to_value(&rule).unwrap();
        assert_eq!(v["name"], "FW26 for VIPs");
        assert_eq!(v["version"], 3);
        assert_eq!(serde_json::from_value::<Rule>(v).unwrap(), rule);
    }

    #[test]
    fn rule_schema_is_flat() {
        // The stored rule's schema lists the input's fields beside its own, and does not inherit the
        // input's `additionalProperties: false` (which would refuse `id`).
        let schema = serde_json::to_value(schemars::schema_for!(Rule)).unwrap();
        for f in [
            "id",
            "version",
            "updated_by",
            "name",
            "priority",
            "conditions",
            "actions",
        ] {
            assert!(schema["properties"].get(f).is_some(), "{f}");
        }
        assert_ne!(schema.get("additionalProperties"), Some(&json!(false)));
        let input = serde_json::to_value(schemars::schema_for!(RuleInput)).unwrap();
        assert_eq!(input["additionalProperties"], json!(false));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut b = base();
        b["colour"] = json!("red");
        assert!(serde_json::from_value::<RuleInput>(b).is_err());
        let b = with(&["conditions", "weekday"], json!(["mon"]));
        assert!(serde_json::from_value::<RuleInput>(b).is_err());
        let b = with(&["actions", "2", "weight"], json!(2));
        assert!(serde_json::from_value::<RuleInput>(b).is_err());
    }

    #[test]
    fn validation_names_the_first_problem() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (with(&["name"], json!("  ")), "name"),
            (with(&["name"], json!("x".repeat(201))), "name"),
            (with(&["priority"], json!(-1)), "priority"),
            (with(&["priority"], json!(1_000_001)), "priority"),
            (with(&["rule_set"], json!("Default")), "rule_set"),
            (with(&["rule_set"], json!("")), "rule_set"),
            (
                with(&["conditions", "segment", "0"], json!("VIP")),
                "conditions.segment[0]",
            ),
            (
                with(&["conditions", "market", "1"], json!("XX")),
                "conditions.market[1]",
            ),
            (
                with(&["conditions", "placement", "0"], json!("plp")),
                "conditions.placement[0]",
            ),
            (
                with(&["conditions", "device", "0"], json!("tv")),
                "conditions.device[0]",
            ),
            (
                with(&["conditions", "market"], json!(vec!["IT"; 101])),
                "conditions.market",
            ),
            (
                with(&["conditions", "ends_at"], json!("2026-09-01T00:00:00Z")),
                "conditions.ends_at",
            ),
            (
                with(&["conditions", "experiment", "key"], json!("")),
                "conditions.experiment.key",
            ),
            (
                with(&["conditions", "experiment", "variants"], json!([])),
                "conditions.experiment.variants",
            ),
            (with(&["actions"], json!([])), "actions"),
            (
                with(&["actions", "0", "product_id"], json!("P999999")),
                "actions[0].product_id",
            ),
            (
                with(&["actions", "0", "position"], json!(0)),
                "actions[0].position",
            ),
            (
                with(&["actions", "0", "position"], json!(101)),
                "actions[0].position",
            ),
            (
                with(&["actions", "1", "collection"], json!("SS99")),
                "actions[1].collection",
            ),
            (
                with(&["actions", "1", "positions"], json!([2, 2])),
                "actions[1].positions[1]",
            ),
            (
                with(&["actions", "1", "positions"], json!([4, 1])),
                "actions[1].positions[1]",
            ),
            (
                with(&["actions", "1", "positions"], json!([])),
                "actions[1].positions",
            ),
            (
                with(&["actions", "1", "above_the_fold"], json!(3)),
                "actions[1]",
            ),
            (
                with(&["actions", "2", "attribute"], json!("brand")),
                "actions[2].attribute",
            ),
            (
                with(&["actions", "2", "factor"], json!(1.0)),
                "actions[2].factor",
            ),
            (
                with(&["actions", "2", "factor"], json!(100.5)),
                "actions[2].factor",
            ),
            (
                with(&["actions", "3", "factor"], json!(0.5)),
                "actions[3].factor",
            ),
            (
                with(&["actions", "4", "attribute"], json!("size")),
                "actions[4].attribute",
            ),
            (with(&["actions", "5", "max"], json!(0)), "actions[5].max"),
            (with(&["actions", "5", "max"], json!(101)), "actions[5].max"),
        ];
        for (v, want) in cases {
            assert_eq!(field_of(v.clone()), want, "{v}");
        }
        let mut many = base();
        many["actions"] = json!(vec![
            json!({"type": "quota", "attribute": "line", "max": 1});
            51
        ]);
        assert_eq!(field_of(many), "actions");
        let mut atf = base();
        atf["actions"][1] = json!({"type": "pin_collection", "collection": catalog().collections()[0].id,
            "above_the_fold": 2});
        assert_eq!(field_of(atf), "actions[1].above_the_fold");
        // Two pins of different rules may share a position; within one rule they may not.
        let mut two = base();
        two["actions"][1]["positions"] = json!([5]);
        two["actions"][2] =
            json!({"type": "pin", "product_id": catalog().products()[1].id, "position": 5});
        assert_eq!(field_of(two), "actions[2].position");
    }
}
