//! SimBA (Guo, Gardner, You, Wilson and Weinberger 2019, "Simple black-box adversarial
//! attacks"): walk through an orthonormal basis in random order; for each direction q try x + εq,
//! then x − εq, and keep the first that lowers the true class's probability (raises the target's).
//! SimBA-pixel uses the standard basis, SimBA-DCT the 2-D DCT basis with low frequencies first.
//! Score-based; each sample stops when fooled, when its basis is used up or at its query budget.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::attack::{Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::model::{argmax_rows, Model};
use crate::query::{image_shape, log_softmax, Budget};
use crate::threat::ThreatModel;

/// Which orthonormal basis SimBA searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimbaBasis {
    /// Single pixels (one colour channel each).
    Pixel,
    /// 2-D DCT-II basis images per channel, the lowest `freq`×`freq` frequencies first.
    Dct,
}

/// SimBA with its step size and query budget.
#[derive(Debug, Clone)]
pub struct Simba {
    /// The basis.
    pub basis: SimbaBasis,
    /// Step ε along each basis vector (paper, ImageNet: 0.2).
    pub step: f32,
    /// Most forward evaluations per sample, the first one included.
    pub query_budget: usize,
    /// DCT only: side of the low-frequency block searched first (None: a quarter of the image
    /// side; the paper's 1/8 of ImageNet is too few directions for 28×28 inputs).
    pub freq: Option<usize>,
}

impl Default for Simba {
    fn default() -> Self {
        Simba {
            basis: SimbaBasis::Dct,
            step: 0.2,
            query_budget: 10000,
            freq: None,
        }
    }
}

/// The orthonormal DCT-II matrix for length `n`: row `u` is the u-th basis vector.
fn dct_matrix(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|u| {
            let a = if u == 0 {
                (1.0 / n as f64).sqrt()
            } else {
                (2.0 / n as f64).sqrt()
            };
            (0..n)
                .map(|r| {
                    (a * (std::f64::consts::PI * (2 * r + 1) as f64 * u as f64 / (2 * n) as f64)
                        .cos()) as f32
                })
                .collect()
        })
        .collect()
}

impl Simba {
    /// The search order: basis indices (channel, u, v) or pixel indices, random within bands.
    fn order(&self, shape: [usize; 3], rng: &mut ChaCha8Rng) -> Vec<usize> {
        let [c, h, w] = shape;
        let mut all: Vec<usize> = (0..c * h * w).collect();
        match self.basis {
            SimbaBasis::Pixel => {
                all.shuffle(rng);
                all
            }
            SimbaBasis::Dct => {
                let f = self.freq.unwrap_or((h.max(w) / 4).max(1));
                let (mut low, mut rest): (Vec<usize>, Vec<usize>) =
                    all.into_iter().partition(|&j| {
                        let (u, v) = ((j / w) % h, j % w);
                        u < f && v < f
                    });
                low.shuffle(rng);
                rest.shuffle(rng);
                low.extend(rest);
                low
            }
        }
    }

    /// Adds `s`·(basis vector `j`) to `img`, clipped to the domain.
    fn step_along(
        &self,
        img: &mut [f32],
        j: usize,
        s: f32,
        shape: [usize; 3],
        dct: &(Vec<Vec<f32>>, Vec<Vec<f32>>),
        domain: (f32, f32),
    ) {
        let [_, h, w] = shape;
        match self.basis {
            SimbaBasis::Pixel => img[j] = (img[j] + s).clamp(domain.0, domain.1),
            SimbaBasis::Dct => {
                let (ch, u, v) = (j / (h * w), (j / w) % h, j % w);
                let plane = &mut img[ch * h * w..(ch + 1) * h * w];
                for r in 0..h {
                    for col in 0..w {
                        let p = &mut plane[r * w + col];
                        *p = (*p + s * dct.0[u][r] * dct.1[v][col]).clamp(domain.0, domain.1);
                    }
                }
            }
        }
    }
}

/// The score SimBA lowers: the true class's probability, or minus the target's, as
/// log-probabilities (same order, no saturation at p = 1).
fn score(row: &[f32], label: usize, target: Option<usize>) -> f32 {
    let lp = log_softmax(row);
    match target {
        Some(t) => -lp[t],
        None => lp[label],
    }
}

impl Attack for Simba {
    fn name(&self) -> String {
        let b = match self.basis {
            SimbaBasis::Pixel => "pixel",
            SimbaBasis::Dct => "dct",
        };
        format!("simba-{b}(ε={}, {} queries)", self.step, self.query_budget)
    }

    /// Succeeds where the goal is reached inside the threat model's ball (SimBA itself is
    /// unbounded: give a large radius for its plain success rate); elsewhere returns the walk's
    /// end projected onto the ball.
    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        let shape = image_shape(model.input_shape(), "SimBA")?;
        if !(self.step > 0.0 && self.step.is_finite()) || self.freq == Some(0) {
            return Err(AttackError::Invalid(
                "SimBA needs a step ε > 0 and a DCT block ≥ 1".into(),
            ));
        }
        let d = model.input_len();
        let k = model.classes();
        let b = labels.len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let mut budget = Budget::new(b, Some(self.query_budget))?;
        let targets = |i: usize| goal.targets().map(|t| t[i]);
        let dct = (dct_matrix(shape[1]), dct_matrix(shape[2]));
        let orders: Vec<Vec<usize>> = (0..b).map(|_| self.order(shape, rng)).collect();
        let mut cur = x.to_vec();
        let logits = model.logits(&cur)?;
        (0..b).for_each(|i| budget.spend(i, 1));
        let mut best: Vec<f32> = logits
            .chunks(k)
            .enumerate()
            .map(|(i, r)| score(r, labels[i], targets(i)))
            .collect();
        let mut reached: Vec<bool> = argmax_rows(&logits, k)
            .into_iter()
            .enumerate()
            .map(|(i, p)| goal.reached(i, p, labels[i]))
            .collect();
        // Step t uses the t-th direction of every sample's own order.
        #[allow(clippy::needless_range_loop)]
        for t in 0..d {
            let open: Vec<usize> = (0..b)
                .filter(|&i| !reached[i] && budget.left(i) > 0)
                .collect();
            if open.is_empty() {
                break;
            }
            // First +ε for every open sample, then −ε where +ε did not help (budget permitting).
            let mut pending = open;
            for s in [self.step, -self.step] {
                if pending.is_empty() {
                    break;
                }
                let mut imgs = Vec::with_capacity(pending.len() * d);
                for &i in &pending {
                    let start = imgs.len();
                    imgs.extend_from_slice(&cur[i * d..(i + 1) * d]);
                    self.step_along(
                        &mut imgs[start..],
                        orders[i][t],
                        s,
                        shape,
                        &dct,
                        threat.domain,
                    );
                }
                let logits = model.logits(&imgs)?;
                let preds = argmax_rows(&logits, k);
                let mut still = Vec::new();
                for (j, &i) in pending.iter().enumerate() {
                    budget.spend(i, 1);
                    let sc = score(&logits[j * k..(j + 1) * k], labels[i], targets(i));
                    if sc < best[i] {
                        best[i] = sc;
                        cur[i * d..(i + 1) * d].copy_from_slice(&imgs[j * d..(j + 1) * d]);
                        reached[i] = goal.reached(i, preds[j], labels[i]);
                    } else if budget.left(i) > 0 {
                        still.push(i);
                    }
                }
                pending = still;
            }
        }
        let mut last = cur.clone();
        for i in 0..b {
            let (a, x0) = (&cur[i * d..(i + 1) * d], &x[i * d..(i + 1) * d]);
            let delta: Vec<f32> = a.iter().zip(x0).map(|(p, q)| p - q).collect();
            if reached[i] && threat.norm.of(&delta) <= threat.eps {
                tr.record(i, a);
            } else {
                threat.project(&mut last[i * d..(i + 1) * d], x0);
            }
        }
        tr.set_queries(budget.into_used());
        Ok(tr.finish(x, &last, threat, model))
    }
}
