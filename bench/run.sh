#!/usr/bin/env bash
# Speed benchmark: ruse vs PyTorch-CPU on the same CNN (conv32-conv64-fc128-fc10 on 1×28×28, the
# zoo's cnn-pool), batch 128: forward, one PGD step, one training step, in images/second.
#
#   bench/run.sh [--batch B] [--seconds S] [--repeats R]     (THREADS=2 by default)
#
# Builds ruse-bench in release, then runs .venv/bin/python bench/pytorch_ref.py and
# target/release/ruse-bench one after the other (never concurrently), prints both JSON lines
# and a table with the ratio ruse/pytorch. Without torch in the venv only ruse's numbers are
# printed (make the venv with tools/setup_venv.sh). Run it on an otherwise idle machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

THREADS="${THREADS:-2}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

cargo build --release --bin ruse-bench

torch_json=""
if [ -x "$PY" ] && "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "running the PyTorch reference ($PY bench/pytorch_ref.py --threads $THREADS $*)" >&2
    torch_json="$("$PY" bench/pytorch_ref.py --threads "$THREADS" "$@")"
else
    echo "note: $PY cannot import torch, so there is no PyTorch reference;" \
        "create the venv with: bash tools/setup_venv.sh" >&2
fi
echo "running ruse (target/release/ruse-bench --threads $THREADS $*)" >&2
ruse_json="$(target/release/ruse-bench --threads "$THREADS" "$@")"

if [ -n "$torch_json" ]; then echo "$torch_json"; fi
echo "$ruse_json"

python3 - "$ruse_json" "$torch_json" <<'PY'
import json, sys
ruse = json.loads(sys.argv[1])
torch = json.loads(sys.argv[2]) if sys.argv[2].strip() else None
main = ["forward_ips", "pgd_step_ips", "train_step_ips"]
# Extra ruse-only measurements (e.g. pgd_step_candle_autodiff_ips) are shown without a ratio.
extra = sorted(k for k in ruse if k.endswith("_ips") and k not in main)
w = max(len(k) - len("_ips") for k in main + extra) + 2
print()
print(f"images/s, batch {ruse['batch']}, {ruse['threads']} threads")
if torch:
    print(f"{'':<{w}}{'pytorch':>10}{'ruse':>10}{'ruse/pytorch':>14}")
else:
    print(f"{'':<{w}}{'ruse':>10}")
for key in main + extra:
    label, r = key[: -len("_ips")], ruse[key]
    if torch and key in torch:
        t = torch[key]
        print(f"{label:<{w}}{t:>10.0f}{r:>10.0f}{r / t:>13.2f}x")
    elif torch:
        print(f"{label:<{w}}{'':>10}{r:>10.0f}")
    else:
        print(f"{label:<{w}}{r:>10.0f}")
if torch:
    print(f"(torch {torch.get('torch', '?')})")
PY
