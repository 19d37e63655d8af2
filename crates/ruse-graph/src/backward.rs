//! Reverse mode over the graph itself: a forward pass that keeps every value ("tape"), then one
//! vector-Jacobian rule per node, computing only the gradients asked for.
//!
//! Why not only candle's autodiff: candle's backprop allocates a zero tensor and adds into it for
//! every node and always computes every operand's gradient (weights too, during an attack); on the
//! bench net that made a PGD step 2–3× slower than PyTorch. The hot ops (Conv, Gemm, ReLU family,
//! MaxPool, Add, Reshape) have hand-written rules here; every other op falls back to candle's
//! autodiff on that one node, so each op is covered and tested against PyTorch both ways.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::{GraphError, Result};
use crate::forward::apply;
use crate::graph::{Graph, Node, Operand, INPUT};
use crate::kernels::conv::{channel_sum, conv2d_backward_input, conv2d_backward_weight};
use crate::kernels::gemm::Linear;
use crate::kernels::pointwise::{pointwise_backward, Pointwise};
use crate::kernels::pool::{max_pool2d_backward, max_pool2d_with_argmax};
use crate::kernels::{as_row_block, fixed_chunks};
use crate::op::Op;

/// Which gradients a backward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradRequest {
    /// Gradient with respect to the graph input.
    pub input: bool,
    /// Gradients with respect to the trainable parameters.
    pub params: bool,
}

impl GradRequest {
    /// Input gradient only (attacks).
    pub const INPUT: GradRequest = GradRequest {
        input: true,
        params: false,
    };
    /// Parameter gradients only (training).
    pub const PARAMS: GradRequest = GradRequest {
        input: false,
        params: true,
    };
}

/// Result of a backward pass.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// d loss / d input, if requested.
    pub input: Option<Tensor>,
    /// d loss / d parameter, by parameter id (None for frozen parameters or when not requested).
    pub params: Vec<Option<Tensor>>,
}

/// What a forward pass kept for the backward pass.
pub struct Tape {
    values: Vec<Option<Tensor>>,
    argmax: Vec<Option<Arc<Vec<u32>>>>,
    output: usize,
}

impl Tape {
    /// The graph output of the taped forward pass.
    pub fn output(&self) -> Result<&Tensor> {
        self.values[self.output]
            .as_ref()
            .ok_or_else(|| GraphError::Input("tape lacks the output".into()))
    }
}

fn node_err(node: &Node) -> impl Fn(candle_core::Error) -> GraphError + '_ {
    move |source| GraphError::Tensor {
        node: node.name.clone(),
        op: node.op.onnx_type().into(),
        source: Box::new(source),
    }
}

/// The gradient of a broadcasting elementwise op's operand `a`, when `needed`: `g_full` (the
/// gradient at the op's output shape) summed back down to `a`'s shape.
fn operand_grad(
    needed: bool,
    a: &Tensor,
    g_full: impl FnOnce() -> candle_core::Result<Tensor>,
) -> candle_core::Result<Option<Tensor>> {
    if !needed {
        return Ok(None);
    }
    sum_to_shape(&g_full()?, a.dims()).map(Some)
}

/// Sums a broadcast gradient back down to `shape` (numpy broadcasting in reverse).
fn sum_to_shape(g: &Tensor, shape: &[usize]) -> candle_core::Result<Tensor> {
    let mut g = g.clone();
    while g.rank() > shape.len() {
        g = g.sum(0)?;
    }
    for (d, &s) in shape.iter().enumerate() {
        if s == 1 && g.dim(d)? != 1 {
            g = g.sum_keepdim(d)?;
        }
    }
    g.reshape(shape)
}

impl Graph {
    /// Forward pass (no candle tracking) that keeps what `backward` needs.
    pub fn forward_tape(&self, params: &[Tensor], x: &Tensor) -> Result<Tape> {
        let x = x.detach();
        let mut values: Vec<Option<Tensor>> = vec![None; self.values.len()];
        let mut argmax = vec![None; self.nodes.len()];
        // Validate via the shared checks of the plain forward (shape, dtype, parameter count).
        if params.len() != self.params.len() {
            return Err(GraphError::Input(format!(
                "{} parameter tensors for {} parameters",
                params.len(),
                self.params.len()
            )));
        }
        let want = self.input_shape();
        if x.rank() != want.len() + 1 || &x.dims()[1..] != want {
            return Err(GraphError::Input(format!(
                "expected a batch of shape [B, {want:?}], got {:?}",
                x.dims()
            )));
        }
        values[INPUT] = Some(x);
        for (i, node) in self.nodes.iter().enumerate() {
            let args = self.operands(node, &values, params)?;
            let y = match &node.op {
                Op::MaxPool(p) if args[0].device().is_cpu() => {
                    let (y, a) = max_pool2d_with_argmax(&args[0], p).map_err(node_err(node))?;
                    argmax[i] = Some(a);
                    y
                }
                _ => apply(node, &args).map_err(node_err(node))?,
            };
            values[node.output] = Some(y.detach());
        }
        Ok(Tape {
            values,
            argmax,
            output: self.output,
        })
    }

    fn operands(
        &self,
        node: &Node,
        values: &[Option<Tensor>],
        params: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        node.inputs
            .iter()
            .map(|o| match o {
                Operand::Value(v) => values[*v].clone().ok_or_else(|| {
                    GraphError::Input(format!(
                        "node '{}' reads value {v} before it is computed",
                        node.name
                    ))
                }),
                Operand::Param(p) => Ok(params[*p].detach()),
            })
            .collect()
    }

    /// Backward pass: from d loss / d output (`cotangent`, shape of the output) to the requested gradients.
    pub fn backward(
        &self,
        tape: &Tape,
        params: &[Tensor],
        cotangent: &Tensor,
        want: GradRequest,
    ) -> Result<Gradients> {
        let out = tape.output()?;
        if out.dims() != cotangent.dims() {
            return Err(GraphError::Input(format!(
                "cotangent has shape {:?}, output has {:?}",
                cotangent.dims(),
                out.dims()
            )));
        }
        // Which values carry gradient: those downstream of what we differentiate with respect to.
        let mut live = vec![false; self.values.len()];
        live[INPUT] = want.input;
        for n in &self.nodes {
            live[n.output] = n.inputs.iter().any(|o| match o {
                Operand::Value(v) => live[*v],
                Operand::Param(p) => want.params && self.params[*p].trainable,
            });
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; self.values.len()];
        let mut pgrads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        grads[self.output] = Some(cotangent.clone());
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let Some(g) = grads[node.output].take() else {
                continue;
            };
            let need: Vec<bool> = node
                .inputs
                .iter()
                .map(|o| match o {
                    Operand::Value(v) => live[*v],
                    Operand::Param(p) => want.params && self.params[*p].trainable,
                })
                .collect();
            if !need.iter().any(|&b| b) {
                continue;
            }
            let args = self.operands(node, &tape.values, params)?;
            let y = tape.values[node.output].as_ref();
            let ins = self
                .vjp(node, &args, y, &g, &need, tape.argmax[i].clone())
                .map_err(node_err(node))?;
            for ((o, gi), n) in node.inputs.iter().zip(ins).zip(&need) {
                let (Some(gi), true) = (gi, *n) else { continue };
                let slot = match o {
                    Operand::Value(v) => &mut grads[*v],
                    Operand::Param(p) => &mut pgrads[*p],
                };
                *slot = Some(match slot.take() {
                    Some(prev) => (prev + gi).map_err(node_err(node))?,
                    None => gi,
                });
            }
        }
        Ok(Gradients {
            input: if want.input {
                grads[INPUT].take()
            } else {
                None
            },
            params: pgrads,
        })
    }

    /// The vector-Jacobian product of one node: gradients of its operands (where `need`).
    fn vjp(
        &self,
        node: &Node,
        a: &[Tensor],
        y: Option<&Tensor>,
        g: &Tensor,
        need: &[bool],
        argmax: Option<Arc<Vec<u32>>>,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let cpu = a[0].device().is_cpu();
        let pw = |p: Pointwise| -> candle_core::Result<Vec<Option<Tensor>>> {
            Ok(vec![Some(pointwise_backward(&a[0], g, p)?)])
        };
        match &node.op {
            Op::Conv(attrs) if cpu => {
                let gx = if need[0] {
                    Some(conv2d_backward_input(g, &a[1], attrs, a[0].dims())?)
                } else {
                    None
                };
                let gw = if need[1] {
                    Some(conv2d_backward_weight(&a[0], g, attrs, a[1].dims())?)
                } else {
                    None
                };
                let gb = match need.get(2) {
                    Some(true) => Some(channel_sum(g)?),
                    _ => None,
                };
                Ok(vec![gx, gw, gb])
            }
            Op::Gemm {
                alpha,
                beta,
                trans_b,
            } => {
                let alpha = *alpha as f64;
                let gx = if !need[0] {
                    None
                } else if alpha == 1.0 && cpu && g.rank() == 2 {
                    // gx = g·w (w stored N×K) or g·wᵀ (w stored K×N): the forward kernel with the
                    // weight's storage order flipped, no bias.
                    let op = Linear { trans_b: !*trans_b };
                    Some(g.contiguous()?.apply_op2_no_bwd(&a[1].contiguous()?, &op)?)
                } else {
                    let b = if *trans_b { a[1].clone() } else { a[1].t()? };
                    Some((g.matmul(&b)? * alpha)?)
                };
                let gb = if need[1] {
                    let gb = if *trans_b {
                        g.t()?.matmul(&a[0])?
                    } else {
                        a[0].t()?.matmul(g)?
                    };
                    Some((gb * alpha)?)
                } else {
                    None
                };
                let gc = match (need.get(2), a.get(2)) {
                    (Some(true), Some(c)) => Some((sum_to_shape(g, c.dims())? * *beta as f64)?),
                    _ => None,
                };
                Ok(vec![gx, gb, gc])
            }
            Op::Relu if cpu => pw(Pointwise::Relu),
            Op::LeakyRelu { alpha } if cpu => pw(Pointwise::LeakyRelu(*alpha)),
            Op::Clip { min, max } if cpu => pw(Pointwise::Clip(*min, *max)),
            Op::MaxPool(p) if argmax.is_some() => {
                let am = argmax.unwrap_or_default();
                Ok(vec![Some(max_pool2d_backward(&a[0], g, p, am)?)])
            }
            Op::Add => Ok(vec![
                operand_grad(need[0], &a[0], || Ok(g.clone()))?,
                operand_grad(need[1], &a[1], || Ok(g.clone()))?,
            ]),
            Op::Sub => Ok(vec![
                operand_grad(need[0], &a[0], || Ok(g.clone()))?,
                operand_grad(need[1], &a[1], || g.neg())?,
            ]),
            Op::Mul => Ok(vec![
                operand_grad(need[0], &a[0], || g.broadcast_mul(&a[1]))?,
                operand_grad(need[1], &a[1], || g.broadcast_mul(&a[0]))?,
            ]),
            Op::Div => {
                let ga = g.broadcast_div(&a[1])?;
                Ok(vec![
                    operand_grad(need[0], &a[0], || Ok(ga.clone()))?,
                    // d(a/b)/db = −(a/b)/b, so the operand gradient is −(g/b)·(a/b).
                    operand_grad(need[1], &a[1], || {
                        ga.mul(&a[0].broadcast_div(&a[1])?)?.neg()
                    })?,
                ])
            }
            Op::Reshape { .. } => Ok(vec![Some(g.reshape(a[0].dims())?)]),
            Op::Identity => Ok(vec![Some(g.clone())]),
            Op::Sigmoid if y.is_some() => {
                let y = y.unwrap_or(g);
                Ok(vec![Some((g * (y * (1.0 - y)?)?)?)])
            }
            Op::Tanh if y.is_some() => {
                let y = y.unwrap_or(g);
                Ok(vec![Some((g * (1.0 - y.sqr()?)?)?)])
            }
            _ => self.vjp_via_candle(node, a, g, need),
        }
    }

    /// Fallback: candle's autodiff on this single node.
    fn vjp_via_candle(
        &self,
        node: &Node,
        a: &[Tensor],
        g: &Tensor,
        need: &[bool],
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let vars: Vec<Option<Var>> = a
            .iter()
            .zip(need)
            .map(|(t, &n)| {
                if n {
                    Var::from_tensor(t).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<candle_core::Result<_>>()?;
        let ins: Vec<Tensor> = a
            .iter()
            .zip(&vars)
            .map(|(t, v)| {
                v.as_ref()
                    .map_or_else(|| t.clone(), |v| v.as_tensor().clone())
            })
            .collect();
        let y = apply(node, &ins)?;
        let s = (y * g)?.sum_all()?;
        let grads = s.backward()?;
        Ok(vars
            .iter()
            .map(|v| {
                v.as_ref()
                    .and_then(|v| detached_grad(&grads, v.as_tensor()))
            })
            .collect())
    }

    /// Logits, loss and gradients for a scalar loss of the logits (computed with candle's autodiff
    /// on the small logits tensor, then the graph's own backward pass).
    pub fn loss_and_gradients(
        &self,
        params: &[Tensor],
        x: &Tensor,
        loss: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
        want: GradRequest,
    ) -> Result<(Tensor, Tensor, Gradients)> {
        if want == GradRequest::INPUT {
            if let Some(parts) = split_rows(x) {
                return self.loss_and_input_gradient_split(params, x, &parts, loss);
            }
        }
        let tape = self.forward_tape(params, x)?;
        let logits = tape.output()?.clone();
        let (l, dl) = loss_cotangent(&logits, loss)?;
        let grads = self.backward(&tape, params, &dl, want)?;
        Ok((logits, l, grads))
    }
}

impl Graph {
    /// `loss_and_gradients` for the input gradient, the batch cut into row blocks that run on
    /// separate threads from the first node to the last: on small nets a whole sub-batch per
    /// thread beats splitting every op across threads (no barrier per op, data stays in cache).
    fn loss_and_input_gradient_split(
        &self,
        params: &[Tensor],
        x: &Tensor,
        parts: &[Range<usize>],
        loss: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<(Tensor, Tensor, Gradients)> {
        let tapes = parts
            .par_iter()
            .map(|r| as_row_block(|| self.forward_tape(params, &x.narrow(0, r.start, r.len())?)))
            .collect::<Result<Vec<_>>>()?;
        let outs = tapes
            .iter()
            .map(|t| t.output().cloned())
            .collect::<Result<Vec<_>>>()?;
        let logits = Tensor::cat(&outs, 0)?;
        let (l, dl) = loss_cotangent(&logits, loss)?;
        let gs = parts
            .par_iter()
            .zip(&tapes)
            .map(|(r, t)| {
                let cot = dl.narrow(0, r.start, r.len())?;
                as_row_block(|| self.backward(t, params, &cot, GradRequest::INPUT))?
                    .input
                    .ok_or_else(|| GraphError::Input("no input gradient".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let input = Tensor::cat(&gs, 0)?;
        Ok((
            logits,
            l,
            Gradients {
                input: Some(input),
                params: vec![None; self.params.len()],
            },
        ))
    }

    /// Forward pass without gradient tracking, the batch cut into row blocks run on separate
    /// threads (see `loss_and_input_gradient_split`); the plain pass for small batches.
    pub fn forward_split(&self, params: &[Tensor], x: &Tensor) -> Result<Tensor> {
        let x = x.detach();
        let Some(parts) = split_rows(&x) else {
            return self.forward_with(params, &x);
        };
        let outs = parts
            .par_iter()
            .map(|r| as_row_block(|| self.forward_with(params, &x.narrow(0, r.start, r.len())?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&outs, 0)?)
    }
}

/// The scalar loss of the logits (detached) and its gradient with respect to them, by candle's
/// autodiff on the small logits tensor: the cotangent the graph's own backward pass starts from.
fn loss_cotangent(
    logits: &Tensor,
    loss: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let lv = Var::from_tensor(logits)?;
    let l = loss(lv.as_tensor())?;
    let dl = l
        .backward()?
        .get(lv.as_tensor())
        .cloned()
        .unwrap_or(logits.zeros_like()?);
    Ok((l.detach(), dl))
}

/// Batches smaller than this run as one block (each op then splits its own work).
const SPLIT_MIN_ROWS: usize = 64;

/// The row blocks of a CPU batch worth cutting, or None: 4 blocks per started 256 rows. The cut
/// depends on the batch size only, never on the thread count, so results are the same whatever
/// `--threads` says; a multiple of 4 blocks keeps 2 or 4 threads equally busy.
fn split_rows(x: &Tensor) -> Option<Vec<Range<usize>>> {
    let b = x.dims().first().copied()?;
    if !x.device().is_cpu() || b < SPLIT_MIN_ROWS {
        return None;
    }
    Some(fixed_chunks(b, 4 * b.div_ceil(256)))
}

/// The gradient of `t` (a `Var`'s tensor) in candle's store, detached. candle detaches only the
/// inner nodes' gradients, so a leaf's still references the pass's graph; optimiser state built
/// from it (Adam's moments) would chain every step's graph together and keep it alive.
pub fn detached_grad(store: &GradStore, t: &Tensor) -> Option<Tensor> {
    store.get(t).map(Tensor::detach)
}
