//! Box-constrained L-BFGS (Szegedy et al. 2013, "Intriguing properties of neural networks"): the
//! first adversarial-example attack. Minimises c·‖δ‖₂² + loss(x + δ) over x + δ in the input domain
//! with a projected limited-memory quasi-Newton method, and searches over the constant c per
//! sample for the smallest perturbation that still reaches the goal.
//!
//! The loss is the cross-entropy of the target class (the paper's targeted form) or, untargeted,
//! −log(1 − p_y), the cross-entropy of "any class but the true one". Szegedy et al. write the
//! objective as c·|r| + loss and ask for the "minimum c" that succeeds; with c weighting the
//! distance, the informative bound is the other one (c → 0 always succeeds and says nothing), so
//! the search here looks for the *largest* c that still succeeds, which is the same as the smallest
//! weight 1/c on the loss in the equivalent form ‖δ‖₂² + (1/c)·loss (Foolbox's, C&W's).
//!
//! The optimiser is written for this problem (no external solver): a two-loop L-BFGS direction on
//! the free variables (those not held at a bound by the gradient), a projected Armijo line search
//! along the path P(x + t·d), and curvature pairs kept only when sᵀy > 0 — L-BFGS-B's active-set idea
//! without its generalised Cauchy point.

use candle_core::{Tensor, D};
use rand_chacha::ChaCha8Rng;
use ruse_graph::loss::{cross_entropy_per_sample, one_hot};

use crate::attack::{clearly_reached, gather_rows, Attack, AttackOutcome, Goal, Tracker};
use crate::deepfool::MinimalPerturbation;
use crate::error::{AttackError, Result};
use crate::model::{argmax_rows, Model};
use crate::threat::{Norm, ThreatModel};

/// Box-constrained L-BFGS with a search over the distance weight c.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    /// Quasi-Newton iterations per constant (an iteration may spend several gradient evaluations
    /// in its line search).
    pub iterations: usize,
    /// Curvature pairs kept (L-BFGS-B's default: 10).
    pub memory: usize,
    /// Constants tried per sample: ×10 / ÷10 until the success boundary is bracketed, then
    /// geometric bisection.
    pub search_steps: usize,
    /// First c.
    pub initial_const: f32,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            iterations: 60,
            memory: 10,
            search_steps: 8,
            initial_const: 1.0,
        }
    }
}

/// Per-sample loss rows: CE of the target, or −log(1 − p_y) = lse(z) − lse_{j≠y}(z_j).
fn loss_rows(
    z: &Tensor,
    labels: &[usize],
    targets: Option<&[usize]>,
) -> candle_core::Result<Tensor> {
    let dev = z.device();
    let ids = |v: &[usize]| {
        Tensor::from_vec(
            v.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            v.len(),
            dev,
        )
    };
    match targets {
        Some(t) => cross_entropy_per_sample(z, &ids(t)?),
        None => {
            let k = z.dim(D::Minus1)?;
            let others = (z - (one_hot(&ids(labels)?, k)? * 1e4)?)?;
            z.log_sum_exp(D::Minus1)? - others.log_sum_exp(D::Minus1)?
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum()
}

/// One sample's optimiser state for a fixed c.
struct State {
    x: Vec<f32>,
    f: f64,
    g: Vec<f32>,
    s: Vec<Vec<f32>>,
    y: Vec<Vec<f32>>,
    running: bool,
}

/// The L-BFGS direction −H·g on the free variables (two-loop recursion, H₀ = γI with γ = sᵀy/yᵀy).
fn direction(st: &State, free: &[bool]) -> Vec<f32> {
    let mask = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .zip(free)
            .map(|(a, &f)| if f { *a } else { 0.0 })
            .collect()
    };
    let mut q: Vec<f32> = mask(&st.g);
    let m = st.s.len();
    let mut alpha = vec![0f64; m];
    let pairs: Vec<(Vec<f32>, Vec<f32>, f64)> =
        st.s.iter()
            .zip(&st.y)
            .map(|(s, y)| {
                let (s, y) = (mask(s), mask(y));
                let sy = dot(&s, &y);
                (s, y, sy)
            })
            .collect();
    for i in (0..m).rev() {
        let (s, y, sy) = &pairs[i];
        if *sy <= 1e-12 {
            continue;
        }
        alpha[i] = dot(s, &q) / sy;
        q.iter_mut()
            .zip(y)
            .for_each(|(v, yv)| *v -= (alpha[i] * *yv as f64) as f32);
    }
    let gamma = pairs
        .iter()
        .rev()
        .find(|(_, _, sy)| *sy > 1e-12)
        .map(|(_, y, sy)| sy / dot(y, y).max(1e-30))
        .unwrap_or(1.0);
    q.iter_mut().for_each(|v| *v = (*v as f64 * gamma) as f32);
    for i in 0..m {
        let (s, y, sy) = &pairs[i];
        if *sy <= 1e-12 {
            continue;
        }
        let beta = dot(y, &q) / sy;
        q.iter_mut()
            .zip(s)
            .for_each(|(v, sv)| *v += ((alpha[i] - beta) * *sv as f64) as f32);
    }
    q.iter()
        .zip(free)
        .map(|(v, &f)| if f { -v } else { 0.0 })
        .collect()
}

impl Lbfgs {
    /// Smallest L2 perturbation found per sample (unbounded): targeted at `targets` if given,
    /// else untargeted. Every success is an iterate whose own forward pass reached the goal.
    pub fn minimal(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        targets: Option<&[usize]>,
        domain: (f32, f32),
    ) -> Result<MinimalPerturbation> {
        if self.iterations == 0 || self.search_steps == 0 || self.memory == 0 {
            return Err(AttackError::Invalid(
                "L-BFGS needs ≥ 1 iteration, ≥ 1 constant and ≥ 1 curvature pair".into(),
            ));
        }
        if !(self.initial_const.is_finite() && self.initial_const > 0.0) {
            return Err(AttackError::Invalid(
                "L-BFGS's initial constant must be > 0".into(),
            ));
        }
        let k = model.classes();
        let b = labels.len();
        let goal = match targets {
            Some(t) => Goal::Targeted(t.to_vec()),
            None => Goal::Untargeted,
        };
        // Validates sizes, labels and targets.
        Tracker::new(x, labels, &goal, model.input_len(), k)?;
        let reached = |i: usize, p: usize| match targets {
            Some(t) => p == t[i],
            None => p != labels[i],
        };
        let mut best = x.to_vec();
        let mut best_norm = vec![f32::INFINITY; b];
        // Already at the goal: nothing to do.
        let clean = argmax_rows(&model.logits(x)?, k);
        let todo: Vec<usize> = (0..b).filter(|&i| !reached(i, clean[i])).collect();
        for i in (0..b).filter(|&i| reached(i, clean[i])) {
            best_norm[i] = 0.0;
        }
        let mut c: Vec<f64> = vec![self.initial_const as f64; b];
        let (mut c_ok, mut c_fail) = (vec![None::<f64>; b], vec![None::<f64>; b]);
        for _ in 0..self.search_steps {
            let found = self.optimise(
                model,
                x,
                labels,
                targets,
                domain,
                &todo,
                &c,
                &mut best,
                &mut best_norm,
            )?;
            for (j, &i) in todo.iter().enumerate() {
                if found[j] {
                    c_ok[i] = Some(c_ok[i].map_or(c[i], |v: f64| v.max(c[i])));
                } else {
                    c_fail[i] = Some(c_fail[i].map_or(c[i], |v: f64| v.min(c[i])));
                }
                c[i] = match (c_ok[i], c_fail[i]) {
                    (Some(lo), Some(hi)) => (lo * hi).sqrt(),
                    (Some(lo), None) => lo * 10.0,
                    (None, Some(hi)) => hi / 10.0,
                    (None, None) => c[i],
                };
            }
        }
        let success: Vec<bool> = best_norm.iter().map(|n| n.is_finite()).collect();
        let norms = best_norm
            .iter()
            .map(|n| if n.is_finite() { *n } else { 0.0 })
            .collect();
        Ok(MinimalPerturbation {
            adv: best,
            success,
            norms,
        })
    }

    /// Minimises c·‖x' − x‖² + loss(x') for the samples `idx` with their constants; records every
    /// iterate that reaches the goal into `best` when it is smaller. Returns, per sample of `idx`,
    /// whether any iterate reached the goal.
    #[allow(clippy::too_many_arguments)]
    fn optimise(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        targets: Option<&[usize]>,
        domain: (f32, f32),
        idx: &[usize],
        c: &[f64],
        best: &mut [f32],
        best_norm: &mut [f32],
    ) -> Result<Vec<bool>> {
        let d = model.input_len();
        let k = model.classes();
        let (lo, hi) = domain;
        let n = idx.len();
        let mut found = vec![false; n];
        if n == 0 {
            return Ok(found);
        }
        let x0: Vec<&[f32]> = idx.iter().map(|&i| &x[i * d..(i + 1) * d]).collect();
        // Evaluates F and ∇F at the points `pts` for the samples `who` (positions in `idx`), and
        // records the goal-reaching ones.
        let eval = |who: &[usize],
                    pts: &[f32],
                    found: &mut [bool],
                    best: &mut [f32],
                    best_norm: &mut [f32]|
         -> Result<(Vec<f64>, Vec<f32>)> {
            let ys: Vec<usize> = who.iter().map(|&j| labels[idx[j]]).collect();
            let ts: Option<Vec<usize>> = targets.map(|t| who.iter().map(|&j| t[idx[j]]).collect());
            let (logits, loss, mut g) =
                model.objective_grad(pts, |z| loss_rows(z, &ys, ts.as_deref()))?;
            let mut f = Vec::with_capacity(who.len());
            for (r, &j) in who.iter().enumerate() {
                let i = idx[j];
                let p = &pts[r * d..(r + 1) * d];
                let n2: f64 = p
                    .iter()
                    .zip(x0[j])
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum();
                f.push(c[i] * n2 + loss[r] as f64);
                for ((gv, a), b) in g[r * d..(r + 1) * d].iter_mut().zip(p).zip(x0[j]) {
                    *gv += (2.0 * c[i] * (a - b) as f64) as f32;
                }
                let ok = clearly_reached(
                    &logits[r * k..(r + 1) * k],
                    labels[i],
                    targets.map(|t| t[i]),
                );
                if ok {
                    found[j] = true;
                    let norm = n2.sqrt() as f32;
                    if norm < best_norm[i] {
                        best_norm[i] = norm;
                        best[i * d..(i + 1) * d].copy_from_slice(p);
                    }
                }
            }
            Ok((f, g))
        };
        let all: Vec<usize> = (0..n).collect();
        let start: Vec<f32> = gather_rows(x, idx, d);
        let (f0, g0) = eval(&all, &start, &mut found, best, best_norm)?;
        let mut st: Vec<State> = (0..n)
            .map(|j| State {
                x: start[j * d..(j + 1) * d].to_vec(),
                f: f0[j],
                g: g0[j * d..(j + 1) * d].to_vec(),
                s: Vec::new(),
                y: Vec::new(),
                running: true,
            })
            .collect();
        for _ in 0..self.iterations {
            // Directions on the free variables.
            let mut dirs: Vec<Vec<f32>> = vec![Vec::new(); n];
            let mut step = vec![1f64; n];
            for j in 0..n {
                if !st[j].running {
                    continue;
                }
                let s = &st[j];
                let free: Vec<bool> =
                    s.x.iter()
                        .zip(&s.g)
                        .map(|(&v, &g)| !((v <= lo && g > 0.0) || (v >= hi && g < 0.0)))
                        .collect();
                let pg_max =
                    s.g.iter()
                        .zip(&free)
                        .filter(|(_, &f)| f)
                        .fold(0f32, |m, (g, _)| m.max(g.abs()));
                if pg_max < 1e-6 {
                    st[j].running = false;
                    continue;
                }
                let mut dir = direction(s, &free);
                if dot(&dir, &s.g) >= 0.0 {
                    // Not a descent direction: forget the curvature and follow the gradient.
                    st[j].s.clear();
                    st[j].y.clear();
                    dir = direction(&st[j], &free);
                }
                if st[j].s.is_empty() {
                    // First step of unit length, as L-BFGS-B.
                    step[j] = 1.0 / dot(&dir, &dir).sqrt().max(1e-12);
                }
                dirs[j] = dir;
            }
            let mut pending: Vec<usize> = (0..n).filter(|&j| st[j].running).collect();
            if pending.is_empty() {
                break;
            }
            // Projected Armijo backtracking, all pending samples in lockstep.
            let mut failed = Vec::new();
            for _ in 0..20 {
                if pending.is_empty() {
                    break;
                }
                let mut pts = Vec::with_capacity(pending.len() * d);
                for &j in &pending {
                    let s = &st[j];
                    pts.extend(
                        s.x.iter()
                            .zip(&dirs[j])
                            .map(|(v, dv)| (v + (step[j] * *dv as f64) as f32).clamp(lo, hi)),
                    );
                }
                let (f, g) = eval(&pending, &pts, &mut found, best, best_norm)?;
                let mut retry = Vec::new();
                for (r, &j) in pending.iter().enumerate() {
                    let p = &pts[r * d..(r + 1) * d];
                    let s_vec: Vec<f32> = p.iter().zip(&st[j].x).map(|(a, b)| a - b).collect();
                    let decrease = dot(&st[j].g, &s_vec);
                    if f[r] <= st[j].f + 1e-4 * decrease && f[r].is_finite() {
                        let g_new = &g[r * d..(r + 1) * d];
                        let y_vec: Vec<f32> =
                            g_new.iter().zip(&st[j].g).map(|(a, b)| a - b).collect();
                        let sy = dot(&s_vec, &y_vec);
                        let st_j = &mut st[j];
                        if sy > 1e-10 * dot(&y_vec, &y_vec).max(1e-30) {
                            st_j.s.push(s_vec);
                            st_j.y.push(y_vec);
                            if st_j.s.len() > self.memory {
                                st_j.s.remove(0);
                                st_j.y.remove(0);
                            }
                        }
                        let rel = (st_j.f - f[r]) / st_j.f.abs().max(1.0);
                        st_j.x.copy_from_slice(p);
                        st_j.g.copy_from_slice(g_new);
                        st_j.f = f[r];
                        if rel < 1e-9 {
                            st_j.running = false;
                        }
                    } else {
                        step[j] *= 0.5;
                        if step[j] < 1e-10 {
                            failed.push(j);
                        } else {
                            retry.push(j);
                        }
                    }
                }
                pending = retry;
            }
            // A failed line search drops the curvature pairs (the next direction is the projected
            // gradient); failing with the gradient itself means no progress is left to make.
            for j in failed.into_iter().chain(pending) {
                if st[j].s.is_empty() {
                    st[j].running = false;
                } else {
                    st[j].s.clear();
                    st[j].y.clear();
                }
            }
        }
        Ok(found)
    }
}

impl Attack for Lbfgs {
    fn name(&self) -> String {
        format!(
            "lbfgs({} iterations × {} constants)",
            self.iterations, self.search_steps
        )
    }

    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        _rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        if threat.norm != Norm::L2 {
            return Err(AttackError::Invalid(
                "L-BFGS minimises the L2 norm; use --norm l2".into(),
            ));
        }
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let m = self.minimal(model, x, labels, goal.targets(), threat.domain)?;
        // Within the threat model: keep the perturbation only if it fits in the ball (else project it).
        let mut adv = m.adv;
        for (i, a) in adv.chunks_mut(d).enumerate() {
            threat.project(a, &x[i * d..(i + 1) * d]);
        }
        let logits = model.logits(&adv)?;
        tr.observe(&adv, &logits);
        Ok(tr.finish(x, &adv, threat, model))
    }
}
