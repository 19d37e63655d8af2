//! APGD: step-size-free projected gradient ascent with momentum and checkpoints (Croce & Hein 2020,
//! "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
//! attacks"), with the CE or DLR loss; targeted over the top-k classes as APGD-T.

use rand_chacha::ChaCha8Rng;

use crate::attack::{gather_rows, steepest, Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::loss::Loss;
use crate::model::{argmax_rows, Model};
use crate::threat::ThreatModel;

/// Auto-PGD.
#[derive(Debug, Clone)]
pub struct Apgd {
    /// Iterations per restart (paper: 100).
    pub steps: usize,
    /// Restarts from new random points.
    pub restarts: usize,
    /// CE or DLR.
    pub loss: Loss,
    /// Checkpoint success-rate threshold ρ (paper: 0.75).
    pub rho: f32,
    /// Momentum α (paper: 0.75).
    pub momentum: f32,
}

impl Apgd {
    /// APGD with the paper's settings and the given loss and budget.
    pub fn new(loss: Loss, steps: usize) -> Self {
        Apgd {
            steps,
            restarts: 1,
            loss,
            rho: 0.75,
            momentum: 0.75,
        }
    }

    /// Checkpoints w_j = ⌈p_j N⌉ with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06).
    pub fn checkpoints(n: usize) -> Vec<usize> {
        let (mut prev, mut cur) = (0.0f64, 0.22f64);
        let mut out = vec![0];
        while cur < 1.0 {
            // The small slack keeps 0.22·100 = 22.000000000000004 from rounding up to 23.
            out.push((cur * n as f64 - 1e-9).ceil() as usize);
            let next = cur + (cur - prev - 0.03).max(0.06);
            prev = cur;
            cur = next;
        }
        out.dedup();
        out
    }

    /// One run from a random start; updates the tracker.
    /// `targets` steers the loss; success is judged by the tracker's own goal (APGD-T ascends a
    /// targeted loss but, as in AutoAttack, any wrong class counts).
    fn once(
        &self,
        model: &Model,
        x: &[f32],
        threat: &ThreatModel,
        targets: Option<&[usize]>,
        rng: &mut ChaCha8Rng,
        tr: &mut Tracker,
    ) -> Result<Vec<f32>> {
        let d = model.input_len();
        let labels = tr.labels();
        let b = labels.len();
        let step = |cur: &[f32], g: &[f32], eta: &[f32]| -> Vec<f32> {
            let mut z = cur.to_vec();
            for (i, (zi, gi)) in z.chunks_mut(d).zip(g.chunks(d)).enumerate() {
                let dir = steepest(gi, threat.norm);
                zi.iter_mut().zip(&dir).for_each(|(v, s)| *v += eta[i] * s);
                threat.project(zi, &x[i * d..(i + 1) * d]);
            }
            z
        };
        let mut cur: Vec<f32> = x
            .chunks(d)
            .flat_map(|x0| threat.random_start(x0, rng))
            .collect();
        let (logits, mut loss, mut g) = model.loss_grad(&cur, &self.loss, labels, targets)?;
        tr.observe(&cur, &logits);
        let mut eta = vec![2.0 * threat.eps; b];
        let (mut best_x, mut best_loss, mut best_g) = (cur.clone(), loss.clone(), g.clone());
        let mut prev = cur.clone();
        let cks = Self::checkpoints(self.steps);
        let mut last_ck = 0;
        let mut increases = vec![0usize; b];
        let mut best_at_last_ck = best_loss.clone();
        let mut reduced_last = vec![false; b];
        for k in 0..self.steps {
            let z = step(&cur, &g, &eta);
            let a = if k == 0 { 1.0 } else { self.momentum };
            let mut next = cur.clone();
            for (i, n) in next.chunks_mut(d).enumerate() {
                let (c, p, zz) = (
                    &cur[i * d..(i + 1) * d],
                    &prev[i * d..(i + 1) * d],
                    &z[i * d..(i + 1) * d],
                );
                for j in 0..d {
                    n[j] = c[j] + a * (zz[j] - c[j]) + (1.0 - a) * (c[j] - p[j]);
                }
                threat.project(n, &x[i * d..(i + 1) * d]);
            }
            prev = cur;
            cur = next;
            let (logits, l, gn) = model.loss_grad(&cur, &self.loss, labels, targets)?;
            tr.observe(&cur, &logits);
            for i in 0..b {
                if l[i] > loss[i] {
                    increases[i] += 1;
                }
                if l[i] > best_loss[i] {
                    best_loss[i] = l[i];
                    best_x[i * d..(i + 1) * d].copy_from_slice(&cur[i * d..(i + 1) * d]);
                    best_g[i * d..(i + 1) * d].copy_from_slice(&gn[i * d..(i + 1) * d]);
                }
            }
            loss = l;
            g = gn;
            if cks.contains(&(k + 1)) && k + 1 > last_ck {
                let span = (k + 1 - last_ck) as f32;
                for i in 0..b {
                    let few_increases = (increases[i] as f32) < self.rho * span;
                    let stalled = !reduced_last[i] && best_at_last_ck[i] >= best_loss[i];
                    reduced_last[i] = few_increases || stalled;
                    if reduced_last[i] {
                        // Halve the step and restart from the best point found.
                        eta[i] /= 2.0;
                        cur[i * d..(i + 1) * d].copy_from_slice(&best_x[i * d..(i + 1) * d]);
                        prev[i * d..(i + 1) * d].copy_from_slice(&best_x[i * d..(i + 1) * d]);
                        g[i * d..(i + 1) * d].copy_from_slice(&best_g[i * d..(i + 1) * d]);
                        loss[i] = best_loss[i];
                    }
                    increases[i] = 0;
                }
                best_at_last_ck = best_loss.clone();
                last_ck = k + 1;
            }
        }
        Ok(best_x)
    }
}

impl Attack for Apgd {
    fn name(&self) -> String {
        let l = match self.loss {
            Loss::CrossEntropy => "ce",
            Loss::Dlr => "dlr",
            Loss::Logit => "logit",
            Loss::Margin => "margin",
        };
        format!("apgd-{l}({} steps)", self.steps)
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
                "APGD needs ≥ 1 step and ≥ 1 restart".into(),
            ));
        }
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let mut last = x.to_vec();
        for _ in 0..self.restarts {
            last = self.once(model, x, threat, goal.targets(), rng, &mut tr)?;
            if tr.success.iter().all(|&s| s) {
                break;
            }
        }
        Ok(tr.finish(x, &last, threat, model))
    }
}

/// APGD-T: targeted APGD with the DLR-targeted loss against each of the `top_k` highest-scoring
/// wrong classes in turn (Croce & Hein 2020 use 9 on 10 classes).
#[derive(Debug, Clone)]
pub struct ApgdTargeted {
    /// Iterations per target.
    pub steps: usize,
    /// How many target classes to try.
    pub top_k: usize,
}

impl Attack for ApgdTargeted {
    fn name(&self) -> String {
        format!("apgd-t({} steps × {} targets)", self.steps, self.top_k)
    }

    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        _goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        let d = model.input_len();
        let k = model.classes();
        let untargeted = Goal::Untargeted;
        let mut tr = Tracker::start(model, x, labels, &untargeted)?;
        let logits = model.logits(x)?;
        tr.observe(x, &logits);
        // Wrong classes ranked by the clean logits: ranked[i][r] is sample i's r-th target.
        let ranked: Vec<Vec<usize>> = logits
            .chunks(k)
            .zip(labels)
            .map(|(row, &y)| {
                let mut o: Vec<usize> = (0..k).filter(|&c| c != y).collect();
                o.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                o
            })
            .collect();
        let apgd = Apgd::new(Loss::Dlr, self.steps);
        let mut last = x.to_vec();
        let rounds = self.top_k.min(k - 1);
        let by_rank: Vec<Vec<usize>> = (0..rounds)
            .map(|r| ranked.iter().map(|o| o[r]).collect())
            .collect();
        for round_targets in &by_rank {
            let open: Vec<usize> = (0..labels.len()).filter(|&i| !tr.success[i]).collect();
            if open.is_empty() {
                break;
            }
            let xs: Vec<f32> = gather_rows(x, &open, d);
            let ys: Vec<usize> = open.iter().map(|&i| labels[i]).collect();
            let targets: Vec<usize> = open.iter().map(|&i| round_targets[i]).collect();
            let mut sub = Tracker::new(&xs, &ys, &untargeted, d, k)?;
            let end = apgd.once(model, &xs, threat, Some(&targets), rng, &mut sub)?;
            for (j, &i) in open.iter().enumerate() {
                last[i * d..(i + 1) * d].copy_from_slice(&end[j * d..(j + 1) * d]);
                if sub.success[j] {
                    let a = &sub.adv[j * d..(j + 1) * d];
                    let pred = argmax_rows(&model.logits(a)?, k)[0];
                    if pred != labels[i] {
                        tr.record(i, a);
                    }
                }
            }
        }
        Ok(tr.finish(x, &last, threat, model))
    }
}
