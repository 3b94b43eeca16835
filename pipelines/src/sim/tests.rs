//! Whole-simulator tests: determinism, event contract, rates, banner truth.

use super::*;
use crate::sim::events::validate_event;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use chrono::{Duration, TimeZone};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

fn catalog() -> Arc<Catalog> {
    static CAT: OnceLock<Arc<Catalog>> = OnceLock::new();
    CAT.get_or_init(|| Arc::new(Catalog::generate(1))).clone()
}

/// Horizon of the shared population run.
const WEEKS: i64 = 8;

/// 2,000 shoppers over eight simulated weeks, shared by the rate tests.
fn population_run() -> &'static (GroundTruth, Vec<Value>) {
    static RUN: OnceLock<(GroundTruth, Vec<Value>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut sim = Simulator::new(SimConfig::new(7, 2_000, start()), catalog());
        let end = start() + Duration::weeks(WEEKS);
        let mut all = Vec::new();
        loop {
            let batch = sim.next_events_until(end, 50_000);
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        (sim.truth(), all)
    })
}

fn kind(e: &Value) -> &str {
    e["type"].as_str().unwrap()
}

#[test]
fn same_seed_same_stream_regardless_of_chunking() {
    let cfg = SimConfig::new(11, 300, start());
    let mut a = Simulator::new(cfg.clone(), catalog());
    let mut b = Simulator::new(cfg, catalog());
    let one = a.next_events(20_000);
    let mut chunked = Vec::new();
    while chunked.len() < 20_000 {
        chunked.extend(b.next_events(7.min(20_000 - chunked.len())));
    }
    assert_eq!(one.len(), 20_000);
    assert_eq!(one, chunked);
    assert_eq!(a.truth(), b.truth());
    let mut c = Simulator::new(SimConfig::new(12, 300, start()), catalog());
    assert_ne!(c.next_events(100), one[..100].to_vec());
}

#[test]
fn live_mode_never_passes_now_and_matches_replay() {
    let cfg = SimConfig::new(3, 200, start());
    let mut replay = Simulator::new(cfg.clone(), catalog());
    let mut live = Simulator::new(cfg, catalog());
    let mut got = Vec::new();
    for hour in 1..=48 {
        let now = start() + Duration::hours(hour);
        let batch = live.next_events_until(now, usize::MAX);
        let now_s = format_ts(now.timestamp_millis());
        assert!(batch
            .iter()
            .all(|e| e["ts"].as_str().unwrap() <= now_s.as_str()));
        assert!(live.clock() <= now);
        got.extend(batch);
    }
    assert!(got.len() > 500, "{}", got.len());
    assert_eq!(replay.next_events(got.len()), got);
    assert_eq!(live.events_emitted(), got.len() as u64);
}

#[test]
fn every_event_follows_the_contract() {
    let (truth, events) = population_run();
    let mut seen_types = HashSet::new();
    let mut last_ts = String::new();
    let mut event_ids = HashSet::new();
    let mut rec_requests: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut decisions: HashMap<&str, &str> = HashMap::new();
    let mut orders = HashSet::new();
    let cat = catalog();
    let anon: HashSet<&str> = truth
        .users
        .iter()
        .map(|u| u.anonymous_id.as_str())
        .collect();
    for e in events {
        validate_event(e).unwrap_or_else(|err| panic!("{err}: {e}"));
        let ts = e["ts"].as_str().unwrap().to_string();
        assert!(ts >= last_ts, "ts went backwards: {last_ts} -> {ts}");
        last_ts = ts;
        assert!(event_ids.insert(e["event_id"].as_str().unwrap()));
        assert!(anon.contains(e["anonymous_id"].as_str().unwrap()));
        assert!(EVENT_TYPES.contains(&kind(e)));
        seen_types.insert(kind(e));
        let p = &e["properties"];
        match kind(e) {
            "rec_impression" => {
                let ids = p["product_ids"].as_array().unwrap();
                let ids = ids.iter().map(|v| v.as_str().unwrap()).collect();
                rec_requests.insert(p["request_id"].as_str().unwrap(), ids);
            }
            "rec_click" => {
                let shown = &rec_requests[p["request_id"].as_str().unwrap()];
                assert!(shown.contains(&p["product_id"].as_str().unwrap()));
            }
            "banner_impression" => {
                assert_eq!(p["slot"], HOME_HERO_SLOT);
                assert!(ARM_IDS.contains(&p["arm_id"].as_str().unwrap()));
                decisions.insert(
                    p["decision_id"].as_str().unwrap(),
                    p["arm_id"].as_str().unwrap(),
                );
            }
            "banner_click" => {
                assert_eq!(decisions[p["decision_id"].as_str().unwrap()], p["arm_id"]);
            }
            "add_to_cart" | "remove_from_cart" => {
                let (prod, var) = cat.variant(p["variant_id"].as_str().unwrap()).unwrap();
                assert_eq!(p["product_id"], prod.id.as_str());
                assert_eq!(p["size"], var.size.as_str());
                assert_eq!(p["price"].as_f64(), Some(prod.effective_price()));
            }
            "purchase" => {
                let lines = p["lines"].as_array().unwrap();
                let sum: f64 = lines
                    .iter()
                    .map(|l| l["unit_price"].as_f64().unwrap() * l["quantity"].as_f64().unwrap())
                    .sum();
                assert!((sum - p["total"].as_f64().unwrap()).abs() < 1e-6);
                assert!(orders.insert(p["order_id"].as_str().unwrap()));
            }
            "return" => {
                assert!(orders.contains(p["order_id"].as_str().unwrap()));
                assert_eq!(e["device"], "other");
            }
            _ => {}
        }
    }
    assert_eq!(seen_types.len(), EVENT_TYPES.len(), "{seen_types:?}");
    // Some traffic is anonymous-only, some identified.
    let nulls = events.iter().filter(|e| e["user_id"].is_null()).count();
    let share = nulls as f64 / events.len() as f64;
    assert!((0.3..0.8).contains(&share), "{share}");
    let registered = truth.users.iter().filter(|u| u.user_id.is_some()).count();
    assert!((1_000..1_600).contains(&registered), "{registered}");
}

/// Sessions (by id, excluding back-office returns) and their segment.
fn sessions_by_segment(truth: &GroundTruth, events: &[Value]) -> HashMap<String, Segment> {
    let users = truth.users_by_anonymous_id();
    events
        .iter()
        .filter(|e| kind(e) != "return")
        .map(|e| {
            let u = users[e["anonymous_id"].as_str().unwrap()];
            (e["session_id"].as_str().unwrap().to_string(), u.segment)
        })
        .collect()
}

#[test]
fn funnel_rates_are_in_documented_bands() {
    let (truth, events) = population_run();
    let sessions = sessions_by_segment(truth, events);
    let count = |t: &str| events.iter().filter(|e| kind(e) == t).count() as f64;
    // Session conversion 2–3 % (target ≈ 2.4 %).
    let conversion = count("purchase") / sessions.len() as f64;
    assert!(
        (0.02..=0.03).contains(&conversion),
        "conversion {conversion}"
    );
    // Add-to-cart 8–12 % of product views.
    let atc = count("add_to_cart") / count("product_view");
    assert!((0.08..=0.12).contains(&atc), "atc {atc}");
    // High-Value Returning converts at well over twice the overall rate.
    let mut per_seg: BTreeMap<Segment, (f64, f64)> = BTreeMap::new();
    for seg in sessions.values() {
        per_seg.entry(*seg).or_default().0 += 1.0;
    }
    for e in events.iter().filter(|e| kind(e) == "purchase") {
        per_seg
            .get_mut(&sessions[e["session_id"].as_str().unwrap()])
            .unwrap()
            .1 += 1.0;
    }
    let hvr = per_seg[&Segment::HighValueReturning];
    assert!(hvr.1 / hvr.0 > 2.0 * conversion, "{per_seg:?}");
    // Active Browsers are the biggest share of sessions.
    let ab = per_seg[&Segment::ActiveBrowser].0 / sessions.len() as f64;
    assert!((0.5..0.7).contains(&ab), "{ab}");
}

#[test]
fn return_rate_is_in_fashion_band() {
    let (_, events) = population_run();
    // Only orders old enough for every return (≤ 22 days) to have arrived.
    let cutoff =
        format_ts((start() + Duration::weeks(WEEKS) - Duration::days(22)).timestamp_millis());
    let mut eligible: HashMap<&str, usize> = HashMap::new();
    let mut returned = 0usize;
    for e in events {
        let p = &e["properties"];
        let n = || p["lines"].as_array().unwrap().len();
        match kind(e) {
            "purchase" if e["ts"].as_str().unwrap() < cutoff.as_str() => {
                eligible.insert(p["order_id"].as_str().unwrap(), n());
            }
            "return" if eligible.contains_key(p["order_id"].as_str().unwrap()) => returned += n(),
            _ => {}
        }
    }
    let sold: usize = eligible.values().sum();
    assert!(sold > 300, "{sold}");
    let rate = returned as f64 / sold as f64;
    assert!(
        (0.20..=0.40).contains(&rate),
        "return rate {rate} ({returned}/{sold})"
    );
}

#[test]
fn product_views_follow_taste() {
    let (truth, events) = population_run();
    let users = truth.users_by_anonymous_id();
    let cat = catalog();
    let (mut hits, mut views) = (0usize, 0usize);
    for e in events.iter().filter(|e| kind(e) == "product_view") {
        let u = users[e["anonymous_id"].as_str().unwrap()];
        let p = cat
            .product(e["properties"]["product_id"].as_str().unwrap())
            .unwrap();
        views += 1;
        hits += usize::from(u.top_categories.contains(&p.category_id));
    }
    // 3 of 27 categories would get ~11 % of views by chance.
    let share = hits as f64 / views as f64;
    assert!(share > 0.4, "{share}");
}

#[test]
fn banner_clicks_track_true_ctr() {
    let (truth, events) = population_run();
    let users = truth.users_by_anonymous_id();
    // (segment, arm) -> (impressions, clicks)
    let mut cells: BTreeMap<(Segment, String), (f64, f64)> = BTreeMap::new();
    for e in events {
        let seg = users[e["anonymous_id"].as_str().unwrap()].segment;
        let arm = e["properties"]["arm_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match kind(e) {
            "banner_impression" => cells.entry((seg, arm)).or_default().0 += 1.0,
            "banner_click" => cells.entry((seg, arm)).or_default().1 += 1.0,
            _ => {}
        }
    }
    assert_eq!(cells.len(), 25);
    let (mut chi2, mut expected, mut clicks) = (0.0, 0.0, 0.0);
    for ((seg, arm), (n, c)) in &cells {
        let p = truth.banner_ctr(*seg, arm).unwrap();
        let sd = (p * (1.0 - p) / n).sqrt();
        if *n >= 100.0 {
            assert!(
                (c / n - p).abs() <= 4.0 * sd,
                "{seg:?}/{arm}: {c}/{n} vs {p}"
            );
        }
        chi2 += (c - n * p).powi(2) / (n * p * (1.0 - p));
        expected += n * p;
        clicks += c;
    }
    // χ² with 25 d.o.f.: mean 25, P(> 60) ≈ 1e-4.
    assert!(chi2 < 60.0, "chi2 {chi2}");
    assert!(
        (clicks - expected).abs() < 4.0 * expected.sqrt(),
        "{clicks} vs {expected}"
    );
    // Winners separate where the data is big enough: HVR prefers atelier over sale.
    let ctr = |s, a: &str| {
        let (n, c) = cells[&(s, a.to_string())];
        c / n
    };
    let hvr = Segment::HighValueReturning;
    assert!(ctr(hvr, "hero_atelier") > ctr(hvr, "hero_sale") + 0.03);
    let ab = Segment::ActiveBrowser;
    assert!(ctr(ab, "hero_sneakers") > ctr(ab, "hero_atelier") + 0.03);
}

#[test]
fn truth_is_complete_and_serialisable() {
    let sim = Simulator::new(SimConfig::new(5, 50, start()), catalog());
    let truth = sim.truth();
    assert_eq!(truth.users.len(), 50);
    assert_eq!(truth.product_embeddings.len(), catalog().len());
    assert!(truth.users.iter().all(|u| u.taste.len() == EMBED_DIM));
    assert!(truth.users.iter().all(|u| u.top_categories.len() == 3));
    assert_eq!(truth.segments[2].best_arm, "hero_atelier");
    let path = std::env::temp_dir().join(format!("lusso_truth_{}.json", std::process::id()));
    truth.write_json(&path).unwrap();
    let back: GroundTruth = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back.users[0].anonymous_id, truth.users[0].anonymous_id);
    let u = &truth.users[0];
    let pid = "P000001";
    let manual: f32 = u
        .taste
        .iter()
        .zip(&truth.product_embeddings[pid])
        .map(|(a, b)| a * b)
        .sum();
    assert_eq!(truth.affinity(&u.anonymous_id, pid), Some(manual));
}

#[test]
fn zero_users_emit_nothing() {
    let mut sim = Simulator::new(SimConfig::new(1, 0, start()), catalog());
    assert!(sim.next_events(10).is_empty());
    assert_eq!(sim.clock(), start());
}
