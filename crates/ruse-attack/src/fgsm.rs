//! FGSM: one signed-gradient step of size ε (Goodfellow et al. 2015, "Explaining and Harnessing
//! Adversarial Examples"); under L2/L1 the step follows the steepest direction of that norm.

use rand_chacha::ChaCha8Rng;

use crate::attack::{steepest, Attack, AttackOutcome, Goal, Tracker};
use crate::error::Result;
use crate::loss::Loss;
use crate::model::Model;
use crate::threat::ThreatModel;

/// The fast gradient sign method.
#[derive(Debug, Clone, Default)]
pub struct Fgsm;

impl Attack for Fgsm {
    fn name(&self) -> String {
        "fgsm".into()
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
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let (_, _, g) = model.loss_grad(x, &Loss::CrossEntropy, labels, goal.targets())?;
        let mut adv = x.to_vec();
        for (i, (a, gi)) in adv.chunks_mut(d).zip(g.chunks(d)).enumerate() {
            let dir = steepest(gi, threat.norm);
            a.iter_mut()
                .zip(&dir)
                .for_each(|(v, s)| *v += threat.eps * s);
            threat.project(a, &x[i * d..(i + 1) * d]);
        }
        let logits = model.logits(&adv)?;
        tr.observe(&adv, &logits);
        Ok(tr.finish(x, &adv, threat, model))
    }
}
