//! PGD / BIM: projected gradient ascent with random start and restarts (Madry et al. 2018,
//! "Towards Deep Learning Models Resistant to Adversarial Attacks"; Kurakin et al. 2017 without
//! the random start).

use rand_chacha::ChaCha8Rng;

use crate::attack::{steepest, Attack, AttackOutcome, Goal, Tracker};
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
            for _ in 0..self.steps {
                let (logits, _, g) = model.loss_grad(&cur, &self.loss, labels, goal.targets())?;
                tr.observe(&cur, &logits);
                for (i, (c, gi)) in cur.chunks_mut(d).zip(g.chunks(d)).enumerate() {
                    let dir = steepest(gi, threat.norm);
                    c.iter_mut().zip(&dir).for_each(|(v, s)| *v += alpha * s);
                    threat.project(c, &x[i * d..(i + 1) * d]);
                }
            }
            let logits = model.logits(&cur)?;
            tr.observe(&cur, &logits);
            if tr.success.iter().all(|&s| s) {
                break;
            }
        }
        Ok(tr.finish(x, &cur, threat, model))
    }
}
