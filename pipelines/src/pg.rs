//! PostgreSQL plumbing shared by the durable stores (bandits, serving's rules / experiments / prices,
//! commerce): pools, schema creation under an advisory lock, URL redaction, fresh test databases.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::{Error, Result};

/// How long a caller waits for a pooled connection before the store reports `Unavailable`.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of at most `max_connections` on `url` (`postgres://…`).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
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
        return Err(Error::BadInput(format!("database name `{name}`")));
    }
    let admin = connect(base_url, 1).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .map_err(from_sqlx)?;
    admin.close().await;
    let (head, _) = base_url.rsplit_once('/').unwrap_or((base_url, ""));
    Ok(format!("{head}/{name}"))
}

/// Runs `ddl` (idempotent statements) under the session advisory lock `lock`, so replicas starting together
/// do not race on `CREATE TABLE IF NOT EXISTS`; the lock is released whatever the outcome.
pub async fn create_schema(pool: &PgPool, lock: i64, ddl: &[&str]) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(from_sqlx)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let mut result = Ok(());
    for statement in ddl {
        if let Err(e) = sqlx::query(statement).execute(&mut *conn).await {
            result = Err(from_sqlx(e));
            break;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    result
}

/// Connection-level failures are `Unavailable` (retry later); anything else is `Internal`.
pub fn from_sqlx(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => Error::Unavailable(format!("postgres: {e}")),
        other => Error::Internal(format!("postgres: {other}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
