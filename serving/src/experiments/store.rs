//! Durable experiments: the [`ExperimentStore`] trait and its in-memory implementation.
//!
//! Every implementation validates inputs ([`super::validate`]) before writing, numbers versions from 1
//! (+1 per update), refuses a stale `expected_version` with [`Error::Conflict`], and moves
//! [`ExperimentStore::revision`] on every write so replicas know when to reload. Serving holds every
//! experiment in memory and evaluates each on every request, hence the bound [`MAX_EXPERIMENTS`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use super::{validate, Experiment, ExperimentInput};
use crate::{Error, Result};

/// Most experiments a store holds (stopped ones included; far above the dozen a merchandising team runs
/// at once). A create beyond it is a [`Error::Conflict`].
pub const MAX_EXPERIMENTS: usize = 1_000;

/// Where experiments live.
#[async_trait]
pub trait ExperimentStore: Send + Sync {
    /// Every experiment, ordered by key.
    async fn list(&self) -> Result<Vec<Experiment>>;
    /// The experiment `key`; [`Error::NotFound`] when absent.
    async fn get(&self, key: &str) -> Result<Experiment>;
    /// Stores a new experiment at version 1; [`Error::Conflict`] when the key exists or the store is full.
    async fn create(&self, input: ExperimentInput, actor: &str) -> Result<Experiment>;
    /// Replaces experiment `key` (the input's key must be `key`) and bumps its version; with
    /// `expected_version`, [`Error::Conflict`] unless it is the current version. [`Error::NotFound`] when
    /// absent.
    async fn update(
        &self,
        key: &str,
        input: ExperimentInput,
        expected_version: Option<i64>,
        actor: &str,
    ) -> Result<Experiment>;
    /// A counter that moves on every successful write.
    async fn revision(&self) -> Result<i64>;
    /// Human description (backend, table).
    fn describe(&self) -> String;
}

/// Checks the input and that it names `key` (keys are immutable).
pub(crate) fn check_update(key: &str, input: &ExperimentInput) -> Result<()> {
    validate(input)?;
    if input.key != key {
        return Err(Error::bad(
            "key",
            format!(
                "cannot rename experiment `{key}` to `{}`; create a new one",
                input.key
            ),
        ));
    }
    Ok(())
}

pub(crate) fn missing(key: &str) -> Error {
    Error::NotFound(format!("experiment `{key}` does not exist"))
}

pub(crate) fn duplicate(key: &str) -> Error {
    Error::Conflict(format!("experiment `{key}` already exists"))
}

pub(crate) fn full(max: usize) -> Error {
    Error::Conflict(format!(
        "experiments are capped at {max} (MAX_EXPERIMENTS): reuse a stopped experiment"
    ))
}

pub(crate) fn stale(key: &str, current: i64, expected: i64) -> Error {
    Error::Conflict(format!(
        "experiment `{key}` is at version {current}, not {expected}: reload and retry"
    ))
}

/// `now` at PostgreSQL's microsecond precision, so a stored timestamp reads back equal.
pub(crate) fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

struct Inner {
    experiments: BTreeMap<String, Experiment>,
    revision: i64,
}

/// In-memory experiments for the embedded demo and tests: one process, nothing survives a restart.
pub struct MemoryExperimentStore {
    max: usize,
    inner: Mutex<Inner>,
}

impl Default for MemoryExperimentStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryExperimentStore {
    /// An empty store bounded at [`MAX_EXPERIMENTS`].
    pub fn new() -> MemoryExperimentStore {
        Self::with_max(MAX_EXPERIMENTS)
    }

    /// An empty store bounded at `max` experiments.
    pub fn with_max(max: usize) -> MemoryExperimentStore {
        MemoryExperimentStore {
            max,
            inner: Mutex::new(Inner {
                experiments: BTreeMap::new(),
                revision: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ExperimentStore for MemoryExperimentStore {
    async fn list(&self) -> Result<Vec<Experiment>> {
        Ok(self.lock().experiments.values().cloned().collect())
    }

    async fn get(&self, key: &str) -> Result<Experiment> {
        self.lock()
            .experiments
            .get(key)
            .cloned()
            .ok_or_else(|| missing(key))
    }

    async fn create(&self, input: ExperimentInput, actor: &str) -> Result<Experiment> {
        validate(&input)?;
        let mut inner = self.lock();
        if inner.experiments.contains_key(&input.key) {
            return Err(duplicate(&input.key));
        }
        if inner.experiments.len() >= self.max {
            return Err(full(self.max));
        }
        let now = now_micros();
        let exp = Experiment::from_input(input, 1, now, now, actor);
        inner.experiments.insert(exp.key.clone(), exp.clone());
        inner.revision += 1;
        tracing::info!(experiment = %exp.key, actor, "experiment created");
        Ok(exp)
    }

    async fn update(
        &self,
        key: &str,
        input: ExperimentInput,
        expected_version: Option<i64>,
        actor: &str,
    ) -> Result<Experiment> {
        check_update(key, &input)?;
        let mut inner = self.lock();
        let current = inner.experiments.get(key).ok_or_else(|| missing(key))?;
        if let Some(expected) = expected_version.filter(|&v| v != current.version) {
            return Err(stale(key, current.version, expected));
        }
        let exp = Experiment::from_input(
            input,
            current.version + 1,
            current.created_at,
            now_micros(),
            actor,
        );
        inner.experiments.insert(exp.key.clone(), exp.clone());
        inner.revision += 1;
        tracing::info!(experiment = %exp.key, version = exp.version, actor, "experiment updated");
        Ok(exp)
    }

    async fn revision(&self) -> Result<i64> {
        Ok(self.lock().revision)
    }

    fn describe(&self) -> String {
        format!("memory (at most {} experiments)", self.max)
    }
}
