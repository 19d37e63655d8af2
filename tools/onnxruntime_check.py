#!/usr/bin/env python3
"""Check ONNX fixtures against onnxruntime.

Usage: .venv/bin/python tools/onnxruntime_check.py DIR [DIR ...]

For every DIR/<name>.onnx that has a DIR/<name>.json (keys input_shape, input,
output_shape, output), run onnxruntime (CPU) on the input and compare with the
stored output. Prints one line per model with the max abs / max relative error;
a model fails when max abs error > 1e-4 * max(1, max|output|). Ends with
"N passed, M failed" and exits 1 if anything failed.
"""
import glob
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def check(onnx_path, json_path):
    with open(json_path) as f:
        d = json.load(f)
    x = np.asarray(d["input"], dtype=np.float32).reshape(d["input_shape"])
    ref = np.asarray(d["output"], dtype=np.float32).astype(np.float64).reshape(d["output_shape"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    name = d.get("input_name") or sess.get_inputs()[0].name
    got = np.asarray(sess.run(None, {name: x})[0], dtype=np.float64)
    if got.shape != ref.shape:
        return False, f"shape mismatch: got {list(got.shape)}, expected {list(ref.shape)}"
    diff = np.abs(got - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size else 0.0
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()) if ref.size else 0.0)
    ok = max_abs <= tol
    return ok, f"max_abs={max_abs:.3e} max_rel={max_rel:.3e} tol={tol:.1e}"


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    passed = failed = 0
    for d in argv[1:]:
        for onnx_path in sorted(glob.glob(os.path.join(d, "*.onnx"))):
            json_path = onnx_path[: -len(".onnx")] + ".json"
            if not os.path.exists(json_path):
                continue
            try:
                ok, msg = check(onnx_path, json_path)
            except Exception as e:  # noqa: BLE001 - report any failure per model
                ok, msg = False, f"error: {type(e).__name__}: {e}"
            print(f"{'ok  ' if ok else 'FAIL'} {onnx_path}: {msg}")
            if ok:
                passed += 1
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
