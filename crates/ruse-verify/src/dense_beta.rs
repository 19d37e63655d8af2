//! β-CROWN for ReLU branch and bound on a [`DenseNet`]: the bound of every sub-domain and spec
//! row, with the lower ReLU slopes α and the split multipliers β optimised by projected Adam,
//! on plain f64 slices. The gradient is written out by hand (a forward sweep through the
//! backward pass) instead of going through a tensor library's autograd, whose allocation and
//! dispatch cost more than the matrix products on these sizes.
//!
//! Same bound, same rules as the generic path (`crown::optimize_spec` with splits): for any
//! α ∈ [0, 1] and β ≥ 0 the result is a sound lower bound, so every iterate counts and the best
//! per row is kept. Intermediate bounds are the caller's (valid in every sub-domain, with the
//! split neurons' own bounds clamped at 0); the f32 rounding allowance is the one those bounds
//! imply.

use crate::crown::OptimizeOptions;
use crate::dense::{concretize, matmul, matmul_bt, DenseNet};

/// One sub-domain, per ReLU layer (block `k`'s outputs): bounds of the ReLU's input, split signs
/// (−1 split active, +1 split inactive, 0 free), and warm starts `[S × n]` for α and β.
pub struct SplitDomain<'a> {
    /// Lower bounds of each ReLU layer's input.
    pub lo: &'a [Vec<f64>],
    /// Upper bounds of each ReLU layer's input.
    pub hi: &'a [Vec<f64>],
    /// Split signs.
    pub sign: &'a [Vec<f64>],
    /// α warm start per layer, `[S × n]`.
    pub alpha: &'a [Vec<f32>],
    /// β warm start per layer, `[S × n]`.
    pub beta: &'a [Vec<f32>],
}

/// Bounds of a batch of sub-domains, `b` domains × `s` rows, flattened domain-major.
pub struct SplitBounds {
    /// Best lower bound per (domain, row), `[b × s]`.
    pub lower: Vec<f64>,
    /// Input coefficients of the last pass, `[b × s × n_in]`.
    pub a_in: Vec<f64>,
    /// Final α per ReLU layer, `[b × s × n]`.
    pub alpha: Vec<Vec<f64>>,
    /// Final β per ReLU layer, `[b × s × n]`.
    pub beta: Vec<Vec<f64>>,
    /// Coefficients on each ReLU layer's output in the last pass (for branching), `[b × s × n]`.
    pub coeffs: Vec<Vec<f64>>,
}

/// Rows pushing above this stop pulling on the step (a proved row needs no more), as in the
/// generic path.
const CAP: f64 = 1e-3;

/// How one neuron's ReLU is replaced in a domain.
#[derive(Clone, Copy)]
enum Relu {
    /// Identity (proved or split active).
    Pass,
    /// Zero (proved or split inactive).
    Zero,
    /// Unstable: lower line α·z, upper line k·z + icpt.
    Open { k: f64, icpt: f64 },
}

fn relu_kind(l: f64, u: f64) -> Relu {
    if l >= 0.0 {
        Relu::Pass
    } else if u <= 0.0 {
        Relu::Zero
    } else {
        let k = u / (u - l);
        Relu::Open { k, icpt: -l * k }
    }
}

/// One backward pass's record: what the gradient sweep needs.
struct Pass {
    /// Per ReLU layer: coefficients on its output, `[R × n]`.
    on_relu: Vec<Vec<f64>>,
    /// Per block: coefficients on its output `z`, `[R × n_out]`.
    on_z: Vec<Vec<f64>>,
    a_in: Vec<f64>,
    lower: Vec<f64>,
}

impl DenseNet {
    /// Whether `relu_sizes` (neurons per ReLU layer, in order) match this chain: a ReLU after
    /// every block but the last.
    pub fn fits_relu_layers(&self, relu_sizes: &[usize]) -> bool {
        !self.final_relu
            && relu_sizes.len() + 1 == self.layers.len()
            && relu_sizes
                .iter()
                .zip(&self.layers)
                .all(|(&n, l)| n == l.n_out)
    }

    /// Rounding allowance per block from the root bounds of the ReLU inputs (`lo`/`hi` per
    /// ReLU layer) and the input box; valid in every sub-domain, whose bounds are narrower.
    pub fn allowances(&self, x_lo: &[f64], x_hi: &[f64], hi: &[Vec<f64>]) -> Vec<Vec<f64>> {
        (0..self.layers.len())
            .map(|k| {
                let amax: Vec<f64> = if k == 0 {
                    x_lo.iter()
                        .zip(x_hi)
                        .map(|(l, h)| l.abs().max(h.abs()))
                        .collect()
                } else {
                    hi[k - 1].iter().map(|v| v.max(0.0)).collect()
                };
                self.allowance(k, &amax)
            })
            .collect()
    }

    /// β-CROWN lower bounds of `c·y + d` (`c` row-major `[s × n_out]`) over the input box in
    /// each domain, α and β optimised for `opts.iterations` passes (fewer past the deadline).
    #[allow(clippy::too_many_arguments)]
    pub fn beta_crown(
        &self,
        x_lo: &[f64],
        x_hi: &[f64],
        c: &[f64],
        d: &[f64],
        deltas: &[Vec<f64>],
        doms: &[SplitDomain],
        opts: OptimizeOptions,
    ) -> SplitBounds {
        let s = d.len();
        let b = doms.len();
        let r = b * s;
        let nl = self.layers.len();
        let nr = nl - 1;
        let xmax: Vec<f64> = x_lo
            .iter()
            .zip(x_hi)
            .map(|(l, h)| l.abs().max(h.abs()))
            .collect();
        // Per layer, per (domain, neuron): the relaxation; per (row, neuron): α, β, sign.
        let kinds: Vec<Vec<Relu>> = (0..nr)
            .map(|k| {
                doms.iter()
                    .flat_map(|dm| {
                        dm.lo[k]
                            .iter()
                            .zip(&dm.hi[k])
                            .map(|(&l, &u)| relu_kind(l, u))
                    })
                    .collect()
            })
            .collect();
        let widen = |f: &dyn Fn(&SplitDomain) -> Vec<f64>| -> Vec<f64> {
            doms.iter().flat_map(f).collect()
        };
        let mut alpha: Vec<Vec<f64>> = (0..nr)
            .map(|k| widen(&|dm| dm.alpha[k].iter().map(|&v| v as f64).collect()))
            .collect();
        let mut beta: Vec<Vec<f64>> = (0..nr)
            .map(|k| widen(&|dm| dm.beta[k].iter().map(|&v| v as f64).collect()))
            .collect();
        let signs: Vec<Vec<f64>> = (0..nr).map(|k| widen(&|dm| dm.sign[k].clone())).collect();
        let mut adam_a: Vec<(Vec<f64>, Vec<f64>)> = alpha
            .iter()
            .map(|a| (vec![0.0; a.len()], vec![0.0; a.len()]))
            .collect();
        let mut adam_b = adam_a.clone();
        let mut best = vec![f64::NEG_INFINITY; r];
        let iters = opts.iterations.max(1);
        for it in 0..iters {
            let pass = self.pass(
                c, d, s, b, x_lo, x_hi, &xmax, deltas, &kinds, &signs, &alpha, &beta,
            );
            for (bst, &v) in best.iter_mut().zip(&pass.lower) {
                *bst = bst.max(v);
            }
            let late = opts
                .deadline
                .is_some_and(|t| std::time::Instant::now() >= t);
            if it + 1 == iters || late {
                return SplitBounds {
                    lower: best,
                    a_in: pass.a_in,
                    alpha,
                    beta,
                    coeffs: pass.on_relu,
                };
            }
            let (ga, gb) = self.gradient(&pass, x_lo, x_hi, s, deltas, &kinds, &signs, &alpha);
            let t = (it + 1) as i32;
            for k in 0..nr {
                adam_ascend(&mut alpha[k], &ga[k], &mut adam_a[k], opts.lr_alpha, t, 1.0);
                adam_ascend(&mut beta[k], &gb[k], &mut adam_b[k], opts.lr_beta, t, 1e6);
            }
        }
        unreachable!("the last iteration returns")
    }

    /// One backward pass for all rows `R = b·s`.
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &self,
        c: &[f64],
        d: &[f64],
        s: usize,
        b: usize,
        x_lo: &[f64],
        x_hi: &[f64],
        xmax: &[f64],
        deltas: &[Vec<f64>],
        kinds: &[Vec<Relu>],
        signs: &[Vec<f64>],
        alpha: &[Vec<f64>],
        beta: &[Vec<f64>],
    ) -> Pass {
        let nl = self.layers.len();
        let r = b * s;
        let mut a: Vec<f64> = (0..b).flat_map(|_| c.iter().copied()).collect();
        let mut bias: Vec<f64> = (0..b).flat_map(|_| d.iter().copied()).collect();
        let mut mag = vec![0.0; r];
        let mut on_z = vec![Vec::new(); nl];
        let mut on_relu = vec![Vec::new(); nl - 1];
        let mut i = nl - 1;
        loop {
            let l = &self.layers[i];
            for row in 0..r {
                let ar = &a[row * l.n_out..(row + 1) * l.n_out];
                let (mut t, mut e) = (0.0, 0.0);
                for j in 0..l.n_out {
                    t += ar[j] * l.b[j];
                    e += ar[j].abs() * deltas[i][j];
                }
                bias[row] += t - e;
                mag[row] += t.abs() + e;
            }
            let next = matmul(&a, &l.w, r, l.n_out, l.n_in);
            on_z[i] = std::mem::replace(&mut a, next);
            if i == 0 {
                break;
            }
            i -= 1;
            // Coefficients on relu(z_i) → on z_i.
            let n = self.layers[i].n_out;
            on_relu[i] = a.clone();
            for row in 0..r {
                let dom = row / s;
                let kind = &kinds[i][dom * n..(dom + 1) * n];
                let sg = &signs[i][dom * n..(dom + 1) * n];
                let al = &alpha[i][row * n..(row + 1) * n];
                let be = &beta[i][row * n..(row + 1) * n];
                let ar = &mut a[row * n..(row + 1) * n];
                for j in 0..n {
                    let v = ar[j];
                    ar[j] = match kind[j] {
                        Relu::Pass => v,
                        Relu::Zero => 0.0,
                        Relu::Open { k, icpt } => {
                            if v >= 0.0 {
                                v * al[j]
                            } else {
                                let t = v * icpt;
                                bias[row] += t;
                                mag[row] += t.abs();
                                v * k
                            }
                        }
                    };
                    if sg[j] != 0.0 {
                        ar[j] += be[j] * sg[j];
                    }
                }
            }
        }
        let lower = concretize(&a, &bias, &mag, r, x_lo, x_hi, xmax);
        Pass {
            on_relu,
            on_z,
            a_in: a,
            lower,
        }
    }

    /// Gradient of Σ_rows min(lower, CAP) with respect to α and β: the backward pass run in
    /// reverse, from the input coefficients up to the spec.
    #[allow(clippy::too_many_arguments)]
    fn gradient(
        &self,
        pass: &Pass,
        x_lo: &[f64],
        x_hi: &[f64],
        s: usize,
        deltas: &[Vec<f64>],
        kinds: &[Vec<Relu>],
        signs: &[Vec<f64>],
        alpha: &[Vec<f64>],
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let nl = self.layers.len();
        let n_in = x_lo.len();
        let r = pass.lower.len();
        let w: Vec<f64> = pass
            .lower
            .iter()
            .map(|&v| if v < CAP { 1.0 } else { 0.0 })
            .collect();
        // d lower / d a_in: the box corner the concretisation picked.
        let mut g: Vec<f64> = (0..r)
            .flat_map(|row| {
                let ar = &pass.a_in[row * n_in..(row + 1) * n_in];
                let wr = w[row];
                ar.iter()
                    .enumerate()
                    .map(move |(t, &v)| wr * if v > 0.0 { x_lo[t] } else { x_hi[t] })
            })
            .collect();
        let mut ga: Vec<Vec<f64>> = alpha.iter().map(|a| vec![0.0; a.len()]).collect();
        let mut gb = ga.clone();
        for i in 0..nl {
            let l = &self.layers[i];
            // a_in(i) = on_z[i] · W_i, and the bias took on_z[i]·b_i − |on_z[i]|·δ_i.
            let mut gz = matmul_bt(&g, &l.w, r, l.n_in, l.n_out);
            let az = &pass.on_z[i];
            for row in 0..r {
                let wr = w[row];
                if wr == 0.0 {
                    continue;
                }
                let gr = &mut gz[row * l.n_out..(row + 1) * l.n_out];
                let ar = &az[row * l.n_out..(row + 1) * l.n_out];
                for j in 0..l.n_out {
                    let sg = if ar[j] > 0.0 {
                        1.0
                    } else if ar[j] < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    gr[j] += wr * (l.b[j] - sg * deltas[i][j]);
                }
            }
            if i + 1 == nl {
                break;
            }
            // on_z[i] = relax(on_relu[i]) + β·sign.
            let n = l.n_out;
            let ar = &pass.on_relu[i];
            g = vec![0.0; r * n];
            for (row, &wr) in w.iter().enumerate() {
                let dom = row / s;
                for j in 0..n {
                    let q = row * n + j;
                    let gzq = gz[q];
                    let sg = signs[i][dom * n + j];
                    if sg != 0.0 {
                        gb[i][q] = gzq * sg;
                    }
                    let v = ar[q];
                    g[q] = match kinds[i][dom * n + j] {
                        Relu::Pass => gzq,
                        Relu::Zero => 0.0,
                        Relu::Open { k, icpt } => {
                            if v >= 0.0 {
                                ga[i][q] = gzq * v;
                                gzq * alpha[i][q]
                            } else {
                                gzq * k + wr * icpt
                            }
                        }
                    };
                }
            }
        }
        (ga, gb)
    }
}

/// One projected Adam step up the gradient `g` (bias-corrected at step `t`), clamped to [0, hi].
fn adam_ascend(x: &mut [f64], g: &[f64], st: &mut (Vec<f64>, Vec<f64>), lr: f64, t: i32, hi: f64) {
    let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
    for (q, xv) in x.iter_mut().enumerate() {
        let gq = g[q];
        st.0[q] = 0.9 * st.0[q] + 0.1 * gq;
        st.1[q] = 0.999 * st.1[q] + 0.001 * gq * gq;
        let upd = (st.0[q] / c1) / ((st.1[q] / c2).sqrt() + 1e-8);
        *xv = (*xv + lr * upd).clamp(0.0, hi);
    }
}
