//! Carlini & Wagner L2 (Carlini & Wagner 2017, "Towards Evaluating the Robustness of Neural
//! Networks"): minimise ‖δ‖₂² + c·max(z_y − max_{j≠y} z_j, −κ) in tanh space with Adam, and a
//! binary search over c per sample; keeps each sample's smallest successful perturbation.

use rand_chacha::ChaCha8Rng;

use crate::attack::{Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::loss::Loss;
use crate::model::{argmax_rows, Model};
use crate::threat::{Norm, ThreatModel};

/// C&W-L2 with its binary search over the constant.
#[derive(Debug, Clone)]
pub struct CarliniWagner {
    /// Adam steps per constant (Foolbox: 10000; 200 by default here for speed).
    pub steps: usize,
    /// Binary-search rounds over c (paper/Foolbox: 9).
    pub binary_steps: usize,
    /// Adam learning rate (paper: 0.01 with 10000 steps; 0.1 here so that a short run can move
    /// pixels that start at the domain's edges, where tanh is flat).
    pub lr: f32,
    /// Initial c (Foolbox: 1e-3; 1 here, so that a short search starts near the usual MNIST range).
    pub initial_const: f32,
    /// Confidence κ (0).
    pub confidence: f32,
}

impl Default for CarliniWagner {
    fn default() -> Self {
        CarliniWagner {
            steps: 200,
            binary_steps: 6,
            lr: 0.1,
            initial_const: 1.0,
            confidence: 0.0,
        }
    }
}

impl CarliniWagner {
    /// Smallest L2 perturbation found per sample (unbounded): (adversarial inputs, success, norms).
    pub fn minimal(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        domain: (f32, f32),
    ) -> Result<(Vec<f32>, Vec<bool>, Vec<f32>)> {
        let d = model.input_len();
        let k = model.classes();
        let b = labels.len();
        let (lo, hi) = domain;
        let half = (hi - lo) / 2.0;
        // x = lo + half·(tanh(w) + 1); start at the clean input pulled 1e-4 inside the box: with
        // the usual 1e-6, pixels at 0 or 1 (most of MNIST) sit where tanh is flat and Adam's
        // 0.01-sized steps need hundreds of iterations to move them at all.
        let to_w = |v: f32| (((v - lo) / half - 1.0).clamp(-1.0 + 1e-4, 1.0 - 1e-4)).atanh();
        let w0: Vec<f32> = x.iter().map(|&v| to_w(v)).collect();
        let mut best = x.to_vec();
        let mut best_norm = vec![f32::INFINITY; b];
        let mut c = vec![self.initial_const; b];
        let (mut lower, mut upper) = (vec![0f32; b], vec![f32::INFINITY; b]);
        for _ in 0..self.binary_steps {
            let mut w = w0.clone();
            let (mut m1, mut m2) = (vec![0f32; b * d], vec![0f32; b * d]);
            let mut found = vec![false; b];
            for t in 1..=self.steps {
                let xs: Vec<f32> = w.iter().map(|&v| lo + half * (v.tanh() + 1.0)).collect();
                let (logits, margin, g) = model.loss_grad(&xs, &Loss::Margin, labels, None)?;
                let preds = argmax_rows(&logits, k);
                for i in 0..b {
                    let xi = &xs[i * d..(i + 1) * d];
                    let n2: f32 = xi
                        .iter()
                        .zip(&x[i * d..(i + 1) * d])
                        .map(|(p, q)| (p - q) * (p - q))
                        .sum();
                    if preds[i] != labels[i] && n2.sqrt() < best_norm[i] {
                        best_norm[i] = n2.sqrt();
                        best[i * d..(i + 1) * d].copy_from_slice(xi);
                        found[i] = true;
                    }
                    if preds[i] != labels[i] {
                        found[i] = true;
                    }
                    // d/dx of ‖x − x0‖² + c·max(m, −κ), then through x = lo + half·(tanh w + 1).
                    let active = margin[i] > -self.confidence;
                    for j in 0..d {
                        let idx = i * d + j;
                        let gx =
                            2.0 * (xs[idx] - x[idx]) + if active { c[i] * g[idx] } else { 0.0 };
                        let th = w[idx].tanh();
                        let gw = gx * half * (1.0 - th * th);
                        m1[idx] = 0.9 * m1[idx] + 0.1 * gw;
                        m2[idx] = 0.999 * m2[idx] + 0.001 * gw * gw;
                        let mh = m1[idx] / (1.0 - 0.9f32.powi(t as i32));
                        let vh = m2[idx] / (1.0 - 0.999f32.powi(t as i32));
                        w[idx] -= self.lr * mh / (vh.sqrt() + 1e-8);
                    }
                }
            }
            for i in 0..b {
                if found[i] {
                    upper[i] = upper[i].min(c[i]);
                    c[i] = (lower[i] + upper[i]) / 2.0;
                } else {
                    lower[i] = lower[i].max(c[i]);
                    c[i] = if upper[i].is_finite() {
                        (lower[i] + upper[i]) / 2.0
                    } else {
                        c[i] * 10.0
                    };
                }
            }
        }
        let success: Vec<bool> = best_norm.iter().map(|n| n.is_finite()).collect();
        let norms = best_norm
            .iter()
            .map(|n| if n.is_finite() { *n } else { 0.0 })
            .collect();
        Ok((best, success, norms))
    }
}

impl Attack for CarliniWagner {
    fn name(&self) -> String {
        format!(
            "cw-l2({} steps × {} constants)",
            self.steps, self.binary_steps
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
        if threat.norm != Norm::L2 || goal.targets().is_some() {
            return Err(AttackError::Invalid(
                "C&W is implemented for untargeted L2".into(),
            ));
        }
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let (mut adv, _, _) = self.minimal(model, x, labels, threat.domain)?;
        for (i, a) in adv.chunks_mut(d).enumerate() {
            threat.project(a, &x[i * d..(i + 1) * d]);
        }
        let logits = model.logits(&adv)?;
        tr.observe(&adv, &logits);
        Ok(tr.finish(x, &adv, threat, model))
    }
}
