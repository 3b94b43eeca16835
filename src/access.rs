//! Who may call what: the route table every role's routes are checked against, the key store of this
//! process, `lusso keys …`, the demo's keys, and the key the CLI's own HTTP clients send.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::http::Method;
use clap::Subcommand;
use pipelines::access::{FileKeys, KeyKind, KeyStore, Keys, NewKey, PgKeys, Scope};
use pipelines::config::BackendConfig;
use pipelines::http::auth::Access;

use Scope::*;

const RULES_READ: &[Scope] = &[DataRead, RulesWrite];
const PRICES_READ: &[Scope] = &[DataRead, PricesWrite];
const EXPERIMENTS_READ: &[Scope] = &[DataRead, ExperimentsWrite];
const SLOTS_READ: &[Scope] = &[DataRead, SlotsWrite];
const MODELS_READ: &[Scope] = &[DataRead, ModelsWrite];

/// One route of the table: method, path template (as mounted), what it needs.
pub(crate) struct Route {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

use Access::{AnyOf, Public, Publishable};

/// Every route of every role and what it needs (the process mounts the roles it runs). A route missing here
/// needs every scope, so a new route stays closed until it is listed; `tests/access.rs` calls every route of
/// this table on a running server with four kinds of caller.
pub(crate) const ROUTES: &[Route] = &[
    // Operations, the OpenAPI document and the event schema.
    r("GET", "/healthz", Public),
    r("GET", "/readyz", Public),
    r("GET", "/metrics", Public),
    r("GET", "/openapi.json", Public),
    r("GET", "/v1/schemas/events", Public),
    // The demo storefront page (its requests carry the publishable key), the console's login, and payment
    // providers' webhooks (verified by their signature).
    r("GET", "/storefront", Public),
    r("GET", "/console/login", Public),
    r("POST", "/console/login", Public),
    r("POST", "/console/logout", Public),
    r("POST", "/v1/payments/{provider}/webhook", Public),
    // The storefront's own calls.
    r("POST", "/v1/events", Publishable),
    r("GET", "/v1/recommendations", Publishable),
    r("GET", "/v1/products/{id}/similar", Publishable),
    r("GET", "/v1/prices", Publishable),
    r("GET", "/v1/markets", Publishable),
    r("GET", "/v1/products", Publishable),
    r("GET", "/v1/products/{id}", Publishable),
    r("GET", "/v1/locations", Publishable),
    r("GET", "/v1/inventory/{sku}", Publishable),
    r("GET", "/v1/experiments/{key}/assignment", Publishable),
    r("POST", "/v1/decisions", Publishable),
    r("POST", "/v1/carts", Publishable),
    r("GET", "/v1/carts/{id}", Publishable),
    r("POST", "/v1/carts/{id}/lines", Publishable),
    r("POST", "/v1/checkouts", Publishable),
    // An order's own routes: the shopper's browser with the order's access token (from the checkout), or
    // the shop with orders:manage (checked by the handler; the edge lets any key through).
    r(
        "POST",
        "/v1/orders/{id}/payment/confirm",
        Access::Owner(OrdersManage),
    ),
    r("GET", "/v1/orders/{id}", Access::Owner(OrdersManage)),
    r(
        "GET",
        "/v1/orders/{id}/invoice.xml",
        Access::Owner(OrdersManage),
    ),
    r(
        "GET",
        "/v1/orders/{id}/returns",
        Access::Owner(OrdersManage),
    ),
    r(
        "POST",
        "/v1/orders/{id}/returns",
        Access::Owner(OrdersManage),
    ),
    r(
        "POST",
        "/v1/orders/{id}/invoice/sdi",
        Access::Scope(OrdersManage),
    ),
    r("PUT", "/v1/inventory/{sku}", Access::Scope(InventoryWrite)),
    // Merchandising rules.
    r("GET", "/v1/rules", AnyOf(RULES_READ)),
    r("GET", "/v1/rules/{id}", AnyOf(RULES_READ)),
    r("GET", "/v1/rules/audit", AnyOf(RULES_READ)),
    r("GET", "/v1/rules/{id}/audit", AnyOf(RULES_READ)),
    r("POST", "/v1/rules", Access::Scope(RulesWrite)),
    r("PUT", "/v1/rules/{id}", Access::Scope(RulesWrite)),
    r("DELETE", "/v1/rules/{id}", Access::Scope(RulesWrite)),
    r("POST", "/v1/rules/preview", Access::Scope(RulesWrite)),
    // Prices.
    r("GET", "/v1/prices/overrides", AnyOf(PRICES_READ)),
    r("PUT", "/v1/prices/overrides", Access::Scope(PricesWrite)),
    r(
        "DELETE",
        "/v1/prices/overrides/{product_id}/{market}",
        Access::Scope(PricesWrite),
    ),
    // Experiments.
    r("GET", "/v1/experiments", AnyOf(EXPERIMENTS_READ)),
    r("GET", "/v1/experiments/{key}", AnyOf(EXPERIMENTS_READ)),
    r("POST", "/v1/experiments", Access::Scope(ExperimentsWrite)),
    r(
        "PUT",
        "/v1/experiments/{key}",
        Access::Scope(ExperimentsWrite),
    ),
    r(
        "GET",
        "/v1/experiments/{key}/results",
        Access::Scope(DataRead),
    ),
    // Bandit slots, rewards, reports and the dashboard.
    r("GET", "/v1/slots", AnyOf(SLOTS_READ)),
    r("GET", "/v1/slots/{slot}", AnyOf(SLOTS_READ)),
    r("GET", "/v1/slots/{slot}/audit", AnyOf(SLOTS_READ)),
    r("GET", "/dashboard", AnyOf(SLOTS_READ)),
    r("GET", "/dashboard/{slot}", AnyOf(SLOTS_READ)),
    r("POST", "/v1/slots", Access::Scope(SlotsWrite)),
    r("PUT", "/v1/slots/{slot}", Access::Scope(SlotsWrite)),
    r("DELETE", "/v1/slots/{slot}", Access::Scope(SlotsWrite)),
    r(
        "POST",
        "/v1/slots/{slot}/actions",
        Access::Scope(SlotsWrite),
    ),
    r("POST", "/v1/rewards", Access::Scope(RewardsWrite)),
    r("GET", "/v1/decisions/{id}", Access::Scope(DataRead)),
    r("GET", "/v1/bandits/{slot}/report", Access::Scope(DataRead)),
    r("GET", "/v1/bandits/{slot}/ope", Access::Scope(DataRead)),
    // The model registry.
    r("GET", "/v1/models", AnyOf(MODELS_READ)),
    r("GET", "/v1/models/{version}", AnyOf(MODELS_READ)),
    r(
        "POST",
        "/v1/models/{version}/promote",
        Access::Scope(ModelsWrite),
    ),
    r("POST", "/v1/models/rollback", Access::Scope(ModelsWrite)),
    // Shopper and product data, segments, the quarantine.
    r("GET", "/v1/users/{id}/features", Access::Scope(DataRead)),
    r("GET", "/v1/users/{id}/segment", Access::Scope(DataRead)),
    r("GET", "/v1/products/{id}/features", Access::Scope(DataRead)),
    r("GET", "/v1/segments", Access::Scope(DataRead)),
    r("GET", "/v1/quarantine", Access::Scope(DataRead)),
    r("POST", "/v1/segments/train", Access::Scope(DataAdmin)),
    r("POST", "/v1/quarantine/replay", Access::Scope(DataAdmin)),
];

/// [`ROUTES`] by path, then method.
type Table = std::collections::HashMap<&'static str, Vec<(&'static str, Access)>>;

static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| {
    let mut t = Table::new();
    for r in ROUTES {
        t.entry(r.path).or_default().push((r.method, r.access));
    }
    t
});

/// What `(method, matched path)` needs: the table's entry (`HEAD` as `GET`), else every scope.
pub(crate) fn required(method: &Method, path: &str) -> Access {
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    TABLE
        .get(path)
        .and_then(|methods| methods.iter().find(|(m, _)| *m == method))
        .map_or(Access::Admin, |(_, a)| *a)
}

/// What the OpenAPI document says an operation needs (`None` = public), from [`required`].
pub(crate) fn requirement(method: &str, path: &str) -> pipelines::openapi::Requirement {
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let scopes = |s: &[Scope]| {
        s.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match required(&method, path) {
        Access::Public => None,
        Access::Publishable => Some(("a publishable or secret key".into(), true)),
        Access::Owner(s) => Some((
            format!(
                "a publishable key with the order's access token (X-Order-Token), or scope {}",
                s.as_str()
            ),
            true,
        )),
        Access::Scope(s) => Some((format!("scope {}", s.as_str()), false)),
        Access::AnyOf(any) => Some((format!("scope {}", scopes(any)), false)),
        Access::Admin => Some(("every scope (admin)".into(), false)),
    }
}

/// The key store of this process: PostgreSQL (`LUSSO_DATABASE_URL`) shared by every replica, else a file in
/// the data dir.
pub(crate) async fn open_store(config: &BackendConfig) -> anyhow::Result<Arc<dyn KeyStore>> {
    Ok(match &config.database_url {
        Some(url) => Arc::new(PgKeys::connect(url).await?),
        None => Arc::new(FileKeys::in_dir(&config.data_dir)),
    })
}

/// `lusso keys …`.
#[derive(Subcommand)]
pub(crate) enum KeysAction {
    /// Keys with their kind, scopes, creation and revocation (never the key itself).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a key and print it (once: only its hash is kept).
    Create {
        /// Unique name: the audit actor of every change made with the key.
        #[arg(long)]
        name: String,
        /// Comma list of scopes for a secret key (`admin` = all): rules:write, prices:write,
        /// experiments:write, slots:write, models:write, inventory:write, catalog:write, orders:manage,
        /// rewards:write, data:read, data:admin.
        #[arg(long, conflicts_with = "publishable")]
        scopes: Option<String>,
        /// A publishable key (`pk_`, for storefronts) instead of a secret one.
        #[arg(long)]
        publishable: bool,
        /// Browser origins a publishable key may be used from (comma list; `*` = any).
        #[arg(long)]
        origins: Option<String>,
    },
    /// Revoke the key named NAME (every replica stops accepting it within a second).
    Revoke { name: String },
}

pub(crate) async fn keys(config: BackendConfig, action: KeysAction) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let keys = Keys::load(store.clone()).await?;
    match action {
        KeysAction::List { json } => {
            let all = store.all().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            println!(
                "{:<24} {:<12} {:<10} {:<26} scopes",
                "name", "kind", "prefix", "state"
            );
            for r in &all {
                let state = match r.revoked_at {
                    Some(t) => format!("revoked {}", t.format("%Y-%m-%d %H:%M")),
                    None => format!("since {}", r.created_at.format("%Y-%m-%d %H:%M")),
                };
                let scopes: Vec<&str> = r.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:<24} {:<12} {:<10} {:<26} {}",
                    r.name,
                    r.kind.as_str(),
                    r.prefix,
                    state,
                    scopes.join(",")
                );
            }
            println!("{} keys in {}", all.len(), store.describe());
        }
        KeysAction::Create {
            name,
            scopes,
            publishable,
            origins,
        } => {
            let kind = if publishable {
                KeyKind::Publishable
            } else {
                KeyKind::Secret
            };
            if kind == KeyKind::Secret && scopes.is_none() {
                bail!("--scopes: a secret key needs scopes (e.g. --scopes rules:write or --scopes admin), or pass --publishable");
            }
            let new = NewKey {
                name,
                kind,
                scopes: Scope::parse_list(scopes.as_deref().unwrap_or_default())?,
                origins: origins
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            let (key, record) = keys.create(new).await?;
            eprintln!(
                "created {} key `{}`; it is shown only now, keep it secret{}",
                record.kind.as_str(),
                record.name,
                if kind == KeyKind::Publishable {
                    " (a publishable key may sit in a browser)"
                } else {
                    ""
                }
            );
            println!("{key}");
        }
        KeysAction::Revoke { name } => {
            if !keys.revoke(&name).await? {
                bail!("no key in force is named `{name}` (`lusso keys list`)");
            }
            println!("revoked `{name}`");
        }
    }
    Ok(())
}

/// The keys `lusso demo` hands out, as written to `keys.json` in its data dir.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct DemoKeys {
    pub(crate) publishable_key: String,
    pub(crate) admin_key: String,
}

fn demo_keys_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys.json")
}

/// The demo's keys: those of an earlier run of the same data dir while they still work, else a new
/// publishable and a new admin key (written to `keys.json`, mode 0600).
pub(crate) async fn demo_keys(keys: &Keys, data_dir: &Path) -> anyhow::Result<DemoKeys> {
    let path = demo_keys_path(data_dir);
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(k) = serde_json::from_slice::<DemoKeys>(&bytes) {
            if keys.lookup(&k.publishable_key).is_some() && keys.lookup(&k.admin_key).is_some() {
                return Ok(k);
            }
        }
    }
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S%3f");
    let (publishable_key, _) = keys
        .create(NewKey {
            name: format!("demo-storefront-{stamp}"),
            kind: KeyKind::Publishable,
            scopes: Default::default(),
            origins: vec![],
        })
        .await?;
    let (admin_key, _) = keys
        .create(NewKey {
            name: format!("demo-admin-{stamp}"),
            kind: KeyKind::Secret,
            scopes: Scope::ALL.into_iter().collect(),
            origins: vec![],
        })
        .await?;
    let demo = DemoKeys {
        publishable_key,
        admin_key,
    };
    std::fs::create_dir_all(data_dir)?;
    let text = serde_json::to_string_pretty(&demo)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(demo)
}

/// The key the CLI sends to a running server: `--key` / `LUSSO_API_KEY`, else the demo's `keys.json` in
/// the data dir (its admin key, or its publishable key when `publishable`).
pub(crate) fn client_key(
    explicit: Option<&str>,
    config: &BackendConfig,
    publishable: bool,
) -> Option<String> {
    if let Some(k) = explicit.map(str::trim).filter(|k| !k.is_empty()) {
        return Some(k.to_string());
    }
    let bytes = std::fs::read(demo_keys_path(&config.data_dir)).ok()?;
    let demo: DemoKeys = serde_json::from_slice(&bytes).ok()?;
    Some(if publishable {
        demo.publishable_key
    } else {
        demo.admin_key
    })
}

/// An HTTP client that sends `key` as `Authorization: Bearer` on every request, giving up on a request after
/// `timeout`.
pub(crate) fn http_client(
    key: Option<&str>,
    timeout: std::time::Duration,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = key {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {k}"))
            .context("the API key has characters a header cannot carry")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .build()?)
}
