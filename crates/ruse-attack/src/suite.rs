//! The attack suite: attacks run in order, each only on the samples still robust, keeping each
//! sample's first successful adversarial (the AutoAttack idea, seeded).

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::apgd::{Apgd, ApgdTargeted};
use crate::attack::{gather_rows, Attack, Goal};
use crate::error::{AttackError, Result};
use crate::fab::Fab;
use crate::fgsm::Fgsm;
use crate::loss::Loss;
use crate::model::{argmax_rows, Model};
use crate::pgd::Pgd;
use crate::square::Square;
use crate::threat::{Norm, ThreatModel};

/// An ordered list of attacks.
pub struct Suite {
    /// Attacks, cheapest first.
    pub attacks: Vec<Box<dyn Attack>>,
}

/// How a suite run is set up.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// The threat model.
    pub threat: ThreatModel,
    /// Seed of every attack's random stream.
    pub seed: u64,
    /// Samples per attack call.
    pub batch: usize,
}

/// One attack's row in the result.
#[derive(Debug, Clone, Serialize)]
pub struct AttackRow {
    /// Attack name.
    pub attack: String,
    /// Samples this attack fooled (that earlier ones had not).
    pub new_successes: usize,
    /// Robust accuracy after this attack (all earlier ones included).
    pub robust_accuracy: f64,
    /// Forward evaluations (samples).
    pub forwards: u64,
    /// Gradient evaluations (samples).
    pub gradients: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The suite's verdict on a set of samples.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    /// Samples.
    pub n: usize,
    /// Clean accuracy.
    pub clean_accuracy: f64,
    /// Robust accuracy under the whole suite (per-sample worst case).
    pub robust_accuracy: f64,
    /// Per attack, in order.
    pub rows: Vec<AttackRow>,
    /// Per sample: correctly classified and not fooled by any attack.
    #[serde(skip)]
    pub robust: Vec<bool>,
    /// Per sample: the attack that fooled it first, if any.
    pub fooled_by: Vec<Option<String>>,
    /// Per sample: the adversarial input found (or the clean input), flat.
    #[serde(skip)]
    pub adv: Vec<f32>,
}

impl Suite {
    /// `quick`: FGSM, PGD-20, APGD-CE 50, then Square with 100 queries (L∞) — for the default run;
    /// the black-box member checks that the gradient attacks were not fooled by masked gradients.
    pub fn quick(norm: Norm) -> Self {
        let mut attacks: Vec<Box<dyn Attack>> = vec![
            Box::new(Fgsm),
            Box::new(Pgd {
                steps: 20,
                ..Pgd::default()
            }),
            Box::new(Apgd::new(Loss::CrossEntropy, 50)),
        ];
        if norm == Norm::Linf {
            attacks.push(Box::new(Square {
                queries: 100,
                p_init: 0.8,
            }));
        }
        Suite { attacks }
    }

    /// `standard`: APGD-CE 100, APGD-T (DLR, 9 targets × 100), FAB-T (9 targets × 100), Square
    /// 5000 queries (L∞) — AutoAttack-standard's members and order.
    pub fn standard(norm: Norm) -> Self {
        let mut attacks: Vec<Box<dyn Attack>> = vec![
            Box::new(Apgd::new(Loss::CrossEntropy, 100)),
            Box::new(ApgdTargeted {
                steps: 100,
                top_k: 9,
            }),
            Box::new(Fab::targeted(9)),
        ];
        if norm == Norm::Linf {
            attacks.push(Box::new(Square::default()));
        }
        Suite { attacks }
    }

    /// A preset by name, for a threat model's norm.
    pub fn preset(name: &str, norm: Norm) -> Result<Self> {
        match name {
            "quick" => Ok(Self::quick(norm)),
            "standard" => Ok(Self::standard(norm)),
            _ => Err(AttackError::Invalid(format!(
                "unknown preset '{name}': use quick or standard"
            ))),
        }
    }

    /// Runs the suite on `x` (flat, N×D) in batches, seeded; `progress(done, total)` after each batch.
    pub fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        settings: &SuiteSettings,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<SuiteResult> {
        let SuiteSettings {
            threat,
            seed,
            batch,
        } = settings;
        let (threat, seed, batch) = (threat, *seed, *batch);
        let d = model.input_len();
        let k = model.classes();
        let n = labels.len();
        if x.len() != n * d {
            return Err(AttackError::Invalid(format!(
                "{} numbers for {n} samples of {d}",
                x.len()
            )));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= k) {
            return Err(AttackError::Invalid(format!(
                "label {l} is out of range for a model with {k} classes"
            )));
        }
        let mut clean = Vec::with_capacity(n);
        for c in x.chunks(batch.max(1) * d) {
            clean.extend(argmax_rows(&model.logits(c)?, k));
        }
        let mut robust: Vec<bool> = clean.iter().zip(labels).map(|(p, y)| p == y).collect();
        let clean_accuracy = robust.iter().filter(|&&r| r).count() as f64 / n.max(1) as f64;
        let mut fooled_by = vec![None; n];
        let mut adv = x.to_vec();
        let mut rows = Vec::new();
        let total_work = self.attacks.len() * n;
        for (ai, attack) in self.attacks.iter().enumerate() {
            let t0 = Instant::now();
            let (f0, g0) = (model.forwards(), model.gradients());
            // Each attack gets its own stream, so adding an attack does not change the others' draws.
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((ai as u64 + 1) << 32));
            let open: Vec<usize> = (0..n).filter(|&i| robust[i]).collect();
            let mut new = 0;
            let mut done = n - open.len();
            for chunk in open.chunks(batch.max(1)) {
                let xs: Vec<f32> = gather_rows(x, chunk, d);
                let ys: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
                let out = attack.run(model, &xs, &ys, threat, &Goal::Untargeted, &mut rng)?;
                // Re-check every claimed success with a fresh forward pass before counting it.
                let preds = argmax_rows(&model.logits(&out.adv)?, k);
                for (j, &i) in chunk.iter().enumerate() {
                    let a = &out.adv[j * d..(j + 1) * d];
                    let delta: Vec<f32> = a
                        .iter()
                        .zip(&x[i * d..(i + 1) * d])
                        .map(|(p, q)| p - q)
                        .collect();
                    let in_ball = threat.norm.of(&delta) <= threat.eps * (1.0 + 1e-5) + 1e-7;
                    let in_domain = a
                        .iter()
                        .all(|v| *v >= threat.domain.0 && *v <= threat.domain.1);
                    if out.success[j] && preds[j] != labels[i] && in_ball && in_domain {
                        robust[i] = false;
                        fooled_by[i] = Some(attack.name());
                        adv[i * d..(i + 1) * d].copy_from_slice(&out.adv[j * d..(j + 1) * d]);
                        new += 1;
                    }
                }
                done += chunk.len();
                progress(ai * n + done, total_work);
            }
            rows.push(AttackRow {
                attack: attack.name(),
                new_successes: new,
                robust_accuracy: robust.iter().filter(|&&r| r).count() as f64 / n.max(1) as f64,
                forwards: model.forwards() - f0,
                gradients: model.gradients() - g0,
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
        Ok(SuiteResult {
            n,
            clean_accuracy,
            robust_accuracy: robust.iter().filter(|&&r| r).count() as f64 / n.max(1) as f64,
            rows,
            robust,
            fooled_by,
            adv,
        })
    }
}
