//! DeepFool: the minimal perturbation that crosses the nearest linearised decision boundary,
//! iterated (Moosavi-Dezfooli et al. 2016, "DeepFool: a simple and accurate method to fool deep
//! neural networks"), for L2 and L∞. Used for the audit's minimal-perturbation column and, within
//! a threat model, as an attack that succeeds when its perturbation fits in the ball.

use rand_chacha::ChaCha8Rng;

use crate::attack::{gather_rows, Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::loss::Loss;
use crate::model::{argmax_rows, Model};
use crate::threat::{Norm, ThreatModel};

/// DeepFool with the paper's overshoot.
#[derive(Debug, Clone)]
pub struct DeepFool {
    /// Maximum linearisation steps.
    pub steps: usize,
    /// Overshoot η: the final perturbation is scaled by 1 + η (paper: 0.02).
    pub overshoot: f32,
    /// Classes considered: the `candidates` highest-scoring ones (all for ≤ 10 classes).
    pub candidates: usize,
}

impl Default for DeepFool {
    fn default() -> Self {
        DeepFool {
            steps: 50,
            overshoot: 0.02,
            candidates: 10,
        }
    }
}

/// Per-sample minimal perturbations found by DeepFool (unbounded).
pub struct MinimalPerturbation {
    /// Adversarial inputs, flat.
    pub adv: Vec<f32>,
    /// Whether the label changed.
    pub success: Vec<bool>,
    /// Norm of each perturbation.
    pub norms: Vec<f32>,
}

impl DeepFool {
    /// Searches, without a radius limit, for each sample's smallest label-changing perturbation in `norm` (L2 or L∞).
    pub fn minimal(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        norm: Norm,
        domain: (f32, f32),
    ) -> Result<MinimalPerturbation> {
        if norm == Norm::L1 {
            return Err(AttackError::Invalid(
                "DeepFool is implemented for L2 and L∞".into(),
            ));
        }
        let d = model.input_len();
        let k = model.classes();
        let b = labels.len();
        let logits0 = model.logits(x)?;
        // Candidate classes per sample: the top-scoring ones at the clean input.
        let cands: Vec<Vec<usize>> = logits0
            .chunks(k)
            .map(|row| {
                let mut o: Vec<usize> = (0..k).collect();
                o.sort_by(|&a, &c| row[c].total_cmp(&row[a]));
                o.truncate(self.candidates.clamp(2, k));
                o
            })
            .collect();
        // by_rank[r][i]: sample i's r-th candidate class.
        let by_rank: Vec<Vec<usize>> = (0..self.candidates.clamp(2, k))
            .map(|r| cands.iter().map(|c| c[r]).collect())
            .collect();
        let mut total = vec![0f32; b * d];
        let mut cur = x.to_vec();
        let mut done: Vec<bool> = argmax_rows(&logits0, k)
            .iter()
            .zip(labels)
            .map(|(p, l)| p != l)
            .collect();
        for _ in 0..self.steps {
            let open: Vec<usize> = (0..b).filter(|&i| !done[i]).collect();
            if open.is_empty() {
                break;
            }
            let xs: Vec<f32> = gather_rows(&cur, &open, d);
            let ys: Vec<usize> = open.iter().map(|&i| labels[i]).collect();
            // Gradients of the true logit and of each candidate's logit.
            let (z, _, g_true) = model.loss_grad(&xs, &Loss::Logit, &ys, Some(&ys))?;
            let mut best: Vec<(f32, Vec<f32>)> = vec![(f32::INFINITY, Vec::new()); open.len()];
            for rank_classes in &by_rank {
                let cls: Vec<usize> = open.iter().map(|&i| rank_classes[i]).collect();
                let (_, _, g_k) = model.loss_grad(&xs, &Loss::Logit, &ys, Some(&cls))?;
                for (j, &i) in open.iter().enumerate() {
                    let c = cls[j];
                    if c == labels[i] {
                        continue;
                    }
                    let w: Vec<f32> = (0..d).map(|t| g_k[j * d + t] - g_true[j * d + t]).collect();
                    let f = z[j * k + c] - z[j * k + labels[i]];
                    let wn = match norm {
                        Norm::L2 => w.iter().map(|v| v * v).sum::<f32>().sqrt(),
                        _ => w.iter().map(|v| v.abs()).sum::<f32>(),
                    };
                    let dist = f.abs() / (wn + 1e-8);
                    if dist < best[j].0 {
                        // The step onto that boundary (plus a little, so it is crossed).
                        let r: Vec<f32> = match norm {
                            Norm::L2 => w
                                .iter()
                                .map(|v| (f.abs() + 1e-4) / (wn * wn + 1e-8) * v)
                                .collect(),
                            _ => w
                                .iter()
                                .map(|v| (f.abs() + 1e-4) / (wn + 1e-8) * v.signum())
                                .collect(),
                        };
                        best[j] = (dist, r);
                    }
                }
            }
            for (j, &i) in open.iter().enumerate() {
                if best[j].1.is_empty() {
                    done[i] = true;
                    continue;
                }
                for t in 0..d {
                    total[i * d + t] += best[j].1[t];
                    cur[i * d + t] = (x[i * d + t] + (1.0 + self.overshoot) * total[i * d + t])
                        .clamp(domain.0, domain.1);
                }
            }
            let preds = argmax_rows(&model.logits(&gather_rows(&cur, &open, d))?, k);
            for (j, &i) in open.iter().enumerate() {
                if preds[j] != labels[i] {
                    done[i] = true;
                }
            }
        }
        let preds = argmax_rows(&model.logits(&cur)?, k);
        let success: Vec<bool> = preds.iter().zip(labels).map(|(p, l)| p != l).collect();
        let norms = (0..b)
            .map(|i| {
                norm.of(&cur[i * d..(i + 1) * d]
                    .iter()
                    .zip(&x[i * d..(i + 1) * d])
                    .map(|(a, c)| a - c)
                    .collect::<Vec<_>>())
            })
            .collect();
        Ok(MinimalPerturbation {
            adv: cur,
            success,
            norms,
        })
    }
}

impl Attack for DeepFool {
    fn name(&self) -> String {
        format!("deepfool({} steps)", self.steps)
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
        if goal.targets().is_some() {
            return Err(AttackError::Invalid("DeepFool is untargeted".into()));
        }
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let m = self.minimal(model, x, labels, threat.norm, threat.domain)?;
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
