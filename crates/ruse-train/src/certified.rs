//! Certified training: IBP (Gowal et al. 2018, "On the Effectiveness of Interval Bound
//! Propagation for Training Verifiably Robust Models").
//!
//! A differentiable interval forward pass over the ruse graph in f32, with the trainable
//! parameters as candle `Var`s: the same op dispatch as [`Graph::forward_with`], on (lower, upper)
//! pairs; linear ops go through (centre, radius) as c′ = W·c + b, r′ = |W|·r. The last node, when
//! it is a Gemm, is folded into the specification C = e_y − e_j (one row per class j), so the
//! margins z_y − z_j are bounded directly (tighter than bounding z and subtracting).
//!
//! Loss = κ·CE(z(x), y) + (1 − κ)·CE(−m̲, y), with m̲_j the lower bound of z_y − z_j over the
//! ε-ball ∩ the input domain (m̲_y = 0): the worst-case logits. The ε ramp and κ schedule come from
//! the trainer's ramp factor t ∈ [0, 1]: ε·t and κ = 1 − t·(1 − κ_end).
//!
//! These bounds are for training only (f32, not widened for rounding); verified accuracy is
//! measured with ruse-verify's sound f64 IBP ([`verified_accuracy`]).

use candle_core::{DType, Device, Tensor, Var, D};
use ruse_data::Dataset;
use ruse_graph::backward::Gradients;
use ruse_graph::forward::apply;
use ruse_graph::loss::cross_entropy;
use ruse_graph::{Graph, Node, Op, Operand};

use crate::batch::check_fit;
use crate::error::{Result, TrainError};

/// Elementwise bounds of one batched value, f32.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Lower bounds.
    pub lower: Tensor,
    /// Upper bounds.
    pub upper: Tensor,
}

impl Bounds {
    fn point(t: &Tensor) -> Self {
        Bounds {
            lower: t.clone(),
            upper: t.clone(),
        }
    }

    fn mid_rad(&self) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            ((&self.upper + &self.lower)? * 0.5)?,
            ((&self.upper - &self.lower)? * 0.5)?,
        ))
    }

    fn from_mid_rad(c: &Tensor, r: &Tensor) -> candle_core::Result<Self> {
        Ok(Bounds {
            lower: (c - r)?,
            upper: (c + r)?,
        })
    }

    /// A monotone non-decreasing map applied to both ends.
    fn monotone(
        &self,
        f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        Ok(Bounds {
            lower: f(&self.lower)?,
            upper: f(&self.upper)?,
        })
    }
}

fn unsupported(node: &Node, detail: &str) -> TrainError {
    TrainError::Config(format!(
        "certified training: node '{}': no interval rule for {}{}; IBP supports Conv, Gemm, \
         MatMul, Add/Sub/Mul/Div by constants, Relu, Reshape/Flatten, BatchNorm, MaxPool, \
         AveragePool, GlobalAveragePool (and other monotone ops)",
        node.name,
        node.op.onnx_type(),
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        }
    ))
}

/// An operand of a node: an interval (run-time value) or a constant tensor (parameter).
enum Arg {
    Iv(Bounds),
    Const(Tensor),
}

/// Interval rule of one node.
fn propagate(node: &Node, args: &[Arg]) -> Result<Bounds> {
    let iv = |i: usize| match args.get(i) {
        Some(Arg::Iv(b)) => Ok(b),
        _ => Err(unsupported(node, "an interval operand must come first")),
    };
    let konst = |i: usize| match args.get(i) {
        Some(Arg::Const(t)) => Ok(t.clone()),
        Some(Arg::Iv(_)) => Err(unsupported(
            node,
            "operand {i} must be a constant (products of two run-time values are not supported)",
        )),
        None => Err(unsupported(node, "missing operand")),
    };
    let consts = |from: usize| -> Result<Vec<Tensor>> { (from..args.len()).map(konst).collect() };
    let op1 = |t: &Tensor, extra: &[Tensor]| -> candle_core::Result<Tensor> {
        let mut a = vec![t.clone()];
        a.extend_from_slice(extra);
        apply(node, &a)
    };
    Ok(match &node.op {
        Op::Conv(_) | Op::Gemm { .. } | Op::MatMul => {
            let x = iv(0)?;
            let w = konst(1)?;
            let rest = consts(2)?;
            let (c, r) = x.mid_rad()?;
            let mut cargs = vec![w.clone()];
            cargs.extend(rest);
            let c2 = op1(&c, &cargs)?;
            // The radius through |W| without bias; Gemm's α may be negative.
            let mut r2 = op1(&r, &[w.abs()?])?;
            if let Op::Gemm { alpha, .. } = node.op {
                if alpha < 0.0 {
                    r2 = r2.neg()?;
                }
            }
            Bounds::from_mid_rad(&c2, &r2)?
        }
        Op::Add | Op::Sub => {
            let side = |i: usize| -> Result<Bounds> {
                Ok(match &args[i] {
                    Arg::Iv(b) => b.clone(),
                    Arg::Const(t) => Bounds::point(t),
                })
            };
            let (a, b) = (side(0)?, side(1)?);
            if matches!(node.op, Op::Add) {
                Bounds {
                    lower: a.lower.broadcast_add(&b.lower)?,
                    upper: a.upper.broadcast_add(&b.upper)?,
                }
            } else {
                Bounds {
                    lower: a.lower.broadcast_sub(&b.upper)?,
                    upper: a.upper.broadcast_sub(&b.lower)?,
                }
            }
        }
        Op::Mul | Op::Div => {
            let (x, k) = match (&args[0], &args[1]) {
                (Arg::Iv(b), Arg::Const(t)) => (b, t.clone()),
                (Arg::Const(t), Arg::Iv(b)) if matches!(node.op, Op::Mul) => (b, t.clone()),
                _ => {
                    return Err(unsupported(
                        node,
                        "only products and quotients by constants are supported",
                    ))
                }
            };
            let (c, r) = x.mid_rad()?;
            let (c2, r2) = if matches!(node.op, Op::Mul) {
                (c.broadcast_mul(&k)?, r.broadcast_mul(&k.abs()?)?)
            } else {
                (c.broadcast_div(&k)?, r.broadcast_div(&k.abs()?)?)
            };
            Bounds::from_mid_rad(&c2, &r2)?
        }
        Op::BatchNorm { epsilon } => {
            let x = iv(0)?;
            let p = consts(1)?;
            let (c, r) = x.mid_rad()?;
            let c2 = op1(&c, &p)?;
            let k = p[0].div(&(&p[3] + *epsilon as f64)?.sqrt()?)?;
            let mut shape = vec![1, k.elem_count()];
            shape.extend(std::iter::repeat_n(1, c.rank() - 2));
            let r2 = r.broadcast_mul(&k.abs()?.reshape(shape)?)?;
            Bounds::from_mid_rad(&c2, &r2)?
        }
        Op::LeakyRelu { alpha } if *alpha < 0.0 => {
            return Err(unsupported(node, "a negative slope is not monotone"))
        }
        Op::Relu
        | Op::LeakyRelu { .. }
        | Op::Clip { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::MaxPool(_)
        | Op::AveragePool { .. }
        | Op::GlobalAveragePool
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Pad { .. }
        | Op::Identity => {
            let x = iv(0)?;
            let p = consts(1)?;
            x.monotone(|t| op1(t, &p))?
        }
        Op::Concat { .. } => {
            let parts: Vec<&Bounds> = (0..args.len()).map(iv).collect::<Result<_>>()?;
            let lo: Vec<Tensor> = parts.iter().map(|b| b.lower.clone()).collect();
            let hi: Vec<Tensor> = parts.iter().map(|b| b.upper.clone()).collect();
            Bounds {
                lower: apply(node, &lo)?,
                upper: apply(node, &hi)?,
            }
        }
        Op::Softmax { .. } => return Err(unsupported(node, "")),
    })
}

/// Interval bounds of every value up to (not including) node `stop` (all nodes when None).
fn walk(
    graph: &Graph,
    params: &[Tensor],
    input: Bounds,
    stop: Option<usize>,
) -> Result<Vec<Option<Bounds>>> {
    let mut vals: Vec<Option<Bounds>> = vec![None; graph.values.len()];
    vals[ruse_graph::INPUT] = Some(input);
    let end = stop.unwrap_or(graph.nodes.len());
    for node in &graph.nodes[..end] {
        let args = node
            .inputs
            .iter()
            .map(|o| match o {
                Operand::Value(v) => vals[*v].clone().map(Arg::Iv).ok_or_else(|| {
                    TrainError::Config(format!("node '{}' reads an unknown value", node.name))
                }),
                Operand::Param(p) => Ok(Arg::Const(params[*p].clone())),
            })
            .collect::<Result<Vec<_>>>()?;
        let out = propagate(node, &args).map_err(|e| match e {
            TrainError::Tensor(t) => TrainError::Config(format!(
                "certified training: node '{}' ({}): {t}",
                node.name,
                node.op.onnx_type()
            )),
            e => e,
        })?;
        vals[node.output] = Some(out);
    }
    Ok(vals)
}

/// The input box: the L∞ ball of radius `eps` around `x`, clipped to the model's input domain.
pub fn input_box(graph: &Graph, x: &Tensor, eps: f32) -> Result<Bounds> {
    let (lo, hi) = graph.input_domain;
    let x = x.detach();
    Ok(Bounds {
        lower: (&x - eps as f64)?.clamp(lo, hi)?,
        upper: (&x + eps as f64)?.clamp(lo, hi)?,
    })
}

/// Interval bounds of the graph output for inputs in `input` (f32, differentiable in `params`).
pub fn output_bounds(graph: &Graph, params: &[Tensor], input: Bounds) -> Result<Bounds> {
    let mut vals = walk(graph, params, input, None)?;
    vals[graph.output]
        .take()
        .ok_or_else(|| TrainError::Config("the interval pass did not reach the output".into()))
}

/// Lower bounds `[B, K]` of the margins z_y − z_j over `input` (0 at j = y), with the last node
/// folded into the specification when it is a Gemm on constant weights.
pub fn margin_lower_bounds(
    graph: &Graph,
    params: &[Tensor],
    input: Bounds,
    y: &Tensor,
) -> Result<Tensor> {
    let k = graph.output_len();
    let last = graph.nodes.iter().rposition(|n| n.output == graph.output);
    if let Some(li) = last {
        let node = &graph.nodes[li];
        if let (
            Op::Gemm {
                alpha,
                beta,
                trans_b,
            },
            [Operand::Value(h), Operand::Param(wp), rest @ ..],
        ) = (&node.op, node.inputs.as_slice())
        {
            let vals = walk(graph, params, input, Some(li))?;
            let hb = vals[*h].as_ref().ok_or_else(|| {
                TrainError::Config("the interval pass did not reach the last layer".into())
            })?;
            let w = &params[*wp];
            // W_eff: [K, n] with z = h·W_effᵀ + b_eff.
            let w = if *trans_b { w.clone() } else { w.t()? };
            let w = (w * *alpha as f64)?;
            let bias = match rest {
                [Operand::Param(cp)] => Some((params[*cp].flatten_all()? * *beta as f64)?),
                [] => None,
                _ => return Err(unsupported(node, "the bias must be a constant")),
            };
            if bias.as_ref().is_some_and(|b| b.elem_count() != k) {
                return Err(unsupported(node, "the bias must have one entry per class"));
            }
            let b = y.dim(0)?;
            let wy = w.index_select(y, 0)?; // [B, n]
            let wc = wy.unsqueeze(1)?.broadcast_sub(&w.unsqueeze(0)?)?; // [B, K, n]
            let (c, r) = hb.mid_rad()?;
            let c = c.reshape((b, (), 1))?;
            let r = r.reshape((b, (), 1))?;
            let mut lo = (wc.matmul(&c)? - wc.abs()?.matmul(&r)?)?.squeeze(2)?; // [B, K]
            if let Some(bias) = bias {
                let by = bias.index_select(y, 0)?; // [B]
                let bc = by.unsqueeze(1)?.broadcast_sub(&bias.unsqueeze(0)?)?;
                lo = (lo + bc)?;
            }
            return Ok(lo);
        }
    }
    let out = output_bounds(graph, params, input)?;
    let b = y.dim(0)?;
    let (lo, hi) = (out.lower.reshape((b, k))?, out.upper.reshape((b, k))?);
    let ly = lo.gather(&y.unsqueeze(1)?, 1)?; // [B, 1]
    let m = ly.broadcast_sub(&hi)?;
    let keep = (Tensor::ones((b, k), DType::F32, &Device::Cpu)? - one_hot(y, k)?)?;
    Ok((m * keep)?)
}

fn one_hot(y: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let ys: Vec<u32> = y.to_vec1()?;
    let mut v = vec![0f32; ys.len() * k];
    for (i, &c) in ys.iter().enumerate() {
        v[i * k + c as usize] = 1.0;
    }
    Tensor::from_vec(v, (ys.len(), k), &Device::Cpu)
}

/// IBP loss of one batch: κ·CE(clean) + (1 − κ)·CE(worst-case logits), its clean logits and the
/// parameter gradients (candle autodiff through both passes; `params` hold the `Var`s).
pub(crate) fn ibp_loss(
    graph: &Graph,
    params: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    eps: f32,
    kappa: f32,
) -> Result<(Tensor, Tensor, Gradients)> {
    let logits = graph.forward_with(params, x)?;
    let mut loss = (cross_entropy(&logits, y)? * kappa as f64)?;
    if kappa < 1.0 {
        let m = margin_lower_bounds(graph, params, input_box(graph, x, eps)?, y)?;
        let robust = cross_entropy(&m.neg()?, y)?;
        loss = (loss + (robust * (1.0 - kappa) as f64)?)?;
    }
    let store = loss.backward()?;
    let trainable = graph.trainable_params();
    let mut grads = vec![None; params.len()];
    for i in trainable {
        grads[i] = store.get(&params[i]).cloned();
    }
    Ok((
        logits.detach(),
        loss.detach(),
        Gradients {
            input: None,
            params: grads,
        },
    ))
}

/// κ after ramp factor `t`: linear from 1 down to `kappa_end`.
pub fn kappa_at(kappa_end: f32, t: f32) -> f32 {
    1.0 - t * (1.0 - kappa_end)
}

/// Verified accuracy at L∞ radius `eps` by ruse-verify's sound f64 IBP: a sample counts when it
/// is classified correctly and the lower bound of z_y exceeds the upper bound of every other z_j
/// over the ε-ball ∩ the input domain.
pub fn verified_accuracy(
    graph: &Graph,
    data: &Dataset,
    eps: f32,
    batch_size: usize,
) -> Result<f64> {
    use ruse_verify::ibp::{ibp_batch, Interval};
    check_fit(graph, data)?;
    if data.is_empty() {
        return Ok(0.0);
    }
    let (dlo, dhi) = graph.input_domain;
    let k = graph.output_len();
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut ok = 0usize;
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = crate::batch::batch(data, chunk, &Device::Cpu)?;
        let pred: Vec<u32> = graph.forward(&x)?.argmax(D::Minus1)?.to_vec1()?;
        let x = x.to_dtype(DType::F64)?;
        let input = Interval {
            lower: (&x - eps as f64)?.clamp(dlo as f64, dhi as f64)?,
            upper: (&x + eps as f64)?.clamp(dlo as f64, dhi as f64)?,
        };
        let vals = ibp_batch(graph, input)
            .map_err(|e| TrainError::Config(format!("verified validation: {e}")))?;
        let out = vals[graph.output]
            .as_ref()
            .ok_or_else(|| TrainError::Config("IBP did not reach the output".into()))?;
        let lo: Vec<f64> = out.lower.flatten_all()?.to_vec1()?;
        let hi: Vec<f64> = out.upper.flatten_all()?.to_vec1()?;
        let ys: Vec<u32> = y.to_vec1()?;
        for (i, &yi) in ys.iter().enumerate() {
            let yi = yi as usize;
            let ly = lo[i * k + yi];
            if pred[i] as usize == yi && (0..k).all(|j| j == yi || ly > hi[i * k + j]) {
                ok += 1;
            }
        }
    }
    Ok(ok as f64 / data.len() as f64)
}

/// The trainable parameters as `Var`s in a full parameter list (helper for tests and callers).
pub fn with_vars(graph: &Graph) -> Result<(Vec<Tensor>, Vec<Var>)> {
    let mut params = graph.param_tensors();
    let mut vars = Vec::new();
    for i in graph.trainable_params() {
        let v = Var::from_tensor(&params[i])?;
        params[i] = v.as_tensor().clone();
        vars.push(v);
    }
    Ok((params, vars))
}
