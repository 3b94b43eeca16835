//! Merchandising through the HTTP API: rules (pin, collection pin, boost, bury, filter, quota, conditions,
//! rule sets, preview, audit, versions, validation, live on another replica), geo prices and overrides, and
//! A/B bucketing routed to rule sets. Each scenario runs on the in-memory stores and on PostgreSQL (+ Redis).

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use serving::models::Models;

const BASE: &str = "/v1/recommendations?user_id=U1&n=10&diversity=none";

async fn create(fx: &Fixture, rule: Value) -> Value {
    let (status, v) = fx.send("POST", "/v1/rules", Some(rule)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

fn attr(id: &str, name: &str) -> String {
    serving::catalog::attribute(catalog().product(id).unwrap(), name)
        .unwrap()
        .to_string()
}

async fn rules_act_on_the_list(real: bool) {
    let fx = fixture(real).await;
    let plain = fx.ids(&format!("{BASE}&segment=New")).await;
    assert_eq!(plain, (1..=10).map(item).collect::<Vec<_>>());

    // Pin with a segment condition: only that segment.
    let pin = create(
        &fx,
        json!({"name": "pin 42 for New", "priority": 10,
        "conditions": {"segment": ["New"], "placement": ["home"]},
        "actions": [{"type": "pin", "product_id": item(42), "position": 2}]}),
    )
    .await;
    assert_eq!(pin["version"], 1);
    let (_, v) = fx.get(&format!("{BASE}&segment=New")).await;
    assert_eq!(ids(&v)[1], item(42));
    assert!(v["items"][1]["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("rule:pin 42 for New")));
    assert_eq!(ids(&v)[0], item(1));
    assert_eq!(fx.ids(&format!("{BASE}&segment=Lapsed")).await, plain);
    // Other placements are untouched.
    assert!(!fx
        .ids(&format!("{BASE}&segment=New&placement=email"))
        .await
        .contains(&item(42)));

    // Filters never leak: a pinned product the caller excludes stays out.
    let got = fx
        .ids(&format!("{BASE}&segment=New&exclude={}", item(42)))
        .await;
    assert!(!got.contains(&item(42)), "{got:?}");

    // Boost by attribute (market condition): item 9's line moves up in GB only.
    let line = attr(&item(9), "line");
    create(
        &fx,
        json!({"name": "boost line in GB", "priority": 5,
        "conditions": {"market": ["GB"]},
        "actions": [{"type": "boost", "attribute": "line", "value": line, "factor": 50.0}]}),
    )
    .await;
    let gb = fx.ids(&format!("{BASE}&segment=Lapsed&market=GB")).await;
    assert_eq!(attr(&gb[0], "line"), line, "{gb:?}");
    assert_eq!(
        fx.ids(&format!("{BASE}&segment=Lapsed&market=IT")).await,
        plain
    );

    // Bury (device condition): item 1's category goes down on mobile.
    let cat = attr(&item(1), "category");
    create(
        &fx,
        json!({"name": "bury category on mobile", "priority": 5,
        "conditions": {"device": ["mobile"]},
        "actions": [{"type": "bury", "attribute": "category", "value": cat, "factor": 100.0}]}),
    )
    .await;
    let mobile = fx
        .ids(&format!("{BASE}&segment=Lapsed&device=mobile"))
        .await;
    assert_ne!(attr(&mobile[0], "category"), cat);
    let pos_before = plain.iter().position(|p| *p == item(1)).unwrap();
    let pos_after = mobile
        .iter()
        .position(|p| *p == item(1))
        .unwrap_or(usize::MAX);
    assert!(pos_after > pos_before, "{mobile:?}");

    // Filter and quota (placement condition: cart).
    let colour = attr(&item(2), "colour");
    create(
        &fx,
        json!({"name": "no colour on cart", "priority": 1,
        "conditions": {"placement": ["cart"]},
        "actions": [{"type": "filter", "attribute": "colour", "value": colour},
                    {"type": "quota", "attribute": "category", "max": 1}]}),
    )
    .await;
    let cart = fx
        .ids("/v1/recommendations?user_id=U1&n=10&diversity=none&placement=cart&segment=Lapsed")
        .await;
    assert!(cart.iter().all(|p| attr(p, "colour") != colour), "{cart:?}");
    let cats: std::collections::HashSet<String> =
        cart.iter().map(|p| attr(p, "category")).collect();
    assert_eq!(cats.len(), cart.len(), "quota 1 per category: {cart:?}");

    // Collection pin above the fold, with a date range that has started.
    let coll = attr(&item(150), "collection");
    create(
        &fx,
        json!({"name": "collection above the fold", "priority": 20,
        "conditions": {"segment": ["High-Value Returning"], "starts_at": "2020-01-01T00:00:00Z"},
        "actions": [{"type": "pin_collection", "collection": coll, "above_the_fold": 3}]}),
    )
    .await;
    let hvr = fx
        .ids(&format!("{BASE}&segment=High-Value%20Returning"))
        .await;
    assert!(
        hvr[..3].iter().all(|p| attr(p, "collection") == coll),
        "{hvr:?}"
    );
    // A rule whose dates have not started does nothing.
    create(
        &fx,
        json!({"name": "future", "priority": 99,
        "conditions": {"segment": ["Lapsed"], "starts_at": "2999-01-01T00:00:00Z"},
        "actions": [{"type": "pin", "product_id": item(77), "position": 1}]}),
    )
    .await;
    assert_eq!(fx.ids(&format!("{BASE}&segment=Lapsed")).await, plain);

    // Preview: before, after, and which rule moved which item.
    let (status, p) = fx
        .send(
            "POST",
            "/v1/rules/preview",
            Some(json!({"segment": "New", "placement": "home", "user_id": "U1", "n": 10})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let before: Vec<&str> = p["before"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product_id"].as_str().unwrap())
        .collect();
    let after: Vec<&str> = p["after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product_id"].as_str().unwrap())
        .collect();
    assert!(!before.contains(&item(42).as_str()));
    assert_eq!(after[1], item(42));
    let moved = p["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["product_id"] == item(42).as_str())
        .unwrap();
    assert_eq!(
        (moved["effect"].as_str(), moved["to"].as_u64()),
        (Some("pinned"), Some(2))
    );
    // `from` is its rank among all candidates before the rules: below the visible ten.
    assert!(moved["from"].as_u64().is_none_or(|f| f > 10), "{moved}");
    assert_eq!(moved["rule"], "pin 42 for New");
    // A draft rule previews without being stored.
    let (status, p) = fx
        .send("POST", "/v1/rules/preview", Some(json!({"segment": "Lapsed", "user_id": "U1", "n": 5,
            "rules": [{"name": "draft", "priority": 1, "actions": [{"type": "pin", "product_id": item(99), "position": 1}]}]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["after"][0]["product_id"], item(99).as_str());
    assert_eq!(
        fx.ids(&format!("{BASE}&segment=Lapsed")).await,
        plain,
        "the draft is not live"
    );

    // Versions and audit: an update with the current version, then a stale one.
    let id = pin["id"].as_str().unwrap();
    let mut body = pin.clone();
    for k in ["id", "created_at", "updated_at", "updated_by"] {
        body.as_object_mut().unwrap().remove(k);
    }
    body["priority"] = json!(11);
    let (status, v) = fx
        .send("PUT", &format!("/v1/rules/{id}"), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    let (status, v) = fx.send("PUT", &format!("/v1/rules/{id}"), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "version 1 is stale: {v}");
    let (status, v) = fx.send("DELETE", &format!("/v1/rules/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let (status, _) = fx.get(&format!("/v1/rules/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!fx
        .ids(&format!("{BASE}&segment=New"))
        .await
        .contains(&item(42)));
    let (_, a) = fx.get(&format!("/v1/rules/{id}/audit")).await;
    let entries = a["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "update", "create"]);
    assert!(entries.iter().all(|e| e["actor"] == "merch@lusso.test"));
    assert_eq!(entries[1]["changes"], json!(["priority"]));

    // Bad rules: 400 naming the field.
    for (rule, field) in [
        (
            json!({"name": "", "priority": 1, "actions": [{"type": "filter", "attribute": "line", "value": "x"}]}),
            "name",
        ),
        (
            json!({"name": "x", "priority": 1, "actions": [{"type": "pin", "product_id": "NOPE", "position": 1}]}),
            "actions[0].product_id",
        ),
        (
            json!({"name": "x", "priority": 1, "actions": [{"type": "pin", "product_id": item(3), "position": 0}]}),
            "actions[0].position",
        ),
        (
            json!({"name": "x", "priority": 1, "actions": [{"type": "boost", "attribute": "flavour", "value": "x", "factor": 2.0}]}),
            "actions[0].attribute",
        ),
        (
            json!({"name": "x", "priority": 1, "conditions": {"market": ["XX"]}, "actions": [{"type": "quota", "attribute": "line", "max": 2}]}),
            "conditions.market[0]",
        ),
        (
            json!({"name": "x", "priority": 1, "actions": []}),
            "actions",
        ),
        (
            json!({"name": "x", "priority": 1, "actions": [{"type": "explode"}]}),
            "actions[0]",
        ),
    ] {
        let (status, v) = fx.send("POST", "/v1/rules", Some(rule.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rule}: {v}");
        assert!(
            v["error"]["field"].as_str().unwrap().starts_with(field),
            "{rule}: {v}"
        );
    }
}

async fn a_rule_goes_live_on_another_replica(real: bool) {
    let a = fixture(real).await;
    // Replica B: its own process state over the same durable stores, reloading on its own loop.
    let b = fixture_with(
        real,
        Models::fixed(model("v1"), catalog()),
        a.stores.clone(),
        None,
    )
    .await;
    let token = tokio_util::sync::CancellationToken::new();
    let reloader = tokio::spawn(b.serving.clone().run_reloader(token.clone()));
    create(
        &a,
        json!({"name": "pin 7", "priority": 1,
        "actions": [{"type": "pin", "product_id": item(7), "position": 1}]}),
    )
    .await;
    let started = Instant::now();
    loop {
        if b.ids(BASE).await[0] == item(7) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica B never saw the rule"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("rule live on replica B after {:?}", started.elapsed());
    token.cancel();
    reloader.await.unwrap();
}

async fn prices_per_market(real: bool) {
    let fx = fixture(real).await;
    let id = item(3);
    let (status, it) = fx
        .get(&format!("/v1/prices?product_id={id}&market=IT"))
        .await;
    assert_eq!(status, StatusCode::OK, "{it}");
    assert_eq!(it["currency"], "EUR");
    for (market, currency) in [("GB", "GBP"), ("CH", "CHF"), ("US", "USD"), ("FR", "EUR")] {
        let (status, p) = fx
            .get(&format!("/v1/prices?product_id={id}&market={market}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["currency"], currency);
        let (amount, ex, vat) = (
            p["amount"].as_f64().unwrap(),
            p["amount_ex_vat"].as_f64().unwrap(),
            p["vat_amount"].as_f64().unwrap(),
        );
        assert!(((ex + vat) - amount).abs() < 0.005, "{p}");
    }
    // An override wins, on every replica after reload; removing it restores the list price.
    let (_, gb) = fx
        .get(&format!("/v1/prices?product_id={id}&market=GB"))
        .await;
    let (status, v) = fx
        .send(
            "PUT",
            "/v1/prices/overrides",
            Some(json!({"product_id": id, "market": "GB", "amount": 999.0, "currency": "GBP"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, p) = fx
        .get(&format!("/v1/prices?product_id={id}&market=GB"))
        .await;
    assert_eq!(p["amount"], 999.0);
    assert_eq!(p["source"], "override");
    let (_, r) = fx
        .get("/v1/recommendations?user_id=U1&n=5&diversity=none&market=GB")
        .await;
    let rec = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["product_id"] == id.as_str())
        .unwrap();
    assert_eq!(rec["price"]["amount"], 999.0);
    let (status, _) = fx
        .send("DELETE", &format!("/v1/prices/overrides/{id}/GB"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, p) = fx
        .get(&format!("/v1/prices?product_id={id}&market=GB"))
        .await;
    assert_eq!(p["amount"], gb["amount"]);
    // Bad input.
    for (uri, field, code) in [
        (
            format!("/v1/prices?product_id={id}&market=XX"),
            "market",
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/v1/prices?product_id={id}&market=JP"),
            "market",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/prices?market=IT".to_string(),
            "product_id",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, v) = fx.get(&uri).await;
        assert_eq!(status, code, "{uri}: {v}");
        assert_eq!(v["error"]["field"], field, "{uri}: {v}");
    }
    let (status, v) = fx.get("/v1/prices?product_id=NOPE&market=IT").await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("NOPE"),
        "{v}"
    );
    let (status, v) = fx
        .send(
            "PUT",
            "/v1/prices/overrides",
            Some(json!({"product_id": id, "market": "GB", "amount": 10.0, "currency": "EUR"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "currency");
}

async fn experiments_bucket_and_route(real: bool) {
    let fx = fixture(real).await;
    let (status, e) = fx
        .send("POST", "/v1/experiments", Some(json!({"key": "pins", "name": "pin test", "status": "running",
            "placements": ["home"],
            "variants": [{"key": "control", "weight": 0.5}, {"key": "pinned", "weight": 0.5, "rule_set": "pinned"}]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let (status, v) = fx.send("POST", "/v1/experiments", Some(e.clone())).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT,
        "{v}"
    );
    let (_, list) = fx.get("/v1/experiments").await;
    assert_eq!(list["experiments"][0]["key"], "pins");
    create(
        &fx,
        json!({"name": "variant pin", "priority": 1, "rule_set": "pinned",
        "actions": [{"type": "pin", "product_id": item(33), "position": 1}]}),
    )
    .await;

    // Sticky: the same unit gets the same variant every time; the rule set follows the variant.
    let mut seen = std::collections::BTreeMap::new();
    for u in 0..40 {
        let unit = format!("unit{u}");
        let (status, a) = fx
            .get(&format!("/v1/experiments/pins/assignment?unit_id={unit}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{a}");
        let variant = a["variant"].as_str().unwrap().to_string();
        for _ in 0..3 {
            let (_, again) = fx
                .get(&format!("/v1/experiments/pins/assignment?unit_id={unit}"))
                .await;
            assert_eq!(again["variant"], variant.as_str());
        }
        let (_, r) = fx
            .get(&format!("/v1/recommendations?anonymous_id={unit}&n=5"))
            .await;
        assert_eq!(r["experiments"]["pins"], variant.as_str(), "{r}");
        let pinned = ids(&r)[0] == item(33);
        assert_eq!(pinned, variant == "pinned", "{unit}: {r}");
        *seen.entry(variant).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both variants over 40 units: {seen:?}");
    for (uri, code) in [
        ("/v1/experiments/pins/assignment", StatusCode::BAD_REQUEST),
        (
            "/v1/experiments/nope/assignment?unit_id=u",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, v) = fx.get(uri).await;
        assert_eq!(status, code, "{uri}: {v}");
    }
    // No event log in this fixture: results are unavailable, said so.
    let (status, v) = fx.get("/v1/experiments/pins/results").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
}

#[test]
fn bucketing_over_100k_units_follows_the_weights() {
    let exp: serving::experiments::Experiment = serde_json::from_value(json!({
        "key": "w", "name": "w", "salt": "w", "status": "running", "traffic": 1.0, "placements": [],
        "variants": [{"key": "a", "weight": 0.2}, {"key": "b", "weight": 0.3}, {"key": "c", "weight": 0.5}],
        "version": 1, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "updated_by": "t"
    }))
    .unwrap();
    let mut counts = std::collections::HashMap::new();
    for u in 0..100_000 {
        let a = serving::experiments::assign(&exp, &format!("user-{u}"));
        *counts.entry(a.variant.unwrap()).or_insert(0u32) += 1;
    }
    for (k, w) in [("a", 0.2), ("b", 0.3), ("c", 0.5)] {
        let share = f64::from(counts[k]) / 100_000.0;
        assert!((share - w).abs() < 0.01, "{k}: {share} vs {w}");
    }
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rules_act_on_the_list() {
        super::rules_act_on_the_list(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rule_goes_live_on_another_replica() {
        super::a_rule_goes_live_on_another_replica(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prices_per_market() {
        super::prices_per_market(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiments_bucket_and_route() {
        super::experiments_bucket_and_route(false).await;
    }
}

mod real {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rules_act_on_the_list() {
        super::rules_act_on_the_list(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rule_goes_live_on_another_replica() {
        super::a_rule_goes_live_on_another_replica(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prices_per_market() {
        super::prices_per_market(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiments_bucket_and_route() {
        super::experiments_bucket_and_route(true).await;
    }
}
