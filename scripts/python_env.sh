#!/usr/bin/env bash
# Creates (or reuses) the project's Python environment: implicit 0.7.3 for the
# reference benchmark (benches/implicit/), Jupyter's headless runner for the
# notebooks (notebooks/), a38 and localstripe for the commerce tests. Idempotent: a second run is a no-op unless the
# requirement list below (or the interpreter) changed.
#
#   VENV=$(bash scripts/python_env.sh | tail -1)
#   PY=$VENV/bin/python
#
# Env: LUSSO_PYENV   where the venv lives (default ~/.local/share/lusso/pyenv)
#      LUSSO_PYTHON  interpreter to build it from (default python3, 3.11 here)
# Everything but the final line (the venv path) goes to stderr.
set -euo pipefail

VENV="${LUSSO_PYENV:-$HOME/.local/share/lusso/pyenv}"
PYTHON="${LUSSO_PYTHON:-python3}"

# Top-level pins. implicit 0.7.3 ships a cp311 manylinux2014 wheel whose
# extensions use Cython memoryviews only (no NumPy C API), so it works with
# NumPy 2; the numpy/scipy pair below is the one the benchmark was run with.
REQUIREMENTS=(
    "implicit==0.7.3"
    "numpy==2.2.6"
    "scipy==1.15.3"
    "threadpoolctl==3.6.0"
    "tqdm==4.67.1"
    "pandas==2.2.3"
    "matplotlib==3.10.3"
    "nbformat==5.10.4"
    "nbclient==0.10.2"
    "nbconvert==7.16.6"
    "jupyter-client==8.6.3"
    "ipykernel==6.29.5"
    # commerce: a38 validates every FatturaPA invoice the tests emit; localstripe is the stateful Stripe
    # API the Stripe provider is tested against (started by scripts/services.sh).
    "a38==0.1.8"
    "localstripe==1.15.10"
)

py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
stamp_content="$(printf 'python %s\n' "$py_version"; printf '%s\n' "${REQUIREMENTS[@]}")"
STAMP="$VENV/.lusso-requirements"

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$stamp_content" ]]; then
    echo "python_env: $VENV is up to date" >&2
    echo "$VENV"
    exit 0
fi

# A venv built from another interpreter version is rebuilt from scratch.
if [[ -x "$VENV/bin/python" ]]; then
    venv_version="$("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo broken)"
    if [[ "$venv_version" != "$py_version" ]]; then
        echo "python_env: rebuilding $VENV ($venv_version -> $py_version)" >&2
        rm -rf "$VENV"
    fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "python_env: creating $VENV with $PYTHON $py_version" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" >&2
fi

rm -f "$STAMP"
echo "python_env: installing ${REQUIREMENTS[*]}" >&2
"$VENV/bin/python" -m pip install --no-input --disable-pip-version-check "${REQUIREMENTS[@]}" >&2

# Kernel spec named python3 inside the venv, pointing at the venv's interpreter
# (scripts/notebooks.sh puts $VENV/share/jupyter first on JUPYTER_PATH).
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 \
    --display-name "Python 3 (lusso)" >&2

# Smoke test: the pinned stack imports together.
"$VENV/bin/python" -c 'import implicit, numpy, scipy, pandas, matplotlib, nbconvert, nbclient, ipykernel' >&2

printf '%s\n' "$stamp_content" >"$STAMP"
echo "python_env: ready" >&2
echo "$VENV"
