//! HopSkipJump (Chen, Jordan and Wainwright 2020, "HopSkipJumpAttack: a query-efficient
//! decision-based attack"): uses only the model's top-1 label. From an adversarial start (random
//! noise, else another sample of the batch), it repeats: bisect towards the clean input to the
//! decision boundary, estimate the boundary's normal by Monte Carlo sign queries around it
//! (B₀·√t samples at iteration t), then step along it with a geometrically shrinking step until
//! the label is still wrong. L2 and L∞ versions; every query is counted against a budget. A
//! label counts as wrong only by a margin that survives re-evaluation ([`clearly_reached`]).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::attack::{clearly_reached, Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::model::Model;
use crate::query::Budget;
use crate::threat::{gaussian, Norm, ThreatModel};

/// HopSkipJump with the paper's defaults.
#[derive(Debug, Clone)]
pub struct HopSkipJump {
    /// Most iterations (gradient estimate + step + bisection) per sample.
    pub iterations: usize,
    /// Monte Carlo samples at the first iteration, B₀ (paper: 100); B₀·√t at iteration t.
    pub init_evals: usize,
    /// Cap on Monte Carlo samples per iteration (paper: 10000).
    pub max_evals: usize,
    /// γ, setting the bisection threshold θ = γ/d^{3/2} (L2) or γ/d² (L∞) (paper: 1).
    pub gamma: f32,
    /// Random noise images tried for a start before other samples of the batch.
    pub init_tries: usize,
    /// Most forward evaluations per sample (None: only `iterations` limits the run).
    pub query_budget: Option<usize>,
}

impl Default for HopSkipJump {
    fn default() -> Self {
        HopSkipJump {
            iterations: 64,
            init_evals: 100,
            max_evals: 10000,
            gamma: 1.0,
            init_tries: 100,
            query_budget: None,
        }
    }
}

/// The unbounded result of HopSkipJump on a batch.
#[derive(Debug, Clone)]
pub struct Boundary {
    /// Adversarial inputs where found (else the clean input), flat.
    pub adv: Vec<f32>,
    /// Whether an adversarial was found (each was labelled adversarial by a model query).
    pub found: Vec<bool>,
    /// (queries spent so far, distance in the attack's norm to the clean input) after the start
    /// and after each iteration, per sample.
    pub history: Vec<Vec<(u64, f32)>>,
    /// Forward evaluations spent per sample.
    pub queries: Vec<u64>,
}

/// One sample's oracle: answers "adversarial?" for a batch of points, within the budget.
struct Oracle<'a> {
    model: &'a Model<'a>,
    label: usize,
    target: Option<usize>,
    budget: &'a mut Budget,
    i: usize,
}

impl Oracle<'_> {
    /// Labels `pts` adversarial or not; None when the budget cannot pay for them all.
    fn ask(&mut self, pts: &[f32]) -> Result<Option<Vec<bool>>> {
        let n = (pts.len() / self.model.input_len()) as u64;
        if n == 0 || n > self.budget.left(self.i) {
            return Ok(None);
        }
        self.budget.spend(self.i, n);
        let logits = self.model.logits(pts)?;
        // The top-1 decision, with ties within rounding counted as not adversarial: bisection
        // ends a hair from the boundary, and a decision that flips when the same point is
        // evaluated in another batch would not survive the re-check.
        Ok(Some(
            logits
                .chunks(self.model.classes())
                .map(|row| clearly_reached(row, self.label, self.target))
                .collect(),
        ))
    }

    /// Whether one point is adversarial; None when out of budget.
    fn one(&mut self, p: &[f32]) -> Result<Option<bool>> {
        Ok(self.ask(p)?.map(|v| v[0]))
    }
}

/// The point at "radius" `a` between `x0` and `xa`: the blend (L2) or the clip of `xa` to the
/// L∞ ball of radius `a` (L∞).
fn towards(x0: &[f32], xa: &[f32], a: f32, norm: Norm) -> Vec<f32> {
    match norm {
        Norm::Linf => xa
            .iter()
            .zip(x0)
            .map(|(&v, &c)| v.clamp(c - a, c + a))
            .collect(),
        _ => xa.iter().zip(x0).map(|(&v, &c)| c + a * (v - c)).collect(),
    }
}

fn dist(a: &[f32], b: &[f32], norm: Norm) -> f32 {
    norm.of(&a.iter().zip(b).map(|(p, q)| p - q).collect::<Vec<_>>())
}

impl HopSkipJump {
    fn check(&self, norm: Norm) -> Result<()> {
        if norm == Norm::L1 {
            return Err(AttackError::Invalid(
                "HopSkipJump has L2 and L∞ versions; use --norm l2 or linf".into(),
            ));
        }
        if self.init_evals == 0 || self.max_evals == 0 || self.gamma.is_nan() || self.gamma <= 0.0 {
            return Err(AttackError::Invalid(
                "HopSkipJump needs B₀ ≥ 1, a sample cap ≥ 1 and γ > 0".into(),
            ));
        }
        Ok(())
    }

    /// Bisects between `x0` (not adversarial) and `xa` (adversarial) to the boundary; returns
    /// the adversarial end. Stops early (still adversarial) when the budget runs out.
    fn bisect(
        &self,
        o: &mut Oracle,
        x0: &[f32],
        xa: &[f32],
        norm: Norm,
        theta: f32,
    ) -> Result<Vec<f32>> {
        let (mut lo, mut hi, tol) = match norm {
            Norm::Linf => {
                let d = dist(xa, x0, norm);
                (0.0, d, (d * theta).min(theta))
            }
            _ => (0.0, 1.0, theta),
        };
        let mut best = xa.to_vec();
        // 60 halvings reach f32 resolution; the cap guards against a zero tolerance.
        for _ in 0..60 {
            if hi - lo <= tol {
                break;
            }
            let mid = (lo + hi) / 2.0;
            let p = towards(x0, xa, mid, norm);
            match o.one(&p)? {
                Some(true) => {
                    hi = mid;
                    best = p;
                }
                Some(false) => lo = mid,
                None => break,
            }
        }
        Ok(best)
    }

    /// Finds a first adversarial for sample `i`: uniform noise, then other samples of the batch;
    /// then bisects from the clean input towards it (on the blend line, as the paper does).
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        o: &mut Oracle,
        x: &[f32],
        i: usize,
        d: usize,
        domain: (f32, f32),
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<Vec<f32>>> {
        let x0 = &x[i * d..(i + 1) * d];
        let mut found = None;
        for _ in 0..self.init_tries {
            let p: Vec<f32> = (0..d)
                .map(|_| rng.random_range(domain.0..=domain.1))
                .collect();
            match o.one(&p)? {
                Some(true) => {
                    found = Some(p);
                    break;
                }
                Some(false) => {}
                None => return Ok(None),
            }
        }
        if found.is_none() {
            for j in (0..x.len() / d).filter(|&j| j != i) {
                let p = &x[j * d..(j + 1) * d];
                match o.one(p)? {
                    Some(true) => {
                        found = Some(p.to_vec());
                        break;
                    }
                    Some(false) => {}
                    None => return Ok(None),
                }
            }
        }
        let Some(p) = found else { return Ok(None) };
        // Coarse blend search (tolerance 1e-3), as in the reference start.
        let mut best = p.clone();
        let (mut lo, mut hi) = (0f32, 1f32);
        while hi - lo > 1e-3 {
            let mid = (lo + hi) / 2.0;
            let q = towards(x0, &p, mid, Norm::L2);
            match o.one(&q)? {
                Some(true) => {
                    hi = mid;
                    best = q;
                }
                Some(false) => lo = mid,
                None => break,
            }
        }
        Ok(Some(best))
    }

    /// Runs HopSkipJump without a radius: the smallest adversarial found per sample (in `norm`,
    /// L2 or L∞), the distance after each iteration, and the queries spent.
    #[allow(clippy::too_many_arguments)]
    pub fn minimal(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        goal: &Goal,
        norm: Norm,
        domain: (f32, f32),
        rng: &mut ChaCha8Rng,
    ) -> Result<Boundary> {
        self.search(model, x, labels, goal, norm, domain, None, rng)
    }

    /// [`HopSkipJump::minimal`], stopping a sample early once its distance is ≤ `stop_at`.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        goal: &Goal,
        norm: Norm,
        domain: (f32, f32),
        stop_at: Option<f32>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Boundary> {
        self.check(norm)?;
        let done = |dist: f32| stop_at.is_some_and(|s| dist <= s);
        let d = model.input_len();
        let b = labels.len();
        if b * d != x.len() {
            return Err(AttackError::Invalid(format!(
                "{b} labels for {} numbers of {d} per sample",
                x.len()
            )));
        }
        let (lo, hi) = domain;
        let df = d as f32;
        let theta = match norm {
            Norm::Linf => self.gamma / (df * df),
            _ => self.gamma / (df * df.sqrt()),
        };
        let mut budget = Budget::new(b, self.query_budget)?;
        let mut adv = x.to_vec();
        let mut found = vec![false; b];
        let mut history = vec![Vec::new(); b];
        for i in 0..b {
            let x0 = &x[i * d..(i + 1) * d];
            let mut o = Oracle {
                model,
                label: labels[i],
                target: goal.targets().map(|t| t[i]),
                budget: &mut budget,
                i,
            };
            // A sample already at the goal needs no search (and would break the bisection).
            match o.one(x0)? {
                Some(true) => {
                    found[i] = true;
                    history[i].push((o.budget.used()[i], 0.0));
                    continue;
                }
                Some(false) => {}
                None => continue,
            }
            let Some(start) = self.start(&mut o, x, i, d, domain, rng)? else {
                continue;
            };
            found[i] = true;
            let mut xb = self.bisect(&mut o, x0, &start, norm, theta)?;
            let mut dcur = dist(&xb, x0, norm);
            history[i].push((o.budget.used()[i], dcur));
            for t in 1..=self.iterations {
                if done(dcur) {
                    break;
                }
                // Probe radius: 0.1 of the domain at first, then tied to the distance.
                let delta = if t == 1 {
                    0.1 * (hi - lo)
                } else {
                    match norm {
                        Norm::Linf => df * theta * dcur,
                        _ => df.sqrt() * theta * dcur,
                    }
                };
                let want = ((self.init_evals as f32 * (t as f32).sqrt()) as usize)
                    .clamp(1, self.max_evals);
                let n = (want as u64).min(o.budget.left(i)) as usize;
                if n < 2 {
                    break;
                }
                // Monte Carlo estimate of the boundary normal from signs at random probes.
                let mut pts = Vec::with_capacity(n * d);
                for _ in 0..n {
                    let mut u: Vec<f32> = match norm {
                        Norm::Linf => (0..d).map(|_| rng.random_range(-1.0f32..=1.0)).collect(),
                        _ => (0..d).map(|_| gaussian(rng)).collect(),
                    };
                    let un = Norm::L2.of(&u).max(1e-12);
                    u.iter_mut().for_each(|v| *v /= un);
                    pts.extend(
                        xb.iter()
                            .zip(&u)
                            .map(|(&c, &v)| (c + delta * v).clamp(lo, hi)),
                    );
                }
                let Some(signs) = o.ask(&pts)? else { break };
                let phi: Vec<f32> = signs.iter().map(|&s| if s { 1.0 } else { -1.0 }).collect();
                let mean = phi.iter().sum::<f32>() / n as f32;
                // Baseline (mean sign) subtracted unless every probe agreed.
                let base = if mean.abs() == 1.0 { 0.0 } else { mean };
                let mut g = vec![0f32; d];
                for (j, &f) in phi.iter().enumerate() {
                    let w = f - base;
                    // The probe direction after clipping, (p − x_b)/δ.
                    for (gv, (&p, &c)) in g.iter_mut().zip(pts[j * d..(j + 1) * d].iter().zip(&xb))
                    {
                        *gv += w * (p - c) / delta;
                    }
                }
                let v: Vec<f32> = match norm {
                    Norm::Linf => g
                        .iter()
                        .map(|&v| if v == 0.0 { 0.0 } else { v.signum() })
                        .collect(),
                    _ => {
                        let gn = Norm::L2.of(&g).max(1e-12);
                        g.iter().map(|v| v / gn).collect()
                    }
                };
                // Geometric step search: ξ = dist/√t, halved until the step stays adversarial.
                let mut xi = dcur / (t as f32).sqrt();
                let mut stepped = None;
                for _ in 0..30 {
                    let p: Vec<f32> = xb
                        .iter()
                        .zip(&v)
                        .map(|(&c, &s)| (c + xi * s).clamp(lo, hi))
                        .collect();
                    match o.one(&p)? {
                        Some(true) => {
                            stepped = Some(p);
                            break;
                        }
                        Some(false) => xi /= 2.0,
                        None => break,
                    }
                }
                let Some(p) = stepped else { break };
                let nb = self.bisect(&mut o, x0, &p, norm, theta)?;
                let dn = dist(&nb, x0, norm);
                // Keep the closest adversarial seen (each candidate was labelled adversarial).
                if dn <= dcur {
                    xb = nb;
                    dcur = dn;
                }
                history[i].push((o.budget.used()[i], dcur));
            }
            adv[i * d..(i + 1) * d].copy_from_slice(&xb);
        }
        Ok(Boundary {
            adv,
            found,
            history,
            queries: budget.into_used(),
        })
    }
}

impl Boundary {
    /// Queries sample `i` had spent when its adversarial first came within `eps` (None: never).
    pub fn queries_to(&self, i: usize, eps: f32) -> Option<u64> {
        self.history[i]
            .iter()
            .find(|(_, dist)| *dist <= eps)
            .map(|(q, _)| *q)
    }
}

impl Attack for HopSkipJump {
    fn name(&self) -> String {
        match self.query_budget {
            Some(q) => format!("hopskipjump({} iterations, {q} queries)", self.iterations),
            None => format!("hopskipjump({} iterations)", self.iterations),
        }
    }

    /// Succeeds where an adversarial found fits in the threat model's ball (and stops there);
    /// elsewhere returns the smallest one's projection onto the ball (not adversarial as far as
    /// the attack knows).
    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        let d = model.input_len();
        let mut tr = Tracker::start(model, x, labels, goal)?;
        // Within a threat model, a sample is done once its adversarial fits in the ball.
        let m = self.search(
            model,
            x,
            labels,
            goal,
            threat.norm,
            threat.domain,
            Some(threat.eps),
            rng,
        )?;
        let mut last = m.adv.clone();
        for i in 0..labels.len() {
            let (a, x0) = (&m.adv[i * d..(i + 1) * d], &x[i * d..(i + 1) * d]);
            if m.found[i] && dist(a, x0, threat.norm) <= threat.eps {
                tr.record(i, a);
            } else {
                threat.project(&mut last[i * d..(i + 1) * d], x0);
            }
        }
        tr.set_queries(m.queries);
        Ok(tr.finish(x, &last, threat, model))
    }
}
