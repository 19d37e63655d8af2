#!/usr/bin/env bash
# Cross-checks ruse's ONNX export against onnxruntime (outside CI: needs the Python venv).
#
#   tools/export_check.sh [DIR]
#
# 1. Runs the export round-trip tests with RUSE_EXPORT_CHECK_DIR=DIR, which writes every exported
#    model (zoo architectures and op fixtures) as DIR/<name>.onnx plus DIR/<name>.json holding a
#    seeded input batch and ruse's output on it.
# 2. Runs tools/onnxruntime_check.py DIR, which feeds each model to onnxruntime and compares.
#
# DIR defaults to a fresh temporary directory, removed afterwards unless KEEP=1 (or DIR is given).
# The Python interpreter is $PYTHON, else .venv/bin/python (see tools/setup_venv.sh).
# Exits non-zero if a test or any model fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${PYTHON:-$ROOT/.venv/bin/python}"
if ! "$PY" -c 'import onnxruntime, numpy' >/dev/null 2>&1; then
    echo "error: $PY cannot import onnxruntime and numpy; run tools/setup_venv.sh or set PYTHON" >&2
    exit 2
fi

if [[ $# -ge 1 ]]; then
    DIR="$1"
    mkdir -p "$DIR"
    # Stale models from an earlier run would be checked too.
    rm -f "$DIR"/*.onnx "$DIR"/*.json
else
    DIR="$(mktemp -d "${TMPDIR:-/tmp}/ruse_export_check.XXXXXX")"
    if [[ "${KEEP:-0}" != 1 ]]; then
        trap 'rm -rf "$DIR"' EXIT
    fi
fi
echo "export check directory: $DIR"

RUSE_EXPORT_CHECK_DIR="$DIR" cargo test --release -p ruse-graph --test export_roundtrip
"$PY" tools/onnxruntime_check.py "$DIR"
