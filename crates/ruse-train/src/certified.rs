//! Certified training: IBP (Gowal et al. 2018, "On the Effectiveness of Interval Bound
//! Propagation for Training Verifiably Robust Models") and CROWN-IBP (Zhang et al. 2020).
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
//! CROWN-IBP (Zhang et al. 2020) replaces the margin bounds by β·CROWN + (1 − β)·IBP, the CROWN
//! part one backward linear-relaxation pass from the margins with every ReLU relaxed on its IBP
//! bounds ([`crown_ibp_margins`]); β goes from 1 to 0 with the ramp.
//!
//! These bounds are for training only (f32, not widened for rounding); verified accuracy is
//! measured with ruse-verify's sound f64 bounds ([`verified_accuracy`]).

use candle_core::{DType, Device, Tensor, Var, D};
use ruse_data::Dataset;
use ruse_graph::backward::{detached_grad, Gradients};
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

/// IBP / CROWN-IBP loss of one batch: κ·CE(clean) + (1 − κ)·CE(worst-case logits), its clean
/// logits and the parameter gradients (candle autodiff through both passes; `params` hold the
/// `Var`s). The margin bounds are β·CROWN-IBP + (1 − β)·IBP (`beta` = 0: IBP alone).
pub(crate) fn ibp_loss(
    graph: &Graph,
    params: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    eps: f32,
    kappa: f32,
    beta: f32,
) -> Result<(Tensor, Tensor, Gradients)> {
    let logits = graph.forward_with(params, x)?;
    let mut loss = (cross_entropy(&logits, y)? * kappa as f64)?;
    if kappa < 1.0 {
        let input = input_box(graph, x, eps)?;
        let mut m = margin_lower_bounds(graph, params, input.clone(), y)?;
        if beta > 0.0 {
            let mc = crown_ibp_margins(graph, params, input, y)?;
            m = ((mc * beta as f64)? + (m * (1.0 - beta) as f64)?)?;
        }
        let robust = cross_entropy(&m.neg()?, y)?;
        loss = (loss + (robust * (1.0 - kappa) as f64)?)?;
    }
    let store = loss.backward()?;
    let trainable = graph.trainable_params();
    let mut grads = vec![None; params.len()];
    for i in trainable {
        grads[i] = detached_grad(&store, &params[i]);
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

/// Verified accuracy at L∞ radius `eps` by ruse-verify's sound f64 bounds: a sample counts when
/// it is classified correctly and every margin z_y − z_j is proved positive over the ε-ball ∩ the
/// input domain, by interval bounds of the output (IBP) or, for the samples IBP leaves open, by
/// one CROWN pass on the margins with interval intermediate bounds (CROWN-IBP; this also covers
/// what the folded last layer of the training bound proves).
pub fn verified_accuracy(
    graph: &Graph,
    data: &Dataset,
    eps: f32,
    batch_size: usize,
) -> Result<f64> {
    use ruse_verify::crown::{compute_bounds, crown_spec, Dual, Intermediate};
    use ruse_verify::ibp::{ibp_batch, Interval};
    check_fit(graph, data)?;
    if data.is_empty() {
        return Ok(0.0);
    }
    let verr =
        |e: ruse_verify::ibp::BoundError| TrainError::Config(format!("verified validation: {e}"));
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
        let vals = ibp_batch(graph, input.clone()).map_err(verr)?;
        let out = vals[graph.output]
            .as_ref()
            .ok_or_else(|| TrainError::Config("IBP did not reach the output".into()))?;
        let lo: Vec<f64> = out.lower.flatten_all()?.to_vec1()?;
        let hi: Vec<f64> = out.upper.flatten_all()?.to_vec1()?;
        let ys: Vec<u32> = y.to_vec1()?;
        // Correct but not proved by IBP, grouped by label (one specification per label).
        let mut open: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &yi) in ys.iter().enumerate() {
            let yi = yi as usize;
            if pred[i] as usize != yi {
                continue;
            }
            let ly = lo[i * k + yi];
            if (0..k).all(|j| j == yi || ly > hi[i * k + j]) {
                ok += 1;
            } else {
                open[yi].push(i);
            }
        }
        for (label, rows) in open.iter().enumerate() {
            if rows.is_empty() || k < 2 {
                continue;
            }
            let sel = Tensor::from_vec(
                rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                rows.len(),
                &Device::Cpu,
            )?;
            let sub = Interval {
                lower: input.lower.index_select(&sel, 0)?,
                upper: input.upper.index_select(&sel, 0)?,
            };
            let mut c = vec![0f64; (k - 1) * k];
            for (r, j) in (0..k).filter(|&j| j != label).enumerate() {
                c[r * k + label] = 1.0;
                c[r * k + j] = -1.0;
            }
            let c = Tensor::from_vec(c, (k - 1, k), &Device::Cpu)?;
            let d = Tensor::zeros(k - 1, DType::F64, &Device::Cpu)?;
            let bounds = compute_bounds(graph, &sub, Intermediate::Ibp).map_err(verr)?;
            let (lb, _) =
                crown_spec(graph, &bounds, &sub, &c, &d, &Dual::default()).map_err(verr)?;
            let lb: Vec<Vec<f64>> = lb.to_vec2()?;
            ok += lb.iter().filter(|r| r.iter().all(|&v| v > 0.0)).count();
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

/// CROWN-IBP (Zhang et al. 2020, "Towards Stable and Efficient Training of Verifiably Robust
/// Neural Networks"): lower bounds `[B, K]` of the margins z_y − z_j over `input` by one CROWN
/// backward pass from the specification C = e_y − e_j, with every ReLU relaxed on its interval
/// (IBP) bounds: upper line the chord u/(u − l)·(x − l), lower line slope 1 when u ≥ −l else 0.
/// Differentiable in `params` (through the weights and through the IBP bounds).
pub fn crown_ibp_margins(
    graph: &Graph,
    params: &[Tensor],
    input: Bounds,
    y: &Tensor,
) -> Result<Tensor> {
    let vals = walk(graph, params, input.clone(), None)?;
    let k = graph.output_len();
    let b = y.dim(0)?;
    // C: [B, K, K], row j = e_y − e_j.
    let eye = Tensor::eye(k, DType::F32, &Device::Cpu)?;
    let ey = one_hot(y, k)?.unsqueeze(1)?; // [B, 1, K]
    let c = ey.broadcast_sub(&eye.unsqueeze(0)?)?; // [B, K, K]
    let mut out_shape = vec![b, k];
    out_shape.extend_from_slice(&graph.values[graph.output].shape);
    let mut coeff: Vec<Option<Tensor>> = vec![None; graph.values.len()];
    coeff[graph.output] = Some(c.reshape(out_shape)?);
    let mut bias = Tensor::zeros((b, k), DType::F32, &Device::Cpu)?;
    for node in graph.nodes.iter().rev() {
        let Some(a) = coeff[node.output].take() else {
            continue;
        };
        let contrib = crown_node(graph, node, params, &vals, &a).map_err(|e| match e {
            TrainError::Tensor(t) => TrainError::Config(format!(
                "CROWN-IBP: node '{}' ({}): {t}",
                node.name,
                node.op.onnx_type()
            )),
            e => e,
        })?;
        bias = (bias + contrib.bias)?;
        for (v, av) in contrib.inputs {
            coeff[v] = Some(match coeff[v].take() {
                Some(prev) => (prev + av)?,
                None => av,
            });
        }
    }
    let a_in = coeff[ruse_graph::INPUT]
        .take()
        .ok_or_else(|| TrainError::Config("CROWN-IBP: the input is not reached".into()))?
        .reshape((b, k, ()))?;
    let (c, r) = input.mid_rad()?;
    let c = c.reshape((b, (), 1))?;
    let r = r.reshape((b, (), 1))?;
    let lo = (a_in.matmul(&c)? - a_in.abs()?.matmul(&r)?)?.squeeze(2)?;
    Ok((lo + bias)?)
}

/// What one node's backward rule hands to its inputs: coefficients per input value, and the
/// constant it adds (`[B, S]`).
struct Contrib {
    inputs: Vec<(usize, Tensor)>,
    bias: Tensor,
}

/// Σ over the non-(B, S) axes of `a * t` (t broadcast against a's trailing axes).
fn dot_rest(a: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
    let (b, s) = (a.dim(0)?, a.dim(1)?);
    a.broadcast_mul(t)?.reshape((b, s, ()))?.sum(2)
}

fn crown_node(
    graph: &Graph,
    node: &Node,
    params: &[Tensor],
    vals: &[Option<Bounds>],
    a: &Tensor,
) -> Result<Contrib> {
    let dims = a.dims().to_vec();
    let (b, s) = (dims[0], dims[1]);
    let zero = || Tensor::zeros((b, s), DType::F32, &Device::Cpu);
    let value = |i: usize| match node.inputs.get(i) {
        Some(Operand::Value(v)) => Some(*v),
        _ => None,
    };
    let param = |i: usize| match node.inputs.get(i) {
        Some(Operand::Param(p)) => Some(params[*p].clone()),
        _ => None,
    };
    let in_shape = |v: usize| -> Vec<usize> {
        let mut sh = vec![b, s];
        sh.extend_from_slice(&graph.values[v].shape);
        sh
    };
    let need = |what: &str| {
        TrainError::Config(format!(
            "CROWN-IBP: node '{}' ({}): {what}",
            node.name,
            node.op.onnx_type()
        ))
    };
    let x = value(0).ok_or_else(|| need("the first operand must be a run-time value"))?;
    Ok(match &node.op {
        Op::Gemm {
            alpha,
            beta,
            trans_b,
        } => {
            let w = param(1).ok_or_else(|| need("constant weights"))?;
            let w = if *trans_b { w } else { w.t()? }; // [K, n]
            let w = (w * *alpha as f64)?;
            let a2 = a.reshape((b * s, ()))?;
            let ax = a2.matmul(&w)?.reshape(in_shape(x))?;
            let bias = match param(2) {
                Some(c) => {
                    let c = (c.flatten_all()? * *beta as f64)?;
                    a2.matmul(&c.unsqueeze(1)?)?.reshape((b, s))?
                }
                None => zero()?,
            };
            Contrib {
                inputs: vec![(x, ax)],
                bias,
            }
        }
        Op::MatMul => {
            let w = param(1).ok_or_else(|| need("a constant right operand"))?;
            if w.rank() != 2 || graph.values[x].shape.len() != 1 {
                return Err(need("only vector × matrix products are supported"));
            }
            let ax = a
                .reshape((b * s, ()))?
                .matmul(&w.t()?)?
                .reshape(in_shape(x))?;
            Contrib {
                inputs: vec![(x, ax)],
                bias: zero()?,
            }
        }
        Op::Conv(attrs) => {
            let w = param(1).ok_or_else(|| need("constant weights"))?;
            let [pt, pl, pb, pr] = attrs.pads;
            if attrs.groups != 1 || pt != pb || pl != pr || pt != pl {
                return Err(need("grouped or asymmetric-padding convolutions"));
            }
            if attrs.stride[0] != attrs.stride[1] || attrs.dilation[0] != attrs.dilation[1] {
                return Err(need("unequal strides or dilations"));
            }
            let (st, dl) = (attrs.stride[0], attrs.dilation[0]);
            let ish = &graph.values[x].shape; // [Ci, Hi, Wi]
            let osh = &graph.values[node.output].shape; // [Co, Ho, Wo]
            let kh = w.dim(2)?;
            let full = (osh[1] - 1) * st + dl * (kh - 1) + 1;
            let out_pad = (ish[1] + 2 * pt).checked_sub(full).unwrap_or(usize::MAX);
            let full_w = (osh[2] - 1) * st + dl * (w.dim(3)? - 1) + 1;
            let out_pad_w = (ish[2] + 2 * pl).checked_sub(full_w).unwrap_or(usize::MAX);
            if out_pad != out_pad_w || out_pad >= st.max(1) {
                return Err(need("this convolution geometry"));
            }
            let a2 = a.reshape((b * s, osh[0], osh[1], osh[2]))?;
            let ax = a2
                .conv_transpose2d(&w, pt, out_pad, st, dl)?
                .reshape(in_shape(x))?;
            let bias = match param(2) {
                Some(c) => dot_rest(a, &c.reshape((osh[0], 1, 1))?)?,
                None => zero()?,
            };
            Contrib {
                inputs: vec![(x, ax)],
                bias,
            }
        }
        Op::Add | Op::Sub => {
            let sign = if matches!(node.op, Op::Sub) { -1.0 } else { 1.0 };
            let mut inputs = vec![];
            let mut bias = zero()?;
            for (i, sg) in [(0usize, 1.0f64), (1, sign)] {
                match node.inputs[i] {
                    Operand::Value(v) => inputs.push((v, (a * sg)?.reshape(in_shape(v))?)),
                    Operand::Param(p) => {
                        bias = (bias + (dot_rest(a, &params[p])? * sg)?)?;
                    }
                }
            }
            // A broadcast value operand would need its coefficients summed; refuse it.
            for (v, _) in &inputs {
                if graph.values[*v].shape != graph.values[node.output].shape {
                    return Err(need("broadcasting between run-time values"));
                }
            }
            Contrib { inputs, bias }
        }
        Op::Mul | Op::Div => {
            let k = param(1).ok_or_else(|| need("a constant second operand"))?;
            let ax = if matches!(node.op, Op::Mul) {
                a.broadcast_mul(&k)?
            } else {
                a.broadcast_div(&k)?
            };
            if ax.dims() != in_shape(x).as_slice() {
                return Err(need("a constant that broadcasts the value"));
            }
            Contrib {
                inputs: vec![(x, ax)],
                bias: zero()?,
            }
        }
        Op::BatchNorm { epsilon } => {
            let p: Vec<Tensor> = (1..5)
                .map(|i| param(i).ok_or_else(|| need("constant statistics")))
                .collect::<Result<_>>()?;
            let kk = p[0].div(&(&p[3] + *epsilon as f64)?.sqrt()?)?;
            let bb = p[1].sub(&p[2].mul(&kk)?)?;
            let mut shape = vec![kk.elem_count()];
            shape.extend(std::iter::repeat_n(1, graph.values[x].shape.len() - 1));
            let (kk, bb) = (kk.reshape(shape.clone())?, bb.reshape(shape)?);
            Contrib {
                inputs: vec![(x, a.broadcast_mul(&kk)?)],
                bias: dot_rest(a, &bb)?,
            }
        }
        Op::Relu => {
            let iv = vals[x].as_ref().ok_or_else(|| need("bounds of the input"))?;
            let (l, u) = (iv.lower.unsqueeze(1)?, iv.upper.unsqueeze(1)?); // [B, 1, …]
            let zl = l.zeros_like()?;
            let active = l.ge(&zl)?.to_dtype(DType::F32)?;
            let unstable = l.lt(&zl)?.mul(&u.gt(&zl)?)?.to_dtype(DType::F32)?;
            let width = (&u - &l)?.maximum(1e-12)?;
            let k = (u.div(&width)? * &unstable)?;
            let up_slope = (&active + &k)?;
            let up_icpt = (l.neg()? * &k)?;
            let low_slope =
                (&active + u.ge(&l.neg()?)?.to_dtype(DType::F32)?.mul(&unstable)?)?;
            let pos = a.relu()?;
            let neg = a.minimum(0.0)?;
            let ax = (pos.broadcast_mul(&low_slope)? + neg.broadcast_mul(&up_slope)?)?;
            Contrib {
                inputs: vec![(x, ax)],
                bias: dot_rest(&neg, &up_icpt)?,
            }
        }
        Op::Reshape { .. } | Op::Identity => Contrib {
            inputs: vec![(x, a.reshape(in_shape(x))?)],
            bias: zero()?,
        },
        Op::GlobalAveragePool => {
            let sh = in_shape(x);
            let n: usize = sh[3..].iter().product();
            let ax = (a.broadcast_as(sh.as_slice())? / n as f64)?.contiguous()?;
            Contrib {
                inputs: vec![(x, ax)],
                bias: zero()?,
            }
        }
        _ => {
            return Err(need(
                "no backward rule (CROWN-IBP supports Conv, Gemm, MatMul, Add/Sub/Mul/Div by \
                 constants, Relu, Reshape/Flatten, BatchNorm, GlobalAveragePool); use --defense ibp",
            ))
        }
    })
}
