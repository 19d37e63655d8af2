//! Interval bound propagation (IBP): for an input box, sound elementwise bounds on every value of
//! the graph, one rule per op, the graph walked generically.
//!
//! Sound in floating point: bounds are computed in f64, and every linear op (Gemm, MatMul, Conv,
//! BatchNorm, pooling means, constant Add/Sub/Mul/Div) is widened by the standard bound on the
//! rounding error of an f32 evaluation, γ_{n+2}·(|W|·(|c|+r) + |b|) with γ_k = k·u/(1−k·u),
//! u = 2⁻²⁴, so the bounds hold both for the exact network and for ruse's own f32 forward pass.

use candle_core::{DType, Device, Tensor};
use ruse_graph::{Graph, Op, Operand};

/// Why bounds could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum BoundError {
    /// The graph has an op (or op setting) without an interval rule.
    #[error("node '{node}': no bound rule for {op}{detail}")]
    Unsupported {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// Extra explanation.
        detail: String,
    },
    /// The input box does not fit the model.
    #[error("input box: {0}")]
    Input(String),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Elementwise bounds of one value (batch of 1), in f64.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Lower bounds.
    pub lower: Tensor,
    /// Upper bounds.
    pub upper: Tensor,
}

pub(crate) const U: f64 = 1.0 / 16_777_216.0; // 2^-24, unit roundoff of f32

pub(crate) fn gamma(n: usize) -> f64 {
    let k = (n + 2) as f64;
    k * U / (1.0 - k * U)
}

pub(crate) fn f64t(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::F64)
}

impl Interval {
    fn mid_rad(&self) -> candle_core::Result<(Tensor, Tensor)> {
        let mid = ((&self.lower + &self.upper)? * 0.5)?;
        let rad = ((&self.upper - &self.lower)? * 0.5)?;
        Ok((mid, rad))
    }

    /// From a centre, radius and a rounding-error allowance.
    fn from_mid_rad(mid: Tensor, rad: Tensor, err: Tensor) -> candle_core::Result<Self> {
        let r = (rad + err)?;
        Ok(Interval {
            lower: (&mid - &r)?,
            upper: (&mid + &r)?,
        })
    }

    fn map_monotone(
        &self,
        f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        // A monotone non-decreasing function maps the ends to the ends; the f32 evaluation of
        // tanh/sigmoid is within a few ulps, covered by a relative widening.
        let (lo, hi) = (f(&self.lower)?, f(&self.upper)?);
        let w = 8.0 * U;
        Ok(Interval {
            lower: (&lo - ((lo.abs()? * w)? + 1e-30)?)?,
            upper: (&hi + ((hi.abs()? * w)? + 1e-30)?)?,
        })
    }
}

pub(crate) fn unsupported(node: &str, op: &Op, detail: &str) -> BoundError {
    BoundError::Unsupported {
        node: node.into(),
        op: op.onnx_type().into(),
        detail: if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        },
    }
}

/// Bounds of every value of `graph` for inputs in [lower, upper] (flat, one sample).
pub fn ibp_all(
    graph: &Graph,
    lower: &[f64],
    upper: &[f64],
) -> Result<Vec<Option<Interval>>, BoundError> {
    let n = graph.input_len();
    if lower.len() != n || upper.len() != n {
        return Err(BoundError::Input(format!(
            "{} / {} bounds for an input of {n}",
            lower.len(),
            upper.len()
        )));
    }
    if lower
        .iter()
        .zip(upper)
        .any(|(l, u)| !(l.is_finite() && u.is_finite() && l <= u))
    {
        return Err(BoundError::Input(
            "every bound must be finite with lower ≤ upper".into(),
        ));
    }
    let shape: Vec<usize> = std::iter::once(1)
        .chain(graph.input_shape().iter().copied())
        .collect();
    let dev = Device::Cpu;
    ibp_batch(
        graph,
        Interval {
            lower: Tensor::from_slice(lower, shape.clone(), &dev)?,
            upper: Tensor::from_slice(upper, shape, &dev)?,
        },
    )
}

/// Bounds of every value for a batch of input boxes (f64 tensors of shape [B, input shape…],
/// already checked to be finite with lower ≤ upper).
pub fn ibp_batch(graph: &Graph, input: Interval) -> Result<Vec<Option<Interval>>, BoundError> {
    let batch = input.lower.dim(0)?;
    let mut vals: Vec<Option<Interval>> = vec![None; graph.values.len()];
    vals[0] = Some(input);
    for node in &graph.nodes {
        let out = ibp_node(graph, node, &vals, batch)?;
        vals[node.output] = Some(out);
    }
    Ok(vals)
}

/// Interval bounds of one node's output from the bounds of its inputs (`batch` domains).
pub(crate) fn ibp_node(
    graph: &Graph,
    node: &ruse_graph::Node,
    vals: &[Option<Interval>],
    batch: usize,
) -> Result<Interval, BoundError> {
    let iv = |o: &Operand| -> Option<Interval> {
        match o {
            Operand::Value(v) => vals[*v].clone(),
            Operand::Param(_) => None,
        }
    };
    let param = |o: &Operand| -> candle_core::Result<Option<Tensor>> {
        match o {
            Operand::Param(p) => f64t(&graph.params[*p].tensor).map(Some),
            Operand::Value(_) => Ok(None),
        }
    };
    let x = iv(&node.inputs[0]);
    let out = match (&node.op, x) {
        (
            Op::Gemm {
                alpha,
                beta,
                trans_b,
            },
            Some(x),
        ) => {
            let w = param(&node.inputs[1])?
                .ok_or_else(|| unsupported(&node.name, &node.op, "run-time B"))?;
            let w = if *trans_b { w.t()? } else { w };
            let w = (w * *alpha as f64)?;
            let (mid, rad) = x.mid_rad()?;
            let mut c = mid.matmul(&w)?;
            let mut abs_b = Tensor::zeros_like(&c)?;
            if let Some(Operand::Param(_)) = node.inputs.get(2) {
                let b = (param(&node.inputs[2])?
                    .ok_or_else(|| unsupported(&node.name, &node.op, "run-time C"))?
                    * *beta as f64)?;
                c = c.broadcast_add(&b)?;
                abs_b = abs_b.broadcast_add(&b.abs()?)?;
            }
            let r = rad.matmul(&w.abs()?)?;
            let err = ((mid.abs()? + &rad)?.matmul(&w.abs()?)? + abs_b)? * gamma(w.dim(0)?);
            Interval::from_mid_rad(c, r, err?)?
        }
        (Op::MatMul, Some(x)) => {
            let w = param(&node.inputs[1])?
                .ok_or_else(|| unsupported(&node.name, &node.op, "only value × constant"))?;
            let (mid, rad) = x.mid_rad()?;
            let c = mid.broadcast_matmul(&w)?;
            let r = rad.broadcast_matmul(&w.abs()?)?;
            let err = ((mid.abs()? + &rad)?.broadcast_matmul(&w.abs()?)? * gamma(w.dim(0)?))?;
            Interval::from_mid_rad(c, r, err)?
        }
        (Op::Conv(a), Some(x)) => {
            if a.stride[0] != a.stride[1] || a.dilation[0] != a.dilation[1] {
                return Err(unsupported(
                    &node.name,
                    &node.op,
                    "unequal strides or dilations",
                ));
            }
            let w = param(&node.inputs[1])?
                .ok_or_else(|| unsupported(&node.name, &node.op, "run-time weight"))?;
            let conv = |t: &Tensor, k: &Tensor| -> candle_core::Result<Tensor> {
                t.pad_with_zeros(2, a.pads[0], a.pads[2])?
                    .pad_with_zeros(3, a.pads[1], a.pads[3])?
                    .conv2d(k, 0, a.stride[0], a.dilation[0], a.groups)
            };
            let (mid, rad) = x.mid_rad()?;
            let mut c = conv(&mid, &w)?;
            let r = conv(&rad, &w.abs()?)?;
            let mut err = conv(&(mid.abs()? + &rad)?, &w.abs()?)?;
            if let Some(b) = node.inputs.get(2).map(&param).transpose()?.flatten() {
                let b = b.reshape((1, b.elem_count(), 1, 1))?;
                c = c.broadcast_add(&b)?;
                err = err.broadcast_add(&b.abs()?)?;
            }
            let fan_in = w.dims()[1..].iter().product();
            Interval::from_mid_rad(c, r, (err * gamma(fan_in))?)?
        }
        (Op::Add | Op::Sub, Some(_)) | (Op::Add, None) => {
            let y = iv(&node.inputs[1]);
            let xi = x_or(vals, &node.inputs[0]);
            match (xi, y, &node.op) {
                (Some(p), Some(q), Op::Add) => widen_rel(Interval {
                    lower: (&p.lower + &q.lower)?,
                    upper: (&p.upper + &q.upper)?,
                })?,
                (Some(p), Some(q), _) => widen_rel(Interval {
                    lower: (&p.lower - &q.upper)?,
                    upper: (&p.upper - &q.lower)?,
                })?,
                (Some(p), None, op) => {
                    let c = param(&node.inputs[1])?
                        .ok_or_else(|| unsupported(&node.name, &node.op, ""))?;
                    let c = if matches!(op, Op::Sub) { c.neg()? } else { c };
                    widen_rel(Interval {
                        lower: p.lower.broadcast_add(&c)?,
                        upper: p.upper.broadcast_add(&c)?,
                    })?
                }
                (None, Some(q), op) => {
                    let c = param(&node.inputs[0])?
                        .ok_or_else(|| unsupported(&node.name, &node.op, ""))?;
                    if matches!(op, Op::Sub) {
                        widen_rel(Interval {
                            lower: c.broadcast_sub(&q.upper)?,
                            upper: c.broadcast_sub(&q.lower)?,
                        })?
                    } else {
                        widen_rel(Interval {
                            lower: q.lower.broadcast_add(&c)?,
                            upper: q.upper.broadcast_add(&c)?,
                        })?
                    }
                }
                _ => return Err(unsupported(&node.name, &node.op, "no run-time operand")),
            }
        }
        (Op::Sub, None) => {
            let q = iv(&node.inputs[1])
                .ok_or_else(|| unsupported(&node.name, &node.op, "no run-time operand"))?;
            let c = param(&node.inputs[0])?.ok_or_else(|| unsupported(&node.name, &node.op, ""))?;
            widen_rel(Interval {
                lower: c.broadcast_sub(&q.upper)?,
                upper: c.broadcast_sub(&q.lower)?,
            })?
        }
        (Op::Mul | Op::Div, Some(x)) => {
            let c = param(&node.inputs[1])?.ok_or_else(|| {
                unsupported(&node.name, &node.op, "product of two run-time values")
            })?;
            let k = if matches!(node.op, Op::Div) {
                c.recip()?
            } else {
                c
            };
            let a = x.lower.broadcast_mul(&k)?;
            let b = x.upper.broadcast_mul(&k)?;
            widen_rel(Interval {
                lower: a.minimum(&b)?,
                upper: a.maximum(&b)?,
            })?
        }
        (Op::Relu, Some(x)) => Interval {
            lower: x.lower.relu()?,
            upper: x.upper.relu()?,
        },
        (Op::LeakyRelu { alpha }, Some(x)) if *alpha >= 0.0 => {
            let f = |t: &Tensor| -> candle_core::Result<Tensor> {
                t.relu()? - (t.neg()?.relu()? * *alpha as f64)?
            };
            widen_rel(Interval {
                lower: f(&x.lower)?,
                upper: f(&x.upper)?,
            })?
        }
        (Op::Clip { min, max }, Some(x)) => Interval {
            lower: x.lower.clamp(*min as f64, *max as f64)?,
            upper: x.upper.clamp(*min as f64, *max as f64)?,
        },
        (Op::Sigmoid, Some(x)) => x.map_monotone(|t| (t.neg()?.exp()? + 1.0)?.recip())?,
        (Op::Tanh, Some(x)) => x.map_monotone(|t| t.tanh())?,
        (Op::BatchNorm { epsilon }, Some(x)) => {
            let p = |i: usize| {
                param(&node.inputs[i]).and_then(|t| {
                    t.ok_or_else(|| candle_core::Error::Msg("run-time batch-norm parameter".into()))
                })
            };
            let (scale, bias, mean, var) = (p(1)?, p(2)?, p(3)?, p(4)?);
            let k = scale.div(&(var + *epsilon as f64)?.sqrt()?)?;
            let b = (&bias - mean.mul(&k)?)?;
            let mut shape = vec![1, k.elem_count()];
            shape.extend(std::iter::repeat_n(1, x.lower.rank() - 2));
            // The f32 forward computes k and b itself (≈3 roundings each) before x·k + b, so
            // the error is relative to |x·k| + |bias| + |mean·k|, not to the (possibly
            // cancelling) result.
            let slack = ((bias.abs()? + mean.abs()?.mul(&k.abs()?)?)?).reshape(shape.clone())?;
            let (k, b) = (k.reshape(shape.clone())?, b.reshape(shape)?);
            let (lo, hi) = (
                x.lower.broadcast_mul(&k)?.broadcast_add(&b)?,
                x.upper.broadcast_mul(&k)?.broadcast_add(&b)?,
            );
            let xmax = x.lower.abs()?.maximum(&x.upper.abs()?)?;
            let err = (xmax.broadcast_mul(&k.abs()?)?.broadcast_add(&slack)? * (16.0 * U))?;
            Interval {
                lower: (lo.minimum(&hi)? - &err)?,
                upper: (lo.maximum(&hi)? + &err)?,
            }
        }
        (Op::MaxPool(p), Some(x)) => {
            if p.pads != [0; 4] || p.dilation != [1, 1] || p.ceil_mode {
                return Err(unsupported(
                    &node.name,
                    &node.op,
                    "padding, dilation or ceil_mode",
                ));
            }
            let f = |t: &Tensor| {
                t.max_pool2d_with_stride((p.kernel[0], p.kernel[1]), (p.stride[0], p.stride[1]))
            };
            Interval {
                lower: f(&x.lower)?,
                upper: f(&x.upper)?,
            }
        }
        (Op::GlobalAveragePool, Some(x)) => {
            let d = x.lower.dims().to_vec();
            let f = |t: &Tensor| -> candle_core::Result<Tensor> {
                let s: usize = d[2..].iter().product();
                let mut out = vec![d[0], d[1]];
                out.extend(std::iter::repeat_n(1, d.len() - 2));
                t.reshape((d[0], d[1], s))?.mean_keepdim(2)?.reshape(out)
            };
            // A mean of s terms: error ≤ (γ_s + u)·mean|x|, whatever the cancellation.
            let s: usize = d[2..].iter().product();
            let err = (f(&x.lower.abs()?.maximum(&x.upper.abs()?)?)? * (gamma(s) + U))?;
            Interval {
                lower: (f(&x.lower)? - &err)?,
                upper: (f(&x.upper)? + &err)?,
            }
        }
        (Op::Reshape { shape }, Some(x)) => {
            let s: Vec<usize> = std::iter::once(batch)
                .chain(shape.iter().copied())
                .collect();
            Interval {
                lower: x.lower.reshape(s.clone())?,
                upper: x.upper.reshape(s)?,
            }
        }
        (Op::Transpose { perm }, Some(x)) => {
            let p: Vec<usize> = std::iter::once(0)
                .chain(perm.iter().map(|v| v + 1))
                .collect();
            Interval {
                lower: x.lower.permute(p.clone())?.contiguous()?,
                upper: x.upper.permute(p)?.contiguous()?,
            }
        }
        (Op::Identity, Some(x)) => x,
        (Op::Pad { pads, value }, Some(x)) => {
            let pad = |t: &Tensor| -> candle_core::Result<Tensor> {
                let mut y = (t - *value as f64)?;
                for (i, (lo, hi)) in pads.iter().enumerate() {
                    y = y.pad_with_zeros(i + 1, *lo, *hi)?;
                }
                y + *value as f64
            };
            // The f32 forward pads as (x − v) + v: two roundings, each up to u·(|x| + |v|).
            let (lo, hi) = (pad(&x.lower)?, pad(&x.upper)?);
            let v = (*value as f64).abs();
            if v != 0.0 {
                Interval {
                    lower: (&lo - ((lo.abs()? + v)? * (4.0 * U))?)?,
                    upper: (&hi + ((hi.abs()? + v)? * (4.0 * U))?)?,
                }
            } else {
                Interval {
                    lower: lo,
                    upper: hi,
                }
            }
        }
        (Op::Concat { axis }, Some(_)) => {
            let parts: Vec<Interval> = node
                .inputs
                .iter()
                .map(|o| iv(o).ok_or_else(|| unsupported(&node.name, &node.op, "constant part")))
                .collect::<Result<_, _>>()?;
            let lo: Vec<&Tensor> = parts.iter().map(|p| &p.lower).collect();
            let hi: Vec<&Tensor> = parts.iter().map(|p| &p.upper).collect();
            Interval {
                lower: Tensor::cat(&lo, axis + 1)?,
                upper: Tensor::cat(&hi, axis + 1)?,
            }
        }
        (op, _) => return Err(unsupported(&node.name, op, "")),
    };
    Ok(out)
}

fn x_or(vals: &[Option<Interval>], o: &Operand) -> Option<Interval> {
    match o {
        Operand::Value(v) => vals[*v].clone(),
        Operand::Param(_) => None,
    }
}

/// Widens by the rounding error of one f32 operation per element (relative 2u, plus a tiny absolute).
fn widen_rel(i: Interval) -> candle_core::Result<Interval> {
    let w = 2.0 * U;
    Ok(Interval {
        lower: (&i.lower - ((i.lower.abs()? * w)? + 1e-38)?)?,
        upper: (&i.upper + ((i.upper.abs()? * w)? + 1e-38)?)?,
    })
}

/// Bounds of the graph output (flat) for inputs in [lower, upper].
pub fn ibp(
    graph: &Graph,
    lower: &[f64],
    upper: &[f64],
) -> Result<(Vec<f64>, Vec<f64>), BoundError> {
    let vals = ibp_all(graph, lower, upper)?;
    let out = vals[graph.output]
        .as_ref()
        .ok_or_else(|| BoundError::Input("the output was not reached".into()))?;
    Ok((
        out.lower.flatten_all()?.to_vec1()?,
        out.upper.flatten_all()?.to_vec1()?,
    ))
}
