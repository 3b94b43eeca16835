//! API keys and scopes: who may call what.
//!
//! A key is `pk_…` (publishable: safe in a browser, storefront routes only) or `sk_…` (secret, with scopes).
//! Only the key's SHA-256 is stored ([`store`]: a file in the data dir when embedded, PostgreSQL in
//! production); the key itself is shown once, when it is created. Keys carry 192 random bits, so a plain
//! SHA-256 (no salt, no slow hash) cannot be reversed or guessed. [`Keys`] holds the current set in memory,
//! reloaded from the store every [`Keys::REFRESH`], so checking a key costs one hash and one map lookup and a
//! revocation applies on every replica within that time.

pub mod store;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

pub use store::{FileKeys, KeyStore, PgKeys};

/// What a secret key may do beyond the publishable routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "rules:write")]
    RulesWrite,
    #[serde(rename = "prices:write")]
    PricesWrite,
    #[serde(rename = "experiments:write")]
    ExperimentsWrite,
    #[serde(rename = "slots:write")]
    SlotsWrite,
    #[serde(rename = "models:write")]
    ModelsWrite,
    #[serde(rename = "inventory:write")]
    InventoryWrite,
    #[serde(rename = "catalog:write")]
    CatalogWrite,
    #[serde(rename = "orders:manage")]
    OrdersManage,
    #[serde(rename = "rewards:write")]
    RewardsWrite,
    /// Shopper and product features, segments, reports, OPE, the quarantine list, orders.
    #[serde(rename = "data:read")]
    DataRead,
    /// Quarantine replay, segment training.
    #[serde(rename = "data:admin")]
    DataAdmin,
}

impl Scope {
    /// Every scope; the `admin` preset.
    pub const ALL: [Scope; 11] = [
        Scope::RulesWrite,
        Scope::PricesWrite,
        Scope::ExperimentsWrite,
        Scope::SlotsWrite,
        Scope::ModelsWrite,
        Scope::InventoryWrite,
        Scope::CatalogWrite,
        Scope::OrdersManage,
        Scope::RewardsWrite,
        Scope::DataRead,
        Scope::DataAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RulesWrite => "rules:write",
            Scope::PricesWrite => "prices:write",
            Scope::ExperimentsWrite => "experiments:write",
            Scope::SlotsWrite => "slots:write",
            Scope::ModelsWrite => "models:write",
            Scope::InventoryWrite => "inventory:write",
            Scope::CatalogWrite => "catalog:write",
            Scope::OrdersManage => "orders:manage",
            Scope::RewardsWrite => "rewards:write",
            Scope::DataRead => "data:read",
            Scope::DataAdmin => "data:admin",
        }
    }

    /// Parses a comma list of scopes; `admin` stands for all of them.
    pub fn parse_list(list: &str) -> Result<BTreeSet<Scope>> {
        let mut out = BTreeSet::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "admin" {
                out.extend(Scope::ALL);
                continue;
            }
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| {
                    Error::BadInput(format!(
                        "scopes: `{name}` is not a scope (admin, {})",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ))
                })?;
            out.insert(scope);
        }
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Publishable (`pk_`) or secret (`sk_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Publishable,
    Secret,
}

impl KeyKind {
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Publishable => "pk_",
            KeyKind::Secret => "sk_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Publishable => "publishable",
            KeyKind::Secret => "secret",
        }
    }
}

/// A stored key: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Unique; the audit actor of every change made with the key.
    pub name: String,
    pub kind: KeyKind,
    /// Empty for publishable keys.
    pub scopes: BTreeSet<Scope>,
    /// Browser origins (`https://shop.example`) a publishable key may be used from; `*` = any.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Hex SHA-256 of the key.
    pub hash: String,
    /// The key's first characters, to tell keys apart in listings.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Longest key name (names appear in audit trails and logs).
pub const MAX_NAME_LEN: usize = 64;

/// What to create.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub kind: KeyKind,
    pub scopes: BTreeSet<Scope>,
    pub origins: Vec<String>,
}

impl NewKey {
    /// Checks the name (1–64 of `[A-Za-z0-9._-]`), that publishable keys have no scopes and secret keys have
    /// at least one, and the origins (`*` or `http(s)://host[:port]`).
    pub fn validate(&self) -> Result<()> {
        let n = &self.name;
        if n.is_empty()
            || n.len() > MAX_NAME_LEN
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::BadInput(format!(
                "name: `{n}` must be 1–{MAX_NAME_LEN} characters of letters, digits, `.`, `_` or `-`"
            )));
        }
        match (self.kind, self.scopes.is_empty()) {
            (KeyKind::Publishable, false) => return Err(Error::BadInput(
                "scopes: a publishable key has no scopes (it may call the storefront routes only)"
                    .into(),
            )),
            (KeyKind::Secret, true) => {
                return Err(Error::BadInput(
                    "scopes: a secret key needs at least one scope (or `admin`)".into(),
                ))
            }
            _ => {}
        }
        for o in &self.origins {
            let ok = o == "*"
                || ((o.starts_with("https://") || o.starts_with("http://"))
                    && !o.ends_with('/')
                    && o.split_once("://").is_some_and(|(_, h)| !h.is_empty()));
            if !ok {
                return Err(Error::BadInput(format!(
                    "origins: `{o}` must be `*` or a scheme and host such as https://shop.example"
                )));
            }
        }
        Ok(())
    }
}

/// A fresh key of `kind`: the prefix and 48 hex digits (192 bits from the thread's CSPRNG, ChaCha seeded by
/// the OS).
pub fn generate(kind: KeyKind) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{}{}", kind.prefix(), hex(&bytes))
}

/// Lower-case hex of `bytes` (keys, their hashes, order tokens).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// The caller a request was authenticated as (put in the request's extensions by the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: Arc<str>,
    pub kind: KeyKind,
    pub scopes: BTreeSet<Scope>,
    pub origins: Arc<[String]>,
}

impl Principal {
    fn of(r: &KeyRecord) -> Principal {
        Principal {
            name: r.name.as_str().into(),
            kind: r.kind,
            scopes: r.scopes.clone(),
            origins: r.origins.clone().into(),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.kind == KeyKind::Secret && self.scopes.contains(&scope)
    }

    /// Whether a browser on `origin` may use this key.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// The keys in force, in memory, reloaded from the store.
#[derive(Clone)]
pub struct Keys {
    store: Arc<dyn KeyStore>,
    current: Arc<RwLock<Arc<Snapshot>>>,
}

/// The keys in force at one reload.
#[derive(Default)]
struct Snapshot {
    by_hash: HashMap<String, Principal>,
    /// Every origin some publishable key in force allows (a CORS preflight carries no key).
    browser_origins: HashSet<String>,
    /// Some publishable key in force allows every origin (`*`).
    any_origin: bool,
}

impl Keys {
    /// How often [`Keys::run_refresh`] reloads the store: a new or revoked key applies within this.
    pub const REFRESH: Duration = Duration::from_secs(1);

    /// Loads the keys in force from `store`.
    pub async fn load(store: Arc<dyn KeyStore>) -> Result<Keys> {
        let keys = Keys {
            store,
            current: Arc::new(RwLock::new(Arc::new(Snapshot::default()))),
        };
        keys.reload().await?;
        Ok(keys)
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// Re-reads the store.
    pub async fn reload(&self) -> Result<()> {
        let map: HashMap<String, Principal> = self
            .store
            .all()
            .await?
            .iter()
            .filter(|r| r.revoked_at.is_none())
            .map(|r| (r.hash.clone(), Principal::of(r)))
            .collect();
        let publishable = map.values().filter(|p| p.kind == KeyKind::Publishable);
        let browser_origins: HashSet<String> = publishable
            .flat_map(|p| p.origins.iter().cloned())
            .collect();
        let snapshot = Snapshot {
            any_origin: browser_origins.contains("*"),
            browser_origins,
            by_hash: map,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether some publishable key in force may be used from a browser on `origin` (what a CORS preflight,
    /// which carries no key, is answered by).
    pub fn browser_origin_allowed(&self, origin: &str) -> bool {
        let s = self.snapshot();
        s.any_origin || s.browser_origins.contains(origin)
    }

    /// Reloads every [`Keys::REFRESH`] until `shutdown`; a failed reload keeps the last good set (logged).
    pub async fn run_refresh(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Self::REFRESH) => {}
            }
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "cannot reload API keys; keeping the last set");
            }
        }
    }

    /// The principal of a presented key, `None` when unknown or revoked.
    pub fn lookup(&self, key: &str) -> Option<Principal> {
        if !(key.starts_with("pk_") || key.starts_with("sk_")) || key.len() > 128 {
            return None;
        }
        self.lookup_hash(&hash(key))
    }

    /// The principal of a key by its hash (a console session keeps the hash, not the key).
    pub fn lookup_hash(&self, key_hash: &str) -> Option<Principal> {
        self.snapshot().by_hash.get(key_hash).cloned()
    }

    /// Creates a key and returns it (the only time it is seen) with its record.
    pub async fn create(&self, new: NewKey) -> Result<(String, KeyRecord)> {
        new.validate()?;
        let key = generate(new.kind);
        let record = KeyRecord {
            name: new.name,
            kind: new.kind,
            scopes: new.scopes,
            origins: new.origins,
            hash: hash(&key),
            prefix: key[..7].to_string(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        self.store.insert(record.clone()).await?;
        self.reload().await?;
        Ok((key, record))
    }

    /// Revokes the key named `name`; `false` when there is none in force.
    pub async fn revoke(&self, name: &str) -> Result<bool> {
        let done = self.store.revoke(name, Utc::now()).await?;
        self.reload().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
