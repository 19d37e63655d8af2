//! 2-D convolution as a candle custom op: im2col + gemm forward, gemm + col2im backward,
//! parallel over the batch. Weight gradients are only computed when the weight is tracked.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{matmul, MatRef};
use super::{f32_slice, fixed_chunks, min_job_len, with_scratch};
use crate::op::ConvAttrs;

/// Table entry for a read of the zero padding (never a valid offset: images are < 4 G floats).
const PAD: u32 = u32::MAX;

/// Static geometry of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    groups: usize,
    stride: [usize; 2],
    pads: [usize; 4],
    dil: [usize; 2],
}

impl Geom {
    fn new(x: &[usize], w: &[usize], a: &ConvAttrs) -> candle_core::Result<Self> {
        if x.len() != 4 || w.len() != 4 {
            candle_core::bail!("conv2d: expected 4-D input and weight, got {x:?} and {w:?}");
        }
        let (kh, kw) = (w[2], w[3]);
        let out = |inp: usize, k: usize, s: usize, p0: usize, p1: usize, d: usize| {
            let span = (k - 1) * d + 1;
            (inp + p0 + p1).checked_sub(span).map(|v| v / s + 1)
        };
        let ho = out(x[2], kh, a.stride[0], a.pads[0], a.pads[2], a.dilation[0]);
        let wo = out(x[3], kw, a.stride[1], a.pads[1], a.pads[3], a.dilation[1]);
        let (Some(ho), Some(wo)) = (ho, wo) else {
            candle_core::bail!("conv2d: kernel {kh}x{kw} larger than padded input {x:?}");
        };
        if a.groups == 0 || x[1] != w[1] * a.groups || !w[0].is_multiple_of(a.groups) {
            candle_core::bail!(
                "conv2d: weight {w:?} does not fit input {x:?} with {} groups",
                a.groups
            );
        }
        Ok(Geom {
            b: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            m: w[0],
            kh,
            kw,
            ho,
            wo,
            groups: a.groups,
            stride: a.stride,
            pads: a.pads,
            dil: a.dilation,
        })
    }
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    fn mg(&self) -> usize {
        self.m / self.groups
    }
    /// Rows of the column matrix per group.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    fn hw_out(&self) -> usize {
        self.ho * self.wo
    }
    fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.m * self.hw_out()
    }
    /// Images per gemm: enough columns (≈2048) that the matrix product runs at full speed.
    fn block(&self) -> usize {
        (2048 / self.hw_out().max(1)).clamp(1, 64)
    }
    /// Output columns `ox` whose input column `ox·s + j·d − p` lies in [0, w): a half-open range.
    #[inline]
    fn valid_ox(&self, j: usize) -> (usize, usize) {
        let (s, off) = (self.stride[1], j * self.dil[1]);
        let p = self.pads[1];
        // first ox with ox·s + off ≥ p
        let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
        // last ox with ox·s + off − p ≤ w − 1
        let hi = if off > p + self.w - 1 {
            0
        } else {
            ((p + self.w - 1 - off) / s + 1).min(self.wo)
        };
        (lo.min(hi), hi)
    }

    /// Whether patches are gathered through an offset table: strided or narrow outputs, where
    /// the row-copy loops below run only a few elements per call.
    fn gathers(&self) -> bool {
        // u32 offsets: an image of ≥ 4 G floats (never seen) keeps the row-copy path.
        let fits = u32::try_from(self.in_len()).is_ok_and(|n| n < PAD);
        fits && (self.stride[1] != 1 || self.wo < 8)
    }

    /// Per entry of group `g`'s column matrix of one image (row-major, k × ho·wo), the offset in
    /// the image it reads, or `PAD` where it reads the zero padding.
    fn gather_table(&self, g: usize) -> Vec<u32> {
        let plane = self.h * self.w;
        let mut t = Vec::with_capacity(self.k() * self.hw_out());
        for cc in 0..self.cg() {
            let base = (g * self.cg() + cc) * plane;
            for i in 0..self.kh {
                for j in 0..self.kw {
                    for oy in 0..self.ho {
                        let y = (oy * self.stride[0] + i * self.dil[0]).wrapping_sub(self.pads[0]);
                        for ox in 0..self.wo {
                            let x =
                                (ox * self.stride[1] + j * self.dil[1]).wrapping_sub(self.pads[1]);
                            // `gathers` guarantees every offset fits below PAD.
                            t.push(if y < self.h && x < self.w {
                                (base + y * self.w + x) as u32
                            } else {
                                PAD
                            });
                        }
                    }
                }
            }
        }
        t
    }

    /// Every group's gather table, where patches are gathered (see `gathers`); built once per
    /// kernel call and shared by its images.
    fn gather_tables(&self) -> Option<Vec<Vec<u32>>> {
        self.gathers()
            .then(|| (0..self.groups).map(|gi| self.gather_table(gi)).collect())
    }

    /// `im2col` of group `g`, through its gather table when there are tables.
    fn patches(
        &self,
        tables: Option<&[Vec<u32>]>,
        x: &[f32],
        g: usize,
        col: &mut [f32],
        ld: usize,
    ) {
        match tables {
            Some(t) => self.im2col_table(x, &t[g], col, ld),
            None => self.im2col(x, g, col, ld),
        }
    }

    /// `col2im` of group `g`, through its gather table when there are tables.
    fn unpatch(
        &self,
        tables: Option<&[Vec<u32>]>,
        col: &[f32],
        g: usize,
        gx: &mut [f32],
        ld: usize,
    ) {
        match tables {
            Some(t) => self.col2im_table(col, &t[g], gx, ld),
            None => self.col2im(col, g, gx, ld),
        }
    }

    /// `im2col` through a gather table (see `gather_table`).
    fn im2col_table(&self, x: &[f32], table: &[u32], col: &mut [f32], ld: usize) {
        let hw = self.hw_out();
        for (r, offs) in table.chunks(hw.max(1)).enumerate() {
            for (d, &o) in col[r * ld..][..hw].iter_mut().zip(offs) {
                *d = x.get(o as usize).copied().unwrap_or(0.0);
            }
        }
    }

    /// `col2im` through a gather table (see `gather_table`).
    fn col2im_table(&self, col: &[f32], table: &[u32], gx: &mut [f32], ld: usize) {
        let hw = self.hw_out();
        for (r, offs) in table.chunks(hw.max(1)).enumerate() {
            for (v, &o) in col[r * ld..][..hw].iter().zip(offs) {
                if let Some(d) = gx.get_mut(o as usize) {
                    *d += v;
                }
            }
        }
    }

    /// Fills `col` (k rows of stride `ld`, ho·wo columns used) with the patches of group `g` of
    /// one image `x` (c × h × w).
    fn im2col(&self, x: &[f32], g: usize, col: &mut [f32], ld: usize) {
        let hw = self.hw_out();
        let plane = self.h * self.w;
        for cc in 0..self.cg() {
            let xc = &x[(g * self.cg() + cc) * plane..][..plane];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = &mut col[((cc * self.kh + i) * self.kw + j) * ld..][..hw];
                    let (lo, hi) = self.valid_ox(j);
                    for oy in 0..self.ho {
                        let dst = &mut row[oy * self.wo..][..self.wo];
                        let y = (oy * self.stride[0] + i * self.dil[0]).wrapping_sub(self.pads[0]);
                        if y >= self.h {
                            dst.fill(0.0);
                            continue;
                        }
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if lo < hi {
                            let x0 = lo * self.stride[1] + j * self.dil[1] - self.pads[1];
                            let src = &xc[y * self.w..][..self.w];
                            if self.stride[1] == 1 {
                                dst[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                            } else {
                                for (k, d) in dst[lo..hi].iter_mut().enumerate() {
                                    *d = src[x0 + k * self.stride[1]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the column gradient `col` (k rows of stride `ld`) of group `g` back into the image
    /// gradient `gx`.
    fn col2im(&self, col: &[f32], g: usize, gx: &mut [f32], ld: usize) {
        let hw = self.hw_out();
        let plane = self.h * self.w;
        for cc in 0..self.cg() {
            let gc = &mut gx[(g * self.cg() + cc) * plane..][..plane];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = &col[((cc * self.kh + i) * self.kw + j) * ld..][..hw];
                    let (lo, hi) = self.valid_ox(j);
                    if lo >= hi {
                        continue;
                    }
                    for oy in 0..self.ho {
                        let y = (oy * self.stride[0] + i * self.dil[0]).wrapping_sub(self.pads[0]);
                        if y >= self.h {
                            continue;
                        }
                        let src = &row[oy * self.wo..][lo..hi];
                        let x0 = lo * self.stride[1] + j * self.dil[1] - self.pads[1];
                        let dst = &mut gc[y * self.w..][..self.w];
                        if self.stride[1] == 1 {
                            for (d, v) in dst[x0..x0 + hi - lo].iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (k, v) in src.iter().enumerate() {
                                dst[x0 + k * self.stride[1]] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forward kernel: per image, im2col then one gemm per group, then the bias per channel.
fn conv_forward(
    attrs: &ConvAttrs,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    bias: Option<&[f32]>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let g = Geom::new(l1.dims(), l2.dims(), attrs)?;
    let tables = g.gather_tables();
    let x = f32_slice(s1, l1, "conv2d")?;
    let w = f32_slice(s2, l2, "conv2d")?;
    if bias.is_some_and(|b| b.len() != g.m) {
        candle_core::bail!("conv2d: bias must have {} elements", g.m);
    }
    let mut out = vec![0f32; g.b * g.out_len()];
    let (k, hw, mg) = (g.k(), g.hw_out(), g.mg());
    let nb = g.block();
    out.par_chunks_mut((nb * g.out_len()).max(1))
        .with_min_len(min_job_len())
        .enumerate()
        .for_each(|(blk, ob)| {
            with_scratch(k * nb * hw, mg * nb * hw, |col, tmp| {
                let n = ob.len() / g.out_len().max(1);
                let ld = n * hw;
                for gi in 0..g.groups {
                    for j in 0..n {
                        let xb = &x[(blk * nb + j) * g.in_len()..][..g.in_len()];
                        g.patches(tables.as_deref(), xb, gi, &mut col[j * hw..], ld);
                    }
                    let wg = MatRef::row_major(&w[gi * mg * k..][..mg * k], mg, k);
                    matmul(
                        wg,
                        MatRef::row_major(&col[..k * ld], k, ld),
                        &mut tmp[..mg * ld],
                        false,
                    );
                    // tmp is [mg, n·hw]; the output wants [n, m, hw].
                    for j in 0..n {
                        for mi in 0..mg {
                            let m = gi * mg + mi;
                            let dst = &mut ob[(j * g.m + m) * hw..][..hw];
                            dst.copy_from_slice(&tmp[mi * ld + j * hw..][..hw]);
                            if let Some(bias) = bias {
                                dst.iter_mut().for_each(|v| *v += bias[m]);
                            }
                        }
                    }
                }
            })
        });
    Ok((CpuStorage::F32(out), Shape::from((g.b, g.m, g.ho, g.wo))))
}

/// Forward convolution with a bias per output channel (fused: no extra pass over the output).
#[derive(Debug, Clone)]
pub struct Conv2dBias {
    /// Geometry attributes.
    pub attrs: ConvAttrs,
}

impl CustomOp3 for Conv2dBias {
    fn name(&self) -> &'static str {
        "ruse-conv2d-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let b = f32_slice(s3, l3, "conv2d bias")?;
        conv_forward(&self.attrs, s1, l1, s2, l2, Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = Conv2d {
            attrs: self.attrs.clone(),
        }
        .bwd(x, w, res, grad)?;
        let gb = if b.track_op() {
            Some(channel_sum(grad)?)
        } else {
            None
        };
        Ok((gx, gw, gb))
    }
}

/// Sum of a [B, C, …] tensor over everything but the channel axis (a bias gradient), in a fixed
/// order per channel so it is bit-reproducible.
pub fn channel_sum(g: &Tensor) -> candle_core::Result<Tensor> {
    if !g.device().is_cpu() {
        let (b, c) = (g.dim(0)?, g.dim(1)?);
        return g.reshape((b, c, ()))?.sum(2)?.sum(0);
    }
    g.contiguous()?.apply_op1_no_bwd(&ChannelSum)
}

/// [B, C, …] → [C] sum (see `channel_sum`).
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "ruse-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, "channel sum")?;
        let d = l.dims();
        if d.len() < 2 {
            candle_core::bail!("channel sum needs [B, C, …], got {d:?}");
        }
        let (b, c) = (d[0], d[1]);
        let inner: usize = d[2..].iter().product();
        let out: Vec<f32> = (0..c)
            .into_par_iter()
            .map(|ci| {
                (0..b)
                    .map(|bi| g[(bi * c + ci) * inner..][..inner].iter().sum::<f32>())
                    .sum()
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(c)))
    }
}

/// Forward convolution (no bias): x [B,C,H,W] ⊛ w [M,C/g,kh,kw] → [B,M,Ho,Wo].
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Geometry attributes.
    pub attrs: ConvAttrs,
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "ruse-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        conv_forward(&self.attrs, s1, l1, s2, l2, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = if x.track_op() {
            Some(conv2d_backward_input(grad, w, &self.attrs, x.dims())?)
        } else {
            None
        };
        let gw = if w.track_op() {
            Some(conv2d_backward_weight(x, grad, &self.attrs, w.dims())?)
        } else {
            None
        };
        Ok((gx, gw))
    }
}

/// Gradient of the convolution with respect to its input: (grad_out, w) → grad_x.
#[derive(Debug, Clone)]
struct Conv2dBackwardInput {
    attrs: ConvAttrs,
    input_dims: Vec<usize>,
}

impl CustomOp2 for Conv2dBackwardInput {
    fn name(&self) -> &'static str {
        "ruse-conv2d-bwd-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geom::new(&self.input_dims, l2.dims(), &self.attrs)?;
        let tables = g.gather_tables();
        let go = f32_slice(s1, l1, "conv2d backward")?;
        let w = f32_slice(s2, l2, "conv2d backward")?;
        let (k, hw, mg) = (g.k(), g.hw_out(), g.mg());
        let mut gx = vec![0f32; g.b * g.in_len()];
        let nb = g.block();
        gx.par_chunks_mut((nb * g.in_len()).max(1))
            .with_min_len(min_job_len())
            .enumerate()
            .for_each(|(blk, gxb)| {
                with_scratch(k * nb * hw, mg * nb * hw, |col, gm| {
                    let n = gxb.len() / g.in_len().max(1);
                    let ld = n * hw;
                    for gi in 0..g.groups {
                        // Gather this group's output gradient as [mg, n·hw].
                        for j in 0..n {
                            for mi in 0..mg {
                                let src = &go[((blk * nb + j) * g.m + gi * mg + mi) * hw..][..hw];
                                gm[mi * ld + j * hw..][..hw].copy_from_slice(src);
                            }
                        }
                        let wt = MatRef::row_major(&w[gi * mg * k..][..mg * k], mg, k).t();
                        matmul(
                            wt,
                            MatRef::row_major(&gm[..mg * ld], mg, ld),
                            &mut col[..k * ld],
                            false,
                        );
                        for j in 0..n {
                            let gxj = &mut gxb[j * g.in_len()..][..g.in_len()];
                            g.unpatch(tables.as_deref(), &col[j * hw..], gi, gxj, ld);
                        }
                    }
                })
            });
        Ok((CpuStorage::F32(gx), Shape::from(self.input_dims.clone())))
    }
}

/// Gradient of the convolution with respect to its weight: (x, grad_out) → grad_w.
#[derive(Debug, Clone)]
struct Conv2dBackwardWeight {
    attrs: ConvAttrs,
    weight_dims: Vec<usize>,
}

/// Batch chunks for weight-gradient partial sums: fixed, so the result does not depend on threads.
const WEIGHT_GRAD_CHUNKS: usize = 16;

impl CustomOp2 for Conv2dBackwardWeight {
    fn name(&self) -> &'static str {
        "ruse-conv2d-bwd-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), &self.weight_dims, &self.attrs)?;
        let tables = g.gather_tables();
        let x = f32_slice(s1, l1, "conv2d weight backward")?;
        let go = f32_slice(s2, l2, "conv2d weight backward")?;
        let (k, hw, mg) = (g.k(), g.hw_out(), g.mg());
        let wlen = g.m * k;
        let partials: Vec<Vec<f32>> = fixed_chunks(g.b, WEIGHT_GRAD_CHUNKS)
            .into_par_iter()
            .map(|range| {
                let mut acc = vec![0f32; wlen];
                let n = range.len();
                let ld = n * hw;
                with_scratch(k * ld, mg * ld, |col, gm| {
                    for gi in 0..g.groups {
                        for (j, bi) in range.clone().enumerate() {
                            let xb = &x[bi * g.in_len()..][..g.in_len()];
                            g.patches(tables.as_deref(), xb, gi, &mut col[j * hw..], ld);
                            for mi in 0..mg {
                                let src = &go[(bi * g.m + gi * mg + mi) * hw..][..hw];
                                gm[mi * ld + j * hw..][..hw].copy_from_slice(src);
                            }
                        }
                        let cm = MatRef::row_major(&col[..k * ld], k, ld);
                        let gmat = MatRef::row_major(&gm[..mg * ld], mg, ld);
                        matmul(gmat, cm.t(), &mut acc[gi * mg * k..][..mg * k], true);
                    }
                });
                acc
            })
            .collect();
        let mut gw = vec![0f32; wlen];
        for p in &partials {
            gw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        Ok((CpuStorage::F32(gw), Shape::from(self.weight_dims.clone())))
    }
}

/// Convolution with ruse's kernel on CPU and candle's conv2d elsewhere; bias added by broadcast.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    attrs: &ConvAttrs,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        return match b {
            Some(b) => x.apply_op3(
                &w,
                &b.contiguous()?,
                Conv2dBias {
                    attrs: attrs.clone(),
                },
            ),
            None => x.apply_op2(
                &w,
                Conv2d {
                    attrs: attrs.clone(),
                },
            ),
        };
    }
    let y = {
        if attrs.dilation[0] != attrs.dilation[1] || attrs.stride[0] != attrs.stride[1] {
            candle_core::bail!(
                "conv2d on this device needs equal strides and dilations on both axes"
            );
        }
        let xp = x
            .pad_with_zeros(2, attrs.pads[0], attrs.pads[2])?
            .pad_with_zeros(3, attrs.pads[1], attrs.pads[3])?;
        xp.conv2d(w, 0, attrs.stride[0], attrs.dilation[0], attrs.groups)?
    };
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// Input gradient of a convolution (CPU): grad_out [B,M,Ho,Wo], w → grad_x of shape `input_dims`.
pub fn conv2d_backward_input(
    grad: &Tensor,
    w: &Tensor,
    attrs: &ConvAttrs,
    input_dims: &[usize],
) -> candle_core::Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(
        &w.contiguous()?,
        &Conv2dBackwardInput {
            attrs: attrs.clone(),
            input_dims: input_dims.to_vec(),
        },
    )
}

/// Weight gradient of a convolution (CPU): x, grad_out → grad_w of shape `weight_dims`.
pub fn conv2d_backward_weight(
    x: &Tensor,
    grad: &Tensor,
    attrs: &ConvAttrs,
    weight_dims: &[usize],
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(
        &grad.contiguous()?,
        &Conv2dBackwardWeight {
            attrs: attrs.clone(),
            weight_dims: weight_dims.to_vec(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gather-table path and the row-copy path build the same column matrix and scatter the
    /// same image gradient, over strides, pads, dilations and groups.
    #[test]
    fn gather_tables_match_row_copies() {
        let cases = [
            // (c, h, w, m, kh, kw, stride, pads, dil, groups)
            (1, 28, 28, 4, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
            (2, 13, 11, 4, 4, 4, [2, 2], [1, 0, 2, 1], [1, 1], 1),
            (4, 9, 10, 6, 3, 2, [1, 3], [0, 2, 1, 0], [2, 1], 2),
            (3, 7, 20, 3, 5, 3, [3, 1], [2, 2, 2, 2], [1, 2], 3),
        ];
        for (c, h, w, m, kh, kw, stride, pads, dilation, groups) in cases {
            let attrs = ConvAttrs {
                stride,
                pads,
                dilation,
                groups,
            };
            let g = Geom::new(&[1, c, h, w], &[m, c / groups, kh, kw], &attrs).unwrap();
            let x: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
            let (k, hw) = (g.k(), g.hw_out());
            let ld = hw + 3;
            for gi in 0..groups {
                let t = g.gather_table(gi);
                let (mut a, mut b) = (vec![7f32; k * ld], vec![7f32; k * ld]);
                g.im2col(&x, gi, &mut a, ld);
                g.im2col_table(&x, &t, &mut b, ld);
                assert_eq!(
                    a, b,
                    "im2col, case {c}x{h}x{w} stride {stride:?} group {gi}"
                );
                let col: Vec<f32> = (0..k * ld).map(|i| (i as f32 * 0.11).cos()).collect();
                let (mut ga, mut gb) = (vec![0f32; c * h * w], vec![0f32; c * h * w]);
                g.col2im(&col, gi, &mut ga, ld);
                g.col2im_table(&col, &t, &mut gb, ld);
                let e = crate::kernels::max_abs_diff(&ga, &gb);
                assert!(
                    e < 1e-5,
                    "col2im differs by {e}, case {c}x{h}x{w} group {gi}"
                );
            }
        }
    }
}
