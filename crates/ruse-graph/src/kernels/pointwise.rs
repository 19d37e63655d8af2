//! Piecewise-linear activations whose gradients at the kinks match PyTorch's
//! (candle's ReLU passes gradient at 0 and its clamp halves it at the bounds).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::f32_slice;

/// ReLU, LeakyReLU or Clip.
#[derive(Debug, Clone, Copy)]
pub enum Pointwise {
    /// max(x, 0); gradient 0 at x = 0.
    Relu,
    /// x > 0 ? x : a·x; gradient 1 for x > 0, a otherwise (as PyTorch).
    LeakyRelu(f32),
    /// clamp to [lo, hi]; gradient 1 on the closed interval.
    Clip(f32, f32),
}

impl Pointwise {
    #[inline]
    fn f(self, x: f32) -> f32 {
        match self {
            Pointwise::Relu => {
                // NaN propagates (as in PyTorch) rather than becoming 0.
                if x > 0.0 || x.is_nan() {
                    x
                } else {
                    0.0
                }
            }
            Pointwise::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Pointwise::Clip(lo, hi) => {
                if x < lo {
                    lo
                } else if x > hi {
                    hi
                } else {
                    x
                }
            }
        }
    }
    #[inline]
    fn df(self, x: f32) -> f32 {
        match self {
            Pointwise::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Pointwise::LeakyRelu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Pointwise::Clip(lo, hi) => {
                if x >= lo && x <= hi {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

impl CustomOp1 for Pointwise {
    fn name(&self) -> &'static str {
        "ruse-pointwise"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "pointwise")?;
        let out: Vec<f32> = x.iter().map(|&v| self.f(v)).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &PointwiseGrad(*self),
        )?))
    }
}

/// (x, grad_out) → grad_out · f'(x).
struct PointwiseGrad(Pointwise);

impl CustomOp2 for PointwiseGrad {
    fn name(&self) -> &'static str {
        "ruse-pointwise-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "pointwise backward")?;
        let g = f32_slice(s2, l2, "pointwise backward")?;
        let out: Vec<f32> = x.iter().zip(g).map(|(&x, &g)| g * self.0.df(x)).collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Applies the activation: ruse's kernel on CPU, candle ops elsewhere.
pub fn pointwise(x: &Tensor, p: Pointwise) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(p);
    }
    match p {
        Pointwise::Relu => x.relu(),
        Pointwise::LeakyRelu(a) => x.relu()? - (x.neg()?.relu()? * a as f64)?,
        Pointwise::Clip(lo, hi) => x.clamp(lo, hi),
    }
}

/// grad_out · f'(x) for the activation (CPU kernel; candle ops elsewhere).
pub fn pointwise_backward(x: &Tensor, grad: &Tensor, p: Pointwise) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        return x
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &PointwiseGrad(p));
    }
    let mask = match p {
        Pointwise::Relu => x.gt(0f32)?.to_dtype(x.dtype())?,
        Pointwise::LeakyRelu(a) => {
            let pos = x.gt(0f32)?.to_dtype(x.dtype())?;
            ((&pos * (1.0 - a as f64))? + a as f64)?
        }
        Pointwise::Clip(lo, hi) => {
            (x.ge(lo)?.to_dtype(x.dtype())? * x.le(hi)?.to_dtype(x.dtype())?)?
        }
    };
    grad.mul(&mask)
}
