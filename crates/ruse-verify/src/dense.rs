//! A fast path for the networks VNN-COMP's ReLU benchmarks use: a chain of affine maps with
//! ReLUs between them. The graph's ops (Gemm, MatMul, constant Add/Sub/Mul/Div, Flatten/Reshape)
//! are folded into dense f64 matrices once, and CROWN runs on plain slices with `gemm`, one
//! domain per thread, without tensor-library overhead (measured on acasxu 1_3 prop 3, 20 s budget, busy
//! 2 cores: ~1700 input-split domains through the candle path, ~60000 through this one).
//!
//! The f32 rounding allowance of the ops inside one block is carried to the block's output as
//! a linear function of the block input's magnitude, evaluated per domain from that domain's
//! own bounds (so it shrinks with the box, as the generic path's does).

use ruse_graph::{Graph, Op, Operand};

use crate::ibp::{gamma, BoundError, U};

/// One affine block `z = W·a + b + e`, where the f32 rounding error of the block's ops obeys
/// `|e| ≤ E·max|a| + e0` (each op's error is linear in the magnitude of its input).
#[derive(Debug, Clone)]
pub struct Affine {
    /// Row-major `[n_out × n_in]`.
    pub w: Vec<f64>,
    /// Bias, `[n_out]`.
    pub b: Vec<f64>,
    /// Error growth `E`, row-major `[n_out × n_in]`, ≥ 0.
    pub err_w: Vec<f64>,
    /// Error floor `e0`, `[n_out]`, ≥ 0.
    pub err_b: Vec<f64>,
    /// Inputs.
    pub n_in: usize,
    /// Outputs.
    pub n_out: usize,
}

/// Affine blocks with a ReLU after every block but the last (and after the last when
/// `final_relu`).
#[derive(Debug, Clone)]
pub struct DenseNet {
    /// The blocks, input first.
    pub layers: Vec<Affine>,
    /// The output is ReLU of the last block.
    pub final_relu: bool,
}

/// Pre-activation bounds of every block (those the ReLUs need).
pub type LayerBounds = Vec<(Vec<f64>, Vec<f64>)>;

/// CROWN result for one domain.
pub struct DenseBound {
    /// Lower bound per spec row.
    pub lower: Vec<f64>,
    /// Input coefficients per spec row, `[S × n_in]` row-major.
    pub a_in: Vec<f64>,
    /// Pre-activation bounds used.
    pub layers: LayerBounds,
}

/// `c[m×n] = a[m×k] · b[k×n]`, all row-major.
pub(crate) fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    gemm_strided(a, b, m, k, n, (1, n as isize))
}

/// `c[m×n] = a[m×k] · bᵀ` for `b` row-major `[n×k]`, all row-major.
pub(crate) fn matmul_bt(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    gemm_strided(a, b, m, k, n, (k as isize, 1))
}

/// `a[m×k]` (row-major) times the `k×n` matrix stored in `b` with (column, row) strides `bs`.
fn gemm_strided(
    a: &[f64],
    b: &[f64],
    m: usize,
    k: usize,
    n: usize,
    bs: (isize, isize),
) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    assert!(a.len() >= m * k && b.len() >= k * n, "dense matmul sizes");
    // SAFETY: a (m×k, row-major), c (m×n, row-major) and b (k·n elements, either layout; the
    // strides address exactly those) have their lengths checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            bs.0,
            bs.1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    c
}

impl DenseNet {
    /// Folds `graph` into affine blocks, or None when it is not such a chain.
    pub fn from_graph(graph: &Graph) -> Result<Option<DenseNet>, BoundError> {
        let n0 = graph.input_len();
        let mut cur = 0usize; // value the chain has reached
        let mut m = identity(n0); // current value = m·anchor + c
        let (mut rows, mut cols) = (n0, n0);
        let mut c = vec![0.0; n0];
        // Rounding error accumulated since the anchor: |err| ≤ ew·max|anchor| + eb.
        let mut ew = vec![0.0; n0 * n0];
        let mut eb = vec![0.0; n0];
        let mut layers = Vec::new();
        let mut last_relu = false;
        for node in &graph.nodes {
            let Some(Operand::Value(x)) = node.inputs.first() else {
                return Ok(None);
            };
            if *x != cur {
                return Ok(None);
            }
            let param = |k: usize| -> Result<Option<Vec<f64>>, BoundError> {
                match node.inputs.get(k) {
                    Some(Operand::Param(p)) => {
                        let t = crate::ibp::f64t(&graph.params[*p].tensor)?;
                        Ok(Some(t.flatten_all()?.to_vec1()?))
                    }
                    _ => Ok(None),
                }
            };
            let out_len: usize = graph.values[node.output].shape.iter().product();
            last_relu = false;
            match &node.op {
                Op::Reshape { .. } | Op::Identity => {}
                Op::Add | Op::Sub | Op::Mul | Op::Div => {
                    if node.inputs.len() != 2 || out_len != rows {
                        return Ok(None);
                    }
                    let Some(k) = param(1)? else { return Ok(None) };
                    let kv = |i: usize| if k.len() == 1 { k[0] } else { k[i] };
                    if k.len() != 1 && k.len() != rows {
                        return Ok(None);
                    }
                    for i in 0..rows {
                        let f = match node.op {
                            Op::Add => {
                                c[i] += kv(i);
                                1.0
                            }
                            Op::Sub => {
                                c[i] -= kv(i);
                                1.0
                            }
                            Op::Div => 1.0 / kv(i),
                            _ => kv(i),
                        };
                        let r = i * cols..(i + 1) * cols;
                        if f != 1.0 {
                            c[i] *= f;
                            for v in &mut m[r.clone()] {
                                *v *= f;
                            }
                        }
                        // |err'| ≤ |f|·|err| + 2u·|y|, |y| ≤ |m'|·max|a| + |c'| + |f|·|err|.
                        let fa = f.abs();
                        for (e, mv) in ew[r.clone()].iter_mut().zip(&m[r]) {
                            *e = fa * *e * (1.0 + 2.0 * U) + 2.0 * U * mv.abs();
                        }
                        eb[i] = fa * eb[i] * (1.0 + 2.0 * U) + 2.0 * U * c[i].abs() + 1e-38;
                    }
                }
                Op::Gemm {
                    alpha,
                    beta,
                    trans_b,
                } => {
                    let Some(w) = param(1)? else { return Ok(None) };
                    let p = match &node.inputs[1] {
                        Operand::Param(p) => *p,
                        _ => return Ok(None),
                    };
                    let d = graph.params[p].tensor.dims().to_vec();
                    if d.len() != 2 {
                        return Ok(None);
                    }
                    // W' as [n_out × n_in].
                    let (n_out, n_in) = if *trans_b { (d[0], d[1]) } else { (d[1], d[0]) };
                    if n_in != rows {
                        return Ok(None);
                    }
                    let mut wt = vec![0.0; n_out * n_in];
                    for o in 0..n_out {
                        for i in 0..n_in {
                            let v = if *trans_b {
                                w[o * n_in + i]
                            } else {
                                w[i * n_out + o]
                            };
                            wt[o * n_in + i] = v * *alpha as f64;
                        }
                    }
                    let bias = param(2)?.unwrap_or_default();
                    if !(bias.is_empty() || bias.len() == 1 || bias.len() == n_out) {
                        return Ok(None);
                    }
                    let mut nc = matmul(&wt, &c, n_out, n_in, 1);
                    for (o, v) in nc.iter_mut().enumerate() {
                        if !bias.is_empty() {
                            *v += *beta as f64 * if bias.len() == 1 { bias[0] } else { bias[o] };
                        }
                    }
                    let babs: Vec<f64> = (0..n_out)
                        .map(|o| match bias.len() {
                            0 => 0.0,
                            1 => (*beta as f64 * bias[0]).abs(),
                            _ => (*beta as f64 * bias[o]).abs(),
                        })
                        .collect();
                    let abs: Vec<f64> = wt.iter().map(|v| v.abs()).collect();
                    (ew, eb) = through_linear(&abs, &m, &c, &ew, &eb, &babs, n_out, n_in, cols);
                    m = matmul(&wt, &m, n_out, n_in, cols);
                    c = nc;
                    rows = n_out;
                }
                Op::MatMul => {
                    let Some(w) = param(1)? else { return Ok(None) };
                    let p = match &node.inputs[1] {
                        Operand::Param(p) => *p,
                        _ => return Ok(None),
                    };
                    let d = graph.params[p].tensor.dims().to_vec();
                    if d.len() != 2 || d[0] != rows {
                        return Ok(None);
                    }
                    let (n_in, n_out) = (d[0], d[1]);
                    let mut wt = vec![0.0; n_out * n_in];
                    for i in 0..n_in {
                        for o in 0..n_out {
                            wt[o * n_in + i] = w[i * n_out + o];
                        }
                    }
                    let abs: Vec<f64> = wt.iter().map(|v| v.abs()).collect();
                    let zero = vec![0.0; n_out];
                    (ew, eb) = through_linear(&abs, &m, &c, &ew, &eb, &zero, n_out, n_in, cols);
                    c = matmul(&wt, &c, n_out, n_in, 1);
                    m = matmul(&wt, &m, n_out, n_in, cols);
                    rows = n_out;
                }
                Op::Relu => {
                    layers.push(Affine {
                        w: std::mem::take(&mut m),
                        b: std::mem::take(&mut c),
                        err_w: std::mem::take(&mut ew),
                        err_b: std::mem::take(&mut eb),
                        n_in: cols,
                        n_out: rows,
                    });
                    m = identity(rows);
                    cols = rows;
                    c = vec![0.0; rows];
                    ew = vec![0.0; rows * rows];
                    eb = vec![0.0; rows];
                    last_relu = true;
                }
                _ => return Ok(None),
            }
            if out_len != rows {
                return Ok(None);
            }
            cur = node.output;
        }
        if cur != graph.output {
            return Ok(None);
        }
        let final_relu = last_relu;
        if !final_relu {
            layers.push(Affine {
                w: m,
                b: c,
                err_w: ew,
                err_b: eb,
                n_in: cols,
                n_out: rows,
            });
        }
        Ok(Some(DenseNet { layers, final_relu }))
    }

    /// Input size.
    pub fn n_in(&self) -> usize {
        self.layers.first().map_or(0, |l| l.n_in)
    }

    /// Output size.
    pub fn n_out(&self) -> usize {
        self.layers.last().map_or(0, |l| l.n_out)
    }

    /// Whether block `k` is followed by a ReLU.
    fn has_relu(&self, k: usize) -> bool {
        k + 1 < self.layers.len() || self.final_relu
    }

    /// Rounding allowance of block `k`'s outputs when its inputs are at most `amax` in magnitude.
    pub(crate) fn allowance(&self, k: usize, amax: &[f64]) -> Vec<f64> {
        let l = &self.layers[k];
        let mut dk = matmul(&l.err_w, amax, l.n_out, l.n_in, 1);
        for (v, e) in dk.iter_mut().zip(&l.err_b) {
            *v += e;
        }
        dk
    }

    /// Backward from coefficients `a` (`[r × n_k]`) on the output of block `k` (its
    /// pre-activation `z_k`), with constant `bias`: returns input coefficients, constant and
    /// magnitude of the constant terms.
    fn back_from(
        &self,
        k: usize,
        mut a: Vec<f64>,
        mut bias: Vec<f64>,
        r: usize,
        pre: &LayerBounds,
        deltas: &[Vec<f64>],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut mag = vec![0.0; r];
        let mut i = k;
        loop {
            let l = &self.layers[i];
            // z_i = W a + b + e.
            for row in 0..r {
                let ar = &a[row * l.n_out..(row + 1) * l.n_out];
                let mut t = 0.0;
                let mut e = 0.0;
                for j in 0..l.n_out {
                    t += ar[j] * l.b[j];
                    e += ar[j].abs() * deltas[i][j];
                }
                bias[row] += t - e;
                mag[row] += t.abs() + e;
            }
            a = matmul(&a, &l.w, r, l.n_out, l.n_in);
            if i == 0 {
                return (a, bias, mag);
            }
            i -= 1;
            // a = relu(z_i): relax with the bounds of z_i.
            let (lo, hi) = &pre[i];
            let n = self.layers[i].n_out;
            relax_relu(&mut a, &mut bias, &mut mag, r, n, lo, hi);
        }
    }

    /// CROWN bounds of the spec rows `c` (`[s × n_out]`) + `d` on the box [lo, hi], with CROWN
    /// bounds for every ReLU's input (only unstable neurons are re-bounded).
    pub fn crown(&self, lo: &[f64], hi: &[f64], c: &[f64], d: &[f64]) -> DenseBound {
        let nl = self.layers.len();
        let mut pre: LayerBounds = Vec::with_capacity(nl);
        let xmax: Vec<f64> = lo
            .iter()
            .zip(hi)
            .map(|(l, h)| l.abs().max(h.abs()))
            .collect();
        let mut deltas: Vec<Vec<f64>> = Vec::with_capacity(nl);
        for k in 0..nl {
            // This block's rounding allowance, from its input's magnitude in this domain.
            let amax: Vec<f64> = if k == 0 {
                xmax.clone()
            } else {
                pre[k - 1].1.iter().map(|v| v.max(0.0)).collect()
            };
            let l = &self.layers[k];
            deltas.push(self.allowance(k, &amax));
            if !self.has_relu(k) {
                break;
            }
            // Interval bounds first (from the previous layer's bounds).
            let (plo, phi): (Vec<f64>, Vec<f64>) = if k == 0 {
                (lo.to_vec(), hi.to_vec())
            } else {
                (
                    pre[k - 1].0.iter().map(|v| v.max(0.0)).collect(),
                    pre[k - 1].1.iter().map(|v| v.max(0.0)).collect(),
                )
            };
            let mut zl = vec![0.0; l.n_out];
            let mut zu = vec![0.0; l.n_out];
            for o in 0..l.n_out {
                let w = &l.w[o * l.n_in..(o + 1) * l.n_in];
                let (mut a, mut b, mut m) = (l.b[o], l.b[o], l.b[o].abs());
                for i in 0..l.n_in {
                    let (p, q) = (w[i] * plo[i], w[i] * phi[i]);
                    a += p.min(q);
                    b += p.max(q);
                    m += p.abs().max(q.abs());
                }
                let dl = deltas[k][o];
                let margin = 1e-9 * (m + dl);
                zl[o] = a - dl - margin;
                zu[o] = b + dl + margin;
            }
            // The first block is exact under interval arithmetic; deeper ones get CROWN rows
            // for their unstable neurons.
            if k > 0 {
                let pick: Vec<usize> = (0..l.n_out)
                    .filter(|&j| zl[j] < 0.0 && zu[j] > 0.0)
                    .collect();
                if !pick.is_empty() {
                    let r = 2 * pick.len();
                    let mut a = vec![0.0; r * l.n_out];
                    for (t, &j) in pick.iter().enumerate() {
                        a[t * l.n_out + j] = 1.0;
                        a[(pick.len() + t) * l.n_out + j] = -1.0;
                    }
                    let (ain, bias, mag) = self.back_from(k, a, vec![0.0; r], r, &pre, &deltas);
                    let lb = concretize(&ain, &bias, &mag, r, lo, hi, &xmax);
                    for (t, &j) in pick.iter().enumerate() {
                        zl[j] = zl[j].max(lb[t]);
                        zu[j] = zu[j].min(-lb[pick.len() + t]);
                    }
                }
            }
            pre.push((zl, zu));
        }
        let s = d.len();
        let m = self.n_out();
        let mut a = c.to_vec();
        let mut bias = d.to_vec();
        let mut extra_mag = vec![0.0; s];
        if self.final_relu {
            let (zl, zu) = &pre[nl - 1];
            relax_relu(&mut a, &mut bias, &mut extra_mag, s, m, zl, zu);
        }
        let (ain, bias, mut mag) = self.back_from(nl - 1, a, bias, s, &pre, &deltas);
        for (x, e) in mag.iter_mut().zip(&extra_mag) {
            *x += e;
        }
        let lower = concretize(&ain, &bias, &mag, s, lo, hi, &xmax);
        DenseBound {
            lower,
            a_in: ain,
            layers: pre,
        }
    }
}

/// Error bound after a linear map `|W|` (`abs`, `[n_out × n_in]`) whose input is
/// `m·a + c + err`: `|W|·|err| + γ_n·(|W|·(|m|·max|a| + |c| + |err|) + |b|)`, as (E, e0).
#[allow(clippy::too_many_arguments)]
fn through_linear(
    abs: &[f64],
    m: &[f64],
    c: &[f64],
    ew: &[f64],
    eb: &[f64],
    babs: &[f64],
    n_out: usize,
    n_in: usize,
    cols: usize,
) -> (Vec<f64>, Vec<f64>) {
    let g = gamma(n_in);
    let mag_w: Vec<f64> = m
        .iter()
        .zip(ew)
        .map(|(mv, e)| mv.abs() * g + e * (1.0 + g))
        .collect();
    let mag_b: Vec<f64> = c
        .iter()
        .zip(eb)
        .map(|(cv, e)| cv.abs() * g + e * (1.0 + g))
        .collect();
    let new_w = matmul(abs, &mag_w, n_out, n_in, cols);
    let mut new_b = matmul(abs, &mag_b, n_out, n_in, 1);
    for (v, b) in new_b.iter_mut().zip(babs) {
        *v += g * b;
    }
    (new_w, new_b)
}

fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// Replaces coefficients on relu(z) by coefficients on z (lower bound: the adaptive lower line
/// where the coefficient is positive, the upper line where it is negative).
fn relax_relu(
    a: &mut [f64],
    bias: &mut [f64],
    mag: &mut [f64],
    r: usize,
    n: usize,
    lo: &[f64],
    hi: &[f64],
) {
    for j in 0..n {
        let (l, u) = (lo[j], hi[j]);
        if l >= 0.0 {
            continue;
        }
        if u <= 0.0 {
            for row in 0..r {
                a[row * n + j] = 0.0;
            }
            continue;
        }
        let k = u / (u - l);
        let icpt = -l * k;
        let lower_slope = if u >= -l { 1.0 } else { 0.0 };
        for row in 0..r {
            let v = &mut a[row * n + j];
            if *v >= 0.0 {
                *v *= lower_slope;
            } else {
                let t = *v * icpt;
                bias[row] += t;
                mag[row] += t.abs();
                *v *= k;
            }
        }
    }
}

/// Minimum of `a·x + bias` over the box, lowered by the f64 margin.
pub(crate) fn concretize(
    a: &[f64],
    bias: &[f64],
    mag: &[f64],
    r: usize,
    lo: &[f64],
    hi: &[f64],
    xmax: &[f64],
) -> Vec<f64> {
    let n = lo.len();
    (0..r)
        .map(|row| {
            let ar = &a[row * n..(row + 1) * n];
            let mut v = bias[row];
            let mut m = mag[row];
            for i in 0..n {
                v += if ar[i] > 0.0 {
                    ar[i] * lo[i]
                } else {
                    ar[i] * hi[i]
                };
                m += ar[i].abs() * xmax[i];
            }
            v - 1e-9 * (m + v.abs())
        })
        .collect()
}
