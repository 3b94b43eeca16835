use super::*;
use crate::event::*;
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn valid(ty: &str, properties: Value) -> Value {
    json!({
        "event_id": "6f1c1a8e-6a55-4c1b-9a8e-2f4d3c2b1a00",
        "type": ty,
        "ts": "2026-11-25T11:59:00Z",
        "user_id": "U1",
        "anonymous_id": "a-1",
        "session_id": "s-1",
        "market": "IT",
        "device": "mobile",
        "properties": properties,
    })
}

fn codes(errs: &[FieldError]) -> Vec<(String, String)> {
    errs.iter()
        .map(|e| (e.field.clone(), e.code.clone()))
        .collect()
}

#[test]
fn accepts_every_type_with_minimum_properties() {
    let line = json!({"product_id":"P1","variant_id":"P1-42","quantity":1,"unit_price":10.5});
    let cases = [
        ("page_view", json!({"path":"/it"})),
        ("product_view", json!({"product_id":"P1"})),
        ("search", json!({"query":"abito"})),
        (
            "add_to_cart",
            json!({"product_id":"P1","variant_id":"P1-42","size":"42","quantity":2,"price":129.0}),
        ),
        (
            "remove_from_cart",
            json!({"product_id":"P1","variant_id":"P1-42","size":"42","quantity":1,"price":129}),
        ),
        (
            "purchase",
            json!({"order_id":"O1","currency":"EUR","total":10.5,"lines":[line]}),
        ),
        ("return", json!({"order_id":"O1","lines":[line]})),
        (
            "rec_impression",
            json!({"request_id":"r","product_ids":["P1","P2"]}),
        ),
        ("rec_click", json!({"request_id":"r","product_id":"P1"})),
        (
            "banner_impression",
            json!({"decision_id":"d","slot":"home_hero","arm_id":"a"}),
        ),
        ("banner_click", json!({"decision_id":"d","arm_id":"a"})),
        (
            "experiment_exposure",
            json!({"experiment":"e","variant":"v"}),
        ),
    ];
    assert_eq!(cases.len(), EventType::ALL.len());
    for (ty, props) in cases {
        let ev = validate_event(&valid(ty, props), now())
            .unwrap_or_else(|e| panic!("{ty} rejected: {e:?}"));
        assert_eq!(ev.event_type().as_str(), ty);
        assert_eq!(ev.key(), "U1");
    }
}

#[test]
fn reports_every_problem_with_its_path() {
    let ev = json!({
        "event_id": "not-a-uuid",
        "type": "purchase",
        "ts": "2026-11-27T12:00:00Z",
        "user_id": null,
        "anonymous_id": "",
        "market": "XX",
        "colour": "red",
        "properties": {"order_id": "O1", "currency": "EUX", "total": -1,
            "lines": [{"product_id": "P1", "variant_id": "V", "quantity": -2, "unit_price": "9"}]}
    });
    let errs = validate_event(&ev, now()).unwrap_err();
    let got = codes(&errs);
    for want in [
        ("colour", "unknown_field"),
        ("event_id", "malformed_uuid"),
        ("ts", "future_timestamp"),
        ("user_id", "no_identity"),
        ("market", "unknown_market"),
        ("properties.currency", "unknown_currency"),
        ("properties.total", "out_of_range"),
        ("properties.lines[0].quantity", "out_of_range"),
        ("properties.lines[0].unit_price", "wrong_type"),
    ] {
        assert!(
            got.contains(&(want.0.to_string(), want.1.to_string())),
            "missing {want:?} in {got:?}"
        );
    }
    assert_eq!(got.len(), 9, "{got:?}");
}

#[test]
fn missing_and_unknown_type_and_bad_timestamp() {
    let errs = validate_event(&json!({"type": "wishlist", "ts": "yesterday"}), now()).unwrap_err();
    let got = codes(&errs);
    assert!(got.contains(&("event_id".into(), "missing_field".into())));
    assert!(got.contains(&("type".into(), "unknown_type".into())));
    assert!(got.contains(&("ts".into(), "bad_timestamp".into())));
    assert!(got.contains(&("properties".into(), "missing_field".into())));
    assert!(got.contains(&("user_id".into(), "no_identity".into())));
    let errs = validate_event(&json!([1]), now()).unwrap_err();
    assert_eq!(errs[0].code, "not_an_object");
    let mut ev = valid("product_view", json!({}));
    ev["received_at"] = json!("2026-11-25T12:00:00Z");
    let got = codes(&validate_event(&ev, now()).unwrap_err());
    assert_eq!(
        got,
        vec![
            ("received_at".to_string(), "unknown_field".to_string()),
            (
                "properties.product_id".to_string(),
                "missing_field".to_string()
            )
        ]
    );
}

#[test]
fn anonymous_only_is_fine_and_extra_properties_are_kept() {
    let mut ev = valid("product_view", json!({"product_id": "P9", "list": "home"}));
    ev["user_id"] = Value::Null;
    let typed = validate_event(&ev, now()).unwrap();
    assert_eq!(typed.key(), "a-1");
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back["properties"]["list"], "home");
}

#[test]
fn schema_is_generated_and_covers_every_type() {
    let schema = json_schema();
    assert_eq!(schema["$id"], SCHEMA_ID);
    let variants = schema["oneOf"].as_array().unwrap();
    assert_eq!(variants.len(), EventType::ALL.len());
    let text = schema.to_string();
    for field in [
        "event_id",
        "anonymous_id",
        "unit_price",
        "product_ids",
        "decision_id",
    ] {
        assert!(text.contains(field), "{field} missing from schema");
    }
    assert!(!text.contains("received_at"));
}

fn arb_string() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_\\-/ ]{1,20}".prop_filter("non-blank", |s| !s.trim().is_empty())
}

fn arb_line() -> impl Strategy<Value = OrderLine> {
    (arb_string(), arb_string(), 1u32..1000, 0u32..1_000_000).prop_map(|(p, v, q, c)| OrderLine {
        product_id: p,
        variant_id: v,
        quantity: q,
        unit_price: f64::from(c) / 100.0,
        extra: Extra::new(),
    })
}

fn arb_properties() -> impl Strategy<Value = Properties> {
    fn cart() -> impl Strategy<Value = CartChange> {
        (
            arb_string(),
            arb_string(),
            arb_string(),
            1u32..50,
            0u32..100_000,
        )
            .prop_map(|(p, v, s, q, c)| CartChange {
                product_id: p,
                variant_id: v,
                size: s,
                quantity: q,
                price: f64::from(c) / 100.0,
                extra: Extra::new(),
            })
    }
    prop_oneof![
        arb_string().prop_map(|path| Properties::PageView(PageView {
            path,
            extra: Extra::new()
        })),
        arb_string().prop_map(|product_id| Properties::ProductView(ProductView {
            product_id,
            extra: Extra::new()
        })),
        arb_string().prop_map(|query| Properties::Search(Search {
            query,
            extra: Extra::new()
        })),
        cart().prop_map(Properties::AddToCart),
        cart().prop_map(Properties::RemoveFromCart),
        (
            arb_string(),
            prop::collection::vec(arb_line(), 1..5),
            0u32..1_000_000
        )
            .prop_map(|(order_id, lines, c)| Properties::Purchase(Purchase {
                order_id,
                currency: "EUR".into(),
                total: f64::from(c) / 100.0,
                lines,
                extra: Extra::new(),
            })),
        (arb_string(), prop::collection::vec(arb_line(), 1..5)).prop_map(|(order_id, lines)| {
            Properties::Return(Return {
                order_id,
                lines,
                extra: Extra::new(),
            })
        }),
        (arb_string(), prop::collection::vec(arb_string(), 1..10)).prop_map(
            |(request_id, product_ids)| Properties::RecImpression(RecImpression {
                request_id,
                product_ids,
                extra: Extra::new()
            })
        ),
        (arb_string(), arb_string()).prop_map(|(request_id, product_id)| {
            Properties::RecClick(RecClick {
                request_id,
                product_id,
                extra: Extra::new(),
            })
        }),
        (arb_string(), arb_string(), arb_string()).prop_map(|(decision_id, slot, arm_id)| {
            Properties::BannerImpression(BannerImpression {
                decision_id,
                slot,
                arm_id,
                extra: Extra::new(),
            })
        }),
        (arb_string(), arb_string()).prop_map(|(decision_id, arm_id)| {
            Properties::BannerClick(BannerClick {
                decision_id,
                arm_id,
                extra: Extra::new(),
            })
        }),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    (
        any::<u128>(),
        0i64..86_400 * 365,
        prop::option::of(arb_string()),
        arb_string(),
        prop::option::of(arb_string()),
        prop::sample::select(vec!["IT", "GB", "CH", "FR"]),
        prop::option::of(prop::sample::select(Device::ALL.to_vec())),
        arb_properties(),
    )
        .prop_map(
            |(id, secs, user, anon, session, market, device, properties)| Event {
                event_id: Uuid::from_u128(id),
                ts: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
                user_id: user,
                anonymous_id: Some(anon),
                session_id: session,
                market: Some(market.to_string()),
                device,
                received_at: None,
                properties,
            },
        )
}

proptest! {
    #[test]
    fn codec_round_trips(ev in arb_event()) {
        let bytes = serde_json::to_vec(&ev).unwrap();
        let back: Event = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &ev);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let validated = validate_event(&value, now()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(validated, ev);
    }

    #[test]
    fn stamped_events_round_trip(ev in arb_event(), secs in 0i64..1000) {
        let mut ev = ev;
        ev.received_at = DateTime::from_timestamp(1_800_000_000 + secs, 0);
        let back: Event = serde_json::from_slice(&ev.to_json_bytes()).unwrap();
        prop_assert_eq!(back, ev);
    }
}
