#!/usr/bin/env bash
# The project's test command: start the real backends, then run the whole
# workspace test suite against them. Extra args go to `cargo test`, e.g.
#   scripts/test.sh -p pipelines
#   scripts/test.sh -- --nocapture      (after the built-in `--`, see below)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/services.sh" up
bash "$ROOT/scripts/browser.sh"

STATE_DIR="${LUSSO_SERVICES_DIR:-$HOME/.local/share/lusso/services}"
# LUSSO_KAFKA_BROKERS, LUSSO_CLICKHOUSE_URL, LUSSO_REDIS_URL,
# LUSSO_DATABASE_URL, LUSSO_TANSU_BIN
# shellcheck source=/dev/null
source "$STATE_DIR/env.sh"
export RUST_BACKTRACE=1
# CARGO_TARGET_DIR: used if the caller set it, otherwise cargo's default.

# Split the caller's args: those before a `--` go to cargo, those after it to
# the test binaries (appended after the default test-binary args).
cargo_args=()
test_args=()
seen_sep=0
for a in "$@"; do
    if ((seen_sep == 0)) && [[ $a == "--" ]]; then
        seen_sep=1
    elif ((seen_sep)); then
        test_args+=("$a")
    else
        cargo_args+=("$a")
    fi
done

set +e
cargo test --workspace --all-targets -j2 "${cargo_args[@]}" -- --test-threads=4 "${test_args[@]}"
status=$?
# The data scientists' notebooks, executed headless against the CLI (skipped
# when the caller narrowed the run with cargo args, e.g. `-p pipelines`).
nb_status=0
if ((${#cargo_args[@]} == 0)); then
    bash "$ROOT/scripts/notebooks.sh"
    nb_status=$?
fi
set -e
exit $((status || nb_status))
