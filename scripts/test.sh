#!/usr/bin/env bash
# Install into a fresh venv (.venv-test) and run lint, types and tests. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv-test}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# transformers is pinned to the version the H200 fixtures were captured with (the GPU image's):
# its reference Mamba2 scan changes between releases (5.24 rewrote it with einsums), and the
# FlopCounterMode comparisons assert what that implementation computes.
"$VENV/bin/python" -m pip install -q "torch==2.13.0" "transformers==5.17.0" -e ".[capture,hta,dev]"
"$VENV/bin/ruff" check traceparse scripts tests
"$VENV/bin/ruff" format --check traceparse scripts tests
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest -q -m "not slow" "$@"
