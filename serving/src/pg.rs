//! PostgreSQL connections for the durable stores (rules, experiments, price overrides).

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::{Error, Result};

/// Connections per serving replica: admin writes are rare and reads are a revision poll every 500 ms.
pub const POOL_MAX_CONNECTIONS: u32 = 4;
/// How long a request waits for a pooled connection before `503`.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool on `url` (`postgres://…`).
pub async fn connect(url: &str) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(POOL_MAX_CONNECTIONS)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| Error::Unavailable(format!("postgres {}: {e}", redact(url))))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Creates an empty database `<prefix>_<uuid>` next to `base_url`'s and returns its URL (for tests: each
/// scenario gets its own).
pub async fn fresh_database(base_url: &str, prefix: &str) -> Result<String> {
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    // Identifiers cannot be bound; `name` is built above from a UUID and a caller constant.
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::bad("prefix", format!("database name `{name}`")));
    }
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(base_url)
        .await
        .map_err(|e| Error::Unavailable(format!("postgres {}: {e}", redact(base_url))))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let (head, _) = base_url.rsplit_once('/').unwrap_or((base_url, ""));
    Ok(format!("{head}/{name}"))
}

/// Runs `ddl` (idempotent statements) under the session advisory lock `lock`, so replicas starting together
/// do not race on `CREATE TABLE IF NOT EXISTS`; the lock is released whatever the outcome.
pub async fn create_schema(pool: &PgPool, lock: i64, ddl: &[&str]) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut *conn)
        .await?;
    let mut result = Ok(());
    for statement in ddl {
        if let Err(e) = sqlx::query(statement).execute(&mut *conn).await {
            result = Err(Error::from(e));
            break;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut *conn)
        .await?;
    result
}
