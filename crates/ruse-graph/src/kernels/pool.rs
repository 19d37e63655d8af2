//! 2-D max pooling with a correct backward (one winner per window: the first maximum in scan
//! order, as PyTorch), and average pooling expressed as a depthwise convolution.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, min_job_len};
use crate::op::{ConvAttrs, PoolAttrs};

/// Index (into the plane) of the winning element of each output cell, or None for an empty window.
#[inline]
fn argmax_plane(
    x: &[f32],
    h: usize,
    w: usize,
    p: &PoolAttrs,
    ho: usize,
    wo: usize,
    f: impl FnMut(usize, Option<(usize, f32)>),
) {
    if p.pads == [0; 4] && p.dilation == [1, 1] && !p.ceil_mode {
        argmax_plane_unpadded(x, w, p, ho, wo, f)
    } else {
        argmax_plane_general(x, h, w, p, ho, wo, f)
    }
}

/// Of two candidates, whether the later one wins: strictly greater, or the first NaN.
#[inline(always)]
fn later_wins(a: f32, b: f32) -> bool {
    (b > a) | (b.is_nan() & !a.is_nan())
}

/// Whether a pooling is the common 2×2 window with stride 2 and no padding.
fn is_2x2(p: &PoolAttrs) -> bool {
    p.kernel == [2, 2]
        && p.stride == [2, 2]
        && p.pads == [0; 4]
        && p.dilation == [1, 1]
        && !p.ceil_mode
}

/// One plane of a 2×2, stride-2 max-pool written straight into its outputs: a two-level
/// tournament (the first maximum in scan order, as the generic loop) with no callback and no
/// index bookkeeping in the comparisons, so the compiler can vectorise it.
#[inline]
fn max_pool_plane_2x2<const WINNERS: bool>(
    x: &[f32],
    w: usize,
    wo: usize,
    out: &mut [f32],
    arg: &mut [u32],
) {
    for (oy, ov) in out.chunks_exact_mut(wo).enumerate() {
        let r0 = 2 * oy * w;
        let (top, bottom) = (&x[r0..r0 + 2 * wo], &x[r0 + w..r0 + w + 2 * wo]);
        let wins = top
            .chunks_exact(2)
            .zip(bottom.chunks_exact(2))
            .map(|(t, b)| {
                let (s0, s1) = (later_wins(t[0], t[1]), later_wins(b[0], b[1]));
                let (v0, v1) = (if s0 { t[1] } else { t[0] }, if s1 { b[1] } else { b[0] });
                let s2 = later_wins(v0, v1);
                (if s2 { v1 } else { v0 }, s0, s1, s2)
            });
        if WINNERS {
            let av = &mut arg[oy * wo..(oy + 1) * wo];
            for (ox, ((o, a), (v, s0, s1, s2))) in ov.iter_mut().zip(av).zip(wins).enumerate() {
                *o = v;
                let col = if s2 { w + s1 as usize } else { s0 as usize };
                *a = (r0 + 2 * ox + col) as u32;
            }
        } else {
            ov.iter_mut().zip(wins).for_each(|(o, (v, ..))| *o = v);
        }
    }
}

/// The common case (no padding, no dilation): every window lies inside the plane.
#[inline]
fn argmax_plane_unpadded(
    x: &[f32],
    w: usize,
    p: &PoolAttrs,
    ho: usize,
    wo: usize,
    mut f: impl FnMut(usize, Option<(usize, f32)>),
) {
    let [kh, kw] = p.kernel;
    let [sh, sw] = p.stride;
    for oy in 0..ho {
        for ox in 0..wo {
            let base = oy * sh * w + ox * sw;
            let (mut bi, mut bv) = (base, x[base]);
            for i in 0..kh {
                let row = base + i * w;
                for (j, &v) in x[row..row + kw].iter().enumerate() {
                    // Strictly greater keeps the first maximum; NaN propagates as PyTorch does.
                    // Non-short-circuit so the compiler can use selects instead of branches.
                    let take = (v > bv) | (v.is_nan() & !bv.is_nan());
                    bi = if take { row + j } else { bi };
                    bv = if take { v } else { bv };
                }
            }
            f(oy * wo + ox, Some((bi, bv)));
        }
    }
}

fn argmax_plane_general(
    x: &[f32],
    h: usize,
    w: usize,
    p: &PoolAttrs,
    ho: usize,
    wo: usize,
    mut f: impl FnMut(usize, Option<(usize, f32)>),
) {
    for oy in 0..ho {
        for ox in 0..wo {
            let mut best: Option<(usize, f32)> = None;
            for i in 0..p.kernel[0] {
                let Some(y) = (oy * p.stride[0] + i * p.dilation[0]).checked_sub(p.pads[0]) else {
                    continue;
                };
                if y >= h {
                    continue;
                }
                for j in 0..p.kernel[1] {
                    let Some(xx) = (ox * p.stride[1] + j * p.dilation[1]).checked_sub(p.pads[1])
                    else {
                        continue;
                    };
                    if xx >= w {
                        continue;
                    }
                    let v = x[y * w + xx];
                    // Strictly greater keeps the first maximum; NaN propagates as PyTorch does.
                    let better = match best {
                        None => true,
                        Some((_, b)) => v > b || (v.is_nan() && !b.is_nan()),
                    };
                    if better {
                        best = Some((y * w + xx, v));
                    }
                }
            }
            f(oy * wo + ox, best);
        }
    }
}

fn dims4(d: &[usize], op: &str) -> candle_core::Result<(usize, usize, usize)> {
    match d {
        [b, c, h, w] => Ok((b * c, *h, *w)),
        _ => candle_core::bail!("{op}: expected a 4-D tensor, got {d:?}"),
    }
}

/// The max-pool forward on CPU: each output cell's value and, when `WINNERS`, the index of its
/// winner within the plane (u32::MAX for an empty window; empty when not `WINNERS`).
fn max_pool_forward<const WINNERS: bool>(
    s: &CpuStorage,
    l: &Layout,
    attrs: &PoolAttrs,
) -> candle_core::Result<(Vec<f32>, Vec<u32>, Shape)> {
    let x = f32_slice(s, l, "maxpool")?;
    let (planes, h, w) = dims4(l.dims(), "maxpool")?;
    let Some([ho, wo]) = attrs.output_hw(h, w) else {
        candle_core::bail!("maxpool: window larger than padded input {:?}", l.dims());
    };
    let mut out = vec![0f32; planes * ho * wo];
    let mut arg = vec![0u32; if WINNERS { planes * ho * wo } else { 0 }];
    let cells = (ho * wo).max(1);
    // Several planes per task: a 14×14 plane alone is too little work for a rayon job.
    let per_task = (4096 / cells).max(1);
    // Without winners every task gets an empty slice (the index writes compile away).
    let arg_chunk = if WINNERS { cells * per_task } else { 1 };
    let tasks = out.len().div_ceil(cells * per_task);
    let mut args: Vec<&mut [u32]> = arg.chunks_mut(arg_chunk).collect();
    args.resize_with(tasks, Default::default);
    let plane_2x2 = is_2x2(attrs) && wo > 0;
    out.par_chunks_mut(cells * per_task)
        .zip(args)
        .with_min_len(min_job_len())
        .enumerate()
        .for_each(|(ti, (o, a))| {
            for (k, o) in o.chunks_mut(cells).enumerate() {
                let xp = &x[(ti * per_task + k) * h * w..][..h * w];
                if plane_2x2 {
                    let a = if WINNERS {
                        &mut a[k * cells..][..cells]
                    } else {
                        &mut [][..]
                    };
                    max_pool_plane_2x2::<WINNERS>(xp, w, wo, o, a);
                    continue;
                }
                argmax_plane(xp, h, w, attrs, ho, wo, |cell, win| {
                    let (i, v) = win.unwrap_or((u32::MAX as usize, f32::NEG_INFINITY));
                    o[cell] = v;
                    if WINNERS {
                        a[k * cells + cell] = i as u32;
                    }
                });
            }
        });
    let d = l.dims();
    Ok((out, arg, Shape::from((d[0], d[1], ho, wo))))
}

/// Max pooling over [B, C, H, W]. The forward pass records each window's winner so the backward
/// pass is a scatter, not a second search.
#[derive(Debug)]
pub struct MaxPool2d {
    /// Window geometry.
    pub attrs: PoolAttrs,
    /// Winner of every output cell (index within its plane; u32::MAX for an empty window).
    argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

impl MaxPool2d {
    /// A max-pool op with this geometry.
    pub fn new(attrs: PoolAttrs) -> Self {
        MaxPool2d {
            attrs,
            argmax: Mutex::new(None),
        }
    }
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "ruse-maxpool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, arg, shape) = max_pool_forward::<true>(s, l, &self.attrs)?;
        if let Ok(mut slot) = self.argmax.lock() {
            *slot = Some(Arc::new(arg));
        }
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let argmax = self.argmax.lock().ok().and_then(|s| s.clone());
        let Some(argmax) = argmax else {
            candle_core::bail!("maxpool backward: the forward pass did not run on this device");
        };
        let g = arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPool2dBackward {
                attrs: self.attrs.clone(),
                argmax,
            },
        )?;
        Ok(Some(g))
    }
}

/// (x, grad_out) → grad_x for max pooling, scattering through the recorded winners.
#[derive(Debug, Clone)]
struct MaxPool2dBackward {
    attrs: PoolAttrs,
    argmax: Arc<Vec<u32>>,
}

impl CustomOp2 for MaxPool2dBackward {
    fn name(&self) -> &'static str {
        "ruse-maxpool2d-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let _ = f32_slice(s1, l1, "maxpool backward")?;
        let go = f32_slice(s2, l2, "maxpool backward")?;
        let (planes, h, w) = dims4(l1.dims(), "maxpool backward")?;
        let Some([ho, wo]) = self.attrs.output_hw(h, w) else {
            candle_core::bail!("maxpool backward: bad geometry");
        };
        if go.len() != planes * ho * wo || self.argmax.len() != go.len() {
            candle_core::bail!("maxpool backward: gradient does not match the forward pass");
        }
        let mut gx = vec![0f32; planes * h * w];
        gx.par_chunks_mut((h * w).max(1))
            .with_min_len(min_job_len())
            .enumerate()
            .for_each(|(pi, gp)| {
                let cells = pi * ho * wo..(pi + 1) * ho * wo;
                for (&i, &g) in self.argmax[cells.clone()].iter().zip(&go[cells]) {
                    if let Some(d) = gp.get_mut(i as usize) {
                        *d += g;
                    }
                }
            });
        Ok((CpuStorage::F32(gx), Shape::from(l1.dims())))
    }
}

/// Max pooling on CPU that also returns each output cell's winner (for `max_pool2d_backward`).
pub fn max_pool2d_with_argmax(
    x: &Tensor,
    attrs: &PoolAttrs,
) -> candle_core::Result<(Tensor, Arc<Vec<u32>>)> {
    let op = MaxPool2d::new(attrs.clone());
    let y = x.contiguous()?.apply_op1_no_bwd(&op)?;
    let argmax = op.argmax.lock().ok().and_then(|s| s.clone());
    match argmax {
        Some(a) => Ok((y, a)),
        None => candle_core::bail!("maxpool: winners were not recorded (not a CPU tensor?)"),
    }
}

/// Input gradient of max pooling from the recorded winners.
pub fn max_pool2d_backward(
    x: &Tensor,
    grad: &Tensor,
    attrs: &PoolAttrs,
    argmax: Arc<Vec<u32>>,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(
        &grad.contiguous()?,
        &MaxPool2dBackward {
            attrs: attrs.clone(),
            argmax,
        },
    )
}

/// Max pooling values only (no winners kept): for untracked forward passes.
struct MaxPool2dValues<'a>(&'a PoolAttrs);

impl CustomOp1 for MaxPool2dValues<'_> {
    fn name(&self) -> &'static str {
        "ruse-maxpool2d-values"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, _, shape) = max_pool_forward::<false>(s, l, self.0)?;
        Ok((CpuStorage::F32(out), shape))
    }
}

/// Max pooling: ruse's kernel on CPU, candle's (non-overlapping windows only) elsewhere.
pub fn max_pool2d(x: &Tensor, attrs: &PoolAttrs) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && !x.track_op() {
        return x.contiguous()?.apply_op1_no_bwd(&MaxPool2dValues(attrs));
    }
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(MaxPool2d::new(attrs.clone()));
    }
    if attrs.pads != [0; 4] || attrs.dilation != [1, 1] || attrs.ceil_mode {
        candle_core::bail!("max pooling with padding, dilation or ceil_mode is CPU-only");
    }
    x.max_pool2d_with_stride(
        (attrs.kernel[0], attrs.kernel[1]),
        (attrs.stride[0], attrs.stride[1]),
    )
}

/// Average pooling as a depthwise convolution with a constant kernel, divided by each window's
/// cell count (padding included or not).
pub fn avg_pool2d(
    x: &Tensor,
    attrs: &PoolAttrs,
    count_include_pad: bool,
) -> candle_core::Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let [kh, kw] = attrs.kernel;
    let Some([ho, wo]) = attrs.output_hw(h, w) else {
        candle_core::bail!("average pool: window larger than padded input");
    };
    let ones = Tensor::ones((c, 1, kh, kw), DType::F32, x.device())?;
    let conv = ConvAttrs {
        stride: attrs.stride,
        pads: attrs.pads,
        dilation: [1, 1],
        groups: c,
    };
    // Ceil mode can add windows past the bottom/right pad: widen the pad so the conv sees them.
    let extra_h =
        ((ho - 1) * attrs.stride[0] + kh).saturating_sub(h + attrs.pads[0] + attrs.pads[2]);
    let extra_w =
        ((wo - 1) * attrs.stride[1] + kw).saturating_sub(w + attrs.pads[1] + attrs.pads[3]);
    let conv = ConvAttrs {
        pads: [
            conv.pads[0],
            conv.pads[1],
            conv.pads[2] + extra_h,
            conv.pads[3] + extra_w,
        ],
        ..conv
    };
    let sum = super::conv::conv2d(x, &ones, None, &conv)?;
    let mut counts = vec![0f32; ho * wo];
    for oy in 0..ho {
        for ox in 0..wo {
            let count = |o: usize, s: usize, k: usize, p0: usize, p1: usize, n: usize| {
                let start = (o * s) as isize - p0 as isize;
                let end = (start + k as isize).min((n + p1) as isize);
                let (lo, hi) = if count_include_pad {
                    (start, end)
                } else {
                    (start.max(0), end.min(n as isize))
                };
                (hi - lo).max(0) as f32
            };
            let cy = count(oy, attrs.stride[0], kh, attrs.pads[0], attrs.pads[2], h);
            let cx = count(ox, attrs.stride[1], kw, attrs.pads[1], attrs.pads[3], w);
            counts[oy * wo + ox] = 1.0 / (cy * cx).max(1.0);
        }
    }
    let inv = Tensor::from_vec(counts, (1, 1, ho, wo), x.device())?;
    sum.broadcast_mul(&inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable 2×2 path picks the same winners and values as the generic window loop,
    /// on planes full of ties and NaNs (odd sizes leave a last row and column unused).
    #[test]
    fn plane_2x2_matches_generic_loop() {
        let p = PoolAttrs {
            kernel: [2, 2],
            stride: [2, 2],
            pads: [0; 4],
            dilation: [1, 1],
            ceil_mode: false,
        };
        let vals = [0.0, 1.0, 1.0, -2.0, f32::NAN, 3.0, -0.0];
        for (h, w) in [(2, 2), (4, 6), (5, 7), (8, 8)] {
            let (ho, wo) = (h / 2, w / 2);
            for seed in 0..50usize {
                let x: Vec<f32> = (0..h * w)
                    .map(|i| vals[(i * 7 + seed * 13 + i * i * seed) % vals.len()])
                    .collect();
                let (mut want_v, mut want_i) = (vec![0f32; ho * wo], vec![0u32; ho * wo]);
                argmax_plane_unpadded(&x, w, &p, ho, wo, |cell, win| {
                    let (i, v) = win.unwrap_or((usize::MAX, f32::NEG_INFINITY));
                    want_v[cell] = v;
                    want_i[cell] = i as u32;
                });
                let (mut got_v, mut got_i) = (vec![0f32; ho * wo], vec![0u32; ho * wo]);
                max_pool_plane_2x2::<true>(&x, w, wo, &mut got_v, &mut got_i);
                assert_eq!(got_i, want_i, "{h}x{w} seed {seed}");
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got_v), bits(&want_v), "{h}x{w} seed {seed}");
                let mut only_v = vec![0f32; ho * wo];
                max_pool_plane_2x2::<false>(&x, w, wo, &mut only_v, &mut []);
                assert_eq!(bits(&only_v), bits(&want_v));
            }
        }
    }
}
