//! Durable rules: the [`RuleStore`] trait, its audit entries, and the in-memory store.
//!
//! Stores keep exactly what they are given: the HTTP layer calls [`RuleInput::validate`] against the
//! catalogue first (the catalogue can change after a rule is stored, and the engine copes with stale
//! references). Every write bumps the rule's version, appends an audit entry and moves the
//! [`RuleStore::revision`] that replicas poll.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Rule, RuleInput, MAX_RULES};
use crate::{Error, Result};

/// Audit entries the memory store keeps (the oldest are dropped).
pub const MAX_AUDIT: usize = 10_000;

/// Where rules live.
#[async_trait]
pub trait RuleStore: Send + Sync + 'static {
    /// All rules (enabled or not), oldest first.
    async fn list(&self) -> Result<Vec<Rule>>;
    /// One rule; [`Error::NotFound`] (`rule <id>`) when there is none.
    async fn get(&self, id: Uuid) -> Result<Rule>;
    /// Stores a new rule at version 1; [`Error::Conflict`] when the store already holds
    /// [`MAX_RULES`](super::MAX_RULES).
    async fn create(&self, input: RuleInput, actor: &str) -> Result<Rule>;
    /// Replaces a rule's input and bumps its version.
    /// `expected_version`: when Some and not the stored version → Conflict naming both versions.
    async fn update(
        &self,
        id: Uuid,
        input: RuleInput,
        expected_version: Option<i64>,
        actor: &str,
    ) -> Result<Rule>;
    /// Removes a rule ([`Error::NotFound`] when there is none); its audit entries stay.
    async fn delete(&self, id: Uuid, actor: &str) -> Result<()>;
    /// Audit entries newest first, optionally of one rule, at most `limit`.
    async fn audit(&self, rule: Option<Uuid>, limit: usize) -> Result<Vec<AuditEntry>>;
    /// A number that changes on every write (replicas poll it every 500 ms and reload the rules when it
    /// moves). It only grows, and reads never move it.
    async fn revision(&self) -> Result<i64>;
    /// Where the rules are, for logs (no credentials).
    fn describe(&self) -> String;
}

/// One write to a rule.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct AuditEntry {
    /// Increases with every write, in commit order.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    pub rule_id: Uuid,
    /// The rule's version after the write (for `delete`, the version deleted).
    pub version: i64,
    /// Paths of the input fields that differ (`priority`, `actions[0].factor`, `conditions.segment`); for
    /// `create` and `delete`, every top-level field.
    pub changes: Vec<String>,
    /// The rule's input before the write (`None` for `create`).
    pub before: Option<Value>,
    /// The rule's input after the write (`None` for `delete`).
    pub after: Option<Value>,
}

/// Paths of the fields that differ between two JSON documents, sorted: objects are compared key by key
/// (`conditions.market`), arrays of objects of equal length element by element (`actions[0].factor`);
/// any other differing value (a scalar, a list of scalars, lists of different lengths) is reported at
/// its own path. A differing root that is not an object is reported as `$`.
pub fn diff(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match (before, after) {
        (Value::Object(_), Value::Object(_)) => walk(before, after, "", &mut out),
        _ if before != after => out.push("$".to_string()),
        _ => {}
    }
    out
}

fn walk(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) => walk(x, y, &p, out),
                    (None, None) => {}
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(b), Value::Array(a))
            if b.len() == a.len() && b.iter().chain(a).any(|v| v.is_object()) =>
        {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                walk(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

/// The current time at the precision PostgreSQL keeps (microseconds), so both stores return equal
/// rules for equal writes.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("encoding a rule: {e}")))
}

pub(crate) fn not_found(id: Uuid) -> Error {
    Error::NotFound(format!("rule {id}"))
}

pub(crate) fn stale(id: Uuid, current: i64, expected: i64) -> Error {
    Error::Conflict(format!(
        "rule {id} is at version {current}, not {expected}: reload and retry"
    ))
}

pub(crate) fn full() -> Error {
    Error::Conflict(format!("rules: at most {MAX_RULES}"))
}

/// The change list of a write: field paths between the two inputs (`{}` standing for "no rule").
pub(crate) fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let empty = Value::Object(Default::default());
    diff(before.unwrap_or(&empty), after.unwrap_or(&empty))
}

/// The audit entry of one write, its `seq` (0 here) assigned by the store.
pub(crate) fn audit_entry(
    action: &str,
    rule_id: Uuid,
    version: i64,
    actor: &str,
    at: DateTime<Utc>,
    before: Option<Value>,
    after: Option<Value>,
) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        rule_id,
        version,
        changes: changes(before.as_ref(), after.as_ref()),
        before,
        after,
    }
}

#[derive(Default)]
struct Inner {
    rules: HashMap<Uuid, Rule>,
    audit: VecDeque<AuditEntry>,
    /// The last audit `seq` handed out; also the revision.
    seq: i64,
}

impl Inner {
    /// Appends `entry` with the next `seq`, dropping the oldest beyond [`MAX_AUDIT`].
    fn log(&mut self, mut entry: AuditEntry) {
        self.seq += 1;
        entry.seq = self.seq;
        self.audit.push_back(entry);
        while self.audit.len() > MAX_AUDIT {
            self.audit.pop_front();
        }
    }
}

/// Rules in process memory, for the embedded demo and tests: nothing survives a restart and replicas do
/// not share it.
///
/// Bounds: at most [`MAX_RULES`] (10,000) rules (creating more is an [`Error::Conflict`] `rules: at most
/// 10000`) and the last [`MAX_AUDIT`] (10,000) audit entries (the oldest are dropped; the revision keeps
/// counting).
#[derive(Default)]
pub struct MemoryRuleStore {
    inner: Mutex<Inner>,
}

impl MemoryRuleStore {
    /// An empty store.
    pub fn new() -> MemoryRuleStore {
        MemoryRuleStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl RuleStore for MemoryRuleStore {
    async fn list(&self) -> Result<Vec<Rule>> {
        let mut rules: Vec<Rule> = self.lock().rules.values().cloned().collect();
        rules.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(rules)
    }

    async fn get(&self, id: Uuid) -> Result<Rule> {
        self.lock()
            .rules
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    async fn create(&self, input: RuleInput, actor: &str) -> Result<Rule> {
        let after = to_json(&input)?;
        let mut g = self.lock();
        if g.rules.len() >= MAX_RULES {
            return Err(full());
        }
        let at = now();
        let rule = Rule {
            id: Uuid::new_v4(),
            input,
            version: 1,
            created_at: at,
            updated_at: at,
            updated_by: actor.to_string(),
        };
        g.rules.insert(rule.id, rule.clone());
        g.log(audit_entry(
            "create",
            rule.id,
            1,
            actor,
            at,
            None,
            Some(after),
        ));
        Ok(rule)
    }

    async fn update(
        &self,
        id: Uuid,
        input: RuleInput,
        expected_version: Option<i64>,
        actor: &str,
    ) -> Result<Rule> {
        let after = to_json(&input)?;
        let mut g = self.lock();
        let current = g.rules.get(&id).cloned().ok_or_else(|| not_found(id))?;
        if let Some(v) = expected_version.filter(|v| *v != current.version) {
            return Err(stale(id, current.version, v));
        }
        let before = to_json(&current.input)?;
        let at = now();
        let rule = Rule {
            input,
            version: current.version + 1,
            updated_at: at,
            updated_by: actor.to_string(),
            ..current
        };
        g.rules.insert(id, rule.clone());
        g.log(audit_entry(
            "update",
            id,
            rule.version,
            actor,
            at,
            Some(before),
            Some(after),
        ));
        Ok(rule)
    }

    async fn delete(&self, id: Uuid, actor: &str) -> Result<()> {
        let mut g = self.lock();
        let rule = g.rules.remove(&id).ok_or_else(|| not_found(id))?;
        let before = to_json(&rule.input)?;
        g.log(audit_entry(
            "delete",
            id,
            rule.version,
            actor,
            now(),
            Some(before),
            None,
        ));
        Ok(())
    }

    async fn audit(&self, rule: Option<Uuid>, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(self
            .lock()
            .audit
            .iter()
            .rev()
            .filter(|a| rule.is_none_or(|id| a.rule_id == id))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn revision(&self) -> Result<i64> {
        Ok(self.lock().seq)
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_field_paths() {
        let a = json!({"name": "x", "priority": 1, "conditions": {"segment": ["New"], "market": []},
            "actions": [{"type": "boost", "factor": 1.5}, {"type": "quota", "max": 2}]});
        let b = json!({"name": "x", "priority": 2, "conditions": {"segment": ["New", "Lapsed"], "market": []},
            "actions": [{"type": "boost", "factor": 2.0}, {"type": "quota", "max": 2}]});
        assert_eq!(
            diff(&a, &b),
            ["actions[0].factor", "conditions.segment", "priority"]
        );
        assert!(diff(&a, &a).is_empty());
        let c = json!({"name": "x", "priority": 1, "conditions": {"segment": ["Lapsed"], "market": [],
            "starts_at": "2026-01-01T00:00:00Z"}, "actions": [{"type": "boost", "factor": 1.5}]});
        assert_eq!(
            diff(&a, &c),
            ["actions", "conditions.segment", "conditions.starts_at"]
        );
        assert_eq!(changes(None, Some(&json!({"b": 1, "a": 2}))), ["a", "b"]);
        assert_eq!(diff(&json!(1), &json!(2)), ["$"]);
    }
}
