//! Unit tests of the engine on a hand-built ten-product catalogue, with hand-computed expectations.

use super::*;
use serde_json::{json, Value};

/// Ten products: id, category, line, collection, on sale.
const PRODUCTS: &[(&str, &str, &str, &str, bool)] = &[
    ("P01", "dresses", "milano", "FW26", false),
    ("P02", "dresses", "jeans", "FW26", false),
    ("P03", "bags", "milano", "SS26", false),
    ("P04", "bags", "jeans", "FW25", true),
    ("P05", "dresses", "milano", "FW25", true),
    ("P06", "shoes", "jeans", "SS26", false),
    ("P07", "shoes", "milano", "FW26", false),
    ("P08", "bags", "milano", "FW26", false),
    ("P09", "belts", "milano", "FW26", false),
    ("P10", "shoes", "jeans", "FW26", false),
];
const SIX: &[(&str, f32)] = &[
    ("P01", 6.0),
    ("P02", 5.0),
    ("P03", 4.0),
    ("P04", 3.0),
    ("P05", 2.0),
    ("P06", 1.0),
];

fn catalog() -> Catalog {
    let coll = |id: &str| json!({"id": id, "name": id, "launch": "2026-01-01T00:00:00Z", "on_sale": false});
    let products: Vec<Value> = PRODUCTS.iter().map(|(id, cat, line, coll, sale)| json!({
        "id": id, "name": id, "line_id": line, "category_id": cat, "department": "donna",
        "collection_id": coll, "colour_code": "NER", "price": 500.0, "sale_price": sale.then_some(300.0),
        "tax_class": "standard", "discontinued": false, "hidden": false,
        "created_at": "2026-01-01T00:00:00Z", "variants": []})).collect();
    serde_json::from_value(
        json!({"seed": 0, "lines": [], "categories": [], "colours": [], "locations": [],
        "collections": [coll("FW26"), coll("SS26"), coll("FW25")], "products": products}),
    )
    .unwrap()
}

/// Rules from `[{"id": 1, "priority": 10, "conditions": {..}, "actions": [..]}, ..]`, named `r<id>`.
fn rules(v: Value) -> Vec<Rule> {
    let at = t("2026-01-01T00:00:00Z");
    let rules = v.as_array().unwrap().iter().map(|r| {
        let id = r["id"].as_u64().unwrap();
        let input = serde_json::from_value(json!({"name": format!("r{id}"), "priority": r["priority"],
            "conditions": r.get("conditions").cloned().unwrap_or(json!({})), "actions": r["actions"]}));
        Rule { id: Uuid::from_u128(id as u128), input: input.unwrap(), version: 1, created_at: at,
            updated_at: at, updated_by: "test".into() }
    });
    rules.collect()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The context of every test: a New customer in IT on the mobile home page, in variant b of exp1.
fn with_ctx<T>(f: impl FnOnce(&RuleContext) -> T) -> T {
    let variants = BTreeMap::from([("exp1".to_string(), "b".to_string())]);
    f(&RuleContext {
        segment: "New",
        market: "IT",
        placement: "home",
        device: Some("mobile"),
        variants: &variants,
        rule_set: "default",
        now: t("2026-09-15T12:00:00Z"),
    })
}

/// Applies `rules` (P09 ineligible; popularity P09 .99 > P07 .9 > P10 .7 > P08 .5 > others .1): the ids
/// out, the effects as `product effect from→to` (`-` for none), the candidates out.
fn run(
    rules: &[Rule],
    scores: &[(&str, f32)],
    n: usize,
) -> (Vec<String>, Vec<String>, Vec<Candidate>) {
    let catalog = catalog();
    let popularity = |id: &str| match id {
        "P09" => 0.99,
        "P07" => 0.9,
        "P10" => 0.7,
        "P08" => 0.5,
        _ => 0.1,
    };
    let inputs = Inputs {
        catalog: &catalog,
        eligible: &|id: &str| id != "P09",
        popularity: &popularity,
        ranking: None,
    };
    let candidates = scores.iter().map(|(id, s)| Candidate {
        product_id: id.to_string(),
        score: *s,
        reasons: vec!["model".into()],
    });
    let (out, applied) =
        with_ctx(|ctx| apply(rules, ctx, &inputs, candidates.clone().collect(), n));
    // Rankings kept by the caller (as serving keeps them per model) give the same answer.
    let ranking = |c: &str| super::rank_collection(&catalog, c, &popularity);
    let ranked = Inputs {
        ranking: Some(&ranking),
        ..inputs
    };
    let again = with_ctx(|ctx| apply(rules, ctx, &ranked, candidates.collect(), n));
    assert_eq!(again, (out.clone(), applied.clone()), "with a kept ranking");
    let pos = |p: Option<usize>| p.map_or("-".to_string(), |p| p.to_string());
    let effects = applied.iter().map(|a| {
        format!(
            "{} {} {}→{}",
            a.product_id,
            a.effect,
            pos(a.from),
            pos(a.to)
        )
    });
    (
        out.iter().map(|c| c.product_id.clone()).collect(),
        effects.collect(),
        out,
    )
}

#[test]
fn without_rules_the_list_is_only_truncated() {
    let (ids, applied, out) = run(&[], SIX, 4);
    assert_eq!(
        (ids, applied),
        (
            vec!["P01", "P02", "P03", "P04"]
                .into_iter()
                .map(String::from)
                .collect(),
            vec![]
        )
    );
    assert_eq!(out[0].reasons, ["model"]);
}

#[test]
fn boost_and_bury() {
    // Base scores (min 1, max 6): P01 1.0, P02 .802, P03 .604, P04 .406, P05 .208, P06 .01.
    // ×3 for the jeans line: P02 2.406, P04 1.218, P06 .03.
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "boost", "attribute": "line", "value": "jeans", "factor": 3.0}]}]),
    );
    let (ids, applied, out) = run(&r, SIX, 6);
    assert_eq!(ids, ["P02", "P04", "P01", "P03", "P05", "P06"]);
    assert_eq!(
        applied,
        ["P02 boosted 2→1", "P04 boosted 4→2", "P06 boosted 6→6"]
    );
    assert_eq!(
        (out[0].score, &out[0].reasons[..]),
        (5.0, &["model".to_string(), "rule:r1".into()][..]),
        "model scores kept"
    );
    assert_eq!(out[2].reasons, ["model"]);
    // Boosts multiply: bags ×2, jeans ×2 → P04 1.624, P02 1.604, P03 1.208, P01 1, P05 .208, P06 .02.
    let r = rules(json!([
        {"id": 1, "priority": 10, "actions": [{"type": "boost", "attribute": "category", "value": "bags", "factor": 2.0}]},
        {"id": 2, "priority": 5, "actions": [{"type": "boost", "attribute": "line", "value": "jeans", "factor": 2.0}]}]));
    assert_eq!(
        run(&r, SIX, 6).0,
        ["P04", "P02", "P03", "P01", "P05", "P06"]
    );
    // Burying the sale items ÷50 moves them below P06 (.01): P04 .00812, P05 .00416.
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "bury", "attribute": "on_sale", "value": "true", "factor": 50.0}]}]),
    );
    let (ids, applied, _) = run(&r, SIX, 6);
    assert_eq!(ids, ["P01", "P02", "P03", "P06", "P04", "P05"]);
    assert_eq!(applied, ["P04 buried 4→5", "P05 buried 5→6"]);
}

#[test]
fn boost_and_bury_with_negative_scores() {
    // Base (min -10, max -1): P01 1.0, P02 .89, P03 .78, P04 .01. Multiplying the raw -3 by 1.5 would
    // sink P03; on the positive base it rises to 1.17.
    let scores = &[("P01", -1.0), ("P02", -2.0), ("P03", -3.0), ("P04", -10.0)];
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "boost", "attribute": "category", "value": "bags", "factor": 1.5}]}]),
    );
    assert_eq!(run(&r, scores, 4).0, ["P03", "P01", "P02", "P04"]);
    // Burying milano ÷2: P01 .5, P03 .39 → P02 first.
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "bury", "attribute": "line", "value": "milano", "factor": 2.0}]}]),
    );
    assert_eq!(run(&r, scores, 4).0, ["P02", "P01", "P03", "P04"]);
    // Equal scores: every base is 1, a bury moves the item last.
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "bury", "attribute": "product_id", "value": "P01", "factor": 1.1}]}]),
    );
    assert_eq!(
        run(&r, &[("P01", -4.0), ("P02", -4.0), ("P03", -4.0)], 3).0,
        ["P02", "P03", "P01"]
    );
}

#[test]
fn filter_removes_and_binds_pins() {
    let filter = json!({"id": 1, "priority": 1, "actions": [{"type": "filter", "attribute": "category", "value": "dresses"}]});
    let (ids, applied, _) = run(&rules(json!([filter])), SIX, 6);
    assert_eq!(ids, ["P03", "P04", "P06"]);
    assert_eq!(
        applied,
        ["P01 filtered 1→-", "P02 filtered 2→-", "P05 filtered 5→-"]
    );
    // A higher-priority pin cannot bring a rule-filtered product back, from the list or the catalogue:
    // the FW26 fill skips P01, P02 (filtered), P09 (ineligible) and takes P07.
    let pin = json!({"id": 2, "priority": 100, "actions": [{"type": "pin", "product_id": "P01", "position": 1},
        {"type": "pin_collection", "collection": "FW26", "positions": [2]}]});
    let (ids, applied, _) = run(&rules(json!([filter, pin])), SIX, 6);
    assert_eq!(ids, ["P03", "P07", "P04", "P06"]);
    assert_eq!(applied[3..], ["P01 pin_conflict 1→-", "P07 pinned -→2"]);
}

#[test]
fn quota_keeps_the_smallest_max() {
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "quota", "attribute": "category", "max": 2}]},
        {"id": 2, "priority": 5, "actions": [{"type": "quota", "attribute": "category", "max": 1}]}]),
    );
    let (ids, applied, _) = run(&r, SIX, 6);
    assert_eq!(ids, ["P01", "P03", "P06"]);
    assert_eq!(applied, ["P02 quota 2→-", "P04 quota 4→-", "P05 quota 5→-"]);
    let (_, applied) = with_ctx(|ctx| {
        let inputs = Inputs {
            catalog: &catalog(),
            eligible: &|_: &str| true,
            popularity: &|_: &str| 0.0,
            ranking: None,
        };
        let c = SIX.iter().map(|(id, s)| Candidate {
            product_id: id.to_string(),
            score: *s,
            reasons: vec![],
        });
        apply(&r, ctx, &inputs, c.collect(), 6)
    });
    assert!(applied
        .iter()
        .all(|a| a.rule_id == Uuid::from_u128(2) && a.rule == "r2" && a.action == 0));
}

#[test]
fn pins_move_insert_and_override_quotas() {
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "pin", "product_id": "P05", "position": 1},
        {"type": "pin", "product_id": "P07", "position": 3}]}]),
    );
    let (ids, applied, out) = run(&r, SIX, 4);
    assert_eq!(ids, ["P05", "P01", "P07", "P02"]);
    assert_eq!(applied, ["P05 pinned 5→1", "P07 pinned -→3"]);
    assert_eq!((out[0].score, out[2].score), (2.0, 0.0));
    assert_eq!(
        (&out[0].reasons[..], &out[2].reasons[..]),
        (
            &["model".to_string(), "rule:r1".into()][..],
            &["rule:r1".to_string()][..]
        )
    );
    // The quota drops P02 and P05; the pin puts P02 back, with its own score.
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "quota", "attribute": "category", "max": 1}]},
        {"id": 2, "priority": 1, "actions": [{"type": "pin", "product_id": "P02", "position": 2}]}]),
    );
    let (ids, _, out) = run(&r, SIX, 6);
    assert_eq!(
        (ids, out[1].score),
        (["P01", "P02", "P03", "P06"].map(String::from).to_vec(), 5.0)
    );
    // Too short a list: the pinned item follows the last one; a pin beyond n does nothing.
    let far = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "pin", "product_id": "P07", "position": 5}]}]),
    );
    assert_eq!(run(&far, &SIX[..2], 10).0, ["P01", "P02", "P07"]);
    let (ids, applied, _) = run(&far, SIX, 3);
    assert_eq!(
        (ids, applied),
        (["P01", "P02", "P03"].map(String::from).to_vec(), vec![])
    );
}

#[test]
fn higher_priority_pins_win() {
    let r = rules(json!([
        {"id": 3, "priority": 10, "actions": [{"type": "pin", "product_id": "P04", "position": 1}, {"type": "pin", "product_id": "P03", "position": 2}]},
        {"id": 7, "priority": 20, "actions": [{"type": "pin", "product_id": "P03", "position": 1}]}]));
    let (ids, applied, _) = run(&r, SIX, 4);
    assert_eq!(ids, ["P03", "P01", "P02", "P04"]);
    assert_eq!(
        applied,
        [
            "P03 pinned 3→1",
            "P04 pin_conflict 4→4",
            "P03 pin_conflict 3→1"
        ]
    );
    // Equal priorities: the smaller id wins.
    let r = rules(
        json!([{"id": 2, "priority": 10, "actions": [{"type": "pin", "product_id": "P06", "position": 1}]},
        {"id": 1, "priority": 10, "actions": [{"type": "pin", "product_id": "P05", "position": 1}]}]),
    );
    assert_eq!(run(&r, SIX, 2).0, ["P05", "P01"]);
}

#[test]
fn ineligible_products_never_leak() {
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "pin", "product_id": "P09", "position": 1},
        {"type": "pin", "product_id": "P999", "position": 2}]}]),
    );
    let (ids, applied, _) = run(&r, SIX, 6);
    assert_eq!(ids, ["P01", "P02", "P03", "P04", "P05", "P06"]);
    assert_eq!(applied, ["P09 pin_conflict -→-", "P999 pin_conflict -→-"]);
}

#[test]
fn collection_pins_fill_from_candidates_then_popularity() {
    let scores = &[
        ("P03", 5.0),
        ("P04", 4.0),
        ("P01", 3.0),
        ("P05", 2.0),
        ("P06", 1.0),
    ];
    // FW26: P01 from the candidates, then the catalogue by popularity (P09 .99 is ineligible): P07, P10.
    let fold = json!({"id": 1, "priority": 10, "actions": [{"type": "pin_collection", "collection": "FW26", "above_the_fold": 3}]});
    let (ids, applied, _) = run(&rules(json!([fold])), scores, 5);
    assert_eq!(ids, ["P01", "P07", "P10", "P03", "P04"]);
    assert_eq!(
        applied,
        ["P01 pinned 3→1", "P07 pinned -→2", "P10 pinned -→3"]
    );
    // A higher-priority pin holds position 2: the collection's next item waits for position 3.
    let hi = json!({"id": 2, "priority": 50, "actions": [{"type": "pin", "product_id": "P06", "position": 2}]});
    let (ids, applied, _) = run(&rules(json!([fold, hi])), scores, 5);
    assert_eq!(ids, ["P01", "P06", "P07", "P03", "P04"]);
    assert_eq!(
        applied,
        [
            "P06 pinned 5→2",
            "P01 pinned 3→1",
            "P07 pin_conflict -→3",
            "P07 pinned -→3"
        ]
    );
}

#[test]
fn conditions_select_rules() {
    let cases = [
        (json!({}), true),
        (json!({"segment": ["Lapsed"]}), false),
        (
            json!({"segment": ["Lapsed", "New"], "market": ["FR", "IT"]}),
            true,
        ),
        (json!({"market": ["FR"]}), false),
        (json!({"placement": ["pdp"]}), false),
        (json!({"placement": ["home"], "device": ["mobile"]}), true),
        (json!({"device": ["desktop"]}), false),
        (json!({"starts_at": "2026-09-15T12:00:00Z"}), true),
        (json!({"starts_at": "2026-09-16T00:00:00Z"}), false),
        (json!({"ends_at": "2026-09-15T12:00:00Z"}), false),
        (
            json!({"starts_at": "2026-09-01T00:00:00Z", "ends_at": "2026-10-01T00:00:00Z"}),
            true,
        ),
        (
            json!({"experiment": {"key": "exp1", "variants": ["b"]}}),
            true,
        ),
        (
            json!({"experiment": {"key": "exp1", "variants": ["a"]}}),
            false,
        ),
        (
            json!({"experiment": {"key": "exp2", "variants": ["b"]}}),
            false,
        ),
    ];
    let all: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (c, _))| {
            json!({"id": i, "priority": i,
        "conditions": c, "actions": [{"type": "quota", "attribute": "line", "max": 5}]})
        })
        .collect();
    let mut rs = rules(Value::Array(all));
    let ids = |ctx: &RuleContext, rs: &[Rule]| -> Vec<u128> {
        matching(rs, ctx).iter().map(|r| r.id.as_u128()).collect()
    };
    let want: Vec<u128> = (0..cases.len() as u128)
        .rev()
        .filter(|i| cases[*i as usize].1)
        .collect();
    assert_eq!(
        with_ctx(|ctx| ids(ctx, &rs)),
        want,
        "highest priority first"
    );
    with_ctx(|ctx| {
        // No device: only rules without a device condition; another rule set: none.
        assert!(!ids(
            &RuleContext {
                device: None,
                ..*ctx
            },
            &rs
        )
        .contains(&5));
        assert!(ids(
            &RuleContext {
                rule_set: "holiday",
                ..*ctx
            },
            &rs
        )
        .is_empty());
        rs[0].input.rule_set = "holiday".into();
        assert_eq!(
            ids(
                &RuleContext {
                    rule_set: "holiday",
                    ..*ctx
                },
                &rs
            ),
            [0]
        );
        rs.iter_mut().for_each(|r| r.input.enabled = false);
        assert!(ids(ctx, &rs).is_empty(), "disabled");
    });
    // Through apply: a rule whose conditions fail does nothing.
    let r = rules(
        json!([{"id": 1, "priority": 10, "conditions": {"segment": ["Lapsed"]},
        "actions": [{"type": "filter", "attribute": "line", "value": "milano"}]}]),
    );
    let (ids, applied, _) = run(&r, SIX, 3);
    assert_eq!(
        (ids, applied),
        (["P01", "P02", "P03"].map(String::from).to_vec(), vec![])
    );
}

#[test]
fn duplicate_candidates_keep_the_first() {
    let r = rules(
        json!([{"id": 1, "priority": 10, "actions": [{"type": "pin", "product_id": "P02", "position": 1}]}]),
    );
    assert_eq!(
        run(
            &r,
            &[("P01", 3.0), ("P02", 2.0), ("P01", 1.0), ("P03", 0.5)],
            5
        )
        .0,
        ["P02", "P01", "P03"]
    );
}
