//! Recommendations through the HTTP API: the model's ranking, every filter, diversity, the fallback chain,
//! fold-in and session candidates, prices in the market, impressions. Each scenario runs on the in-memory
//! backends and on the real ones (Redis, PostgreSQL).

mod common;

use std::collections::HashSet;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use serving::models::Models;

fn category(id: &str) -> String {
    catalog().product(id).unwrap().category_id.clone()
}

async fn model_ranking_and_filters(real: bool) {
    let fx = fixture(real).await;
    let base = "/v1/recommendations?user_id=U1&n=5&diversity=none";
    let (status, v) = fx.get(base).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Item 0 is unlisted: the model ranks it first, the filter drops it.
    assert_eq!(ids(&v), (1..=5).map(item).collect::<Vec<_>>());
    assert_eq!(v["fallback"], serde_json::Value::Null);
    assert_eq!(v["model_version"], "v1");
    assert_eq!(v["placement"], "home");
    assert_eq!(v["items"][0]["reasons"], json!(["model"]));
    assert_eq!(v["items"][0]["price"]["currency"], "EUR");
    let p1 = catalog().product(&item(1)).unwrap().clone();
    assert_eq!(
        v["items"][0]["price"]["amount"].as_f64().unwrap(),
        p1.sale_price.unwrap_or(p1.price),
        "IT prices are the catalogue's"
    );

    // The caller's exclusions.
    let got = fx
        .ids(&format!("{base}&exclude={},{}", item(1), item(3)))
        .await;
    assert_eq!(got, [2, 4, 5, 6, 7].map(item).to_vec());

    // Already purchased (home excludes them), and the page's own product.
    fx.apply(&[purchase("U1", &item(2), 30)]).await;
    let got = fx.ids(base).await;
    assert_eq!(got, [1, 3, 4, 5, 6].map(item).to_vec());
    let got = fx
        .ids(&format!("{base}&placement=cart&product_id={}", item(1)))
        .await;
    assert!(
        !got.contains(&item(1)) && !got.contains(&item(2)),
        "{got:?}"
    );

    // The market's currency.
    let (_, v) = fx.get(&format!("{base}&market=GB")).await;
    assert_eq!(v["market"], "GB");
    assert_eq!(v["items"][0]["price"]["currency"], "GBP");

    // Diversity: one per category.
    let got = fx
        .ids("/v1/recommendations?user_id=U1&n=8&diversity=category:1")
        .await;
    let cats: HashSet<String> = got.iter().map(|p| category(p)).collect();
    assert_eq!(cats.len(), got.len(), "one per category: {got:?}");
    // The placement default for home is at most 4 per category.
    let got = fx.ids("/v1/recommendations?user_id=U1&n=30").await;
    for c in got.iter().map(|p| category(p)) {
        assert!(got.iter().filter(|p| category(p) == c).count() <= 4);
    }

    // Bad parameters are 400s naming the parameter.
    for (q, field) in [
        ("n=0", "n"),
        ("placement=footer", "placement"),
        ("market=XX", "market"),
        ("market=JP", "market"),
        ("colour=red", "colour"),
    ] {
        let (status, v) = fx.get(&format!("/v1/recommendations?user_id=U1&{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(v["error"]["field"], field, "{q}: {v}");
    }
}

async fn size_filter_uses_the_stock_view(real: bool) {
    let fx = fixture(real).await;
    let p = catalog().product(&item(1)).unwrap().clone();
    let size = p
        .variants
        .iter()
        .map(|v| v.size.clone())
        .find(|s| s != "TU")
        .expect("item 1 has sizes");
    let uri = format!("/v1/recommendations?user_id=U1&n=20&diversity=none&size={size}");
    let got = fx.ids(&uri).await;
    assert!(got.contains(&item(1)), "in stock in the catalogue: {got:?}");
    for id in &got {
        let cat = catalog();
        let q = cat.product(id).unwrap();
        assert!(
            q.variants.iter().any(|v| v.size == size || v.size == "TU"),
            "{id} has no size {size}"
        );
    }
    // Sold out everywhere (stock messages): gone; without a size filter it stays.
    fx.stock(&item(1), &size, 0).await;
    let got = fx.ids(&uri).await;
    assert!(!got.contains(&item(1)), "{got:?}");
    let got = fx
        .ids("/v1/recommendations?user_id=U1&n=3&diversity=none")
        .await;
    assert_eq!(got[0], item(1));
    // Back in stock in one location: back (the stock cache TTL is 0 in tests).
    fx.stock(&item(1), &size, 2).await;
    assert!(fx.ids(&uri).await.contains(&item(1)));
    // A pin cannot bring a sold-out product back.
    fx.stock(&item(1), &size, 0).await;
    let (status, v) = fx
        .send(
            "POST",
            "/v1/rules",
            Some(json!({"name": "pin sold out", "priority": 1,
                "actions": [{"type": "pin", "product_id": item(1), "position": 1}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(!fx.ids(&uri).await.contains(&item(1)));
}

async fn fallback_chain(real: bool) {
    // No model at all: the store's popularity lists, else the catalogue.
    let fx = fixture_with(
        real,
        Models::new(None, catalog(), 0),
        stores(real).await,
        None,
    )
    .await;
    let (status, v) = fx.get("/v1/recommendations?anonymous_id=a1&n=4").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["fallback"], "catalogue");
    assert_eq!(v["model_version"], serde_json::Value::Null);
    assert!(v["degraded"].as_array().unwrap().contains(&json!("model")));
    assert_eq!(ids(&v).len(), 4);

    let keys = fx.processor.context().keys.clone();
    let list = |ids: &[usize]| {
        json!({"items": ids.iter().map(|i| json!({"product_id": item(*i), "score": 10.0 - *i as f64})).collect::<Vec<_>>()})
            .to_string()
            .into_bytes()
    };
    let store = fx.processor.store().clone();
    store
        .put(&keys.popularity("global"), list(&[0, 5, 6, 7, 8]))
        .await
        .unwrap();
    let (_, v) = fx
        .get("/v1/recommendations?anonymous_id=a1&n=4&diversity=none")
        .await;
    assert_eq!(v["fallback"], "global_popularity");
    assert_eq!(
        ids(&v),
        [5, 6, 7, 8].map(item).to_vec(),
        "the unlisted item 0 is filtered"
    );
    store
        .put(&keys.popularity("segment:New"), list(&[9, 10]))
        .await
        .unwrap();
    let (_, v) = fx
        .get("/v1/recommendations?anonymous_id=a1&n=4&diversity=none")
        .await;
    assert_eq!(v["segment"], "New");
    assert_eq!(v["fallback"], "segment_popularity");
    // The segment's list is short: it is filled from the global list, marked as such.
    assert_eq!(ids(&v), [9, 10, 5, 6].map(item).to_vec());
    assert_eq!(
        v["items"][2]["reasons"],
        json!(["fallback:global_popularity"])
    );

    // With a model: a shopper the model never saw is folded in from their purchases…
    let fx = fixture(real).await;
    fx.apply(&[purchase("U9", &item(200), 60), view("U9", &item(201), 50)])
        .await;
    let (_, v) = fx.get("/v1/recommendations?user_id=U9&n=3").await;
    assert_eq!(v["fallback"], serde_json::Value::Null, "{v}");
    assert_eq!(v["items"][0]["reasons"], json!(["fold_in"]), "{v}");
    assert!(!ids(&v).contains(&item(200)), "bought");
    // …an anonymous shopper gets candidates from the products they viewed (item factors + co-view)…
    fx.apply(&[
        view("anon:a2", &item(40), 20),
        view("anon:a2", &item(41), 19),
    ])
    .await;
    let (_, v) = fx.get("/v1/recommendations?anonymous_id=a2&n=3").await;
    assert_eq!(v["fallback"], serde_json::Value::Null, "{v}");
    let reasons: Vec<String> = v["items"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r == "similar" || r == "co_view"),
        "{v}"
    );
    // …and similar items come from the item factors, never the product itself.
    let (status, v) = fx
        .get(&format!("/v1/products/{}/similar?n=5", item(50)))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(ids(&v).len(), 5);
    assert!(!ids(&v).contains(&item(50)));
    let (status, v) = fx.get("/v1/products/NOPE/similar").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

async fn impressions_are_queued(real: bool) {
    let mut fx = fixture(real).await;
    let (_, v) = fx
        .get("/v1/recommendations?user_id=U1&n=3&session_id=s9")
        .await;
    let e = fx.impressions.try_recv().expect("an impression was queued");
    match &e.properties {
        pipelines::event::Properties::RecImpression(r) => {
            assert_eq!(r.request_id, v["request_id"].as_str().unwrap());
            assert_eq!(r.product_ids, ids(&v));
            assert_eq!(r.extra["placement"], "home");
        }
        other => panic!("not an impression: {other:?}"),
    }
    assert_eq!(e.user_id.as_deref(), Some("U1"));
    // No shopper id: no impression (the event contract needs one), the answer is the same.
    let (status, _) = fx.get("/v1/recommendations?n=3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(fx.impressions.try_recv().is_err());
}

/// The model's scan keeps the best items by score and checks the filters down that list, widening it when
/// too many are rejected: the result must be what checking every item gives.
#[test]
fn model_top_k_with_many_rejected_items_matches_checking_every_item() {
    let m = common::model("v1");
    // `[1, 0, 0, 0]` ranks the items in index order (item 0 is unlisted).
    let x = [1.0f32, 0.0, 0.0, 0.0];
    let names = |top: Vec<(u32, f32)>| -> Vec<String> {
        top.iter()
            .map(|(i, _)| m.product_id(*i).to_string())
            .collect()
    };
    // The best 200 listed items rejected: far more than the first window (2k + 16 = 26 for k = 5).
    let rejected: HashSet<String> = (1..=200).map(item).collect();
    assert_eq!(
        names(m.top(&x, 5, |p| !rejected.contains(p))),
        (201..=205).map(item).collect::<Vec<_>>()
    );
    // Fewer than k pass anywhere: all of those, best first.
    let only: HashSet<String> = [item(250), item(7)].into_iter().collect();
    assert_eq!(
        names(m.top(&x, 5, |p| only.contains(p))),
        vec![item(7), item(250)]
    );
    // Nothing passes, or nothing asked for.
    assert!(m.top(&x, 5, |_| false).is_empty());
    assert!(m.top(&x, 0, |_| true).is_empty());
}

/// A catalogue large enough for the sampled selection threshold and the bfloat16 first pass: the result must
/// equal sorting every listed, eligible item by its exact `f32` score (ties to the lower index). Three
/// catalogues: quarter-step factors (many tied scores, so the approximation's bound cannot separate the
/// candidates and the exact scan must take over), the same with NaN rows (no approximation at all), and
/// continuous factors (the bound separates them).
#[test]
fn model_top_k_over_a_large_catalogue_matches_checking_every_item() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let quarter = |_: usize, _: usize, r: u64| (r % 9) as f32 / 4.0 - 1.0;
    check_top_k(8, &mut next, &quarter, false, true);
    check_top_k(8, &mut next, &quarter, true, false);
    let continuous = |_: usize, _: usize, r: u64| (r % 1_000_003) as f32 / 500_000.0 - 1.0;
    check_top_k(64, &mut next, &continuous, false, true);
}

fn check_top_k(
    k: usize,
    next: &mut dyn FnMut() -> u64,
    value: &dyn Fn(usize, usize, u64) -> f32,
    nan_rows: bool,
    approximate: bool,
) {
    use training::linalg::Factors;
    use training::matrix::{Csr, IdIndex};
    use training::model::{Algo, Model};

    let catalog = pipelines::catalog::Catalog::generate_with(7, 30_000);
    let n = catalog.len();
    let ids: Vec<String> = catalog.products().iter().map(|p| p.id.clone()).collect();
    let mut item_factors = Factors::zeros(n, k);
    for i in 0..n {
        let r = item_factors.row_mut(i);
        for (j, v) in r.iter_mut().enumerate() {
            *v = value(i, j, next());
        }
        if nan_rows && i.is_multiple_of(997) {
            r[0] = f32::NAN;
        }
    }
    let users = IdIndex::new(vec!["U1".into()]);
    let user_factors = Factors::zeros(1, k);
    let train = Csr::from_triples(1, n, &[(0, 1, 1.0)]);
    let model = Model::new(
        Algo::Als,
        users,
        IdIndex::new(ids.clone()),
        user_factors,
        item_factors.clone(),
        &train,
        0.05,
    );
    let m = serving::models::LoadedModel::new(meta("big"), model, &catalog);
    assert_eq!(m.approximate_first_pass(), approximate);
    let listed: Vec<bool> = ids
        .iter()
        .map(|id| catalog.product(id).is_some_and(|p| p.is_listed()))
        .collect();
    assert!(listed.iter().any(|l| !l), "some products are unlisted");
    let index: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for (case, want) in [(0u64, 5usize), (1, 50), (2, 200), (3, 400)] {
        let x: Vec<f32> = (0..k)
            .map(|j| ((case as usize + j) % 5) as f32 - 2.0)
            .collect();
        let rejected = |i: usize| (i * 7 + case as usize).is_multiple_of(5);
        let eligible = |p: &str| !rejected(index[p]);
        let mut exact = Vec::new();
        training::simd::score_rows(&x, &item_factors, &mut exact);
        let mut expected: Vec<(u32, f32)> = (0..n)
            .filter(|i| listed[*i] && !rejected(*i) && !exact[*i].is_nan())
            .map(|i| (i as u32, exact[i]))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(want);
        let got = m.top(&x, want, eligible);
        assert_eq!(got, expected, "k = {k}, case {case}, top {want}");
    }
}

#[test]
fn a_full_impression_queue_sheds_and_counts() {
    let registry = prometheus::Registry::new();
    let metrics = serving::metrics::ServingMetrics::new(&registry);
    let (q, _rx) = serving::impressions::Impressions::new(1, metrics.clone());
    let e = view("U1", &item(1), 0);
    assert!(q.offer(e.clone()));
    assert!(!q.offer(e));
    assert_eq!(metrics.impressions_shed.get(), 1);
    assert_eq!(metrics.impressions_queued.get(), 1);
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn model_ranking_and_filters() {
        super::model_ranking_and_filters(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn size_filter_uses_the_stock_view() {
        super::size_filter_uses_the_stock_view(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fallback_chain() {
        super::fallback_chain(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn impressions_are_queued() {
        super::impressions_are_queued(false).await;
    }
}

mod real {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn model_ranking_and_filters() {
        super::model_ranking_and_filters(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn size_filter_uses_the_stock_view() {
        super::size_filter_uses_the_stock_view(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fallback_chain() {
        super::fallback_chain(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn impressions_are_queued() {
        super::impressions_are_queued(true).await;
    }
}
