//! APGD: step-size-free projected gradient ascent with momentum and checkpoints (Croce & Hein 2020,
//! "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
//! attacks"), with the CE or DLR loss; targeted over the top-k classes as APGD-T.

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::attack::{gather_rows, step_along, Attack, AttackOutcome, Goal, Tracker};
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

    /// One run from a random start; updates the tracker and returns each sample's best point.
    /// `targets` steers the loss; success is judged by the tracker's own goal (APGD-T ascends a
    /// targeted loss but, as in AutoAttack, any wrong class counts). A sample leaves the batch
    /// once the tracker has its adversarial: every sample's walk depends on its own state only,
    /// so the others' walks are unchanged and the remaining gradients are not spent on it.
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
        // Every sample draws its start, fooled or not, so the random stream does not depend on
        // which samples are still open.
        let mut walks: Vec<Walk> = x
            .chunks(d)
            .map(|x0| Walk::start(threat.random_start(x0, rng), 2.0 * threat.eps))
            .collect();
        let mut open: Vec<usize> = (0..b).filter(|&i| !tr.success[i]).collect();
        let cks = Self::checkpoints(self.steps);
        let mut last_ck = 0;
        for k in 0..=self.steps {
            if open.is_empty() {
                break;
            }
            let rows = open_rows(b, &open);
            if k > 0 {
                let a = if k == 1 { 1.0 } else { self.momentum };
                open_walks(&mut walks, &rows)
                    .for_each(|(i, _, w)| w.advance(a, &x[i * d..(i + 1) * d], threat));
            }
            let mut xs = Vec::with_capacity(open.len() * d);
            open.iter()
                .for_each(|&i| xs.extend_from_slice(&walks[i].cur));
            let ys: Vec<usize> = open.iter().map(|&i| labels[i]).collect();
            let ts: Option<Vec<usize>> = targets.map(|t| open.iter().map(|&i| t[i]).collect());
            let (logits, l, g) = model.loss_grad(&xs, &self.loss, &ys, ts.as_deref())?;
            tr.observe_rows(&open, &xs, &logits);
            open_walks(&mut walks, &rows)
                .for_each(|(_, j, w)| w.take(l[j], &g[j * d..(j + 1) * d], k == 0));
            if k > 0 && cks.contains(&k) && k > last_ck {
                let span = (k - last_ck) as f32;
                open_walks(&mut walks, &rows).for_each(|(_, _, w)| w.checkpoint(self.rho * span));
                last_ck = k;
            }
            open.retain(|&i| !tr.success[i]);
        }
        Ok(walks.into_iter().flat_map(|w| w.best_x).collect())
    }
}

/// Each sample's row in the batch of open samples, or None when it is not open.
fn open_rows(b: usize, open: &[usize]) -> Vec<Option<usize>> {
    let mut row = vec![None; b];
    open.iter().enumerate().for_each(|(j, &i)| row[i] = Some(j));
    row
}

/// The open samples' walks, in parallel, as (sample index, row in the open batch, walk).
fn open_walks<'w>(
    walks: &'w mut [Walk],
    rows: &'w [Option<usize>],
) -> impl ParallelIterator<Item = (usize, usize, &'w mut Walk)> {
    walks
        .par_iter_mut()
        .enumerate()
        .zip(rows)
        .filter_map(|((i, w), j)| j.map(|j| (i, j, w)))
}

/// One sample's APGD state: the current and previous points, the current gradient and loss,
/// the best point so far with its gradient and loss, and the step-size bookkeeping.
struct Walk {
    cur: Vec<f32>,
    prev: Vec<f32>,
    g: Vec<f32>,
    loss: f32,
    best_x: Vec<f32>,
    best_g: Vec<f32>,
    best_loss: f32,
    best_at_last_ck: f32,
    eta: f32,
    increases: usize,
    reduced_last: bool,
}

impl Walk {
    fn start(x0: Vec<f32>, eta: f32) -> Self {
        Walk {
            prev: x0.clone(),
            best_x: x0.clone(),
            cur: x0,
            g: Vec::new(),
            loss: f32::NEG_INFINITY,
            best_g: Vec::new(),
            best_loss: f32::NEG_INFINITY,
            best_at_last_ck: f32::NEG_INFINITY,
            eta,
            increases: 0,
            reduced_last: false,
        }
    }

    /// x ← P(x + a·(P(x + η·steepest(g)) − x) + (1 − a)·(x − x_prev)).
    fn advance(&mut self, a: f32, x0: &[f32], threat: &ThreatModel) {
        let mut z = self.cur.clone();
        step_along(&mut z, &self.g, self.eta, threat.norm);
        threat.project(&mut z, x0);
        let (c, p) = (&self.cur, &mut self.prev);
        for j in 0..c.len() {
            p[j] = c[j] + a * (z[j] - c[j]) + (1.0 - a) * (c[j] - p[j]);
        }
        threat.project(p, x0);
        std::mem::swap(&mut self.cur, &mut self.prev);
    }

    /// Takes the loss and gradient at the current point (`first`: the start point).
    fn take(&mut self, loss: f32, g: &[f32], first: bool) {
        if first {
            self.best_loss = loss;
            self.best_at_last_ck = loss;
            self.best_g = g.to_vec();
        } else {
            if loss > self.loss {
                self.increases += 1;
            }
            if loss > self.best_loss {
                self.best_loss = loss;
                self.best_x.copy_from_slice(&self.cur);
                self.best_g.copy_from_slice(g);
            }
        }
        self.loss = loss;
        self.g.clear();
        self.g.extend_from_slice(g);
    }

    /// At a checkpoint: halve the step and restart from the best point when fewer than
    /// `min_increases` steps raised the loss, or when the step was not halved last time and the
    /// best loss has not improved since.
    fn checkpoint(&mut self, min_increases: f32) {
        let few_increases = (self.increases as f32) < min_increases;
        let stalled = !self.reduced_last && self.best_at_last_ck >= self.best_loss;
        self.reduced_last = few_increases || stalled;
        if self.reduced_last {
            self.eta /= 2.0;
            self.cur.copy_from_slice(&self.best_x);
            self.prev.copy_from_slice(&self.best_x);
            self.g.copy_from_slice(&self.best_g);
            self.loss = self.best_loss;
        }
        self.increases = 0;
        self.best_at_last_ck = self.best_loss;
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
