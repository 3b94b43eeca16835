use super::*;
use std::io::Write;
use std::time::Instant;

const HEADER: &str =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";
const REAL_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/online_retail/online_retail.csv.gz"
);

fn import(body: &str) -> (Vec<Value>, ImportReport) {
    let csv = format!("{HEADER}{body}");
    read_online_retail_from(csv.as_bytes()).expect("import failed")
}

fn event<'a>(events: &'a [Value], order_id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["properties"]["order_id"] == order_id)
        .unwrap_or_else(|| panic!("no event for {order_id}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip write");
    enc.finish().expect("gzip finish")
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "lusso-online-retail-{}-{}-{name}",
        std::process::id(),
        Uuid::new_v4()
    ))
}

/// Every imported event passes the collector's own validator, with a deterministic (v5) id.
fn assert_valid_event(e: &Value) {
    let server_time = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    if let Err(errs) = pipelines::validate::validate_event(e, server_time) {
        panic!("{errs:?}: {e}");
    }
    let id = Uuid::parse_str(e["event_id"].as_str().expect("event_id string")).expect("uuid");
    assert_eq!(id.get_version_num(), 5);
}

const SAMPLE: &str = "\
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
536365,84406B,\"CREAM CUPID HEARTS, COAT HANGER\",8,2010-12-01 08:26:00,2.75,17850.0,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,,EIRE
C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-2,2010-12-01 09:49:00,4.65,15311.0,Channel Islands
";

#[test]
fn groups_invoices_and_computes_totals() {
    let (events, report) = import(SAMPLE);
    assert_eq!(events.len(), 4);
    events.iter().for_each(assert_valid_event);
    let order: Vec<&str> = events
        .iter()
        .map(|e| e["properties"]["order_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order, ["536365", "536366", "C536379", "C536383"]);

    let p = &events[0];
    assert_eq!(p["type"], "purchase");
    assert_eq!(p["ts"], "2010-12-01T08:26:00Z");
    assert_eq!(p["market"], "GB");
    assert_eq!(p["session_id"], "or-536365");
    // 6*2.55 + 6*3.39 + 8*2.75 = 15.30 + 20.34 + 22.00
    assert_eq!(p["properties"]["total"], json!(57.64));
    let lines = p["properties"]["lines"].as_array().expect("lines");
    let codes: Vec<&str> = lines
        .iter()
        .map(|l| l["product_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["85123A", "71053", "84406B"]);
    assert_eq!(
        lines[2],
        json!({"product_id": "84406B", "variant_id": "84406B", "quantity": 8, "unit_price": 2.75})
    );

    assert_eq!(report.rows_read, 6);
    assert_eq!(report.rows_used, 6);
    assert_eq!(report.rows_skipped, 0);
    assert_eq!(report.invoices, 4);
    assert_eq!(report.purchase_events, 2);
    assert_eq!(report.return_events, 2);
    assert_eq!(report.distinct_customers, 3);
    assert_eq!(report.distinct_customers_in_events, 3);
    assert_eq!(report.events_without_market, 1);
    assert!(report.unmapped_countries.is_empty());
}

#[test]
fn cancellations_become_returns_with_absolute_quantities() {
    let (events, _) = import(SAMPLE);
    let r = event(&events, "C536383");
    assert_eq!(r["type"], "return");
    assert_eq!(r["session_id"], "or-C536383");
    assert_eq!(r["market"], Value::Null); // Channel Islands
    assert_eq!(r["user_id"], "15311");
    assert_eq!(r["properties"]["lines"][0]["quantity"], 2);
    assert_eq!(r["properties"]["total"], json!(9.3));
    let d = event(&events, "C536379");
    assert_eq!(d["properties"]["total"], json!(27.5));
    assert_eq!(d["properties"]["lines"][0]["unit_price"], json!(27.5));
}

#[test]
fn customer_ids_and_guests() {
    let (events, _) = import(SAMPLE);
    let known = event(&events, "536365");
    assert_eq!(known["user_id"], "17850");
    assert_eq!(known["anonymous_id"], "or-17850");
    let guest = event(&events, "536366");
    assert_eq!(guest["user_id"], Value::Null);
    assert_eq!(guest["anonymous_id"], "or-guest-536366");
    assert_eq!(guest["market"], "IE");
    assert_eq!(guest["properties"]["total"], json!(11.1));

    assert_eq!(parse_customer_id("17850.0"), Ok(Some(17850)));
    assert_eq!(parse_customer_id(" 12346 "), Ok(Some(12346)));
    assert_eq!(parse_customer_id("012346.00"), Ok(Some(12346)));
    assert_eq!(parse_customer_id(""), Ok(None));
    assert_eq!(parse_customer_id("17850.5"), Err(()));
    assert_eq!(parse_customer_id("abc"), Err(()));
    assert_eq!(parse_customer_id("-1.0"), Err(()));
}

#[test]
fn skipped_rows_are_counted_by_reason() {
    let body = "\
540001,A1,ok,2,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
540001,A2,zero qty,0,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
540001,A3,negative qty,-3,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
540001,,empty code,1,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
540001,A4,bad qty,two,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
540001,A5,bad qty float,1.5,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
540001,A6,bad price,1,2011-01-01 10:00:00,\"1,00\",12346.0,United Kingdom
540001,A7,bad price,1,2011-01-01 10:00:00,NaN,12346.0,United Kingdom
540001,A8,bad date,1,01/01/2011 10:00,1.00,12346.0,United Kingdom
540001,A9,bad customer,1,2011-01-01 10:00:00,1.00,12346.5,United Kingdom
540001,A10,negative price,1,2011-01-01 10:00:00,-1.00,12346.0,United Kingdom
540001,short row
,A11,no invoice,1,2011-01-01 10:00:00,1.00,12346.0,United Kingdom
C540002,A1,positive in cancellation,1,2011-01-01 11:00:00,1.00,12346.0,United Kingdom
C540002,A1,zero in cancellation,0,2011-01-01 11:00:00,1.00,12346.0,United Kingdom
A540003,B,Adjust bad debt,1,2011-01-01 12:00:00,11062.06,,United Kingdom
A540004,B,Adjust bad debt,1,2011-01-01 12:00:00,-11062.06,,United Kingdom
540005,A1,all skipped,-1,2011-01-01 13:00:00,1.00,,United Kingdom
";
    let (events, report) = import(body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["properties"]["order_id"], "540001");
    assert_eq!(events[0]["properties"]["total"], json!(2.0));
    assert_eq!(report.rows_read, 18);
    assert_eq!(report.rows_used, 1);
    assert_eq!(report.rows_skipped, 17);
    let expected = [
        (SkipReason::WrongFieldCount, 1),
        (SkipReason::EmptyInvoiceNo, 1),
        (SkipReason::EmptyStockCode, 1),
        (SkipReason::UnparseableQuantity, 2),
        (SkipReason::UnparseableUnitPrice, 2),
        (SkipReason::UnparseableInvoiceDate, 1),
        (SkipReason::UnparseableCustomerId, 1),
        (SkipReason::NegativeUnitPrice, 2),
        (SkipReason::AdjustmentInvoice, 1),
        (SkipReason::NonPositiveQuantityInPurchase, 3),
        (SkipReason::NonNegativeQuantityInCancellation, 2),
    ];
    for (reason, count) in expected {
        assert_eq!(report.skipped_for(reason), count, "{reason}");
    }
    assert_eq!(report.skipped.len(), SkipReason::ALL.len());
    assert_eq!(report.skipped.values().sum::<u64>(), report.rows_skipped);
    // 540001, C540002, A540003, A540004, 540005. The short row is rejected
    // before its InvoiceNo is looked at, so it registers no invoice.
    assert_eq!(report.invoices, 5);
    assert_eq!(report.invoices_without_lines, 4);
    assert_eq!(report.purchase_events, 1);
    assert_eq!(report.return_events, 0);
    // 12346 (the "12346.5" row is not a customer id); the short row has none.
    assert_eq!(report.distinct_customers, 1);

    let json = serde_json::to_value(&report).expect("serialize report");
    assert_eq!(json["skipped"]["non_positive_quantity_in_purchase"], 3);
    let text = report.to_string();
    assert!(text.contains("18 rows read, 1 used, 17 skipped"), "{text}");
    assert!(text.contains("skipped adjustment_invoice: 1"), "{text}");
}

#[test]
fn totals_are_exact_decimal_and_round_half_up() {
    // 1.005 and 0.125 are not exact in binary; f64 sums would round down.
    let body = "\
550001,X,a,1,2011-02-01 10:00:00,1.005,,Germany
550002,X,a,1,2011-02-01 10:00:00,0.125,,Germany
550003,X,a,3,2011-02-01 10:00:00,0.165,,Germany
550004,X,a,10,2011-02-01 10:00:00,0.1,,Germany
550004,Y,a,20,2011-02-01 10:00:00,0.2,,Germany
550005,X,a,5,2011-02-01 10:00:00,0,,Germany
";
    let (events, _) = import(body);
    let total = |id: &str| event(&events, id)["properties"]["total"].clone();
    assert_eq!(total("550001"), json!(1.01));
    assert_eq!(total("550002"), json!(0.13));
    assert_eq!(total("550003"), json!(0.5));
    assert_eq!(total("550004"), json!(5.0));
    assert_eq!(total("550005"), json!(0.0));
    assert_eq!(event(&events, "550001")["market"], "DE");
    events.iter().for_each(assert_valid_event);
}

#[test]
fn groups_non_contiguous_rows_in_first_seen_order() {
    let body = "\
560002,B1,b,1,2011-03-01 10:05:00,2.00,13000.0,France
560001,A1,a,1,2011-03-01 10:00:00,1.00,12000.0,France
560002,B2,b,2,2011-03-01 10:06:00,3.00,13000.0,France
";
    let (events, report) = import(body);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["properties"]["order_id"], "560002");
    assert_eq!(events[1]["properties"]["order_id"], "560001");
    assert_eq!(
        events[0]["properties"]["lines"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(events[0]["properties"]["total"], json!(8.0));
    // First row's timestamp wins; the difference is reported.
    assert_eq!(events[0]["ts"], "2011-03-01T10:05:00Z");
    assert_eq!(report.non_contiguous_invoices, 1);
    assert_eq!(report.invoices_with_multiple_timestamps, 1);
    assert_eq!(report.invoices_with_conflicting_customer, 0);
}

#[test]
fn event_ids_are_deterministic_v5() {
    let (a, _) = import(SAMPLE);
    let (b, _) = import(SAMPLE);
    assert_eq!(a, b);
    let expected = Uuid::new_v5(&EVENT_ID_NAMESPACE, b"uci-online-retail:536365");
    assert_eq!(a[0]["event_id"], expected.to_string());
    assert_eq!(event_id_for_invoice("536365"), expected);
    assert_ne!(
        event_id_for_invoice("536379"),
        event_id_for_invoice("C536379")
    );
    // Pinned value: changing the namespace or name format breaks idempotency.
    assert_eq!(
        EVENT_ID_NAMESPACE.to_string(),
        "41b5c960-739c-4aa8-9622-7ee6523b4dd2"
    );
}

#[test]
fn reads_plain_and_gzip_files_and_readers() {
    let csv = format!("{HEADER}{SAMPLE}");
    let (expected, expected_report) = import(SAMPLE);

    // Names deliberately misleading: detection is by magic bytes.
    let plain = temp_path("plain.csv.gz");
    let gz = temp_path("packed.csv");
    std::fs::write(&plain, csv.as_bytes()).expect("write plain");
    std::fs::write(&gz, gzip(csv.as_bytes())).expect("write gz");
    let from_plain = read_online_retail(&plain);
    let from_gz = read_online_retail(&gz);
    let _ = std::fs::remove_file(&plain);
    let _ = std::fs::remove_file(&gz);
    let (events, report) = from_plain.expect("plain import");
    assert_eq!(events, expected);
    assert_eq!(report, expected_report);
    let (events, report) = from_gz.expect("gz import");
    assert_eq!(events, expected);
    assert_eq!(report, expected_report);

    let (events, _) = read_online_retail_from(gzip(csv.as_bytes()).as_slice()).expect("gz reader");
    assert_eq!(events, expected);
}

#[test]
fn header_errors_name_the_missing_column() {
    let csv = "InvoiceNo,StockCode,Description,Qty,InvoiceDate,UnitPrice,CustomerID,Country\n";
    match read_online_retail_from(csv.as_bytes()) {
        Err(ImportError::Header { expected, found }) => {
            assert_eq!(expected, "Quantity");
            assert!(found.contains("Qty"));
        }
        other => panic!("expected header error, got {other:?}"),
    }
    let err = read_online_retail_from(&b""[..]).expect_err("empty input");
    assert!(
        matches!(&err, ImportError::Header { expected, .. } if expected == "InvoiceNo"),
        "{err}"
    );
    // Reordered columns and a BOM are fine.
    let csv = "\u{feff}Country,CustomerID,UnitPrice,InvoiceDate,Quantity,Description,StockCode,InvoiceNo\n\
               Japan,12753.0,1.25,2011-04-01 09:00:00,12,x,22086,570001\n";
    let (events, _) = read_online_retail_from(csv.as_bytes()).expect("reordered");
    assert_eq!(events[0]["market"], "JP");
    assert_eq!(events[0]["properties"]["total"], json!(15.0));
}

#[test]
fn io_and_csv_errors() {
    let missing = temp_path("does-not-exist.csv");
    match read_online_retail(&missing) {
        Err(ImportError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected io error, got {other:?}"),
    }
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes
        .extend_from_slice(b"536365,85123A,ok,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n");
    bytes.extend_from_slice(
        b"536365,85123A,bad \xff utf8,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n",
    );
    match read_online_retail_from(bytes.as_slice()) {
        Err(ImportError::Csv { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected csv error, got {other:?}"),
    }
    // Truncated gzip stream is an I/O error, not a silent short import.
    let gz = gzip(format!("{HEADER}{SAMPLE}").as_bytes());
    let err = read_online_retail_from(&gz[..gz.len() / 2]).expect_err("truncated gz");
    assert!(matches!(err, ImportError::Io { .. }), "{err}");
}

#[test]
fn country_map_is_complete_and_well_formed() {
    let names: HashSet<&str> = COUNTRY_MARKETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), 38);
    for (_, code) in COUNTRY_MARKETS {
        if let Some(code) = code {
            assert!(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()));
        }
    }
    assert_eq!(country_to_market("United Kingdom"), Some(Some("GB")));
    assert_eq!(country_to_market(" eire "), Some(Some("IE")));
    assert_eq!(country_to_market("RSA"), Some(Some("ZA")));
    assert_eq!(country_to_market("USA"), Some(Some("US")));
    assert_eq!(country_to_market("Channel Islands"), Some(None));
    assert_eq!(country_to_market("European Community"), Some(None));
    assert_eq!(country_to_market("Unspecified"), Some(None));
    assert_eq!(country_to_market("Atlantis"), None);

    let (events, report) = import("580001,X,a,1,2011-05-01 10:00:00,1.00,,Atlantis\n");
    assert_eq!(events[0]["market"], Value::Null);
    assert_eq!(report.unmapped_countries.get("Atlantis"), Some(&1));
    assert_eq!(report.events_without_market, 1);
}

/// Whole-dataset check against the README's published statistics and
/// against counts computed independently (Python csv module) on the file.
#[test]
fn real_file_matches_published_numbers() {
    let path = Path::new(REAL_FILE);
    if !path.exists() {
        eprintln!("SKIPPED real_file_matches_published_numbers: {REAL_FILE} not found");
        return;
    }
    let start = Instant::now();
    let (events, report) = read_online_retail(path).expect("real import");
    let elapsed = start.elapsed();
    eprintln!("{report}");
    eprintln!("import took {elapsed:.2?} ({} events)", events.len());

    // README.
    assert_eq!(report.rows_read, 541_909);
    assert_eq!(report.invoices, 25_900);
    assert_eq!(report.distinct_customers, 4_372);
    assert!(report.unmapped_countries.is_empty());

    // Every event is valid, unique, and accounts for exactly the used rows.
    let mut ids = HashSet::new();
    let mut orders = HashSet::new();
    let mut lines = 0u64;
    for e in &events {
        assert_valid_event(e);
        assert!(ids.insert(e["event_id"].as_str().unwrap_or("").to_string()));
        assert!(orders.insert(
            e["properties"]["order_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        ));
        lines += e["properties"]["lines"]
            .as_array()
            .map_or(0, |l| l.len() as u64);
    }
    assert_eq!(lines, report.rows_used);
    assert_eq!(
        report.purchase_events + report.return_events,
        orders.len() as u64
    );
    assert_eq!(
        report.purchase_events + report.return_events,
        report.invoices - report.invoices_without_lines
    );
    assert_eq!(report.rows_used + report.rows_skipped, report.rows_read);

    // Independently computed on the file (Python csv, same rules).
    assert_eq!(report.rows_used, 540_570);
    assert_eq!(report.purchase_events, 20_725);
    assert_eq!(report.return_events, 3_836);
    assert_eq!(
        report.skipped_for(SkipReason::NonPositiveQuantityInPurchase),
        1_336
    );
    assert_eq!(report.skipped_for(SkipReason::NegativeUnitPrice), 2);
    assert_eq!(report.skipped_for(SkipReason::AdjustmentInvoice), 1);
    assert_eq!(report.rows_skipped, 1_339);
    assert_eq!(report.non_contiguous_invoices, 1);

    let first = &events[0];
    assert_eq!(first["ts"], "2010-12-01T08:26:00Z");
    assert_eq!(first["user_id"], "17850");
    assert_eq!(first["market"], "GB");
}
