//! Backend selection shared by every role, read from the `LUSSO_*` environment (contract names).
//!
//! An unset variable means "embedded": the in-process bus, the Parquet event log under the data dir.

use std::path::PathBuf;

/// Where the backends are. Built by [`BackendConfig::from_env`]; CLI flags may override fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendConfig {
    /// `LUSSO_KAFKA_BROKERS`, e.g. `127.0.0.1:9092`; `None` = embedded bus.
    pub kafka_brokers: Option<String>,
    /// `LUSSO_CLICKHOUSE_URL`, e.g. `http://127.0.0.1:8123`; `None` = Parquet event log.
    pub clickhouse_url: Option<String>,
    /// `LUSSO_CLICKHOUSE_DATABASE` (default `lusso`) and `LUSSO_CLICKHOUSE_TABLE` (default `events`);
    /// tests use fresh names.
    pub clickhouse_database: String,
    /// Event table name.
    pub clickhouse_table: String,
    /// `LUSSO_DATA_DIR` (default `./data`): Parquet event log and other embedded state.
    pub data_dir: PathBuf,
    /// `LUSSO_TOPIC_PREFIX` (default empty): prepended to every topic name; tests use a fresh one.
    pub topic_prefix: String,
    /// `LUSSO_DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/lusso`; `None` = in-memory state for
    /// the services that keep it in PostgreSQL (bandits).
    pub database_url: Option<String>,
    /// `LUSSO_CATALOG_SEED` (default 42): seed of the built-in synthetic catalogue every role and the simulator
    /// share (product attributes for features, prices for serving).
    pub catalog_seed: u64,
}

/// Default catalogue seed (the demo's).
pub const DEFAULT_CATALOG_SEED: u64 = 42;

/// Default ClickHouse database (contract).
pub const DEFAULT_CLICKHOUSE_DATABASE: &str = "lusso";
/// Default ClickHouse table (contract).
pub const DEFAULT_CLICKHOUSE_TABLE: &str = "events";

/// The trimmed value of env `name`, `None` when unset or blank.
pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Overrides `into` with the number in env `key` when it is set; `Err(reason)` when it is not a number
/// (callers name `key` in their own error).
pub fn env_number<T: std::str::FromStr>(key: &str, into: &mut T) -> Result<(), String> {
    if let Some(v) = env_nonempty(key) {
        *into = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
    }
    Ok(())
}

impl BackendConfig {
    /// Reads the `LUSSO_*` variables.
    pub fn from_env() -> Self {
        BackendConfig {
            kafka_brokers: env_nonempty("LUSSO_KAFKA_BROKERS"),
            clickhouse_url: env_nonempty("LUSSO_CLICKHOUSE_URL"),
            clickhouse_database: env_nonempty("LUSSO_CLICKHOUSE_DATABASE")
                .unwrap_or_else(|| DEFAULT_CLICKHOUSE_DATABASE.into()),
            clickhouse_table: env_nonempty("LUSSO_CLICKHOUSE_TABLE")
                .unwrap_or_else(|| DEFAULT_CLICKHOUSE_TABLE.into()),
            data_dir: env_nonempty("LUSSO_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data")),
            topic_prefix: env_nonempty("LUSSO_TOPIC_PREFIX").unwrap_or_default(),
            database_url: env_nonempty("LUSSO_DATABASE_URL"),
            catalog_seed: env_nonempty("LUSSO_CATALOG_SEED")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_CATALOG_SEED),
        }
    }

    /// The full name of a topic under this config's prefix.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{}", self.topic_prefix, base)
    }

    /// Everything embedded, state under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        BackendConfig {
            data_dir: data_dir.into(),
            clickhouse_database: DEFAULT_CLICKHOUSE_DATABASE.into(),
            clickhouse_table: DEFAULT_CLICKHOUSE_TABLE.into(),
            catalog_seed: DEFAULT_CATALOG_SEED,
            ..Default::default()
        }
    }
}
