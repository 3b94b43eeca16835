//! The `lusso` binary end to end, as separate processes: the embedded demo (README's first command) and
//! the production roles against the real broker and ClickHouse.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn demo_serves_and_simulated_events_are_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let envs = vec![
        ("LUSSO_DATA_DIR", dir.path().display().to_string()),
        ("LUSSO_HTTP_ADDR", addr.clone()),
    ];
    let mut cmd = lusso(&envs);
    cmd.args(["demo", "--rate", "2000", "--users", "2000"]);
    let _demo = Proc::spawn(cmd);
    wait_until(Duration::from_secs(60), "demo /healthz", || {
        http_get(&addr, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(http_get(&addr, "/readyz").unwrap().0, 200);
    let (_, admin) = demo_keys(dir.path());
    let auth = bearer(&admin);
    // One error contract at the edge: code, message, field, and the caller's request id in body and header.
    let (status, head, body) = http_exchange(
        &addr,
        "GET",
        "/v1/recommendations?user_id=U0000001&n=0",
        None,
        &[("x-request-id", "cli-test-1"), ("authorization", &auth)],
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-request-id: cli-test-1"),
        "{head}"
    );
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&e["error"]["code"], &e["error"]["field"], &e["request_id"]),
        (&"bad_input".into(), &"n".into(), &"cli-test-1".into()),
        "{e}"
    );
    let (status, head, body) = http_exchange(&addr, "GET", "/v1/nowhere", None, &[]).unwrap();
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &e["error"]["code"]), (404, &"not_found".into()));
    assert!(
        head.to_ascii_lowercase().contains("x-request-id: "),
        "{head}"
    );
    wait_until(
        Duration::from_secs(90),
        "simulated events in the event log",
        || query_count(&envs, "SELECT count(*) FROM events").is_some_and(|n| n >= 500),
    );
    let per_type = run_ok({
        let mut c = lusso(&envs);
        c.args([
            "query",
            "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC",
        ]);
        c
    });
    let table = String::from_utf8(per_type.stdout).unwrap();
    assert!(
        table.contains("page_view") && table.contains("product_view"),
        "{table}"
    );
    let quarantine = run_ok({
        let mut c = lusso(&envs);
        c.args(["quarantine", "list", "--url", &format!("http://{addr}")]);
        c
    });
    assert!(String::from_utf8_lossy(&quarantine.stdout).contains("0 bad rows"));
    let (status, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("lusso_events_accepted_total"));
    // The demo's feature consumers keep up with the simulator: a viewed product has features, and a shopper has
    // a segment, through the HTTP API.
    let applied = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("lusso_features_events_applied_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait_until(Duration::from_secs(60), "features applied", || {
        http_get(&addr, "/metrics").is_some_and(|(_, m)| applied(&m) >= 500.0)
    });
    let row = run_ok({
        let mut c = lusso(&envs);
        c.args([
            "query",
            "SELECT user_id, anonymous_id, product_id FROM events WHERE type = 'product_view' LIMIT 1",
            "--json",
        ]);
        c
    });
    let row: serde_json::Value = serde_json::from_slice(&row.stdout).unwrap();
    let cells = &row["rows"][0];
    let product = cells[2].as_str().unwrap();
    let shopper = cells[0].as_str().or(cells[1].as_str()).unwrap();
    // The sink and the feature consumers read the same topic independently: wait for both to have this event.
    wait_until(
        Duration::from_secs(30),
        "features of a logged product view",
        || {
            http_call(
                &addr,
                "GET",
                &format!("/v1/products/{product}/features"),
                None,
                &[("authorization", &auth)],
            )
            .is_some_and(|(status, body)| {
                let f: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                status == 200 && f["totals"]["views"].as_u64().unwrap_or(0) >= 1
            })
        },
    );
    let (status, body) = http_call(
        &addr,
        "GET",
        &format!("/v1/users/{shopper}/segment"),
        None,
        &[("authorization", &auth)],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"known\":true"), "{body}");
}

#[test]
fn embedded_import_goes_through_the_bus_into_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![("LUSSO_DATA_DIR", dir.path().display().to_string())];
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/online_retail/online_retail.csv.gz"
    );
    for _ in 0..2 {
        let mut import = lusso(&envs);
        import.args(["import", "online-retail", data]);
        run_ok(import);
    }
    let count = |sql: &str| query_count(&envs, sql);
    assert_eq!(
        count("SELECT count(*) FROM events WHERE type = 'purchase'"),
        Some(20_725)
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE type = 'return'"),
        Some(3_836)
    );
    assert_eq!(
        count("SELECT count(DISTINCT user_id) FROM events"),
        Some(4_372)
    );
}

#[test]
fn query_reports_bad_sql_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![("LUSSO_DATA_DIR", dir.path().display().to_string())];
    let mut cmd = lusso(&envs);
    cmd.args(["query", "SELEC nonsense"]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad input") && err.contains("query failed"),
        "{err}"
    );
}

#[test]
fn production_roles_simulate_import_and_query() {
    let table = fresh("events_cli_");
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![
        ("LUSSO_DATA_DIR", dir.path().display().to_string()),
        ("LUSSO_KAFKA_BROKERS", require_env("LUSSO_KAFKA_BROKERS")),
        ("LUSSO_CLICKHOUSE_URL", require_env("LUSSO_CLICKHOUSE_URL")),
        ("LUSSO_CLICKHOUSE_DATABASE", "lusso_test".to_string()),
        ("LUSSO_CLICKHOUSE_TABLE", table.clone()),
        ("LUSSO_TOPIC_PREFIX", fresh("cli.")),
        ("LUSSO_HTTP_ADDR", addr.clone()),
    ];
    let key = admin_key(&envs);
    let mut collector = lusso(&envs);
    collector.args(["serve", "--role", "collector"]);
    let _collector = Proc::spawn(collector);
    let sink_addr = format!("127.0.0.1:{}", free_port());
    let mut sink = lusso(&envs);
    sink.args(["serve", "--role", "sink", "--addr", &sink_addr]);
    let _sink = Proc::spawn(sink);
    wait_until(Duration::from_secs(60), "collector /readyz", || {
        http_get(&addr, "/readyz").is_some_and(|(s, _)| s == 200)
    });

    // 2,000 shoppers make ~10,000 events in the 48 h of replayed history: 1,000 never wait on the clock.
    let mut sim = lusso(&envs);
    sim.args([
        "simulate",
        "--users",
        "2000",
        "--rate",
        "5000",
        "--max-events",
        "1000",
    ]);
    sim.args(["--url", &format!("http://{addr}"), "--key", &key]);
    run_ok(sim);
    let final_count = format!("SELECT count() FROM {table} FINAL");
    wait_until(
        Duration::from_secs(90),
        "1,000 simulated events in ClickHouse",
        || query_count(&envs, &final_count) == Some(1000),
    );

    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/online_retail/online_retail.csv.gz"
    );
    let mut import = lusso(&envs);
    import.args(["import", "online-retail", data]);
    run_ok(import);
    let purchases = format!("SELECT count() FROM {table} FINAL WHERE type = 'purchase'");
    wait_until(
        Duration::from_secs(180),
        "imported purchases in ClickHouse",
        || query_count(&envs, &purchases).is_some_and(|n| n >= 20_725),
    );
    let returns =
        format!("SELECT count() FROM {table} FINAL WHERE type = 'return' AND currency = 'GBP'");
    wait_until(Duration::from_secs(60), "imported returns", || {
        query_count(&envs, &returns) == Some(3_836)
    });
    // Importing again is harmless: same event ids. Wait until the sink has written the second copy.
    let mut again = lusso(&envs);
    again.args(["import", "online-retail", data]);
    run_ok(again);
    let imported = 20_725 + 3_836;
    wait_until(
        Duration::from_secs(180),
        "the sink to write the re-import",
        || sink_rows(&sink_addr) >= 1000 + 2 * imported,
    );
    let from_import = format!(
        "SELECT count() FROM {table} FINAL WHERE visitParamExtractString(properties, 'source') = 'uci-online-retail'"
    );
    assert_eq!(query_count(&envs, &from_import), Some(imported));
}

fn sink_rows(addr: &str) -> i64 {
    http_get(addr, "/metrics")
        .and_then(|(_, body)| {
            body.lines()
                .find_map(|l| l.strip_prefix("lusso_sink_rows_total "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
