//! After the sale, through the HTTP API, on the in-memory store and on PostgreSQL: returns with refunds and
//! restocking, e-invoices (numbering without gaps, validated by a38), SDI receipts, the card-number guard
//! (refused, never stored, never logged) and the outbox relayed to a real bus (the embedded one for the
//! memory store, the Kafka-protocol broker for PostgreSQL).

mod a38;
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use common::{checkout_body, fixture, listed, Backend, Fixture};
use pipelines::bus::EventBus;
use serde_json::{json, Value};

fn sku(i: usize) -> String {
    listed()[i].variants[1].id.clone()
}

/// Everything this test binary logs, to check that no card number ever reaches a log line.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A paid order of `lines`; returns its id.
async fn paid(f: &Fixture, key: &str, lines: &[(&str, u32)], buyer: Option<Value>) -> String {
    let cart = f.cart("IT", lines).await;
    let mut body = checkout_body(&cart, "succeed");
    if let Some(b) = buyer {
        body["buyer"] = b;
    }
    let (s, b) = f.checkout(key, body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["order_id"].as_str().unwrap().to_string()
}

fn consumer_with_cf() -> Value {
    json!({"kind": "consumer", "email": "giulia@example.com", "codice_fiscale": "RSSMRA85T10A562S",
           "billing": common::milano()})
}

async fn returns_refund_and_restock(backend: Backend) {
    let f = fixture(backend).await;
    let a = sku(0);
    f.stock(&a, &[("online", 3)]).await;
    let id = paid(&f, "k-ret", &[(&a, 3)], None).await;
    let (_, order) = f.get(&format!("/v1/orders/{id}")).await;
    let charged = order["payment"]["captured"].as_i64().unwrap();
    let unit = order["tax"]["lines"][0]["unit_price"].as_i64().unwrap();
    assert_eq!(f.levels(&a).await, (0, 0, 0));

    let (s, r) = f
        .post(&format!("/v1/orders/{id}/returns"),
              json!({"lines": [{"sku": a, "quantity": 1}], "location": "roma-condotti", "reason": "too small"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "refunded");
    assert_eq!(r["refund_amount"].as_i64().unwrap(), unit);
    let (_, inv) = f.get(&format!("/v1/inventory/{a}")).await;
    assert_eq!(inv["locations"]["roma-condotti"]["on_hand"], 1);
    let (_, o) = f.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(o["status"], "partially_returned");

    // Three more cannot come back; two can, and then everything charged has been refunded.
    let (s, e) = f
        .post(
            &format!("/v1/orders/{id}/returns"),
            json!({"lines": [{"sku": a, "quantity": 3}], "location": "online"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, r2) = f
        .post(
            &format!("/v1/orders/{id}/returns"),
            json!({"lines": [{"sku": a, "quantity": 2}], "location": "online"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r2}");
    let (_, o) = f.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(o["status"], "returned");
    assert_eq!(o["payment"]["refunded"].as_i64().unwrap(), charged);
    assert_eq!(f.levels(&a).await, (3, 0, 3));
    let (_, list) = f.get(&format!("/v1/orders/{id}/returns")).await;
    assert_eq!(list["returns"].as_array().unwrap().len(), 2);
    let completed: Vec<Value> = f
        .outbox()
        .await
        .into_iter()
        .filter(|m| m["type"] == "return_completed")
        .collect();
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0]["location"], "roma-condotti");

    // Bad input.
    let (s, e) = f
        .post(
            &format!("/v1/orders/{id}/returns"),
            json!({"lines": [{"sku": a, "quantity": 1}], "location": "venezia"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("location"))
    );
    let (s, e) = f
        .post(
            &format!("/v1/orders/{id}/returns"),
            json!({"lines": [{"sku": "P999999-NER-42", "quantity": 1}], "location": "online"}),
        )
        .await;
    assert!(
        s == StatusCode::BAD_REQUEST || s == StatusCode::CONFLICT,
        "{s} {e}"
    );
}

async fn invoices_are_numbered_without_gaps_and_validate(backend: Backend) {
    let f = fixture(backend).await;
    let (a, b) = (sku(1), sku(2));
    f.stock(&a, &[("online", 5)]).await;
    f.stock(&b, &[("online", 5)]).await;
    // A consumer without a codice fiscale cannot get an e-invoice: 409, and no number is used up.
    let plain = paid(&f, "k-inv-0", &[(&a, 1)], None).await;
    let (s, e) = f
        .call_raw("GET", &format!("/v1/orders/{plain}/invoice.xml"), None, &[])
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&e));

    let first = paid(&f, "k-inv-1", &[(&a, 1), (&b, 2)], Some(consumer_with_cf())).await;
    let second = paid(&f, "k-inv-2", &[(&b, 1)], Some(consumer_with_cf())).await;
    let (s, x1) = f
        .call_raw("GET", &format!("/v1/orders/{first}/invoice.xml"), None, &[])
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&x1));
    let (_, x2) = f
        .call_raw(
            "GET",
            &format!("/v1/orders/{second}/invoice.xml"),
            None,
            &[],
        )
        .await;
    let (_, again) = f
        .call_raw("GET", &format!("/v1/orders/{first}/invoice.xml"), None, &[])
        .await;
    assert_eq!(x1, again, "an invoice is issued once");
    let (_, o1) = f.get(&format!("/v1/orders/{first}")).await;
    let (_, o2) = f.get(&format!("/v1/orders/{second}")).await;
    let year = chrono::Datelike::year(&chrono::Utc::now());
    assert_eq!(o1["invoice"]["number"], format!("{year}/000001"));
    assert_eq!(o2["invoice"]["number"], format!("{year}/000002"));
    let x1 = String::from_utf8(x1).unwrap();
    assert!(
        x1.contains("FPR12") && x1.contains("RSSMRA85T10A562S"),
        "{x1}"
    );
    // Every invoice validates with a38.
    let dir = tempfile::tempdir().unwrap();
    let tool = a38::a38tool();
    for (order, xml) in [(&o1, x1), (&o2, String::from_utf8(x2).unwrap())] {
        let path = dir
            .path()
            .join(order["invoice"]["file_name"].as_str().unwrap());
        std::fs::write(&path, &xml).unwrap();
        a38::a38_validate(
            &tool,
            order["invoice"]["number"].as_str().unwrap(),
            &xml,
            &path,
        );
    }
    // SDI receipts follow the state machine.
    let sdi = format!("/v1/orders/{first}/invoice/sdi");
    let (s, _) = f.post(&sdi, json!({"kind": "delivered"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "delivered before sent");
    let (s, r) = f.post(&sdi, json!({"kind": "sent"})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, e) = f.post(&sdi, json!({"kind": "rejected"})).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reason"))
    );
    let (s, r) = f
        .post(
            &sdi,
            json!({"kind": "rejected", "reason": "00404 fattura duplicata"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let old_name = r["file_name"].clone();
    let (_, r) = f.post(&sdi, json!({"kind": "sent"})).await;
    assert_ne!(
        r["file_name"], old_name,
        "a re-submission gets a new file name"
    );
    let (_, r) = f.post(&sdi, json!({"kind": "delivered"})).await;
    assert_eq!(r["sdi"]["state"], "delivered");
    let (s, _) = f.post(&sdi, json!({"kind": "sent"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "delivered is final");
    // Unpaid orders have no invoice.
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let (_, b) = f
        .checkout("k-inv-3", checkout_body(&cart, "requires_action"))
        .await;
    let (s, _) = f
        .call_raw(
            "GET",
            &format!("/v1/orders/{}/invoice.xml", b["order_id"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

const CARD: &str = "4000002760003184";

async fn card_numbers_are_refused_and_never_stored(backend: Backend) {
    let logs = log_buffer();
    let f = fixture(backend).await;
    let a = sku(3);
    f.stock(&a, &[("online", 2)]).await;
    let (s, e) = f
        .post(
            "/v1/carts",
            json!({"market": "IT", "note": "card 4000 0027 6000 3184 exp 12/30"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("note")),
        "{e}"
    );
    let cart = f.cart("IT", &[(&a, 1)]).await;
    let mut body = checkout_body(&cart, "succeed");
    body["payment"] =
        json!({"provider": "stripe", "card": {"number": CARD, "exp": "12/30", "cvc": "123"}});
    let (s, e) = f.checkout("k-pan", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["field"], "payment.card.number");
    assert!(!e.to_string().contains(CARD), "the answer does not echo it");
    let mut body = checkout_body(&cart, "succeed");
    body["shipping"]["street"] = json!(4000002760003184u64);
    let (s, _) = f.checkout("k-pan-2", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "as a JSON number too");
    // Nothing was reserved or ordered, and the number is nowhere.
    assert_eq!(f.levels(&a).await, (2, 0, 2));
    assert!(f
        .outbox()
        .await
        .iter()
        .all(|m| !m.to_string().contains(CARD)));
    let log = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    for form in [CARD, "4000 0027 6000 3184"] {
        assert!(!log.contains(form), "a card number reached the logs");
    }
    assert!(
        log.contains("card-number-like"),
        "the refusal itself is logged (without the value)"
    );
    if let Some(url) = &f.database_url {
        let pool = pipelines::pg::connect(url, 1).await.unwrap();
        for table in [
            "commerce_carts",
            "commerce_orders",
            "commerce_idempotency",
            "commerce_returns",
        ] {
            // Table names come from the constant list above; the pattern is bound.
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table} t WHERE row_to_json(t)::text LIKE $1"
            ))
            .bind(format!("%{CARD}%"))
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(n, 0, "{table}");
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM commerce_outbox WHERE position($1::bytea in payload) > 0",
        )
        .bind(CARD.as_bytes())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 0);
    }
}

async fn outbox_is_relayed_in_order_per_order(backend: Backend, bus: Arc<dyn EventBus>) {
    let f = fixture(backend).await;
    let topic = format!("lusso.commerce.test.{}", uuid::Uuid::new_v4().simple());
    bus.ensure_topic(&topic, 3).await.unwrap();
    let a = sku(4);
    f.stock(&a, &[("online", 2)]).await;
    let id = paid(&f, "k-relay", &[(&a, 1)], None).await;
    let mut relayed = 0;
    loop {
        let n = commerce::outbox::relay_once(&f.commerce, bus.as_ref(), &topic)
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        relayed += n;
    }
    assert!(relayed >= 5, "{relayed}");
    assert_eq!(
        f.store.outbox_len().await.unwrap(),
        0,
        "acknowledged after produce"
    );
    let mut sub = bus.subscribe(&topic, "lusso-commerce-test").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..50 {
        got.extend(sub.poll(100, Duration::from_millis(200)).await.unwrap());
        if got.len() >= relayed {
            break;
        }
    }
    assert_eq!(got.len(), relayed);
    let of_order: Vec<Value> = got
        .iter()
        .filter(|m| m.key.as_deref() == Some(id.as_bytes()))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    let kinds: Vec<&str> = of_order
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["order_placed", "order_status"]);
    assert_eq!(of_order[1]["status"], "paid");
    let stock: Vec<Value> = got
        .iter()
        .filter(|m| m.key.as_deref() == Some(listed()[4].id.as_bytes()))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert!(stock.iter().all(|m| m["type"] == "stock_level"));
    let decoded: Vec<pipelines::commerce::CommerceEvent> = got
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert!(decoded
        .iter()
        .all(|e| !matches!(e, pipelines::commerce::CommerceEvent::Other)));
}

mod memory {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returns_refund_and_restock() {
        super::returns_refund_and_restock(Backend::Memory).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invoices_are_numbered_without_gaps_and_validate() {
        super::invoices_are_numbered_without_gaps_and_validate(Backend::Memory).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn card_numbers_are_refused_and_never_stored() {
        super::card_numbers_are_refused_and_never_stored(Backend::Memory).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outbox_is_relayed_in_order_per_order() {
        let bus = pipelines::bus::memory::MemoryBus::new(Default::default());
        super::outbox_is_relayed_in_order_per_order(Backend::Memory, Arc::new(bus)).await
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returns_refund_and_restock() {
        super::returns_refund_and_restock(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invoices_are_numbered_without_gaps_and_validate() {
        super::invoices_are_numbered_without_gaps_and_validate(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn card_numbers_are_refused_and_never_stored() {
        super::card_numbers_are_refused_and_never_stored(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outbox_is_relayed_in_order_per_order() {
        use pipelines::bus::kafka::{KafkaBus, KafkaConfig};
        let bus =
            KafkaBus::new(KafkaConfig::new(common::require_env("LUSSO_KAFKA_BROKERS"))).unwrap();
        super::outbox_is_relayed_in_order_per_order(Backend::Postgres, Arc::new(bus)).await
    }
}
