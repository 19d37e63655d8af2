//! The attack interface: goals, outcomes, and per-sample success tracking.

use rand_chacha::ChaCha8Rng;

use crate::error::{AttackError, Result};
use crate::model::{argmax_rows, Model};
use crate::threat::ThreatModel;

/// What the attacker wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// Any wrong class.
    Untargeted,
    /// This class, per sample.
    Targeted(Vec<usize>),
}

impl Goal {
    /// Target classes, if targeted.
    pub fn targets(&self) -> Option<&[usize]> {
        match self {
            Goal::Untargeted => None,
            Goal::Targeted(t) => Some(t),
        }
    }

    /// Whether prediction `pred` reaches the goal for sample `i` with true label `label`.
    pub fn reached(&self, i: usize, pred: usize, label: usize) -> bool {
        match self {
            Goal::Untargeted => pred != label,
            Goal::Targeted(t) => t.get(i) == Some(&pred),
        }
    }
}

/// Per-sample result of an attack on a batch.
#[derive(Debug, Clone)]
pub struct AttackOutcome {
    /// Adversarial inputs (flat, B×D): the successful point where found, else the last iterate.
    pub adv: Vec<f32>,
    /// Whether the goal was reached.
    pub success: Vec<bool>,
    /// Perturbation norm (in the threat model's norm) of each returned input.
    pub norms: Vec<f32>,
    /// Forward evaluations spent (samples).
    pub forwards: u64,
    /// Gradient evaluations spent (samples).
    pub gradients: u64,
    /// Forward evaluations spent on each sample, for query-based attacks that count them per
    /// sample (empty for the others).
    pub queries: Vec<u64>,
}

/// An attack: a small object holding its parameters (Foolbox style).
pub trait Attack {
    /// Name with its key settings, e.g. `pgd-linf(40 steps)`.
    fn name(&self) -> String;
    /// Attacks a batch `x` (flat, B×D) with true `labels`.
    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome>;
}

/// The rows (samples of `d` numbers) of `x` at `idx`, concatenated.
pub fn gather_rows(x: &[f32], idx: &[usize], d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    out
}

/// Records, per sample, the first point found that reaches the goal, and the queries spent.
pub struct Tracker<'a> {
    start: (u64, u64),
    goal: &'a Goal,
    labels: &'a [usize],
    d: usize,
    k: usize,
    /// Best adversarial so far (or the clean input).
    pub adv: Vec<f32>,
    /// Goal reached.
    pub success: Vec<bool>,
    /// Per-sample forward evaluations, set by query-based attacks (see [`Tracker::set_queries`]).
    queries: Vec<u64>,
}

impl<'a> Tracker<'a> {
    /// Starts from the clean inputs.
    pub fn new(x: &[f32], labels: &'a [usize], goal: &'a Goal, d: usize, k: usize) -> Result<Self> {
        if labels.len() * d != x.len() {
            return Err(AttackError::Invalid(format!(
                "{} labels for {} numbers of {d} per sample",
                labels.len(),
                x.len()
            )));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= k) {
            return Err(AttackError::Invalid(format!(
                "label {l} is out of range for a model with {k} classes"
            )));
        }
        if let Goal::Targeted(t) = goal {
            if t.len() != labels.len() || t.iter().any(|&c| c >= k) {
                return Err(AttackError::Invalid(
                    "targets must be one valid class per sample".into(),
                ));
            }
        }
        Ok(Tracker {
            start: (0, 0),
            goal,
            labels,
            d,
            k,
            adv: x.to_vec(),
            success: vec![false; labels.len()],
            queries: Vec::new(),
        })
    }

    /// Starts an attack on `model`: clean inputs as the fallback, query counters from now.
    pub fn start(model: &Model, x: &[f32], labels: &'a [usize], goal: &'a Goal) -> Result<Self> {
        let mut t = Tracker::new(x, labels, goal, model.input_len(), model.classes())?;
        t.start = (model.forwards(), model.gradients());
        Ok(t)
    }

    /// The true labels of the batch.
    pub fn labels(&self) -> &'a [usize] {
        self.labels
    }

    /// The goal of the batch.
    pub fn goal(&self) -> &'a Goal {
        self.goal
    }

    /// Looks at the logits of candidate points `xs` and keeps those that reach the goal.
    pub fn observe(&mut self, xs: &[f32], logits: &[f32]) {
        self.observe_indexed(0.., xs, logits);
    }

    /// `observe` for candidate points of a subset: row j of `xs`/`logits` is sample `rows[j]`.
    pub fn observe_rows(&mut self, rows: &[usize], xs: &[f32], logits: &[f32]) {
        self.observe_indexed(rows.iter().copied(), xs, logits);
    }

    /// `observe` with row j of `xs`/`logits` standing for sample `rows[j]`.
    fn observe_indexed(&mut self, rows: impl Iterator<Item = usize>, xs: &[f32], logits: &[f32]) {
        for (j, (i, p)) in rows.zip(argmax_rows(logits, self.k)).enumerate() {
            if !self.success[i] && self.goal.reached(i, p, self.labels[i]) {
                self.success[i] = true;
                self.adv[i * self.d..(i + 1) * self.d]
                    .copy_from_slice(&xs[j * self.d..(j + 1) * self.d]);
            }
        }
    }

    /// Marks sample `i` as fooled by the (already verified) input `xi`, unless it already is.
    pub fn record(&mut self, i: usize, xi: &[f32]) {
        if !self.success[i] {
            self.success[i] = true;
            self.adv[i * self.d..(i + 1) * self.d].copy_from_slice(xi);
        }
    }

    /// Records the forward evaluations each sample cost (query-based attacks).
    pub fn set_queries(&mut self, queries: Vec<u64>) {
        self.queries = queries;
    }

    /// Finishes: unsuccessful samples return `last` (the final iterate).
    pub fn finish(
        mut self,
        x0: &[f32],
        last: &[f32],
        threat: &ThreatModel,
        model: &Model,
    ) -> AttackOutcome {
        for i in 0..self.success.len() {
            if !self.success[i] {
                self.adv[i * self.d..(i + 1) * self.d]
                    .copy_from_slice(&last[i * self.d..(i + 1) * self.d]);
            }
        }
        let norms = self
            .adv
            .chunks(self.d)
            .zip(x0.chunks(self.d))
            .map(|(a, c)| {
                threat
                    .norm
                    .of(&a.iter().zip(c).map(|(p, q)| p - q).collect::<Vec<_>>())
            })
            .collect();
        AttackOutcome {
            adv: self.adv,
            success: self.success,
            norms,
            forwards: model.forwards() - self.start.0,
            gradients: model.gradients() - self.start.1,
            queries: self.queries,
        }
    }
}

/// Whether the logits `row` of a sample with true `label` reach the goal (a wrong class, or
/// `target`) by a margin that survives re-evaluation: the winning score beats every other by
/// 1e-4·max(1, max|z|). Minimal-perturbation attacks end right at the decision boundary, where a
/// forward pass over a different batch (other rounding) can flip a razor-thin decision.
pub fn clearly_reached(row: &[f32], label: usize, target: Option<usize>) -> bool {
    let tol = 1e-4 * row.iter().fold(1f32, |m, v| m.max(v.abs()));
    let best_except = |skip: usize| {
        row.iter()
            .enumerate()
            .filter(|(j, _)| *j != skip)
            .fold(f32::NEG_INFINITY, |m, (_, v)| m.max(*v))
    };
    match target {
        Some(t) => row[t] - best_except(t) > tol,
        None => best_except(label) - row[label] > tol,
    }
}

/// 1, −1 or 0 by the sign of `v` (0 for ±0 and NaN), without branches: gradient signs are
/// random, so a branch per element would be mispredicted often.
fn sign(v: f32) -> f32 {
    f32::from(u8::from(v > 0.0)) - f32::from(u8::from(v < 0.0))
}

/// Moves `x` by `size` along the ascent direction of `g` under `norm` (see [`steepest`]), in place.
pub fn step_along(x: &mut [f32], g: &[f32], size: f32, norm: crate::threat::Norm) {
    if norm == crate::threat::Norm::Linf {
        for (v, gi) in x.iter_mut().zip(g) {
            *v += size * sign(*gi);
        }
        return;
    }
    for (v, s) in x.iter_mut().zip(steepest(g, norm)) {
        *v += size * s;
    }
}

/// The ascent direction of a gradient under a norm: sign (L∞), unit L2, or sparse top-1% (L1).
pub fn steepest(g: &[f32], norm: crate::threat::Norm) -> Vec<f32> {
    use crate::threat::Norm;
    match norm {
        Norm::Linf => g.iter().map(|v| sign(*v)).collect(),
        Norm::L2 => {
            let n = g.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            g.iter().map(|v| v / n).collect()
        }
        Norm::L1 => {
            let k = (g.len() / 100).max(1);
            let mut mags: Vec<f32> = g.iter().map(|v| v.abs()).collect();
            mags.sort_by(|a, b| b.total_cmp(a));
            let cut = mags[k - 1];
            let picked = g
                .iter()
                .filter(|v| v.abs() >= cut && cut > 0.0)
                .count()
                .max(1) as f32;
            g.iter()
                .map(|v| {
                    if v.abs() >= cut && cut > 0.0 {
                        v.signum() / picked
                    } else {
                        0.0
                    }
                })
                .collect()
        }
    }
}
