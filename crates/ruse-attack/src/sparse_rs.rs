//! Sparse-RS, L0 version (Croce, Andriushchenko, Singh, Flammarion and Hein 2022, "Sparse-RS: a
//! versatile framework for query-efficient sparse black-box adversarial attacks"): random search
//! over a set of k pixels, each set to a corner of the colour cube. Each step swaps a fraction α of
//! the set for fresh pixels with fresh colours and keeps the change if the loss drops; α halves on
//! the paper's schedule. Score-based (margin or target score), every query counted.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::attack::{Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::model::Model;
use crate::onepixel::l0_norms;
use crate::query::image_shape;
use crate::threat::ThreatModel;

/// Sparse-RS over k pixels.
#[derive(Debug, Clone)]
pub struct SparseRs {
    /// Pixels changed, k.
    pub pixels: usize,
    /// Query budget per sample, start included (paper: 10000).
    pub queries: usize,
    /// Initial fraction α of the k pixels resampled per step (paper, L0: 0.3).
    pub alpha_init: f32,
}

impl Default for SparseRs {
    fn default() -> Self {
        SparseRs {
            pixels: 10,
            queries: 10000,
            alpha_init: 0.3,
        }
    }
}

/// The loss to minimise per sample: margin z_y − max_{j≠y} z_j (untargeted; < 0 = fooled) or
/// max_{j≠t} z_j − z_t (targeted; < 0 = reached).
fn loss(row: &[f32], label: usize, target: Option<usize>) -> f32 {
    let best_except = |skip: usize| {
        row.iter()
            .enumerate()
            .filter(|(j, _)| *j != skip)
            .fold(f32::NEG_INFINITY, |m, (_, v)| m.max(*v))
    };
    match target {
        Some(t) => best_except(t) - row[t],
        None => row[label] - best_except(label),
    }
}

impl SparseRs {
    /// Fraction of the k pixels to resample at query `i`: halving at the paper's milestones for a
    /// 10000-query run, rescaled to the actual budget.
    fn alpha_at(&self, i: usize) -> f32 {
        let t = (i as f64 * 10000.0 / self.queries.max(1) as f64) as usize;
        let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
            .iter()
            .filter(|&&m| t > m)
            .count();
        self.alpha_init / 2f32.powi(halvings as i32)
    }
}

/// One sample's state: the perturbed pixel positions and their colours.
struct State {
    set: Vec<usize>,
    colours: Vec<Vec<f32>>,
}

/// A random corner of the colour cube [lo, hi]^C.
fn corner(c: usize, domain: (f32, f32), rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..c)
        .map(|_| {
            if rng.random::<bool>() {
                domain.1
            } else {
                domain.0
            }
        })
        .collect()
}

/// Writes the state onto a copy of `x0`.
fn render(x0: &[f32], s: &State, shape: [usize; 3], out: &mut Vec<f32>) {
    let [c, h, w] = shape;
    let start = out.len();
    out.extend_from_slice(x0);
    for (&p, col) in s.set.iter().zip(&s.colours) {
        for ch in 0..c {
            out[start + ch * h * w + p] = col[ch];
        }
    }
}

impl Attack for SparseRs {
    fn name(&self) -> String {
        format!("sparse-rs(k={}, {} queries)", self.pixels, self.queries)
    }

    /// Ignores the threat model's norm and radius: the constraint is `pixels` changed pixels;
    /// the outcome's norms are changed-pixel counts.
    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        let shape = image_shape(model.input_shape(), "Sparse-RS")?;
        let [c, h, w] = shape;
        let hw = h * w;
        if self.pixels == 0 || self.pixels > hw {
            return Err(AttackError::Invalid(format!(
                "Sparse-RS needs 1 ≤ k ≤ {hw} pixels, got {}",
                self.pixels
            )));
        }
        if self.queries == 0 || !(self.alpha_init > 0.0 && self.alpha_init <= 1.0) {
            return Err(AttackError::Invalid(
                "Sparse-RS needs a query budget ≥ 1 and 0 < α ≤ 1".into(),
            ));
        }
        let d = model.input_len();
        let k = model.classes();
        let b = labels.len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let targets = |i: usize| goal.targets().map(|t| t[i]);
        let all: Vec<usize> = (0..hw).collect();
        let mut states: Vec<State> = (0..b)
            .map(|_| {
                let set: Vec<usize> = all.choose_multiple(rng, self.pixels).copied().collect();
                let colours = set.iter().map(|_| corner(c, threat.domain, rng)).collect();
                State { set, colours }
            })
            .collect();
        let mut cur = Vec::with_capacity(b * d);
        for (i, s) in states.iter().enumerate() {
            render(&x[i * d..(i + 1) * d], s, shape, &mut cur);
        }
        let mut spent = vec![1u64; b];
        let logits = model.logits(&cur)?;
        tr.observe(&cur, &logits);
        let mut best: Vec<f32> = logits
            .chunks(k)
            .enumerate()
            .map(|(i, r)| loss(r, labels[i], targets(i)))
            .collect();
        for q in 1..self.queries {
            let open: Vec<usize> = (0..b).filter(|&i| !tr.success[i]).collect();
            if open.is_empty() {
                break;
            }
            let m = ((self.alpha_at(q) * self.pixels as f32) as usize).clamp(1, self.pixels);
            let mut cands: Vec<State> = Vec::with_capacity(open.len());
            let mut imgs = Vec::with_capacity(open.len() * d);
            for &i in &open {
                let s = &states[i];
                // Swap m pixels of the set for m pixels outside it, with new colours.
                let mut set = s.set.clone();
                let mut colours = s.colours.clone();
                let outside: Vec<usize> =
                    all.iter().copied().filter(|p| !set.contains(p)).collect();
                let fresh: Vec<usize> = outside.choose_multiple(rng, m).copied().collect();
                let mut slots: Vec<usize> = (0..self.pixels).collect();
                slots.shuffle(rng);
                for (&slot, &p) in slots.iter().zip(&fresh) {
                    set[slot] = p;
                    colours[slot] = corner(c, threat.domain, rng);
                }
                // With k = all pixels there is nothing outside: recolour m pixels instead.
                if fresh.is_empty() {
                    for &slot in slots.iter().take(m) {
                        colours[slot] = corner(c, threat.domain, rng);
                    }
                }
                let st = State { set, colours };
                render(&x[i * d..(i + 1) * d], &st, shape, &mut imgs);
                cands.push(st);
            }
            let logits = model.logits(&imgs)?;
            for ((j, &i), st) in open.iter().enumerate().zip(cands) {
                spent[i] += 1;
                let l = loss(&logits[j * k..(j + 1) * k], labels[i], targets(i));
                if l < best[i] {
                    best[i] = l;
                    let xi = &imgs[j * d..(j + 1) * d];
                    cur[i * d..(i + 1) * d].copy_from_slice(xi);
                    states[i] = st;
                    if l < 0.0 {
                        tr.record(i, xi);
                    }
                }
            }
        }
        tr.set_queries(spent);
        let mut out = tr.finish(x, &cur, threat, model);
        out.norms = l0_norms(&out.adv, x, shape);
        Ok(out)
    }
}
