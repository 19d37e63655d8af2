//! One-pixel (few-pixel) attack by differential evolution (Su, Vargas and Sakurai 2019, "One pixel
//! attack for fooling deep neural networks"). A candidate is k pixels, each a position and a colour;
//! DE/rand/1 without crossover evolves a population of candidates against the model's
//! probabilities only (a score-based black-box attack), and every forward evaluation is counted.
//! The perturbation size is the number of changed pixels (L0 over positions), never more than k.
//! Early stop: a sample is done as soon as one candidate reaches the goal (the paper stops at a
//! probability threshold instead; for a success rate the first success is what counts).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::attack::{Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::model::{argmax_rows, Model};
use crate::query::{changed_pixels, image_shape, log_softmax, Budget};
use crate::threat::{gaussian, ThreatModel};

/// Differential-evolution few-pixel attack with the paper's defaults.
#[derive(Debug, Clone)]
pub struct OnePixel {
    /// Pixels changed per candidate, k (paper: 1, 3 or 5).
    pub pixels: usize,
    /// Candidates per generation (paper: 400).
    pub population: usize,
    /// Most generations after the initial population (paper: 100).
    pub generations: usize,
    /// DE scale factor F (paper: 0.5).
    pub scale: f32,
    /// Binomial crossover rate per pixel gene (paper: None, no crossover: children are the
    /// mutants); with Some(cr) each of the k pixels comes from the mutant with probability cr
    /// (at least one always does), else from the parent.
    pub crossover: Option<f32>,
    /// Most forward evaluations per sample (None: population × (1 + generations)).
    pub query_budget: Option<usize>,
}

impl Default for OnePixel {
    fn default() -> Self {
        OnePixel {
            pixels: 1,
            population: 400,
            generations: 100,
            scale: 0.5,
            crossover: None,
            query_budget: None,
        }
    }
}

/// Fitness to minimise: the true-class probability (untargeted) or minus the target's, as
/// log-probabilities (same order, no saturation at p = 1).
fn fitness(row: &[f32], label: usize, target: Option<usize>) -> f32 {
    let lp = log_softmax(row);
    match target {
        Some(t) => -lp[t],
        None => lp[label],
    }
}

impl OnePixel {
    /// Writes candidate `cand` (k × (row, col, colour…)) onto a copy of `x0`.
    fn apply(&self, x0: &[f32], cand: &[f32], shape: [usize; 3], out: &mut Vec<f32>) {
        let [c, h, w] = shape;
        let start = out.len();
        out.extend_from_slice(x0);
        let img = &mut out[start..];
        for gene in cand.chunks(2 + c) {
            let r = (gene[0].max(0.0) as usize).min(h - 1);
            let col = (gene[1].max(0.0) as usize).min(w - 1);
            for ch in 0..c {
                img[(ch * h + r) * w + col] = gene[2 + ch];
            }
        }
    }

    /// Clamps a candidate's positions to the image and its colours to the domain.
    fn clamp(cand: &mut [f32], shape: [usize; 3], domain: (f32, f32)) {
        let [c, h, w] = shape;
        for gene in cand.chunks_mut(2 + c) {
            gene[0] = gene[0].clamp(0.0, h as f32 - 1e-3);
            gene[1] = gene[1].clamp(0.0, w as f32 - 1e-3);
            for v in &mut gene[2..] {
                *v = v.clamp(domain.0, domain.1);
            }
        }
    }

    /// Attacks one sample; returns the adversarial found (if any) and the evaluations spent.
    #[allow(clippy::too_many_arguments)]
    fn one(
        &self,
        model: &Model,
        x0: &[f32],
        label: usize,
        target: Option<usize>,
        goal_reached: impl Fn(usize) -> bool,
        shape: [usize; 3],
        domain: (f32, f32),
        budget: u64,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Option<Vec<f32>>, u64)> {
        let [c, h, w] = shape;
        let k = model.classes();
        let gl = self.pixels * (2 + c);
        let pop = self.population;
        let d = x0.len();
        // Initial population: uniform positions, colours ~ N(mid, half-width) as in the paper's
        // N(128, 127) on 0..255.
        let (mid, half) = ((domain.0 + domain.1) / 2.0, (domain.1 - domain.0) / 2.0);
        let mut cands = vec![0f32; pop * gl];
        for cand in cands.chunks_mut(gl) {
            for gene in cand.chunks_mut(2 + c) {
                gene[0] = rng.random_range(0.0..h as f32);
                gene[1] = rng.random_range(0.0..w as f32);
                for v in &mut gene[2..] {
                    *v = mid + half * gaussian(rng);
                }
            }
            Self::clamp(cand, shape, domain);
        }
        let mut spent = 0u64;
        let mut imgs = Vec::with_capacity(pop * d);
        let mut fit = vec![0f32; pop];
        let evaluate = |cs: &[f32], imgs: &mut Vec<f32>, spent: &mut u64| -> Result<Vec<f32>> {
            imgs.clear();
            for cand in cs.chunks(gl) {
                self.apply(x0, cand, shape, imgs);
            }
            *spent += (cs.len() / gl) as u64;
            model.logits(imgs)
        };
        let logits = evaluate(&cands, &mut imgs, &mut spent)?;
        for (j, row) in logits.chunks(k).enumerate() {
            fit[j] = fitness(row, label, target);
        }
        let preds = argmax_rows(&logits, k);
        if let Some(j) = preds.iter().position(|&p| goal_reached(p)) {
            return Ok((Some(imgs[j * d..(j + 1) * d].to_vec()), spent));
        }
        let mut children = vec![0f32; pop * gl];
        for _ in 0..self.generations {
            if budget - spent < pop as u64 {
                break;
            }
            // DE/rand/1: child_i = a + F·(b − c) with a, b, c distinct and ≠ i; no crossover.
            for i in 0..pop {
                let mut pick = [i; 3];
                for s in 0..3 {
                    loop {
                        let r = rng.random_range(0..pop);
                        if r != i && !pick[..s].contains(&r) {
                            pick[s] = r;
                            break;
                        }
                    }
                }
                let [a, b, cc] = pick.map(|r| &cands[r * gl..(r + 1) * gl]);
                let child = &mut children[i * gl..(i + 1) * gl];
                for j in 0..gl {
                    child[j] = a[j] + self.scale * (b[j] - cc[j]);
                }
                if let Some(cr) = self.crossover {
                    let keep = rng.random_range(0..self.pixels);
                    for p in (0..self.pixels).filter(|&p| p != keep) {
                        if rng.random::<f32>() >= cr {
                            let g = p * (2 + c)..(p + 1) * (2 + c);
                            child[g.clone()]
                                .copy_from_slice(&cands[i * gl + g.start..i * gl + g.end]);
                        }
                    }
                }
                Self::clamp(child, shape, domain);
            }
            let logits = evaluate(&children, &mut imgs, &mut spent)?;
            let preds = argmax_rows(&logits, k);
            if let Some(j) = preds.iter().position(|&p| goal_reached(p)) {
                return Ok((Some(imgs[j * d..(j + 1) * d].to_vec()), spent));
            }
            // Each child replaces its parent when at least as fit.
            for (i, row) in logits.chunks(k).enumerate() {
                let f = fitness(row, label, target);
                if f <= fit[i] {
                    fit[i] = f;
                    cands[i * gl..(i + 1) * gl].copy_from_slice(&children[i * gl..(i + 1) * gl]);
                }
            }
        }
        Ok((None, spent))
    }
}

impl Attack for OnePixel {
    fn name(&self) -> String {
        format!(
            "onepixel(k={}, DE {}×{})",
            self.pixels, self.population, self.generations
        )
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
        let shape = image_shape(model.input_shape(), "the one-pixel attack")?;
        if self.pixels == 0
            || self.population < 4
            || !self.scale.is_finite()
            || self.crossover.is_some_and(|cr| !(0.0..=1.0).contains(&cr))
        {
            return Err(AttackError::Invalid(
                "the one-pixel attack needs ≥ 1 pixel, a population ≥ 4, a finite F and a crossover rate in [0, 1]".into(),
            ));
        }
        let per_sample = self.population as u64 * (1 + self.generations as u64);
        let budget = self
            .query_budget
            .map_or(per_sample, |q| (q as u64).min(per_sample));
        if budget < self.population as u64 {
            return Err(AttackError::Invalid(format!(
                "a query budget of {budget} cannot pay for one population of {}",
                self.population
            )));
        }
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let mut queries = Budget::new(labels.len(), Some(budget as usize))?;
        for (i, &label) in labels.iter().enumerate() {
            let x0 = &x[i * d..(i + 1) * d];
            let target = goal.targets().map(|t| t[i]);
            let (adv, spent) = self.one(
                model,
                x0,
                label,
                target,
                |p| goal.reached(i, p, label),
                shape,
                threat.domain,
                budget,
                rng,
            )?;
            queries.spend(i, spent);
            if let Some(a) = adv {
                tr.record(i, &a);
            }
        }
        tr.set_queries(queries.into_used());
        let mut out = tr.finish(x, x, threat, model);
        out.norms = l0_norms(&out.adv, x, shape);
        Ok(out)
    }
}

/// Changed pixels per sample of a batch, as the outcome's norms.
pub fn l0_norms(adv: &[f32], x: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let d = shape.iter().product::<usize>();
    adv.chunks(d)
        .zip(x.chunks(d))
        .map(|(a, b)| changed_pixels(a, b, shape) as f32)
        .collect()
}
