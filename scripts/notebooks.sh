#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless, as CI does, against a fresh
# debug build of the CLI. Exits non-zero if any notebook fails.
#
#   bash scripts/notebooks.sh
#
# Env:
#   LUSSO_BIN         use this binary instead of building one; when unset,
#                     runs `cargo build -j2 --bin lusso` and uses
#                     ${CARGO_TARGET_DIR:-target}/debug/lusso.
#   LUSSO_PYENV       the Python venv (see scripts/python_env.sh).
#   NOTEBOOKS_OUT     where the executed copies go (default: a new temp dir).
# LUSSO_DATA_DIR, LUSSO_MODELS_DIR and the service URLs are unset here: each
# notebook makes its own temporary data and model directories.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$(bash "$ROOT/scripts/python_env.sh" | tail -1)"

if [[ -z ${LUSSO_BIN:-} ]]; then
    cargo build -j2 --bin lusso
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ $target_dir == /* ]] || target_dir="$ROOT/$target_dir"
    LUSSO_BIN="$target_dir/debug/lusso"
fi
# Kernels run with the notebook's folder as cwd: pass an absolute path.
if [[ $LUSSO_BIN == */* && $LUSSO_BIN != /* ]]; then
    LUSSO_BIN="$PWD/$LUSSO_BIN"
fi
export LUSSO_BIN

# Hermetic: the notebooks use the built-in simulator and make their own temp
# data/model dirs. Drop what scripts/services.sh's env.sh (or a shell) may have
# exported, so a run inside scripts/test.sh touches no service and no registry.
unset LUSSO_KAFKA_BROKERS LUSSO_CLICKHOUSE_URL LUSSO_REDIS_URL LUSSO_DATABASE_URL \
    LUSSO_DATA_DIR LUSSO_MODELS_DIR

# Jupyter from the venv only: its python3 kernel spec (written by python_env.sh
# into $VENV/share/jupyter) comes first, and no user IPython profile or
# Jupyter config leaks in.
scratch="$(mktemp -d -t lusso-notebooks.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
export PATH="$VENV/bin:$PATH"
export JUPYTER_PATH="$VENV/share/jupyter"
export JUPYTER_CONFIG_DIR="$scratch/jupyter-config"
export JUPYTER_PLATFORM_DIRS=1
export IPYTHONDIR="$scratch/ipython"
export MPLBACKEND=Agg
export OPENBLAS_NUM_THREADS=1

run_nbconvert() {
    "$VENV/bin/jupyter" nbconvert --to notebook --execute \
        --ExecutePreprocessor.timeout=900 \
        --ExecutePreprocessor.kernel_name=python3 \
        "$@"
}

# Check that the python3 kernel is the venv's interpreter, by running a
# one-cell probe notebook through the same nbconvert command.
"$VENV/bin/python" - "$scratch/probe.ipynb" <<'EOF'
import sys
import nbformat
from nbformat.v4 import new_code_cell, new_notebook
nb = new_notebook(cells=[new_code_cell("import sys; print(sys.prefix)")])
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, sys.argv[1])
EOF
run_nbconvert --output-dir "$scratch" --output probe.out "$scratch/probe.ipynb" >/dev/null 2>&1 ||
    { echo "notebooks: the python3 kernel does not start" >&2; exit 1; }
kernel_prefix="$("$VENV/bin/python" -c '
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
print("".join(o.get("text", "") for o in nb.cells[0].outputs).strip())' "$scratch/probe.out.ipynb")"
venv_prefix="$("$VENV/bin/python" -c 'import sys; print(sys.prefix)')"
if [[ $kernel_prefix != "$venv_prefix" ]]; then
    echo "notebooks: kernel python3 runs in '$kernel_prefix', not the venv '$venv_prefix'" >&2
    exit 1
fi

out="${NOTEBOOKS_OUT:-$(mktemp -d -t lusso-notebooks-out.XXXXXX)}"
mkdir -p "$out"
echo "notebooks: LUSSO_BIN=$LUSSO_BIN, kernel $venv_prefix/bin/python, executed copies in $out"

passed=0
failed=0
shopt -s nullglob
for nb in "$ROOT"/notebooks/*.ipynb; do
    name="$(basename "$nb")"
    start=$SECONDS
    if run_nbconvert --output-dir "$out" "$nb"; then
        echo "notebooks: $name ok ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        echo "notebooks: $name FAILED ($((SECONDS - start)) s), see the traceback above" >&2
        failed=$((failed + 1))
    fi
done

echo "notebooks: $passed passed, $failed failed"
((failed == 0 && passed > 0))
