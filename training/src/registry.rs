//! The model registry: every trained model is a version stored as files, with its metadata; one version is
//! promoted (what serving loads and hot-reloads); promotions form a stack, so rollback returns to the one
//! before, and every change is kept in an audit log.
//!
//! Layout under the registry root (`LUSSO_MODELS_DIR`, default `$LUSSO_DATA_DIR/models`):
//! - `versions/<version>/model.bin`: the [`Model`] (factors, id maps, popularity);
//! - `versions/<version>/meta.json`: the [`ModelMeta`] (parameters, data window, training-data hash,
//!   metrics, creation time, code version, per-iteration history);
//! - `registry.json`: the [`RegistryState`] (promoted version, promotion stack, audit log), replaced
//!   atomically (write + rename) under the `registry.lock` file, so concurrent CLIs and servers never see a
//!   torn state. Readers (serving) only read `registry.json` and the promoted version's files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::eval::Metrics;
use crate::model::{Algo, Model};
use crate::{Error, Result};

/// The code version recorded with each model: crate version and git revision at build time.
pub fn code_version() -> String {
    format!(
        "lusso {} ({})",
        env!("CARGO_PKG_VERSION"),
        option_env!("LUSSO_GIT_REV").unwrap_or("unknown revision")
    )
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// `log`, `sim`, `csv:PATH` or `online-retail:PATH`.
    pub source: String,
    pub users: usize,
    pub items: usize,
    /// Distinct (user, item) entries in the training matrix.
    pub interactions: usize,
    /// SHA-256 of the training matrix with its ids.
    pub hash: String,
    /// Oldest and newest interaction used (RFC 3339; absent for untimed CSV).
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The point-in-time cut, if any.
    pub as_of: Option<DateTime<Utc>>,
}

/// One training iteration as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    pub iteration: usize,
    pub seconds: f64,
    /// ALS training loss (when computed).
    pub loss: Option<f64>,
    /// BPR: share of sampled pairs ordered right.
    pub correct: Option<f64>,
    pub ndcg_at_k: Option<f64>,
    pub precision_at_k: Option<f64>,
}

/// A version's metadata (`meta.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub version: String,
    pub algo: Algo,
    pub created_at: DateTime<Utc>,
    pub code_version: String,
    /// Hyperparameters and data settings, as given.
    pub params: serde_json::Value,
    pub data: DataSummary,
    /// The split evaluated on (`none`, `time:DAYS`, `leave-last-out`).
    pub split: String,
    pub metrics: Option<Metrics>,
    pub seconds_per_iteration: f64,
    pub history: Vec<IterationRecord>,
}

/// A registry change, for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `promote` or `rollback`.
    pub action: String,
    pub version: String,
    /// The version promoted before.
    pub previous: Option<String>,
}

/// `registry.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RegistryState {
    pub promoted: Option<String>,
    /// Promotions still in effect, oldest first; the last is `promoted`.
    pub stack: Vec<String>,
    pub log: Vec<AuditEntry>,
}

/// At most this many audit entries are kept (oldest dropped).
pub const AUDIT_LOG_MAX: usize = 1_000;

/// A registry rooted at a directory.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    /// Opens (creating the directories) the registry at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Registry> {
        let root = root.into();
        let versions = root.join("versions");
        std::fs::create_dir_all(&versions).map_err(|e| Error::io(&versions, e))?;
        Ok(Registry { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, version: &str) -> Result<PathBuf> {
        let ok = !version.is_empty()
            && version.len() <= 128
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !version.starts_with('.');
        if !ok {
            return Err(Error::BadInput(format!(
                "version: {:?} is not a model version (letters, digits, '-', '_', '.')",
                version.chars().take(140).collect::<String>()
            )));
        }
        Ok(self.root.join("versions").join(version))
    }

    /// Stores a new version; `meta.version` is chosen here (`YYYYMMDDTHHMMSSZ-ALGO-HASH8`, suffixed `-2`, `-3`…
    /// if taken) and returned.
    pub fn register(&self, model: &Model, mut meta: ModelMeta) -> Result<ModelMeta> {
        let base = format!(
            "{}-{}-{}",
            meta.created_at.format("%Y%m%dT%H%M%SZ"),
            meta.algo.as_str(),
            meta.data.hash.get(..8).unwrap_or("nohash")
        );
        let _lock = Lock::take(&self.root)?;
        let mut n = 1;
        let (version, dir) = loop {
            let v = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let d = self.dir(&v)?;
            if !d.exists() {
                break (v, d);
            }
            n += 1;
        };
        meta.version = version;
        let tmp = self
            .root
            .join("versions")
            .join(format!(".{}.tmp", meta.version));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        model.save(&tmp.join("model.bin"))?;
        write_json(&tmp.join("meta.json"), &meta)?;
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        Ok(meta)
    }

    /// Every version, newest first.
    pub fn list(&self) -> Result<Vec<ModelMeta>> {
        let versions = self.root.join("versions");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&versions).map_err(|e| Error::io(&versions, e))? {
            let entry = entry.map_err(|e| Error::io(&versions, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            out.push(self.meta(&name)?);
        }
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.version.cmp(&a.version))
        });
        Ok(out)
    }

    /// One version's metadata.
    pub fn meta(&self, version: &str) -> Result<ModelMeta> {
        let path = self.dir(version)?.join("meta.json");
        let text = std::fs::read_to_string(&path).map_err(|e| match Error::io(&path, e) {
            Error::NotFound(_) => {
                Error::NotFound(format!("version: {version} is not in the registry"))
            }
            other => other,
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("{}: corrupt metadata: {e}", path.display())))
    }

    /// One version's model.
    pub fn load(&self, version: &str) -> Result<Model> {
        self.meta(version)?;
        Model::load(&self.dir(version)?.join("model.bin"))
    }

    /// The promotion state.
    pub fn state(&self) -> Result<RegistryState> {
        let path = self.root.join("registry.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::Internal(format!("{}: corrupt registry state: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryState::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Makes `version` the promoted one (idempotent: promoting the promoted version changes nothing).
    pub fn promote(&self, version: &str) -> Result<RegistryState> {
        self.meta(version)?;
        let _lock = Lock::take(&self.root)?;
        let mut s = self.state()?;
        if s.promoted.as_deref() == Some(version) {
            return Ok(s);
        }
        s.log.push(AuditEntry {
            at: Utc::now(),
            action: "promote".into(),
            version: version.to_string(),
            previous: s.promoted.clone(),
        });
        s.stack.push(version.to_string());
        s.promoted = Some(version.to_string());
        self.save_state(&mut s)?;
        Ok(s)
    }

    /// Returns to the version promoted before the current one.
    pub fn rollback(&self) -> Result<RegistryState> {
        let _lock = Lock::take(&self.root)?;
        let mut s = self.state()?;
        if s.stack.len() < 2 {
            return Err(Error::Conflict(match &s.promoted {
                Some(v) => format!(
                    "rollback: {v} is the first promoted version; there is nothing to roll back to"
                ),
                None => "rollback: no version has been promoted yet".into(),
            }));
        }
        let current = s.stack.pop();
        let back = s.stack.last().cloned().unwrap_or_default();
        s.log.push(AuditEntry {
            at: Utc::now(),
            action: "rollback".into(),
            version: back.clone(),
            previous: current,
        });
        s.promoted = Some(back);
        self.save_state(&mut s)?;
        Ok(s)
    }

    /// The promoted version's metadata and model, if any.
    pub fn promoted(&self) -> Result<Option<(ModelMeta, Model)>> {
        match self.state()?.promoted {
            Some(v) => Ok(Some((self.meta(&v)?, self.load(&v)?))),
            None => Ok(None),
        }
    }

    fn save_state(&self, s: &mut RegistryState) -> Result<()> {
        if s.log.len() > AUDIT_LOG_MAX {
            let drop = s.log.len() - AUDIT_LOG_MAX;
            s.log.drain(..drop);
        }
        write_json(&self.root.join("registry.json"), s)
    }
}

/// Writes JSON atomically (temporary file, fsync, rename).
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&text).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// An exclusive lock file (`registry.lock`, created with `O_EXCL`) held while the state changes; a lock
/// older than 30 s is taken to be left by a crashed process and broken. Waits at most 10 s.
struct Lock(PathBuf);

impl Lock {
    fn take(root: &Path) -> Result<Lock> {
        let path = root.join("registry.lock");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Lock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(30));
                    if stale {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(Error::Unavailable(format!(
                            "{}: the registry is locked by another process",
                            path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
