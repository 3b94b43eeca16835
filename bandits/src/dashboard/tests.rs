//! Unit tests of the dashboard pages.
use super::*;
use crate::report::{wilson, SegmentOpe, SeriesPoint};
use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn escape_covers_html_specials() {
    assert_eq!(
        escape(r#"<a href="x">Tom & Jerry's</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
    );
    assert_eq!(escape("plain — ünïcode"), "plain — ünïcode");
    assert_eq!(encode("At Risk"), "At%20Risk");
    assert_eq!(encode("arm:a&b"), "arm%3Aa%26b");
}

#[test]
fn numbers_are_formatted_consistently() {
    assert_eq!(rate(0.04567), "4.57%");
    assert_eq!(share(0.4), "40.0%");
    assert_eq!(money(1.005_1), "1.01");
    assert_eq!(rate(f64::NAN), "–");
}

#[test]
fn bad_parameters_are_named() {
    let q = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(Params::parse(&q(&[])).unwrap(), Params::default());
    for (pairs, field) in [
        (vec![("days", "abc")], "days"),
        (vec![("days", "0")], "days"),
        (vec![("segment", "VIP")], "segment"),
        (vec![("bucket_hours", "-1")], "bucket_hours"),
        (vec![("color", "red")], "color"),
    ] {
        let e = Params::parse(&q(&pairs)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{field}:")), "{e}");
    }
    let p = Params::parse(&q(&[("segment", "At Risk"), ("days", "30")])).unwrap();
    assert_eq!(
        p.url("home_hero", "At Risk", "arm:a", 30.0),
        "/dashboard/home_hero?days=30&segment=At%20Risk&policy=arm%3Aa"
    );
}

fn arm(id: &str, decisions: u64, total: u64, clicks: u64, prob_best: f64) -> ArmReport {
    ArmReport {
        arm_id: id.into(),
        decisions,
        share: decisions as f64 / total as f64,
        clicks,
        ctr: wilson(clicks, decisions),
        conversions: 0,
        cvr: wilson(0, decisions),
        revenue: 0.0,
        revenue_per_impression: 0.0,
        posterior_mean: (clicks as f64 + 1.0) / (decisions as f64 + 2.0),
        prob_best,
    }
}

fn info(id: &str, paused: bool) -> ArmInfo {
    ArmInfo {
        arm_id: id.into(),
        creative_url: String::new(),
        collection_id: String::new(),
        live: !paused,
        paused,
        traffic_floor: 0.05,
        campaign_start: None,
        campaign_end: None,
    }
}

fn report() -> SlotReport {
    let arms = vec![
        arm("hero_sale", 120, 200, 30, 0.973),
        arm("hero_new", 50, 200, 5, 0.02),
        arm("hero_old", 30, 200, 1, 0.007),
    ];
    let series = vec![
        SeriesPoint {
            bucket: t("2026-12-01T00:00:00Z"),
            decisions: [("hero_sale", 20), ("hero_new", 25), ("hero_old", 15)]
                .map(|(a, n)| (a.to_string(), n))
                .into(),
        },
        SeriesPoint {
            bucket: t("2026-12-01T06:00:00Z"),
            decisions: [("hero_sale", 100), ("hero_new", 25), ("hero_old", 15)]
                .map(|(a, n)| (a.to_string(), n))
                .into(),
        },
    ];
    let seg = SegmentReport {
        segment: "At Risk".into(),
        decisions: 200,
        arms,
        winner: Some("hero_sale".into()),
        winner_prob_best: 0.973,
        verdict: "sure".into(),
        forced: None,
        series,
    };
    let mut all = seg.clone();
    all.segment = "All".into();
    SlotReport {
        slot: "home_hero".into(),
        version: 3,
        policy: "thompson@v3.200".into(),
        generated_at: t("2026-12-02T10:00:00Z"),
        since: t("2026-11-25T10:00:00Z"),
        until: t("2026-12-02T10:00:01Z"),
        bucket_secs: 6 * 3600,
        arms: vec![
            info("hero_sale", false),
            info("hero_new", true),
            info("hero_old", false),
        ],
        segments: vec![all, seg],
        audit: vec![AuditEntry {
            slot: "home_hero".into(),
            at: t("2026-12-02T09:00:00Z"),
            actor: "<script>alert(1)</script>".into(),
            action: "pause".into(),
            detail: serde_json::json!({"action": "pause", "arm_id": "hero_new"}),
            version: 3,
        }],
    }
}

fn estimate(v: f64) -> ope::Estimate {
    ope::Estimate {
        value: v,
        interval: ope::Interval {
            mean: v,
            lower: v - 0.02,
            upper: v + 0.02,
        },
    }
}

#[test]
fn page_has_the_cells_tests_read_and_valid_looking_svg() {
    let r = report();
    let ope = OpeView::Report(OpeReport {
        slot: "home_hero".into(),
        policy: "arm:hero_sale".into(),
        since: r.since,
        until: r.until,
        segments: vec![SegmentOpe {
            segment: "At Risk".into(),
            rounds: 200,
            logged_value: 0.18,
            ipw: estimate(0.251),
            snipw: estimate(0.249),
            dm: estimate(0.25),
            dr: estimate(0.2503),
        }],
    });
    let params = Params {
        segment: "At Risk".into(),
        policy: "arm:hero_sale".into(),
        ..Params::default()
    };
    let page = render(&r, &params, Objective::Click, &ope, &Viewer::default());
    for needle in [
        r#"data-testid="decisions-hero_sale" data-value="120">120<"#,
        r#"data-testid="share-hero_sale" data-value="0.6">60.0%<"#,
        r#"data-testid="clicks-hero_new" data-value="5">5<"#,
        r#"data-testid="ctr-hero_sale" data-value="0.25""#,
        r#"data-testid="prob-best-hero_sale" data-value="0.973">97.3%<"#,
        r#"data-testid="state-hero_new">paused<"#,
        r#"data-testid="state-hero_sale">live<"#,
        r#"data-testid="pause-hero_sale""#,
        r#"data-testid="resume-hero_new""#,
        r#"Not signed in: changes are recorded as anonymous."#,
        r#"data-testid="ope-dr" data-value="0.2503">25.03%<"#,
        "Winner for At Risk: hero_sale — we are sure (P(best) 97.3%)",
        r#"<h1 data-testid="slot-title">home_hero</h1>"#,
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "arm_id: hero_new",
        "would most likely have earned <strong>more</strong>",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
    assert!(!page.contains("<script>alert"), "the actor is escaped");
    assert_eq!(
        page.matches("<script>").count(),
        1,
        "only the page's own script"
    );
    for chart in ["share-chart", "ctr-chart"] {
        let start = page
            .find(&format!(r#"data-testid="{chart}""#))
            .and_then(|i| page[..i].rfind("<svg "))
            .unwrap_or_else(|| panic!("no {chart}"));
        let len = page[start..].find("</svg>").unwrap() + "</svg>".len();
        let svg = &page[start..start + len];
        assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains("viewBox=\"0 0 "));
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        for arm in ["hero_sale", "hero_new", "hero_old"] {
            assert!(
                svg.contains(&format!(">{arm}</text>")),
                "{chart} legend: {arm}"
            );
        }
    }
    // Two buckets × three arms of stacked columns; one error bar per arm.
    assert_eq!(page.matches(" decisions (").count(), 6);
    assert_eq!(page.matches(r#"data-testid="ctr-bar-"#).count(), 3);
}

#[test]
fn a_forced_segment_says_so_and_offers_unforce() {
    let mut r = report();
    r.segments[1].forced = Some("hero_new".into());
    let params = Params {
        segment: "At Risk".into(),
        ..Params::default()
    };
    let page = render(
        &r,
        &params,
        Objective::Click,
        &OpeView::Failed("<boom>".into()),
        &Viewer::default(),
    );
    assert!(page.contains("every At Risk shopper sees <strong>hero_new</strong>"));
    assert!(page.contains(r#"data-testid="unforce">Unforce (hero_new)<"#));
    assert!(page.contains("could not be computed: &lt;boom&gt;"));
    let all = render(
        &r,
        &Params::default(),
        Objective::Click,
        &OpeView::NoData,
        &Viewer::default(),
    );
    assert!(
        !all.contains(r#"data-testid="force""#),
        "no forcing for All"
    );
}

#[test]
fn missing_segment_and_missing_ope_read_as_notes() {
    let r = report();
    let params = Params {
        segment: "Lapsed".into(),
        ..Params::default()
    };
    let page = render(
        &r,
        &params,
        Objective::Click,
        &OpeView::NoData,
        &Viewer::default(),
    );
    assert!(page.contains("No winner for Lapsed yet"));
    assert!(page.contains(r#"data-testid="ope-note">Not enough data yet"#));
    assert!(page.contains("No decisions in this window"));
    assert!(page.contains(r#"data-testid="state-hero_sale">live<"#));
    assert!(page.contains(r#"data-testid="force""#));
    assert!(!page.contains("data-testid=\"decisions-"));
}

#[test]
fn a_signed_in_page_names_the_key_and_carries_the_csrf_token() {
    let viewer = Viewer {
        name: Some("giulia-<rossi>".into()),
        csrf: Some("tok\"en".into()),
    };
    let page = render(
        &report(),
        &Params::default(),
        Objective::Click,
        &OpeView::NoData,
        &viewer,
    );
    assert!(page.contains(r#"<b data-testid="signed-in">giulia-&lt;rossi&gt;</b>"#));
    assert!(
        page.contains(r#"data-csrf="tok&quot;en""#),
        "escaped in the attribute"
    );
    assert!(page.contains(r#"action="/console/logout""#));
    assert!(!page.contains("Not signed in"));
}
