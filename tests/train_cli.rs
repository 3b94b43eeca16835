//! `lusso train`, `lusso models …` and `/v1/models` end to end through the binary: train on the built-in
//! simulator with no data flags, list, promote, rollback from the CLI, then the same registry over HTTP from
//! `lusso serve`, and bad input answered with the field and the reason.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn json_out(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn train_list_promote_rollback_through_the_cli_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![("LUSSO_DATA_DIR", dir.path().display().to_string())];
    let train = |extra: &[&str]| {
        let mut cmd = lusso(&envs);
        cmd.args(["train", "--json", "--source", "sim:300", "--factors", "8"]);
        cmd.args(extra);
        json_out(run_ok(cmd))
    };
    let v1 = train(&["--iterations", "3"]);
    let v2 = train(&["--algo", "bpr", "--iterations", "5"]);
    let (v1, v2) = (
        v1["version"].as_str().unwrap().to_string(),
        v2["version"].as_str().unwrap().to_string(),
    );
    assert_ne!(v1, v2);

    // The text listing marks nothing promoted; the JSON one has both with their metrics.
    let mut cmd = lusso(&envs);
    cmd.args(["models", "list", "--json"]);
    let list = json_out(run_ok(cmd));
    assert_eq!(list["promoted"], Value::Null);
    let models = list["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert!(models
        .iter()
        .all(|m| m["metrics"]["ndcg_at_k"].is_number()
            && m["history"].as_array().unwrap().len() >= 3));

    for v in [&v1, &v2] {
        let mut cmd = lusso(&envs);
        cmd.args(["models", "promote", v]);
        run_ok(cmd);
    }
    let mut cmd = lusso(&envs);
    cmd.args(["models", "rollback"]);
    let out = run_ok(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&v1));
    let mut cmd = lusso(&envs);
    cmd.args(["models", "list"]);
    let text = String::from_utf8(run_ok(cmd).stdout).unwrap();
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(marked[0].contains(&v1), "{text}");

    // Nothing left to roll back to: exit code 1 and a reason.
    let mut cmd = lusso(&envs);
    cmd.args(["models", "rollback"]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to roll back to"));

    // Bad flags name the field.
    let mut cmd = lusso(&envs);
    cmd.args(["train", "--source", "sim:300", "--split", "time:zero"]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("split"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same registry over HTTP, with a key.
    let key = admin_key(&envs);
    let auth = bearer(&key);
    let auth = [("authorization", auth.as_str())];
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = lusso(&envs);
    cmd.args(["serve", "--role", "all", "--embedded", "--addr", &addr]);
    let _server = Proc::spawn(cmd);
    wait_until(Duration::from_secs(60), "the server", || {
        http_get(&addr, "/healthz").is_some()
    });
    let (s, _) = http_get(&addr, "/v1/models").unwrap();
    assert_eq!(s, 401, "the registry is not open to anyone");
    let (s, body) = http_call(&addr, "GET", "/v1/models", None, &auth).unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, body["promoted"].as_str()), (200, Some(v1.as_str())));
    let (s, body) = http_call(
        &addr,
        "POST",
        &format!("/v1/models/{v2}/promote"),
        None,
        &auth,
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, body) = http_call(&addr, "POST", "/v1/models/rollback", None, &auth).unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, body["promoted"].as_str()), (200, Some(v1.as_str())));
    let (s, _) = http_call(&addr, "POST", "/v1/models/nope/promote", None, &auth).unwrap();
    assert_eq!(s, 404);
    // The CLI sees what HTTP did.
    let mut cmd = lusso(&envs);
    cmd.args(["models", "list", "--json"]);
    assert_eq!(json_out(run_ok(cmd))["promoted"], v1.as_str());
}

#[test]
fn train_with_no_flags_uses_the_demo_data_and_exports_it() {
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![("LUSSO_DATA_DIR", dir.path().display().to_string())];
    // An empty event log: `auto` falls back to the built-in simulator.
    let out = run_ok({
        let mut cmd = lusso(&envs);
        cmd.args(["train"]);
        cmd
    });
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("registered version"), "{text}");
    assert!(text.contains("ndcg"), "{text}");
    let csv = dir.path().join("interactions.csv");
    run_ok({
        let mut cmd = lusso(&envs);
        cmd.args(["train", "data", "--source", "sim:200", "--out"])
            .arg(&csv);
        cmd
    });
    let body = std::fs::read_to_string(&csv).unwrap();
    assert!(body.starts_with("user,item,weight\n"));
    assert!(body.lines().count() > 500, "{} rows", body.lines().count());
}
