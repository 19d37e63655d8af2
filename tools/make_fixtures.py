#!/usr/bin/env python3
"""Generate reference ONNX fixtures (with forward / gradient references) for ruse.

Run from the repository root:

    bash tools/setup_venv.sh
    .venv/bin/python tools/make_fixtures.py

Writes:
  tests/fixtures/torch_cnn.onnx + torch_cnn.json
  tests/fixtures/ops/<name>.onnx + <name>.json

JSON keys (all tensors are flat row-major float lists, float32 values):
  input_shape, input, output_shape, output,
  cotangent            random tensor with the output's shape,
  input_grad           d(sum(output * cotangent)) / d input,
  param_grads          {onnx initializer name: d(sum(output*cotangent))/d param}
                       for every initializer that is a trainable torch parameter,
  ops                  ONNX op types in the graph (in node order, de-duplicated),
  opset, input_name, output_name, source ("torch" or "onnx.helper+finite-differences").

Gradients of torch-exported models are computed by autograd on a float64 copy
of the module (then rounded to float32). Models built with onnx.helper get the
forward pass from onnxruntime (float32) and input_grad from central finite
differences of a float64 copy of the model run in onnxruntime.

Everything is seeded and single-threaded, so re-running gives the same numbers.
"""
import copy
import json
import os
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
OPS = os.path.join(FIX, "ops")
OPSET = 13

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def seed_for(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def flat(a):
    """Flat list of floats using the shortest repr that round-trips as float32."""
    a = np.asarray(a, dtype=np.float32).ravel()
    return [float(str(v)) for v in a]


def op_types(model):
    seen = []
    for n in model.graph.node:
        if n.op_type not in seen:
            seen.append(n.op_type)
    return seen


def ort_run(path_or_bytes, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def errs(ref, got):
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    abs_err = float(np.max(np.abs(ref - got))) if ref.size else 0.0
    rel = float(np.max(np.abs(ref - got) / np.maximum(np.abs(ref), 1e-6))) if ref.size else 0.0
    return abs_err, rel


def export(module, x, path, out_name, fold=True):
    torch.onnx.export(
        module,
        (x,),
        path,
        dynamo=False,
        opset_version=OPSET,
        do_constant_folding=fold,
        input_names=["input"],
        output_names=[out_name],
        dynamic_axes={"input": {0: "N"}, out_name: {0: "N"}},
    )
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return model


def torch_fixture(name, module, x, out_dir, out_name="output", fold=True, cot_seed=None,
                  must_have=()):
    """Export `module` (already in eval mode) on input `x` and write <name>.onnx/.json."""
    module = module.eval()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".onnx")
    model = export(module, x, path, out_name, fold=fold)
    ops = op_types(model)
    for op in must_have:
        if op not in ops:
            raise SystemExit(f"{name}: expected op {op} in exported graph, got {ops}")

    with torch.no_grad():
        y32 = module(x).numpy()
    rng = np.random.RandomState(seed_for(name) if cot_seed is None else cot_seed)
    cot = rng.standard_normal(y32.shape).astype(np.float32)

    # Gradients in float64 on a copy of the module.
    m64 = copy.deepcopy(module).double().eval()
    x64 = x.detach().double().clone().requires_grad_(True)
    y64 = m64(x64)
    (y64 * torch.from_numpy(cot.astype(np.float64))).sum().backward()
    in_grad = x64.grad.numpy()

    params64 = dict(m64.named_parameters())
    params32 = dict(module.named_parameters())
    param_grads = {}
    init_names = [i.name for i in model.graph.initializer]
    for init in model.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        pname = init.name if init.name in params32 else None
        if pname is None:
            # The exporter may rename a parameter; match by exact value.
            cands = [k for k, p in params32.items()
                     if tuple(p.shape) == arr.shape and np.array_equal(p.detach().numpy(), arr)]
            if len(cands) == 1:
                pname = cands[0]
        if pname is None:
            continue
        assert np.array_equal(params32[pname].detach().numpy(), arr), (name, init.name)
        param_grads[init.name] = flat(params64[pname].grad.numpy())
    missing = [k for k, p in params32.items() if p.requires_grad and
               not any(k == n or n in param_grads for n in init_names if n == k)]
    if missing and any(k not in param_grads for k in missing):
        print(f"  note: torch params not found as initializers: {[k for k in missing if k not in param_grads]}")

    got = ort_run(path, x.numpy())
    a, r = errs(y32, got)
    assert a <= 1e-4 * max(1.0, float(np.abs(y32).max())), (name, a)
    write_json(out_dir, name, model, x.numpy(), y32, cot, in_grad, param_grads, "torch", out_name)
    print(f"{name:50s} ops={ops}  ort max_abs={a:.2e} params={list(param_grads)}")
    return model


def write_json(out_dir, name, model, x, y, cot, in_grad, param_grads, source, out_name):
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    d = {
        "source": source,
        "opset": int(opset),
        "ops": op_types(model),
        "input_name": "input",
        "output_name": out_name,
        "input_shape": list(x.shape),
        "input": flat(x),
        "output_shape": list(y.shape),
        "output": flat(y),
        "cotangent": flat(cot),
        "input_grad": flat(in_grad),
        "param_grads": param_grads,
    }
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(d, f, separators=(",", ":"))
        f.write("\n")


def to_double_model(model):
    m = copy.deepcopy(model)
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    for init in m.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            arr = onnx.numpy_helper.to_array(init).astype(np.float64)
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    return m


def helper_fixture(name, model, x, out_dir, eps=1e-6):
    """Model built with onnx.helper: forward by onnxruntime, input_grad by central FD (float64)."""
    onnx.checker.check_model(model)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".onnx")
    onnx.save(model, path)
    y = ort_run(path, x)
    rng = np.random.RandomState(seed_for(name))
    cot = rng.standard_normal(y.shape).astype(np.float32)
    m64 = to_double_model(model).SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m64, so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    x64 = x.astype(np.float64)
    c64 = cot.astype(np.float64)

    def f(v):
        return float(np.sum(sess.run(None, {iname: v})[0] * c64))

    g = np.zeros_like(x64)
    for i in range(x64.size):
        xp = x64.copy().ravel(); xp[i] += eps
        xm = x64.copy().ravel(); xm[i] -= eps
        g.ravel()[i] = (f(xp.reshape(x64.shape)) - f(xm.reshape(x64.shape))) / (2 * eps)
    out_name = model.graph.output[0].name
    write_json(out_dir, name, model, x, y, cot, g, {}, "onnx.helper+finite-differences", out_name)
    print(f"{name:50s} ops={op_types(model)}  (onnx.helper, FD grads)")


# ----------------------------------------------------------------------------
# torch_cnn
# ----------------------------------------------------------------------------
class Residual(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


def make_torch_cnn():
    torch.manual_seed(1234)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),        # 8x28x28
        nn.ReLU(),
        nn.MaxPool2d(2),                      # 8x14x14
        nn.BatchNorm2d(8),                    # after the pool, so it cannot be fused into the conv
        Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())),
        nn.AvgPool2d(2),                      # 8x7x7
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 10),
    )
    bn = model[3]
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.5 * torch.randn(8))
        bn.bias.copy_(0.3 * torch.randn(8))
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.rand(16, 1, 28, 28) * 1.5 + 0.2)
    model.eval()
    assert not torch.allclose(bn.running_mean, torch.zeros(8))
    assert not torch.allclose(bn.running_var, torch.ones(8))
    x = torch.rand(4, 1, 28, 28)
    m = torch_fixture("torch_cnn", model, x, FIX, out_name="logits", fold=False,
                      must_have=("BatchNormalization", "MaxPool", "AveragePool", "Add",
                                 "Flatten", "Gemm", "Conv", "Relu"))
    return m


# ----------------------------------------------------------------------------
# per-op fixtures
# ----------------------------------------------------------------------------
class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class MatMulW(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(6, 4) * 0.5)

    def forward(self, x):
        return x @ self.W


class Elementwise(nn.Module):
    """Add/Sub/Mul/Div with broadcast constants and a per-channel parameter."""

    def __init__(self, c=3, w=4):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(1, c, 1, 1))
        self.register_buffer("a", torch.randn(w))            # broadcast over last axis
        self.register_buffer("b", torch.randn(c, 1, 1))      # broadcast per channel
        self.register_buffer("d", torch.rand(1, 1, 1, w) + 0.5)

    def forward(self, x):
        y = x * self.scale + self.a
        y = y - self.b
        y = y / self.d
        y = 0.5 - y                                            # scalar on the left
        return y * x + x / 2.0


class BNOnly(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(x)


class ViewReshape(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)

    def forward(self, x):
        return torch.cat([self.conv(x), torch.relu(x)], dim=1)


class SqueezeUnsqueeze(nn.Module):
    def forward(self, x):            # x: N x 1 x 3 x 4
        y = x.squeeze(1) * 2.0       # N x 3 x 4
        return y.unsqueeze(2)        # N x 3 x 1 x 4


class Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def uni(shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape) * (hi - lo) + lo


def op_cases():
    """(name, module factory, input factory, must_have ops). Seeded per case."""
    def bn():
        m = BNOnly(3)
        with torch.no_grad():
            m.bn.weight.copy_(1.0 + 0.5 * torch.randn(3))
            m.bn.bias.copy_(0.3 * torch.randn(3))
        m.train()
        with torch.no_grad():
            for _ in range(4):
                m(torch.randn(8, 3, 4, 4) * 2.0 + 0.7)
        m.eval()
        return m

    return [
        ("conv_basic", lambda: nn.Conv2d(2, 3, 3, padding=1), lambda: uni((2, 2, 5, 5)), ["Conv"]),
        ("conv_stride_pad", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=(1, 2)), lambda: uni((2, 2, 7, 6)), ["Conv"]),
        ("conv_dilation", lambda: nn.Conv2d(2, 3, 3, dilation=2, padding=1), lambda: uni((2, 2, 7, 7)), ["Conv"]),
        ("conv_groups", lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1), lambda: uni((2, 4, 5, 5)), ["Conv"]),
        ("gemm", lambda: nn.Linear(6, 4), lambda: uni((3, 6)), ["Gemm"]),
        ("matmul", MatMulW, lambda: uni((3, 6)), ["MatMul"]),
        ("add_sub_mul_div_broadcast", Elementwise, lambda: uni((2, 3, 2, 4)), ["Add", "Sub", "Mul", "Div"]),
        ("relu", nn.ReLU, lambda: uni((2, 3, 4, 4)), ["Relu"]),
        ("leaky_relu", lambda: nn.LeakyReLU(0.1), lambda: uni((2, 3, 4, 4)), ["LeakyRelu"]),
        ("sigmoid", nn.Sigmoid, lambda: uni((2, 3, 4, 4), -4, 4), ["Sigmoid"]),
        ("tanh", nn.Tanh, lambda: uni((2, 3, 4, 4), -3, 3), ["Tanh"]),
        ("softmax", lambda: nn.Softmax(dim=1), lambda: uni((3, 7), -3, 3), ["Softmax"]),
        ("maxpool_2x2", lambda: nn.MaxPool2d(2), lambda: uni((2, 2, 6, 6)), ["MaxPool"]),
        ("maxpool_3x3_s2_pad1", lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda: uni((2, 2, 7, 7)), ["MaxPool"]),
        # Exact ties inside windows (values in {0, .25, .5, .75, 1}); torch routes the
        # gradient to the FIRST maximal element of each window in row-major order.
        ("maxpool_ties", lambda: nn.MaxPool2d(2), lambda: torch.randint(0, 5, (2, 2, 6, 6)).float() / 4, ["MaxPool"]),
        ("maxpool_ties_overlap_3x3_s1", lambda: nn.MaxPool2d(3, stride=1), lambda: torch.randint(0, 3, (2, 1, 6, 6)).float() / 2, ["MaxPool"]),
        ("avgpool_2x2", lambda: nn.AvgPool2d(2), lambda: uni((2, 2, 6, 6)), ["AveragePool"]),
        ("avgpool_3x3_s2_pad1_count_include_pad_false",
         lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), lambda: uni((2, 2, 7, 7)), ["AveragePool"]),
        ("avgpool_pad_count_include_pad_true",
         lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True), lambda: uni((2, 2, 5, 5)), ["AveragePool"]),
        ("global_avgpool", lambda: nn.AdaptiveAvgPool2d(1), lambda: uni((2, 3, 5, 5)), ["GlobalAveragePool"]),
        ("batchnorm", bn, lambda: uni((2, 3, 4, 4), -2, 3), ["BatchNormalization"]),
        ("flatten", nn.Flatten, lambda: uni((2, 2, 3, 3)), ["Flatten"]),
        ("reshape", ViewReshape, lambda: uni((2, 2, 3, 3)), ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape"]),
        ("transpose", lambda: Lambda(lambda x: x.permute(0, 2, 3, 1)), lambda: uni((2, 2, 3, 4)), ["Transpose"]),
        ("concat", Concat, lambda: uni((2, 2, 3, 3)), ["Concat", "Conv", "Relu"]),
        ("pad", lambda: Lambda(lambda x: F.pad(x, (1, 2, 0, 1), mode="constant", value=0.7)), lambda: uni((2, 2, 3, 4)), ["Pad"]),
        ("clip", lambda: Lambda(lambda x: torch.clamp(x, -0.5, 0.5)), lambda: uni((2, 3, 4, 4)), ["Clip"]),
        ("squeeze_unsqueeze", SqueezeUnsqueeze, lambda: uni((2, 1, 3, 4)), ["Squeeze", "Unsqueeze"]),
        ("normalize", Normalize, lambda: torch.rand(2, 3, 4, 4), ["Sub", "Div"]),
    ]


def identity_dropout_model():
    # torch drops nn.Dropout (eval) and nn.Identity when exporting, so build by hand.
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 4, 4])
    nodes = [
        helper.make_node("Dropout", ["input"], ["d"], name="dropout"),  # no training_mode -> inference identity
        helper.make_node("Identity", ["d"], ["output"], name="identity"),
    ]
    graph = helper.make_graph(nodes, "identity_dropout", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ruse-make_fixtures")
    model.ir_version = 7
    return model


def pad_simple_model():
    # torch's legacy exporter builds the pads of F.pad from a ConstantOfShape/Slice/
    # Transpose/Cast subgraph; this is the plain form: pads and value as initializers.
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 3, 4])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 2, 4, 7])
    pads = onnx.numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64), "pads")
    value = onnx.numpy_helper.from_array(np.array(0.7, np.float32), "value")
    nodes = [helper.make_node("Pad", ["input", "pads", "value"], ["output"], mode="constant", name="pad")]
    graph = helper.make_graph(nodes, "pad_simple", [inp], [out], initializer=[pads, value])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ruse-make_fixtures")
    model.ir_version = 7
    return model


def main():
    print(f"torch {torch.__version__}  onnx {onnx.__version__}  onnxruntime {ort.__version__}  numpy {np.__version__}")
    make_torch_cnn()
    for name, mk, xin, must in op_cases():
        torch.manual_seed(seed_for(name))
        m = mk().eval()
        x = xin().float().contiguous()
        torch_fixture(name, m, x, OPS, must_have=must)
    # torch export of Dropout/Identity in eval mode: check what it produces, then hand-build.
    torch.manual_seed(seed_for("identity_dropout"))
    probe = nn.Sequential(nn.Dropout(0.5), nn.Identity(), Lambda(lambda x: x * 1.0)).eval()
    tmp = os.path.join(OPS, "_probe.onnx")
    pm = export(probe, torch.rand(2, 3, 4, 4), tmp, "output")
    os.remove(tmp)
    print(f"  (torch export of Dropout+Identity in eval gives ops {op_types(pm)}; building identity_dropout with onnx.helper)")
    rng = np.random.RandomState(seed_for("identity_dropout"))
    helper_fixture("identity_dropout", identity_dropout_model(),
                   rng.uniform(-1, 1, (2, 3, 4, 4)).astype(np.float32), OPS)
    rng = np.random.RandomState(seed_for("pad_simple"))
    helper_fixture("pad_simple", pad_simple_model(),
                   rng.uniform(-1, 1, (2, 2, 3, 4)).astype(np.float32), OPS)
    total = 0
    for d, _, files in os.walk(FIX):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"total fixture size: {total / 1024:.1f} KiB")


if __name__ == "__main__":
    sys.exit(main())
