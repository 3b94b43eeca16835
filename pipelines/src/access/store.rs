//! Where key records live: [`FileKeys`] (`api_keys.json` in the data dir, embedded) and [`PgKeys`] (table
//! `lusso_api_keys`, production). Both keep revoked keys (the audit trail names them); a name is never reused.
//! Bound: at most [`MAX_KEYS`] records; creating one more is refused with a reason.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::Row;
use tokio::sync::Mutex;

use super::{KeyKind, KeyRecord, Scope};
use crate::pg::from_sqlx;
use crate::{Error, Result};

/// Most key records a store keeps (revoked ones included).
pub const MAX_KEYS: usize = 10_000;

/// Key records, by name.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every record, revoked ones included, oldest first.
    async fn all(&self) -> Result<Vec<KeyRecord>>;
    /// Adds a record; `BadInput` when the name is taken (even by a revoked key) or the store is full.
    async fn insert(&self, record: KeyRecord) -> Result<()>;
    /// Marks the key in force named `name` revoked at `at`; `false` when there is none.
    async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool>;
    fn describe(&self) -> String;
}

fn name_taken(name: &str) -> Error {
    Error::BadInput(format!(
        "name: a key named `{name}` exists (names are never reused, even after a revocation)"
    ))
}

fn full() -> Error {
    Error::BadInput(format!(
        "the key store holds its maximum of {MAX_KEYS} keys"
    ))
}

/// Keys in a JSON file (written atomically: a temporary file renamed over it, mode 0600).
pub struct FileKeys {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileKeys {
    /// The file the embedded store uses in `data_dir`.
    pub fn in_dir(data_dir: &Path) -> FileKeys {
        FileKeys::new(data_dir.join("api_keys.json"))
    }

    pub fn new(path: PathBuf) -> FileKeys {
        FileKeys {
            path,
            lock: Mutex::new(()),
        }
    }

    async fn read(&self) -> Result<Vec<KeyRecord>> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Internal(format!("key store {}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Unavailable(format!(
                "key store {}: {e}",
                self.path.display()
            ))),
        }
    }

    async fn write(&self, records: &[KeyRecord]) -> Result<()> {
        let io = |e: std::io::Error| {
            Error::Unavailable(format!("key store {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(records)
            .map_err(|e| Error::Internal(format!("key store: {e}")))?;
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .await
                .map_err(io)?;
        }
        tokio::fs::rename(&tmp, &self.path).await.map_err(io)
    }
}

#[async_trait]
impl KeyStore for FileKeys {
    async fn all(&self) -> Result<Vec<KeyRecord>> {
        self.read().await
    }

    async fn insert(&self, record: KeyRecord) -> Result<()> {
        let _guard = self.lock.lock().await;
        let mut records = self.read().await?;
        if records.iter().any(|r| r.name == record.name) {
            return Err(name_taken(&record.name));
        }
        if records.len() >= MAX_KEYS {
            return Err(full());
        }
        records.push(record);
        self.write(&records).await
    }

    async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool> {
        let _guard = self.lock.lock().await;
        let mut records = self.read().await?;
        let Some(r) = records
            .iter_mut()
            .find(|r| r.name == name && r.revoked_at.is_none())
        else {
            return Ok(false);
        };
        r.revoked_at = Some(at);
        self.write(&records).await?;
        Ok(true)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

const SCHEMA_LOCK: i64 = 0x4c55_5353_4f4b_4559;

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS lusso_api_keys (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('publishable', 'secret')),
        scopes TEXT[] NOT NULL,
        origins TEXT[] NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        revoked_at TIMESTAMPTZ
    )"];

/// Keys in PostgreSQL (`lusso_api_keys`), shared by every replica.
pub struct PgKeys {
    pool: PgPool,
}

impl PgKeys {
    /// Connects and creates the table when missing.
    pub async fn connect(url: &str) -> Result<PgKeys> {
        let pool = crate::pg::connect(url, 2).await?;
        crate::pg::create_schema(&pool, SCHEMA_LOCK, SCHEMA).await?;
        Ok(PgKeys { pool })
    }
}

fn record_of(row: &sqlx::postgres::PgRow) -> Result<KeyRecord> {
    let kind: String = row.try_get("kind").map_err(from_sqlx)?;
    let scopes: Vec<String> = row.try_get("scopes").map_err(from_sqlx)?;
    let scopes = Scope::parse_list(&scopes.join(","))
        .map_err(|e| Error::Internal(format!("lusso_api_keys.scopes: {e}")))?;
    Ok(KeyRecord {
        name: row.try_get("name").map_err(from_sqlx)?,
        kind: if kind == "publishable" {
            KeyKind::Publishable
        } else {
            KeyKind::Secret
        },
        scopes,
        origins: row.try_get("origins").map_err(from_sqlx)?,
        hash: row.try_get("hash").map_err(from_sqlx)?,
        prefix: row.try_get("prefix").map_err(from_sqlx)?,
        created_at: row.try_get("created_at").map_err(from_sqlx)?,
        revoked_at: row.try_get("revoked_at").map_err(from_sqlx)?,
    })
}

#[async_trait]
impl KeyStore for PgKeys {
    async fn all(&self) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT name, kind, scopes, origins, hash, prefix, created_at, revoked_at
             FROM lusso_api_keys ORDER BY created_at, name LIMIT $1",
        )
        .bind(MAX_KEYS as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(record_of).collect()
    }

    async fn insert(&self, r: KeyRecord) -> Result<()> {
        let scopes: Vec<&str> = r.scopes.iter().map(|s| s.as_str()).collect();
        // The count and the insert in one statement: the bound holds under concurrent creates.
        let done = sqlx::query(
            "INSERT INTO lusso_api_keys (name, kind, scopes, origins, hash, prefix, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE (SELECT count(*) FROM lusso_api_keys) < $8
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&r.name)
        .bind(r.kind.as_str())
        .bind(&scopes)
        .bind(&r.origins)
        .bind(&r.hash)
        .bind(&r.prefix)
        .bind(r.created_at)
        .bind(MAX_KEYS as i64)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lusso_api_keys WHERE name = $1)")
                .bind(&r.name)
                .fetch_one(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Err(if exists { name_taken(&r.name) } else { full() })
    }

    async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE lusso_api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    fn describe(&self) -> String {
        "postgres lusso_api_keys".into()
    }
}
