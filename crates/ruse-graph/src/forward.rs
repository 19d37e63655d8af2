//! Forward evaluation of a graph with candle tensors; gradients come from candle's autodiff.

use candle_core::{DType, Tensor};

use crate::error::{GraphError, Result};
use crate::graph::{Graph, Node, Operand, INPUT};
use crate::kernels::{
    conv,
    gemm::Linear,
    pointwise::{pointwise, Pointwise},
    pool,
};
use crate::op::Op;

impl Graph {
    /// Runs the graph on a batch `x` of shape [B, input_shape…] with the stored parameters.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let params = self.param_tensors();
        self.forward_with(&params, x)
    }

    /// Runs the graph with the given parameter tensors (e.g. candle `Var`s while training).
    pub fn forward_with(&self, params: &[Tensor], x: &Tensor) -> Result<Tensor> {
        let mut values = self.forward_values(params, x, false)?;
        values[self.output]
            .take()
            .ok_or_else(|| GraphError::Input("graph output was never computed".into()))
    }

    /// Runs the graph and returns every value (index = value id), e.g. for inspection.
    pub fn forward_all(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let params = self.param_tensors();
        let values = self.forward_values(&params, x, true)?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| GraphError::Input(format!("value {i} was never computed")))
            })
            .collect()
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let d = x.dims();
        if d.len() != self.input_shape().len() + 1 || &d[1..] != self.input_shape() {
            return Err(GraphError::Input(format!(
                "expected a batch of shape [B, {}], got {:?}",
                self.input_shape()
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                d
            )));
        }
        if x.dtype() != DType::F32 {
            return Err(GraphError::Input(format!(
                "expected f32 input, got {:?}",
                x.dtype()
            )));
        }
        Ok(())
    }

    fn forward_values(
        &self,
        params: &[Tensor],
        x: &Tensor,
        keep_all: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        self.check_input(x)?;
        if params.len() != self.params.len() {
            return Err(GraphError::Input(format!(
                "{} parameter tensors for {} parameters",
                params.len(),
                self.params.len()
            )));
        }
        // Last use of each value, so intermediates can be dropped early when not kept.
        let mut last_use = vec![0usize; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for o in &n.inputs {
                if let Operand::Value(v) = o {
                    last_use[*v] = i;
                }
            }
        }
        let mut values: Vec<Option<Tensor>> = vec![None; self.values.len()];
        values[INPUT] = Some(x.clone());
        for (i, node) in self.nodes.iter().enumerate() {
            let args = node
                .inputs
                .iter()
                .map(|o| match o {
                    Operand::Value(v) => values[*v].clone().ok_or_else(|| {
                        GraphError::Input(format!(
                            "node '{}' reads value {v} before it is computed",
                            node.name
                        ))
                    }),
                    Operand::Param(p) => Ok(params[*p].clone()),
                })
                .collect::<Result<Vec<_>>>()?;
            let y = apply(node, &args).map_err(|source| GraphError::Tensor {
                node: node.name.clone(),
                op: node.op.onnx_type().into(),
                source: Box::new(source),
            })?;
            values[node.output] = Some(y);
            if !keep_all {
                for o in &node.inputs {
                    if let Operand::Value(v) = o {
                        if last_use[*v] == i && *v != self.output {
                            values[*v] = None;
                        }
                    }
                }
            }
        }
        Ok(values)
    }
}

/// Applies one node to its operand tensors (values carry the batch axis, params do not).
pub fn apply(node: &Node, a: &[Tensor]) -> candle_core::Result<Tensor> {
    let x = &a[0];
    match &node.op {
        Op::Conv(attrs) => conv::conv2d(x, &a[1], a.get(2), attrs),
        Op::Gemm {
            alpha,
            beta,
            trans_b,
        } => {
            let plain = *alpha == 1.0 && (a.len() < 3 || *beta == 1.0);
            let tracked = a.iter().any(Tensor::track_op);
            if plain && !tracked && x.device().is_cpu() && x.rank() == 2 && a[1].rank() == 2 {
                let outputs = a[1].dim(usize::from(!*trans_b))?;
                let op = Linear { trans_b: *trans_b };
                let (x, w) = (x.contiguous()?, a[1].contiguous()?);
                match a.get(2) {
                    Some(c) if c.dims() == [outputs] => {
                        return x.apply_op3_no_bwd(&w, &c.contiguous()?, &op)
                    }
                    None => return x.apply_op2_no_bwd(&w, &op),
                    // A bias that broadcasts otherwise (a scalar, a full matrix) takes candle's path.
                    Some(_) => {}
                }
            }
            gemm_candle(x, a, *alpha, *beta, *trans_b)
        }
        Op::MatMul => x.broadcast_matmul(&a[1]),
        Op::Add => x.broadcast_add(&a[1]),
        Op::Sub => x.broadcast_sub(&a[1]),
        Op::Mul => x.broadcast_mul(&a[1]),
        Op::Div => x.broadcast_div(&a[1]),
        Op::Relu => pointwise(x, Pointwise::Relu),
        Op::LeakyRelu { alpha } => pointwise(x, Pointwise::LeakyRelu(*alpha)),
        Op::Clip { min, max } => pointwise(x, Pointwise::Clip(*min, *max)),
        Op::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip(),
        Op::Tanh => x.tanh(),
        Op::Softmax { axis } => {
            let d = axis + 1;
            let m = x.max_keepdim(d)?.detach();
            let e = x.broadcast_sub(&m)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(d)?)
        }
        Op::MaxPool(p) => pool::max_pool2d(x, p),
        Op::AveragePool {
            pool: p,
            count_include_pad,
        } => pool::avg_pool2d(x, p, *count_include_pad),
        Op::GlobalAveragePool => {
            let d = x.dims();
            let (b, c) = (d[0], d[1]);
            let spatial: usize = d[2..].iter().product();
            let mut out = vec![b, c];
            out.extend(std::iter::repeat_n(1, d.len() - 2));
            x.reshape((b, c, spatial))?.mean_keepdim(2)?.reshape(out)
        }
        Op::BatchNorm { epsilon } => {
            let (scale, bias, mean, var) = (&a[1], &a[2], &a[3], &a[4]);
            let c = scale.elem_count();
            let mut shape = vec![1, c];
            shape.extend(std::iter::repeat_n(1, x.rank() - 2));
            let k = scale.div(&(var + *epsilon as f64)?.sqrt()?)?;
            let b = bias.sub(&mean.mul(&k)?)?;
            x.broadcast_mul(&k.reshape(shape.clone())?)?
                .broadcast_add(&b.reshape(shape)?)
        }
        Op::Reshape { shape } => {
            let mut s = vec![x.dim(0)?];
            s.extend_from_slice(shape);
            x.reshape(s)
        }
        Op::Transpose { perm } => {
            let mut p = vec![0];
            p.extend(perm.iter().map(|v| v + 1));
            x.permute(p)?.contiguous()
        }
        Op::Concat { axis } => Tensor::cat(a, axis + 1),
        Op::Pad { pads, value } => {
            let mut y = if *value != 0.0 {
                (x - *value as f64)?
            } else {
                x.clone()
            };
            for (i, (lo, hi)) in pads.iter().enumerate() {
                if *lo > 0 || *hi > 0 {
                    y = y.pad_with_zeros(i + 1, *lo, *hi)?;
                }
            }
            if *value != 0.0 {
                y = (y + *value as f64)?;
            }
            Ok(y)
        }
        Op::Identity => Ok(x.clone()),
    }
}

/// ONNX Gemm through candle's ops (tracked operands, α or β ≠ 1, a matrix bias).
fn gemm_candle(
    x: &Tensor,
    a: &[Tensor],
    alpha: f32,
    beta: f32,
    trans_b: bool,
) -> candle_core::Result<Tensor> {
    let b = if trans_b { a[1].t()? } else { a[1].clone() };
    let mut y = x.matmul(&b)?;
    if alpha != 1.0 {
        y = (y * alpha as f64)?;
    }
    match a.get(2) {
        Some(c) if beta == 1.0 => y.broadcast_add(c),
        Some(c) => y.broadcast_add(&(c * beta as f64)?),
        None => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Operand;
    use candle_core::Device;

    /// The fused dense kernel and candle's ops agree for both weight layouts and every bias
    /// shape ONNX Gemm allows ([N], a broadcast scalar [1], a full [B, N] matrix, none).
    #[test]
    fn gemm_kernel_matches_candle_for_every_bias_shape() {
        let dev = Device::Cpu;
        let (b, k, n) = (5usize, 7usize, 3usize);
        let vals = |len: usize, s: f32| -> Vec<f32> {
            (0..len).map(|i| ((i as f32 + s) * 0.913).sin()).collect()
        };
        let x = Tensor::from_vec(vals(b * k, 1.0), (b, k), &dev).unwrap();
        for trans_b in [true, false] {
            let w = if trans_b {
                Tensor::from_vec(vals(n * k, 2.0), (n, k), &dev).unwrap()
            } else {
                Tensor::from_vec(vals(k * n, 2.0), (k, n), &dev).unwrap()
            };
            let biases = [
                Some(Tensor::from_vec(vals(n, 3.0), n, &dev).unwrap()),
                Some(Tensor::from_vec(vec![0.25f32], 1, &dev).unwrap()),
                Some(Tensor::from_vec(vals(b * n, 4.0), (b, n), &dev).unwrap()),
                None,
            ];
            for c in biases {
                let mut a = vec![x.clone(), w.clone()];
                a.extend(c.clone());
                let node = Node {
                    name: "g".into(),
                    op: Op::Gemm {
                        alpha: 1.0,
                        beta: 1.0,
                        trans_b,
                    },
                    inputs: (0..a.len()).map(Operand::Value).collect(),
                    output: 0,
                };
                let got: Vec<f32> = apply(&node, &a)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let want: Vec<f32> = gemm_candle(&x, &a, 1.0, 1.0, trans_b)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let e = crate::kernels::max_abs_diff(&got, &want);
                assert!(
                    e < 1e-5,
                    "trans_b {trans_b}, bias {:?}: off by {e}",
                    c.map(|t| t.dims().to_vec())
                );
            }
        }
    }
}
