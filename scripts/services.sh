#!/usr/bin/env bash
# Start / stop / inspect the real backends Lusso's test suite talks to.
#
#   scripts/services.sh up       install what is missing, start everything, print the env
#   scripts/services.sh down     stop tansu, ClickHouse and localstripe started by this script
#   scripts/services.sh status   one line per service
#
# Every service listens on 127.0.0.1:
#   tansu (Kafka protocol) :9092       ClickHouse http :8123, native :9000
#   Redis                  :6379       PostgreSQL      :5432
#   localstripe (fake Stripe API, from the project's Python venv) :8420
#
# State (pid files, logs, ClickHouse data, tansu data, env.sh) lives in
# ${LUSSO_SERVICES_DIR:-$HOME/.local/share/lusso/services}.
# `up` is idempotent: services already running are left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${LUSSO_SERVICES_DIR:-$HOME/.local/share/lusso/services}"
LOG_DIR="$STATE_DIR/log"
RUN_DIR="$STATE_DIR/run"
CH_DIR="$STATE_DIR/clickhouse"
TANSU_DIR="$STATE_DIR/tansu"
ENV_FILE="$STATE_DIR/env.sh"

HOST=127.0.0.1
KAFKA_PORT=9092
CH_HTTP_PORT=8123
CH_TCP_PORT=9000
REDIS_PORT=6379
PG_PORT=5432
LOCALSTRIPE_PORT=8420
PY_VENV="" # set by ensure_venv

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql
READY_TIMEOUT="${LUSSO_SERVICES_READY_TIMEOUT:-60}"

CH_CONFIG=/etc/clickhouse-server/config.xml

log() { printf '[services] %s\n' "$*"; }
now_ms() { date +%s%3N; }
# elapsed T0_MS -> "1.234s"
elapsed() {
    local ms=$(($(now_ms) - $1))
    printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

# port_open PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT
port_open() {
    timeout 2 bash -c "</dev/tcp/$HOST/$1" >/dev/null 2>&1
}

# pid_alive NAME -> prints the pid and returns 0 when RUN_DIR/NAME.pid names a live
# process whose command line still mentions NAME (guards against pid reuse).
pid_alive() {
    local f="$RUN_DIR/$1.pid" pid
    [[ -f $f ]] || return 1
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1" || return 1
    echo "$pid"
}

show_log_tail() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        printf '[services] ---- last 30 lines of %s ----\n' "$f" >&2
        tail -n 30 "$f" >&2
        printf '[services] ----\n' >&2
    done
}

# wait_ready NAME PIDNAME CHECK-FUNCTION LOGFILE...
# Polls CHECK-FUNCTION for up to READY_TIMEOUT seconds; fails fast if the
# process dies. On failure prints the log tail(s) and exits non-zero.
wait_ready() {
    local name=$1 pidname=$2 check=$3
    shift 3
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if "$check"; then
            return 0
        fi
        if [[ -n $pidname ]] && ! pid_alive "$pidname" >/dev/null; then
            warn "$name exited before becoming ready"
            show_log_tail "$@"
            exit 1
        fi
        sleep 0.2
    done
    warn "$name not ready after ${READY_TIMEOUT}s"
    show_log_tail "$@"
    exit 1
}

# ---------------------------------------------------------------- installs

# Wait (bounded) for another apt-get/dpkg run to finish instead of racing it.
wait_for_apt() {
    local waited=0
    while pgrep -x apt-get >/dev/null || pgrep -x apt >/dev/null || pgrep -x dpkg >/dev/null; do
        ((waited % 30 == 0)) && log "another apt-get/dpkg is running; waiting for it..."
        sleep 2
        waited=$((waited + 2))
        ((waited < 1800)) || die "apt-get/dpkg still busy after 30 minutes"
    done
}

APT_UPDATED=0
apt_install() {
    ((${#@})) || return 0
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install $*"
    wait_for_apt
    export DEBIAN_FRONTEND=noninteractive
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@"
}

# ensure_cmd COMMAND PACKAGE... : install PACKAGEs when COMMAND is not found.
ensure_cmd() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    # An install started by someone else may be about to provide it.
    if pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; then
        wait_for_apt
        command -v "$cmd" >/dev/null 2>&1 && return 0
    fi
    apt_install "$@"
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $*"
}

find_tansu() {
    local c
    for c in "$(command -v tansu 2>/dev/null || true)" \
        "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" "$HOME/.cargo/bin/tansu"; do
        if [[ -n $c && -x $c ]]; then
            readlink -f "$c"
            return 0
        fi
    done
    return 1
}

ensure_tansu() {
    if TANSU_BIN="$(find_tansu)"; then return 0; fi
    # Do not race an install that is already running (e.g. started by hand).
    if pgrep -f "cargo install tansu" >/dev/null; then
        log "another 'cargo install tansu' is running; waiting for it (up to 40 min)..."
        local waited=0
        while pgrep -f "cargo install tansu" >/dev/null; do
            sleep 10
            waited=$((waited + 10))
            ((waited % 120 == 0)) && log "  still waiting for 'cargo install tansu' (${waited}s)"
            ((waited < 2400)) || die "'cargo install tansu' still running after 40 minutes"
        done
        if TANSU_BIN="$(find_tansu)"; then return 0; fi
        log "the other install did not produce a tansu binary; installing it ourselves"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; cannot install tansu"
    mkdir -p "$LOG_DIR"
    local ilog="$LOG_DIR/tansu-install.log"
    log "installing tansu $TANSU_VERSION with cargo (features $TANSU_FEATURES)"
    log "  this takes 8-20 minutes on 2 cores (18 min seen here); log: $ilog"
    local t0=$SECONDS
    if ! cargo install tansu --version "$TANSU_VERSION" --locked \
        --features "$TANSU_FEATURES" >"$ilog" 2>&1; then
        show_log_tail "$ilog"
        die "cargo install tansu failed"
    fi
    log "  tansu installed in $((SECONDS - t0))s"
    TANSU_BIN="$(find_tansu)" || die "tansu installed but not found on PATH or in ~/.cargo/bin"
}

# ---------------------------------------------------------------- tansu

# Storage engine: SQLite (libsql feature) in our state dir. Checked with tansu
# 0.6.0: topics, messages and committed group offsets survive both a SIGTERM
# and a SIGKILL restart. The URL needs four slashes (sqlite:////abs/path):
# tansu treats the URL path minus its first "/" as relative to its cwd, so
# "sqlite:///abs" would land in ./abs. LUSSO_TANSU_STORAGE overrides, e.g.
# memory://tansu/ for a throw-away broker (data lost on restart).
tansu_engine() {
    echo "${LUSSO_TANSU_STORAGE:-sqlite:///$TANSU_DIR/tansu.db}"
}

kafka_ready() { port_open "$KAFKA_PORT"; }

tansu_up() {
    ensure_tansu
    local engine pid
    engine="$(tansu_engine)"
    if pid="$(pid_alive tansu)"; then
        log "tansu already running (pid $pid, engine $(cat "$RUN_DIR/tansu.engine" 2>/dev/null || echo '?'))"
        wait_ready tansu tansu kafka_ready "$LOG_DIR/tansu.log"
        return 0
    fi
    if port_open "$KAFKA_PORT"; then
        warn "$HOST:$KAFKA_PORT is already taken by a process this script did not start; using it as the Kafka broker"
        return 0
    fi
    mkdir -p "$TANSU_DIR" "$LOG_DIR" "$RUN_DIR"
    log "starting tansu on $HOST:$KAFKA_PORT (storage engine: $engine)"
    local t0
    t0=$(now_ms)
    # setsid: own session, so ^C in the caller's terminal does not stop it;
    # all fds redirected, so it never holds a caller's pipe open.
    # (subshell + exec: $! is the broker's own pid)
    (
        cd "$TANSU_DIR"
        NO_COLOR=1 exec setsid "$TANSU_BIN" broker \
            --listener-url "tcp://$HOST:$KAFKA_PORT" \
            --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
            --storage-engine "$engine" \
            </dev/null >>"$LOG_DIR/tansu.log" 2>&1
    ) &
    echo $! >"$RUN_DIR/tansu.pid"
    echo "$engine" >"$RUN_DIR/tansu.engine"
    wait_ready tansu tansu kafka_ready "$LOG_DIR/tansu.log"
    log "tansu ready in $(elapsed "$t0") (pid $(cat "$RUN_DIR/tansu.pid"))"
}

# ---------------------------------------------------------------- ClickHouse

ch_ready() { [[ $(curl -s --max-time 2 "http://$HOST:$CH_HTTP_PORT/ping" 2>/dev/null) == "Ok." ]]; }

clickhouse_up() {
    ensure_cmd clickhouse-server clickhouse-server clickhouse-client
    local pid
    if pid="$(pid_alive clickhouse)"; then
        log "clickhouse already running (pid $pid)"
        wait_ready clickhouse clickhouse ch_ready "$LOG_DIR/clickhouse.err.log" "$LOG_DIR/clickhouse.stdout.log"
    elif port_open "$CH_HTTP_PORT"; then
        warn "$HOST:$CH_HTTP_PORT is already taken by a process this script did not start; using it as ClickHouse"
        ch_ready || die "something listens on $HOST:$CH_HTTP_PORT but does not answer /ping with Ok."
    else
        mkdir -p "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas" "$LOG_DIR" "$RUN_DIR"
        log "starting clickhouse on $HOST:$CH_HTTP_PORT (http) / $CH_TCP_PORT (native), data in $CH_DIR"
        local t0
        t0=$(now_ms)
        # Debian's ClickHouse 18.16 runs fine as root. Everything it writes is
        # redirected into our dir via config overrides after `--`.
        (
            cd "$CH_DIR"
            exec setsid clickhouse-server --config-file="$CH_CONFIG" -- \
                --path="$CH_DIR/" \
                --tmp_path="$CH_DIR/tmp/" \
                --user_files_path="$CH_DIR/user_files/" \
                --format_schema_path="$CH_DIR/format_schemas/" \
                --logger.log="$LOG_DIR/clickhouse.log" \
                --logger.errorlog="$LOG_DIR/clickhouse.err.log" \
                --logger.level=information \
                --logger.size=100M \
                --logger.count=2 \
                --listen_host="$HOST" \
                </dev/null >>"$LOG_DIR/clickhouse.stdout.log" 2>&1
        ) &
        echo $! >"$RUN_DIR/clickhouse.pid"
        wait_ready clickhouse clickhouse ch_ready "$LOG_DIR/clickhouse.err.log" "$LOG_DIR/clickhouse.log" "$LOG_DIR/clickhouse.stdout.log"
        log "clickhouse ready in $(elapsed "$t0") (pid $(cat "$RUN_DIR/clickhouse.pid"))"
    fi
    local v
    v="$(curl -sS --max-time 10 "http://$HOST:$CH_HTTP_PORT/" --data-binary 'SELECT version()' 2>&1)" ||
        die "clickhouse answers /ping but a query failed: $v"
    [[ $v =~ ^[0-9]+\. ]] || die "clickhouse: unexpected answer to SELECT version(): $v"
    log "clickhouse answers queries: version $v"
}

# ---------------------------------------------------------------- Redis / PostgreSQL

redis_ready() { port_open "$REDIS_PORT"; }
pg_ready() { port_open "$PG_PORT"; }

redis_up() {
    # The binary is needed even when a server already runs: tests start private instances (outage scenarios).
    ensure_cmd redis-server redis-server
    if redis_ready; then
        log "redis already listening on $HOST:$REDIS_PORT"
        return 0
    fi
    mkdir -p /var/lib/redis /var/log/redis
    log "starting redis on $HOST:$REDIS_PORT"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_ready redis "" redis_ready /var/log/redis/ci.log
    log "redis ready"
}

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

postgres_up() {
    if pg_ready; then
        log "postgres already listening on $HOST:$PG_PORT"
        return 0
    fi
    local fresh=0 ver
    if [[ -z $(pg_version) ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        apt_install postgresql
        fresh=1
    fi
    ver="$(pg_version)"
    [[ -n $ver ]] || die "no PostgreSQL cluster under /etc/postgresql"
    if ((fresh)); then
        # Tests connect as postgres over TCP without a password (as on the CI machine image).
        local hba="/etc/postgresql/$ver/main/pg_hba.conf"
        if [[ -f $hba ]] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
            sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        fi
    fi
    log "starting postgres $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
        pg_ctlcluster --skip-systemctl-redirect "$ver" main status
    wait_ready postgres "" pg_ready "/var/log/postgresql/postgresql-$ver-main.log"
    log "postgres ready"
}

# ---------------------------------------------------------------- localstripe

# localstripe (PyPI, pinned in scripts/python_env.sh) is the stateful fake Stripe API the Stripe provider's
# tests run against. It comes from the project's venv, which also holds a38 (a38tool validates FatturaPA).
# Its state is in memory (plus /tmp/localstripe.pickle, ignored at start: --from-scratch).
localstripe_ready() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HOST:$LOCALSTRIPE_PORT/js.stripe.com/v3/" 2>/dev/null) == 200 ]]
}

ensure_venv() {
    [[ -n ${PY_VENV:-} ]] && return 0
    local t0=$SECONDS
    PY_VENV="$(bash "$ROOT/scripts/python_env.sh" | tail -n 1)" || die "scripts/python_env.sh failed"
    [[ -x $PY_VENV/bin/localstripe ]] || die "localstripe missing from the venv $PY_VENV"
    ((SECONDS - t0 < 5)) || log "python venv ready in $((SECONDS - t0))s: $PY_VENV"
}

localstripe_up() {
    ensure_venv
    local pid
    if pid="$(pid_alive localstripe)"; then
        log "localstripe already running (pid $pid)"
        wait_ready localstripe localstripe localstripe_ready "$LOG_DIR/localstripe.log"
        return 0
    fi
    if port_open "$LOCALSTRIPE_PORT"; then
        localstripe_ready ||
            die "$HOST:$LOCALSTRIPE_PORT is taken by something that is not localstripe"
        warn "$HOST:$LOCALSTRIPE_PORT is already served by a localstripe this script did not start; using it"
        return 0
    fi
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    log "starting localstripe on $HOST:$LOCALSTRIPE_PORT"
    local t0
    t0=$(now_ms)
    (
        cd "$STATE_DIR"
        exec setsid "$PY_VENV/bin/python" "$PY_VENV/bin/localstripe" --port "$LOCALSTRIPE_PORT" --from-scratch \
            </dev/null >>"$LOG_DIR/localstripe.log" 2>&1
    ) &
    echo $! >"$RUN_DIR/localstripe.pid"
    wait_ready localstripe localstripe localstripe_ready "$LOG_DIR/localstripe.log"
    log "localstripe ready in $(elapsed "$t0") (pid $(cat "$RUN_DIR/localstripe.pid"))"
}

# ---------------------------------------------------------------- env

write_env() {
    mkdir -p "$STATE_DIR"
    local tmp="$ENV_FILE.tmp.$$"
    {
        echo "# written by scripts/services.sh up; source this file"
        echo "export LUSSO_KAFKA_BROKERS=$HOST:$KAFKA_PORT"
        echo "export LUSSO_CLICKHOUSE_URL=http://$HOST:$CH_HTTP_PORT"
        echo "export LUSSO_REDIS_URL=redis://$HOST:$REDIS_PORT"
        echo "export LUSSO_DATABASE_URL=postgres://postgres@$HOST:$PG_PORT/postgres"
        echo "export LUSSO_TANSU_BIN=$TANSU_BIN"
        echo "export LUSSO_STRIPE_URL=http://$HOST:$LOCALSTRIPE_PORT"
        echo "export LUSSO_A38TOOL=$PY_VENV/bin/a38tool"
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
}

print_env() {
    log "services up; use this environment (also in $ENV_FILE):"
    sed -n 's/^export //p' "$ENV_FILE"
}

# ---------------------------------------------------------------- down / status

stop_pid() {
    local name=$1 pid
    if ! pid="$(pid_alive "$name")"; then
        rm -f "$RUN_DIR/$name.pid"
        log "$name: not running (nothing started by this script)"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name did not stop after 30s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$RUN_DIR/$name.pid"
}

status_line() {
    local name=$1 addr=$2 check=$3 extra=${4:-}
    if "$check"; then
        printf '%-11s %-22s up%s\n' "$name" "$addr" "$extra"
    else
        printf '%-11s %-22s down\n' "$name" "$addr"
        return 1
    fi
}

cmd_status() {
    local rc=0 pid extra
    extra=""
    if pid="$(pid_alive tansu)"; then
        extra="   (pid $pid, engine $(cat "$RUN_DIR/tansu.engine" 2>/dev/null || echo '?'))"
    fi
    status_line tansu "$HOST:$KAFKA_PORT" kafka_ready "$extra" || rc=1
    extra=""
    if pid="$(pid_alive clickhouse)"; then extra="   (pid $pid, data $CH_DIR)"; fi
    status_line clickhouse "http://$HOST:$CH_HTTP_PORT" ch_ready "$extra" || rc=1
    status_line redis "$HOST:$REDIS_PORT" redis_ready || rc=1
    status_line postgres "$HOST:$PG_PORT" pg_ready || rc=1
    extra=""
    if pid="$(pid_alive localstripe)"; then extra="   (pid $pid)"; fi
    status_line localstripe "http://$HOST:$LOCALSTRIPE_PORT" localstripe_ready "$extra" || rc=1
    return $rc
}

cmd_up() {
    mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"
    command -v curl >/dev/null 2>&1 || apt_install curl
    local t0
    t0=$(now_ms)
    redis_up
    postgres_up
    clickhouse_up
    localstripe_up
    tansu_up
    write_env
    log "all services ready ($(elapsed "$t0") for 'up')"
    print_env
}

cmd_down() {
    stop_pid tansu
    stop_pid clickhouse
    stop_pid localstripe
    log "redis and postgres are left running"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
