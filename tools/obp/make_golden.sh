#!/usr/bin/env bash
# Regenerates tools/obp/policies/*.csv and tools/obp/golden/*.json with Open Bandit Pipeline 0.5.7.
#
#   bash tools/obp/make_golden.sh [make_golden.py options, e.g. --verify-bootstrap all]
#
# Environment:
#   OBP_VENV           venv holding obp 0.5.7 (default: $HOME/.local/share/lusso/obp-venv); created if missing
#   OBP_VENV_RECIPE    script that creates it (default: /work/shared/tools/make_obp_venv.sh; ~2 GB with torch)
#   LUSSO_SHARED_DATA  directory holding open_bandit_dataset/ (default: /work/shared/data)
#
# Single-threaded on purpose (BLAS/OpenMP pinned to 1 thread, nice'd): about 3-4 minutes on one core,
# mostly obp's bootstrap intervals (18 cases x 4 estimators x 10,000 resamples of 10,000 rows).
# The output is deterministic: a re-run must leave `git diff tools/obp` empty.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${OBP_VENV:-$HOME/.local/share/lusso/obp-venv}"
RECIPE="${OBP_VENV_RECIPE:-/work/shared/tools/make_obp_venv.sh}"
DATA="${LUSSO_SHARED_DATA:-/work/shared/data}"

if ! "$VENV/bin/python" -c 'import obp, sys; sys.exit(obp.__version__ != "0.5.7")' >/dev/null 2>&1; then
  echo "make_golden.sh: creating the obp 0.5.7 venv in $VENV with $RECIPE" >&2
  bash "$RECIPE" "$VENV"
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1
export PYTHONHASHSEED=0 MPLBACKEND=Agg
exec nice -n 10 "$VENV/bin/python" "$HERE/make_golden.py" --data-root "$DATA" --out "$HERE" "$@"
