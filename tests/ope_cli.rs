//! `lusso ope` through the binary: the Open Bandit sample and a golden policy give obp's point estimates;
//! a bad policy file is refused with the reason.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

#[test]
fn ope_cli_gives_obps_estimates_and_rejects_a_bad_policy() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tools/obp/golden/bts_all__skewed_all.json")).unwrap(),
    )
    .unwrap();
    let log = root
        .join("../shared/data")
        .join(golden["log"].as_str().unwrap());
    let mut cmd = lusso(&[]);
    cmd.args(["ope", "--json", "--bootstrap", "200", "--log"])
        .arg(&log)
        .arg("--policy")
        .arg(root.join("tools/obp/policies/skewed_all.csv"));
    let out: Value = serde_json::from_slice(&run_ok(cmd).stdout).unwrap();
    for k in ["ipw", "snipw", "dm", "dr"] {
        let (got, want) = (
            out[k]["value"].as_f64().unwrap(),
            golden["estimates"][k].as_f64().unwrap(),
        );
        assert!((got - want).abs() < 1e-9, "{k}: {got} vs {want}");
        assert!(
            out[k]["interval"]["lower"].as_f64().unwrap()
                <= out[k]["interval"]["upper"].as_f64().unwrap()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("p.csv");
    std::fs::write(&bad, "action,position,prob\n0,0,0.5\n").unwrap();
    let mut cmd = lusso(&[]);
    cmd.args(["ope", "--log"])
        .arg(&log)
        .arg("--policy")
        .arg(&bad);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("position 0 sum to 0.5"), "{err}");
}
