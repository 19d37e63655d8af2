//! PGD / BIM: projected gradient ascent with random start and restarts (Madry et al. 2018,
//! "Towards Deep Learning Models Resistant to Adversarial Attacks"; Kurakin et al. 2017 without
//! the random start).

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::attack::{gather_rows, step_along, Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::loss::Loss;
use crate::model::Model;
use crate::threat::ThreatModel;

/// Projected gradient descent on the loss, in the threat model's norm.
#[derive(Debug, Clone)]
pub struct Pgd {
    /// Iterations per restart.
    pub steps: usize,
    /// Step size as a multiple of ε (Madry et al.: 2.5 ε / steps).
    pub rel_step: Option<f32>,
    /// Independent restarts (each from a new random start).
    pub restarts: usize,
    /// Start from a random point in the ball (PGD) or from the input (BIM).
    pub random_start: bool,
    /// The loss ascended.
    pub loss: Loss,
}

impl Default for Pgd {
    fn default() -> Self {
        Pgd {
            steps: 40,
            rel_step: None,
            restarts: 1,
            random_start: true,
            loss: Loss::CrossEntropy,
        }
    }
}

impl Attack for Pgd {
    fn name(&self) -> String {
        format!("pgd({} steps × {} restarts)", self.steps, self.restarts)
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
        if self.steps == 0 || self.restarts == 0 {
            return Err(AttackError::Invalid(
                "PGD needs ≥ 1 step and ≥ 1 restart".into(),
            ));
        }
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let alpha = threat.eps * self.rel_step.unwrap_or(2.5 / self.steps as f32);
        let mut cur = x.to_vec();
        for _ in 0..self.restarts {
            cur = if self.random_start {
                x.chunks(d)
                    .flat_map(|x0| threat.random_start(x0, rng))
                    .collect()
            } else {
                x.to_vec()
            };
            // Samples already fooled leave the batch: their adversarial is kept by the tracker
            // and nothing later can change it, so the remaining steps would be wasted on them.
            let mut open: Vec<usize> = (0..labels.len()).filter(|&i| !tr.success[i]).collect();
            for _ in 0..self.steps {
                if open.is_empty() {
                    break;
                }
                let gathered;
                let xs: &[f32] = if open.len() == labels.len() {
                    &cur
                } else {
                    gathered = gather_rows(&cur, &open, d);
                    &gathered
                };
                let ys: Vec<usize> = open.iter().map(|&i| labels[i]).collect();
                let ts: Option<Vec<usize>> =
                    goal.targets().map(|t| open.iter().map(|&i| t[i]).collect());
                let (logits, _, g) = model.loss_grad(xs, &self.loss, &ys, ts.as_deref())?;
                tr.observe_rows(&open, xs, &logits);
                // The open rows of `cur`, in order, each with its clean input and gradient.
                let mut is_open = vec![false; labels.len()];
                open.iter().for_each(|&i| is_open[i] = true);
                let rows: Vec<(&mut [f32], &[f32])> = cur
                    .chunks_mut(d)
                    .zip(x.chunks(d))
                    .zip(&is_open)
                    .filter_map(|(r, &o)| o.then_some(r))
                    .collect();
                rows.into_par_iter()
                    .zip(g.par_chunks(d))
                    .for_each(|((c, x0), gi)| {
                        step_along(c, gi, alpha, threat.norm);
                        threat.project(c, x0);
                    });
                open.retain(|&i| !tr.success[i]);
            }
            if !open.is_empty() {
                let xs = gather_rows(&cur, &open, d);
                let logits = model.logits(&xs)?;
                tr.observe_rows(&open, &xs, &logits);
            }
            if tr.success.iter().all(|&s| s) {
                break;
            }
        }
        Ok(tr.finish(x, &cur, threat, model))
    }
}
