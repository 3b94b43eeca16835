#!/usr/bin/env bash
# Same-run benchmark: Lusso's trainer (`lusso eval`) against implicit 0.7.3
# (benches/implicit/protocol.py) on the same machine, same split, same threads.
#
#   bash benches/compare_implicit.sh [online_retail.csv.gz]
#
# 1. UCI Online Retail, the protocol's time split: ALS and BPR, seeds 1..5 each,
#    2 threads; metric means, seconds/iteration (median over seeds) and the
#    ratio lusso/implicit.
# 2. A synthetic matrix 10x the Online Retail train matrix: ALS only,
#    3 iterations, seed 1; seconds/iteration and the ratio.
#
# Env:
#   LUSSO_BIN           the binary to measure. When unset, this script runs
#                       `cargo build --release -j2 --bin lusso` and uses
#                       ${CARGO_TARGET_DIR:-target}/release/lusso.
#   LUSSO_ONLINE_RETAIL the data file when no argument is given
#                       (default: ../shared/data/online_retail/online_retail.csv.gz
#                       next to the repository).
#   BENCH_OUT           where the raw JSON results go (default: a temp dir,
#                       printed at the end and kept).
# Run it on an otherwise idle machine: both sides share the same 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DATA="${1:-${LUSSO_ONLINE_RETAIL:-$ROOT/../shared/data/online_retail/online_retail.csv.gz}}"
[[ -f $DATA ]] || { echo "compare_implicit: no data file at $DATA" >&2; exit 1; }

THREADS=2
SEEDS=(1 2 3 4 5)
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# --- tools -------------------------------------------------------------------
VENV="$(bash "$ROOT/scripts/python_env.sh" | tail -1)"
PY="$VENV/bin/python"
PROTOCOL=("$PY" "$ROOT/benches/implicit/protocol.py")

if [[ -z ${LUSSO_BIN:-} ]]; then
    cargo build --release -j2 --bin lusso >&2
    LUSSO_BIN="${CARGO_TARGET_DIR:-target}/release/lusso"
fi
[[ -x $LUSSO_BIN ]] || { echo "compare_implicit: $LUSSO_BIN is not executable" >&2; exit 1; }

OUT="${BENCH_OUT:-$(mktemp -d -t lusso-compare-implicit.XXXXXX)}"
mkdir -p "$OUT"

# --- machine -----------------------------------------------------------------
echo "## Lusso vs implicit 0.7.3"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- cores (nproc): $(nproc)"
echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- lusso: $LUSSO_BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "- python: $("$PY" -c 'import sys, implicit, numpy, scipy; print(sys.version.split()[0], "implicit", implicit.__version__, "numpy", numpy.__version__, "scipy", scipy.__version__)')"
echo "- threads: $THREADS, OPENBLAS_NUM_THREADS=1"
echo

# --- 1. Online Retail: ALS and BPR, 5 seeds ------------------------------------
for algo in als bpr; do
    for seed in "${SEEDS[@]}"; do
        echo "online-retail $algo: lusso seed $seed" >&2
        "$LUSSO_BIN" eval online-retail "$DATA" --algo "$algo" --threads "$THREADS" \
            --seed "$seed" --json >"$OUT/lusso-$algo-$seed.json"
    done
    echo "online-retail $algo: implicit seeds ${SEEDS[*]}" >&2
    seeds_csv="$(IFS=,; echo "${SEEDS[*]}")"
    "${PROTOCOL[@]}" online-retail "$DATA" --algo "$algo" --seeds "$seeds_csv" \
        --threads "$THREADS" --json >"$OUT/implicit-$algo.json"
done

# --- 2. Synthetic 10x: ALS, 3 iterations, seed 1 --------------------------------
SYNTH="$OUT/synth10"
echo "synth: generating 10x matrix in $SYNTH" >&2
"${PROTOCOL[@]}" synth --scale 10 --out "$SYNTH" >"$OUT/synth.json"
echo "synth als: lusso" >&2
"$LUSSO_BIN" eval split --train "$SYNTH/train.csv" --test "$SYNTH/test.csv" --algo als \
    --iterations 3 --threads "$THREADS" --seed 1 --json >"$OUT/lusso-synth-als.json"
echo "synth als: implicit" >&2
"${PROTOCOL[@]}" split --train "$SYNTH/train.csv" --test "$SYNTH/test.csv" --algo als \
    --iterations 3 --threads "$THREADS" --seeds 1 --json >"$OUT/implicit-synth-als.json"

# --- report ------------------------------------------------------------------
"$PY" - "$OUT" "${SEEDS[@]}" <<'EOF'
import json, statistics, sys
from pathlib import Path

out, seeds = Path(sys.argv[1]), sys.argv[2:]
METRICS = [
    ("precision_at_10", "precision@10"),
    ("recall_at_10", "recall@10"),
    ("map_at_10", "MAP@10"),
    ("ndcg_at_10", "NDCG@10"),
    ("coverage", "coverage"),
]


def load(name):
    return json.loads((out / name).read_text())


def field(obj, key):
    # Top-level keys first; tolerate a nested "metrics" object.
    if key in obj:
        return float(obj[key])
    return float(obj["metrics"][key])


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


print("### UCI Online Retail (time split at 2011-11-09), means over seeds", ",".join(seeds))
print()
print("| algo | metric | lusso | implicit 0.7.3 | lusso / implicit |")
print("|---|---|---:|---:|---:|")
for algo in ("als", "bpr"):
    ours = [load(f"lusso-{algo}-{s}.json") for s in seeds]
    ref = load(f"implicit-{algo}.json")
    for key, label in METRICS:
        a = statistics.fmean(field(r, key) for r in ours)
        b = ref["mean"][key]
        print(f"| {algo.upper()} | {label} | {a:.4f} | {b:.4f} | {ratio(a, b)} |")
    a = statistics.median(field(r, "seconds_per_iteration") for r in ours)
    b = ref["seconds_per_iteration"]
    print(f"| {algo.upper()} | **s/iteration** (median) | {a:.4f} | {b:.4f} | **{ratio(a, b)}** |")
print()

synth = load("synth.json")
ours, ref = load("lusso-synth-als.json"), load("implicit-synth-als.json")
tr = synth["train"]
print(
    f"### Synthetic 10x: {tr['users']:,} users x {tr['items']:,} items, {tr['rows']:,} entries "
    f"(seed {synth['seed']}); ALS, 3 iterations, seed 1"
)
print()
print("| | lusso | implicit 0.7.3 | lusso / implicit |")
print("|---|---:|---:|---:|")
a, b = field(ours, "seconds_per_iteration"), ref["seconds_per_iteration"]
print(f"| **s/iteration** | {a:.3f} | {b:.3f} | **{ratio(a, b)}** |")
a, b = field(ours, "ndcg_at_10"), ref["mean"]["ndcg_at_10"]
print(f"| NDCG@10 (3 iterations) | {a:.4f} | {b:.4f} | {ratio(a, b)} |")
print()
print("Ratios below 1.00x on s/iteration mean Lusso is faster.")
EOF
echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- raw JSON: $OUT"
