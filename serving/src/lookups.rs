//! What a request reads from the feature store, with a deadline and in-process caches.
//!
//! - The shopper (one pipelined read of the `u:`/`a:` blobs) under `features_timeout_ms`: a slow or absent
//!   store makes the answer degrade to the fallbacks, never the request fail or wait.
//! - Popularity lists per scope (`global`, `segment:…`, `market:…`), cached for `cache_ttl_secs` (the features
//!   role rewrites them every 10 s); when the store is down the last list read keeps serving.
//! - Per product, the stock view (sizes in stock anywhere) and co-view neighbours, cached for `cache_ttl_secs`,
//!   at most `stock_cache_max` products (full: the older half is dropped). Misses are read in one round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use features::processor::Processor;
use features::state::product::ProductState;

use crate::{Error, Result};

/// What a request needs of the shopper (decoded from the blob without computing the full feature set:
/// windows, affinities and RFM summaries are for other readers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shopper {
    /// The rule-based segment now.
    pub segment: String,
    pub market: Option<String>,
    pub device: Option<String>,
    /// Newest first.
    pub last_viewed: Vec<String>,
    /// Newest first.
    pub last_purchased: Vec<String>,
}

/// What serving knows of one product from the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductView {
    /// Sizes with stock > 0 in at least one location, from `stock_level` messages; `None` when no stock
    /// message was seen for the product (the catalogue's stock is used then).
    pub sizes_in_stock: Option<Vec<String>>,
    /// Sizes that stock messages exist for (in stock or not).
    pub sizes_tracked: Vec<String>,
    /// Co-viewed products with their pair counts, strongest first.
    pub co_viewed: Vec<(String, u32)>,
}

type Cache<T> = Mutex<foldhash::HashMap<String, (Instant, T)>>;

/// Feature-store reads for requests.
pub struct Lookups {
    processor: Processor,
    timeout: Duration,
    ttl: Duration,
    max_products: usize,
    popularity: Cache<Arc<Vec<(String, f32)>>>,
    products: Cache<Arc<ProductView>>,
}

impl Lookups {
    pub fn new(
        processor: Processor,
        timeout: Duration,
        ttl: Duration,
        max_products: usize,
    ) -> Lookups {
        Lookups {
            processor,
            timeout,
            ttl,
            max_products,
            popularity: Mutex::default(),
            products: Mutex::default(),
        }
    }

    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    async fn deadline<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable(format!(
                "feature store: {what} took longer than {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// The shopper (registered id first, then anonymous id; `Ok(None)`: never seen), one round trip.
    pub async fn shopper(&self, id: &str) -> Result<Option<Shopper>> {
        let ctx = self.processor.context();
        let keys = [
            ctx.keys.user(&format!("u:{id}")),
            ctx.keys.user(&format!("a:{id}")),
        ];
        let blobs = self
            .deadline("shopper read", async {
                Ok(self.processor.store().get(&keys).await?)
            })
            .await?;
        let Some(blob) = blobs.into_iter().flatten().next() else {
            return Ok(None);
        };
        // The first read loads the store's name dictionary: under the same deadline.
        let state = self
            .deadline("shopper decode", async {
                Ok(self.processor.decode_user(&blob).await?)
            })
            .await?;
        Ok(Some(Shopper {
            segment: state
                .segment_at(chrono::Utc::now().timestamp_millis(), ctx)
                .to_string(),
            market: state.market.clone(),
            device: state.device.clone(),
            last_viewed: state.viewed.iter().map(|(p, _)| p.clone()).collect(),
            last_purchased: state.purchased.iter().map(|(p, _)| p.clone()).collect(),
        }))
    }

    /// A popularity list (`None` when the store has none and none was cached).
    pub async fn popularity(&self, scope: &str) -> Option<Arc<Vec<(String, f32)>>> {
        let cached = {
            let c = self.popularity.lock().unwrap_or_else(|e| e.into_inner());
            c.get(scope).cloned()
        };
        if let Some((at, list)) = &cached {
            if at.elapsed() < self.ttl {
                return Some(list.clone());
            }
        }
        let key = self.processor.context().keys.popularity(scope);
        let read = self
            .deadline("popularity read", async {
                Ok(self.processor.store().get(&[key]).await?)
            })
            .await;
        match read {
            Ok(mut v) => {
                let list = v
                    .pop()
                    .flatten()
                    .and_then(|b| parse_popularity(&b))
                    .map(Arc::new);
                if let Some(l) = &list {
                    let mut c = self.popularity.lock().unwrap_or_else(|e| e.into_inner());
                    c.insert(scope.to_string(), (Instant::now(), l.clone()));
                }
                list.or(cached.map(|c| c.1))
            }
            Err(e) => {
                tracing::debug!(error = %e, scope, "popularity unavailable; using the last list read");
                cached.map(|c| c.1)
            }
        }
    }

    /// Views of `ids` (missing ones are absent from the map when the store is unavailable).
    pub async fn products(&self, ids: &[&str]) -> HashMap<String, Arc<ProductView>> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let c = self.products.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match c.get(*id) {
                    Some((at, v)) if at.elapsed() < self.ttl => {
                        out.insert(id.to_string(), v.clone());
                    }
                    _ => missing.push(id.to_string()),
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        let keys: Vec<String> = missing
            .iter()
            .map(|id| self.processor.context().keys.product(id))
            .collect();
        let read = self
            .deadline("product read", async {
                Ok(self.processor.store().get(&keys).await?)
            })
            .await;
        let blobs = match read {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "product views unavailable");
                return out;
            }
        };
        let now = Instant::now();
        let mut c = self.products.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() + missing.len() > self.max_products {
            // Full: drop the older half (amortised O(1) per insert, no per-entry LRU bookkeeping).
            let mut ages: Vec<Instant> = c.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            c.retain(|_, (at, _)| *at > cut);
        }
        for (id, blob) in missing.into_iter().zip(blobs) {
            let view = Arc::new(match blob {
                Some(b) => match ProductState::decode(&b) {
                    Ok(p) => view_of(&p),
                    Err(e) => {
                        tracing::warn!(error = %e, product = %id, "undecodable product state");
                        ProductView::default()
                    }
                },
                None => ProductView::default(),
            });
            c.insert(id.clone(), (now, view.clone()));
            out.insert(id, view);
        }
        out
    }
}

fn view_of(p: &ProductState) -> ProductView {
    let mut by_size: HashMap<&str, i64> = HashMap::new();
    for s in &p.stock {
        *by_size.entry(s.size.as_str()).or_default() += s.available.max(0);
    }
    let mut co: Vec<(String, u32)> = p
        .neighbours
        .iter()
        .filter(|n| n.1 > 0)
        .map(|n| (n.0.clone(), n.1))
        .collect();
    co.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut tracked: Vec<String> = by_size.keys().map(|s| s.to_string()).collect();
    tracked.sort();
    ProductView {
        sizes_in_stock: (!p.stock.is_empty()).then(|| {
            let mut v: Vec<String> = by_size
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(s, _)| s.to_string())
                .collect();
            v.sort();
            v
        }),
        sizes_tracked: tracked,
        co_viewed: co,
    }
}

/// `{"items":[{"product_id","score"}…]}` → pairs.
fn parse_popularity(b: &[u8]) -> Option<Vec<(String, f32)>> {
    let v: serde_json::Value = serde_json::from_slice(b).ok()?;
    Some(
        v.get("items")?
            .as_array()?
            .iter()
            .filter_map(|i| {
                Some((
                    i.get("product_id")?.as_str()?.to_string(),
                    i.get("score")?.as_f64()? as f32,
                ))
            })
            .collect(),
    )
}
