#!/usr/bin/env bash
# Make sure the headless browser the dashboard's end-to-end test drives is installed:
# Debian's `chromium` (/usr/bin/chromium) and `chromium-driver` (/usr/bin/chromedriver).
#
#   bash scripts/browser.sh
#
# Idempotent and quick when both are present (nothing is installed then); otherwise
# `apt-get install -y`, with an `apt-get update` first only if the install fails.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

log() { printf '[browser] %s\n' "$*"; }
die() {
    printf '[browser] ERROR: %s\n' "$*" >&2
    exit 1
}

if [[ ! -x $CHROMIUM || ! -x $CHROMEDRIVER ]]; then
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install chromium and chromium-driver"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "installing chromium and chromium-driver"
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends chromium chromium-driver; then
        log "install failed; refreshing the package lists and retrying"
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends chromium chromium-driver
    fi
fi

[[ -x $CHROMIUM ]] || die "$CHROMIUM is still missing"
[[ -x $CHROMEDRIVER ]] || die "$CHROMEDRIVER is still missing"
# Debian's wrapper script may print shell noise on stderr; keep only the version line.
log "$("$CHROMIUM" --version 2>/dev/null | head -n 1)"
log "$("$CHROMEDRIVER" --version 2>/dev/null | head -n 1)"
