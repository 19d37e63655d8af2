#!/usr/bin/env python3
"""Cross-check ruse's attacks against the Python references (issue 3, parts 7-8).

Not part of the product. Runs, on the same ONNX model and the same MNIST test images:
  * torchattacks PGD (L-inf, random start, alpha = 2.5*eps/steps) with 20 and 100 steps,
  * torchattacks AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square 5000); torchattacks builds
    it with 10 iterations per attack, where the AutoAttack paper and its reference code use 100:
    `--aa-steps 100` builds the same ensemble from torchattacks' APGD / APGDT / FAB(multi-targeted)
    / Square classes with 100 iterations (9 target classes, 1 restart each, as in the paper),
  * `ruse audit --preset standard` and `ruse attack --attack pgd --steps 100`,
and prints robust accuracy and time per image, the correctness check
(ruse standard <= AutoAttack + 0.5 points) and the speed ratios.

The ONNX model is converted to PyTorch with onnx2torch; its logits must match
onnxruntime's within 1e-4 on the images, else the script aborts.

Needs the venv (tools/setup_venv.sh) plus:  pip install torchattacks onnx2torch
Example:
  .venv/bin/python tools/crosscheck_attacks.py --n 200 --eps 0.1
  .venv/bin/python tools/crosscheck_attacks.py --model ../shared/vnncomp/eran/nets/mnist_relu_9_200.onnx --eps 0.03
"""
import argparse
import gzip
import importlib.metadata
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RUSE_BIN lets a long run use a frozen copy of the binary while the tree is rebuilt.
RUSE = os.environ.get("RUSE_BIN", os.path.join(ROOT, "target", "release", "ruse"))


def load_mnist(data_dir, n):
    with gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    assert int.from_bytes(raw[0:4], "big") == 2051, "bad image magic"
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(count, 1, rows, cols)
    with gzip.open(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        raw = f.read()
    assert int.from_bytes(raw[0:4], "big") == 2049, "bad label magic"
    y = np.frombuffer(raw, np.uint8, offset=8)
    return (x[:n].astype(np.float32) / 255.0), y[:n].astype(np.int64)


def ort_logits(path, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dim0 = inp.shape[0]
    if isinstance(dim0, int) and dim0 > 0:  # fixed batch (e.g. ERAN nets: 1)
        outs = [sess.run(None, {inp.name: x[i:i + dim0]})[0] for i in range(0, len(x), dim0)]
        return np.concatenate(outs, 0)
    return sess.run(None, {inp.name: x})[0]


def robust_acc(model, xa, y, bs=500):
    import torch
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xa), bs):
            correct += (model(xa[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(xa)


def time_parts(attacks):
    """Wraps each attack's forward so its total seconds (over all batches) can be reported."""
    secs = {}
    for atk in attacks:
        name = type(atk).__name__
        secs[name] = 0.0
        inner = atk.forward

        def timed(images, labels, _inner=inner, _name=name):
            t0 = time.perf_counter()
            out = _inner(images, labels)
            secs[_name] += time.perf_counter() - t0
            return out

        atk.forward = timed
    return secs


def run_torchattack(atk, model, x, y, bs, eps):
    import torch
    t0 = time.perf_counter()
    advs = [atk(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]
    secs = time.perf_counter() - t0
    xa = torch.cat(advs, 0)
    linf = (xa - x).abs().amax().item()
    assert linf <= eps + 1e-5, f"{atk} left the eps ball: {linf}"
    assert xa.min().item() >= -1e-6 and xa.max().item() <= 1 + 1e-6
    return robust_acc(model, xa, y), secs


def run_ruse(args, cmd, out_dir, what):
    full = [RUSE, "--threads", str(args.threads)] + cmd
    print("$ " + " ".join(full), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(full, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        print(p.stdout)
        print(p.stderr, file=sys.stderr)
        sys.exit(f"ruse {what} failed with exit code {p.returncode}")
    with open(os.path.join(out_dir, what)) as f:
        return json.load(f), wall, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="ONNX model (default: `ruse export` of the bundled model)")
    ap.add_argument("--data", default="/work/shared/data/mnist", help="MNIST directory (idx .gz files)")
    ap.add_argument("--n", type=int, default=200, help="first N MNIST test images")
    ap.add_argument("--aa-n", type=int, default=None,
                    help="run AutoAttack (and, for the check, ruse standard) on only the first AA_N images "
                         "when AutoAttack is too slow for N on CPU (default: N)")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--skip-aa", action="store_true", help="skip AutoAttack")
    ap.add_argument("--aa-steps", type=int, default=None,
                    help="build AutoAttack standard from torchattacks' parts with this many iterations "
                         "per gradient attack (the paper's 100); default: torchattacks.AutoAttack as shipped (10)")
    ap.add_argument("--tol", type=float, default=1e-4, help="onnx2torch vs onnxruntime logit tolerance")
    args = ap.parse_args()

    import torch
    import onnx
    import onnx2torch
    import torchattacks

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model_path = args.model
    if model_path is None:
        model_path = "/tmp/ruse_default.onnx"
        subprocess.run([RUSE, "export", "--out", model_path], cwd=ROOT, check=True)
    model_path = os.path.abspath(model_path)
    n = args.n
    aa_n = min(args.aa_n or n, n)

    x_np, y_np = load_mnist(args.data, n)
    model = onnx2torch.convert(onnx.load(model_path)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(x_np)
    y = torch.from_numpy(y_np)

    ref = ort_logits(model_path, x_np)
    with torch.no_grad():
        got = model(x).numpy()
    diff = float(np.abs(ref - got).max())
    print(f"model {model_path}")
    print(f"onnx2torch vs onnxruntime: max |logit diff| = {diff:.3g} on {n} images")
    if not diff <= args.tol:
        sys.exit(f"onnx2torch disagrees with onnxruntime ({diff} > {args.tol}); aborting")
    clean = float((got.argmax(1) == y_np).mean())
    print(f"clean accuracy (torch) {100 * clean:.2f}%")
    print(f"versions: torch {torch.__version__}, torchattacks {torchattacks.__version__}, "
          f"onnx2torch {importlib.metadata.version('onnx2torch')}", flush=True)

    rows = []  # (method, images, robust acc, seconds)
    eps, bs = args.eps, args.batch_size
    for steps in (20, 100):
        atk = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)
        ra, secs = run_torchattack(atk, model, x, y, bs, eps)
        rows.append((f"torchattacks PGD-{steps}", n, ra, secs))
        print(f"  torchattacks PGD-{steps}: {100 * ra:.2f}% in {secs:.1f} s", flush=True)

    aa = None
    if not args.skip_aa:
        if args.aa_steps is None:
            atk = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
            name = "torchattacks AutoAttack standard"
        else:
            k = args.aa_steps
            atk = torchattacks.MultiAttack([
                torchattacks.APGD(model, norm="Linf", eps=eps, steps=k, n_restarts=1, seed=0, loss="ce"),
                torchattacks.APGDT(model, norm="Linf", eps=eps, steps=k, n_restarts=1, seed=0, n_classes=10),
                torchattacks.FAB(model, norm="Linf", eps=eps, steps=k, n_restarts=1, seed=0,
                                 multi_targeted=True, n_classes=10),
                torchattacks.Square(model, norm="Linf", eps=eps, n_queries=5000, n_restarts=1, seed=0),
            ])
            name = f"AutoAttack standard ({k} it., torchattacks parts)"
            part_secs = time_parts(atk.attacks)
        ra, secs = run_torchattack(atk, model, x[:aa_n], y[:aa_n], bs, eps)
        aa = (ra, secs)
        rows.append((name, aa_n, ra, secs))
        print(f"  {name}: {100 * ra:.2f}% in {secs:.1f} s", flush=True)
        if args.aa_steps is not None:
            for part, s in part_secs.items():
                rows.append((f"  AutoAttack part: {part}", aa_n, float("nan"), s))

    data = f"mnist:{os.path.abspath(args.data)}"
    common = ["--model", model_path, "--data", data, "--eps", str(eps), "--batch-size", str(bs)]
    rep, wall, _ = run_ruse(args, ["audit"] + common + ["--limit", str(n), "--preset", "standard",
                                                        "--out", "/tmp/ruse_cc"], "/tmp/ruse_cc", "report.json")
    res = rep["results"][0]
    assert abs(res["eps"] - eps) < 1e-9
    attack_secs = sum(a["seconds"] for a in res["attacks"])
    for a in res["attacks"]:
        rows.append((f"  ruse standard: {a['attack']}", n, a["robust_accuracy"], a["seconds"]))
    rows.append(("ruse standard (attacks only)", n, res["robust_accuracy"], attack_secs))
    rows.append(("ruse audit standard (whole run)", n, res["robust_accuracy"], rep["seconds"]))
    ruse_std = (res["robust_accuracy"], attack_secs, n)
    if aa is not None and aa_n != n:
        rep2, _, _ = run_ruse(args, ["audit"] + common + ["--limit", str(aa_n), "--preset", "standard",
                                                           "--out", "/tmp/ruse_cc_aa"], "/tmp/ruse_cc_aa",
                              "report.json")
        r2 = rep2["results"][0]
        s2 = sum(a["seconds"] for a in r2["attacks"])
        rows.append(("ruse standard (attacks only)", aa_n, r2["robust_accuracy"], s2))
        ruse_std_aa = (r2["robust_accuracy"], s2, aa_n)
    else:
        ruse_std_aa = ruse_std

    pgd, _, _ = run_ruse(args, ["attack"] + common + ["--limit", str(n), "--attack", "pgd", "--steps", "100",
                                                      "--out", "/tmp/ruse_pgd"], "/tmp/ruse_pgd", "attack.json")
    rows.append(("ruse PGD-100", n, pgd["robust_accuracy"], pgd["seconds"]))

    print()
    print(f"model {model_path}, linf eps = {eps}, first {n} MNIST test images, "
          f"{args.threads} threads, clean accuracy {100 * clean:.2f}%")
    print(f"{'method':<46} {'images':>6} {'robust acc (%)':>14} {'seconds':>9} {'s/image':>9}")
    for m, k, ra, s in rows:
        print(f"{m:<46} {k:>6} {100 * ra:>14.2f} {s:>9.2f} {s / k:>9.4f}")
    print()
    t100 = next(s for m, k, ra, s in rows if m == "torchattacks PGD-100")
    if aa is not None:
        ok = 100 * ruse_std_aa[0] <= 100 * aa[0] + 0.5 + 1e-9
        print(f"check 1 (correctness, {aa_n} images): ruse standard {100 * ruse_std_aa[0]:.2f}% <= "
              f"AutoAttack {100 * aa[0]:.2f}% + 0.5: {'PASS' if ok else 'FAIL'}")
        print(f"check 2a (speed): AutoAttack time / ruse standard time (per image) = "
              f"{(aa[1] / aa_n) / (ruse_std_aa[1] / ruse_std_aa[2]):.2f}x (target >= 1.5x)")
    print(f"check 2b (speed): torchattacks PGD-100 time / ruse PGD-100 time = "
          f"{t100 / pgd['seconds']:.2f}x (target >= 1.5x)")
    print(f"PGD-100 robust accuracy: ruse {100 * pgd['robust_accuracy']:.2f}% vs torchattacks "
          f"{100 * next(ra for m, k, ra, s in rows if m == 'torchattacks PGD-100'):.2f}%")


if __name__ == "__main__":
    main()
