#!/usr/bin/env bash
# Creates/updates the Python venv used ONLY for generating reference fixtures
# (tools/make_fixtures.py), checking them with onnxruntime
# (tools/onnxruntime_check.py) and the PyTorch reference benchmark
# (bench/pytorch_ref.py). The Rust build and tests do not need it.
#
# Idempotent: re-running only installs what is missing.
#
# Notes on torch: only PyPI is reachable here, and PyPI's linux x86_64 torch
# wheels are CUDA builds. `pip install torch --no-deps` is NOT enough: importing
# torch preloads the CUDA libraries (libcublasLt, ...) from the nvidia-* wheels
# and fails with "ValueError: libcublasLt.so.*[0-9] not found" if they are
# absent, even on a CPU-only machine. So the full dependency set is installed
# (~540 MB torch wheel + ~2.5 GB nvidia-*/triton; ~5.5 GB on disk; about
# 1.5-2 min at ~35 MB/s). Everything runs on the CPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"

"$VENV/bin/python" -c "import numpy, onnx, onnxruntime" 2>/dev/null || \
  "$PIP" install numpy onnx onnxruntime

# Legacy TorchScript exporter (dynamo=False) is used, so onnxscript is not needed.
"$VENV/bin/python" -c "import torch" 2>/dev/null || \
  "$PIP" install torch==2.15.0

# Attack cross-check references (tools/crosscheck_attacks.py).
"$VENV/bin/python" -c "import torchattacks, onnx2torch" 2>/dev/null || \
  "$PIP" install torchattacks==3.5.1 onnx2torch==1.5.15

"$VENV/bin/python" -c "import torch, onnx, onnxruntime, numpy; print('torch', torch.__version__, 'onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
