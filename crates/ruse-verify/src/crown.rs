//! Linear bound propagation: CROWN (Zhang et al. 2018), α-CROWN (Xu et al. 2021) and the split
//! constraints of β-CROWN (Wang et al. 2021), one backward rule per op over the generic graph.
//!
//! A lower bound of `A·v` for a value `v` is found by walking the graph backward from `v`: every op
//! maps the coefficients on its output to coefficients on its inputs plus a constant; every
//! nonlinearity is replaced by linear lines that bound it on its input interval (the lower line
//! where the coefficient is positive, the upper line where it is negative). At the input the
//! linear function is minimised over the box exactly.
//!
//! Everything is batched: tensors carry a leading domain axis `B` (sub-boxes, or branch-and-bound
//! sub-problems) and a spec axis `S` (the rows of `A`), so coefficients have shape
//! `[B, S, value shape…]`.
//!
//! Soundness in floating point. ruse's f32 forward pass differs from the exact network by the
//! rounding of each op; every op that rounds gets an allowance δ (the standard γ_n bound for dot
//! products, 2u for elementwise ops, computed from interval bounds on its inputs) and is treated
//! as `exact + e` with `|e| ≤ δ`, which costs `|A|·δ` in the bound. Bounds themselves are
//! computed in f64 (relative error ~1e-16 per op); the final bound is lowered by 1e-9 of the
//! magnitude of its terms, seven orders of magnitude above that rounding.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ruse_graph::{Graph, Op, Operand, ValueId};

use crate::ibp::{f64t, gamma, ibp_node, unsupported, BoundError, Interval, U};

/// Linear lines bounding an elementwise nonlinearity on its input interval:
/// `lower_slope·x + lower_icpt ≤ f(x) ≤ upper_slope·x + upper_icpt`.
#[derive(Debug, Clone)]
pub struct Relaxation {
    /// Slope of the lower line.
    pub lower_slope: Tensor,
    /// Intercept of the lower line.
    pub lower_icpt: Tensor,
    /// Slope of the upper line.
    pub upper_slope: Tensor,
    /// Intercept of the upper line.
    pub upper_icpt: Tensor,
    /// ReLU only: 1 where the neuron is unstable (l < 0 < u), so that any lower slope in [0, 1]
    /// is sound there (what α-CROWN optimises).
    pub unstable: Option<Tensor>,
}

/// Everything one backward pass needs: value bounds, the relaxation of each nonlinear node and
/// the rounding allowance of each rounding node's output.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Interval of every value reached (batched).
    pub values: Vec<Option<Interval>>,
    /// Relaxation per nonlinear node (by node index).
    pub relax: HashMap<usize, Relaxation>,
    /// f32 rounding allowance δ of each node output that rounds (by value id), ≥ 0.
    pub allowance: Vec<Option<Tensor>>,
}

/// Which method computes the bounds of the inputs of nonlinear nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intermediate {
    /// Interval bounds only (CROWN-IBP style).
    Ibp,
    /// A CROWN backward pass per nonlinear layer (tighter, costs one pass per layer).
    Crown,
    /// CROWN per layer with the ReLU slopes optimised for each layer's bounds (α-CROWN on the
    /// intermediate layers too: tightest, costs `iterations` passes per layer).
    Alpha {
        /// Gradient steps per layer.
        iterations: usize,
    },
}

/// Whether the op is an elementwise nonlinearity with a relaxation here.
pub fn is_nonlinear(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu | Op::LeakyRelu { .. } | Op::Clip { .. } | Op::Sigmoid | Op::Tanh
    )
}

fn value_of(o: &Operand) -> Option<ValueId> {
    match o {
        Operand::Value(v) => Some(*v),
        Operand::Param(_) => None,
    }
}

/// Sum over every axis after the first two: `[B, S, …] → [B, S]`.
fn sum_tail(t: &Tensor) -> candle_core::Result<Tensor> {
    let (b, s) = (t.dim(0)?, t.dim(1)?);
    t.reshape((b, s, ()))?.sum(2)
}

/// `[1, 1, shape…]` view of a constant broadcast to the per-sample `shape`.
fn const_full(c: &Tensor, shape: &[usize]) -> candle_core::Result<Tensor> {
    let mut full = vec![1usize];
    full.extend_from_slice(shape);
    let c = f64t(c)?;
    let c = if c.rank() > full.len() {
        // A constant with extra leading 1s (e.g. [1, 1, 1, 5] for a [N, 5] value).
        c.reshape(c.dims()[c.rank() - full.len()..].to_vec())?
    } else {
        c
    };
    let mut out = vec![1usize, 1];
    out.extend_from_slice(shape);
    c.broadcast_as(full)?.contiguous()?.reshape(out)
}

fn max_abs(i: &Interval) -> candle_core::Result<Tensor> {
    i.lower.abs()?.maximum(&i.upper.abs()?)
}

/// The f32 rounding allowance δ of `node`'s output, from interval bounds of its inputs.
fn allowance(
    graph: &Graph,
    node: &ruse_graph::Node,
    vals: &[Option<Interval>],
) -> Result<Option<Tensor>, BoundError> {
    let param = |o: &Operand| -> candle_core::Result<Option<Tensor>> {
        match o {
            Operand::Param(p) => f64t(&graph.params[*p].tensor).map(Some),
            Operand::Value(_) => Ok(None),
        }
    };
    let xin = |k: usize| {
        node.inputs
            .get(k)
            .and_then(value_of)
            .and_then(|v| vals[v].clone())
    };
    let out = vals[node.output].clone();
    let d = match &node.op {
        Op::Gemm {
            alpha,
            beta,
            trans_b,
        } => {
            let (Some(x), Some(w)) = (xin(0), param(&node.inputs[1])?) else {
                return Ok(None);
            };
            let w = if *trans_b { w.t()? } else { w };
            let w = (w * *alpha as f64)?.abs()?;
            let mut e = max_abs(&x)?.matmul(&w)?;
            if let Some(c) = node.inputs.get(2).map(&param).transpose()?.flatten() {
                e = e.broadcast_add(&(c.abs()? * beta.abs() as f64)?)?;
            }
            Some((e * gamma(w.dim(0)?))?)
        }
        Op::MatMul => {
            let (Some(x), Some(w)) = (xin(0), param(&node.inputs[1])?) else {
                return Ok(None);
            };
            Some((max_abs(&x)?.broadcast_matmul(&w.abs()?)? * gamma(w.dim(0)?))?)
        }
        Op::Conv(a) => {
            let (Some(x), Some(w)) = (xin(0), param(&node.inputs[1])?) else {
                return Ok(None);
            };
            let xm = max_abs(&x)?
                .pad_with_zeros(2, a.pads[0], a.pads[2])?
                .pad_with_zeros(3, a.pads[1], a.pads[3])?;
            let mut e = xm.conv2d(&w.abs()?, 0, a.stride[0], a.dilation[0], a.groups)?;
            if let Some(b) = node.inputs.get(2).map(&param).transpose()?.flatten() {
                e = e.broadcast_add(&b.abs()?.reshape((1, b.elem_count(), 1, 1))?)?;
            }
            let fan_in: usize = w.dims()[1..].iter().product();
            Some((e * gamma(fan_in))?)
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div => {
            let Some(o) = out else { return Ok(None) };
            Some(((max_abs(&o)? * (2.0 * U))? + 1e-38)?)
        }
        Op::BatchNorm { epsilon } => {
            let (Some(x), Some(scale), Some(bias), Some(mean), Some(var)) = (
                xin(0),
                param(&node.inputs[1])?,
                param(&node.inputs[2])?,
                param(&node.inputs[3])?,
                param(&node.inputs[4])?,
            ) else {
                return Ok(None);
            };
            let k = scale.div(&(var + *epsilon as f64)?.sqrt()?)?;
            let mut shape = vec![1, k.elem_count()];
            shape.extend(std::iter::repeat_n(1, x.lower.rank() - 2));
            let slack = (bias.abs()? + mean.abs()?.mul(&k.abs()?)?)?.reshape(shape.clone())?;
            let k = k.reshape(shape)?;
            Some(
                (max_abs(&x)?
                    .broadcast_mul(&k.abs()?)?
                    .broadcast_add(&slack)?
                    * (16.0 * U))?,
            )
        }
        Op::GlobalAveragePool => {
            let Some(x) = xin(0) else { return Ok(None) };
            let d = x.lower.dims().to_vec();
            let s: usize = d[2..].iter().product();
            let mut o = vec![d[0], d[1]];
            o.extend(std::iter::repeat_n(1, d.len() - 2));
            let m = max_abs(&x)?
                .reshape((d[0], d[1], s))?
                .mean_keepdim(2)?
                .reshape(o)?;
            Some((m * (gamma(s) + U))?)
        }
        Op::Pad { value, .. } if *value != 0.0 => {
            let Some(o) = out else { return Ok(None) };
            Some(((max_abs(&o)? + (*value as f64).abs())? * (4.0 * U))?)
        }
        _ => None,
    };
    Ok(d)
}

/// Relaxation of a nonlinear node on its input interval.
pub fn relax(op: &Op, x: &Interval) -> candle_core::Result<Relaxation> {
    let (l, u) = (&x.lower, &x.upper);
    if let Some(c) = SCurve::of(op) {
        return best_lines(l, u, &c.f, &c.df, &c.crit, S_CURVE_REL_ERR);
    }
    match op {
        Op::Relu => {
            let zero = l.zeros_like()?;
            let active = l.ge(&zero)?.to_dtype(DType::F64)?;
            let unstable = l.lt(&zero)?.mul(&u.gt(&zero)?)?.to_dtype(DType::F64)?;
            let width = (u - l)?.maximum(1e-300)?;
            let k = (u / width)?.mul(&unstable)?;
            let upper_slope = (&active + &k)?;
            let upper_icpt = (l.neg()? * &k)?;
            // Adaptive lower slope (CROWN): 1 when u ≥ −l, else 0.
            let adaptive = u.ge(&l.neg()?)?.to_dtype(DType::F64)?.mul(&unstable)?;
            Ok(Relaxation {
                lower_slope: (&active + adaptive)?,
                lower_icpt: zero.clone(),
                upper_slope,
                upper_icpt,
                unstable: Some(unstable),
            })
        }
        Op::LeakyRelu { alpha } => {
            let a = *alpha as f64;
            let f =
                |t: &Tensor| -> candle_core::Result<Tensor> { t.relu()? - (t.neg()?.relu()? * a)? };
            // One f32 multiply on the negative side.
            chord(l, u, &f, &[l.zeros_like()?], 2.0 * U)
        }
        Op::Clip { min, max } => {
            let (a, b) = (*min as f64, *max as f64);
            let f = |t: &Tensor| t.clamp(a, b);
            chord(
                l,
                u,
                &f,
                &[(l.zeros_like()? + a)?, (l.zeros_like()? + b)?],
                0.0,
            )
        }
        other => Err(candle_core::Error::Msg(format!(
            "no relaxation for {}",
            other.onnx_type()
        ))),
    }
}

/// Relative error of the f32 evaluation of sigmoid and tanh, allowed for in their lines.
const S_CURVE_REL_ERR: f64 = 8.0 * U;

/// An S-shaped activation (sigmoid, tanh): the function, its derivative, the points where the
/// derivative equals a given slope, and the range of slopes worth optimising.
pub(crate) struct SCurve {
    f: fn(&Tensor) -> candle_core::Result<Tensor>,
    df: fn(&Tensor) -> candle_core::Result<Tensor>,
    crit: fn(&Tensor) -> candle_core::Result<Vec<Tensor>>,
    /// Largest derivative (at 0); slopes are optimised inside (0, max_slope).
    max_slope: f64,
}

fn sigmoid(t: &Tensor) -> candle_core::Result<Tensor> {
    (t.neg()?.exp()? + 1.0)?.recip()
}

fn sigmoid_df(t: &Tensor) -> candle_core::Result<Tensor> {
    let y = sigmoid(t)?;
    y.mul(&(y.neg()? + 1.0)?)
}

/// σ' = σ(1−σ) = k at σ = (1 ± √(1−4k))/2, i.e. x = ±logit((1+√(1−4k))/2).
fn sigmoid_crit(k: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    let s = (((k * -4.0)? + 1.0)?.relu()?.sqrt()? + 1.0)?.affine(0.5, 0.0)?;
    let s = s.clamp(1e-300, 1.0 - 1e-16)?;
    let x1 = (s.log()? - (s.neg()? + 1.0)?.log()?)?;
    Ok(vec![x1.clone(), x1.neg()?])
}

fn tanh(t: &Tensor) -> candle_core::Result<Tensor> {
    t.tanh()
}

fn tanh_df(t: &Tensor) -> candle_core::Result<Tensor> {
    t.tanh()?.sqr()?.neg()? + 1.0
}

/// tanh' = 1 − tanh² = k at tanh = ±√(1−k).
fn tanh_crit(k: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    let t = ((k.neg()? + 1.0)?.relu()?.sqrt()?).clamp(0.0, 1.0 - 1e-16)?;
    let x1 = ((((&t + 1.0)? / (t.neg()? + 1.0)?)?.log()?) * 0.5)?;
    Ok(vec![x1.clone(), x1.neg()?])
}

impl SCurve {
    /// The curve of a sigmoid or tanh node.
    pub(crate) fn of(op: &Op) -> Option<SCurve> {
        match op {
            Op::Sigmoid => Some(SCurve {
                f: sigmoid,
                df: sigmoid_df,
                crit: sigmoid_crit,
                max_slope: 0.25,
            }),
            Op::Tanh => Some(SCurve {
                f: tanh,
                df: tanh_df,
                crit: tanh_crit,
                max_slope: 1.0,
            }),
            _ => None,
        }
    }

    /// Sound lower line of slope `kl` and upper line of slope `ku` on [l, u] (all tensors of
    /// one shape): (lower intercept, upper intercept). Any slope gives sound lines, because the
    /// intercepts come from the extremes of f(x) − k·x over the ends and the critical points.
    fn intercepts(
        &self,
        l: &Tensor,
        u: &Tensor,
        kl: &Tensor,
        ku: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let lo = lines_with_slope(l, u, &self.f, kl, &(self.crit)(kl)?, S_CURVE_REL_ERR)?;
        let hi = lines_with_slope(l, u, &self.f, ku, &(self.crit)(ku)?, S_CURVE_REL_ERR)?;
        Ok((lo.lower_icpt, hi.upper_icpt))
    }
}

fn chord_slope(
    l: &Tensor,
    u: &Tensor,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let w = (u - l)?;
    let wide = w.gt(1e-9)?;
    let k = ((f(u)? - f(l)?)? / w.maximum(1e-9)?)?;
    wide.where_cond(&k, &k.zeros_like()?)
}

/// Lower and upper lines for a smooth S-shaped f: for each candidate slope (the chord, and the
/// tangent slopes at both ends, the middle and the quarter points) the line through the extreme
/// of f(x) − k·x on [l, u] (found among the ends and the points where f' = k, given by `crit`)
/// is sound; the one that is highest (lower line) or lowest (upper line) at the middle of the
/// interval — i.e. the one with the least area between line and f — is kept.
fn best_lines(
    l: &Tensor,
    u: &Tensor,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    df: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    crit: &dyn Fn(&Tensor) -> candle_core::Result<Vec<Tensor>>,
    rel_err: f64,
) -> candle_core::Result<Relaxation> {
    let w = (u - l)?;
    let mid = ((l + u)? * 0.5)?;
    let at = |t: f64| -> candle_core::Result<Tensor> { l + (&w * t)? };
    let mut slopes = vec![chord_slope(l, u, f)?];
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        slopes.push(df(&at(t)?)?);
    }
    let mut best: Option<Relaxation> = None;
    for k in slopes {
        let r = lines_with_slope(l, u, f, &k, &crit(&k)?, rel_err)?;
        best = Some(match best {
            None => r,
            Some(b) => {
                let lo_new = ((&r.lower_slope * &mid)? + &r.lower_icpt)?;
                let lo_old = ((&b.lower_slope * &mid)? + &b.lower_icpt)?;
                let hi_new = ((&r.upper_slope * &mid)? + &r.upper_icpt)?;
                let hi_old = ((&b.upper_slope * &mid)? + &b.upper_icpt)?;
                let take_lo = lo_new.gt(&lo_old)?;
                let take_hi = hi_new.lt(&hi_old)?;
                Relaxation {
                    lower_slope: take_lo.where_cond(&r.lower_slope, &b.lower_slope)?,
                    lower_icpt: take_lo.where_cond(&r.lower_icpt, &b.lower_icpt)?,
                    upper_slope: take_hi.where_cond(&r.upper_slope, &b.upper_slope)?,
                    upper_icpt: take_hi.where_cond(&r.upper_icpt, &b.upper_icpt)?,
                    unstable: None,
                }
            }
        });
    }
    best.ok_or_else(|| candle_core::Error::Msg("no candidate slope".into()))
}

/// Lines of slope `k` through the extremes of f(x) − k·x on [l, u].
fn lines_with_slope(
    l: &Tensor,
    u: &Tensor,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    k: &Tensor,
    critical: &[Tensor],
    rel_err: f64,
) -> candle_core::Result<Relaxation> {
    let g = |x: &Tensor| -> candle_core::Result<Tensor> { f(x)? - (x * k)? };
    let (gl, gu) = (g(l)?, g(u)?);
    let (mut lo, mut hi) = (gl.minimum(&gu)?, gl.maximum(&gu)?);
    let mut fmax = f(l)?.abs()?.maximum(&f(u)?.abs()?)?;
    for c in critical {
        let inside = c.ge(l)?.mul(&c.le(u)?)?;
        let gc = inside.where_cond(&g(c)?, &gl)?;
        lo = lo.minimum(&gc)?;
        hi = hi.maximum(&gc)?;
        fmax = fmax.maximum(&inside.where_cond(&f(c)?.abs()?, &fmax)?)?;
    }
    let xmax = l.abs()?.maximum(&u.abs()?)?;
    let margin = (((fmax * rel_err)? + (xmax.mul(&k.abs()?)? * 1e-12)?)? + 1e-12)?;
    Ok(Relaxation {
        lower_slope: k.clone(),
        lower_icpt: (lo - &margin)?,
        upper_slope: k.clone(),
        upper_icpt: (hi + margin)?,
        unstable: None,
    })
}

/// Two lines of the chord's slope k through the extremes of f(x) − k·x on [l, u], which lie at
/// the ends or at the `critical` points (where f' = k, or the kinks of a piecewise-linear f).
/// `rel_err` is the relative error of the f32 evaluation of f.
fn chord(
    l: &Tensor,
    u: &Tensor,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    critical: &[Tensor],
    rel_err: f64,
) -> candle_core::Result<Relaxation> {
    let k = chord_slope(l, u, f)?;
    lines_with_slope(l, u, f, &k, critical, rel_err)
}

/// Optimisable parts of a backward pass: α (lower ReLU slopes) and β (split multipliers).
#[derive(Default)]
pub struct Dual<'a> {
    /// Per ReLU node: lower slopes `[B, S, shape…]` used where the neuron is unstable.
    pub alpha: Option<&'a HashMap<usize, Tensor>>,
    /// Per ReLU node: (β ≥ 0 `[B, S, shape…]`, split sign `[B, 1, shape…]`: −1 for a neuron
    /// split active (z ≥ 0), +1 split inactive (z ≤ 0), 0 unsplit).
    pub beta: Option<&'a HashMap<usize, (Tensor, Tensor)>>,
    /// Per sigmoid / tanh node: the slopes of its lower and upper lines `[B, S, shape…]`, in
    /// place of the fixed relaxation (their intercepts are recomputed soundly for any slope).
    pub curves: Option<&'a HashMap<usize, (Tensor, Tensor)>>,
    /// Record the coefficients on each ReLU's output (for branching scores).
    pub record: bool,
}

/// Result of one backward pass: `A·v ≥ a_in·x + bias` for every x in the input set.
pub struct Linear {
    /// Coefficients on the graph input, `[B, S, n_in]`.
    pub a_in: Tensor,
    /// Constant, `[B, S]`.
    pub bias: Tensor,
    /// Sum of the magnitudes of every constant term, `[B, S]` (for the f64 margin).
    pub magnitude: Tensor,
    /// Coefficients on each ReLU node's output (when recorded).
    pub relu_coeffs: HashMap<usize, Tensor>,
}

/// The backward pass from value `start` with coefficients `a0` (`[B, S, shape…]`).
pub fn backward(
    graph: &Graph,
    bounds: &Bounds,
    start: ValueId,
    a0: Tensor,
    dual: &Dual,
) -> Result<Linear, BoundError> {
    let (b, s) = (a0.dim(0)?, a0.dim(1)?);
    let mut acc: Vec<Option<Tensor>> = vec![None; graph.values.len()];
    acc[start] = Some(a0);
    let mut bias = Tensor::zeros((b, s), DType::F64, &Device::Cpu)?;
    let mut mag = bias.clone();
    let mut relu_coeffs = HashMap::new();
    let add = |acc: &mut Vec<Option<Tensor>>, v: ValueId, t: Tensor| -> candle_core::Result<()> {
        acc[v] = Some(match acc[v].take() {
            Some(old) => (old + t)?,
            None => t,
        });
        Ok(())
    };
    let bs_shape = |shape: &[usize]| -> Vec<usize> {
        let mut v = vec![b, s];
        v.extend_from_slice(shape);
        v
    };
    for (idx, node) in graph.nodes.iter().enumerate().rev() {
        let Some(a) = acc[node.output].take() else {
            continue;
        };
        if let Some(d) = &bounds.allowance[node.output] {
            let t = sum_tail(&a.abs()?.broadcast_mul(&d.unsqueeze(1)?)?)?;
            bias = (bias - &t)?;
            mag = (mag + t)?;
        }
        let param = |o: &Operand| -> candle_core::Result<Option<Tensor>> {
            match o {
                Operand::Param(p) => f64t(&graph.params[*p].tensor).map(Some),
                Operand::Value(_) => Ok(None),
            }
        };
        let unsup = |detail: &str| unsupported(&node.name, &node.op, detail);
        let out_shape = &graph.values[node.output].shape;
        let x0 = value_of(&node.inputs[0]);
        let mut add_bias = |t: Tensor| -> candle_core::Result<()> {
            mag = (&mag + t.abs()?)?;
            bias = (&bias + t)?;
            Ok(())
        };
        match &node.op {
            Op::Gemm {
                alpha,
                beta,
                trans_b,
            } => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                let w = param(&node.inputs[1])?.ok_or_else(|| unsup("run-time B"))?;
                // y = x·W' + c with W' = α·op(B) of shape [n_in, n_out]; we need W'ᵀ.
                let wt = if *trans_b { w } else { w.t()?.contiguous()? };
                let wt = (wt * *alpha as f64)?;
                let (n_out, n_in) = wt.dims2()?;
                let a2 = a.reshape((b * s, n_out))?;
                add(&mut acc, x, a2.matmul(&wt)?.reshape((b, s, n_in))?)?;
                if let Some(c) = node.inputs.get(2).map(&param).transpose()?.flatten() {
                    let c = (c.flatten_all()? * *beta as f64)?;
                    let t = if c.elem_count() == 1 {
                        (a.sum_keepdim(2)?.squeeze(2)? * c.to_vec1::<f64>()?[0])?
                    } else {
                        a2.matmul(&c.reshape((n_out, 1))?)?.reshape((b, s))?
                    };
                    add_bias(t)?;
                }
            }
            Op::MatMul => {
                let x = x0.ok_or_else(|| unsup("constant left operand"))?;
                let w = param(&node.inputs[1])?.ok_or_else(|| unsup("run-time right operand"))?;
                if w.rank() != 2 {
                    return Err(unsup("right operand of rank other than 2"));
                }
                let m = w.dim(1)?;
                let rows = a.elem_count() / m;
                let ax = a.reshape((rows, m))?.matmul(&w.t()?.contiguous()?)?;
                add(&mut acc, x, ax.reshape(bs_shape(&graph.values[x].shape))?)?;
            }
            Op::Add | Op::Sub => {
                let sub = matches!(node.op, Op::Sub);
                for (k, o) in node.inputs.iter().enumerate().take(2) {
                    let sign = if sub && k == 1 { -1.0 } else { 1.0 };
                    match o {
                        Operand::Value(v) => {
                            if graph.values[*v].shape != *out_shape {
                                return Err(unsup("broadcast of a run-time operand"));
                            }
                            add(&mut acc, *v, (&a * sign)?)?;
                        }
                        Operand::Param(_) => {
                            let c = const_full(
                                &param(o)?.ok_or_else(|| unsup("constant"))?,
                                out_shape,
                            )?;
                            add_bias((sum_tail(&a.broadcast_mul(&c)?)? * sign)?)?;
                        }
                    }
                }
            }
            Op::Mul | Op::Div => {
                let (v, c) = match (&node.inputs[0], &node.inputs[1]) {
                    (Operand::Value(v), c @ Operand::Param(_)) => (*v, c),
                    (c @ Operand::Param(_), Operand::Value(v)) if matches!(node.op, Op::Mul) => {
                        (*v, c)
                    }
                    _ => return Err(unsup("product of two run-time values")),
                };
                if graph.values[v].shape != *out_shape {
                    return Err(unsup("broadcast of a run-time operand"));
                }
                let c = const_full(&param(c)?.ok_or_else(|| unsup("constant"))?, out_shape)?;
                let c = if matches!(node.op, Op::Div) {
                    c.recip()?
                } else {
                    c
                };
                add(&mut acc, v, a.broadcast_mul(&c)?)?;
            }
            Op::Reshape { .. } | Op::Identity => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                add(&mut acc, x, a.reshape(bs_shape(&graph.values[x].shape))?)?;
            }
            Op::Transpose { perm } => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                // y axis j holds x axis perm[j]; x axis i comes from the y axis j with perm[j] = i.
                let mut inv = vec![0usize, 1];
                for i in 0..perm.len() {
                    let j = perm
                        .iter()
                        .position(|&p| p == i)
                        .ok_or_else(|| unsup("bad perm"))?;
                    inv.push(j + 2);
                }
                add(&mut acc, x, a.permute(inv)?.contiguous()?)?;
            }
            op if is_nonlinear(op) => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                let r = bounds
                    .relax
                    .get(&idx)
                    .ok_or_else(|| unsup("no relaxation computed"))?;
                let unsq = |t: &Tensor| t.unsqueeze(1);
                let mut ls = unsq(&r.lower_slope)?;
                let mut us = unsq(&r.upper_slope)?;
                let (mut li, mut ui) = (unsq(&r.lower_icpt)?, unsq(&r.upper_icpt)?);
                if let (Some(al), Some(un)) = (dual.alpha.and_then(|m| m.get(&idx)), &r.unstable) {
                    let un = unsq(un)?;
                    ls = ls.broadcast_add(&al.broadcast_sub(&ls)?.broadcast_mul(&un)?)?;
                }
                if let (Some((kl, ku)), Some(curve)) =
                    (dual.curves.and_then(|m| m.get(&idx)), SCurve::of(op))
                {
                    let xb = bounds.values[x]
                        .as_ref()
                        .ok_or_else(|| unsup("no input bounds"))?;
                    let full = kl.dims();
                    let l = unsq(&xb.lower)?.broadcast_as(full)?.contiguous()?;
                    let u = unsq(&xb.upper)?.broadcast_as(full)?.contiguous()?;
                    (li, ui) = curve.intercepts(&l, &u, kl, ku)?;
                    (ls, us) = (kl.clone(), ku.clone());
                }
                if dual.record && matches!(op, Op::Relu) {
                    relu_coeffs.insert(idx, a.detach());
                }
                let pos = a.relu()?;
                let neg = (&a - &pos)?;
                let mut ax = (pos.broadcast_mul(&ls)? + neg.broadcast_mul(&us)?)?;
                let t = sum_tail(&(pos.broadcast_mul(&li)? + neg.broadcast_mul(&ui)?)?)?;
                add_bias(t)?;
                if let Some((beta, sign)) = dual.beta.and_then(|m| m.get(&idx)) {
                    ax = (ax + beta.broadcast_mul(sign)?)?;
                }
                add(&mut acc, x, ax)?;
            }
            Op::BatchNorm { epsilon } => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                let p = |i: usize| {
                    param(&node.inputs[i])?.ok_or_else(|| {
                        candle_core::Error::Msg("run-time batch-norm parameter".into())
                    })
                };
                let (scale, bn_bias, mean, var) = (p(1)?, p(2)?, p(3)?, p(4)?);
                let k = scale.div(&(var + *epsilon as f64)?.sqrt()?)?;
                let c = (&bn_bias - mean.mul(&k)?)?;
                let mut shape = vec![1, 1, k.elem_count()];
                shape.extend(std::iter::repeat_n(1, out_shape.len() - 1));
                add(&mut acc, x, a.broadcast_mul(&k.reshape(shape.clone())?)?)?;
                add_bias(sum_tail(&a.broadcast_mul(&c.reshape(shape)?)?)?)?;
            }
            Op::Conv(attrs) => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                if attrs.groups != 1
                    || attrs.stride[0] != attrs.stride[1]
                    || attrs.dilation[0] != attrs.dilation[1]
                {
                    return Err(unsup("groups, or unequal strides or dilations"));
                }
                let w = param(&node.inputs[1])?.ok_or_else(|| unsup("run-time weight"))?;
                let xs = &graph.values[x].shape;
                let (o, oh, ow) = (out_shape[0], out_shape[1], out_shape[2]);
                let a4 = a.reshape((b * s, o, oh, ow))?;
                let t = a4.conv_transpose2d(&w, 0, 0, attrs.stride[0], attrs.dilation[0])?;
                // Pad to the padded input size, then crop the padding away.
                let (ph, pw) = (
                    xs[1] + attrs.pads[0] + attrs.pads[2],
                    xs[2] + attrs.pads[1] + attrs.pads[3],
                );
                let (th, tw) = (t.dim(2)?, t.dim(3)?);
                if th > ph || tw > pw {
                    return Err(unsup("unexpected transposed-convolution size"));
                }
                let t = t
                    .pad_with_zeros(2, 0, ph - th)?
                    .pad_with_zeros(3, 0, pw - tw)?;
                let t = t
                    .narrow(2, attrs.pads[0], xs[1])?
                    .narrow(3, attrs.pads[1], xs[2])?;
                add(&mut acc, x, t.reshape(bs_shape(xs))?)?;
                if let Some(bv) = node.inputs.get(2).map(&param).transpose()?.flatten() {
                    let per_ch = a.reshape((b, s, o, oh * ow))?.sum(3)?;
                    let t = per_ch
                        .reshape((b * s, o))?
                        .matmul(&bv.reshape((o, 1))?)?
                        .reshape((b, s))?;
                    add_bias(t)?;
                }
            }
            Op::MaxPool(pa) => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                if pa.pads != [0; 4] || pa.dilation != [1, 1] || pa.ceil_mode {
                    return Err(unsup("padding, dilation or ceil_mode"));
                }
                let iv = bounds.values[x]
                    .as_ref()
                    .ok_or_else(|| unsup("input bounds missing"))?;
                let xs = graph.values[x].shape.clone();
                let n_in: usize = xs.iter().product();
                let n_out: usize = out_shape.iter().product();
                let plan = maxpool_plan(iv, &xs, out_shape, pa)?;
                let bb = plan.len();
                let mut index = Vec::with_capacity(b * n_out);
                let mut exact = Vec::with_capacity(b * n_out);
                let mut umax = Vec::with_capacity(b * n_out);
                for dom in 0..b {
                    let pl = &plan[if bb == 1 { 0 } else { dom }];
                    for &(at, wins, top) in pl.iter().take(n_out) {
                        index.push((dom * n_in + at) as u32);
                        exact.push(if wins { 1.0 } else { 0.0 });
                        umax.push(top);
                    }
                }
                let dev = Device::Cpu;
                let exact = Tensor::from_vec(exact, (b, 1, n_out), &dev)?;
                let umax = Tensor::from_vec(umax, (b, 1, n_out), &dev)?;
                let a3 = a.reshape((b, s, n_out))?;
                let pos = a3.relu()?;
                let neg = (&a3 - &pos)?;
                // max ≥ x_i* (the element with the largest lower bound); max ≤ max_j u_j, or
                // = x_i* when x_i* provably wins.
                let src = (&pos + neg.broadcast_mul(&exact)?)?;
                let inexact = (exact.neg()? + 1.0)?;
                add_bias(sum_tail(
                    &neg.broadcast_mul(&inexact)?.broadcast_mul(&umax)?,
                )?)?;
                let src = src
                    .permute((1, 0, 2))?
                    .contiguous()?
                    .reshape((s, b * n_out))?;
                let idx = Tensor::from_vec(index, b * n_out, &dev)?;
                let tgt = Tensor::zeros((s, b * n_in), DType::F64, &dev)?;
                let ax = tgt
                    .index_add(&idx, &src, 1)?
                    .reshape((s, b, n_in))?
                    .permute((1, 0, 2))?
                    .contiguous()?;
                add(&mut acc, x, ax.reshape(bs_shape(&xs))?)?;
            }
            Op::GlobalAveragePool => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                let xs = graph.values[x].shape.clone();
                let ch = xs[0];
                let sp: usize = xs[1..].iter().product();
                let t = (a.reshape((b, s, ch, 1))?.broadcast_as((b, s, ch, sp))? / sp as f64)?;
                add(&mut acc, x, t.contiguous()?.reshape(bs_shape(&xs))?)?;
            }
            Op::Pad { pads, value } => {
                let x = x0.ok_or_else(|| unsup("constant input"))?;
                let xs = &graph.values[x].shape;
                let mut t = a.clone();
                for (i, (lo, _)) in pads.iter().enumerate() {
                    t = t.narrow(i + 2, *lo, xs[i])?;
                }
                if *value != 0.0 {
                    let outside = (sum_tail(&a)? - sum_tail(&t)?)?;
                    add_bias((outside * *value as f64)?)?;
                }
                add(&mut acc, x, t.contiguous()?)?;
            }
            Op::Concat { axis } => {
                let mut off = 0;
                for o in &node.inputs {
                    let len = match o {
                        Operand::Value(v) => graph.values[*v].shape[*axis],
                        Operand::Param(p) => {
                            let d = graph.params[*p].tensor.dims();
                            d[d.len() - (out_shape.len() - axis)]
                        }
                    };
                    let part = a.narrow(axis + 2, off, len)?;
                    match o {
                        Operand::Value(v) => add(&mut acc, *v, part.contiguous()?)?,
                        Operand::Param(_) => {
                            let mut ps = out_shape.clone();
                            ps[*axis] = len;
                            let c = const_full(&param(o)?.ok_or_else(|| unsup("constant"))?, &ps)?;
                            add_bias(sum_tail(&part.broadcast_mul(&c)?)?)?;
                        }
                    }
                    off += len;
                }
            }
            other => return Err(unsupported(&node.name, other, "no linear bound rule")),
        }
    }
    let n_in = graph.input_len();
    let a_in = match acc[0].take() {
        Some(t) => t.reshape((b, s, n_in))?,
        None => Tensor::zeros((b, s, n_in), DType::F64, &Device::Cpu)?,
    };
    Ok(Linear {
        a_in,
        bias,
        magnitude: mag,
        relu_coeffs,
    })
}

/// Per domain and pooled output: (flat input index of the window element with the largest
/// lower bound, whether it provably is the maximum, the largest upper bound in the window).
fn maxpool_plan(
    iv: &Interval,
    xs: &[usize],
    out: &[usize],
    pa: &ruse_graph::PoolAttrs,
) -> candle_core::Result<Vec<Vec<(usize, bool, f64)>>> {
    let lo: Vec<f64> = iv.lower.flatten_all()?.to_vec1()?;
    let hi: Vec<f64> = iv.upper.flatten_all()?.to_vec1()?;
    let (c, h, w) = (xs[0], xs[1], xs[2]);
    let (oh, ow) = (out[1], out[2]);
    let n_in = c * h * w;
    let bb = lo.len() / n_in;
    let mut plans = Vec::with_capacity(bb);
    for dom in 0..bb {
        let (l, u) = (
            &lo[dom * n_in..(dom + 1) * n_in],
            &hi[dom * n_in..(dom + 1) * n_in],
        );
        let mut plan = Vec::with_capacity(c * oh * ow);
        for ch in 0..c {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = usize::MAX;
                    let mut cells = Vec::with_capacity(pa.kernel[0] * pa.kernel[1]);
                    for di in 0..pa.kernel[0] {
                        for dj in 0..pa.kernel[1] {
                            let (y, x) = (i * pa.stride[0] + di, j * pa.stride[1] + dj);
                            if y < h && x < w {
                                let at = (ch * h + y) * w + x;
                                cells.push(at);
                                if best == usize::MAX || l[at] > l[best] {
                                    best = at;
                                }
                            }
                        }
                    }
                    let umax = cells
                        .iter()
                        .map(|&k| u[k])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let wins = cells.iter().all(|&k| k == best || u[k] <= l[best]);
                    plan.push((best, wins, umax));
                }
            }
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Minimum of `lin` over the box `[lower, upper]` (`[B or 1, n_in]`), lowered by the f64 margin:
/// the sound lower bound `[B, S]`.
pub fn concretize(lin: &Linear, lower: &Tensor, upper: &Tensor) -> candle_core::Result<Tensor> {
    let (b, s, n) = lin.a_in.dims3()?;
    let pos = lin.a_in.relu()?;
    let neg = (&lin.a_in - &pos)?;
    let mm = |a: &Tensor, x: &Tensor| -> candle_core::Result<Tensor> {
        if x.dim(0)? == b {
            a.matmul(&x.unsqueeze(2)?)?.squeeze(2)
        } else {
            a.reshape((b * s, n))?
                .matmul(&x.reshape((n, 1))?)?
                .reshape((b, s))
        }
    };
    let val = ((mm(&pos, lower)? + mm(&neg, upper)?)? + &lin.bias)?;
    let xmax = lower.abs()?.maximum(&upper.abs()?)?;
    let mag = (mm(&lin.a_in.abs()?, &xmax)? + &lin.magnitude)?;
    let margin = ((mag + val.abs()?)? * 1e-9)?;
    val - margin
}

/// Largest number of neurons of one layer bounded by a CROWN pass (beyond it: interval bounds).
pub const CROWN_LAYER_LIMIT: usize = 4096;

/// Bounds for a batch of input boxes (`[B, input shape…]`): interval bounds everywhere, then the
/// inputs of nonlinear nodes tightened by CROWN when `method` says so.
pub fn compute_bounds(
    graph: &Graph,
    input: &Interval,
    method: Intermediate,
) -> Result<Bounds, BoundError> {
    compute_bounds_until(graph, input, method, None)
}

/// [`compute_bounds`], falling back from α-CROWN to CROWN for the remaining layers once
/// `deadline` has passed.
pub fn compute_bounds_until(
    graph: &Graph,
    input: &Interval,
    method: Intermediate,
    deadline: Option<std::time::Instant>,
) -> Result<Bounds, BoundError> {
    // Interval bounds node by node, each nonlinearity's input first tightened by CROWN, so that
    // later intervals (and the rounding allowances computed from them) start from tight ones.
    let mut values = vec![None; graph.values.len()];
    values[0] = Some(input.clone());
    let mut bounds = Bounds {
        values,
        relax: HashMap::new(),
        allowance: vec![None; graph.values.len()],
    };
    let b = input.lower.dim(0)?;
    let flat_lo = input.lower.reshape((b, ()))?;
    let flat_hi = input.upper.reshape((b, ()))?;
    for (idx, node) in graph.nodes.iter().enumerate() {
        if is_nonlinear(&node.op) {
            let late = deadline.is_some_and(|t| std::time::Instant::now() >= t);
            let m = match method {
                Intermediate::Alpha { .. } if late => Intermediate::Crown,
                m => m,
            };
            tighten_and_relax(graph, &mut bounds, idx, m, &flat_lo, &flat_hi, deadline)?;
        }
        let out = ibp_node(graph, node, &bounds.values, b)?;
        bounds.values[node.output] = Some(out);
        bounds.allowance[node.output] = self::allowance(graph, node, &bounds.values)?;
    }
    Ok(bounds)
}

/// Tightens the input interval of nonlinear node `idx` by CROWN (when asked) and records its
/// relaxation.
fn tighten_and_relax(
    graph: &Graph,
    bounds: &mut Bounds,
    idx: usize,
    method: Intermediate,
    flat_lo: &Tensor,
    flat_hi: &Tensor,
    deadline: Option<std::time::Instant>,
) -> Result<(), BoundError> {
    let node = &graph.nodes[idx];
    let b = flat_lo.dim(0)?;
    {
        let v = value_of(&node.inputs[0])
            .ok_or_else(|| unsupported(&node.name, &node.op, "constant input"))?;
        let shape = graph.values[v].shape.clone();
        let n: usize = shape.iter().product();
        let mut iv = bounds.values[v]
            .clone()
            .ok_or_else(|| unsupported(&node.name, &node.op, "input not reached"))?;
        if method != Intermediate::Ibp && n <= CROWN_LAYER_LIMIT && v != 0 {
            // Only neurons whose interval still matters: for ReLU the unstable ones (in any
            // domain of the batch); a stable ReLU is exact whatever its bounds.
            let lo_v: Vec<f64> = iv.lower.flatten_all()?.to_vec1()?;
            let hi_v: Vec<f64> = iv.upper.flatten_all()?.to_vec1()?;
            let relu_like = matches!(node.op, Op::Relu | Op::LeakyRelu { .. });
            let pick: Vec<usize> = (0..n)
                .filter(|&j| {
                    (0..b).any(|k| {
                        let (l, u) = (lo_v[k * n + j], hi_v[k * n + j]);
                        if relu_like {
                            l < 0.0 && u > 0.0
                        } else {
                            u > l
                        }
                    })
                })
                .collect();
            if !pick.is_empty() {
                let k = pick.len();
                let mut rows = vec![0.0f64; 2 * k * n];
                for (r, &j) in pick.iter().enumerate() {
                    rows[r * n + j] = 1.0;
                    rows[(k + r) * n + j] = -1.0;
                }
                let mut full = vec![b, 2 * k];
                full.extend_from_slice(&shape);
                let a0 = Tensor::from_vec(rows, (1, 2 * k, n), &Device::Cpu)?
                    .broadcast_as((b, 2 * k, n))?
                    .reshape(full)?;
                let lb: Vec<f64> = match method {
                    Intermediate::Alpha { iterations } => {
                        let input = Interval {
                            lower: flat_lo.clone(),
                            upper: flat_hi.clone(),
                        };
                        let zero = Tensor::zeros(2 * k, DType::F64, &Device::Cpu)?;
                        let opts = OptimizeOptions {
                            iterations,
                            deadline,
                            ..Default::default()
                        };
                        optimize_from(
                            graph, bounds, &input, v, a0, &zero, None, None, None, opts, None,
                        )?
                        .lower
                    }
                    _ => {
                        let lin = backward(graph, bounds, v, a0, &Dual::default())?;
                        concretize(&lin, flat_lo, flat_hi)?
                    }
                }
                .flatten_all()?
                .to_vec1()?;
                let (mut lo_n, mut hi_n) = (lo_v, hi_v);
                for dom in 0..b {
                    for (r, &j) in pick.iter().enumerate() {
                        let at = dom * n + j;
                        lo_n[at] = lo_n[at].max(lb[dom * 2 * k + r]);
                        hi_n[at] = hi_n[at].min(-lb[dom * 2 * k + k + r]);
                    }
                }
                let mut full = vec![b];
                full.extend_from_slice(&shape);
                iv = Interval {
                    lower: Tensor::from_vec(lo_n, full.clone(), &Device::Cpu)?,
                    upper: Tensor::from_vec(hi_n, full, &Device::Cpu)?,
                };
                bounds.values[v] = Some(iv.clone());
            }
        }
        bounds.relax.insert(idx, relax(&node.op, &iv)?);
    }
    Ok(())
}

/// Number of domains: the largest leading dimension among the input box, the bounds and the
/// relaxations (the others broadcast).
fn batch_of(bounds: &Bounds, input: &Interval) -> candle_core::Result<usize> {
    let mut b = input.lower.dim(0)?;
    if let Some(i) = &bounds.values[0] {
        b = b.max(i.lower.dim(0)?);
    }
    for r in bounds.relax.values() {
        b = b.max(r.lower_slope.dim(0)?);
    }
    Ok(b)
}

/// Lower bounds `[B, S]` of `C·y + d` (rows of `c`: `[S, n_out]`, `d`: `[S]`) by one CROWN pass.
pub fn crown_spec(
    graph: &Graph,
    bounds: &Bounds,
    input: &Interval,
    c: &Tensor,
    d: &Tensor,
    dual: &Dual,
) -> Result<(Tensor, Linear), BoundError> {
    let a0 = spec_coeffs(graph, bounds, input, c)?;
    crown_from(graph, bounds, input, graph.output, a0, d, dual)
}

/// The spec rows as backward-pass coefficients on the output, `[B, S, output shape…]`.
fn spec_coeffs(
    graph: &Graph,
    bounds: &Bounds,
    input: &Interval,
    c: &Tensor,
) -> Result<Tensor, BoundError> {
    let b = batch_of(bounds, input)?;
    let (s, m) = c.dims2()?;
    let mut full = vec![b, s];
    full.extend_from_slice(&graph.values[graph.output].shape);
    Ok(c.unsqueeze(0)?.broadcast_as((b, s, m))?.reshape(full)?)
}

/// Lower bounds `[B, S]` of `a0·v + d` for value `start`, by one backward pass.
pub fn crown_from(
    graph: &Graph,
    bounds: &Bounds,
    input: &Interval,
    start: ValueId,
    a0: Tensor,
    d: &Tensor,
    dual: &Dual,
) -> Result<(Tensor, Linear), BoundError> {
    let lin = backward(graph, bounds, start, a0, dual)?;
    let lo = input.lower.reshape((input.lower.dim(0)?, ()))?;
    let hi = input.upper.reshape((input.upper.dim(0)?, ()))?;
    let lb = concretize(&lin, &lo, &hi)?.broadcast_add(&d.unsqueeze(0)?)?;
    Ok((lb, lin))
}

/// Options of the α/β optimisation.
#[derive(Debug, Clone, Copy)]
pub struct OptimizeOptions {
    /// Gradient steps.
    pub iterations: usize,
    /// Adam learning rate for α.
    pub lr_alpha: f64,
    /// Adam learning rate for β.
    pub lr_beta: f64,
    /// Stop early (after at least one pass) once this instant has passed.
    pub deadline: Option<std::time::Instant>,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            iterations: 20,
            lr_alpha: 0.1,
            lr_beta: 0.05,
            deadline: None,
        }
    }
}

/// State of an α/β optimisation, kept to warm-start children in branch and bound.
pub struct Optimized {
    /// Best lower bound found per (domain, row), `[B, S]`.
    pub lower: Tensor,
    /// Final α per ReLU node, `[B, S, shape…]`.
    pub alpha: HashMap<usize, Tensor>,
    /// Final β per ReLU node (when splits were given), `[B, S, shape…]`.
    pub beta: HashMap<usize, Tensor>,
    /// Coefficients on each ReLU output from the last pass (for branching).
    pub relu_coeffs: HashMap<usize, Tensor>,
    /// Input coefficients of the last pass, `[B, S, n_in]`.
    pub a_in: Tensor,
}

impl Optimized {
    /// The state of spec rows `rows` (indices into dimension 1) alone.
    pub fn select_rows(&self, rows: &Tensor) -> candle_core::Result<Optimized> {
        let pick = |m: &HashMap<usize, Tensor>| -> candle_core::Result<HashMap<usize, Tensor>> {
            m.iter()
                .map(|(&k, t)| Ok((k, t.index_select(rows, 1)?)))
                .collect()
        };
        Ok(Optimized {
            lower: self.lower.index_select(rows, 1)?,
            alpha: pick(&self.alpha)?,
            beta: pick(&self.beta)?,
            relu_coeffs: pick(&self.relu_coeffs)?,
            a_in: self.a_in.index_select(rows, 1)?,
        })
    }
}

struct Adam {
    m: Tensor,
    v: Tensor,
}

/// α-CROWN (and β-CROWN when `splits` are given): lower bounds of `C·y + d` with the ReLU lower
/// slopes (and split multipliers) optimised by projected Adam; every iterate is a sound bound,
/// the best per row is kept.
#[allow(clippy::too_many_arguments)]
pub fn optimize_spec(
    graph: &Graph,
    bounds: &Bounds,
    input: &Interval,
    c: &Tensor,
    d: &Tensor,
    alpha_init: Option<&HashMap<usize, Tensor>>,
    splits: Option<&HashMap<usize, Tensor>>,
    beta_init: Option<&HashMap<usize, Tensor>>,
    opts: OptimizeOptions,
) -> Result<Optimized, BoundError> {
    let a0 = spec_coeffs(graph, bounds, input, c)?;
    optimize_from(
        graph,
        bounds,
        input,
        graph.output,
        a0,
        d,
        alpha_init,
        splits,
        beta_init,
        opts,
        Some(1e-3),
    )
}

/// α/β optimisation of the lower bound of `a0·v + d` for value `start`. With `cap`, rows above
/// it stop pulling (a proved spec row needs no more); without, every row is pushed up.
#[allow(clippy::too_many_arguments)]
pub fn optimize_from(
    graph: &Graph,
    bounds: &Bounds,
    input: &Interval,
    start: ValueId,
    a0: Tensor,
    d: &Tensor,
    alpha_init: Option<&HashMap<usize, Tensor>>,
    splits: Option<&HashMap<usize, Tensor>>,
    beta_init: Option<&HashMap<usize, Tensor>>,
    opts: OptimizeOptions,
    cap: Option<f64>,
) -> Result<Optimized, BoundError> {
    let b = batch_of(bounds, input)?;
    let s = a0.dim(1)?;
    // Only the nonlinear nodes the backward pass from `start` can reach.
    let producer = graph
        .nodes
        .iter()
        .position(|n| n.output == start)
        .unwrap_or(graph.nodes.len());
    let mut alpha_vars: HashMap<usize, candle_core::Var> = HashMap::new();
    let mut beta_vars: HashMap<usize, (candle_core::Var, Tensor)> = HashMap::new();
    for (&idx, r) in &bounds.relax {
        if r.unstable.is_none() || idx > producer {
            continue;
        }
        let mut full = vec![b, s];
        full.extend_from_slice(&r.lower_slope.dims()[1..]);
        let init = match alpha_init.and_then(|m| m.get(&idx)) {
            Some(a) => a.broadcast_as(full.clone())?.contiguous()?,
            None => r
                .lower_slope
                .unsqueeze(1)?
                .broadcast_as(full.clone())?
                .contiguous()?,
        };
        alpha_vars.insert(idx, candle_core::Var::from_tensor(&init)?);
        if let Some(sign) = splits.and_then(|m| m.get(&idx)) {
            let init = match beta_init.and_then(|m| m.get(&idx)) {
                Some(t) => t.broadcast_as(full.clone())?.contiguous()?,
                None => Tensor::zeros(full, DType::F64, &Device::Cpu)?,
            };
            beta_vars.insert(
                idx,
                (candle_core::Var::from_tensor(&init)?, sign.unsqueeze(1)?),
            );
        }
    }
    // Sigmoid / tanh nodes: their lower and upper slopes per (domain, row, neuron), started at
    // the fixed relaxation's and kept strictly inside (0, f'(0)), where the critical points
    // of f(x) − k·x are finite.
    let mut curve_vars: HashMap<usize, (candle_core::Var, candle_core::Var, f64)> = HashMap::new();
    for (&idx, r) in &bounds.relax {
        let Some(curve) = graph.nodes.get(idx).and_then(|n| SCurve::of(&n.op)) else {
            continue;
        };
        if idx > producer {
            continue;
        }
        let mut full = vec![b, s];
        full.extend_from_slice(&r.lower_slope.dims()[1..]);
        let hi = curve.max_slope * (1.0 - 1e-6);
        let init = |t: &Tensor| -> candle_core::Result<candle_core::Var> {
            let t = t.unsqueeze(1)?.broadcast_as(full.clone())?.contiguous()?;
            candle_core::Var::from_tensor(&t.clamp(hi * 1e-6, hi)?)
        };
        curve_vars.insert(idx, (init(&r.lower_slope)?, init(&r.upper_slope)?, hi));
    }
    let mut adam: HashMap<(usize, u8), Adam> = HashMap::new();
    let mut best: Option<Tensor> = None;
    let mut last: Option<(HashMap<usize, Tensor>, Tensor)> = None;
    let iters = opts.iterations.max(1);
    for it in 0..iters {
        let alpha: HashMap<usize, Tensor> = alpha_vars
            .iter()
            .map(|(k, v)| (*k, v.as_tensor().clone()))
            .collect();
        let beta: HashMap<usize, (Tensor, Tensor)> = beta_vars
            .iter()
            .map(|(k, (v, sgn))| (*k, (v.as_tensor().clone(), sgn.clone())))
            .collect();
        let curves: HashMap<usize, (Tensor, Tensor)> = curve_vars
            .iter()
            .map(|(k, (kl, ku, _))| (*k, (kl.as_tensor().clone(), ku.as_tensor().clone())))
            .collect();
        let dual = Dual {
            alpha: Some(&alpha),
            beta: if beta.is_empty() { None } else { Some(&beta) },
            curves: if curves.is_empty() {
                None
            } else {
                Some(&curves)
            },
            record: true,
        };
        let (lb, lin) = crown_from(graph, bounds, input, start, a0.clone(), d, &dual)?;
        let lbd = lb.detach();
        best = Some(match best {
            Some(bst) => bst.maximum(&lbd)?,
            None => lbd,
        });
        let late = opts
            .deadline
            .is_some_and(|t| std::time::Instant::now() >= t);
        if it + 1 == iters || late {
            last = Some((lin.relu_coeffs, lin.a_in.detach()));
            break;
        }
        // Rows already proved need no more work; push up the others (capped so that a proved
        // row does not dominate the step).
        let loss = match cap {
            Some(cap) => lb.clamp(-1e30, cap)?.sum_all()?.neg()?,
            None => lb.sum_all()?.neg()?,
        };
        let grads = loss.backward()?;
        let t = (it + 1) as i32;
        let step = |key: (usize, u8),
                    var: &candle_core::Var,
                    lr: f64,
                    adam: &mut HashMap<(usize, u8), Adam>,
                    lo: f64,
                    hi: f64|
         -> candle_core::Result<()> {
            let Some(g) = ruse_graph::backward::detached_grad(&grads, var.as_tensor()) else {
                return Ok(());
            };
            let st = match adam.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let z = g.zeros_like()?;
                    e.insert(Adam { m: z.clone(), v: z })
                }
            };
            st.m = ((&st.m * 0.9)? + (&g * 0.1)?)?;
            st.v = ((&st.v * 0.999)? + (g.sqr()? * 0.001)?)?;
            let mh = (&st.m / (1.0 - 0.9f64.powi(t)))?;
            let vh = (&st.v / (1.0 - 0.999f64.powi(t)))?;
            let upd = (mh / (vh.sqrt()? + 1e-8)?)?;
            let new = (var.as_tensor() - (upd * lr)?)?.clamp(lo, hi)?;
            var.set(&new)
        };
        for (k, v) in &alpha_vars {
            step((*k, 0), v, opts.lr_alpha, &mut adam, 0.0, 1.0)?;
        }
        for (k, (v, _)) in &beta_vars {
            step((*k, 1), v, opts.lr_beta, &mut adam, 0.0, 1e6)?;
        }
        for (k, (kl, ku, hi)) in &curve_vars {
            // Slopes live on a scale of f'(0): the step is relative to it.
            let lr = opts.lr_alpha * hi;
            step((*k, 2), kl, lr, &mut adam, hi * 1e-6, *hi)?;
            step((*k, 3), ku, lr, &mut adam, hi * 1e-6, *hi)?;
        }
    }
    let (relu_coeffs, a_in) = last.ok_or_else(|| BoundError::Input("no iteration".into()))?;
    let lower = best.ok_or_else(|| BoundError::Input("no iteration".into()))?;
    Ok(Optimized {
        lower,
        alpha: alpha_vars
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .collect(),
        beta: beta_vars
            .into_iter()
            .map(|(k, (v, _))| (k, v.as_tensor().detach()))
            .collect(),
        relu_coeffs,
        a_in,
    })
}

/// Spec rows as tensors: `C` `[S, n_out]` and `d` `[S]`.
pub fn spec_rows(
    rows: &[crate::LinearConstraint],
    n_out: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut c = vec![0.0; rows.len() * n_out];
    let mut d = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        for &(j, v) in &r.coeffs {
            if j < n_out {
                c[i * n_out + j] += v;
            }
        }
        d.push(r.constant);
    }
    Ok((
        Tensor::from_vec(c, (rows.len(), n_out), &Device::Cpu)?,
        Tensor::from_vec(d, rows.len(), &Device::Cpu)?,
    ))
}
