//! PostgreSQL connections for the durable stores (rules, experiments, price overrides); the plumbing is
//! [`pipelines::pg`], shared with the bandits and commerce stores.

use sqlx::postgres::PgPool;

use crate::Result;

pub use pipelines::pg::redact;

/// Connections per serving replica: admin writes are rare and reads are a revision poll every 500 ms.
pub const POOL_MAX_CONNECTIONS: u32 = 4;

/// A pool on `url` (`postgres://…`).
pub async fn connect(url: &str) -> Result<PgPool> {
    Ok(pipelines::pg::connect(url, POOL_MAX_CONNECTIONS).await?)
}

/// Creates an empty database `<prefix>_<uuid>` next to `base_url`'s and returns its URL (tests).
pub async fn fresh_database(base_url: &str, prefix: &str) -> Result<String> {
    Ok(pipelines::pg::fresh_database(base_url, prefix).await?)
}

/// Runs `ddl` under the advisory lock `lock` (see [`pipelines::pg::create_schema`]).
pub async fn create_schema(pool: &PgPool, lock: i64, ddl: &[&str]) -> Result<()> {
    Ok(pipelines::pg::create_schema(pool, lock, ddl).await?)
}
