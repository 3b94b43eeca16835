//! Running a38 (`a38tool validate`, an independent FatturaPA library from PyPI, pinned in
//! `scripts/python_env.sh`) on the invoices the tests emit.
//!
//! One a38 rule is outdated: it reports 00426 for `CodiceDestinatario` `0000000` without `PECDestinatario`.
//! SDI dropped that requirement with specification 1.3 (2018): `0000000` alone is how invoices to consumers,
//! and to businesses whose channel is unknown, are addressed (they land in the buyer's cassetto fiscale).
//! For such documents, and only for them, that exact a38 error is tolerated; any other error fails.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// a38's message for the outdated 00426 rule (see the module doc).
const A38_OUTDATED_00426: &str =
    "[00426] pec_destinatario has no value while codice_destinatario has value 0000000";

/// The a38 CLI: `$LUSSO_A38TOOL`, else the project venv's; panics (never skips) when missing.
pub fn a38tool() -> PathBuf {
    let path = std::env::var_os("LUSSO_A38TOOL")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/share/lusso/pyenv/bin/a38tool"))
        });
    match path {
        Some(p) if p.is_file() => p,
        other => panic!(
            "a38tool not found (looked at {other:?}): run `bash scripts/python_env.sh` to install a38 0.1.8 \
             into the project's Python venv, or point LUSSO_A38TOOL at an a38tool"
        ),
    }
}

/// Asserts that a38 accepts `xml` (written at `path`), up to the outdated rule above.
pub fn a38_validate(tool: &Path, name: &str, xml: &str, path: &Path) {
    let out = Command::new(tool)
        .arg("validate")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    if out.status.success() {
        return;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let only_outdated_rule = xml.contains("<CodiceDestinatario>0000000</CodiceDestinatario>")
        && !xml.contains("<PECDestinatario>")
        && stdout.trim().is_empty()
        && stderr.lines().filter(|l| !l.trim().is_empty()).count() > 0
        && stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.contains(A38_OUTDATED_00426));
    assert!(
        only_outdated_rule,
        "a38tool validate {} failed for {name} ({}):\n{stdout}{stderr}\n--- document ---\n{xml}",
        path.display(),
        out.status
    );
}
