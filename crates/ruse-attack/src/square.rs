//! Square attack: score-based black-box random search over square-shaped updates (Andriushchenko
//! et al. 2020, "Square Attack: a query-efficient black-box adversarial attack via random
//! search"), L∞ version with the paper's schedule of square sizes. Uses only the model's scores
//! (no gradients) and counts every query.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::attack::{Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::model::Model;
use crate::threat::{Norm, ThreatModel};

/// Square attack (L∞, untargeted, margin loss).
#[derive(Debug, Clone)]
pub struct Square {
    /// Query budget per sample, start included (AutoAttack-standard: 5000).
    pub queries: usize,
    /// Initial fraction of pixels changed per step (AutoAttack: 0.8).
    pub p_init: f32,
}

impl Default for Square {
    fn default() -> Self {
        Square {
            queries: 5000,
            p_init: 0.8,
        }
    }
}

/// Margin z_y − max_{j≠y} z_j per sample (negative = misclassified).
fn margins(logits: &[f32], labels: &[usize], k: usize) -> Vec<f32> {
    logits
        .chunks(k)
        .zip(labels)
        .map(|(r, &y)| {
            let other = r
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != y)
                .map(|(_, v)| *v)
                .fold(f32::NEG_INFINITY, f32::max);
            r[y] - other
        })
        .collect()
}

impl Square {
    /// The fraction of pixels to change at query `i`, halving at the paper's milestones (for a
    /// 10000-query budget, rescaled to the actual one).
    fn p_at(&self, i: usize) -> f32 {
        let t = (i as f64 * 10000.0 / self.queries.max(1) as f64) as usize;
        let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
            .iter()
            .filter(|&&m| t > m)
            .count();
        self.p_init / 2f32.powi(halvings as i32)
    }
}

impl Attack for Square {
    fn name(&self) -> String {
        format!("square({} queries)", self.queries)
    }

    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        if threat.norm != Norm::Linf {
            return Err(AttackError::Invalid(
                "the Square attack is implemented for L∞".into(),
            ));
        }
        if goal.targets().is_some() {
            return Err(AttackError::Invalid(
                "the Square attack here is untargeted".into(),
            ));
        }
        let [c, h, w] = match model.input_shape() {
            [c, h, w] => [*c, *h, *w],
            s => {
                return Err(AttackError::Invalid(format!(
                    "Square needs image inputs [C, H, W], the model takes {s:?}"
                )))
            }
        };
        let d = c * h * w;
        let k = model.classes();
        let b = labels.len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let (lo, hi) = threat.domain;
        let eps = threat.eps;
        // Start: vertical stripes of ±ε (per channel and column).
        let mut cur = x.to_vec();
        for i in 0..b {
            for ch in 0..c {
                for col in 0..w {
                    let s = if rng.random::<bool>() { eps } else { -eps };
                    for row in 0..h {
                        let j = i * d + (ch * h + row) * w + col;
                        cur[j] = (x[j] + s).clamp(lo, hi);
                    }
                }
            }
        }
        if self.queries == 0 {
            return Err(AttackError::Invalid(
                "the Square attack needs a query budget ≥ 1".into(),
            ));
        }
        // One query per sample for the start, then one per iteration while it is not fooled.
        let mut spent = vec![1u64; b];
        let logits = model.logits(&cur)?;
        tr.observe(&cur, &logits);
        let mut margin = margins(&logits, labels, k);
        for q in 1..self.queries {
            let open: Vec<usize> = (0..b).filter(|&i| !tr.success[i]).collect();
            if open.is_empty() {
                break;
            }
            let side = ((self.p_at(q) * (h * w) as f32).sqrt().round() as usize).clamp(1, h.min(w));
            let mut cand: Vec<f32> = Vec::with_capacity(open.len() * d);
            for &i in &open {
                let mut xi = cur[i * d..(i + 1) * d].to_vec();
                let x0 = &x[i * d..(i + 1) * d];
                let (r0, c0) = (
                    rng.random_range(0..=h - side),
                    rng.random_range(0..=w - side),
                );
                for ch in 0..c {
                    let s = if rng.random::<bool>() { eps } else { -eps };
                    for row in r0..r0 + side {
                        for col in c0..c0 + side {
                            let j = (ch * h + row) * w + col;
                            xi[j] = (x0[j] + s).clamp(lo, hi);
                        }
                    }
                }
                cand.extend_from_slice(&xi);
            }
            let logits = model.logits(&cand)?;
            let ys: Vec<usize> = open.iter().map(|&i| labels[i]).collect();
            let m = margins(&logits, &ys, k);
            for (j, &i) in open.iter().enumerate() {
                spent[i] += 1;
                if m[j] < margin[i] {
                    margin[i] = m[j];
                    cur[i * d..(i + 1) * d].copy_from_slice(&cand[j * d..(j + 1) * d]);
                    if m[j] < 0.0 {
                        tr.record(i, &cand[j * d..(j + 1) * d]);
                    }
                }
            }
        }
        tr.set_queries(spent);
        Ok(tr.finish(x, &cur, threat, model))
    }
}
