//! Ops of the graph: their attributes and static shape inference.
//!
//! Shapes here are *per sample*: every value carries a leading batch axis at run time that is not
//! stored. Constant operands (weights) keep their full ONNX shape.

use serde::{Deserialize, Serialize};

/// Attributes of a 2-D convolution (NCHW input, MCkk weight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvAttrs {
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Padding (top, left, bottom, right).
    pub pads: [usize; 4],
    /// Dilation (h, w).
    pub dilation: [usize; 2],
    /// Number of groups.
    pub groups: usize,
}

/// Attributes of a 2-D pooling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolAttrs {
    /// Window (h, w).
    pub kernel: [usize; 2],
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Padding (top, left, bottom, right).
    pub pads: [usize; 4],
    /// Dilation (h, w); max pool only.
    pub dilation: [usize; 2],
    /// Output size rounds up instead of down.
    pub ceil_mode: bool,
}

impl PoolAttrs {
    /// Output spatial size for an input of `h`×`w`, or None when the window does not fit.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let dim = |inp: usize, k: usize, s: usize, p0: usize, p1: usize, d: usize| {
            let span = (k - 1) * d + 1;
            let padded = inp + p0 + p1;
            if padded < span || s == 0 {
                return None;
            }
            let mut out = if self.ceil_mode {
                (padded - span).div_ceil(s) + 1
            } else {
                (padded - span) / s + 1
            };
            // As PyTorch: the last window must start inside the input or the leading pad.
            if self.ceil_mode && (out - 1) * s >= inp + p0 {
                out -= 1;
            }
            Some(out)
        };
        Some([
            dim(
                h,
                self.kernel[0],
                self.stride[0],
                self.pads[0],
                self.pads[2],
                self.dilation[0],
            )?,
            dim(
                w,
                self.kernel[1],
                self.stride[1],
                self.pads[1],
                self.pads[3],
                self.dilation[1],
            )?,
        ])
    }
}

/// One operation. Operands are listed in `Node::inputs`, in ONNX order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// 2-D convolution: inputs x, weight, optional bias.
    Conv(ConvAttrs),
    /// y = alpha·A·op(B) + beta·C with op = transpose when `trans_b`.
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of C.
        beta: f32,
        /// B is stored as N×K.
        trans_b: bool,
    },
    /// Matrix product with numpy broadcasting.
    MatMul,
    /// Elementwise sum (broadcasting).
    Add,
    /// Elementwise difference (broadcasting).
    Sub,
    /// Elementwise product (broadcasting).
    Mul,
    /// Elementwise quotient (broadcasting).
    Div,
    /// max(x, 0).
    Relu,
    /// x for x ≥ 0, alpha·x otherwise.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// Logistic function.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax along a per-sample axis (axis 0 is the first non-batch axis).
    Softmax {
        /// Per-sample axis.
        axis: usize,
    },
    /// Max over windows; ties go to the first maximum in scan order.
    MaxPool(PoolAttrs),
    /// Mean over windows.
    AveragePool {
        /// Window geometry.
        pool: PoolAttrs,
        /// Padding cells count in the divisor.
        count_include_pad: bool,
    },
    /// Mean over all spatial positions, keeping 1×1.
    GlobalAveragePool,
    /// Inference batch norm: inputs x, scale, bias, mean, var.
    BatchNorm {
        /// Added to the variance.
        epsilon: f32,
    },
    /// Reshape to a static per-sample shape (also Flatten, Squeeze, Unsqueeze).
    Reshape {
        /// Per-sample target shape.
        shape: Vec<usize>,
    },
    /// Permutation of per-sample axes.
    Transpose {
        /// Per-sample permutation.
        perm: Vec<usize>,
    },
    /// Concatenation along a per-sample axis.
    Concat {
        /// Per-sample axis.
        axis: usize,
    },
    /// Constant padding of per-sample axes.
    Pad {
        /// (before, after) per per-sample axis.
        pads: Vec<(usize, usize)>,
        /// Fill value.
        value: f32,
    },
    /// min(max(x, min), max).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Pass-through (Identity, inference Dropout).
    Identity,
}

impl Op {
    /// The ONNX op type this op exports as.
    pub fn onnx_type(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Relu => "Relu",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::Softmax { .. } => "Softmax",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Pad { .. } => "Pad",
            Op::Clip { .. } => "Clip",
            Op::Identity => "Identity",
        }
    }
}

/// The shape of an operand during inference: a batched value (per-sample shape) or a constant (full shape).
#[derive(Debug, Clone, PartialEq)]
pub enum OperandShape {
    /// A run-time value with a leading batch axis (not included).
    Batched(Vec<usize>),
    /// A constant tensor, full shape.
    Const(Vec<usize>),
}

/// Numpy-style broadcast of two full shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

fn full(s: &OperandShape) -> Vec<usize> {
    match s {
        OperandShape::Batched(p) => {
            let mut v = vec![1];
            v.extend_from_slice(p);
            v
        }
        OperandShape::Const(c) => c.clone(),
    }
}

/// Per-sample output shape of a broadcasting binary op with at least one batched operand.
pub fn broadcast_batched(a: &OperandShape, b: &OperandShape) -> Result<Vec<usize>, String> {
    let (fa, fb) = (full(a), full(b));
    let r = broadcast_shapes(&fa, &fb)
        .ok_or_else(|| format!("shapes {fa:?} and {fb:?} do not broadcast"))?;
    // A constant whose rank exceeds the value's must not add axes in front of the batch axis.
    let batch_rank = match (a, b) {
        (OperandShape::Batched(p), _) | (_, OperandShape::Batched(p)) => p.len() + 1,
        _ => r.len(),
    };
    if r.len() != batch_rank || r[0] != 1 {
        return Err(format!(
            "constant of shape {:?} would change the batch axis of a value of shape [N, {}]",
            if matches!(a, OperandShape::Const(_)) {
                fa
            } else {
                fb
            },
            r[1..]
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(r[1..].to_vec())
}

impl Op {
    /// Per-sample output shape given operand shapes; the first operand must be batched.
    pub fn infer_shape(&self, inputs: &[OperandShape]) -> Result<Vec<usize>, String> {
        let x = match inputs.first() {
            Some(OperandShape::Batched(s)) => s.clone(),
            Some(OperandShape::Const(_)) if self.is_binary() || matches!(self, Op::MatMul) => {
                Vec::new()
            }
            _ => return Err("the first operand must be a run-time value".into()),
        };
        let konst = |i: usize| -> Result<Vec<usize>, String> {
            match inputs.get(i) {
                Some(OperandShape::Const(c)) => Ok(c.clone()),
                Some(OperandShape::Batched(_)) => Err(format!(
                    "operand {i} must be a constant (weight), not a run-time value"
                )),
                None => Err(format!("missing operand {i}")),
            }
        };
        match self {
            Op::Conv(a) => {
                let w = konst(1)?;
                if x.len() != 3 || w.len() != 4 {
                    return Err(format!(
                        "only 2-D convolution is supported (input [N, {x:?}], weight {w:?})"
                    ));
                }
                if a.groups == 0 || x[0] != w[1] * a.groups || !w[0].is_multiple_of(a.groups) {
                    return Err(format!(
                        "weight {w:?} with {} groups does not fit {} input channels",
                        a.groups, x[0]
                    ));
                }
                if inputs.len() > 2 && konst(2)? != vec![w[0]] {
                    return Err(format!("bias must have shape [{}]", w[0]));
                }
                let p = PoolAttrs {
                    kernel: [w[2], w[3]],
                    stride: a.stride,
                    pads: a.pads,
                    dilation: a.dilation,
                    ceil_mode: false,
                };
                let [h, wd] = p
                    .output_hw(x[1], x[2])
                    .ok_or("kernel larger than padded input")?;
                Ok(vec![w[0], h, wd])
            }
            Op::Gemm { trans_b, .. } => {
                let b = konst(1)?;
                if x.len() != 1 || b.len() != 2 {
                    return Err(format!(
                        "Gemm needs A of shape [N, K] and a 2-D B (got A [N, {x:?}], B {b:?})"
                    ));
                }
                let (k, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
                if k != x[0] {
                    return Err(format!("A has {} columns but B expects {k}", x[0]));
                }
                if inputs.len() > 2 {
                    let c = konst(2)?;
                    broadcast_shapes(&[1, n], &c)
                        .filter(|r| r == &vec![1, n])
                        .ok_or_else(|| {
                            format!("C of shape {c:?} does not broadcast to [N, {n}]")
                        })?;
                }
                Ok(vec![n])
            }
            Op::MatMul => {
                let (a, b) = (&inputs[0], inputs.get(1).ok_or("missing operand 1")?);
                let (fa, fb) = (full(a), full(b));
                let batched_a = matches!(a, OperandShape::Batched(_));
                let batched_b = matches!(b, OperandShape::Batched(_));
                if fa.len() < 2 || fb.len() < 2 {
                    return Err("MatMul operands must have rank ≥ 2 including the batch".into());
                }
                let (m, k1) = (fa[fa.len() - 2], fa[fa.len() - 1]);
                let (k2, n) = (fb[fb.len() - 2], fb[fb.len() - 1]);
                if k1 != k2 {
                    return Err(format!("inner sizes differ: {fa:?} @ {fb:?}"));
                }
                let lead = broadcast_shapes(&fa[..fa.len() - 2], &fb[..fb.len() - 2])
                    .ok_or_else(|| format!("leading axes do not broadcast: {fa:?} @ {fb:?}"))?;
                let mut out = lead;
                // A batched 2-D A ([N,K]) times a constant matrix: the N axis is the row axis.
                if batched_a && !batched_b && fa.len() == 2 {
                    if fb.len() != 2 {
                        return Err(format!("unsupported MatMul of [N, K] by {fb:?}"));
                    }
                    return Ok(vec![n]);
                }
                if !batched_a && batched_b && fb.len() == 2 {
                    return Err("MatMul of a constant by a [N, K] value mixes the batch".into());
                }
                out.push(m);
                out.push(n);
                if out.is_empty() || out[0] != 1 {
                    return Err(format!("MatMul result {out:?} would change the batch axis"));
                }
                Ok(out[1..].to_vec())
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div => {
                let b = inputs.get(1).ok_or("missing operand 1")?;
                broadcast_batched(&inputs[0], b)
            }
            Op::Relu
            | Op::LeakyRelu { .. }
            | Op::Sigmoid
            | Op::Tanh
            | Op::Clip { .. }
            | Op::Identity => Ok(x),
            Op::Softmax { axis } => {
                if *axis >= x.len() {
                    return Err(format!("axis {axis} out of range for [N, {x:?}]"));
                }
                Ok(x)
            }
            Op::MaxPool(p) | Op::AveragePool { pool: p, .. } => {
                if x.len() != 3 {
                    return Err(format!("only 2-D pooling is supported (input [N, {x:?}])"));
                }
                let [h, w] = p
                    .output_hw(x[1], x[2])
                    .ok_or("window larger than padded input")?;
                Ok(vec![x[0], h, w])
            }
            Op::GlobalAveragePool => {
                if x.len() < 2 {
                    return Err(format!("needs spatial axes (input [N, {x:?}])"));
                }
                let mut out = vec![x[0]];
                out.extend(std::iter::repeat_n(1, x.len() - 1));
                Ok(out)
            }
            Op::BatchNorm { .. } => {
                if x.is_empty() {
                    return Err("needs a channel axis".into());
                }
                for i in 1..5 {
                    let p = konst(i)?;
                    if p != vec![x[0]] {
                        return Err(format!(
                            "parameter {i} has shape {p:?}, expected [{}] (one per channel)",
                            x[0]
                        ));
                    }
                }
                Ok(x)
            }
            Op::Reshape { shape } => {
                let (a, b): (usize, usize) = (x.iter().product(), shape.iter().product());
                if a != b {
                    return Err(format!("cannot reshape [N, {x:?}] into [N, {shape:?}]"));
                }
                Ok(shape.clone())
            }
            Op::Transpose { perm } => {
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len() {
                    return Err(format!("perm {perm:?} does not fit [N, {x:?}]"));
                }
                for &p in perm {
                    if p >= x.len() || seen[p] {
                        return Err(format!("perm {perm:?} is not a permutation"));
                    }
                    seen[p] = true;
                }
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
            Op::Concat { axis } => {
                let mut out = x.clone();
                if *axis >= x.len() {
                    return Err(format!("axis {axis} out of range for [N, {x:?}]"));
                }
                for s in &inputs[1..] {
                    let OperandShape::Batched(s) = s else {
                        return Err(
                            "concatenating a constant with a run-time value is not supported"
                                .into(),
                        );
                    };
                    if s.len() != x.len()
                        || s.iter()
                            .zip(&x)
                            .enumerate()
                            .any(|(i, (a, b))| i != *axis && a != b)
                    {
                        return Err(format!("cannot concatenate [N, {s:?}] with [N, {x:?}]"));
                    }
                    out[*axis] += s[*axis];
                }
                Ok(out)
            }
            Op::Pad { pads, .. } => {
                if pads.len() != x.len() {
                    return Err(format!("{} pads for [N, {x:?}]", pads.len()));
                }
                Ok(x.iter().zip(pads).map(|(d, (a, b))| d + a + b).collect())
            }
        }
    }

    fn is_binary(&self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div)
    }
}
