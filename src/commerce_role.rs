//! The commerce role: carts, checkout, inventory, returns and invoices over PostgreSQL (memory when
//! `LUSSO_DATABASE_URL` is unset), the outbox relay to `lusso.commerce.v1` and the reservation sweeper; in the
//! demo, a simulated shopper who buys what the storefront recommends and downloads the e-invoice.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use commerce::catalog::PriceList;
use commerce::order_token::OrderTokens;
use commerce::payments::{PaymentsConfig, Providers};
use commerce::service::SystemClock;
use commerce::{Commerce, CommerceConfig, CommerceParts};
use pipelines::bus::EventBus;
use pipelines::catalog::Catalog;
use pipelines::config::BackendConfig;
use pipelines::topics;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Where the embedded order-token secret is kept (in the data dir) when `LUSSO_ORDER_TOKEN_SECRET` is unset.
const ORDER_TOKEN_SECRET_FILE: &str = "order_token.secret";

/// The order access tokens' secret: `LUSSO_ORDER_TOKEN_SECRET` (shared by every commerce replica; `lusso
/// serve` requires it), else one generated once in the data dir (mode 0600), so the demo's tokens survive a
/// restart.
fn order_tokens(config: &BackendConfig) -> anyhow::Result<OrderTokens> {
    if let Some(secret) = pipelines::config::env_nonempty("LUSSO_ORDER_TOKEN_SECRET") {
        return Ok(OrderTokens::new(secret.as_bytes())?);
    }
    let path = config.data_dir.join(ORDER_TOKEN_SECRET_FILE);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(OrderTokens::new(secret.trim().as_bytes())?);
    }
    let secret = pipelines::access::generate(pipelines::access::KeyKind::Secret);
    std::fs::create_dir_all(&config.data_dir)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(secret.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(OrderTokens::new(secret.as_bytes())?)
}

/// The role's router and background tasks.
pub(crate) struct CommerceRole {
    pub(crate) router: Router,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The prices of a commerce process without a serving role beside it: serving's price book over the same
/// catalogue, its overrides re-read from the serving store every second.
pub(crate) async fn standalone_prices(
    config: &BackendConfig,
    catalog: Arc<Catalog>,
    shutdown: CancellationToken,
) -> anyhow::Result<(Arc<dyn PriceList>, tokio::task::JoinHandle<()>)> {
    let book = Arc::new(serving::pricing::PriceBook::new(
        catalog,
        serving::pricing::PriceBook::default_markets(),
    )?);
    let stores = serving::Stores::open(config.database_url.as_deref())
        .await
        .context("opening the price overrides (LUSSO_DATABASE_URL)")?;
    let overrides = stores.overrides.clone();
    book.set_overrides(overrides.list().await?);
    let refreshed = book.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match overrides.list().await {
                Ok(list) => {
                    refreshed.set_overrides(list);
                }
                Err(e) => tracing::warn!(error = %e, "price overrides not refreshed; retrying"),
            }
        }
    });
    Ok((Arc::new(serving::checkout_prices::BookPrices(book)), task))
}

/// Starts commerce over `catalog`, charging `prices`; `fake_payments` adds the `fake` provider (demo and
/// `serve --embedded` only).
pub(crate) async fn start(
    config: &BackendConfig,
    bus: Arc<dyn EventBus>,
    catalog: Arc<Catalog>,
    prices: Arc<dyn PriceList>,
    registry: &prometheus::Registry,
    fake_payments: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<CommerceRole> {
    let cfg = CommerceConfig::from_env()?;
    let store = commerce::store::open(config.database_url.as_deref().unwrap_or(""))
        .await
        .context("opening the commerce store (LUSSO_DATABASE_URL)")?;
    let mut providers = Providers::from_config(&PaymentsConfig::from_env()?)?;
    if fake_payments {
        providers = providers.with(Arc::new(commerce::payments::fake::Fake));
    }
    tracing::info!(providers = ?providers.names(), store = %store.describe(), "commerce");
    let service = Arc::new(
        Commerce::new(CommerceParts {
            config: cfg,
            store,
            catalog,
            prices,
            providers,
            clock: Arc::new(SystemClock),
        })
        .await?
        .with_order_tokens(order_tokens(config)?),
    );
    service.metrics().register(registry);
    let topic = config.topic(topics::COMMERCE);
    if let Err(e) = bus.ensure_topic(&topic, topics::default_partitions()).await {
        tracing::warn!(error = %e, topic = %topic, "cannot create the commerce topic yet; the relay retries");
    }
    let tasks = vec![
        tokio::spawn(commerce::outbox::run_relay(
            service.clone(),
            bus,
            topic,
            shutdown.clone(),
        )),
        tokio::spawn(commerce::outbox::run_expiry(service.clone(), shutdown)),
    ];
    Ok(CommerceRole {
        router: commerce::api::app(service),
        tasks,
    })
}

/// The demo's buyer: every `every`, a simulated shopper takes the first recommended product in stock and
/// checks out with the fake provider (with the publishable key, as a storefront does); the shop then
/// downloads the e-invoice (with the admin key). Logs each purchase.
pub(crate) async fn demo_shopper(
    url: String,
    keys: crate::access::DemoKeys,
    every: Duration,
    shutdown: CancellationToken,
) {
    let clients = crate::access::http_client(Some(&keys.publishable_key), Duration::from_secs(30))
        .and_then(|shopper| {
            Ok((
                shopper,
                crate::access::http_client(Some(&keys.admin_key), Duration::from_secs(30))?,
            ))
        });
    let (http, shop) = match clients {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "demo shopper: no HTTP client");
            return;
        }
    };
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        n += 1;
        match buy_once(&http, &shop, &url, n).await {
            Ok((order, invoice)) => {
                tracing::info!(%order, %invoice, "demo shopper bought a recommended product; invoice {url}/v1/orders/{order}/invoice.xml")
            }
            Err(e) => tracing::info!(error = %e, "demo shopper did not buy this time"),
        }
    }
}

async fn buy_once(
    http: &reqwest::Client,
    shop: &reqwest::Client,
    url: &str,
    n: u64,
) -> anyhow::Result<(String, String)> {
    let user = format!("U{:07}", 1 + n % 500);
    let recs: Value = http
        .get(format!("{url}/v1/recommendations?user_id={user}&n=10"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let items = recs["items"].as_array().cloned().unwrap_or_default();
    let mut chosen = None;
    'outer: for item in items {
        let Some(pid) = item["product_id"].as_str() else {
            continue;
        };
        let product: Value = http
            .get(format!("{url}/v1/products/{pid}"))
            .send()
            .await?
            .json()
            .await?;
        for v in product["variants"].as_array().cloned().unwrap_or_default() {
            let Some(sku) = v["sku"].as_str() else {
                continue;
            };
            let inv: Value = http
                .get(format!("{url}/v1/inventory/{sku}"))
                .send()
                .await?
                .json()
                .await?;
            if inv["available"].as_i64().unwrap_or(0) > 0 {
                chosen = Some(sku.to_string());
                break 'outer;
            }
        }
    }
    let sku = chosen.context("no recommended product in stock")?;
    let cart: Value = http
        .post(format!("{url}/v1/carts"))
        .json(&json!({"market": "IT", "lines": [{"sku": sku, "quantity": 1}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let address = json!({"name": "Giulia Rossi", "street": "Via Montenapoleone 8", "city": "Milano",
                         "postal_code": "20121", "province": "MI", "country": "IT"});
    let email = format!("{}@demo.lusso.example", user.to_lowercase());
    let order: Value = http
        .post(format!("{url}/v1/checkouts"))
        .header("Idempotency-Key", format!("demo-{}-{n}", cart["id"].as_str().unwrap_or("")))
        .json(&json!({
            "cart_id": cart["id"], "email": email, "user_id": user, "shipping": address,
            "buyer": {"kind": "consumer", "email": email, "codice_fiscale": "RSSMRA85T10A562S", "billing": address},
            "payment": {"provider": "fake"}
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = order["order_id"]
        .as_str()
        .context("no order id")?
        .to_string();
    let invoice = shop
        .get(format!("{url}/v1/orders/{id}/invoice.xml"))
        .send()
        .await?
        .error_for_status()?;
    let name = invoice
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((id, name))
}
